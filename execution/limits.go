package execution

import (
	"time"

	"github.com/circlegate/circlegate/errs"
)

// Limits bound one call of an app. They are the [execution.limits] section of the
// config file. Every limit is per call; going past one fails that call only
// (errs.Execution, or errs.Overloaded for the timeout) and discards its instance.
type Limits struct {
	// Timeout is the wall time of one call, module start-up included. Zero means 2s.
	Timeout time.Duration `toml:"timeout"`
	// MemoryPages is the most linear memory of an instance, in 64 KiB pages. Zero means
	// 1024 (64 MiB).
	MemoryPages uint32 `toml:"memory_pages"`
	// MaxOutputBytes bounds what value_return may return. Zero means 1 MiB.
	MaxOutputBytes int `toml:"max_output_bytes"`
	// MaxEvents is the most events one call may emit. Zero means 100.
	MaxEvents int `toml:"max_events"`
	// MaxEventBytes bounds one event, kind plus data. Zero means 64 KiB.
	MaxEventBytes int `toml:"max_event_bytes"`
	// MaxLogLines is the most log lines kept per call; further lines are dropped and
	// counted, which is not an error. Zero means 100.
	MaxLogLines int `toml:"max_log_lines"`
	// MaxKeyBytes bounds a storage key (and a scan prefix). Zero means 1 KiB.
	MaxKeyBytes int `toml:"max_key_bytes"`
	// MaxValueBytes bounds a storage value. Zero means 1 MiB.
	MaxValueBytes int `toml:"max_value_bytes"`
	// MaxWrites is the most distinct keys one call may write or remove. Zero means 1000.
	MaxWrites int `toml:"max_writes"`
}

// The largest values Validate accepts: lengths cross the ABI as u32, and a wasm32
// memory has at most 65536 pages.
const (
	maxLimitBytes = 1 << 30
	maxMemPages   = 65536
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	return l.or(Limits{
		Timeout:        2 * time.Second,
		MemoryPages:    1024,
		MaxOutputBytes: 1 << 20,
		MaxEvents:      100,
		MaxEventBytes:  64 << 10,
		MaxLogLines:    100,
		MaxKeyBytes:    1 << 10,
		MaxValueBytes:  1 << 20,
		MaxWrites:      1000,
	})
}

// or returns l with every zero field taken from base.
func (l Limits) or(base Limits) Limits {
	if l.Timeout == 0 {
		l.Timeout = base.Timeout
	}
	if l.MemoryPages == 0 {
		l.MemoryPages = base.MemoryPages
	}
	orInt(&l.MaxOutputBytes, base.MaxOutputBytes)
	orInt(&l.MaxEvents, base.MaxEvents)
	orInt(&l.MaxEventBytes, base.MaxEventBytes)
	orInt(&l.MaxLogLines, base.MaxLogLines)
	orInt(&l.MaxKeyBytes, base.MaxKeyBytes)
	orInt(&l.MaxValueBytes, base.MaxValueBytes)
	orInt(&l.MaxWrites, base.MaxWrites)
	return l
}

func orInt(v *int, base int) {
	if *v == 0 {
		*v = base
	}
}

// Validate reports the first invalid field, by its config key. Zero fields are valid
// (they take their defaults).
func (l Limits) Validate() error {
	if l.Timeout < 0 {
		return errs.Param("timeout", "must not be negative")
	}
	if l.MemoryPages > maxMemPages {
		return errs.Param("memory_pages", "must be at most %d (4 GiB)", maxMemPages)
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{"max_output_bytes", l.MaxOutputBytes},
		{"max_events", l.MaxEvents},
		{"max_event_bytes", l.MaxEventBytes},
		{"max_log_lines", l.MaxLogLines},
		{"max_key_bytes", l.MaxKeyBytes},
		{"max_value_bytes", l.MaxValueBytes},
		{"max_writes", l.MaxWrites},
	} {
		if f.v < 0 || f.v > maxLimitBytes {
			return errs.Param(f.key, "must be 0 (the default) to %d", maxLimitBytes)
		}
	}
	return nil
}
