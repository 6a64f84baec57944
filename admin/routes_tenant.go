package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/rpc"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/webhooks"
)

// The tenant routes are thin: they decode, call execution.Service or webhooks.Service
// (the services JSON-RPC calls) as the tenant's owner, and encode.

func (h *Handler) exec() *execution.Service { return h.svc.deps.Exec }

func (h *Handler) hooks() *webhooks.Service { return h.svc.deps.Webhooks }

func (h *Handler) listApps(ctx context.Context, r *request) (any, error) {
	apps, err := h.exec().ListApps(ctx, r.tenant.PubKey, r.caller.exec())
	if apps == nil {
		apps = []store.App{}
	}
	return apps, err
}

func (h *Handler) installApp(ctx context.Context, r *request) (any, error) {
	wasm, name, version, err := h.readModule(r)
	if err != nil {
		return nil, err
	}
	return h.exec().InstallApp(ctx, r.tenant.PubKey, r.caller.exec(), wasm, name, version)
}

func (h *Handler) getApp(ctx context.Context, r *request) (any, error) {
	return h.exec().GetApp(ctx, r.tenant.PubKey, r.caller.exec(), r.vars("appId"))
}

func (h *Handler) uninstallApp(ctx context.Context, r *request) (any, error) {
	id := r.vars("appId")
	if err := h.exec().UninstallApp(ctx, r.tenant.PubKey, r.caller.exec(), id); err != nil {
		return nil, err
	}
	return map[string]any{"appId": id, "deleted": true}, nil
}

// multipartOverhead is what a multipart body may hold beyond the module: boundaries,
// part headers, name and version.
const multipartOverhead = 64 << 10

// maxFieldBytes bounds the name and version parts of a multipart install.
const maxFieldBytes = 256

// readModule reads the module of an install: the raw body (Content-Type
// application/wasm or application/octet-stream, or none), with name and version in
// the query, or a multipart/form-data body with the parts wasm, name and version.
func (h *Handler) readModule(r *request) (wasm []byte, name, version string, err error) {
	limit := int64(h.exec().Config().MaxAppBytes)
	q := r.URL.Query()
	name, version = q.Get("name"), q.Get("version")
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		if params["boundary"] == "" {
			return nil, "", "", errs.Param("body", "multipart/form-data without a boundary")
		}
		mr := multipart.NewReader(http.MaxBytesReader(r.w, r.Body, limit+multipartOverhead), params["boundary"])
		wasm, name, version, err = readParts(mr, limit, name, version)
	case "", "application/wasm", "application/octet-stream":
		wasm, err = readLimited(http.MaxBytesReader(r.w, r.Body, limit), limit)
	default:
		err = errs.Param("body", "send the module as the raw body (Content-Type: application/wasm) or as the part wasm of a multipart/form-data body, not %s", ct)
	}
	if err != nil {
		return nil, "", "", err
	}
	return wasm, name, version, nil
}

// readParts reads the parts of a multipart install.
func readParts(mr *multipart.Reader, limit int64, name, version string) (wasm []byte, _, _ string, err error) {
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.As(err, new(*http.MaxBytesError)) {
				return nil, "", "", errTooLarge
			}
			return nil, "", "", errs.Param("body", "malformed multipart body")
		}
		switch part.FormName() {
		case "wasm":
			if wasm != nil {
				return nil, "", "", errs.Param("wasm", "more than one wasm part")
			}
			if wasm, err = readLimited(part, limit); err != nil {
				return nil, "", "", err
			}
			if wasm == nil {
				wasm = []byte{}
			}
		case "name", "version":
			b, err := readLimited(part, maxFieldBytes)
			if err != nil {
				return nil, "", "", errs.Param(part.FormName(), "at most %d bytes", maxFieldBytes)
			}
			if part.FormName() == "name" {
				name = string(b)
			} else {
				version = string(b)
			}
		default:
			return nil, "", "", errs.Param("body", "unknown part %.64q: the parts are wasm, name and version", part.FormName())
		}
	}
	if wasm == nil {
		return nil, "", "", errs.Param("wasm", "the multipart body has no wasm part")
	}
	return wasm, name, version, nil
}

// readLimited reads at most limit bytes; more is errTooLarge.
func readLimited(rd io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return nil, errTooLarge
		}
		return nil, errs.Param("body", "could not read the body")
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

func (h *Handler) listContexts(ctx context.Context, r *request) (any, error) {
	list, err := h.exec().ListContexts(ctx, r.tenant.PubKey, r.caller.exec())
	if list == nil {
		list = []store.Context{}
	}
	return list, err
}

