package rpc

import (
	"context"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/execution"
)

type subscribeParams struct {
	ContextIDs []string          `json:"contextIds"`
	Since      map[string]uint64 `json:"since"`
}

type unsubscribeParams struct {
	ContextIDs []string `json:"contextIds"`
}

// SubscribeResult is the result of subscribe, on a WebSocket or an SSE stream.
type SubscribeResult struct {
	Subscribed []string        `json:"subscribed"`
	Recovered  map[string]bool `json:"recovered"`
	Refused    []Refusal       `json:"refused,omitempty"`
}

// Refusal is a context subscribe did not subscribe to, with the error why.
type Refusal struct {
	ContextID string `json:"contextId"`
	Error     *Error `json:"error"`
}

// UnsubscribeResult is the result of unsubscribe.
type UnsubscribeResult struct {
	Unsubscribed []string `json:"unsubscribed"`
}

// maxSubscribeIDs bounds the context ids of one subscribe call.
const maxSubscribeIDs = 1000

// RegisterEvents adds subscribe and unsubscribe, for peers that carry Subscriptions.
func RegisterEvents(s *Server, svc *execution.Service) {
	Register(s, "subscribe", Authenticated, func(ctx context.Context, c *Call, p subscribeParams) (SubscribeResult, error) {
		if c.Peer.Subscriptions == nil {
			return SubscribeResult{}, errNoStream
		}
		return Subscribe(ctx, svc, c.Peer.Subscriptions, tenantOf(c), caller(c), p.ContextIDs, p.Since)
	})
	Register(s, "unsubscribe", Authenticated, func(_ context.Context, c *Call, p unsubscribeParams) (UnsubscribeResult, error) {
		if c.Peer.Subscriptions == nil {
			return UnsubscribeResult{}, errNoStream
		}
		if err := checkIDs(p.ContextIDs); err != nil {
			return UnsubscribeResult{}, err
		}
		return UnsubscribeResult{Unsubscribed: c.Peer.Subscriptions.Unsubscribe(p.ContextIDs)}, nil
	})
}

var errNoStream = errs.E(errs.Forbidden, "subscriptions need a WebSocket session or an SSE stream (POST /<tenant>/sse/subscription)")

func checkIDs(ids []string) error {
	switch {
	case len(ids) == 0:
		return errs.Param("contextIds", "must name at least one context")
	case len(ids) > maxSubscribeIDs:
		return errs.Param("contextIds", "names more than %d contexts", maxSubscribeIDs)
	}
	for _, id := range ids {
		if id == "" {
			return errs.Param("contextIds", "holds an empty id")
		}
	}
	return nil
}

// Subscribe subscribes subs to the contexts the caller may read, each refusal with
// its reason: the one implementation behind subscribe on every transport.
func Subscribe(ctx context.Context, svc *execution.Service, subs *events.Subscriptions, tenant string, c execution.Caller, ids []string, since map[string]uint64) (SubscribeResult, error) {
	if err := checkIDs(ids); err != nil {
		return SubscribeResult{}, err
	}
	authorize := func(ctx context.Context, id string) (uint64, error) {
		meta, err := svc.GetContext(ctx, tenant, c, id)
		return meta.EventSeq, err
	}
	r := subs.Subscribe(ctx, ids, since, authorize)
	out := SubscribeResult{Subscribed: r.Subscribed, Recovered: r.Recovered}
	for _, id := range ids {
		if err, ok := r.Refused[id]; ok {
			out.Refused = append(out.Refused, Refusal{ContextID: id, Error: ToWire(err)})
			delete(r.Refused, id) // a repeated id is reported once
		}
	}
	return out, nil
}
