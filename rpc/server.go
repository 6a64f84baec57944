package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/tenant"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Config configures the dispatcher.
type Config struct {
	// MaxBatch is the most requests one batch may hold. Zero means 100.
	MaxBatch int `toml:"max_batch"`
	// CallTimeout is the deadline of one call, but for the methods marked with
	// SetSelfTimed. Zero means 30s.
	CallTimeout time.Duration `toml:"call_timeout"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.MaxBatch == 0 {
		c.MaxBatch = 100
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 30 * time.Second
	}
	return c
}

// Validate reports the first invalid field, by its config key.
func (c Config) Validate() error {
	switch {
	case c.MaxBatch < 0:
		return errs.Param("max_batch", "must not be negative")
	case c.CallTimeout < 0:
		return errs.Param("call_timeout", "must not be negative")
	}
	return nil
}

// Access says who may call a method.
type Access uint8

// The access levels.
const (
	Authenticated Access = iota // the caller must have authenticated
	Public                      // anyone who reached the tenant
)

func (a Access) String() string {
	if a == Public {
		return "public"
	}
	return "authenticated"
}

// Peer is the state of one connection (or one HTTP request) that the calls made over
// it share: the tenant it reached, and the principal once it has authenticated.
type Peer struct {
	Tenant    *tenant.Tenant
	Transport string // "ws", "http"
	// Limiter, if set, rate-limits the requests of this peer (-32005 past it).
	Limiter *rate.Limiter
	// OnAuthenticated, if set, runs after authenticate succeeds on this peer.
	OnAuthenticated func(*tenant.Principal)
	// Subscriptions, if set, is where subscribe and unsubscribe keep this peer's
	// feeds: a WebSocket session has it, an HTTP request does not.
	Subscriptions *events.Subscriptions

	principal atomic.Pointer[tenant.Principal]
}

// Principal returns the authenticated caller, or nil.
func (p *Peer) Principal() *tenant.Principal { return p.principal.Load() }

// SetPrincipal records the authenticated caller.
func (p *Peer) SetPrincipal(pr *tenant.Principal) {
	p.principal.Store(pr)
	if p.OnAuthenticated != nil {
		p.OnAuthenticated(pr)
	}
}

// Call is one method invocation handed to a handler.
type Call struct {
	Peer   *Peer
	Method string
	// Principal is the authenticated caller; nil only for public methods.
	Principal *tenant.Principal
}

type handlerFunc func(ctx context.Context, call *Call, params json.RawMessage) (any, error)

type method struct {
	spec     *MethodSpec
	access   Access
	handler  handlerFunc
	duration prometheus.Observer
	ok       prometheus.Counter // its requests that succeeded (the usual outcome)
	inline   bool               // never waits on another request's work: see SetInline
	timed    bool               // bounds its own time: see SetSelfTimed
}

// Server dispatches JSON-RPC messages to registered methods.
type Server struct {
	cfg     Config
	spec    *Spec
	methods map[string]*method
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
}

// NewServer returns a dispatcher for the methods documented in spec. Register adds
// their handlers. reg may be nil to skip metrics registration.
func NewServer(cfg Config, spec *Spec, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, spec: spec, methods: make(map[string]*method), log: log, metrics: m, now: time.Now}, nil
}

// Register adds a method. P is decoded from the call's params (by name; params by
// position are mapped to names first); a type mismatch is -32602 naming the param.
// It panics when the method is not documented, is registered twice, or its access
// differs from the document's x-auth: the contract and the code must agree.
func Register[P, R any](s *Server, name string, access Access, fn func(context.Context, *Call, P) (R, error)) {
	ms, ok := s.spec.Methods[name]
	if !ok {
		panic("rpc: method " + name + " is not in openrpc.json")
	}
	if _, dup := s.methods[name]; dup {
		panic("rpc: method " + name + " registered twice")
	}
	if ms.Auth != access.String() {
		panic(fmt.Sprintf("rpc: method %s is %s in code but x-auth %q in openrpc.json", name, access, ms.Auth))
	}
	h := func(ctx context.Context, call *Call, raw json.RawMessage) (any, error) {
		var p P
		if len(raw) > 0 {
			if fp, ok := any(&p).(fastParams); !ok || !fp.decodeFast(raw) {
				var zero P
				p = zero
				if err := json.Unmarshal(raw, &p); err != nil {
					return nil, decodeParamError(err)
				}
			}
		}
		return fn(ctx, call, p)
	}
	s.methods[name] = &method{spec: ms, access: access, handler: h, duration: s.metrics.duration.WithLabelValues(name),
		ok: s.metrics.requests.WithLabelValues(name, Outcome(nil))}
}

func decodeParamError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "params"
		}
		return errs.Param(field, "expected %s, got %s", jsonType(te.Type.Kind().String()), te.Value)
	}
	return errs.Param("params", "%v", err)
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	}
	return goKind
}

// Registered returns the names of the registered methods.
func (s *Server) Registered() []string {
	out := make([]string, 0, len(s.methods))
	for n := range s.methods {
		out = append(out, n)
	}
	return out
}

// SetInline marks methods that only compute or make one quick round trip (check a
// signature, read a nonce), so a WebSocket session may run them on its reader,
// without handing them to a serve worker: one thread wake-up less per request. A
// method that waits for other work (a commit, a job) must not be inline: it would
// hold up the session's later requests. It panics on a name not registered.
func (s *Server) SetInline(names ...string) {
	s.mark("SetInline", names, func(m *method) { m.inline = true })
}

// SetSelfTimed marks methods that bound their own time: a job's deadline
// (execution.job_timeout), the engine's time limit, the store's own timeouts, or
// no wait at all. They run under the caller's context without a call_timeout
// context of their own, which would cost each call a context, a timer and the
// registration of both with the session's context. It panics on a name not
// registered.
func (s *Server) SetSelfTimed(names ...string) {
	s.mark("SetSelfTimed", names, func(m *method) { m.timed = true })
}

// mark applies set to the named methods; it panics, naming by, on a name not
// registered.
func (s *Server) mark(by string, names []string, set func(*method)) {
	for _, name := range names {
		m, ok := s.methods[name]
		if !ok {
			panic("rpc: " + by + " of unregistered method " + name)
		}
		set(m)
	}
}

// errFound stops a scan once the member looked for is found.
var errFound = errors.New("found")

// Inline reports whether data is a single request (not a batch) to an inline
// method. It looks only for the top-level "method" member; Handle still decodes and
// checks the whole message.
func (s *Server) Inline(data []byte) bool {
	inline := false
	_ = members(data, func(key, val []byte) error {
		if !keyIs(key, "method") {
			return nil
		}
		if len(val) >= 2 && val[0] == '"' {
			if m, ok := s.methods[string(val[1:len(val)-1])]; ok {
				inline = m.inline
			}
		}
		return errFound
	})
	return inline
}

// Handle decodes one message (a request or a batch), runs it and returns the reply
// to send, or nil when nothing is to be sent (notifications only).
func (s *Server) Handle(ctx context.Context, peer *Peer, data []byte) []byte {
	data = bytes.TrimSpace(data)
	var buf bytes.Buffer
	if len(data) > 0 && data[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			s.metrics.requests.WithLabelValues("invalid", "parse_error").Inc()
			appendError(&buf, nullID, &Error{Code: CodeParseError, Message: "parse error"})
			return buf.Bytes()
		}
		if len(items) == 0 {
			appendError(&buf, nullID, invalidRequest("empty batch"))
			return buf.Bytes()
		}
		if len(items) > s.cfg.MaxBatch {
			appendError(&buf, nullID, invalidRequest(fmt.Sprintf("batch of %d exceeds the limit of %d", len(items), s.cfg.MaxBatch)))
			return buf.Bytes()
		}
		buf.WriteByte('[')
		n := 0
		for _, it := range items {
			mark := buf.Len()
			if n > 0 {
				buf.WriteByte(',')
			}
			if s.handleOne(ctx, peer, it, &buf) {
				n++
			} else {
				buf.Truncate(mark)
			}
		}
		if n == 0 {
			return nil
		}
		buf.WriteByte(']')
		return buf.Bytes()
	}
	// An object is validated by decoding it (DecodeRequest reports a syntax error as
	// -32700); anything else is checked here so that invalid JSON is -32700, not -32600.
	if (len(data) == 0 || data[0] != '{') && !json.Valid(data) {
		s.metrics.requests.WithLabelValues("invalid", "parse_error").Inc()
		appendError(&buf, nullID, &Error{Code: CodeParseError, Message: "parse error"})
		return buf.Bytes()
	}
	if !s.handleOne(ctx, peer, data, &buf) {
		return nil
	}
	return buf.Bytes()
}

// handleOne runs one request and appends its response; it reports whether it did.
func (s *Server) handleOne(ctx context.Context, peer *Peer, raw []byte, buf *bytes.Buffer) bool {
	req, replyID, werr := DecodeRequest(raw)
	if werr != nil {
		s.metrics.requests.WithLabelValues("invalid", Outcome(werr)).Inc()
		appendError(buf, replyID, werr)
		return true
	}
	result, err := s.call(ctx, peer, req)
	if req.IsNotification() {
		return false
	}
	if err != nil {
		appendError(buf, req.ID, ToWire(err))
		return true
	}
	body, merr := encodeResult(result)
	if merr != nil {
		s.log.Error("encode result", "method", req.Method, "err", merr)
		appendError(buf, req.ID, ToWire(merr))
		return true
	}
	appendResult(buf, req.ID, body)
	return true
}

// Encoded is a result that its method's own encoder made, so valid and compact JSON
// by construction (a mutation's result): the server sends it as it is, without
// json.Marshal's check and copy.
type Encoded []byte

// MarshalJSON returns e (null if empty), for an Encoded inside another value.
func (e Encoded) MarshalJSON() ([]byte, error) {
	if len(e) == 0 {
		return []byte("null"), nil
	}
	return e, nil
}

func encodeResult(result any) ([]byte, error) {
	if e, ok := result.(Encoded); ok && len(e) > 0 {
		return e, nil
	}
	return json.Marshal(result)
}

func (s *Server) call(ctx context.Context, peer *Peer, req *Request) (result any, err error) {
	m, ok := s.methods[req.Method]
	if !ok {
		s.metrics.requests.WithLabelValues("unknown", "method_not_found").Inc()
		return nil, &Error{Code: CodeMethodNotFound, Message: "method not found: " + truncate(req.Method, 64)}
	}
	start := s.now()
	defer func() {
		m.duration.Observe(time.Since(start).Seconds())
		if err == nil {
			m.ok.Inc()
			return
		}
		s.metrics.requests.WithLabelValues(m.spec.Name, Outcome(err)).Inc()
	}()
	if peer.Limiter != nil && !peer.Limiter.Allow() {
		return nil, errs.E(errs.RateLimited, "request rate limit exceeded")
	}
	call := &Call{Peer: peer, Method: m.spec.Name, Principal: peer.Principal()}
	if m.access != Public {
		if call.Principal == nil {
			return nil, errs.E(errs.Unauthenticated, "authentication required: call fetch_nonce and authenticate first")
		}
		if call.Principal.Expired(start) {
			return nil, errs.E(errs.Unauthenticated, "authentication expired: authenticate again")
		}
	}
	params, perr := m.spec.normalizeParams(req.Params)
	if perr != nil {
		return nil, perr
	}
	if !m.timed {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.CallTimeout)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in method", "method", m.spec.Name, "panic", r, "stack", string(debug.Stack()))
			result, err = nil, errs.E(errs.Internal, "panic")
		}
	}()
	result, err = m.handler(ctx, call, params)
	if err != nil && errs.KindOf(err) == errs.Internal {
		if _, wire := err.(*Error); !wire {
			s.log.Error("method failed", "method", m.spec.Name, "err", err)
		}
	}
	return result, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
