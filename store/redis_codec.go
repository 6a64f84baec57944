package store

import (
	"encoding/binary"
)

// The Redis backend keeps each event of a context's history stream as encodeEvent
// encodes it (pebble_codec.go), and publishes the events of one write as one message:
// EncodeEventMessage.

// messageVersion leads every event message.
const messageVersion = 1

// EncodeEventMessage encodes events of one tenant as one pub/sub message of the Redis
// backend: a version byte, the tenant, the number of events and each event with its
// RootHash, in the binary form of the tx log.
func EncodeEventMessage(tenant string, evs []Event) []byte {
	b := append(make([]byte, 0, 64+len(tenant)+96*len(evs)), messageVersion)
	b = appendString(b, tenant)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for i := range evs {
		b = appendEvent(b, &evs[i])
		b = appendString(b, evs[i].RootHash)
	}
	return b
}

// DecodeEventMessage decodes what EncodeEventMessage encoded. Corrupt input is an
// error, never a panic.
func DecodeEventMessage(b []byte) (tenant string, evs []Event, err error) {
	d := &decoder{b: b}
	if d.byte() != messageVersion {
		return "", nil, errCorrupt
	}
	tenant = d.string()
	n := d.count(8)
	evs = make([]Event, 0, n)
	for range n {
		e := decodeEventFields(d)
		e.RootHash = d.string()
		evs = append(evs, e)
	}
	if err := d.done(); err != nil {
		return "", nil, err
	}
	return tenant, evs, nil
}
