package ws

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/tenant"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Hub owns every WebSocket session of a process: it admits them within the limits,
// finds them by id or tenant, and closes them all at shutdown.
type Hub struct {
	cfg     Config
	rpc     *rpc.Server
	auth    *tenant.Auth
	log     *slog.Logger
	metrics *metrics
	upgrade *websocket.Upgrader
	bus     events.Bus
	history events.History
	svc     *execution.Service

	root   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	tasks  chan func()  // to the serve workers; unbuffered
	served atomic.Int64 // serve workers alive

	flushers []*flusher  // event write sweeps (flush.go)
	idle     *idlePoller // wakes parked sessions (read.go)
	readBufs *sync.Pool  // of *[]byte, read_buffer_size each

	mu        sync.Mutex
	sessions  map[uint64]*session
	admitting map[*admission]struct{} // sessions upgraded but not yet added
	streams   map[string]*stream
	perTenant map[string]int
	reserved  int
	closed    bool
	nextID    atomic.Uint64
}

// NewHub returns a hub that dispatches session messages to srv. reg may be nil.
func NewHub(cfg Config, srv *rpc.Server, auth *tenant.Auth, log *slog.Logger, reg prometheus.Registerer) (*Hub, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		cfg: cfg, rpc: srv, auth: auth, log: log,
		sessions: make(map[uint64]*session), admitting: make(map[*admission]struct{}),
		streams: make(map[string]*stream), perTenant: make(map[string]int),
	}
	m, err := newMetrics(reg, func() float64 { return float64(h.served.Load()) })
	if err != nil {
		return nil, err
	}
	h.metrics = m
	h.root, h.cancel = context.WithCancel(context.Background())
	h.upgrade = h.upgrader()
	h.readBufs = newReadBufs(cfg.ReadBufferSize)
	if h.idle, err = newIdlePoller(); err != nil {
		return nil, fmt.Errorf("ws: idle poller: %w", err)
	}
	go h.idle.run(h.wake)
	h.flushers = newFlushers(runtime.GOMAXPROCS(0), max(cfg.EventWriteInterval, 0))
	for _, f := range h.flushers {
		go f.run(h.root)
	}
	h.tasks = make(chan func())
	return h, nil
}

// UseEvents lets sessions and SSE streams subscribe to context events from bus,
// resuming from history, for the contexts svc lets the caller read. Call it before
// serving.
func (h *Hub) UseEvents(bus events.Bus, history events.History, svc *execution.Service) {
	h.bus, h.history, h.svc = bus, history, svc
}

// Config returns the configuration with defaults applied.
func (h *Hub) Config() Config { return h.cfg }

// reserve admits one more session of tenant pk, or says why not.
func (h *Hub) reserve(pk string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		h.metrics.refused.WithLabelValues("shutdown").Inc()
		return errs.E(errs.Overloaded, "server is shutting down")
	case h.reserved >= h.cfg.MaxConnections:
		h.metrics.refused.WithLabelValues("connection_limit").Inc()
		return errs.E(errs.Overloaded, "connection limit of this node reached")
	case h.cfg.MaxConnectionsPerTenant > 0 && h.perTenant[pk] >= h.cfg.MaxConnectionsPerTenant:
		h.metrics.refused.WithLabelValues("tenant_connection_limit").Inc()
		return errs.E(errs.Overloaded, "connection limit of this tenant reached")
	}
	h.reserved++
	h.perTenant[pk]++
	return nil
}

// release undoes reserve.
func (h *Hub) release(pk string) {
	h.mu.Lock()
	h.reserved--
	if h.perTenant[pk]--; h.perTenant[pk] <= 0 {
		delete(h.perTenant, pk)
	}
	h.mu.Unlock()
}

// An admission is a session from just before its upgrade until add. The client may
// take the session as open as soon as the upgrade is answered, but CloseTenant and
// CloseRevoked do not find it among the sessions yet: they mark its admission
// instead, and the session closes as soon as it is added.
type admission struct {
	pk     string
	pr     *tenant.Principal // the upgrade's token, if it carried one
	reason *Disconnect       // set by a closure that found the session admitting
	s      *session          // set by add
}

// admit records the admission of a session of tenant pk authenticated as pr (nil
// without a token).
func (h *Hub) admit(pk string, pr *tenant.Principal) *admission {
	a := &admission{pk: pk, pr: pr}
	h.mu.Lock()
	h.admitting[a] = struct{}{}
	h.mu.Unlock()
	return a
}

// forget ends an admission whose upgrade failed.
func (h *Hub) forget(a *admission) {
	h.mu.Lock()
	delete(h.admitting, a)
	h.mu.Unlock()
}

// add registers a session admitted by reserve and admit, and returns the reason to
// close it for if a closure marked its admission. It fails once Shutdown has begun.
func (h *Hub) add(s *session, a *admission) (*Disconnect, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.admitting, a)
	if h.closed {
		return nil, false
	}
	a.s = s
	h.sessions[s.id] = s
	h.wg.Add(1)
	h.metrics.sessions.Inc()
	h.metrics.connections.Inc()
	return a.reason, true
}

