package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/tenant"
)

type pair struct {
	A float64 `json:"minuend"`
	B float64 `json:"subtrahend"`
}

type sumParams struct{ A, B, C float64 }

// newTestServer registers the test methods of testdata/test_openrpc.json.
func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	doc, err := os.ReadFile("testdata/test_openrpc.json")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ParseSpec(doc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(cfg, spec, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	Register(s, "subtract", Public, func(_ context.Context, _ *Call, p pair) (float64, error) { return p.A - p.B, nil })
	Register(s, "sum", Public, func(_ context.Context, _ *Call, p sumParams) (float64, error) { return p.A + p.B + p.C, nil })
	Register(s, "notify_hello", Public, func(context.Context, *Call, struct{ N int }) (any, error) { return nil, nil })
	Register(s, "get_data", Public, func(context.Context, *Call, struct{}) ([]any, error) { return []any{"hello", 5}, nil })
	Register(s, "echo", Public, func(_ context.Context, _ *Call, p struct {
		Text string `json:"text"`
	}) (string, error) {
		return p.Text, nil
	})
	Register(s, "boom", Public, func(context.Context, *Call, struct{}) (any, error) { panic("secret detail") })
	Register(s, "leak", Public, func(context.Context, *Call, struct{}) (any, error) {
		return nil, errors.New("db password is hunter2")
	})
	Register(s, "sleep", Public, func(ctx context.Context, _ *Call, p struct {
		MS int `json:"ms"`
	}) (int, error) {
		select {
		case <-time.After(time.Duration(p.MS) * time.Millisecond):
			return p.MS, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	Register(s, "secret", Authenticated, func(_ context.Context, c *Call, _ struct{}) (string, error) {
		return c.Principal.PubKey, nil
	})
	return s
}

func TestTranscripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no transcripts")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s := newTestServer(t, Config{})
			runTranscript(t, s, f)
		})
	}
}

// runTranscript sends every "-->" line and expects the following "<--" line as the
// reply (compared as JSON), or no reply when none follows.
func runTranscript(t *testing.T, s *Server, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "-->") || strings.HasPrefix(l, "<--") {
			lines = append(lines, l)
		}
	}
	peer := &Peer{Tenant: &tenant.Tenant{PubKey: "t"}, Transport: "test"}
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "-->") {
			t.Fatalf("line %q: reply without request", lines[i])
		}
		req := strings.TrimSpace(lines[i][3:])
		got := s.Handle(context.Background(), peer, []byte(req))
		if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "<--") {
			i++
			want := strings.TrimSpace(lines[i][3:])
			if !jsonEqual(t, got, []byte(want)) {
				t.Errorf("--> %s\ngot  <-- %s\nwant <-- %s", req, got, want)
			}
			continue
		}
		if got != nil {
			t.Errorf("--> %s\ngot  <-- %s\nwant no reply", req, got)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Logf("reply is not JSON: %s", a)
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("transcript line is not JSON: %s", b)
	}
	return reflect.DeepEqual(x, y)
}

func TestBatchLimit(t *testing.T) {
	s := newTestServer(t, Config{MaxBatch: 2})
	peer := &Peer{Tenant: &tenant.Tenant{}}
	req := `[{"jsonrpc":"2.0","method":"get_data","id":1},{"jsonrpc":"2.0","method":"get_data","id":2},{"jsonrpc":"2.0","method":"get_data","id":3}]`
	got := s.Handle(context.Background(), peer, []byte(req))
	want := `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: batch of 3 exceeds the limit of 2"}}`
	if !jsonEqual(t, got, []byte(want)) {
		t.Fatalf("got %s", got)
	}
}

func TestCallTimeout(t *testing.T) {
	s := newTestServer(t, Config{CallTimeout: 20 * time.Millisecond})
	got := s.Handle(context.Background(), &Peer{}, []byte(`{"jsonrpc":"2.0","method":"sleep","params":[5000],"id":1}`))
	want := `{"jsonrpc":"2.0","id":1,"error":{"code":-32006,"message":"deadline exceeded"}}`
	if !jsonEqual(t, got, []byte(want)) {
		t.Fatalf("got %s", got)
	}
}

// TestSelfTimed: a self-timed method runs under the caller's context, without the
// call timeout; the others still time out.
func TestSelfTimed(t *testing.T) {
	s := newTestServer(t, Config{CallTimeout: 20 * time.Millisecond})
	s.SetSelfTimed("sleep")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got := s.Handle(ctx, &Peer{}, []byte(`{"jsonrpc":"2.0","method":"sleep","params":[5000],"id":1}`))
	want := `{"jsonrpc":"2.0","id":1,"error":{"code":-32006,"message":"deadline exceeded"}}`
	if !jsonEqual(t, got, []byte(want)) {
		t.Fatalf("got %s", got)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("a self-timed call ended after %v, before its caller's deadline", took)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("SetSelfTimed of an unregistered method did not panic")
		}
	}()
	s.SetSelfTimed("missing")
}

