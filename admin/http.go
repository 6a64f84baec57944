package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/tenant"
)

// Prefix is the path every admin route starts with.
const Prefix = "/admin-api"

// maxJSONBytes bounds a JSON request body.
const maxJSONBytes = 1 << 20

// Scope says who may call a route.
type Scope string

// The scopes.
const (
	// ScopePublic routes need no token. GET /admin-api/did shows more to a root.
	ScopePublic Scope = "public"
	// ScopeRoot routes need the token of a root key (a node login).
	ScopeRoot Scope = "root"
	// ScopeOwner routes need an owner token of the tenant in the path, or a root's.
	ScopeOwner Scope = "owner"
)

// Route is one route of the admin API.
type Route struct {
	Method string
	// Path is a gorilla/mux template: /admin-api/tenants/{tenant}/contexts.
	Path  string
	Scope Scope
}

// Caller is who calls a protected route.
type Caller struct {
	Principal *tenant.Principal
	// Root is set for a root key's node login.
	Root bool
}

// exec is the execution layer's view of a caller authorized as owner.
func (c *Caller) exec() execution.Caller {
	return execution.Caller{PubKey: c.Principal.PubKey, Owner: true}
}

// request is one call of a route handler.
type request struct {
	*http.Request
	w      http.ResponseWriter
	caller *Caller        // nil on public routes
	tenant *tenant.Tenant // the {tenant} of an owner route
}

func (r *request) vars(name string) string { return mux.Vars(r.Request)[name] }

type handlerFunc func(ctx context.Context, r *request) (any, error)

// created marks a result that made something new: 201.
type created struct{ v any }

// statusError is an error answered with a status of its own (413).
type statusError struct {
	status int
	wire   *rpc.Error
}

func (e *statusError) Error() string { return e.wire.Message }

var errTooLarge = &statusError{http.StatusRequestEntityTooLarge, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: "invalid request: body exceeds the size limit"}}

// Handler serves the admin API. Make one with NewHandler.
type Handler struct {
	svc      *Service
	router   *mux.Router
	requests *prometheus.CounterVec
}

type route struct {
	Route
	fn handlerFunc
}

// NewHandler returns the handler of every route under /admin-api. reg may be nil.
func NewHandler(svc *Service, reg prometheus.Registerer) (*Handler, error) {
	h := &Handler{
		svc: svc, router: mux.NewRouter(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "circlegate", Name: "admin_requests_total",
			Help: "Admin API requests by route and HTTP status.",
		}, []string{"route", "status"}),
	}
	if reg != nil {
		if err := reg.Register(h.requests); err != nil {
			return nil, err
		}
	}
	h.router.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rpc.WriteHTTPError(w, errs.E(errs.NotFound, "no such admin route"))
	})
	h.router.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &statusError{http.StatusMethodNotAllowed, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: "method not allowed"}})
	})
	for _, rt := range h.table() {
		h.router.Handle(rt.Path, h.serve(rt)).Methods(rt.Method)
	}
	return h, nil
}

// Routes lists every route of the admin API.
func Routes() []Route {
	var out []Route
	for _, rt := range (*Handler)(nil).table() {
		out = append(out, rt.Route)
	}
	return out
}

// ServeHTTP serves the routes under /admin-api.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.router.ServeHTTP(w, r) }

// serve authorizes a call of rt, runs it and writes its result or error.
func (h *Handler) serve(rt route) http.Handler {
	label := rt.Method + " " + rt.Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() { h.requests.WithLabelValues(label, strconv.Itoa(sw.status)).Inc() }()
		req := &request{Request: r, w: sw}
		if err := h.authorize(r.Context(), rt.Scope, req); err != nil {
			writeError(sw, err)
			return
		}
		v, err := rt.fn(r.Context(), req)
		if err != nil {
			if errs.KindOf(err) == errs.Internal && !errors.As(err, new(*statusError)) {
				h.svc.log.Error("admin request failed", "route", label, "err", err)
			}
			writeError(sw, err)
			return
		}
		status := http.StatusOK
		if c, ok := v.(created); ok {
			status, v = http.StatusCreated, c.v
		}
		writeData(sw, status, v)
	})
}

