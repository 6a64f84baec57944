package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkEvents reads history from a context with 2,000 commits of one event
// each: the last 10 events (a subscriber that reconnects), and a page of 100 from
// the middle (one catching up from further back).
func BenchmarkEvents(b *testing.B) {
	const commits = 2000
	p, err := OpenPebble(PebbleConfig{Dir: b.TempDir(), History: HistoryConfig{MaxEvents: 10000}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	app, _, err := p.PutApp(ctx, App{Tenant: "t"}, []byte("wasm"))
	if err != nil {
		b.Fatal(err)
	}
	g := Tx{PrevHash: GenesisPrevHash, ID: benchHex(16), Time: time.Now().UTC()}
	g.Hash = TxHash(&g)
	h := Context{ID: benchHex(16), Tenant: "t", AppID: app.ID, Owner: "o", RootHash: g.Hash}
	if err := p.CreateContext(ctx, h, g); err != nil {
		b.Fatal(err)
	}
	for range commits {
		tx := Tx{Seq: h.Seq + 1, ID: benchHex(16), PrevHash: h.RootHash, Method: "increment", Time: time.Now().UTC(),
			Writes: []Write{{Key: []byte("count"), Value: []byte(fmt.Sprint(h.Seq + 1))}}}
		tx.Events = []Event{{ContextID: h.ID, Seq: h.EventSeq + 1, TxID: tx.ID, TxSeq: tx.Seq, Kind: "StateMutation", Time: tx.Time}}
		tx.Hash = TxHash(&tx)
		tx.Events[0].RootHash = tx.Hash
		if err := p.Commit(ctx, Commit{Tenant: "t", ContextID: h.ID, ExpectedSeq: h.Seq, Tx: tx}); err != nil {
			b.Fatal(err)
		}
		h.Seq, h.RootHash, h.EventSeq = tx.Seq, tx.Hash, tx.Events[0].Seq
	}
	for _, bc := range []struct {
		name  string
		from  uint64
		limit int
	}{{"last10", commits - 9, 10}, {"page100", commits / 2, 100}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				evs, _, err := p.Events(ctx, h.ID, bc.from, bc.limit)
				if err != nil || len(evs) != bc.limit {
					b.Fatalf("Events: %d, %v", len(evs), err)
				}
			}
		})
	}
}
