package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/tenant"
	"github.com/prometheus/client_golang/prometheus"
)

// Service is the one implementation of webhook delivery and of the webhook
// configuration the owner methods change; the HTTP handler and the JSON-RPC methods
// are thin wrappers over it.
type Service struct {
	cfg     Config
	tenants *tenant.Registry
	store   store.Store
	exec    *execution.Service
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	started time.Time

	static     map[string][]secretRecord // tenant -> secrets of the config file
	deliveries deliveryLog
	cache      configCache // each tenant's secrets and routes
}

// NewService wires the service. reg may be nil.
func NewService(cfg Config, tenants *tenant.Registry, st store.Store, exec *execution.Service, log *slog.Logger, reg prometheus.Registerer) (*Service, error) {
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
	s := &Service{
		cfg: cfg, tenants: tenants, store: st, exec: exec, log: log, metrics: m,
		now: time.Now, started: time.Now().UTC(), static: make(map[string][]secretRecord),
	}
	s.deliveries.s = s
	s.cache.ttl = cfg.CacheTTL
	return s, nil
}

// Config returns the configuration with defaults applied.
func (s *Service) Config() Config { return s.cfg }

// Request is one webhook request as the HTTP handler received it.
type Request struct {
	Provider Provider
	// TenantKey is the tenant path segment, any spelling of the key.
	TenantKey string
	// Name is the endpoint name (standard only).
	Name   string
	Header http.Header
	// Body is read up to the body limit.
	Body io.Reader
	// ContentLength is the body's declared length, -1 or 0 when unknown; only a
	// buffer size hint.
	ContentLength int64
}

// Response is what to answer a webhook request.
type Response struct {
	Status     int    `json:"-"`
	Outcome    string `json:"outcome"`
	DeliveryID string `json:"deliveryId,omitempty"`
	EventID    string `json:"eventId,omitempty"`
	EventType  string `json:"type,omitempty"`
	Duplicate  bool   `json:"duplicate"`
	// Result is the mutation's result (MutateResult); for a duplicate, the first one.
	Result json.RawMessage `json:"result,omitempty"`
	// Err is why a request was refused or failed (Status >= 400); client-safe.
	Err error `json:"-"`
}

// Deliver verifies, routes and applies one webhook request and logs it. It returns
// 2xx only once the mutation has committed (or had committed before: a duplicate);
// for every other status nothing ran.
func (s *Service) Deliver(ctx context.Context, req Request) Response {
	start := time.Now()
	resp := s.deliver(ctx, req)
	s.metrics.observe(req.Provider, resp.Outcome, time.Since(start))
	return resp
}

func (s *Service) deliver(ctx context.Context, req Request) Response {
	t, err := s.tenants.Lookup(req.TenantKey)
	if err != nil {
		return Response{Status: http.StatusNotFound, Outcome: OutcomeUnknownTenant, Err: err}
	}
	// Once the tenant is known the delivery is logged, and it completes even if the
	// sender hangs up: the mutation's own deadline bounds it.
	ctx = context.WithoutCancel(ctx)
	now := s.now().UTC()
	d := &Delivery{ID: newTimeID(now), ReceivedAt: now, Provider: req.Provider, Name: logName(req.Name)}
	resp := s.run(ctx, t.PubKey, req, d)
	resp.DeliveryID = d.ID
	d.Outcome, d.Status = resp.Outcome, resp.Status
	if resp.Err != nil {
		d.Error = publicMessage(resp.Err)
		if resp.Outcome == OutcomeError {
			s.log.Error("webhook delivery failed", "tenant", t.PubKey, "provider", req.Provider, "delivery_id", d.ID, "err", resp.Err)
		}
	}
	s.deliveries.write(ctx, t.PubKey, d)
	return resp
}

// logName is an endpoint name as the delivery log keeps it: the path segment is the
// sender's, so it is cut to 64 bytes of valid UTF-8.
func logName(name string) string {
	if len(name) > 64 {
		name = name[:64]
	}
	return strings.ToValidUTF8(name, "?")
}

// publicMessage is the text of an error that the sender and the owner may see: a
// rejection's message, or the wire message of an error (no internal text).
func publicMessage(err error) string {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Message
	}
	return rpc.ToWire(err).Message
}

// run does the work of a delivery of a known tenant and fills d as it goes.
func (s *Service) run(ctx context.Context, tenant string, req Request, d *Delivery) Response {
	ev, rejected := s.verify(ctx, tenant, req, d)
	if rejected != nil {
		return *rejected
	}
	d.Verified, d.EventID, d.EventType = true, ev.ID, ev.Type
	resp := Response{EventID: ev.ID, EventType: ev.Type}
	tc, err := s.config(ctx, tenant)
	if err != nil {
		return failed(resp, err)
	}
	route, ok := matchRoute(tc.routes, req.Provider, req.Name, ev.Type)
	if !ok {
		resp.Status, resp.Outcome = http.StatusAccepted, OutcomeNoRoute
		return resp
	}
	d.RouteID, d.ContextID, d.Method = route.ID, route.ContextID, route.Method
	a, err := s.apply(ctx, tenant, req, route, ev)
	if err != nil {
		return failed(resp, err)
	}
	d.JobID, d.TxID, d.Duplicate = a.JobID, a.TxID, a.Replayed
	resp.Status, resp.Outcome, resp.Result, resp.Duplicate = http.StatusOK, OutcomeApplied, a.Result, a.Replayed
	if a.Replayed {
		resp.Outcome = OutcomeDuplicate
	}
	return resp
}

