package rpc

import (
	"context"
	"testing"
	"time"

	"github.com/circlegate/circlegate/tenant"
)

// BenchmarkHandle measures the dispatcher alone for an authenticated call without
// params (the shape of whoami) and one with object params.
func BenchmarkHandle(b *testing.B) {
	s := newTestServer(b, Config{})
	tn := &tenant.Tenant{PubKey: "t"}
	peer := &Peer{Tenant: tn}
	peer.SetPrincipal(&tenant.Principal{Tenant: tn, PubKey: "k", ExpiresAt: time.Now().Add(time.Hour)})
	for name, msg := range map[string]string{
		"no params":     `{"jsonrpc":"2.0","id":7,"method":"secret"}`,
		"object params": `{"jsonrpc":"2.0","id":7,"method":"subtract","params":{"minuend":42,"subtrahend":23}}`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if s.Handle(context.Background(), peer, []byte(msg)) == nil {
					b.Fatal("no reply")
				}
			}
		})
	}
}
