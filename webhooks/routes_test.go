package webhooks

import (
	"errors"
	"testing"

	"github.com/circlegate/circlegate/errs"
)

func TestMatchRoute(t *testing.T) {
	r := func(p Provider, name, typ string) Route {
		return Route{ID: routeID(p, name, typ), Provider: p, Name: name, EventType: typ}
	}
	routes := []Route{
		r(Stripe, "", "*"),
		r(Stripe, "", "payment_intent.*"),
		r(Stripe, "", "payment_intent.succeeded"),
		r(Stripe, "", "payment_intent.succ*"),
		r(Standard, "billing", "invoice.*"),
		r(Standard, "crm", "*"),
	}
	for _, tc := range []struct {
		p         Provider
		name, typ string
		want      string // the matching route's eventType; "" = none
	}{
		{Stripe, "", "payment_intent.succeeded", "payment_intent.succeeded"}, // exact beats every prefix
		{Stripe, "", "payment_intent.success", "payment_intent.succ*"},       // the longest prefix
		{Stripe, "", "payment_intent.created", "payment_intent.*"},
		{Stripe, "", "charge.refunded", "*"},
		{Stripe, "", "", "*"},
		{Idenfy, "", "APPROVED", ""}, // no idenfy route
		{Standard, "billing", "invoice.paid", "invoice.*"},
		{Standard, "billing", "customer.created", ""}, // billing has no route for it
		{Standard, "crm", "invoice.paid", "*"},        // routes of another endpoint do not apply
		{Standard, "other", "invoice.paid", ""},
	} {
		got, ok := matchRoute(routes, tc.p, tc.name, tc.typ)
		if tc.want == "" {
			if ok {
				t.Errorf("%s/%s %q matched %q, want none", tc.p, tc.name, tc.typ, got.EventType)
			}
			continue
		}
		if !ok || got.EventType != tc.want || got.Name != tc.name || got.Provider != tc.p {
			t.Errorf("%s/%s %q matched %+v (%v), want %q", tc.p, tc.name, tc.typ, got, ok, tc.want)
		}
	}
}

func TestCheckEventType(t *testing.T) {
	for typ, ok := range map[string]bool{
		"*": true, "a.b": true, "a.*": true, "a*": true,
		"": false, "*.a": false, "a**": false, "a\nb": false, string(make([]byte, 201)): false,
	} {
		err := checkEventType(typ)
		var e *errs.Error
		if (err == nil) != ok || (err != nil && (!errors.As(err, &e) || e.Param != "eventType")) {
			t.Errorf("checkEventType(%q) = %v, want ok=%v", typ, err, ok)
		}
	}
}

func TestIdempotencyKey(t *testing.T) {
	for _, tc := range []struct {
		p        Provider
		name, id string
		want     string
	}{
		{Stripe, "", "evt_1", "stripe:evt_1"},
		{Idenfy, "", "s.1", "idenfy:s.1"},
		{Standard, "billing", "msg_1", "standard:billing:msg_1"},
	} {
		if got := idempotencyKey(tc.p, tc.name, tc.id); got != tc.want {
			t.Errorf("idempotencyKey(%s, %s, %s) = %s, want %s", tc.p, tc.name, tc.id, got, tc.want)
		}
	}
}
