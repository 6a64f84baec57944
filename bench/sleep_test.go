package bench

import (
	"syscall"
	"testing"
	"time"
)

// BenchmarkSleep20us prices, on this machine, what the Go runtime's monitor thread
// (sysmon) does between two looks at a busy process: a 20 µs nanosleep. It reports
// the wall time of one and the CPU the process spent on it (getrusage, user and
// system), which on the benchmark VM is far above the 20 µs asked for
// (docs/benchmarks.md, session 18).
func BenchmarkSleep20us(b *testing.B) {
	ts := syscall.NsecToTimespec(int64(20 * time.Microsecond))
	var before, after syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &before); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := syscall.Nanosleep(&ts, nil); err != nil && err != syscall.EINTR {
			b.Fatal(err)
		}
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &after); err != nil {
		b.Fatal(err)
	}
	cpu := after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N)/1e3, "cpu-µs/op")
}
