// Command rpcfloor measures the floor that the paced scenarios (whoami, query) stand
// on: a JSON-RPC server over WebSocket with everything but the sockets, the frames
// and the envelope taken away. It speaks just enough of the gateway's protocol for
// cgbench to drive it as if it were the gateway: /health, a WebSocket endpoint at
// any path, fetch_nonce and authenticate (the signature is not checked), whoami,
// canned answers to app.install and context.create, query (canned, or the counter
// of the mutate floors below), and the Go runtime's metrics. Each connection has
// one goroutine that reads a frame with gorilla/websocket, decodes the request's id
// and method with encoding/json and writes the answer: the least any Go gateway
// built on these libraries does per call.
//
// cgbench starts it as the gateway, with the config file it writes:
//
//	go build -o bin/rpcfloor ./bench/cmd/rpcfloor
//	go run ./bench/cmd/cgbench -gateway bin/rpcfloor -scenarios whoami,query
//
// If this server cannot answer the paced load within a latency target on this
// machine, beside the same load generator, no gateway on it can.
//
// RPCFLOOR_QUERY_WORK (a Go duration, such as 8us) makes each query spin that long
// on its connection's goroutine before it answers: the floor of a server that also
// does a query's own work (reading the context, running the guest), measured in the
// gateway as CPU per query beyond the envelope's.
//
// With a data dir and no [redis] url in its config (as cgbench writes it) it is also
// the floor of the embedded mode's mutate (durable.go): each mutate increments a
// counter in Pebble, opened with the gateway's options, with a tx record, synced
// before the answer. RPCFLOOR_MUTATE_ROUNDS=1 commits them in rounds as the
// gateway's worker does, RPCFLOOR_MUTATE_GUEST=1 runs the installed app's increment
// on the gateway's engine for each, RPCFLOOR_MUTATE_WORK (a duration) spins that
// long per mutation (cgbench's processes inherit its environment):
//
//	RPCFLOOR_MUTATE_ROUNDS=1 RPCFLOOR_MUTATE_GUEST=1 go run ./bench/cmd/cgbench -gateway bin/rpcfloor -scenarios mutate
//
// With a [redis] url in its config it is also the floor of a fleet (fleet.go):
// `rpcfloor serve` queues each mutate on Redis Streams and `rpcfloor worker`
// commits it, so that cgbench's fleet-mutate runs on it:
//
//	go run ./bench/cmd/cgbench -gateway bin/rpcfloor -scenarios fleet-mutate
//
// RPCFLOOR_FLEET_KEEP (such as key:2:500,overwrite:6:8; see parseKeep) makes each
// commit also write records of those kinds, numbers and sizes per job, and
// RPCFLOOR_FLEET_WORK (a duration) makes a worker spin that long per job: the price,
// on this machine, of what a fleet keeps per mutation, of each call its scripts make,
// and of the work a worker does. RPCFLOOR_FLEET_GUEST=1 makes the workers read each
// job's counter and run the installed app's increment on it (fleet_guest.go).
//
// RPCFLOOR_WASM (a file) makes both floors that run a guest run that module instead
// of the one app.install sends, such as the WAT counter in place of the Go one.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	var err error
	if queryWork, err = parseWork("RPCFLOOR_QUERY_WORK", os.Getenv("RPCFLOOR_QUERY_WORK")); err != nil {
		fmt.Fprintln(os.Stderr, "rpcfloor:", err)
		os.Exit(2)
	}
	if mutateWork, err = parseWork("RPCFLOOR_MUTATE_WORK", os.Getenv("RPCFLOOR_MUTATE_WORK")); err != nil {
		fmt.Fprintln(os.Stderr, "rpcfloor:", err)
		os.Exit(2)
	}
	mutateRounds = os.Getenv("RPCFLOOR_MUTATE_ROUNDS") == "1"
	mutateGuest = os.Getenv("RPCFLOOR_MUTATE_GUEST") == "1"
	fleetGuest = os.Getenv("RPCFLOOR_FLEET_GUEST") == "1"
	if path := os.Getenv("RPCFLOOR_WASM"); path != "" {
		if installWasm, err = os.ReadFile(path); err != nil {
			fmt.Fprintln(os.Stderr, "rpcfloor: RPCFLOOR_WASM:", err)
			os.Exit(2)
		}
	}
	if work, err = parseWork("RPCFLOOR_FLEET_WORK", os.Getenv("RPCFLOOR_FLEET_WORK")); err == nil {
		keep, err = parseKeep(os.Getenv("RPCFLOOR_FLEET_KEEP"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rpcfloor:", err)
		os.Exit(2)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rpcfloor:", err)
		os.Exit(1)
	}
}

// run takes the gateway's command line, serve --config FILE, or just an address.
func run(args []string) error {
	var addr string
	var counters counterStore
	switch {
	case len(args) == 3 && args[0] == "serve" && args[1] == "--config":
		var err error
		if addr, err = listenAddr(args[2]); err != nil {
			return err
		}
		url, err := configValue(args[2], "redis", "url")
		if err != nil {
			return err
		}
		dir, err := configValue(args[2], "", "data")
		if err != nil {
			return err
		}
		switch {
		case url != "":
			if counters, err = startFleetGateway(url); err != nil {
				return err
			}
		case dir != "":
			if counters, err = openDurable(dir, filepath.Join(dir, "rpcfloor-cache")); err != nil {
				return err
			}
		}
	case len(args) > 0 && args[0] == "worker":
		return runWorker(args[1:])
	case len(args) == 1:
		addr = args[0]
	default:
		return errors.New("usage: rpcfloor serve --config FILE | rpcfloor worker --config FILE [--concurrency N] | rpcfloor ADDR")
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler()) // cgbench reads the Go runtime's allocation and GC counts
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		serve(conn, counters)
	})
	return http.ListenAndServe(addr, mux)
}

