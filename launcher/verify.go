package launcher

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/circlegate/circlegate/store"
)

// runVerify checks the hash chain of every context in a data dir: `circlegate verify
// --data DIR`. The gateway must not be running on that dir (Pebble locks it).
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./data", "data directory of a stopped gateway")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	st, err := store.OpenPebble(store.PebbleConfig{Dir: filepath.Join(*data, "store")})
	if err != nil {
		fmt.Fprintf(stderr, "circlegate: verify: %v\n", err)
		return 1
	}
	defer st.Close()
	var contexts, broken int
	var txs uint64
	err = st.EachContext(ctx, func(c store.Context) error {
		contexts++
		if err := store.VerifyContext(ctx, st, c); err != nil {
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
	fmt.Fprintf(stdout, "%d contexts, %d txs verified, %d broken\n", contexts, txs, broken)
	if broken > 0 {
		return 1
	}
	return 0
}
