// Package redisx is the Redis plumbing the fleet backends share: opening a client from
// a redis:// URL (a single server or a Redis Cluster, found out by asking the server),
// the key prefix rule, and the mapping of Redis failures to error kinds. The backends
// themselves (store, queue, event bus) own their keys and scripts.
package redisx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
)

// Open connects to the Redis at url (redis://[user:pass@]host:port[/db][?addr=host:port...])
// and returns a cluster client if that server is a Redis Cluster node (the other
// nodes are found through it; extra seeds may be given as addr parameters), else a
// client of that server and database. Commands are not retried by the client: a
// failed call fails, and the caller decides what to do (see RATIONALE.md).
func Open(ctx context.Context, url string, poolSize int) (redis.UniversalClient, error) {
	base, extra, err := splitSeeds(url)
	if err != nil {
		return nil, err
	}
	opt, err := redis.ParseURL(base)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	tune(opt, poolSize)
	single := redis.NewClient(opt)
	cluster, err := isCluster(ctx, single)
	if err != nil {
		_ = single.Close()
		return nil, fmt.Errorf("redis %s: %w", opt.Addr, err)
	}
	if !cluster {
		return single, nil
	}
	_ = single.Close()
	if opt.DB != 0 {
		return nil, fmt.Errorf("redis %s: a Redis Cluster has only database 0", opt.Addr)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: append([]string{opt.Addr}, extra...), Username: opt.Username, Password: opt.Password, Dialer: opt.Dialer,
		TLSConfig: opt.TLSConfig, PoolSize: opt.PoolSize, MaxRetries: opt.MaxRetries,
		DialTimeout: opt.DialTimeout, ReadTimeout: opt.ReadTimeout, WriteTimeout: opt.WriteTimeout,
		ContextTimeoutEnabled: true, DisableIdentity: true, Protocol: opt.Protocol,
		// MOVED and ASK redirects during a resharding are followed, not retried.
		MaxRedirects: 8,
	})
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis cluster %s: %w", opt.Addr, err)
	}
	return c, nil
}

// CheckURL reports whether url is a URL Open accepts, without connecting.
func CheckURL(url string) error {
	base, _, err := splitSeeds(url)
	if err == nil {
		_, err = redis.ParseURL(base)
	}
	return err
}

// splitSeeds takes the addr query parameters (extra cluster seeds) out of url.
func splitSeeds(url string) (string, []string, error) {
	base, query, ok := strings.Cut(url, "?")
	if !ok {
		return url, nil, nil
	}
	var keep, seeds []string
	for _, kv := range strings.Split(query, "&") {
		if v, ok := strings.CutPrefix(kv, "addr="); ok {
			if v == "" {
				return "", nil, errors.New("redis url: empty addr parameter")
			}
			seeds = append(seeds, v)
			continue
		}
		keep = append(keep, kv)
	}
	if len(keep) > 0 {
		base += "?" + strings.Join(keep, "&")
	}
	return base, seeds, nil
}

// tune sets the timeouts a gateway needs to fail fast during an outage: a dial or a
// reply that takes seconds means Redis is gone, and the caller gets -32006 at once
// instead of waiting for its whole deadline. Values given in the URL win.
func tune(o *redis.Options, poolSize int) {
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 3 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 3 * time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = -1
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	if poolSize > 0 && o.PoolSize == 0 {
		o.PoolSize = poolSize
	}
	o.ContextTimeoutEnabled = true
	o.DisableIdentity = true
	if o.Protocol == 0 {
		// RESP2: the fleet needs nothing of RESP3 (push notifications, client-side
		// caching), and with RESP3 every reply is checked for pending pushes.
		o.Protocol = 2
	}
	if o.TLSConfig == nil && o.Dialer == nil && o.Protocol == 2 {
		// Raw socket calls (rawconn.go). Not with TLS, whose records need the tls
		// package's reads, nor with RESP3, whose push frames go-redis looks for
		// through the connection's socket in ways peekConn was not checked against.
		o.Dialer = dialRaw(o.DialTimeout)
	}
}

func isCluster(ctx context.Context, c *redis.Client) (bool, error) {
	info, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		return false, err
	}
	return strings.Contains(info, "cluster_enabled:1"), nil
}

// CheckPrefix reports whether prefix can start every key of a deployment: not empty,
// and without the braces that mark a cluster hash tag.
func CheckPrefix(prefix string) error {
	if prefix == "" || strings.ContainsAny(prefix, "{}") {
		return errs.Param("prefix", "must be non-empty and contain no { or }")
	}
	return nil
}

// Unavailable reports whether err means Redis could not be reached or could not serve
// the command for now (a network error, a timeout, a closed connection, a server that
// is loading its data, has lost a cluster slot or is out of memory), as opposed to a
// reply error.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "BUSY ", "OOM "} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	return true // not a reply: the connection failed
}

// msgUnavailable is the client-safe message of every unavailability error.
const msgUnavailable = "the fleet's Redis is unavailable, try again"

// ErrUnavailable is in the chain of every error Err made from an unavailability, so
// callers can tell "Redis did not answer" (the operation may or may not have run)
// from an answer.
var ErrUnavailable = errors.New("redis unavailable")

// Err wraps a Redis failure for callers of the service layer: unavailability is an
// errs.Overloaded error (-32006 on the wire, the call may be retried), anything else
// an errs.Internal error whose text stays in the logs.
func Err(err error, what string) error {
	if err == nil {
		return nil
	}
	if Unavailable(err) {
		return errs.Wrap(errs.Overloaded, fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err), msgUnavailable)
	}
	return errs.Wrap(errs.Internal, err, "redis: %s", what)
}

// Backoff returns the wait before retry n (0-based) of a loop that lost Redis:
// 50 ms doubling up to max.
func Backoff(n int, max time.Duration) time.Duration {
	d := 50 * time.Millisecond
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// Sleep waits d or until ctx ends, and reports whether ctx is still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
