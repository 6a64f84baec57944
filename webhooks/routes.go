package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/execution"
)

// Route sends the events of one provider (and, for standard, one endpoint name) whose
// type matches EventType to an app method of a context.
type Route struct {
	ID       string   `json:"routeId"`
	Provider Provider `json:"provider"`
	Name     string   `json:"name,omitempty"`
	// EventType is an exact type ("payment_intent.succeeded") or a prefix ending in
	// "*" ("payment_intent.*"; "*" alone matches every type).
	EventType string    `json:"eventType"`
	ContextID string    `json:"contextId"`
	Method    string    `json:"method"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// routeID is the id of the route for (provider, name, eventType): setting a route for
// the same three again replaces it.
func routeID(p Provider, name, eventType string) string {
	sum := sha256.Sum256([]byte(string(p) + "\x00" + name + "\x00" + eventType))
	return hex.EncodeToString(sum[:8])
}

// checkEventType checks a route's eventType pattern.
func checkEventType(t string) error {
	star := strings.IndexByte(t, '*')
	switch {
	case t == "" || len(t) > maxEventTypeBytes || !printable(t):
		return errs.Param("eventType", "must be 1 to %d printable bytes", maxEventTypeBytes)
	case star >= 0 && star != len(t)-1:
		return errs.Param("eventType", "may hold '*' only as its last character (a prefix)")
	}
	return nil
}

// SetRoute adds or replaces the route for (provider, name, eventType). The context must
// exist in the tenant; the method is not checked until an event arrives.
func (s *Service) SetRoute(ctx context.Context, tenant string, r Route) (Route, error) {
	if _, err := ParseProvider(string(r.Provider)); err != nil {
		return Route{}, err
	}
	if err := CheckName(r.Provider, r.Name); err != nil {
		return Route{}, err
	}
	if err := checkEventType(r.EventType); err != nil {
		return Route{}, err
	}
	if r.Method == "" || len(r.Method) > 128 {
		return Route{}, errs.Param("method", "must be 1 to 128 bytes")
	}
	if r.ContextID == "" {
		return Route{}, errs.Param("contextId", "is required")
	}
	if _, err := s.exec.GetContext(ctx, tenant, ownerCaller(tenant), r.ContextID); err != nil {
		return Route{}, err
	}
	r.ID = routeID(r.Provider, r.Name, r.EventType)
	routes, err := s.routes(ctx, tenant)
	if err != nil {
		return Route{}, err
	}
	if len(routes) >= s.cfg.MaxRoutes && !hasRoute(routes, r.ID) {
		return Route{}, errs.E(errs.Conflict, "the tenant has %d webhook routes, the most allowed (webhooks.max_routes): delete one first", len(routes))
	}
	r.UpdatedAt = s.now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return Route{}, err
	}
	if err := s.store.PutRecord(ctx, tenant, kindRoute, r.ID, b); err != nil {
		return Route{}, err
	}
	s.cache.drop(tenant)
	return r, nil
}

func hasRoute(routes []Route, id string) bool {
	for _, r := range routes {
		if r.ID == id {
			return true
		}
	}
	return false
}

// DeleteRoute removes a route.
func (s *Service) DeleteRoute(ctx context.Context, tenant, id string) error {
	if len(id) != 16 {
		return errs.Param("routeId", "not a route id")
	}
	existed, err := s.store.DeleteRecord(ctx, tenant, kindRoute, id)
	if err != nil {
		return err
	}
	if !existed {
		return errs.E(errs.NotFound, "no webhook route %s", id)
	}
	s.cache.drop(tenant)
	return nil
}

// ListRoutes returns the tenant's routes ordered by id.
func (s *Service) ListRoutes(ctx context.Context, tenant string) ([]Route, error) {
	return s.routes(ctx, tenant)
}

func (s *Service) routes(ctx context.Context, tenant string) ([]Route, error) {
	recs, err := s.store.ListRecords(ctx, tenant, kindRoute, "", s.cfg.MaxRoutes, false)
	if err != nil {
		return nil, err
	}
	out := make([]Route, 0, len(recs))
	for _, rec := range recs {
		var r Route
		if err := json.Unmarshal(rec.Value, &r); err != nil {
			s.log.Error("webhook route record unreadable", "tenant", tenant, "route_id", rec.ID)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// matchRoute returns the route for an event of provider p at endpoint name: the route
// whose eventType equals the event's type, else the one with the longest prefix
// pattern that the type starts with. ok is false when none matches.
func matchRoute(routes []Route, p Provider, name, eventType string) (Route, bool) {
	best, bestLen := Route{}, -1
	for _, r := range routes {
		if r.Provider != p || r.Name != name {
			continue
		}
		if r.EventType == eventType {
			return r, true
		}
		prefix, isPrefix := strings.CutSuffix(r.EventType, "*")
		if isPrefix && strings.HasPrefix(eventType, prefix) && len(prefix) > bestLen {
			best, bestLen = r, len(prefix)
		}
	}
	return best, bestLen >= 0
}

// ownerCaller is the caller of a webhook's mutation: the tenant key, as owner.
func ownerCaller(tenant string) execution.Caller {
	return execution.Caller{PubKey: tenant, Owner: true}
}
