package rpc

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/tenant"
)

// HTTP serves JSON-RPC over HTTP (POST /<tenant>/jsonrpc) and the browser auth forms
// (GET /<tenant>/auth/nonce, POST /<tenant>/auth/token). The router must have put the
// tenant in the request context (tenant.NewContext).
type HTTP struct {
	Server *Server
	Auth   *tenant.Auth
	// MaxBodyBytes bounds a request body; larger is 413. Zero means 1 MiB.
	MaxBodyBytes int64
	// OwnerMaxBodyBytes bounds the body of a request with a tenant owner's token.
	// Zero means MaxBodyBytes.
	OwnerMaxBodyBytes int64
}

func (h *HTTP) maxBody(pr *tenant.Principal) int64 {
	if pr != nil && h.OwnerMaxBodyBytes > 0 && pr.Role() == tenant.RoleOwner {
		return h.OwnerMaxBodyBytes
	}
	if h.MaxBodyBytes > 0 {
		return h.MaxBodyBytes
	}
	return 1 << 20
}

// BearerToken returns the token of an "Authorization: Bearer" header, or "".
func BearerToken(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// ServeJSONRPC handles POST /<tenant>/jsonrpc. Without a token only public methods
// succeed; a token that does not verify is refused with 401 before anything runs.
func (h *HTTP) ServeJSONRPC(w http.ResponseWriter, r *http.Request) {
	t := tenant.FromContext(r.Context())
	peer := &Peer{Tenant: t, Transport: "http"}
	if tok := BearerToken(r); tok != "" {
		pr, err := h.Auth.VerifyToken(r.Context(), t, tok)
		if err != nil {
			writeRPCError(w, http.StatusUnauthorized, ToWire(err))
			return
		}
		peer.principal.Store(pr)
	}
	body, ok := h.readBody(w, r, h.maxBody(peer.Principal()))
	if !ok {
		return
	}
	reply := h.Server.Handle(r.Context(), peer, body)
	if reply == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(reply)
}

func (h *HTTP) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeRPCError(w, http.StatusRequestEntityTooLarge, &Error{Code: CodeInvalidRequest, Message: "invalid request: body exceeds the size limit"})
		} else {
			writeRPCError(w, http.StatusBadRequest, &Error{Code: CodeParseError, Message: "parse error: could not read body"})
		}
		return nil, false
	}
	return body, true
}

func writeRPCError(w http.ResponseWriter, status int, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": nil, "error": e})
}

// writeJSON writes v as JSON with status 200, never cached.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// WriteHTTPError writes err as the HTTP status of its kind and {"error": {code, message}}.
func WriteHTTPError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(errs.HTTPStatus(err))
	_ = json.NewEncoder(w).Encode(map[string]any{"error": ToWire(err)})
}

// ServeNonce handles GET /<tenant>/auth/nonce?pubkey=HEX -> {nonce, expiresAt}.
func (h *HTTP) ServeNonce(w http.ResponseWriter, r *http.Request) {
	t := tenant.FromContext(r.Context())
	n, err := h.Auth.FetchNonce(r.Context(), t, r.URL.Query().Get("pubkey"))
	if err != nil {
		WriteHTTPError(w, err)
		return
	}
	writeJSON(w, NonceResult{Nonce: n.Value, ExpiresAt: n.ExpiresAt.Unix()})
}

// TokenResult is the body of a successful POST /<tenant>/auth/token.
type TokenResult struct {
	Token     string      `json:"token"`
	ExpiresAt int64       `json:"expiresAt"`
	Role      tenant.Role `json:"role"`
}

// ServeToken handles POST /<tenant>/auth/token {pubkey, signature, nonce?}.
func (h *HTTP) ServeToken(w http.ResponseWriter, r *http.Request) {
	t := tenant.FromContext(r.Context())
	body, ok := h.readBody(w, r, h.maxBody(nil))
	if !ok {
		return
	}
	var p authenticateParams
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		WriteHTTPError(w, errs.Param("body", "expected {pubkey, signature, nonce?}: %v", err))
		return
	}
	pr, token, err := h.Auth.Authenticate(r.Context(), t, p.PubKey, p.Signature, p.Nonce)
	if err != nil {
		WriteHTTPError(w, err)
		return
	}
	writeJSON(w, TokenResult{Token: token, ExpiresAt: pr.ExpiresAt.Unix(), Role: pr.Role()})
}
