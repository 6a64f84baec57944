//go:build race

package rawio

import "sync/atomic"

// ioSync carries the race detector's happens-before from writes to reads: an atomic
// operation is a synchronization point to it.
var ioSync atomic.Int64

func released() { ioSync.Add(1) }
func acquired() { ioSync.Load() }
