package launcher

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/internal/testutil"
)

// buildBinary builds cmd/circlegate into a temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "circlegate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/circlegate")
	cmd.Dir = testapps.Root(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var addrRE = regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)

// startProcess runs `circlegate serve` as a child process and returns it with its
// address once it listens.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	if !slices.Contains(args, "--data") { // never the default ./data, in the source tree
		args = append(args, "--data", t.TempDir())
	}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			if os.Getenv("CG_GATEWAY_LOG") != "" {
				fmt.Fprintln(os.Stderr, "gateway:", sc.Text())
			}
		}
	}()
	select {
	case a := <-addr:
		return cmd, a
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not start")
	}
	return nil, ""
}

// TestKill9KeepsAcknowledgedMutations kills the gateway with SIGKILL in the middle of
// a stream of mutations: after a restart every acknowledged increment is there, state
// and log agree (nothing half-applied), and `circlegate verify` finds every chain intact.
func TestKill9KeepsAcknowledgedMutations(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real gateway process")
	}
	bin := buildBinary(t)
	data := t.TempDir()
	owner := testutil.NewKey(t)
	cmd, addr := startProcess(t, bin, "-k", owner.Pub, "--data", data)
	url := "ws://" + addr + "/" + owner.Pub
	c, err := client.Dial(ctxT(t), url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Authenticate(ctxT(t), owner.Priv); err != nil {
		t.Fatal(err)
	}
	appID := install(t, c, "counter")
	var ids []string
	for range 4 {
		ids = append(ids, createContext(t, c, map[string]any{"appId": appID}).ContextID)
	}

	var mu sync.Mutex
	acked := map[string]int{} // highest value an acknowledged increment returned
	var total int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			id := ids[w%len(ids)]
			for {
				select {
				case <-stop:
					return
				default:
				}
				var tx txResult
				if err := c.Call(context.Background(), "mutate", map[string]any{"contextId": id, "method": "increment"}, &tx); err != nil {
					return // the gateway is gone
				}
				var v valueOut
				_ = json.Unmarshal(tx.Output, &v)
				mu.Lock()
				acked[id] = max(acked[id], v.Value)
				total++
				mu.Unlock()
			}
		})
	}
	testutil.CheckFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if total < 300 {
			return errNotYet
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	close(stop)
	wg.Wait()
	c.Close()
	t.Logf("%d mutations acknowledged before kill -9", total)

	cmd2, addr2 := startProcess(t, bin, "-k", owner.Pub, "--data", data)
	c2, err := client.Dial(ctxT(t), "ws://"+addr2+"/"+owner.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Authenticate(ctxT(t), owner.Priv); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		var q struct{ Output valueOut }
		if err := c2.Call(ctxT(t), "query", map[string]any{"contextId": id, "method": "get"}, &q); err != nil {
			t.Fatal(err)
		}
		var ci contextInfo
		if err := c2.Call(ctxT(t), "context.get", []string{id}, &ci); err != nil {
			t.Fatal(err)
		}
		if q.Output.Value < acked[id] {
			t.Errorf("context %s: value %d after restart, but %d was acknowledged", id, q.Output.Value, acked[id])
		}
		if uint64(q.Output.Value) != ci.Seq {
			t.Errorf("context %s: value %d but %d txs: state and log disagree", id, q.Output.Value, ci.Seq)
		}
	}
	c2.Close()
	_ = cmd2.Process.Signal(syscall.SIGTERM)
	_ = cmd2.Wait()
	out, err := exec.Command(bin, "verify", "--data", data).CombinedOutput()
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	t.Logf("verify: %s", out)
}

var errNotYet = errors.New("not yet")
