package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/circlegate/circlegate/tenant"
	"github.com/gorilla/websocket"
	"net/netip"
	"net/url"
	"runtime"
	"syscall"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// handshakeWorkers spreads the handshake loops, and the TIME_WAIT sockets their
// closed connections leave, over four source addresses.
const handshakeWorkers = 4

// runHandshake runs e.handshakeLoops concurrent loops of full handshakes (dial,
// fetch_nonce, authenticate, close) for e.duration and reports handshakes per gateway
// CPU-second.
func runHandshake(ctx context.Context, e *env) (result, error) {
	gw, err := startGateway(ctx, e, gatewayConfig{MaxConnections: 1000})
	if err != nil {
		return result{}, err
	}
	defer gw.stop()
	if err := warmUp(ctx, gw.url(), 8); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	base := job{Scenario: "handshake", URL: gw.url(), Loops: e.handshakeLoops, Duration: e.duration}
	ws, err := startWorkers(e, splitJob(base, handshakeWorkers))
	if err != nil {
		return result{}, err
	}
	defer ws.stop()
	ready, err := ws.collect(ctx, "ready", 30*time.Second)
	if err != nil {
		return result{}, err
	}

	sum, use, err := runLoad(ctx, e, gw, ws, ready, 200*time.Millisecond)
	if err != nil {
		return result{}, err
	}
	wall := sum.Elapsed.Seconds()
	perCore := float64(sum.OK) / use.gateway
	return result{
		Figure: fmt.Sprintf("%.0f handshakes/s per core", perCore),
		Pass:   perCore >= 4000,
		Notes: fmt.Sprintf("%d handshakes in %.1f s = %.0f/s with %d loops, %d errors; %s; %s (%s; the load generators sign every nonce)",
			sum.OK, wall, float64(sum.OK)/wall, e.handshakeLoops, sum.Errors, use.perOp(sum.OK), use.cores(wall), e.placement()),
	}, nil
}

// errorRate fails a run in which more than 1% of the operations failed: its figures
// would describe a broken gateway or harness, not a slow one.
func errorRate(sum report) error {
	if sum.OK == 0 || sum.Errors*100 > sum.OK {
		return fmt.Errorf("%d operations, %d errors, first: %s", sum.OK, sum.Errors, sum.FirstErr)
	}
	return nil
}

// handshakeLoad is the worker side: Loops closed loops, each with its own key, doing
// handshakes back to back from the start time for Duration. All of a worker's loops
// run on one thread with epoll (epoll.go), each a small state machine over a raw
// socket: connect, the HTTP upgrade, fetch_nonce, sign, authenticate, close frame,
// the gateway's close frame, and again. The gorilla/client stack cost the load
// generators about 450 µs of CPU per handshake, more than the gateway, which then
// never had the CPU to be measured at full load.
type handshakeLoad struct {
	job    job
	keys   []*secp256k1.PrivateKey
	pubs   []string
	local  syscall.SockaddrInet4
	remote syscall.SockaddrInet4
	path   string
	host   string
}

// handshakeLoop is one loop's current handshake.
type handshakeLoop struct {
	sock  *rawSocket
	stage int // what the next message from the gateway answers: stageUpgrade, ...
	t     tally
}

const (
	stageUpgrade = iota
	stageNonce
	stageAuth
	stageClose
)

func (l *handshakeLoad) prepare(context.Context) report {
	fail := func(err error) report { return report{Phase: "ready", Errors: 1, FirstErr: err.Error()} }
	var err error
	if l.keys, err = newKeys(l.job.Loops); err != nil {
		return fail(err)
	}
	for _, k := range l.keys {
		l.pubs = append(l.pubs, tenant.PubKeyHex(k.PubKey()))
	}
	u, err := url.Parse(l.job.URL)
	if err != nil {
		return fail(err)
	}
	addr, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return fail(err)
	}
	local, err := netip.ParseAddr(l.job.LocalIP)
	if err != nil {
		return fail(err)
	}
	l.remote = syscall.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	l.local = syscall.SockaddrInet4{Addr: local.As4()}
	l.path, l.host = u.RequestURI(), u.Host
	return report{Phase: "ready", OK: len(l.keys)}
}

