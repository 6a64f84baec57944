//go:build wasip1

package sdk

import (
	"encoding/binary"
)

// Get returns the value under key, as this call sees it (its own earlier writes
// included).
func Get(key string) ([]byte, bool) {
	if abiStorageRead(stringPtr(key), uint32(len(key)), scratch) == 0 {
		return nil, false
	}
	return readRegister(scratch)
}

// Set stores value under key. Keys must be 1 to max_key_bytes long, values at most
// max_value_bytes; a call may touch at most max_writes keys.
func Set(key string, value []byte) {
	abiStorageWrite(stringPtr(key), uint32(len(key)), bytesPtr(value), uint32(len(value)), scratch)
}

// Delete removes key and reports whether it existed.
func Delete(key string) bool {
	return abiStorageRemove(stringPtr(key), uint32(len(key)), scratch) == 1
}

// GetJSON decodes the value under key into v and reports whether it existed.
func GetJSON(key string, v any) (bool, error) {
	b, ok := Get(key)
	if !ok {
		return false, nil
	}
	return true, unmarshalJSON(b, v)
}

// SetJSON stores v encoded as JSON under key.
func SetJSON(key string, v any) {
	b, err := marshalJSON(v)
	if err != nil {
		Fail("encoding " + key + ": " + err.Error())
	}
	Set(key, b)
}

// Entry is one key and value of a scan.
type Entry struct {
	Key   string
	Value []byte
}

// Scan returns up to limit entries whose key starts with prefix and is greater than
// after, in key order, and whether more may follow. limit is capped at 1000; a page
// also ends early once it holds about 1 MiB. Page on with the last key as after.
func Scan(prefix, after string, limit int) (entries []Entry, more bool) {
	if limit < 1 {
		limit = 100
	}
	if limit > 1000 {
		limit = 1000
	}
	more = abiStorageScan(stringPtr(prefix), uint32(len(prefix)), stringPtr(after), uint32(len(after)), uint32(limit), scratch) == 1
	page, _ := readRegister(scratch)
	return decodePage(page), more
}

// Iterate calls fn for every entry whose key starts with prefix, in key order, until
// fn returns false. It pages through storage_scan 100 entries at a time.
func Iterate(prefix string, fn func(key string, value []byte) bool) {
	after := ""
	for {
		page, more := Scan(prefix, after, 100)
		for _, e := range page {
			if !fn(e.Key, e.Value) {
				return
			}
		}
		if !more || len(page) == 0 {
			return
		}
		after = page[len(page)-1].Key
	}
}

// decodePage reads storage_scan's encoding: u32 count, then per entry u32 key length,
// key, u32 value length, value (little endian).
func decodePage(b []byte) []Entry {
	if len(b) < 4 {
		return nil
	}
	n := binary.LittleEndian.Uint32(b)
	b = b[4:]
	out := make([]Entry, 0, n)
	for range n {
		k, rest, ok := lengthPrefixed(b)
		if !ok {
			break
		}
		v, rest, ok := lengthPrefixed(rest)
		if !ok {
			break
		}
		out = append(out, Entry{Key: string(k), Value: v})
		b = rest
	}
	return out
}

func lengthPrefixed(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(len(b)-4) < uint64(n) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}
