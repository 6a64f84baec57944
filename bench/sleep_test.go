package bench

import (
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkSleep20us prices, on this machine, what the Go runtime's monitor thread
// (sysmon) does between two looks at a busy process: a 20 µs nanosleep. It reports
// the wall time of one and the CPU the sleeping thread spent on it (getrusage of the
// thread, user and system). The sleep is a raw system call, so the monitor itself is
// not woken by it and its own CPU stays out of the figure. On the benchmark VM the
// figures are far above the 20 µs asked for (docs/benchmarks.md, session 18).
func BenchmarkSleep20us(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ts := unix.NsecToTimespec(int64(20 * time.Microsecond))
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &before); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, errno := unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0); errno != 0 && errno != syscall.EINTR {
			b.Fatal(errno)
		}
	}
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &after); err != nil {
		b.Fatal(err)
	}
	cpu := after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N)/1e3, "cpu-µs/op")
}
