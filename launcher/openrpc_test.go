package launcher

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/circlegate/circlegate"
	"github.com/circlegate/circlegate/rpc"
)

// TestOpenRPCMatchesCode fails when a registered method is missing from openrpc.json,
// a documented one is not registered, or the documented errors differ from the wire
// error registry.
func TestOpenRPCMatchesCode(t *testing.T) {
	e := startEnv(t)
	spec, err := rpc.ParseSpec(circlegate.OpenRPC)
	if err != nil {
		t.Fatal(err)
	}
	registered := e.g.RPC.Registered()
	for name := range spec.Methods {
		if !slices.Contains(registered, name) {
			t.Errorf("openrpc.json documents %s, which is not registered", name)
		}
	}
	for _, name := range registered {
		if _, ok := spec.Methods[name]; !ok {
			t.Errorf("%s is registered but not in openrpc.json", name)
		}
	}

	var doc struct {
		OpenRPC    string `json:"openrpc"`
		Components struct {
			Errors map[string]struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"errors"`
		} `json:"components"`
	}
	if err := json.Unmarshal(circlegate.OpenRPC, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenRPC[:2] != "1." {
		t.Errorf("openrpc version %q, want 1.x", doc.OpenRPC)
	}
	if len(doc.Components.Errors) != len(rpc.WireErrors) {
		t.Errorf("openrpc.json lists %d errors, the registry %d", len(doc.Components.Errors), len(rpc.WireErrors))
	}
	for _, w := range rpc.WireErrors {
		d, ok := doc.Components.Errors[w.Name]
		if !ok || d.Code != w.Code || d.Message != w.Message {
			t.Errorf("error %s: openrpc.json has %+v, registry has %d %q", w.Name, d, w.Code, w.Message)
		}
	}
	for _, m := range spec.Methods {
		for _, ref := range m.Errors {
			if _, ok := doc.Components.Errors[ref]; !ok {
				t.Errorf("method %s lists unknown error %s", m.Name, ref)
			}
		}
	}

	// rpc.discover returns the document itself.
	c := e.dial(e.A.Pub)
	var got json.RawMessage
	if err := c.Call(ctxT(t), "rpc.discover", nil, &got); err != nil {
		t.Fatal(err)
	}
	var a, b any
	_ = json.Unmarshal(got, &a)
	_ = json.Unmarshal(circlegate.OpenRPC, &b)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatal("rpc.discover does not return openrpc.json")
	}
}
