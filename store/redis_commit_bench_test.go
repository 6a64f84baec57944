package store_test

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/store/storetest"
)

// BenchmarkRedisCommitMany commits rounds of fleet-like jobs (a counter write, one
// event, a job-id idempotency record with a TTL and a 250-byte result) to distinct
// contexts with one CommitMany each, as a fleet worker does, on a redis-server with
// appendonly on. Besides time per commit it reports Redis's own CPU per commit
// (redis-µs/commit, from INFO's used_cpu), which is what bounds a fleet: Redis runs
// on one core.
func BenchmarkRedisCommitMany(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{AppendOnly: true})
	const contexts, round = 1000, 20
	s, _ := openRedis(b, srv, store.HistoryConfig{})
	ids := make([]string, contexts)
	for i := range ids {
		ids[i] = fmt.Sprintf("%032x", i)
	}
	heads := storetest.CreateContexts(b, s, "t", ids...)
	result := []byte(strings.Repeat("r", 250))
	next := 0
	cpu0 := srv.CPU(b)
	b.ResetTimer()
	for b.Loop() {
		cs := make([]store.Commit, round)
		for j := range cs {
			h := &heads[(next+j)%contexts]
			tx := storetest.NextTx(*h, time.Now(), []store.Write{storetest.Set("count", strconv.FormatUint(h.Seq, 10))}, "StateMutation")
			cs[j] = store.Commit{Tenant: "t", ContextID: h.ID, ExpectedSeq: h.Seq, Tx: tx,
				IdempotencyKey: "\x00job:" + tx.ID, IdempotencyTTL: 80 * time.Second,
				Idempotency: store.Idempotency{Digest: fmt.Sprintf("%x", sha256.Sum256([]byte(tx.ID))), Result: result}}
		}
		for j, err := range s.CommitMany(b.Context(), cs) {
			if err != nil {
				b.Fatal(err)
			}
			h := &heads[(next+j)%contexts]
			*h = storetest.Advance(*h, cs[j].Tx)
		}
		next += round
	}
	b.StopTimer()
	b.ReportMetric(float64((srv.CPU(b)-cpu0).Microseconds())/float64(b.N*round), "redis-µs/commit")
}
