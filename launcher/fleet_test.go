package launcher

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/tenant"
)

// fleetModeTests are the tests TestFleetMode runs again with every gateway a fleet
// node: applications, contexts, roles, idempotency, events, job records, webhooks and
// the admin API.
var fleetModeTests = []string{
	"TestCounterLifecycle", "TestRolesPerContext", "TestTenantIsolation", "TestIdempotency",
	"TestForumAndWATApps", "TestJobGet", "TestEventsOverWebSocket", "TestRemovedMemberLosesSubscription",
	"TestSubscribeRefusals", "TestResume", "TestSSE",
	"TestWebhookStripe", "TestWebhookConcurrentDuplicates", "TestWebhookIdenfyAndStandard", "TestLedgerRecord",
	"TestAdminLogin", "TestAdminApplications", "TestAdminContexts", "TestAdminWebhooks",
	"TestAdminKeysAndRevocation", "TestTokenExpiryClosesConnections", "TestAdminDocWalkthrough",
}

// TestFleetMode: the embedded mode and the fleet mode behave the same. It runs the
// tests above in a child process in which every gateway keeps its state, queue and
// events in a real redis-server (each under a key prefix of its own) and runs its
// workers on the Redis queue.
func TestFleetMode(t *testing.T) {
	if os.Getenv(fleetEnv) != "" {
		t.Skip("this process runs in fleet mode already")
	}
	srv := redistest.Start(t, redistest.Options{})
	runFleetMode(t, srv.URL(), fleetModeTests)
}

// runFleetMode runs tests in a child process whose gateways are fleet nodes on the
// Redis at url, and fails unless each of them passed.
func runFleetMode(t *testing.T, url string, tests []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^("+strings.Join(tests, "|")+")$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), fleetEnv+"="+url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fleet mode: %v\n%s", err, out)
	}
	for _, name := range tests {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("fleet mode: %s did not pass\n%s", name, out)
		}
	}
}

// TestFleetTwoGateways: a gateway that only accepts and a gateway that runs the
// workers share one Redis. A mutation accepted by the first runs on the second's
// workers; its events reach a subscriber on the second; job.get answers on both; a
// token issued by one is valid on the other, and a nonce fetched from one is signed
// back through the other (no sticky sessions needed), once.
func TestFleetTwoGateways(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	acceptor := startEnv(t, func(c *Config) { c.Redis.URL, c.Execution.Workers = srv.URL(), -1 })
	runner := startEnv(t, func(c *Config) {
		c.Redis.URL, c.Tenants = srv.URL(), acceptor.g.cfg.Tenants
	})
	runner.A, runner.B = acceptor.A, acceptor.B
	owner, auth := acceptor.login(acceptor.A.Pub, acceptor.A)
	appID := install(t, owner, "counter")
	c := createContext(t, owner, map[string]any{"appId": appID})
	watcher, _ := runner.login(runner.A.Pub, runner.A)
	subscribe(t, watcher, []string{c.ContextID}, nil)

	var tx txResult
	if err := owner.Call(ctxT(t), "mutate", map[string]any{"contextId": c.ContextID, "method": "increment", "args": map[string]int{"by": 7}}, &tx); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, watcher); ev.Kind != "StateMutation" || ev.TxID != tx.TxID || ev.RootHash != tx.RootHash {
		t.Fatalf("event on the other gateway %+v, want the StateMutation of %+v", ev, tx)
	}
	var q struct{ Output valueOut }
	if err := watcher.Call(ctxT(t), "query", map[string]any{"contextId": c.ContextID, "method": "get"}, &q); err != nil || q.Output.Value != 7 {
		t.Fatalf("query on the other gateway = %+v, %v; want 7", q, err)
	}
	for _, e := range []*env{acceptor, runner} {
		cl, _ := e.login(e.A.Pub, e.A)
		var info jobInfo
		if err := cl.Call(ctxT(t), "job.get", map[string]string{"jobId": tx.JobID}, &info); err != nil || info.Status != "done" {
			t.Errorf("job.get on %s = %+v, %v", e.baseURL, info, err)
		}
	}
	status, body := runner.post("/"+runner.A.Pub+"/jsonrpc", auth.Token, `{"jsonrpc":"2.0","id":1,"method":"whoami"}`)
	var who struct {
		Result struct{ Role string } `json:"result"`
	}
	if err := json.Unmarshal(body, &who); status != 200 || err != nil || who.Result.Role != "owner" {
		t.Fatalf("a token of the first gateway on the second: %d %s", status, body)
	}

	member := testutil.NewKey(t)
	status, body = acceptor.get("/" + acceptor.A.Pub + "/auth/nonce?pubkey=" + member.Pub)
	var n struct{ Nonce string }
	if err := json.Unmarshal(body, &n); status != 200 || err != nil || n.Nonce == "" {
		t.Fatalf("nonce from the first gateway: %d %s", status, body)
	}
	form := fmt.Sprintf(`{"pubkey":%q,"signature":%q}`, member.Pub, tenant.SignPersonal(member.Priv, []byte(n.Nonce)))
	if status, body = runner.post("/"+runner.A.Pub+"/auth/token", "", form); status != 200 || !strings.Contains(string(body), `"token"`) {
		t.Fatalf("the nonce of the first gateway signed back through the second: %d %s", status, body)
	}
	if status, body = acceptor.post("/"+acceptor.A.Pub+"/auth/token", "", form); status != 401 {
		t.Fatalf("the same signature again, through the first gateway: %d %s; want 401", status, body)
	}
}
