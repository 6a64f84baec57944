package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/store/storetest"
)

func TestVerifyContext(t *testing.T) {
	p, err := store.OpenPebble(store.PebbleConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	app, _, err := p.PutApp(ctx, store.App{Tenant: "t"}, []byte("\x00asm-verify"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	genesis := storetest.GenesisTx("c1", now, nil)
	head := storetest.NewContext("t", app.ID, "c1", genesis)
	if err := p.CreateContext(ctx, head, genesis); err != nil {
		t.Fatal(err)
	}
	var second store.Tx
	for i := range 3 {
		tx := storetest.NextTx(head, now, []store.Write{storetest.Set("k", "v")})
		if err := p.Commit(ctx, store.Commit{Tenant: "t", ContextID: "c1", ExpectedSeq: head.Seq, Tx: tx}); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			second = tx
		}
		head = storetest.Advance(head, tx)
	}
	var seen int
	err = p.EachContext(ctx, func(c store.Context) error {
		seen++
		return store.VerifyContext(ctx, p, c)
	})
	if err != nil || seen != 1 {
		t.Fatalf("verify intact log: %v (%d contexts)", err, seen)
	}
	second.Writes[0].Value = []byte("tampered")
	store.OverwriteTx(p, "c1", second)
	if err := store.VerifyContext(ctx, p, head); err == nil {
		t.Fatal("a tampered tx verified")
	}
}

// TestVerifyHistory: a whole history verifies, with the events of commits (in their
// tx records) and of member changes (in event records), and its count is the
// events held; one that lost an event does not.
func TestVerifyHistory(t *testing.T) {
	s, c := newPebbleContext(t, store.HistoryConfig{MaxEvents: 8}, "ctx", time.Now())
	if n, err := store.VerifyHistory(t.Context(), s, c); err != nil || n != 1 {
		t.Fatalf("a new context's history: %d events, %v", n, err)
	}
	c = commitAt(t, s, c, time.Now(), "E", "E") // 2, 3
	c = updateMembers(t, s, c, "m")             // 4
	c = commitAt(t, s, c, time.Now(), "E")      // 5
	if n, err := store.VerifyHistory(t.Context(), s, c); err != nil || n != 5 {
		t.Fatalf("intact history: %d events, %v; want 5", n, err)
	}
	for range 4 {
		c = commitAt(t, s, c, time.Now(), "E") // 6..9: history holds 2..9
	}
	if n, err := store.VerifyHistory(t.Context(), s, c); err != nil || n != 8 {
		t.Fatalf("trimmed history: %d events, %v; want 8", n, err)
	}
	store.DeleteEventRecord(s, "ctx", 4)
	if _, err := store.VerifyHistory(t.Context(), s, c); err == nil {
		t.Error("a history missing event 4 verified")
	}
}