func (l *handshakeLoad) run(ctx context.Context, start time.Time) report {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	poll, err := newPoller(nil)
	if err != nil {
		return report{Phase: "done", Errors: 1, FirstErr: err.Error()}
	}
	defer poll.close()
	if err := sleep(ctx, time.Until(start)); err != nil {
		return report{Phase: "done", Errors: 1, FirstErr: err.Error()}
	}
	end := start.Add(l.job.Duration)
	loops := make([]*handshakeLoop, len(l.keys))
	open := 0
	var buf []byte
	// begin starts loop k's next handshake, unless the run is over.
	begin := func(k int) {
		h := loops[k]
		for time.Now().Before(end) && ctx.Err() == nil {
			sock, err := dialRaw(&l.local, &l.remote)
			if err == nil {
				buf = fmt.Appendf(buf[:0], "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", l.path, l.host)
				if err = sock.write(buf); err == nil {
					err = poll.add(sock, k)
				}
				if err != nil {
					_ = syscall.Close(sock.fd)
				}
			}
			if err == nil {
				h.sock, h.stage = sock, stageUpgrade
				open++
				return
			}
			h.t.add(fmt.Errorf("handshake: connect: %w", err))
			_ = sleep(ctx, 10*time.Millisecond) // do not spin on a failing gateway
		}
	}
	// finish ends loop k's handshake (err nil: a success) and starts the next.
	finish := func(k int, err error) {
		h := loops[k]
		_ = syscall.Close(h.sock.fd)
		h.sock = nil
		open--
		h.t.add(err)
		begin(k)
	}
	for k := range loops {
		loops[k] = &handshakeLoop{}
		begin(k)
	}
	deadline := end.Add(callTimeout)
	for open > 0 && ctx.Err() == nil && time.Now().Before(deadline) {
		err := poll.wait(time.Until(deadline), func(k int) {
			h := loops[k]
			if h.sock == nil {
				return
			}
			if _, err := h.sock.read(); err != nil {
				finish(k, fmt.Errorf("handshake: stage %d: %w", h.stage, err))
				return
			}
			if err := l.step(k, h, &buf); err != nil {
				finish(k, fmt.Errorf("handshake: stage %d: %w", h.stage, err))
			} else if h.stage > stageClose {
				finish(k, nil)
			}
		})
		if err != nil {
			return report{Phase: "done", Errors: 1, FirstErr: err.Error()}
		}
	}
	rs := make([]report, len(loops))
	for k, h := range loops {
		if h.sock != nil {
			h.t.add(errors.New("handshake: unfinished at the deadline"))
			_ = syscall.Close(h.sock.fd)
		}
		rs[k] = h.t.report("done")
	}
	sum := total(rs)
	sum.Phase, sum.Elapsed = "done", time.Since(start)
	return sum
}

// step consumes what loop k's socket holds for its stage and sends what comes next;
// past stageClose the handshake is complete.
func (l *handshakeLoad) step(k int, h *handshakeLoop, buf *[]byte) error {
	s := h.sock
	if h.stage == stageUpgrade {
		end := bytes.Index(s.in, []byte("\r\n\r\n"))
		if end < 0 {
			return nil
		}
		if !bytes.HasPrefix(s.in, []byte("HTTP/1.1 101 ")) {
			return fmt.Errorf("upgrade refused: %.100q", s.in)
		}
		s.in = append(s.in[:0], s.in[end+4:]...)
		h.stage = stageNonce
		*buf = append(append((*buf)[:0], `{"jsonrpc":"2.0","id":1,"method":"fetch_nonce","params":{"pubkey":"`...), l.pubs[k]...)
		if err := s.writeText(append(*buf, `"}}`...)); err != nil {
			return err
		}
	}
	var stepErr error
	err := s.frames(func(msg []byte, _ time.Time) {
		if stepErr != nil {
			return
		}
		switch h.stage {
		case stageNonce:
			var r struct {
				Result struct{ Nonce string } `json:"result"`
			}
			if json.Unmarshal(msg, &r) != nil || r.Result.Nonce == "" {
				stepErr = fmt.Errorf("fetch_nonce: %.200s", msg)
				return
			}
			sig := tenant.SignPersonal(l.keys[k], []byte(r.Result.Nonce))
			*buf = fmt.Appendf((*buf)[:0], `{"jsonrpc":"2.0","id":2,"method":"authenticate","params":{"pubkey":%q,"signature":%q}}`, l.pubs[k], sig)
			stepErr = s.writeText(*buf)
			h.stage = stageAuth
		case stageAuth:
			if !bytes.Contains(msg, []byte(`"authenticated":true`)) {
				stepErr = fmt.Errorf("authenticate: %.200s", msg)
				return
			}
			stepErr = s.writeFrame(0x8, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			h.stage = stageClose
		default:
			stepErr = fmt.Errorf("unexpected message %.200s", msg)
		}
	}, time.Time{})
	var closed *closedError
	if h.stage == stageClose && errors.As(err, &closed) && closed.code == websocket.CloseNormalClosure {
		h.stage++ // the gateway's echo of our close frame: done
		return stepErr
	}
	if stepErr != nil {
		return stepErr
	}
	return err
}

func (l *handshakeLoad) close() {}