// authorize checks the caller against a route's scope and fills req.caller and
// req.tenant.
func (h *Handler) authorize(ctx context.Context, scope Scope, req *request) error {
	if scope == ScopePublic {
		return nil
	}
	c, err := h.authenticate(ctx, req.Request)
	if err != nil {
		return err
	}
	req.caller = c
	switch scope {
	case ScopeRoot:
		if !c.Root {
			return errs.E(errs.Forbidden, "only a root key of this node may do this")
		}
	case ScopeOwner:
		t, err := h.ownedTenant(c, req.vars("tenant"))
		if err != nil {
			return err
		}
		req.tenant = t
	}
	return nil
}

// authenticate verifies the bearer token: a node login (of a root key) or a login to
// a tenant served here.
func (h *Handler) authenticate(ctx context.Context, r *http.Request) (*Caller, error) {
	tok := rpc.BearerToken(r)
	if tok == "" {
		return nil, errs.E(errs.Unauthenticated, "authentication required: send Authorization: Bearer <token> (from POST /admin-api/add-client-key)")
	}
	claims, err := h.svc.deps.Auth.VerifyAny(ctx, tok)
	if err != nil {
		return nil, err
	}
	if claims.Tenant == h.svc.nodePK {
		return &Caller{Principal: tenant.NewPrincipal(h.svc.nodeTenant(), claims), Root: h.svc.IsRoot(claims.PubKey)}, nil
	}
	t, ok := h.svc.deps.Registry.Get(claims.Tenant)
	if !ok {
		return nil, errs.E(errs.InvalidCredentials, "token of a tenant that is not served here")
	}
	return &Caller{Principal: tenant.NewPrincipal(t, claims)}, nil
}

// ownedTenant returns the tenant of the path if the caller is a root or an owner of
// it with a token of that tenant. To anyone else every tenant, served or not, is 403,
// so the answer tells nothing about other tenants.
func (h *Handler) ownedTenant(c *Caller, key string) (*tenant.Tenant, error) {
	if c.Root {
		return h.svc.deps.Registry.Lookup(key)
	}
	pk, err := tenant.NormalizePubKey(key)
	if err != nil || pk != c.Principal.Tenant.PubKey {
		return nil, errs.E(errs.Forbidden, "this token is not for tenant %.66s", key)
	}
	t := c.Principal.Tenant
	if !t.IsOwner(c.Principal.PubKey) {
		return nil, errs.E(errs.Forbidden, "only an owner of the tenant may do this; this key is a %s", t.Role(c.Principal.PubKey))
	}
	return t, nil
}

// decodeBody decodes a JSON object body into v, refusing unknown fields.
func decodeBody(r *request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(r.w, r.Body, maxJSONBytes))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return errTooLarge
		}
		return errs.Param("body", "could not read the body")
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return errs.Param("body", "must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errs.Param(te.Field, "wrong type: got a JSON %s", te.Value)
		}
		return errs.Param("body", "%s", jsonMessage(err))
	}
	if dec.More() {
		return errs.Param("body", "more than one JSON value")
	}
	return nil
}

// jsonMessage returns a decoding error's text without the "json: " prefix.
func jsonMessage(err error) string {
	s := err.Error()
	if len(s) > 6 && s[:6] == "json: " {
		s = s[6:]
	}
	return s
}

// queryInt reads an optional integer query parameter.
func queryInt(r *request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errs.Param(name, "%q is not an integer", v)
	}
	return n, nil
}

// writeData writes {"data": v} with status.
func writeData(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(map[string]any{"data": v})
	if err != nil {
		rpc.WriteHTTPError(w, fmt.Errorf("encode admin result: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError writes {"error": {code, message, data?}} with the error's status.
func writeError(w http.ResponseWriter, err error) {
	var se *statusError
	if errors.As(err, &se) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(se.status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": se.wire})
		return
	}
	rpc.WriteHTTPError(w, err)
}

// statusWriter remembers the status written, for the metric.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
