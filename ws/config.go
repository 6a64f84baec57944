package ws

import (
	"runtime"
	"syscall"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// Config configures WebSocket sessions. Each zero value means the default in its
// comment; NewHub applies defaults and then Validate.
type Config struct {
	// MaxConnections bounds the sessions of this process across all tenants. Zero means
	// the process's open-file limit (RLIMIT_NOFILE) minus FDReserve: every session holds
	// one file descriptor, and on hosts where one process may hold at most 20,000 files
	// that is 19,488 sessions. Past it, upgrades are refused with HTTP 503.
	MaxConnections int `toml:"max_connections"`
	// FDReserve is the number of file descriptors kept back from sessions for storage,
	// Redis and listeners when MaxConnections is derived. Zero means 512.
	FDReserve int `toml:"fd_reserve"`
	// MaxConnectionsPerTenant bounds the sessions of one tenant. Zero means no bound
	// beyond MaxConnections.
	MaxConnectionsPerTenant int `toml:"max_connections_per_tenant"`
	// MaxMessageBytes bounds one incoming message; larger closes the session with
	// 1009 (message too big). Zero means 1 MiB.
	MaxMessageBytes int64 `toml:"max_message_bytes"`
	// OwnerMaxMessageBytes bounds one incoming message once the session has
	// authenticated as a tenant owner, so that app.install fits a module of several
	// MiB. Zero means 48 MiB.
	OwnerMaxMessageBytes int64 `toml:"owner_max_message_bytes"`
	// OutboundQueueBytes bounds the replies and events waiting to be written to one
	// session; past it the session is closed as "slow". Zero means 1 MiB.
	OutboundQueueBytes int `toml:"outbound_queue_bytes"`
	// EventWriteInterval is the most often a session writes when it has only events
	// queued: events that come faster wait up to this long and leave together in one
	// system call. Replies and the first event after a quiet spell go at once. Zero
	// means 20ms; a negative value writes every event at once.
	EventWriteInterval time.Duration `toml:"event_write_interval"`
	// MaxSubscriptions bounds the contexts one session or SSE stream subscribes to at
	// once. Zero means 1000.
	MaxSubscriptions int `toml:"max_subscriptions"`
	// WriteTimeout is the deadline for writing queued frames. Zero means 10s.
	WriteTimeout time.Duration `toml:"write_timeout"`
	// PingInterval is how often the server pings a session. Zero means 25s.
	PingInterval time.Duration `toml:"ping_interval"`
	// PongTimeout is how long past PingInterval the server waits for any frame (a pong
	// or a message) before closing the session as "no_pong". Zero means 10s.
	PongTimeout time.Duration `toml:"pong_timeout"`
	// AuthTimeout closes a session that has not authenticated within it. Zero means 30s.
	AuthTimeout time.Duration `toml:"auth_timeout"`
	// MaxConcurrentRequests bounds the requests of one session running at once; the
	// reader waits for a slot. Zero means 16.
	MaxConcurrentRequests int `toml:"max_concurrent_requests"`
	// RequestRate is the sustained requests per second one session may make; past it
	// requests fail with -32005. Zero means unlimited.
	RequestRate float64 `toml:"request_rate"`
	// RequestBurst is the burst allowed above RequestRate. Zero means RequestRate
	// rounded up, at least 1.
	RequestBurst int `toml:"request_burst"`
	// ReadBufferSize is the read buffer of an active session. Zero means 512 bytes:
	// JSON-RPC requests are small, and a large message's payload is read straight
	// into the message.
	ReadBufferSize int `toml:"read_buffer_size"`
	// ReaderIdle is how long a session's reader goroutine waits for the client's next
	// bytes before it ends: the idle session then holds no goroutine and no read
	// buffer, and its next bytes start a new reader (Linux, plain TCP; behind TLS
	// termination in the gateway every session keeps its reader). Zero means 2s; a
	// negative value keeps a reader per session.
	ReaderIdle time.Duration `toml:"reader_idle"`
	// ServeWorkers is the most long-lived goroutines that run requests. A request goes
	// to an idle one, or to a new goroutine when none is idle, which then stays while
	// fewer than ServeWorkers do; reusing them saves growing a fresh goroutine's stack
	// on every request. A mutation holds its goroutine until its commit, so the
	// requests in flight are rate × latency: about 250 in a fleet at 6,000
	// mutations/s. Zero means 1024, or 64*GOMAXPROCS if that is more.
	ServeWorkers int `toml:"serve_workers"`
	// AllowedOrigins lists the browser origins allowed to connect. Empty means any
	// origin: sessions authenticate by signature, never by cookie.
	AllowedOrigins []string `toml:"allowed_origins"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.FDReserve == 0 {
		c.FDReserve = 512
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = fdLimit() - c.FDReserve
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.OwnerMaxMessageBytes == 0 {
		c.OwnerMaxMessageBytes = 48 << 20
	}
	if c.OutboundQueueBytes == 0 {
		c.OutboundQueueBytes = 1 << 20
	}
	if c.EventWriteInterval == 0 {
		c.EventWriteInterval = 20 * time.Millisecond
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = 1000
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = 10 * time.Second
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 30 * time.Second
	}
	if c.MaxConcurrentRequests == 0 {
		c.MaxConcurrentRequests = 16
	}
	if c.RequestRate > 0 && c.RequestBurst == 0 {
		c.RequestBurst = max(1, int(c.RequestRate+0.999))
	}
	if c.ServeWorkers == 0 {
		c.ServeWorkers = max(1024, 64*runtime.GOMAXPROCS(0))
	}
	if c.ReaderIdle == 0 {
		c.ReaderIdle = 2 * time.Second
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = 512
	}
	return c
}

// Validate reports the first invalid field, by its config key.
func (c Config) Validate() error {
	switch {
	case c.MaxConnections <= 0:
		return errs.Param("max_connections", "must be positive (the open-file limit leaves no room after fd_reserve)")
	case c.MaxConnectionsPerTenant < 0:
		return errs.Param("max_connections_per_tenant", "must not be negative")
	case c.MaxMessageBytes < 256:
		return errs.Param("max_message_bytes", "must be at least 256")
	case c.OwnerMaxMessageBytes < c.MaxMessageBytes:
		return errs.Param("owner_max_message_bytes", "must be at least max_message_bytes")
	case c.OutboundQueueBytes < 1024:
		return errs.Param("outbound_queue_bytes", "must be at least 1024")
	case c.WriteTimeout < 0, c.PingInterval < 0, c.PongTimeout < 0, c.AuthTimeout < 0:
		return errs.Param("write_timeout", "durations must not be negative")
	case c.MaxConcurrentRequests < 0:
		return errs.Param("max_concurrent_requests", "must not be negative")
	case c.RequestRate < 0:
		return errs.Param("request_rate", "must not be negative")
	case c.MaxSubscriptions < 0:
		return errs.Param("max_subscriptions", "must not be negative")
	case c.ServeWorkers < 0:
		return errs.Param("serve_workers", "must not be negative")
	case c.ReadBufferSize < 256:
		return errs.Param("read_buffer_size", "must be at least 256")
	}
	return nil
}

// fdLimit returns the soft open-file limit (the Go runtime raises it to the hard limit
// at start-up).
func fdLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 1 << 20
	}
	return int(rl.Cur)
}