// mark closes a's session with d, or, while it is still admitting, marks it so
// that add does.
func (h *Hub) mark(a *admission, d Disconnect) {
	h.mu.Lock()
	s := a.s
	if s == nil {
		a.reason = &d
	}
	h.mu.Unlock()
	if s != nil {
		s.close(d)
	}
}

// wake starts the reader of parked session id, if it is still open.
func (h *Hub) wake(id uint64) {
	h.mu.Lock()
	s := h.sessions[id]
	h.mu.Unlock()
	if s != nil {
		s.wake()
	}
}

// remove unregisters a session when it finishes.
func (h *Hub) remove(s *session) {
	h.mu.Lock()
	delete(h.sessions, s.id)
	h.mu.Unlock()
	h.release(s.peer.Tenant.PubKey)
	h.metrics.sessions.Dec()
	h.wg.Done()
}

// Len returns the number of open sessions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// TenantLen returns the number of sessions of tenant pk, reserved ones included.
func (h *Hub) TenantLen(pk string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.perTenant[pk]
}

// CloseTenant closes every session and SSE stream of tenant pk with reason d.
func (h *Hub) CloseTenant(pk string, d Disconnect) int {
	h.mu.Lock()
	var streams []*stream
	for _, st := range h.streams {
		if st.principal.Tenant.PubKey == pk {
			streams = append(streams, st)
		}
	}
	for a := range h.admitting {
		if a.pk == pk {
			a.reason = &d
		}
	}
	h.mu.Unlock()
	for _, st := range streams {
		st.close(d)
	}
	return len(streams) + h.closeWhere(func(s *session) bool { return s.peer.Tenant.PubKey == pk }, d)
}

// CloseRevoked closes every session and SSE stream whose token no longer holds:
// revoked (4502 token_revoked) or expired (4501 token_expired). Register it with
// tenant.Auth.OnRevoke. It returns how many it closed.
func (h *Hub) CloseRevoked() int {
	h.mu.Lock()
	var sessions []*session
	for _, s := range h.sessions {
		sessions = append(sessions, s)
	}
	streams := make([]*stream, 0, len(h.streams))
	for _, st := range h.streams {
		streams = append(streams, st)
	}
	var admitting []*admission
	for a := range h.admitting {
		admitting = append(admitting, a)
	}
	h.mu.Unlock()
	n := 0
	for _, a := range admitting {
		if d, ok := h.invalid(a.pr); ok {
			h.mark(a, d)
			n++
		}
	}
	for _, s := range sessions {
		if d, ok := h.invalid(s.peer.Principal()); ok {
			s.close(d)
			n++
		}
	}
	for _, st := range streams {
		if d, ok := h.invalid(st.principal); ok {
			st.close(d)
			n++
		}
	}
	return n
}

// invalid reports whether pr's token no longer holds, and the reason to close for.
func (h *Hub) invalid(pr *tenant.Principal) (Disconnect, bool) {
	if pr == nil {
		return Disconnect{}, false
	}
	switch err := h.auth.Check(pr); {
	case err == nil:
		return Disconnect{}, false
	case tenant.IsRevoked(err):
		return DisconnectTokenRevoked, true
	}
	return DisconnectTokenExpired, true
}

// Principals returns the principals of tenant pk's authenticated sessions and SSE
// streams, one per connection.
func (h *Hub) Principals(pk string) []*tenant.Principal {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*tenant.Principal
	for _, s := range h.sessions {
		if pr := s.peer.Principal(); pr != nil && s.peer.Tenant.PubKey == pk {
			out = append(out, pr)
		}
	}
	for _, st := range h.streams {
		if st.principal.Tenant.PubKey == pk {
			out = append(out, st.principal)
		}
	}
	return out
}

// StartShutdown begins closing SSE streams, so an HTTP server's Shutdown, which
// waits for handlers, is not held up by them. Register it with RegisterOnShutdown.
func (h *Hub) StartShutdown() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.closeStreams(DisconnectShutdown)
}

func (h *Hub) closeWhere(match func(*session) bool, d Disconnect) int {
	h.mu.Lock()
	var victims []*session
	for _, s := range h.sessions {
		if match(s) {
			victims = append(victims, s)
		}
	}
	h.mu.Unlock()
	for _, s := range victims {
		s.close(d)
	}
	return len(victims)
}

// dispatch runs f on an idle serve worker, or on a new goroutine when none is idle.
// The new goroutine stays as a serve worker when fewer than serve_workers are: a
// request that waits (a mutation waits for its commit) keeps its worker busy, so
// under load as many are needed as requests are in flight, and a fresh goroutine
// would grow its stack again on every request.
func (h *Hub) dispatch(f func()) {
	select {
	case h.tasks <- f:
		return
	default:
	}
	stay := h.served.Add(1) <= int64(h.cfg.ServeWorkers)
	if !stay {
		h.served.Add(-1)
	}
	go func() {
		f()
		if stay {
			for f := range h.tasks {
				f()
			}
		}
	}()
}

// Shutdown refuses new sessions, closes every open one with 1001 going away and waits
// for their goroutines until ctx ends.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.closeWhere(func(*session) bool { return true }, DisconnectShutdown)
	h.closeStreams(DisconnectShutdown)
	h.cancel()
	done := make(chan struct{})
	go func() {
		h.wg.Wait() // every session has finished, so nothing dispatches any more
		h.idle.close()
		close(h.tasks)
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
