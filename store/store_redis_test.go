package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/redisx"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/store/storetest"
)

var prefixes atomic.Int64

// openRedis opens a store with a prefix of its own on srv, closed in t.Cleanup.
func openRedis(t testing.TB, srv *redistest.Server, h store.HistoryConfig) (*store.Redis, redis.UniversalClient) {
	t.Helper()
	rdb := dialRedis(t, srv.URL())
	s, err := store.OpenRedis(context.Background(), store.RedisConfig{
		Client: rdb, Prefix: fmt.Sprintf("t%d", prefixes.Add(1)), History: h,
	})
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, rdb
}

func dialRedis(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	rdb, err := redisx.Open(context.Background(), url, 0)
	if err != nil {
		t.Fatalf("redisx.Open: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// openRedisContexts opens a store on srv holding n empty contexts c0, c1, ... of
// tenant "t" (one app), and returns their heads.
func openRedisContexts(t *testing.T, srv *redistest.Server, n int) (*store.Redis, redis.UniversalClient, []store.Context) {
	t.Helper()
	s, rdb := openRedis(t, srv, store.HistoryConfig{})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%d", i)
	}
	return s, rdb, storetest.CreateContexts(t, s, "t", ids...)
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	storetest.Run(t, func(t *testing.T, h store.HistoryConfig) store.Store {
		s, _ := openRedis(t, srv, h)
		return s
	})
}

func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	c := redistest.StartCluster(t)
	storetest.Run(t, func(t *testing.T, h store.HistoryConfig) store.Store {
		rdb := dialRedis(t, c.URL())
		if _, ok := rdb.(*redis.ClusterClient); !ok {
			t.Fatalf("redisx.Open on a cluster node returned %T, want a cluster client", rdb)
		}
		s, err := store.OpenRedis(context.Background(), store.RedisConfig{
			Client: rdb, Prefix: fmt.Sprintf("t%d", prefixes.Add(1)), History: h,
		})
		if err != nil {
			t.Fatalf("OpenRedis: %v", err)
		}
		return s
	})
}

// TestRedisPublishesCommits: a commit's events reach a subscriber of the context's
// channel as one message, which decodes to exactly those events and their tenant.
func TestRedisPublishesCommits(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, rdb := openRedis(t, srv, store.HistoryConfig{})
	ctx := context.Background()
	app, _, err := s.PutApp(ctx, store.App{Tenant: "tenant"}, []byte("wasm"))
	if err != nil {
		t.Fatal(err)
	}
	g := storetest.GenesisTx("ctx1", time.Now(), nil, "ContextCreated")
	c := storetest.NewContext("tenant", app.ID, "ctx1", g)
	prefix := s.Prefix()
	sub := rdb.Subscribe(ctx, store.RedisEventChannel(prefix, "tenant", "ctx1"))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
		t.Fatal(err)
	}
	if err := s.CreateContext(ctx, c, g); err != nil {
		t.Fatal(err)
	}
	tx := storetest.NextTx(c, time.Now(), []store.Write{storetest.Set("k", "v")}, "A", "B")
	tx.Events[0].RootHash = "root"
	tx.Hash = store.TxHash(&tx)
	if err := s.Commit(ctx, store.Commit{Tenant: "tenant", ContextID: "ctx1", ExpectedSeq: 0, Tx: tx}); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]store.Event{g.Events, tx.Events} {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tenant, evs, err := store.DecodeEventMessage([]byte(msg.Payload))
		if err != nil || tenant != "tenant" {
			t.Fatalf("message of tenant %q, err %v", tenant, err)
		}
		if len(evs) != len(want) {
			t.Fatalf("message holds %d events, want %d", len(evs), len(want))
		}
		for i := range evs {
			if evs[i].Seq != want[i].Seq || evs[i].Kind != want[i].Kind || evs[i].RootHash != want[i].RootHash ||
				!evs[i].Time.Equal(want[i].Time) || string(evs[i].Data) != string(want[i].Data) {
				t.Errorf("event %d = %+v, want %+v", i, evs[i], want[i])
			}
		}
	}
	hist, _, err := s.Events(ctx, "ctx1", 2, 10)
	if err != nil || len(hist) != 2 || hist[0].RootHash != "root" {
		t.Errorf("history = %+v, %v; want the two events, the first with its rootHash", hist, err)
	}
}

