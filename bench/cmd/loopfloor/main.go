//go:build linux

// Command loopfloor measures the floor that the fan-out scenarios stand on: the
// fan-out with everything but the sockets taken away. No WebSocket, no JSON, no
// gateway, no commit: a ticker makes events of -bytes bytes at -rate per second,
// each stamped with its time, and sweepers on locked threads write every
// connection whatever events it has not had yet, with one non-blocking write(2),
// one sweep after another, as the gateway's flushers do. Reader processes read
// every socket that has data through epoll, as cgbench's fan-out readers do, and
// sample each event's latency from its stamp to the read that brought it.
//
// If the bare writes and reads cannot deliver to N connections within a latency
// target on this machine, no gateway on it can deliver to N subscribers within it.
//
//	go run ./bench/cmd/loopfloor                      # 10,000 connections, 100 events/s of 300 B
//	go run ./bench/cmd/loopfloor -conns 2000
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sampleEvery keeps one latency sample per so many deliveries.
const sampleEvery = 16

func main() {
	conns := flag.Int("conns", 10000, "connections (subscribers)")
	size := flag.Int("bytes", 300, "bytes per event (the gateway's event frames are about 300 B)")
	rate := flag.Int("rate", 100, "events per second")
	sweepers := flag.Int("sweepers", runtime.NumCPU(), "writer threads, each sweeping its share of the connections")
	duration := flag.Duration("duration", 10*time.Second, "how long to make events")
	pause := flag.Duration("pause", time.Millisecond, "readers' pause after a round of reads, as cgbench's")
	perReader := flag.Int("per-reader", 2500, "connections per reader process (at most 20,000 open files a process here)")
	reader := flag.String("reader", "", "internal: run as a reader connecting to this address")
	local := flag.String("local", "", "internal: the reader's local address")
	flag.Parse()
	if *size < 8 {
		fmt.Fprintln(os.Stderr, "loopfloor: -bytes must be at least 8, the stamp's size")
		os.Exit(2)
	}
	var err error
	if *reader != "" {
		err = runReader(*reader, *local, *conns, *size, *pause)
	} else {
		err = runWriter(os.Stdout, *conns, *perReader, *size, *rate, *sweepers, *duration, *pause)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopfloor:", err)
		os.Exit(1)
	}
}

// events is the stream every connection gets: event i is at buf[i*size:], its
// first 8 bytes the time it was made (Unix nanoseconds); made is how many exist.
type events struct {
	buf  []byte
	size int
	made atomic.Int64
}

