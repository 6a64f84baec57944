package execution

import (
	"strconv"
	"testing"
	"time"

	"github.com/circlegate/circlegate/store"
)

// TestMetaCache: an entry serves for metaTTL, per tenant; forget drops it; the cache
// never holds more than maxMetas entries.
func TestMetaCache(t *testing.T) {
	c := newMetaCache()
	now := time.Now()
	c.put("a", store.Context{ID: "x", Owner: "o"}, now)
	if m, ok := c.get("a", "x", now.Add(metaTTL-time.Millisecond)); !ok || m.Owner != "o" {
		t.Fatalf("fresh entry: %+v, %v", m, ok)
	}
	if _, ok := c.get("b", "x", now); ok {
		t.Fatal("tenant b got tenant a's context")
	}
	if _, ok := c.get("a", "x", now.Add(metaTTL)); ok {
		t.Fatal("an entry served past metaTTL")
	}
	c.forget("a", "x")
	if _, ok := c.get("a", "x", now); ok {
		t.Fatal("a forgotten entry served")
	}
	for i := range maxMetas + 10 {
		c.put("a", store.Context{ID: strconv.Itoa(i)}, now)
	}
	if n := len(c.m); n > maxMetas {
		t.Fatalf("%d entries, the bound is %d", n, maxMetas)
	}
	if _, ok := c.get("a", strconv.Itoa(maxMetas+9), now); !ok {
		t.Fatal("the newest entry is missing")
	}
}
