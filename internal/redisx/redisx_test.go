package redisx

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
)

// replyErr is a server reply error, as go-redis makes them.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestErrKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind errs.Kind
	}{
		{io.EOF, errs.Overloaded},
		{context.DeadlineExceeded, errs.Overloaded},
		{redis.ErrClosed, errs.Overloaded},
		{replyErr("LOADING Redis is loading the dataset in memory"), errs.Overloaded},
		{replyErr("OOM command not allowed when used memory > 'maxmemory'."), errs.Overloaded},
		{replyErr("CLUSTERDOWN The cluster is down"), errs.Overloaded},
		{replyErr("WRONGTYPE Operation against a key holding the wrong kind of value"), errs.Internal},
		{replyErr("ERR Error running script"), errs.Internal},
	} {
		err := Err(tc.err, "op")
		if errs.KindOf(err) != tc.kind {
			t.Errorf("Err(%v) has kind %s, want %s", tc.err, errs.KindOf(err), tc.kind)
		}
		if unavailable := errors.Is(err, ErrUnavailable); unavailable != (tc.kind == errs.Overloaded) {
			t.Errorf("Err(%v): errors.Is(ErrUnavailable) = %v", tc.err, unavailable)
		}
	}
	if Err(nil, "op") != nil || Unavailable(redis.Nil) {
		t.Error("nil and redis.Nil are not failures")
	}
}

func TestURLs(t *testing.T) {
	base, seeds, err := splitSeeds("redis://a:1/0?addr=b:2&dial_timeout=3&addr=c:3")
	if err != nil || base != "redis://a:1/0?dial_timeout=3" || !slices.Equal(seeds, []string{"b:2", "c:3"}) {
		t.Errorf("splitSeeds = %q %v %v", base, seeds, err)
	}
	for url, ok := range map[string]bool{
		"redis://127.0.0.1:6379/0":            true,
		"rediss://user:pw@host:6380/2":        true,
		"redis://127.0.0.1:7000?addr=h:7001":  true,
		"http://127.0.0.1:6379":               false,
		"redis://127.0.0.1:6379/zero":         false,
		"redis://127.0.0.1:7000?addr=":        false,
		"redis://127.0.0.1:6379/0?nonsense=1": false,
	} {
		if err := CheckURL(url); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", url, err, ok)
		}
	}
	for prefix, ok := range map[string]bool{"cg": true, "fleet-a": true, "": false, "a{b": false, "}": false} {
		if err := CheckPrefix(prefix); (err == nil) != ok {
			t.Errorf("CheckPrefix(%q) = %v, want ok=%v", prefix, err, ok)
		}
	}
}
