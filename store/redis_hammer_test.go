package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/redisx"
	"github.com/circlegate/circlegate/store"
	"github.com/circlegate/circlegate/store/storetest"
)

// hammerEnv, when set in the environment ("url prefix tenant context n"), makes the
// test binary a hammering process instead of running the tests.
const hammerEnv = "CIRCLEGATE_STORE_HAMMER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(hammerEnv); spec != "" {
		os.Exit(hammer(spec))
	}
	os.Exit(m.Run())
}

// hammer increments a counter n times: read the head and the value, commit value+1
// on that seq, and on ErrStale read again. It prints the values it committed.
func hammer(spec string) int {
	f := strings.Fields(spec)
	n, _ := strconv.Atoi(f[4])
	ctx := context.Background()
	rdb, err := redisx.Open(ctx, f[0], 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := store.OpenRedis(ctx, store.RedisConfig{Client: rdb, Prefix: f[1]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for done := 0; done < n; {
		head, err := s.GetContext(ctx, f[2], f[3])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		v, _, err := s.Get(ctx, f[3], []byte("count"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		count, _ := strconv.Atoi(string(v))
		tx := storetest.NextTx(head, time.Now(), []store.Write{storetest.Set("count", strconv.Itoa(count+1))}, "Incremented")
		err = s.Commit(ctx, store.Commit{Tenant: f[2], ContextID: f[3], ExpectedSeq: head.Seq, Tx: tx})
		switch {
		case errors.Is(err, store.ErrStale):
			fmt.Println("stale")
			continue
		case err != nil:
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(count + 1)
		done++
	}
	return 0
}

// TestRedisTwoProcessesOneCounter: two processes increment one counter through the
// store at the same time; optimistic commits lose no increment, no value is committed
// twice, and the hash chain holds every tx.
func TestRedisTwoProcessesOneCounter(t *testing.T) {
	const each = 300
	srv := redistest.Start(t, redistest.Options{})
	s, _ := openRedis(t, srv, store.HistoryConfig{MaxEvents: 10000})
	ctx := context.Background()
	app, _, err := s.PutApp(ctx, store.App{Tenant: "tenant"}, []byte("counter"))
	if err != nil {
		t.Fatal(err)
	}
	g := storetest.GenesisTx("counter1", time.Now(), []store.Write{storetest.Set("count", "0")})
	if err := s.CreateContext(ctx, storetest.NewContext("tenant", app.ID, "counter1", g), g); err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	var outs []*strings.Builder
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s tenant counter1 %d", hammerEnv, srv.URL(), s.Prefix(), each))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs, outs = append(procs, cmd), append(outs, out)
	}
	seen := map[string]int{}
	for i, p := range procs {
		if err := p.Wait(); err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		for _, v := range strings.Fields(outs[i].String()) {
			seen[v]++
		}
	}
	t.Logf("%d commits lost a race and were redone", seen["stale"])
	head, err := s.GetContext(ctx, "tenant", "counter1")
	if err != nil {
		t.Fatal(err)
	}
	v, _, _ := s.Get(ctx, "counter1", []byte("count"))
	if string(v) != strconv.Itoa(2*each) || head.Seq != 2*each {
		t.Errorf("count %s at seq %d, want %d", v, head.Seq, 2*each)
	}
	for n := 1; n <= 2*each; n++ {
		if seen[strconv.Itoa(n)] != 1 {
			t.Errorf("value %d committed %d times", n, seen[strconv.Itoa(n)])
		}
	}
	if err := store.VerifyContext(ctx, s, head); err != nil {
		t.Error(err)
	}
	if evs, oldest, err := s.Events(ctx, "counter1", 0, 1000); err != nil || len(evs) != 2*each || oldest != 1 {
		t.Errorf("history: %d events from %d, err %v; want %d from 1", len(evs), oldest, err, 2*each)
	}
}
