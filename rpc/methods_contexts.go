package rpc

import (
	"context"
	"encoding/base64"
	"encoding/json"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/tenant"
)

// caller is the execution layer's view of the call's principal.
func caller(c *Call) execution.Caller { return CallerOf(c.Principal) }

// CallerOf is the execution layer's view of an authenticated principal.
func CallerOf(pr *tenant.Principal) execution.Caller {
	return execution.Caller{PubKey: pr.PubKey, Owner: pr.Tenant.IsOwner(pr.PubKey)}
}

func tenantOf(c *Call) string { return c.Peer.Tenant.PubKey }

func decodeBase64(param, s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return nil, errs.Param(param, "must be base64")
		}
	}
	return b, nil
}

// NormalizeKeys normalizes the public keys of a param (context members, ...); a
// malformed one is errs.InvalidParams naming param.
func NormalizeKeys(param string, keys []string) ([]string, error) {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		n, err := tenant.NormalizePubKey(k)
		if err != nil {
			return nil, errs.Param(param, "%q is not a secp256k1 public key", k)
		}
		out = append(out, n)
	}
	return out, nil
}

type appInstallParams struct {
	Wasm    string `json:"wasm"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

type appIDParams struct {
	AppID string `json:"appId"`
}

type contextIDParams struct {
	ContextID string `json:"contextId"`
}

type contextCreateParams struct {
	AppID   string          `json:"appId"`
	Init    json.RawMessage `json:"init"`
	Members []string        `json:"members"`
	Public  bool            `json:"public"`
}

type membersParams struct {
	ContextID string   `json:"contextId"`
	PubKeys   []string `json:"pubkeys"`
}

type queryParams struct {
	ContextID string          `json:"contextId"`
	Method    string          `json:"method"`
	Args      json.RawMessage `json:"args"`
}

type mutateParams struct {
	ContextID      string          `json:"contextId"`
	Method         string          `json:"method"`
	Args           json.RawMessage `json:"args"`
	IdempotencyKey string          `json:"idempotencyKey"`
}

type playParams struct {
	Script    string          `json:"script"`
	ContextID string          `json:"contextId"`
	Entry     string          `json:"entry"`
	Args      json.RawMessage `json:"args"`
}

// AppList is the result of app.list.
type AppList struct {
	Apps []store.App `json:"apps"`
}

// ContextList is the result of context.list.
type ContextList struct {
	Contexts []store.Context `json:"contexts"`
}

// Done is the result of a method that only succeeds or fails.
type Done struct {
	OK bool `json:"ok"`
}

// OutputResult is the result of query.
type OutputResult struct {
	Output json.RawMessage `json:"output"`
}

// RegisterApps adds app.*, context.*, query, mutate, play and job.get.
func RegisterApps(s *Server, svc *execution.Service) {
	Register(s, "app.install", Authenticated, func(ctx context.Context, c *Call, p appInstallParams) (store.App, error) {
		wasm, err := decodeBase64("wasm", p.Wasm)
		if err != nil {
			return store.App{}, err
		}
		return svc.InstallApp(ctx, tenantOf(c), caller(c), wasm, p.Name, p.Version)
	})
	Register(s, "app.list", Authenticated, func(ctx context.Context, c *Call, _ noParams) (AppList, error) {
		apps, err := svc.ListApps(ctx, tenantOf(c), caller(c))
		return AppList{Apps: apps}, err
	})
	Register(s, "app.get", Authenticated, func(ctx context.Context, c *Call, p appIDParams) (store.App, error) {
		return svc.GetApp(ctx, tenantOf(c), caller(c), p.AppID)
	})
	Register(s, "app.uninstall", Authenticated, func(ctx context.Context, c *Call, p appIDParams) (Done, error) {
		return Done{OK: true}, svc.UninstallApp(ctx, tenantOf(c), caller(c), p.AppID)
	})
	Register(s, "context.create", Authenticated, func(ctx context.Context, c *Call, p contextCreateParams) (store.Context, error) {
		members, err := NormalizeKeys("members", p.Members)
		if err != nil {
			return store.Context{}, err
		}
		return svc.CreateContext(ctx, tenantOf(c), caller(c), p.AppID, execution.CreateOptions{Init: p.Init, Members: members, Public: p.Public})
	})
	Register(s, "context.list", Authenticated, func(ctx context.Context, c *Call, _ noParams) (ContextList, error) {
		list, err := svc.ListContexts(ctx, tenantOf(c), caller(c))
		return ContextList{Contexts: list}, err
	})
	Register(s, "context.get", Authenticated, func(ctx context.Context, c *Call, p contextIDParams) (store.Context, error) {
		return svc.GetContext(ctx, tenantOf(c), caller(c), p.ContextID)
	})
	Register(s, "context.delete", Authenticated, func(ctx context.Context, c *Call, p contextIDParams) (Done, error) {
		return Done{OK: true}, svc.DeleteContext(ctx, tenantOf(c), caller(c), p.ContextID)
	})
	members := func(add bool) func(context.Context, *Call, membersParams) (store.Context, error) {
		return func(ctx context.Context, c *Call, p membersParams) (store.Context, error) {
			keys, err := NormalizeKeys("pubkeys", p.PubKeys)
			if err != nil {
				return store.Context{}, err
			}
			if add {
				return svc.UpdateMembers(ctx, tenantOf(c), caller(c), p.ContextID, keys, nil)
			}
			return svc.UpdateMembers(ctx, tenantOf(c), caller(c), p.ContextID, nil, keys)
		}
	}
	Register(s, "context.members.add", Authenticated, members(true))
	Register(s, "context.members.remove", Authenticated, members(false))
	Register(s, "context.storage", Authenticated, func(ctx context.Context, c *Call, p contextIDParams) (execution.StorageInfo, error) {
		return svc.Storage(ctx, tenantOf(c), caller(c), p.ContextID)
	})
	Register(s, "query", Authenticated, func(ctx context.Context, c *Call, p queryParams) (OutputResult, error) {
		out, err := svc.Query(ctx, tenantOf(c), caller(c), p.ContextID, p.Method, p.Args)
		return OutputResult{Output: out}, err
	})
	if svc.ReadsLocally() {
		// A query only computes on a pooled instance and reads state from memory or
		// the local disk: on the session's reader it costs about 20 µs of CPU less
		// than on a serve worker (docs/RATIONALE.md, "Why does query run on the
		// session's reader?"). A session's queries then run one at a time.
		s.SetInline("query")
	}
	Register(s, "mutate", Authenticated, func(ctx context.Context, c *Call, p mutateParams) (Encoded, error) {
		res, err := svc.Mutate(ctx, tenantOf(c), caller(c), p.ContextID, p.Method, p.Args, p.IdempotencyKey)
		return Encoded(res), err // the service's encoding, or a record of it
	})
	Register(s, "play", Authenticated, func(ctx context.Context, c *Call, p playParams) (json.RawMessage, error) {
		script, err := decodeBase64("script", p.Script)
		if err != nil {
			return nil, err
		}
		return svc.Play(ctx, tenantOf(c), caller(c), script, p.ContextID, p.Entry, p.Args)
	})
	// A job waits until its deadline at most, and a query's guest runs for the
	// engine's time limit at most: their calls need no call_timeout context.
	s.SetSelfTimed("query", "mutate", "play")
	registerJobs(s, svc)
}
