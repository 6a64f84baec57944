package redisx

import (
	"context"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/circlegate/circlegate/internal/rawio"
)

// rawConn is a connection to Redis whose reads and writes are raw system calls on its
// non-blocking socket (internal/rawio says why); when the socket is not ready it
// waits in the runtime's poller, deadlines included, as a net.Conn does.
type rawConn struct {
	net.Conn
	raw     syscall.RawConn
	network string // "tcp" or "unix", for errors
}

// keepAlive is go-redis's own default: probe after 30 s idle, give up after 3
// unanswered probes 5 s apart.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}

// dialRaw is a go-redis dialer of raw connections (not for TLS, whose records need
// the tls package's own reads).
func dialRaw(timeout time.Duration) func(context.Context, string, string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAliveConfig: keepAlive}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wrapRaw(c), nil
	}
}

// wrapRaw returns c as a rawConn, or c itself when it has no file descriptor.
func wrapRaw(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	network := "tcp"
	if a := c.LocalAddr(); a != nil {
		network = a.Network()
	}
	return &rawConn{Conn: c, raw: raw, network: network}
}

// SyscallConn is for go-redis's pool, which checks each connection it takes for a
// close by the server with a function that peeks at the socket through an ordinary
// system call: one per command, each waking the monitor again. The peekConn it gets
// spares that call when the socket is idle.
func (c *rawConn) SyscallConn() (syscall.RawConn, error) { return peekConn{c.raw}, nil }

// peekConn is the socket's syscall.RawConn, but its Read first peeks at the socket
// with a raw non-blocking MSG_PEEK of one byte. When there is nothing to read (a
// healthy idle connection, the case of every command) it returns nil without running
// the function it was given: go-redis v9's checks (internal/pool's checkSyscallConn,
// behind its health check and its checkForData) only peek the same way and would
// find the same. Otherwise (data, a close, an error) the function runs as usual and
// go-redis classifies the socket itself. go-redis reads and writes through
// net.Conn, never through this Read; TestRawConnServerClose checks the health check.
type peekConn struct{ syscall.RawConn }

func (p peekConn) Read(f func(fd uintptr) bool) error {
	idle := false
	err := p.RawConn.Control(func(fd uintptr) {
		var b [1]byte
		for {
			_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
				unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
			if errno != unix.EINTR {
				idle = errno == unix.EAGAIN
				return
			}
		}
	})
	if err != nil || idle {
		return err
	}
	return p.RawConn.Read(f)
}

func (c *rawConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		n, errno = rawio.Read(fd, b)
		return errno != unix.EAGAIN
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawConn) Write(b []byte) (int, error) {
	done := 0
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for done < len(b) {
			n, e := rawio.Write(fd, b[done:])
			switch {
			case e == unix.EAGAIN:
				return false // wait until the socket can take more
			case e != 0:
				errno = e
				return true
			case n == 0:
				errno = unix.EIO // a write that takes nothing: as net.Conn's, an error
				return true
			}
			done += n
		}
		return true
	})
	switch {
	case err != nil:
		return done, c.opError("write", err)
	case errno != 0:
		return done, c.opError("write", os.NewSyscallError("write", errno))
	}
	return done, nil
}

// opError wraps err as net.Conn's methods do, unless the poller's wait made it a
// *net.OpError already; a passed deadline stays a net.Error whose Timeout is true,
// which go-redis looks for.
func (c *rawConn) opError(op string, err error) error {
	if _, ok := err.(*net.OpError); ok {
		return err
	}
	return &net.OpError{Op: op, Net: c.network, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
