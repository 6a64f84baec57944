package main

import (
	"fmt"
	"testing"
)

// TestParseResponse: a whole response is parsed, a partial one waits, and shapes the
// load generator cannot follow are errors rather than guesses.
func TestParseResponse(t *testing.T) {
	const reply = `{"outcome":"applied"}`
	whole := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: %d\r\n\r\n%s", len(reply), reply)
	status, body, size, ok, err := parseResponse([]byte(whole + "HTTP/1.1"))
	if err != nil || !ok || status != 200 || string(body) != reply || size != len(whole) {
		t.Fatalf("whole response: %d %q %d %v %v", status, body, size, ok, err)
	}
	for _, partial := range []string{"", "HTTP/1.1 200 OK\r\n", whole[:len(whole)-1]} {
		if _, _, _, ok, err := parseResponse([]byte(partial)); ok || err != nil {
			t.Errorf("partial %q: ok %v, err %v", partial, ok, err)
		}
	}
	for _, bad := range []string{
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n",
		"SPDY 200\r\nContent-Length: 0\r\n\r\n",
	} {
		if _, _, _, _, err := parseResponse([]byte(bad)); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

// TestReplyID: the fast path and the encoding/json fallback agree on ids and errors.
func TestReplyID(t *testing.T) {
	tests := []struct {
		msg   string
		id    int
		isErr bool
		ok    bool
	}{
		{`{"jsonrpc":"2.0","id":17,"result":{"value":1}}`, 17, false, true},
		{`{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"x"}}`, 3, true, true},
		{`{"id":5,"jsonrpc":"2.0","result":null}`, 5, false, true},
		{`{"jsonrpc":"2.0","result":{"id":9},"id":4}`, 4, false, true},
		{`not json`, 0, false, false},
	}
	for _, tc := range tests {
		id, isErr, ok := replyID([]byte(tc.msg))
		if id != tc.id || isErr != tc.isErr || ok != tc.ok {
			t.Errorf("replyID(%s) = %d, %v, %v; want %d, %v, %v", tc.msg, id, isErr, ok, tc.id, tc.isErr, tc.ok)
		}
	}
}
