package redisx

import (
	"context"
	"errors"
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
	raw syscall.RawConn
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
	return &rawConn{Conn: c, raw: raw}
}

// SyscallConn is for go-redis's pool, which checks a connection it takes for a close
// by the server: it calls Read with a function that peeks at the socket through a
// system call the scheduler hands off around, which would wake the monitor again, on
// every command. The peekConn it gets peeks with a raw call instead.
func (c *rawConn) SyscallConn() (syscall.RawConn, error) { return peekConn{c.raw}, nil }

// peekConn is a syscall.RawConn whose Read does not run the function it is given
// but what that function does in go-redis's health check (internal/pool's
// checkSyscallConn): a non-blocking MSG_PEEK of one byte. It returns nil when the
// socket has nothing to read (healthy), io.EOF when the server closed it, and
// errUnread when there is data nobody asked for (after which go-redis drops the
// connection too, as it does with RESP2). Write and Control are the socket's own.
type peekConn struct{ syscall.RawConn }

// errUnread is peekConn's answer for a connection holding unrequested data.
var errUnread = errors.New("redisx: unrequested data on an idle connection")

func (p peekConn) Read(func(fd uintptr) bool) error {
	var peekErr error
	err := p.RawConn.Control(func(fd uintptr) {
		var b [1]byte
		for {
			n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
				unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
			switch {
			case errno == unix.EINTR:
				continue
			case errno == unix.EAGAIN:
			case errno != 0:
				peekErr = os.NewSyscallError("recvfrom", errno)
			case n == 0:
				peekErr = io.EOF
			default:
				peekErr = errUnread
			}
			return
		}
	})
	if err != nil {
		return err
	}
	return peekErr
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
			case e == unix.EAGAIN || (e == 0 && n == 0):
				return false // wait until the socket can take more
			case e != 0:
				errno = e
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

// opError wraps err as net.Conn's methods do; a passed deadline stays a net.Error
// whose Timeout is true, which go-redis looks for.
func (c *rawConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
