package launcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/testutil"
)

// TestFleetAdmin: two gateways of one fleet are one node to the admin API. They share
// the node key, so a root's login on one holds on the other; a tenant added or
// removed through one is served or dropped by the other at its next sync, and a
// revocation through one closes the other's sessions.
func TestFleetAdmin(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	root, nt, guest := testutil.NewKey(t), testutil.NewKey(t), testutil.NewKey(t)
	fleet := func(c *Config) {
		c.Redis.URL, c.Redis.Prefix = srv.URL(), "adminfleet"
		c.Admin.RootKeys = []string{root.Pub}
		c.Admin.SyncInterval = 50 * time.Millisecond
	}
	g1 := startEnv(t, fleet)
	g2 := startEnv(t, fleet, func(c *Config) { c.Tenants = g1.g.cfg.Tenants })
	g2.A, g2.B = g1.A, g1.B

	var d1, d2 didView
	g1.api("GET", "/admin-api/did", "", nil).into(t, 200, &d1)
	g2.api("GET", "/admin-api/did", "", nil).into(t, 200, &d2)
	if d1.NodeKey != d2.NodeKey {
		t.Fatalf("two gateways of a fleet show node keys %s and %s", d1.NodeKey, d2.NodeKey)
	}
	rt := g1.adminLogin(root, "").Token
	g2.api("GET", "/admin-api/tenants", rt, nil).into(t, 200, nil)

	g1.api("POST", "/admin-api/tenants", rt, map[string]string{"pubkey": nt.Pub}).into(t, 201, nil)
	testutil.CheckFor(t, 10*time.Second, func() error {
		if code, _ := g2.get("/" + nt.Pub + "/auth/nonce?pubkey=" + nt.Pub); code != 200 {
			return fmt.Errorf("the other gateway answers %d for the added tenant", code)
		}
		return nil
	})
	onNew, _ := g2.login(nt.Pub, nt)
	onA, _ := g2.login(g1.A.Pub, guest)

	owner := g1.adminLogin(g1.A, g1.A.Pub).Token
	g1.api("DELETE", "/admin-api/tenants/"+g1.A.Pub+"/keys/"+guest.Pub, owner, nil).into(t, 200, nil)
	closedWith(t, onA, 4502)
	g1.api("DELETE", "/admin-api/tenants/"+nt.Pub, rt, nil).into(t, 200, nil)
	closedWith(t, onNew, 4503)
	if code, _ := g2.get("/" + nt.Pub + "/auth/nonce?pubkey=" + nt.Pub); code != 404 {
		t.Fatalf("the other gateway still serves the removed tenant: %d", code)
	}
}
