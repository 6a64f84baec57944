package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/circlegate/circlegate/internal/testapps"
)

// TestDurable runs the embedded mutate floor in each of its modes: concurrent
// increments of two counters each get a distinct new value, get reads the last, and
// Pebble holds the counter's state and one tx record per increment.
func TestDurable(t *testing.T) {
	defer func(r, g bool) { mutateRounds, mutateGuest = r, g }(mutateRounds, mutateGuest)
	counter := testapps.Build(t, "counter")
	const clients, each = 4, 25
	for _, c := range []struct {
		name          string
		rounds, guest bool
	}{
		{"own batches", false, false},
		{"rounds", true, false},
		{"own batches, guest", false, true},
		{"rounds, guest", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			mutateRounds, mutateGuest = c.rounds, c.guest
			d, err := openDurable(t.TempDir(), testapps.CompileCacheDir(t))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := d.close(); err != nil {
					t.Error(err)
				}
			}()
			if c.guest {
				if _, err := d.mutate("a"); err == nil {
					t.Fatal("mutate ran a guest before any app was installed")
				}
				d.install(counter)
			}
			seen := map[string]map[int64]bool{"a": {}, "b": {}}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for cl := range clients {
				wg.Go(func() {
					for i := range each {
						ctx := []string{"a", "b"}[(cl+i)%2]
						v, err := d.mutate(ctx)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						if seen[ctx][v] {
							t.Errorf("counter %s: %d answered twice", ctx, v)
						}
						seen[ctx][v] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			want := int64(clients * each / 2)
			for _, ctx := range []string{"a", "b"} {
				if v, err := d.get(ctx); err != nil || v != want {
					t.Errorf("get(%s) = %d, %v; want %d", ctx, v, err, want)
				}
				if n := len(seen[ctx]); n != int(want) {
					t.Errorf("counter %s: %d distinct answers, want %d", ctx, n, want)
				}
				key, val := "s/"+ctx, binary.BigEndian.AppendUint64(nil, uint64(want))
				if c.guest {
					key, val = "s/"+ctx+"/count", []byte(strconv.FormatInt(want, 10))
				}
				got, closer, err := d.db.Get([]byte(key))
				if err != nil || string(got) != string(val) {
					t.Errorf("%s = %q, %v; want %q", key, got, err, val)
				}
				if err == nil {
					closer.Close()
				}
				for seq := int64(1); seq <= want; seq++ {
					tx := fmt.Appendf(nil, "t/%s/%016x", ctx, seq)
					if _, closer, err := d.db.Get(tx); err != nil {
						t.Errorf("tx %s: %v", tx, err)
					} else {
						closer.Close()
					}
				}
			}
		})
	}
}

// TestDurableServe drives the floor as cgbench's mutate scenario does: a config
// with a data dir, app.install, mutate and query over WebSocket. (TestDurable runs
// the guest; here the rounds run without it.)
func TestDurableServe(t *testing.T) {
	defer func(r, g bool) { mutateRounds, mutateGuest = r, g }(mutateRounds, mutateGuest)
	mutateRounds, mutateGuest = true, false
	addr := freeAddr(t)
	conf := filepath.Join(t.TempDir(), "circlegate.toml")
	text := fmt.Sprintf("listen = %q\ndata = %q\n", addr, t.TempDir())
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	go func() { _ = run([]string{"serve", "--config", conf}) }()
	waitHealthy(t, addr)
	conn := dial(t, addr)
	wasm := base64.StdEncoding.EncodeToString([]byte("\x00asm\x01\x00\x00\x00"))
	if id, _ := call(t, conn, 1, "app.install", map[string]string{"wasm": wasm})["appId"].(string); len(id) != 64 {
		t.Fatalf("appId %q", id)
	}
	for i := 1; i <= 3; i++ {
		res := call(t, conn, i+1, "mutate", map[string]string{"contextId": "c", "method": "increment"})
		if v := outputValue(t, res); v != float64(i) || res["seq"] != v {
			t.Fatalf("mutate %d: %v", i, res)
		}
	}
	if v := outputValue(t, call(t, conn, 9, "query", map[string]string{"contextId": "c", "method": "get"})); v != 3 {
		t.Fatalf("query value %v, want 3", v)
	}
}
