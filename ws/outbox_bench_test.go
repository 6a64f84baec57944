package ws

import (
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFanout measures what delivering one event to one subscriber costs: an
// outbox push per subscriber, then the sweeps' writes, over real loopback TCP
// connections whose peers read and discard. ns/op is per delivery; cpu-ns/delivery
// is the process's user+system CPU per delivery (readers included), which a busy
// machine distorts less than wall time.
func BenchmarkFanout(b *testing.B) {
	for _, subs := range []int{100, 1000} {
		b.Run(itoa(subs), func(b *testing.B) { benchFanout(b, subs) })
	}
}

func itoa(n int) string {
	return map[int]string{100: "subs=100", 1000: "subs=1000"}[n]
}

func benchFanout(b *testing.B, subs int) {
	h, err := NewHub(Config{}, nil, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Shutdown(b.Context())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var readers sync.WaitGroup
	outs := make([]*outbox, subs)
	for i := range outs {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		defer sc.Close()
		readers.Add(1)
		go func() { defer readers.Done(); _, _ = io.Copy(io.Discard, c) }()
		o := &outbox{}
		o.init(h, uint64(i), sc, func(d Disconnect) { b.Errorf("connection failed: %s", d.Reason) })
		outs[i] = o
	}
	ev := frame(opText, []byte(`{"jsonrpc":"2.0","method":"event","params":{"contextId":"c0ffee00c0ffee00c0ffee00c0ffee00","seq":12345,"txId":"abcdefabcdefabcdefabcdefabcdefab","txSeq":12345,"kind":"StateMutation","rootHash":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","time":1763800000000}}`))
	events := max(1, b.N/subs)
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	for range events {
		for _, o := range outs {
			if start, _ := o.push(ev, nil, false); start {
				go o.write()
			}
		}
		time.Sleep(time.Millisecond) // a new event every millisecond at most
	}
	for _, o := range outs { // wait until everything is written
		for {
			o.mu.Lock()
			idle := o.bytes == 0 && !o.writing
			o.mu.Unlock()
			if idle {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
	deliveries := float64(events * subs)
	b.ReportMetric(float64(cpu.Nanoseconds())/deliveries, "cpu-ns/delivery")
	b.ReportMetric(deliveries/b.Elapsed().Seconds(), "deliveries/s")
}
