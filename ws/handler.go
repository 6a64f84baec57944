package ws

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/tenant"
	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

var writeBufferPool = &sync.Pool{}

func (h *Hub) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   h.cfg.ReadBufferSize,
		WriteBufferPool:  writeBufferPool,
		CheckOrigin:      h.checkOrigin,
	}
}

func (h *Hub) checkOrigin(r *http.Request) bool {
	if len(h.cfg.AllowedOrigins) == 0 {
		return true
	}
	origin := r.Header.Get("Origin")
	return origin == "" || slices.Contains(h.cfg.AllowedOrigins, origin)
}

// ServeHTTP upgrades GET /<tenant> to a session. The router must have put the tenant
// in the request context. A token in ?token= or an Authorization: Bearer header
// authenticates the session at once; a bad one is refused with 401 before upgrading.
// Past a connection limit the upgrade is refused with 503 and Retry-After.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := tenant.FromContext(r.Context())
	peer := &rpc.Peer{Tenant: t, Transport: "ws"}
	if tok := tokenOf(r); tok != "" {
		pr, err := h.auth.VerifyToken(r.Context(), t, tok)
		if err != nil {
			h.metrics.refused.WithLabelValues("bad_token").Inc()
			rpc.WriteHTTPError(w, err)
			return
		}
		peer.SetPrincipal(pr)
	}
	if err := h.reserve(t.PubKey); err != nil {
		w.Header().Set("Retry-After", "1")
		rpc.WriteHTTPError(w, err)
		return
	}
	a := h.admit(t.PubKey, peer.Principal())
	conn, err := h.upgrade.Upgrade(w, r, nil)
	if err != nil {
		h.forget(a)
		h.release(t.PubKey)
		return
	}
	if hook := upgradedHook.Load(); hook != nil {
		(*hook)()
	}
	if h.cfg.RequestRate > 0 {
		peer.Limiter = rate.NewLimiter(rate.Limit(h.cfg.RequestRate), h.cfg.RequestBurst)
	}
	s := h.newSession(conn, peer)
	reason, ok := h.add(s, a)
	if !ok {
		h.release(t.PubKey)
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(DisconnectShutdown.Code, DisconnectShutdown.Reason), time.Now().Add(time.Second))
		_ = conn.Close()
		return
	}
	s.start()
	if reason != nil { // its tenant was removed or its token revoked during the upgrade
		s.close(*reason)
	}
}

// upgradedHook, if set, runs between a session's upgrade and add; tests set it to
// close a tenant or revoke a token in that window.
var upgradedHook atomic.Pointer[func()]

func tokenOf(r *http.Request) string {
	if tok := r.URL.Query().Get("token"); tok != "" {
		return tok
	}
	return rpc.BearerToken(r)
}
