package admin

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
)

func TestConfig(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.MaxClientKeys != 1000 || c.SyncInterval != time.Second || c.Dev {
		t.Fatalf("defaults = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c     Config
		param string
	}{
		{Config{RootKeys: []string{"0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", "nope"}}, "root_keys[1]"},
		{Config{MaxClientKeys: -1}, "max_client_keys"},
	} {
		err := tc.c.WithDefaults().Validate()
		var e *errs.Error
		if !errors.As(err, &e) || e.Param != tc.param {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.c, err, tc.param)
		}
	}
}

// TestRoutes: every route is under the prefix, once, and every route of a tenant
// needs its owner.
func TestRoutes(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Routes() {
		key := r.Method + " " + r.Path
		if seen[key] {
			t.Errorf("%s twice", key)
		}
		seen[key] = true
		if !strings.HasPrefix(r.Path, Prefix+"/") {
			t.Errorf("%s is not under %s", key, Prefix)
		}
		if strings.HasPrefix(r.Path, Prefix+"/tenants/{tenant}/") && r.Scope != ScopeOwner {
			t.Errorf("%s is a tenant's route of scope %s", key, r.Scope)
		}
		if r.Scope == ScopePublic && r.Method != "GET" && !strings.HasSuffix(r.Path, "/request-challenge") && !strings.HasSuffix(r.Path, "/add-client-key") {
			t.Errorf("%s changes something without a token", key)
		}
	}
}
