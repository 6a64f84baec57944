package launcher

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/circlegate/circlegate/client"
)

func runSubscribe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("subscribe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "tenant WebSocket URL, ws://HOST/<tenant_pk>")
	key := fs.String("key", "", "private key hex to authenticate with")
	count := fs.Int("count", 0, "exit after printing this many events (0: run until interrupted)")
	var since stringList
	fs.Var(&since, "since", "ID:SEQ: resume context ID after event SEQ (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" || *key == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: circlegate subscribe --url ws://HOST/<tenant_pk> --key PRIVATE_HEX [--since ID:SEQ ...] [--count N] CONTEXT_ID...")
		return 2
	}
	priv, err := client.ParsePrivateKey(*key)
	if err != nil {
		fmt.Fprintf(stderr, "circlegate: --key: %v\n", err)
		return 2
	}
	from := map[string]uint64{}
	for _, s := range since {
		id, seq, ok := strings.Cut(s, ":")
		n, err := strconv.ParseUint(seq, 10, 64)
		if !ok || id == "" || err != nil {
			fmt.Fprintf(stderr, "circlegate: --since %q: want ID:SEQ\n", s)
			return 2
		}
		from[id] = n
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nothing := false
	w := client.Watch(ctx, client.WatchConfig{
		URL: *url, Key: priv, ContextIDs: fs.Args(), Since: from,
		OnSubscribed: func(r client.SubscribeResult) {
			if len(r.Subscribed) == 0 {
				nothing = true
				cancel()
			}
			for _, ref := range r.Refused {
				fmt.Fprintf(stderr, "circlegate: %s: error %d: %s\n", ref.ContextID, ref.Error.Code, ref.Error.Message)
			}
			for id, ok := range r.Recovered {
				if !ok {
					fmt.Fprintf(stderr, "circlegate: %s: history no longer reaches the resume point; events missed meanwhile are lost, refetch state\n", id)
				}
			}
		},
	})
	defer w.Stop()
	enc := json.NewEncoder(stdout)
	printed := 0
	for ev := range w.Events() {
		if err := enc.Encode(ev); err != nil {
			return 1
		}
		if printed++; *count > 0 && printed >= *count {
			return 0
		}
	}
	if err := w.Err(); err != nil {
		return printCallError(stderr, "subscribe", err)
	}
	if nothing {
		return 1
	}
	return 0
}
