package webhooks

import (
	"context"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/rpc"
)

type secretAddParams struct {
	Provider string `json:"provider"`
	Name     string `json:"name"`
	Secret   string `json:"secret"`
}

type secretIDParams struct {
	SecretID string `json:"secretId"`
}

type routeSetParams struct {
	Provider  string `json:"provider"`
	Name      string `json:"name"`
	EventType string `json:"eventType"`
	ContextID string `json:"contextId"`
	Method    string `json:"method"`
}

type routeIDParams struct {
	RouteID string `json:"routeId"`
}

type deliveriesParams struct {
	Limit  int    `json:"limit"`
	Before string `json:"before"`
}

type noParams struct{}

// SecretList is the result of webhook.secret.list.
type SecretList struct {
	Secrets []SecretInfo `json:"secrets"`
}

// RouteList is the result of webhook.route.list.
type RouteList struct {
	Routes []Route `json:"routes"`
}

// DeliveryList is the result of webhook.deliveries.
type DeliveryList struct {
	Deliveries []Delivery `json:"deliveries"`
	// Next, when set, is the before of the next (older) page.
	Next string `json:"next,omitempty"`
}

// Done is the result of a method that only succeeds or fails.
type Done struct {
	OK bool `json:"ok"`
}

// ownerTenant returns the tenant of a call made by its owner, or -32003.
func ownerTenant(c *rpc.Call) (string, error) {
	t := c.Peer.Tenant
	if !t.IsOwner(c.Principal.PubKey) {
		return "", errs.E(errs.Forbidden, "only the tenant owner may configure webhooks")
	}
	return t.PubKey, nil
}

// owner wraps a method so that only the tenant's owner may call it.
func owner[P, R any](fn func(ctx context.Context, tenant string, p P) (R, error)) func(context.Context, *rpc.Call, P) (R, error) {
	return func(ctx context.Context, c *rpc.Call, p P) (R, error) {
		t, err := ownerTenant(c)
		if err != nil {
			var zero R
			return zero, err
		}
		return fn(ctx, t, p)
	}
}

// RegisterMethods adds the owner's webhook.* methods.
func RegisterMethods(s *rpc.Server, svc *Service) {
	rpc.Register(s, "webhook.secret.add", rpc.Authenticated, owner(func(ctx context.Context, t string, p secretAddParams) (SecretInfo, error) {
		prov, err := ParseProvider(p.Provider)
		if err != nil {
			return SecretInfo{}, err
		}
		return svc.AddSecret(ctx, t, prov, p.Name, p.Secret)
	}))
	rpc.Register(s, "webhook.secret.remove", rpc.Authenticated, owner(func(ctx context.Context, t string, p secretIDParams) (Done, error) {
		return Done{OK: true}, svc.RemoveSecret(ctx, t, p.SecretID)
	}))
	rpc.Register(s, "webhook.secret.list", rpc.Authenticated, owner(func(ctx context.Context, t string, _ noParams) (SecretList, error) {
		list, err := svc.ListSecrets(ctx, t)
		return SecretList{Secrets: list}, err
	}))
	rpc.Register(s, "webhook.route.set", rpc.Authenticated, owner(func(ctx context.Context, t string, p routeSetParams) (Route, error) {
		return svc.SetRoute(ctx, t, Route{Provider: Provider(p.Provider), Name: p.Name, EventType: p.EventType, ContextID: p.ContextID, Method: p.Method})
	}))
	rpc.Register(s, "webhook.route.list", rpc.Authenticated, owner(func(ctx context.Context, t string, _ noParams) (RouteList, error) {
		list, err := svc.ListRoutes(ctx, t)
		return RouteList{Routes: list}, err
	}))
	rpc.Register(s, "webhook.route.delete", rpc.Authenticated, owner(func(ctx context.Context, t string, p routeIDParams) (Done, error) {
		return Done{OK: true}, svc.DeleteRoute(ctx, t, p.RouteID)
	}))
	rpc.Register(s, "webhook.deliveries", rpc.Authenticated, owner(func(ctx context.Context, t string, p deliveriesParams) (DeliveryList, error) {
		list, next, err := svc.Deliveries(ctx, t, p.Limit, p.Before)
		return DeliveryList{Deliveries: list, Next: next}, err
	}))
}
