package ws

import (
	"encoding/binary"

	"github.com/circlegate/circlegate/events"
)

// Sessions write their frames to the connection themselves, as they read them
// (decode.go; gorilla/websocket only upgrades): a server frame is a header and the
// unmasked payload, so a frame made once can go to every subscriber unchanged, and a
// session's queued frames leave in one write.

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// appendHeader appends the header of a final, unmasked frame of opcode op with a
// payload of n bytes.
func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

// frame returns a whole frame: header then payload, in one slice.
func frame(op byte, payload []byte) []byte {
	return append(appendHeader(make([]byte, 0, len(payload)+10), op, len(payload)), payload...)
}

// eventFrame is an event as a JSON-RPC notification in one text frame, made once per
// event for every WebSocket subscriber, in eventFrames.
var eventFrame = events.NewEncoding(func(m *events.Message) []byte {
	const pre, post = `{"jsonrpc":"2.0","method":"event","params":`, `}`
	ev := m.JSON()
	n := len(pre) + len(ev) + len(post)
	return eventFrames.fill(headerLen(n)+n, func(b []byte) []byte {
		b = appendHeader(b, opText, n)
		return append(append(append(b, pre...), ev...), post...)
	})
})

var eventFrames arena

// headerLen is the size of the header of a server frame with an n-byte payload.
func headerLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	}
	return 10
}
