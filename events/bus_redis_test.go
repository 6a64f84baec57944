package events_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circlegate/circlegate/events"
	"github.com/circlegate/circlegate/events/eventstest"
	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/redisx"
	"github.com/circlegate/circlegate/internal/testutil"
)

var busPrefixes atomic.Int64

// openRedisBus returns one node's bus on url with prefix, closed in t.Cleanup.
func openRedisBus(t *testing.T, url, prefix string) *events.Redis {
	t.Helper()
	rdb, err := redisx.Open(context.Background(), url, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.NewRedis(events.RedisConfig{Client: rdb, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(); _ = rdb.Close() })
	return b
}

func TestRedisBus(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	eventstest.Run(t, func(t *testing.T) (events.Bus, events.Bus) {
		prefix := fmt.Sprintf("b%d", busPrefixes.Add(1))
		return openRedisBus(t, srv.URL(), prefix), openRedisBus(t, srv.URL(), prefix)
	})
}

func TestRedisBusCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	c := redistest.StartCluster(t)
	eventstest.Run(t, func(t *testing.T) (events.Bus, events.Bus) {
		prefix := fmt.Sprintf("b%d", busPrefixes.Add(1))
		return openRedisBus(t, c.Nodes[0].URL(), prefix), openRedisBus(t, c.Nodes[2].URL(), prefix)
	})
}

// TestRedisBusRefCounts: a node holds one Redis subscription per context whatever its
// number of local subscribers, and drops it with the last one.
func TestRedisBusRefCounts(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	b := openRedisBus(t, srv.URL(), "rc")
	count := func() (int, error) {
		rdb, err := redisx.Open(context.Background(), srv.URL(), 0)
		if err != nil {
			return 0, err
		}
		defer rdb.Close()
		m, err := rdb.PubSubNumSub(context.Background(), "rc:ev:{ctx1}:tenant").Result()
		return int(m["rc:ev:{ctx1}:tenant"]), err
	}
	var sinks [3]eventstest.Recorder
	var cancels []func()
	for i := range sinks {
		cancels = append(cancels, b.Subscribe("tenant", "ctx1", &sinks[i]))
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n, err := count(); err != nil || n != 1 {
			return fmt.Errorf("Redis counts %d subscriptions to the channel (%v), want 1", n, err)
		}
		return nil
	})
	cancels[0]()
	cancels[1]()
	if n, err := count(); err != nil || n != 1 {
		t.Fatalf("with one local subscriber left: %d Redis subscriptions (%v), want 1", n, err)
	}
	cancels[2]()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n, err := count(); err != nil || n != 0 {
			return fmt.Errorf("after the last local subscriber left: %d Redis subscriptions (%v), want 0", n, err)
		}
		return nil
	})
}

// TestRedisBusSubscribeEffectiveOnReturn: an event published right after Subscribe
// returns reaches the sink, on many fresh contexts (Subscribe waits for Redis to
// confirm the node's subscription; a feed relies on it).
func TestRedisBusSubscribeEffectiveOnReturn(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	pub, sub := openRedisBus(t, srv.URL(), "now"), openRedisBus(t, srv.URL(), "now")
	var r eventstest.Recorder
	for i := range 20 {
		id := fmt.Sprintf("fresh%d", i)
		defer sub.Subscribe("tenant", id, &r)()
		pub.Publish(context.Background(), "tenant", eventstest.Events(id, 1, 1))
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := len(r.Messages()); n != 20 {
			return fmt.Errorf("%d of 20 events published right after subscribing arrived", n)
		}
		return nil
	})
}
