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
