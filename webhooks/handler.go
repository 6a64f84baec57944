package webhooks

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/circlegate/circlegate/rpc"
)

// Handler serves the webhook endpoints: POST /webhooks/stripe/<tenant>,
// POST /webhooks/idenfy/<tenant> and POST /webhooks/standard/<tenant>/<name>.
type Handler struct {
	Service *Service
}

// Serve answers one webhook request; the router takes the provider, the tenant key and
// the endpoint name from the path. The reply is JSON: {outcome, deliveryId, eventId,
// type, duplicate, result} for 200 and 202, {"error": {code, message, data: {outcome,
// deliveryId}}} otherwise, with Retry-After on 503.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, p Provider, tenantKey, name string) {
	resp := h.Service.Deliver(r.Context(), Request{
		Provider: p, TenantKey: tenantKey, Name: name, Header: r.Header, Body: r.Body, ContentLength: r.ContentLength,
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if resp.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(resp.Status)
	if resp.Err == nil {
		_ = json.NewEncoder(w).Encode(resp)
		return
	}
	e := *wireError(resp.Err) // a copy: ToWire may return a shared error
	e.Data = map[string]string{"outcome": resp.Outcome, "deliveryId": resp.DeliveryID}
	if resp.DeliveryID == "" {
		e.Data = map[string]string{"outcome": resp.Outcome}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

// wireError maps a refusal or failure to its JSON-RPC-style error object: a bad
// signature or timestamp is -32002, a bad payload -32602, a body too large -32600, and
// anything else what rpc.ToWire makes of it.
func wireError(err error) *rpc.Error {
	var r *Rejection
	if !errors.As(err, &r) {
		return rpc.ToWire(err)
	}
	code := rpc.CodeInvalidParams
	switch r.Outcome {
	case OutcomeBadSignature, OutcomeBadTimestamp:
		code = rpc.CodeInvalidCredentials
	case OutcomeTooLarge:
		code = rpc.CodeInvalidRequest
	}
	return &rpc.Error{Code: code, Message: r.Message}
}
