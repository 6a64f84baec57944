package ws

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// idlePoller watches the sockets of idle sessions, which have no goroutine: an epoll
// set of its own (the Go runtime's poller knows the sockets too, but wakes only
// goroutines parked on them). A session is armed once its reader has found nothing
// to read for reader_idle (read.go), one-shot: the first byte that arrives starts a
// new reader, and the socket is not reported again until it is armed again. Events
// carry the session's id, not a pointer, so a session closed meanwhile is simply
// not found.
type idlePoller struct {
	epfd, stop int // the epoll set; an eventfd that ends run
}

func newIdlePoller() (*idlePoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN} // id 0: no session has it
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, stop, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(stop)
		return nil, err
	}
	return &idlePoller{epfd: epfd, stop: stop}, nil
}

// arm reports s's socket, once, when it has something to read. first is true the
// first time a socket is armed. The caller holds s.mu and s is not closed, so the
// descriptor is still s's.
func (p *idlePoller) arm(rc syscall.RawConn, id uint64, first bool) error {
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(uint32(id)), Pad: int32(uint32(id >> 32)), // the 64-bit event data
	}
	op := unix.EPOLL_CTL_MOD
	if first {
		op = unix.EPOLL_CTL_ADD
	}
	var err error
	if cerr := rc.Control(func(fd uintptr) { err = unix.EpollCtl(p.epfd, op, int(fd), &ev) }); cerr != nil {
		return cerr
	}
	return err
}

// run calls wake with the id of each armed session whose socket became readable
// (or was closed by the peer), until close.
func (p *idlePoller) run(wake func(id uint64)) {
	defer unix.Close(p.epfd)
	defer unix.Close(p.stop)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				return
			}
			wake(id)
		}
	}
}

// close ends run, which then closes the epoll set.
func (p *idlePoller) close() {
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(p.stop, one[:])
}