// runWriter starts the readers, accepts their connections, makes events for d while
// sweeping, and prints what it and the readers measured.
func runWriter(w io.Writer, conns, perReader, size, rate, sweepers int, d, pause time.Duration) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var readers []*exec.Cmd
	var outs []*bufio.Scanner
	for i := 0; conns-i*perReader > 0; i++ {
		n := min(perReader, conns-i*perReader)
		cmd := exec.Command(exe, "-reader", ln.Addr().String(), "-local", fmt.Sprintf("127.0.0.%d", i+2),
			"-conns", strconv.Itoa(n), "-bytes", strconv.Itoa(size), "-pause", pause.String())
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		readers = append(readers, cmd)
		outs = append(outs, bufio.NewScanner(stdout))
	}
	defer func() {
		for _, c := range readers {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	// A reader that fails to connect must not leave the writer waiting for ever.
	if err := ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Minute)); err != nil {
		return err
	}
	fds := make([]int, 0, conns)
	for len(fds) < conns {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		fd, err := detach(c.(*net.TCPConn))
		if err != nil {
			return err
		}
		fds = append(fds, fd)
	}
	total := int(d.Seconds()*float64(rate)) + 1
	ev := &events{buf: make([]byte, total*size), size: size}
	for i := range ev.buf {
		ev.buf[i] = 'x'
	}
	start := time.Now()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	wg.Go(func() { ev.make(start, rate, total) })
	periods := make([][]time.Duration, sweepers)
	writes := make([]int, sweepers)
	blocked := make([]int, sweepers)
	for s := range sweepers {
		share := fds[s*len(fds)/sweepers : (s+1)*len(fds)/sweepers]
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			sent := make([]int, len(share)) // bytes of the stream each connection has had
			for {
				t0 := time.Now()
				idle := true
				made := 0
				for k, fd := range share {
					// As the gateway's flushers: whatever is there when the sweep
					// reaches the connection, not when the sweep started.
					made = int(ev.made.Load())
					end := made * size
					if sent[k] == end {
						continue
					}
					idle = false
					n, err := unix.Write(fd, ev.buf[sent[k]:end])
					if err == unix.EAGAIN {
						blocked[s]++
						continue
					}
					if err != nil {
						return
					}
					sent[k] += n
					writes[s]++
				}
				if made == total && idle {
					return
				}
				if idle {
					// Every connection has every event: wait for the next one
					// rather than spin, as the gateway's flushers wait for a wake.
					time.Sleep(100 * time.Microsecond)
					continue
				}
				periods[s] = append(periods[s], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	writerCPU := cpuTime() - cpu0
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
	var readerCPU time.Duration
	var reads, got int
	var lat []int64
	for _, sc := range outs {
		sc.Buffer(nil, 64<<20)
		if !sc.Scan() {
			return fmt.Errorf("a reader ended without its report")
		}
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			return fmt.Errorf("reader report %q", sc.Text())
		}
		cpu, _ := time.ParseDuration(f[0])
		n, _ := strconv.Atoi(f[1])
		e, _ := strconv.Atoi(f[2])
		readerCPU += cpu
		reads += n
		got += e
		for _, x := range f[3:] {
			v, _ := strconv.ParseInt(x, 10, 64)
			lat = append(lat, v)
		}
	}
	var all []time.Duration
	nw, eagain := 0, 0
	for s := range sweepers {
		all = append(all, periods[s]...)
		nw += writes[s]
		eagain += blocked[s]
	}
	slices.Sort(all)
	slices.Sort(lat)
	ms := func(ns int64) string {
		return (time.Duration(ns) * time.Nanosecond).Round(100 * time.Microsecond).String()
	}
	qd := func(f float64) string {
		if len(all) == 0 {
			return "-"
		}
		return ms(int64(all[min(len(all)-1, int(f*float64(len(all))))]))
	}
	ql := func(f float64) string {
		if len(lat) == 0 {
			return "-"
		}
		return ms(lat[min(len(lat)-1, int(f*float64(len(lat))))])
	}
	fmt.Fprintf(w, "%d connections, %d events/s of %d B, %d sweepers, %d reader processes, %.1f s\n", conns, rate, size, sweepers, len(readers), elapsed.Seconds())
	fmt.Fprintf(w, "deliveries %d of %d (%.0f/s); latency p50 %s, p99 %s, max %s\n", got, total*conns, float64(got)/d.Seconds(), ql(0.5), ql(0.99), ql(1))
	fmt.Fprintf(w, "sweeps %d: period p50 %s, p99 %s\n", len(all), qd(0.5), qd(0.99))
	fmt.Fprintf(w, "writes %d (%.0f/s, %.1f events each), %d would have blocked; reads %d\n", nw, float64(nw)/elapsed.Seconds(), float64(got)/float64(max(nw, 1)), eagain, reads)
	fmt.Fprintf(w, "CPU: writer %.2f cores (%.1f µs per write), readers %.2f cores (%.1f µs per read)\n",
		writerCPU.Seconds()/elapsed.Seconds(), float64(writerCPU.Microseconds())/float64(max(nw, 1)),
		readerCPU.Seconds()/elapsed.Seconds(), float64(readerCPU.Microseconds())/float64(max(reads, 1)))
	return nil
}

// make stamps event i at start + i/rate, publishing each when its time comes.
func (e *events) make(start time.Time, rate, total int) {
	for i := range total {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		time.Sleep(time.Until(at))
		binary.LittleEndian.PutUint64(e.buf[i*e.size:], uint64(time.Now().UnixNano()))
		e.made.Store(int64(i + 1))
	}
}

// runReader connects n sockets from local to addr and reads whatever arrives until
// the writer closes them, then prints its CPU time, reads, deliveries and latency
// samples (nanoseconds) on one line.
func runReader(addr, local string, n, size int, pause time.Duration) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	type sub struct {
		fd    int
		off   int     // bytes of the stream read so far
		stamp [8]byte // the current event's stamp, as far as it has come
	}
	subs := make([]sub, n)
	for i := range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		fd, err := detach(c.(*net.TCPConn))
		if err != nil {
			return err
		}
		subs[i].fd = fd
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return err
		}
	}
	runtime.LockOSThread()
	cpu0 := cpuTime()
	buf := make([]byte, 256<<10)
	events := make([]unix.EpollEvent, 1024)
	open, reads, got := n, 0, 0
	var lat []int64
	for open > 0 {
		k, err := unix.EpollWait(epfd, events, 1000)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:k] {
			s := &subs[ev.Fd]
			m, err := unix.Read(s.fd, buf)
			reads++
			if m <= 0 {
				if err != unix.EAGAIN {
					_ = unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
					_ = unix.Close(s.fd)
					open--
				}
				continue
			}
			now := time.Now().UnixNano()
			// Walk the events this read completed the stamps of.
			for p := 0; p < m; {
				in := s.off % size
				if in < 8 {
					c := copy(s.stamp[in:], buf[p:m])
					p += c
					s.off += c
					if s.off%size == 8 || (s.off%size == 0 && size == 8) {
						if got%sampleEvery == 0 {
							lat = append(lat, now-int64(binary.LittleEndian.Uint64(s.stamp[:])))
						}
						got++
					}
					continue
				}
				c := min(m-p, size-in)
				p += c
				s.off += c
			}
		}
		if k < len(events) && pause > 0 {
			time.Sleep(pause)
		}
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "%v %d %d", cpuTime()-cpu0, reads, got)
	for _, v := range lat {
		fmt.Fprintf(out, " %d", v)
	}
	fmt.Fprintln(out)
	return out.Flush()
}

// detach duplicates c's socket into a non-blocking descriptor of our own and closes
// c, so that Go's netpoller forgets it.
func detach(c *net.TCPConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	_ = c.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		return -1, err
	}
	return fd, nil
}

// cpuTime is the process's user and system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
