package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCommitCounter is the storage side of a counter increment: CommitMany of
// rounds of 16 commits, each to another of 1,000 contexts, each a tx as a worker
// builds it (hex ids and hashes, one state write, one StateMutation event). Besides
// ns/op (per commit) it reports the process's CPU time and the WAL bytes per commit;
// the bytes do not depend on how busy the machine is.
func BenchmarkCommitCounter(b *testing.B) { benchCommitCounter(b, HistoryConfig{}) }

// BenchmarkCommitCounterFullHistory is BenchmarkCommitCounter with a history of 16
// events, full after a context's 16th commit, so nearly every commit trims it.
func BenchmarkCommitCounterFullHistory(b *testing.B) {
	benchCommitCounter(b, HistoryConfig{MaxEvents: 16})
}

func benchCommitCounter(b *testing.B, hist HistoryConfig) {
	const contexts, round = 1000, 16
	p, err := OpenPebble(PebbleConfig{Dir: b.TempDir(), History: hist})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	blob := []byte("wasm")
	sum := sha256.Sum256(blob)
	appID := hex.EncodeToString(sum[:])
	if _, _, err := p.PutApp(ctx, App{ID: appID, Tenant: "t", Size: len(blob)}, blob); err != nil {
		b.Fatal(err)
	}
	heads := make([]Context, contexts)
	for i := range heads {
		g := Tx{PrevHash: GenesisPrevHash, ID: benchHex(16), Time: time.Now().UTC()}
		g.Hash = TxHash(&g)
		heads[i] = Context{ID: benchHex(16), Tenant: "t", AppID: appID, Owner: "o", RootHash: g.Hash}
		if err := p.CreateContext(ctx, heads[i], g); err != nil {
			b.Fatal(err)
		}
	}
	caller, digest := "02"+benchHex(32), benchHex(32)
	next := 0
	commitRound := func(n int) {
		cs := make([]Commit, n)
		for k := range cs {
			h := &heads[next%contexts]
			next++
			tx := Tx{Seq: h.Seq + 1, ID: benchHex(16), PrevHash: h.RootHash, Method: "increment", ArgsDigest: digest,
				Caller: caller, Time: time.Now().UTC(),
				Writes: []Write{{Key: []byte("count"), Value: strconv.AppendUint(nil, h.Seq+1, 10)}}}
			tx.Events = []Event{{ContextID: h.ID, Seq: h.EventSeq + 1, TxID: tx.ID, TxSeq: tx.Seq, Kind: "StateMutation", Time: tx.Time}}
			tx.Hash = TxHash(&tx)
			tx.Events[0].RootHash = tx.Hash
			cs[k] = Commit{Tenant: "t", ContextID: h.ID, ExpectedSeq: h.Seq, Tx: tx}
			h.Seq, h.RootHash, h.EventSeq = tx.Seq, tx.Hash, tx.Events[0].Seq
		}
		for _, err := range p.CommitMany(ctx, cs) {
			if err != nil {
				panic(fmt.Sprintf("commit: %v", err))
			}
		}
	}
	wal := p.db.Metrics().WAL.BytesIn
	cpu := benchCPU()
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		commitRound(min(round, b.N-done))
	}
	b.StopTimer()
	b.ReportMetric(float64((benchCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(p.db.Metrics().WAL.BytesIn-wal)/float64(b.N), "wal-B/op")
}

func benchHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func benchCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
