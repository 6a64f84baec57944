//go:build !linux

package ws

import (
	"errors"
	"syscall"
)

// idlePoller is Linux-only (epoll): elsewhere an idle session keeps its reader.
type idlePoller struct{ done chan struct{} }

func newIdlePoller() (*idlePoller, error) { return &idlePoller{done: make(chan struct{})}, nil }

func (p *idlePoller) arm(syscall.RawConn, uint64, bool) error {
	return errors.New("no idle poller on this platform")
}

func (p *idlePoller) run(func(uint64)) { <-p.done }

func (p *idlePoller) close() { close(p.done) }
