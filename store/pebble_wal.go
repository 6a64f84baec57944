package store

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Every commit waits for an fdatasync of Pebble's write-ahead log, so the time of
// that sync bounds how many commit rounds run per second. On ext4 it costs about
// twice as much when the write grows the file as when it overwrites blocks that are
// written already: growing changes the file's size and extents, and the sync then
// commits the filesystem journal too (on this machine's disk, at rest: 328 µs
// against 165 µs at p50; docs/benchmarks.md). Pebble recycles old log files for
// this reason, but a new database, and every log that outgrows the file it
// recycled, grows its file on every commit; preallocating (fallocate) does not
// help, as the extents still change from unwritten to written.
//
// walFS therefore keeps each log file written with zeros a little ahead of where
// Pebble writes: a background fill writes the next walFillChunk bytes and syncs
// them (one journal commit per chunk instead of one per commit), so that Pebble's
// own writes land on written blocks. Pebble reads zeros past a log's last record as
// its end (record.ErrZeroedChunk), the same as the garbage tail of a recycled log.

// walFillChunk is how many bytes one fill writes; walFillAhead is how far ahead of
// Pebble's writes a log is kept filled (a fill starts when less is left). A new
// file's first fill starts walFillGap past Pebble's first write, so that Pebble's
// next writes do not wait for it.
const (
	walFillChunk = 1 << 20
	walFillAhead = 2 << 20
	walFillGap   = 256 << 10
)

// walFS is the filesystem Pebble runs on: the OS's, with its log files filled ahead.
type walFS struct {
	vfs.FS
	chunk, ahead, gap int64
}

func newWALFS(fs vfs.FS) walFS {
	return walFS{FS: fs, chunk: walFillChunk, ahead: walFillAhead, gap: walFillGap}
}

// isLog reports whether Pebble names a write-ahead log (NNNNNN.log, or
// NNNNNN-NNN.log for the logs of a WAL failover).
func isLog(name string) bool { return strings.HasSuffix(name, ".log") }

// Create implements vfs.FS.
func (fs walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !isLog(name) {
		return f, err
	}
	return fs.fillAhead(f, 0), nil
}

// ReuseForWrite implements vfs.FS: a recycled log is written already up to its size.
func (fs walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || !isLog(newname) {
		return f, err
	}
	st, err := f.Stat()
	if err != nil {
		return f, nil // no fill: Pebble's writes grow the file as they would anyway
	}
	return fs.fillAhead(f, st.Size()), nil
}

func (fs walFS) fillAhead(f vfs.File, written int64) *filledLog {
	l := &filledLog{File: f, chunk: fs.chunk, ahead: fs.ahead, gap: fs.gap, written: written}
	l.cond.L = &l.mu
	return l
}

// filledLog is a log file kept written ahead of Pebble's writes. Pebble writes a log
// sequentially with Write; a fill writes zeros only past every byte Pebble has
// written or is writing, and a Write that would reach into a running fill waits for
// it, so a fill never overwrites a record.
type filledLog struct {
	vfs.File
	chunk, ahead, gap int64

	mu       sync.Mutex
	cond     sync.Cond
	off      int64 // where Pebble's next Write goes
	written  int64 // where the file's filled part ends: Pebble's writes before it overwrite
	fillFrom int64 // while filling: the fill writes [fillFrom, fillFrom+chunk)
	filling  bool
	stopped  bool // closed, or a fill failed (Pebble's writes then grow the file)
}

// Write implements vfs.File.
func (l *filledLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	end := l.off + int64(len(p))
	for l.filling && end > l.fillFrom {
		l.cond.Wait()
	}
	l.off = end
	if !l.filling && !l.stopped && l.written-end < l.ahead {
		l.filling = true
		l.fillFrom = max(l.written, end+l.gap)
		go l.fill(l.fillFrom, l.fillFrom+l.chunk)
	}
	l.mu.Unlock()
	n, err := l.File.Write(p)
	if n < len(p) { // the file's offset is not l.off: no more fills
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
	}
	return n, err
}

// fill writes zeros to [from, to) and syncs them.
func (l *filledLog) fill(from, to int64) {
	err := writeZeros(l.File, from, to)
	if err == nil {
		err = l.File.SyncData()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.filling = false
	if err != nil {
		l.stopped = true // a full disk, say: Pebble reports its own write errors
	} else {
		l.written = to
	}
	l.cond.Broadcast()
}

// zeros is what fills write, a chunk of it at a time.
var zeros = make([]byte, 256<<10)

func writeZeros(f vfs.File, from, to int64) error {
	for off := from; off < to; {
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// Close implements vfs.File: it waits for a running fill, which writes to the file.
func (l *filledLog) Close() error {
	l.mu.Lock()
	l.stopped = true
	for l.filling {
		l.cond.Wait()
	}
	l.mu.Unlock()
	return l.File.Close()
}

var _ vfs.File = (*filledLog)(nil)