// verify reads the body and checks the signature; on failure it returns the response.
func (s *Service) verify(ctx context.Context, tenant string, req Request, d *Delivery) (Event, *Response) {
	refuse := func(err error) (Event, *Response) {
		var r *Rejection
		if errors.As(err, &r) {
			status := http.StatusBadRequest
			if r.Outcome == OutcomeTooLarge {
				status = http.StatusRequestEntityTooLarge
			}
			return Event{}, &Response{Status: status, Outcome: r.Outcome, Err: r}
		}
		resp := failed(Response{}, err)
		return Event{}, &resp
	}
	if req.Provider == Standard && !namePattern.MatchString(req.Name) {
		return refuse(reject(OutcomeBadSignature, "no such endpoint: a name is 1 to 64 letters, digits, '.', '_' or '-'"))
	}
	if err := signaturePresent(req); err != nil {
		return refuse(err)
	}
	body, err := readBody(req, s.cfg.MaxBodyBytes)
	if err != nil {
		return refuse(reject(OutcomeBadPayload, "could not read the body"))
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return refuse(reject(OutcomeTooLarge, "the body exceeds %d bytes (webhooks.max_body_bytes)", s.cfg.MaxBodyBytes))
	}
	tc, err := s.config(ctx, tenant)
	if err != nil {
		return refuse(err)
	}
	secrets := secretValues(tc.secrets, req.Provider, req.Name)
	now := s.now()
	var ev Event
	switch req.Provider {
	case Stripe:
		ev, err = VerifyStripe(body, req.Header.Get(StripeSignatureHeader), secrets, s.cfg.Stripe, now)
	case Idenfy:
		ev, err = VerifyIdenfy(body, req.Header.Get(IdenfySignatureHeader), secrets)
	case Standard:
		ev, err = VerifyStandard(body, req.Header, secrets, s.cfg.Standard.Tolerance, now)
	default:
		err = reject(OutcomeBadSignature, "unknown provider")
	}
	if err != nil {
		// A signature that verified before the payload failed still counts as verified.
		var r *Rejection
		d.Verified = errors.As(err, &r) && r.Outcome == OutcomeBadPayload
		return refuse(err)
	}
	return ev, nil
}

// readBody reads up to limit+1 bytes of the body, into a buffer sized from the
// Content-Length when the sender gave one.
func readBody(req Request, limit int64) ([]byte, error) {
	size := int64(512)
	if req.ContentLength > 0 {
		size += min(req.ContentLength, limit)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(io.LimitReader(req.Body, limit+1))
	return buf.Bytes(), err
}

// signaturePresent refuses a request without its provider's signature header before
// its body is read.
func signaturePresent(req Request) error {
	var names []string
	switch req.Provider {
	case Stripe:
		names = []string{StripeSignatureHeader}
	case Idenfy:
		names = []string{IdenfySignatureHeader}
	case Standard:
		names = []string{StandardIDHeader, StandardTimestampHeader, StandardSignatureHeader}
	}
	for _, n := range names {
		if req.Header.Get(n) == "" {
			return reject(OutcomeBadSignature, "missing %s header", n)
		}
	}
	return nil
}

// idempotencyKey is the mutation's idempotency key: "<provider>:<eventId>", and for
// Standard Webhooks "standard:<name>:<eventId>", since two senders' ids may collide.
func idempotencyKey(p Provider, name, eventID string) string {
	if p == Standard {
		return string(p) + ":" + name + ":" + eventID
	}
	return string(p) + ":" + eventID
}

// apply runs the route's mutation once per event. MutateOnce tells a first
// application from a replay wherever the event arrived first (this process, another
// gateway of a fleet, before a restart), so that exactly one delivery of an event
// reports "applied" and every other one "duplicate" with the first result.
func (s *Service) apply(ctx context.Context, tenant string, req Request, route Route, ev Event) (execution.Applied, error) {
	key := idempotencyKey(req.Provider, req.Name, ev.ID)
	args, err := ev.args()
	if err != nil {
		return execution.Applied{}, errs.Wrap(errs.Internal, err, "encode event")
	}
	a, err := s.exec.MutateOnce(ctx, tenant, ownerCaller(tenant), route.ContextID, route.Method, args, key)
	if errs.Is(err, errs.Conflict) {
		// The key was applied with other args (the provider changed the payload, as
		// Stripe's pending_webhooks, or the route's method changed): a duplicate.
		if first, found, ferr := s.exec.AppliedKey(ctx, tenant, route.ContextID, key); ferr == nil && found {
			return first, nil
		}
	}
	return a, err
}

// failed turns the error of a verified delivery's mutation into a response: 503 for
// an overloaded queue or a job past its deadline, 500 for an internal error, 422 for
// the rest (the app failed, the route's context is gone).
func failed(resp Response, err error) Response {
	resp.Err = err
	switch {
	case errs.Is(err, errs.Overloaded) || errors.Is(err, context.DeadlineExceeded):
		resp.Status, resp.Outcome = http.StatusServiceUnavailable, OutcomeOverloaded
	case errs.KindOf(err) == errs.Internal:
		resp.Status, resp.Outcome = http.StatusInternalServerError, OutcomeError
	default:
		resp.Status, resp.Outcome = http.StatusUnprocessableEntity, OutcomeFailed
	}
	return resp
}
