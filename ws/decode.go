package ws

import (
	"encoding/binary"
	"errors"
	"slices"
)

// The frames a client sends are decoded here (RFC 6455 section 5), not by gorilla:
// the session then owns its read buffer, so it can tell when nothing is buffered and
// give the buffer and its goroutine up while the client is idle (read.go).

// errProtocol is a frame that breaks RFC 6455; the session closes with 1002.
type errProtocol string

func (e errProtocol) Error() string { return "websocket protocol error: " + string(e) }

// errTooBig is a message over the session's limit; the session closes with 1009.
var errTooBig = errors.New("websocket message over the size limit")

// maxControlFrame is the longest control frame a client may send: header, mask key
// and 125 bytes of payload. The read buffer must hold one whole.
const maxControlFrame = 2 + 8 + 4 + 125

// frameHeader is a client frame's header.
type frameHeader struct {
	fin  bool
	op   byte
	mask [4]byte
	len  int64 // payload bytes
}

// parseHeader decodes the frame header at the start of b. n is the header's size, or
// 0 when b does not hold the whole header yet.
func parseHeader(b []byte) (h frameHeader, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	b0, b1 := b[0], b[1]
	h.fin, h.op = b0&0x80 != 0, b0&0x0F
	switch {
	case b0&0x70 != 0:
		return h, 0, errProtocol("reserved bits set")
	case h.op > opBinary && h.op < opClose || h.op > opPong:
		return h, 0, errProtocol("unknown opcode")
	case b1&0x80 == 0:
		return h, 0, errProtocol("unmasked client frame")
	}
	n = 2
	switch l := b1 & 0x7F; l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.len, n = int64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u>>63 != 0 {
			return h, 0, errProtocol("payload length over 2^63")
		}
		h.len, n = int64(u), 10
	default:
		h.len = int64(l)
	}
	if h.op >= opClose && (!h.fin || h.len > 125) {
		return h, 0, errProtocol("fragmented or oversized control frame")
	}
	if len(b) < n+4 {
		return h, 0, nil
	}
	copy(h.mask[:], b[n:n+4])
	return h, n + 4, nil
}

// unmask XORs b with key, starting at position pos of the key, and returns the
// position after b.
func unmask(b []byte, key [4]byte, pos int) int {
	end := (pos + len(b)) & 3
	for len(b) > 0 && pos&3 != 0 {
		b[0] ^= key[pos&3]
		b, pos = b[1:], pos+1
	}
	k32 := uint64(binary.LittleEndian.Uint32(key[:]))
	k := k32<<32 | k32
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
	return end
}

// decoder turns a client's bytes into messages and control frames. Bytes go into
// buf[w:] (space, or payload for a large frame's payload) and come out of buf[r:w].
// Only up to the message's limit is ever buffered, and a message's buffer grows
// with what has arrived, not with what its header claims.
type decoder struct {
	buf    []byte
	r, w   int
	direct bool // the last space was the message's buffer

	// The data frame whose payload is being read: left bytes to come, then fin.
	payload bool
	left    int64
	mask    [4]byte
	pos     int
	fin     bool

	// The message being assembled from one or more data frames.
	inMsg bool
	op    byte
	limit int64
	msg   []byte
}

// next returns the next complete message (opText or opBinary, with its whole
// payload, which the caller keeps) or control frame (opPing, opPong or opClose, with
// a payload valid until the next call), or op 0 when more bytes are needed. limit is
// the size limit of a message that starts now.
func (d *decoder) next(limit int64) (op byte, payload []byte, err error) {
	for {
		if d.payload {
			if d.left > 0 {
				b := d.buf[d.r:d.w]
				if len(b) == 0 {
					return 0, nil, nil
				}
				k := int(min(int64(len(b)), d.left))
				start := len(d.msg)
				d.msg = append(d.msg, b[:k]...)
				d.pos = unmask(d.msg[start:], d.mask, d.pos)
				d.r += k
				d.left -= int64(k)
				if d.left > 0 {
					return 0, nil, nil
				}
			}
			d.payload = false
			if d.fin {
				return d.message()
			}
		}
		h, n, err := parseHeader(d.buf[d.r:d.w])
		if err != nil || n == 0 {
			return 0, nil, err
		}
		if h.op >= opClose {
			if d.w-d.r < n+int(h.len) {
				return 0, nil, nil
			}
			p := d.buf[d.r+n : d.r+n+int(h.len)]
			unmask(p, h.mask, 0)
			d.r += n + int(h.len)
			return h.op, p, nil
		}
		switch {
		case h.op == opContinuation && !d.inMsg:
			return 0, nil, errProtocol("continuation frame outside a message")
		case h.op != opContinuation && d.inMsg:
			return 0, nil, errProtocol("new message inside a fragmented one")
		case !d.inMsg:
			d.inMsg, d.op, d.limit, d.msg = true, h.op, limit, nil
		}
		if h.len > d.limit-int64(len(d.msg)) {
			return 0, nil, errTooBig
		}
		d.r += n
		d.payload, d.left, d.mask, d.pos, d.fin = true, h.len, h.mask, 0, h.fin
		d.msg = slices.Grow(d.msg, int(min(h.len, growStep)))
	}
}

// growStep bounds what a message's buffer grows by ahead of its bytes: a header may
// claim a length its sender never sends.
const growStep = 64 << 10

// message hands over the assembled message.
func (d *decoder) message() (byte, []byte, error) {
	op, msg := d.op, d.msg
	d.inMsg, d.msg = false, nil
	return op, msg, nil
}

// space returns where the next read may put bytes: straight into the message when a
// large payload is due and nothing is buffered, else the free end of buf, which
// keeps the undecoded bytes at its start. Call filled with the count read.
func (d *decoder) space() []byte {
	d.direct = d.payload && d.r == d.w && d.left >= int64(len(d.buf))
	if d.direct {
		if cap(d.msg) == len(d.msg) {
			d.msg = slices.Grow(d.msg, int(min(d.left, max(int64(cap(d.msg)), growStep))))
		}
		n := len(d.msg)
		return d.msg[n : n+int(min(d.left, int64(cap(d.msg)-n)))]
	}
	if d.r > 0 {
		d.w = copy(d.buf, d.buf[d.r:d.w])
		d.r = 0
	}
	return d.buf[d.w:]
}

// filled records n bytes read into the slice space returned.
func (d *decoder) filled(n int) {
	if !d.direct {
		d.w += n
		return
	}
	start := len(d.msg)
	d.msg = d.msg[:start+n]
	d.pos = unmask(d.msg[start:], d.mask, d.pos)
	d.left -= int64(n)
}

// idle reports whether nothing is buffered and no message is under way.
func (d *decoder) idle() bool { return d.r == d.w && !d.inMsg && !d.payload }
