package launcher

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/circlegate/circlegate/internal/redisx"
	"github.com/circlegate/circlegate/store"
)

// runVerify checks the hash chain and the event history of every context in a data
// dir: `circlegate verify --data DIR`. The gateway must not be running on that dir
// (Pebble locks it). With --redis it checks a fleet's contexts in Redis, which may
// be running: a context committed to while it is read is reported broken only if
// its log really breaks (VerifyContext reads the head first, then a log that can
// only have grown).
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./data", "data directory of a stopped gateway")
	redisURL := fs.String("redis", "", "verify a fleet's Redis instead (it may be running)")
	prefix := fs.String("prefix", "cg", "the fleet's key prefix (redis.prefix)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	st, closeStore, err := openVerified(ctx, *data, *redisURL, *prefix)
	if err != nil {
		fmt.Fprintf(stderr, "circlegate: verify: %v\n", err)
		return 1
	}
	defer closeStore()
	var contexts, broken, events int
	var txs uint64
	err = st.EachContext(ctx, func(c store.Context) error {
		contexts++
		err := store.VerifyContext(ctx, st, c)
		if err == nil {
			var n int
			n, err = store.VerifyHistory(ctx, st, c)
			events += n
		}
		if err != nil {
			broken++
			fmt.Fprintf(stdout, "BROKEN %v\n", err)
			return nil
		}
		txs += c.Seq + 1
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "circlegate: verify: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%d contexts, %d txs and %d events of history verified, %d broken\n", contexts, txs, events, broken)
	if broken > 0 {
		return 1
	}
	return 0
}

// eachContexter is a store that can walk every context (both backends can).
type eachContexter interface {
	store.Store
	EachContext(ctx context.Context, fn func(store.Context) error) error
}

func openVerified(ctx context.Context, data, redisURL, prefix string) (eachContexter, func(), error) {
	if redisURL == "" {
		st, err := store.OpenPebble(store.PebbleConfig{Dir: filepath.Join(data, "store")})
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	rdb, err := redisx.Open(ctx, redisURL, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := store.OpenRedis(ctx, store.RedisConfig{Client: rdb, Prefix: prefix})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return st, func() { st.Close(); rdb.Close() }, nil
}