func (h *Handler) createContext(ctx context.Context, r *request) (any, error) {
	var p struct {
		AppID   string          `json:"appId"`
		Init    json.RawMessage `json:"init"`
		Members []string        `json:"members"`
		Public  bool            `json:"public"`
	}
	if err := decodeBody(r, &p); err != nil {
		return nil, err
	}
	if p.AppID == "" {
		return nil, errs.Param("appId", "required")
	}
	members, err := rpc.NormalizeKeys("members", p.Members)
	if err != nil {
		return nil, err
	}
	c, err := h.exec().CreateContext(ctx, r.tenant.PubKey, r.caller.exec(), p.AppID,
		execution.CreateOptions{Init: p.Init, Members: members, Public: p.Public})
	if err != nil {
		return nil, err
	}
	return created{c}, nil
}

func (h *Handler) getContext(ctx context.Context, r *request) (any, error) {
	return h.exec().GetContext(ctx, r.tenant.PubKey, r.caller.exec(), r.vars("contextId"))
}

func (h *Handler) deleteContext(ctx context.Context, r *request) (any, error) {
	id := r.vars("contextId")
	if err := h.exec().DeleteContext(ctx, r.tenant.PubKey, r.caller.exec(), id); err != nil {
		return nil, err
	}
	return map[string]any{"contextId": id, "deleted": true}, nil
}

// User is a key with a standing in a context.
type User struct {
	PubKey string `json:"pubkey"`
	// Role is owner (the tenant key and its admins) or member.
	Role string `json:"role"`
}

// ContextUsers is the answer of GET .../contexts/<id>/users.
type ContextUsers struct {
	ContextID string `json:"contextId"`
	// CreatedBy is the key that created the context.
	CreatedBy string `json:"createdBy"`
	// Public contexts may be read by any authenticated key of the tenant.
	Public bool   `json:"public"`
	Users  []User `json:"users"`
}

func (h *Handler) contextUsers(ctx context.Context, r *request) (any, error) {
	meta, err := h.exec().GetContext(ctx, r.tenant.PubKey, r.caller.exec(), r.vars("contextId"))
	if err != nil {
		return nil, err
	}
	out := ContextUsers{ContextID: meta.ID, CreatedBy: meta.Owner, Public: meta.Public, Users: []User{{r.tenant.PubKey, "owner"}}}
	for _, a := range r.tenant.Admins {
		out.Users = append(out.Users, User{a, "owner"})
	}
	for _, m := range meta.Members {
		if !slices.ContainsFunc(out.Users, func(u User) bool { return u.PubKey == m }) {
			out.Users = append(out.Users, User{m, "member"})
		}
	}
	return out, nil
}

func (h *Handler) contextClientKeys(ctx context.Context, r *request) (any, error) {
	meta, err := h.exec().GetContext(ctx, r.tenant.PubKey, r.caller.exec(), r.vars("contextId"))
	if err != nil {
		return nil, err
	}
	return h.svc.ContextClientKeys(ctx, r.tenant, meta)
}

func (h *Handler) contextStorage(ctx context.Context, r *request) (any, error) {
	return h.exec().Storage(ctx, r.tenant.PubKey, r.caller.exec(), r.vars("contextId"))
}

// WebhookConfig is the answer of GET .../webhooks: the tenant's webhook secrets
// (never their values) and routes.
type WebhookConfig struct {
	Secrets []webhooks.SecretInfo `json:"secrets"`
	Routes  []webhooks.Route      `json:"routes"`
}

func (h *Handler) webhookConfig(ctx context.Context, r *request) (any, error) {
	secrets, err := h.secretList(ctx, r.tenant.PubKey)
	if err != nil {
		return nil, err
	}
	routes, err := h.routeList(ctx, r.tenant.PubKey)
	return WebhookConfig{Secrets: secrets, Routes: routes}, err
}

func (h *Handler) webhookSecrets(ctx context.Context, r *request) (any, error) {
	return h.secretList(ctx, r.tenant.PubKey)
}

func (h *Handler) webhookRoutes(ctx context.Context, r *request) (any, error) {
	return h.routeList(ctx, r.tenant.PubKey)
}

func (h *Handler) secretList(ctx context.Context, t string) ([]webhooks.SecretInfo, error) {
	list, err := h.hooks().ListSecrets(ctx, t)
	if list == nil {
		list = []webhooks.SecretInfo{}
	}
	return list, err
}

func (h *Handler) routeList(ctx context.Context, t string) ([]webhooks.Route, error) {
	list, err := h.hooks().ListRoutes(ctx, t)
	if list == nil {
		list = []webhooks.Route{}
	}
	return list, err
}

func (h *Handler) webhookDeliveries(ctx context.Context, r *request) (any, error) {
	limit, err := queryInt(r, "limit")
	if err != nil {
		return nil, err
	}
	list, next, err := h.hooks().Deliveries(ctx, r.tenant.PubKey, limit, r.URL.Query().Get("before"))
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []webhooks.Delivery{}
	}
	return webhooks.DeliveryList{Deliveries: list, Next: next}, nil
}
