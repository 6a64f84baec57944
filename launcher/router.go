package launcher

import (
	"net/http"

	"github.com/circlegate/circlegate/admin"
	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/tenant"
	"github.com/circlegate/circlegate/webhooks"
	"github.com/circlegate/circlegate/ws"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func newRouter(reg *tenant.Registry, hub *ws.Hub, httpRPC *rpc.HTTP, wh *webhooks.Handler, adminAPI http.Handler, metrics *prometheus.Registry) http.Handler {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rpc.WriteHTTPError(w, errs.E(errs.NotFound, "not found"))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"error":{"code":-32600,"message":"method not allowed"}}` + "\n"))
	})
	r.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	}).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	// Webhooks, before /{tenant}: "webhooks" is not a tenant key. The service answers
	// an unknown tenant with 404 itself, and logs the delivery of a known one.
	r.HandleFunc("/webhooks/{provider:stripe|idenfy}/{tenant}", func(w http.ResponseWriter, r *http.Request) {
		v := mux.Vars(r)
		wh.Serve(w, r, webhooks.Provider(v["provider"]), v["tenant"], "")
	}).Methods(http.MethodPost)
	r.HandleFunc("/webhooks/standard/{tenant}/{name}", func(w http.ResponseWriter, r *http.Request) {
		v := mux.Vars(r)
		wh.Serve(w, r, webhooks.Standard, v["tenant"], v["name"])
	}).Methods(http.MethodPost)

	// The admin API, before /{tenant} too; it answers its own 404 and 405.
	r.PathPrefix(admin.Prefix).Handler(adminAPI)

	t := r.PathPrefix("/{tenant}").Subrouter()
	t.Use(tenantMiddleware(reg))
	t.Handle("", hub).Methods(http.MethodGet)
	t.HandleFunc("/jsonrpc", httpRPC.ServeJSONRPC).Methods(http.MethodPost)
	t.HandleFunc("/auth/nonce", httpRPC.ServeNonce).Methods(http.MethodGet)
	t.HandleFunc("/auth/token", httpRPC.ServeToken).Methods(http.MethodPost)
	t.HandleFunc("/sse", hub.ServeSSE).Methods(http.MethodGet)
	t.HandleFunc("/sse/subscription", hub.ServeSSESubscription).Methods(http.MethodPost)
	return r
}

// tenantMiddleware resolves the {tenant} path segment (any spelling of the key) and
// answers 404 before anything else runs when it is malformed or not served here.
func tenantMiddleware(reg *tenant.Registry) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t, err := reg.Lookup(mux.Vars(r)["tenant"])
			if err != nil {
				rpc.WriteHTTPError(w, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), t)))
		})
	}
}