// listenAddr reads the top-level listen = "..." line of a gateway config.
func listenAddr(path string) (string, error) {
	addr, err := configValue(path, "", "listen")
	if err == nil && addr == "" {
		err = fmt.Errorf("%s: no listen address", path)
	}
	return addr, err
}

type request struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		PubKey    string `json:"pubkey"`
		ContextID string `json:"contextId"`
		Wasm      []byte `json:"wasm"` // app.install's module (base64 in JSON)
	} `json:"params"`
}

// counterStore keeps the counters that mutate increments and query reads: Redis in
// a fleet (fleet.go), Pebble in the embedded mode (durable.go).
type counterStore interface {
	mutate(contextID string) (int64, error)
	get(contextID string) (int64, error)
}

// serve answers conn's requests in order until it closes. With a counter store,
// mutate and query go through it; without one, they get canned answers.
func serve(conn *websocket.Conn, counters counterStore) {
	defer conn.Close()
	var pubkey string
	var out []byte
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var req request
		if err := json.Unmarshal(msg, &req); err != nil {
			return
		}
		if req.Params.PubKey != "" {
			pubkey = req.Params.PubKey
		}
		if req.Method == "query" {
			spin(queryWork)
		}
		if g, ok := counters.(guestRunner); ok && req.Method == "app.install" {
			wasm := req.Params.Wasm
			if installWasm != nil {
				wasm = installWasm
			}
			g.install(wasm)
		}
		out = append(out[:0], `{"jsonrpc":"2.0","id":`...)
		out = append(out, req.ID...)
		switch {
		case counters != nil && (req.Method == "mutate" || req.Method == "query"):
			out = counterResult(out, counters, req.Method, req.Params.ContextID)
		default:
			out = append(out, `,"result":`...)
			out = append(out, result(req.Method, pubkey)...)
		}
		out = append(out, '}')
		if err := conn.WriteMessage(websocket.TextMessage, out); err != nil {
			return
		}
	}
}

// counterResult appends the result (or error) member of a mutate or query answer
// that goes through a counter store.
func counterResult(out []byte, counters counterStore, method, contextID string) []byte {
	var v int64
	var err error
	if method == "mutate" {
		v, err = counters.mutate(contextID)
	} else {
		v, err = counters.get(contextID)
	}
	if err != nil {
		msg, _ := json.Marshal(err.Error())
		out = append(out, `,"error":{"code":-32006,"message":`...)
		out = append(out, msg...)
		return append(out, '}')
	}
	out = append(out, `,"result":{`...)
	if method == "mutate" {
		out = append(out, `"seq":`...)
		out = strconv.AppendInt(out, v, 10)
		out = append(out, ',')
	}
	out = append(out, `"output":{"value":`...)
	out = strconv.AppendInt(out, v, 10)
	return append(out, "}}"...)
}

// installWasm, when set (RPCFLOOR_WASM), is the module the floors run whatever
// app.install sends.
var installWasm []byte

// queryWork is how long each query spins before it answers (RPCFLOOR_QUERY_WORK).
var queryWork time.Duration

// parseWork reads a duration of work from the environment variable name: empty is
// none.
func parseWork(name, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q is not a duration of 0 or more", name, v)
	}
	return d, nil
}

// spin keeps the CPU busy for d, as a query's own work would, without blocking.
func spin(d time.Duration) {
	if d <= 0 {
		return
	}
	for start := time.Now(); time.Since(start) < d; {
	}
}

// result is the canned answer to method, sized like the gateway's.
func result(method, pubkey string) string {
	switch method {
	case "fetch_nonce":
		return `{"nonce":"` + randomHex(32) + `"}`
	case "authenticate":
		return `{"authenticated":true,"token":"","expiresAt":0,"role":"owner"}`
	case "whoami":
		return `{"pubkey":"` + pubkey + `","role":"owner","tenant":"` + pubkey + `"}`
	case "app.install":
		return `{"appId":"` + randomHex(32) + `"}`
	case "context.create":
		return `{"contextId":"` + randomHex(32) + `","seq":0,"rootHash":"` + randomHex(32) + `"}`
	case "query":
		return `{"output":{"value":0}}`
	}
	return `null`
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
