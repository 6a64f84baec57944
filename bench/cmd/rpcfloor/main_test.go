package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestListenAddr reads the listen address the way cgbench writes its config.
func TestListenAddr(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "circlegate.toml")
	text := "listen = \"127.0.0.1:4567\"\ndata = \"/tmp/x\"\n\n[sessions]\nlisten = \"wrong\"\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, err := listenAddr(conf)
	if err != nil || addr != "127.0.0.1:4567" {
		t.Fatalf("listenAddr = %q, %v; want 127.0.0.1:4567", addr, err)
	}
	if err := os.WriteFile(conf, []byte("[sessions]\nlisten = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenAddr(conf); err == nil {
		t.Fatal("a config without a top-level listen address: no error")
	}
}

// TestSession runs the calls cgbench makes and checks each answer's id and shape.
func TestSession(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	go func() { _ = run([]string{addr}) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/02abc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	call := func(id int, method string, params any) map[string]any {
		t.Helper()
		if err := conn.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params}); err != nil {
			t.Fatal(err)
		}
		var resp struct {
			ID     int            `json:"id"`
			Result map[string]any `json:"result"`
		}
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(msg, &resp); err != nil {
			t.Fatalf("%s: %v in %s", method, err, msg)
		}
		if resp.ID != id {
			t.Fatalf("%s: id %d, want %d", method, resp.ID, id)
		}
		return resp.Result
	}
	if n, _ := call(1, "fetch_nonce", map[string]string{"pubkey": "02abc"})["nonce"].(string); len(n) != 64 {
		t.Fatalf("nonce %q", n)
	}
	if ok, _ := call(2, "authenticate", map[string]string{"pubkey": "02abc"})["authenticated"].(bool); !ok {
		t.Fatal("not authenticated")
	}
	if pk := call(3, "whoami", nil)["pubkey"]; pk != "02abc" {
		t.Fatalf("whoami pubkey %v, want the one fetch_nonce named", pk)
	}
	if out, ok := call(4, "query", map[string]string{"contextId": "c", "method": "get"})["output"].(map[string]any); !ok || out["value"] != 0.0 {
		t.Fatalf("query output %v", out)
	}
}

func TestQueryWork(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "8us": 8 * time.Microsecond, "0s": 0} {
		if d, err := parseQueryWork(v); err != nil || d != want {
			t.Errorf("parseQueryWork(%q) = %v, %v; want %v", v, d, err, want)
		}
	}
	for _, v := range []string{"8", "-1us", "fast"} {
		if _, err := parseQueryWork(v); err == nil {
			t.Errorf("parseQueryWork(%q) accepted", v)
		}
	}
	const d = 200 * time.Microsecond
	start := time.Now()
	spin(d)
	if took := time.Since(start); took < d {
		t.Errorf("spin(%v) returned after %v", d, took)
	}
}