// TestEncodedResult: an Encoded result is sent as it is; other results, and an
// empty Encoded, go through json.Marshal.
func TestEncodedResult(t *testing.T) {
	enc := Encoded(`{"a":[1,2]}`)
	got, err := encodeResult(enc)
	if err != nil || &got[0] != &enc[0] {
		t.Fatalf("Encoded was copied or changed: %s, %v", got, err)
	}
	for _, tc := range []struct {
		in   any
		want string
	}{{"x", `"x"`}, {Encoded(nil), `null`}, {Encoded(""), `null`}, {json.Number("1"), `1`}} {
		if got, err := encodeResult(tc.in); err != nil || string(got) != tc.want {
			t.Errorf("encodeResult(%#v) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestAuthenticatedAndExpired(t *testing.T) {
	s := newTestServer(t, Config{})
	tn := &tenant.Tenant{PubKey: "t"}
	peer := &Peer{Tenant: tn}
	peer.SetPrincipal(&tenant.Principal{Tenant: tn, PubKey: "k", ExpiresAt: time.Now().Add(time.Hour)})
	got := s.Handle(context.Background(), peer, []byte(`{"jsonrpc":"2.0","method":"secret","id":1}`))
	if !jsonEqual(t, got, []byte(`{"jsonrpc":"2.0","id":1,"result":"k"}`)) {
		t.Fatalf("got %s", got)
	}
	peer.SetPrincipal(&tenant.Principal{Tenant: tn, PubKey: "k", ExpiresAt: time.Now().Add(-time.Second)})
	got = s.Handle(context.Background(), peer, []byte(`{"jsonrpc":"2.0","method":"secret","id":2}`))
	if !jsonEqual(t, got, []byte(`{"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"authentication expired: authenticate again"}}`)) {
		t.Fatalf("got %s", got)
	}
}

func TestRegisterRefusesUndocumented(t *testing.T) {
	s := newTestServer(t, Config{})
	for name, fn := range map[string]func(){
		"undocumented": func() {
			Register(s, "nope", Public, func(context.Context, *Call, struct{}) (any, error) { return nil, nil })
		},
		"twice": func() {
			Register(s, "echo", Public, func(context.Context, *Call, struct{}) (any, error) { return nil, nil })
		},
		"wrong access": func() {
			s2 := newTestServer(t, Config{})
			delete(s2.methods, "echo")
			Register(s2, "echo", Authenticated, func(context.Context, *Call, struct{}) (any, error) { return nil, nil })
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			fn()
		})
	}
}

func TestToWireHidesInternalText(t *testing.T) {
	for _, err := range []error{errors.New("secret"), context.Canceled} {
		w := ToWire(err)
		if w.Code != CodeInternal || w.Message != "internal error" {
			t.Errorf("ToWire(%v) = %+v", err, w)
		}
	}
}

func FuzzHandle(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}`,
		`{"jsonrpc":"2.0","method":"echo","params":{"text":"x"},"id":"a"}`,
		`[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},{"foo":"boo"}]`,
		`[]`, `[1]`, `{`, `null`, `{"jsonrpc":"2.0","method":"notify_hello"}`,
		`{"jsonrpc":"2.0","id":[],"method":"x"}`, `{"jsonrpc":"2.0","id":1e999,"method":"echo","params":[1]}`,
	} {
		f.Add([]byte(seed))
	}
	s := newTestServer(f, Config{CallTimeout: 50 * time.Millisecond})
	peer := &Peer{Tenant: &tenant.Tenant{}}
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Contains(string(data), "sleep") {
			return
		}
		out := s.Handle(context.Background(), peer, data)
		if out != nil && !json.Valid(out) {
			t.Fatalf("reply is not JSON: %q -> %q", data, out)
		}
		if strings.Contains(string(out), "hunter2") || strings.Contains(string(out), "secret detail") {
			t.Fatalf("internal text leaked: %s", out)
		}
	})
}

func TestInline(t *testing.T) {
	s := newTestServer(t, Config{})
	s.SetInline("echo")
	for msg, want := range map[string]bool{
		`{"jsonrpc":"2.0","id":1,"method":"echo","params":["x"]}`:      true,
		` { "id" : {"a":[1,"method"]} , "method" : "echo" }`:           true,
		`{"jsonrpc":"2.0","id":1,"method":"sleep","params":[1]}`:       false,
		`[{"jsonrpc":"2.0","id":1,"method":"echo","params":["x"]}]`:    false,
		`{"jsonrpc":"2.0","id":1,"method":"ech\u006f","params":["x"]}`: false,
		`{"jsonrpc":"2.0","id":1,"params":{"method":"echo"}}`:          false,
		`{"jsonrpc":"2.0","id":1,"method":"nope"}`:                     false,
		`{"method":"echo"`: true, // Handle answers -32700
		`not json`:         false,
		``:                 false,
	} {
		if got := s.Inline([]byte(msg)); got != want {
			t.Errorf("Inline(%s) = %v, want %v", msg, got, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("SetInline of an unregistered method did not panic")
		}
	}()
	s.SetInline("missing")
}
