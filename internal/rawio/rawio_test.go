package rawio

import (
	"bytes"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// socketPair returns two connected non-blocking sockets with small buffers, and a
// function that closes the first early (the cleanup then leaves it alone).
func socketPair(t *testing.T) (a, b uintptr, closeA func()) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
			t.Fatal(err)
		}
	}
	closed := false
	closeA = func() {
		if !closed {
			closed = true
			unix.Close(fds[0])
		}
	}
	t.Cleanup(func() { closeA(); unix.Close(fds[1]) })
	return uintptr(fds[0]), uintptr(fds[1]), closeA
}

// TestReadWrite: an empty socket reads EAGAIN, a full one takes part of a write and
// then EAGAIN, and what was written comes out whole and in order, through Write and
// Writev.
func TestReadWrite(t *testing.T) {
	a, b, closeA := socketPair(t)
	buf := make([]byte, 1<<16)
	if n, errno := Read(b, buf); errno != unix.EAGAIN || n != 0 {
		t.Fatalf("read of an empty socket: %d, %v; want EAGAIN", n, errno)
	}
	big := bytes.Repeat([]byte("abcdefgh"), 1<<17) // 1 MiB: far more than the socket holds
	n, errno := Write(a, big)
	if errno != 0 || n <= 0 || n >= len(big) {
		t.Fatalf("write of 1 MiB: %d, %v; want part of it", n, errno)
	}
	if m, errno := Write(a, big[n:]); errno != unix.EAGAIN || m != 0 {
		t.Fatalf("write to a full socket: %d, %v; want EAGAIN", m, errno)
	}
	var got []byte
	for len(got) < n {
		m, errno := Read(b, buf)
		if errno != 0 {
			t.Fatalf("read: %v after %d of %d bytes", errno, len(got), n)
		}
		got = append(got, buf[:m]...)
	}
	if !bytes.Equal(got, big[:n]) {
		t.Fatal("the bytes read are not the bytes written")
	}
	parts := [][]byte{[]byte("one "), []byte("two "), []byte("three")}
	iov := make([]unix.Iovec, len(parts))
	for i, p := range parts {
		iov[i] = unix.Iovec{Base: &p[0]}
		iov[i].SetLen(len(p))
	}
	if n, errno := Writev(a, iov); errno != 0 || n != 13 {
		t.Fatalf("writev: %d, %v; want 13", n, errno)
	}
	if m, errno := Read(b, buf); errno != 0 || string(buf[:m]) != "one two three" {
		t.Fatalf("read after writev: %q, %v", buf[:m], errno)
	}
	closeA()
	if m, errno := Read(b, buf); errno != 0 || m != 0 {
		t.Fatalf("read after the peer closed: %d, %v; want 0 (EOF)", m, errno)
	}
	if _, errno := Write(b, []byte("x")); errno != syscall.EPIPE {
		t.Fatalf("write to a closed peer: %v, want EPIPE", errno)
	}
}

// TestHappensBefore hands a plain variable from one goroutine to another through a
// socket only. Under the race detector this passes only because a Write happens
// before the Read that follows it (race.go).
func TestHappensBefore(t *testing.T) {
	a, b, _ := socketPair(t)
	var shared int
	done := make(chan int)
	go func() {
		buf := make([]byte, 1)
		for {
			if n, errno := Read(b, buf); errno == 0 && n == 1 {
				done <- shared
				return
			}
		}
	}()
	shared = 42
	if _, errno := Write(a, []byte{1}); errno != 0 {
		t.Fatal(errno)
	}
	if got := <-done; got != 42 {
		t.Fatalf("the reader saw %d, want 42", got)
	}
}
