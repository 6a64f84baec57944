package redisx

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/internal/redistest"
)

// TestRawConnRoundTrips runs commands through Open's raw connections on a real
// redis-server: a value of several MiB each way (partial writes and reads, waits in
// the poller) and a pipeline of many small commands.
func TestRawConnRoundTrips(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rdb, err := Open(t.Context(), srv.URL(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 512<<10) // 8 MiB
	if err := rdb.Set(t.Context(), "big", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := rdb.Get(t.Context(), "big").Bytes()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("GET big: %d bytes, %v; want the %d bytes set", len(got), err, len(big))
	}
	pipe := rdb.Pipeline()
	cmds := make([]*redis.IntCmd, 20000)
	for i := range cmds {
		cmds[i] = pipe.IncrBy(t.Context(), "n", int64(i))
	}
	if _, err := pipe.Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	sum := int64(0)
	for i, c := range cmds {
		sum += int64(i)
		if c.Val() != sum {
			t.Fatalf("INCRBY %d returned %d, want %d", i, c.Val(), sum)
		}
	}
}

// TestRawConnDialer: Open's clients dial raw connections, and a TLS URL keeps
// go-redis's own dialer.
func TestRawConnDialer(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	o, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	tune(o, 1)
	c, err := o.Dialer(t.Context(), "tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*rawConn); !ok {
		t.Fatalf("tune's dialer made a %T, want a *rawConn", c)
	}
	for _, url := range []string{"rediss://" + srv.Addr(), srv.URL() + "?protocol=3"} {
		o, err = redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		tune(o, 1)
		if o.Dialer != nil {
			t.Fatalf("%s got the raw dialer; TLS and RESP3 keep go-redis's", url)
		}
	}
	if p1, _ := net.Pipe(); wrapRaw(p1) != p1 {
		t.Fatal("wrapRaw wrapped a connection without a file descriptor")
	}
}

// TestRawConnTimeout: a server that never answers makes a command fail with a
// timeout (a net.Error, which go-redis and Unavailable look for) within the read
// timeout, not hang.
func TestRawConnTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), Dialer: dialRaw(time.Second),
		ReadTimeout: 200 * time.Millisecond, MaxRetries: -1, DisableIdentity: true, Protocol: 2})
	defer rdb.Close()
	start := time.Now()
	err = rdb.Ping(t.Context()).Err()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING to a silent server: %v (%T); want a net.Error timeout", err, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the timeout took %s", took)
	}
	if !Unavailable(err) {
		t.Fatalf("Unavailable(%v) = false", err)
	}
}

// TestRawConnServerClose: connections the server closed while they were idle in the
// pool are found by the pool's check (peekConn) and replaced, so the next commands
// succeed although the client never retries a command.
func TestRawConnServerClose(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rdb, err := Open(t.Context(), srv.URL(), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	for i := range 4 {
		if err := rdb.Set(t.Context(), "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for range 4 { // four connections in use at once, then idle in the pool
		wg.Go(func() { _ = rdb.Do(t.Context(), "BLPOP", "none", "0.2").Err() })
	}
	wg.Wait()
	if n := rdb.PoolStats().IdleConns; n == 0 {
		t.Fatal("no idle connection in the pool")
	}
	if n, err := srv.Do("CLIENT", "KILL", "TYPE", "normal"); err != nil {
		t.Fatalf("CLIENT KILL: %q, %v", n, err)
	}
	time.Sleep(100 * time.Millisecond)
	for i := range 8 {
		if err := rdb.Get(t.Context(), "k"+strconv.Itoa(i%4)).Err(); err != nil {
			t.Fatalf("GET %d after the server closed the pooled connections: %v (pool %+v)", i, err, *rdb.PoolStats())
		}
	}
}

// TestPeekConn: the pool's check runs only when the socket is not idle. With nothing
// to read, peekConn answers nil without running it; with data waiting or a close by
// the peer, it runs, and what it finds is what the caller gets.
func TestPeekConn(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	here, there := wrapRaw(fileConn(t, fds[0])).(*rawConn), wrapRaw(fileConn(t, fds[1]))
	p, err := here.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// check peeks as go-redis's does and reports what it saw.
	check := func() (ran bool, n int, err error) {
		err = p.Read(func(fd uintptr) bool {
			ran = true
			var b [1]byte
			n, _, err = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return true
		})
		return ran, n, err
	}
	if ran, _, err := check(); ran || err != nil {
		t.Fatalf("nothing to read: the check ran %v, %v; want it spared, nil", ran, err)
	}
	if _, err := there.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if ran, n, err := check(); !ran || n != 1 || err != nil {
		t.Fatalf("unread data: the check ran %v and saw %d bytes, %v; want it run, 1 byte", ran, n, err)
	}
	b := make([]byte, 1)
	if n, err := here.Read(b); n != 1 || err != nil || b[0] != 'x' {
		t.Fatalf("the peek consumed the byte: read %d (%q), %v", n, b, err)
	}
	there.Close()
	if ran, n, err := check(); !ran || n != 0 || err != nil {
		t.Fatalf("closed by the peer: the check ran %v and saw %d bytes, %v; want it run, 0 bytes (EOF)", ran, n, err)
	}
	if n, err := here.Read(b); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %d, %v; want io.EOF", n, err)
	}
}

func fileConn(t *testing.T, fd int) net.Conn {
	t.Helper()
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "socket")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