func FuzzDecodeEventMessage(f *testing.F) {
	f.Add(store.EncodeEventMessage("t", []store.Event{{ContextID: "c", Seq: 1, Kind: "K", Data: []byte(`{}`), RootHash: "r"}}))
	f.Add([]byte{1, 0, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		tenant, evs, err := store.DecodeEventMessage(b)
		if err != nil {
			return
		}
		again := store.EncodeEventMessage(tenant, evs)
		if _, evs2, err := store.DecodeEventMessage(again); err != nil || len(evs2) != len(evs) {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

// TestRedisEachContext: EachContext visits every context of the prefix once (not
// those of another prefix on the same Redis), and each verifies.
func TestRedisEachContext(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	var stores []*store.Redis
	for range 2 {
		s, _ := openRedis(t, srv, store.HistoryConfig{})
		stores = append(stores, s)
		for _, c := range storetest.CreateContexts(t, s, "t", "c0", "c1", "c2") {
			tx := storetest.NextTx(c, time.Now(), []store.Write{storetest.Set("k", "v")})
			if err := s.Commit(ctx, store.Commit{Tenant: "t", ContextID: c.ID, ExpectedSeq: 0, Tx: tx}); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := map[string]int{}
	err := stores[0].EachContext(ctx, func(c store.Context) error {
		seen[c.ID]++
		return store.VerifyContext(ctx, stores[0], c)
	})
	if err != nil || len(seen) != 3 || seen["c0"] != 1 || seen["c1"] != 1 || seen["c2"] != 1 {
		t.Fatalf("EachContext saw %v, err %v; want c0, c1, c2 once each", seen, err)
	}
}

// TestRedisConcurrentHeadReads: head reads of many callers at once (which share
// pipelines) each get their own context's head, another tenant's context is
// NotFound for each of them, and a read with an ended ctx or after Close fails
// (TestRedisHeadReadWaitEnds has those that were waiting already).
func TestRedisConcurrentHeadReads(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, _, heads := openRedisContexts(t, srv, 20)
	ctx := context.Background()
	for i := range heads {
		id := heads[i].ID
		for range i % 4 {
			tx := storetest.NextTx(heads[i], time.Now(), []store.Write{storetest.Set("k", id)})
			if err := s.Commit(ctx, store.Commit{Tenant: "t", ContextID: id, ExpectedSeq: heads[i].Seq, Tx: tx}); err != nil {
				t.Fatal(err)
			}
			heads[i] = storetest.Advance(heads[i], tx)
		}
	}
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for n := range 50 {
				want := heads[(g+n)%len(heads)]
				got, err := s.GetContext(ctx, "t", want.ID)
				if err != nil || got.ID != want.ID || got.Seq != want.Seq || got.RootHash != want.RootHash {
					t.Errorf("GetContext(%s) = %s seq %d %.8s, %v; want seq %d %.8s", want.ID, got.ID, got.Seq, got.RootHash, err, want.Seq, want.RootHash)
					return
				}
				if _, err := s.GetContext(ctx, "other", want.ID); !errs.Is(err, errs.NotFound) {
					t.Errorf("GetContext of tenant t's %s as another tenant: %v, want NotFound", want.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.GetContext(done, "t", "c0"); err == nil {
		t.Error("GetContext with an ended ctx succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetContext(ctx, "t", "c0"); err == nil {
		t.Error("GetContext after Close succeeded")
	}
}

// TestRedisReloadsLostScripts: after Redis lost its scripts (SCRIPT FLUSH, as after a
// restart), a commit of several contexts and a snapshot read load them again and
// succeed, each applied once.
func TestRedisReloadsLostScripts(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, rdb, heads := openRedisContexts(t, srv, 3)
	ctx := context.Background()
	var commits []store.Commit
	for _, h := range heads {
		tx := storetest.NextTx(h, time.Now(), []store.Write{storetest.Set("k", h.ID)})
		commits = append(commits, store.Commit{Tenant: "t", ContextID: h.ID, ExpectedSeq: 0, Tx: tx})
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i, err := range s.CommitMany(ctx, commits) {
		if err != nil {
			t.Fatalf("commit %d after SCRIPT FLUSH: %v", i, err)
		}
	}
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	refs := []store.ContextRef{{Tenant: "t", ID: "c0"}, {Tenant: "t", ID: "c2"}}
	for i, snap := range s.Snapshots(ctx, refs, 1024) {
		if snap.Err != nil || snap.Context.Seq != 1 || string(snap.State["k"]) != refs[i].ID {
			t.Fatalf("snapshot of %s after SCRIPT FLUSH: seq %d, state %q, %v; want seq 1, k=%s",
				refs[i].ID, snap.Context.Seq, snap.State, snap.Err, refs[i].ID)
		}
	}
}

// TestRedisHeadReadWaitEnds: a head read queued behind a batch that Redis holds up
// (CLIENT PAUSE) returns when its ctx ends, and one still queued when the store
// closes returns an error, without waiting for Redis.
func TestRedisHeadReadWaitEnds(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, rdb, _ := openRedisContexts(t, srv, 1)
	ctx := context.Background()
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", 3000, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	held := make(chan error, 1)
	go func() { _, err := s.GetContext(ctx, "t", "c0"); held <- err }() // its batch waits for Redis
	time.Sleep(100 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.GetContext(short, "t", "c0"); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("a queued read whose ctx ended: %v after %v; want an error before Redis answers", err, time.Since(start))
	}
	queued := make(chan error, 1)
	go func() { _, err := s.GetContext(ctx, "t", "c0"); queued <- err }()
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil { // waits for the batch in flight
		t.Fatal(err)
	}
	if err := <-queued; err == nil {
		t.Error("a read still queued when the store closed succeeded")
	}
	if err := <-held; err != nil {
		t.Errorf("the read in flight when the store closed: %v; want its head once Redis answered", err)
	}
}
