package ws

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// clientFrame is a frame as a client sends it: masked with key.
func clientFrame(fin bool, op byte, payload []byte, key [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

type decoded struct {
	op      byte
	payload string
}

// decodeAll feeds in to a decoder with a buffer of bufSize, chunk bytes per read,
// and returns what it decoded and the error that stopped it.
func decodeAll(in []byte, bufSize, chunk int, limit int64) ([]decoded, error) {
	d := &decoder{buf: make([]byte, bufSize)}
	var out []decoded
	for {
		op, p, err := d.next(limit)
		if err != nil {
			return out, err
		}
		if op != 0 {
			out = append(out, decoded{op, string(p)})
			continue
		}
		if len(in) == 0 {
			if !d.idle() {
				return out, errors.New("input ended inside a frame")
			}
			return out, nil
		}
		dst := d.space()
		n := copy(dst, in[:min(len(in), chunk)])
		if n == 0 {
			return out, errors.New("no space to read into")
		}
		d.filled(n)
		in = in[n:]
	}
}

func TestDecoderMessages(t *testing.T) {
	k := [4]byte{0x12, 0x34, 0x56, 0x78}
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320,000 bytes: 64-bit length
	mid := bytes.Repeat([]byte("x"), 300)                  // 16-bit length
	var in []byte
	in = append(in, clientFrame(true, opText, []byte(`{"id":1}`), k)...)
	in = append(in, clientFrame(false, opText, []byte("frag"), k)...)
	in = append(in, clientFrame(true, opPing, []byte("p"), k)...) // between fragments
	in = append(in, clientFrame(false, opContinuation, []byte("ment"), k)...)
	in = append(in, clientFrame(true, opContinuation, nil, k)...)
	in = append(in, clientFrame(true, opBinary, nil, k)...)
	in = append(in, clientFrame(true, opText, mid, k)...)
	in = append(in, clientFrame(true, opPong, nil, k)...)
	in = append(in, clientFrame(true, opText, big, k)...)
	in = append(in, clientFrame(true, opClose, []byte{0x03, 0xE8}, k)...)
	want := []decoded{
		{opText, `{"id":1}`}, {opPing, "p"}, {opText, "fragment"}, {opBinary, ""},
		{opText, string(mid)}, {opPong, ""}, {opText, string(big)}, {opClose, "\x03\xe8"},
	}
	for _, bufSize := range []int{256, 512, 4096} {
		for _, chunk := range []int{1, 7, 139, 512, 1 << 20} {
			got, err := decodeAll(in, bufSize, chunk, 1<<20)
			if err != nil {
				t.Fatalf("buffer %d, chunks of %d: %v", bufSize, chunk, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("buffer %d, chunks of %d: decoded %d frames, want %d (%.80v)", bufSize, chunk, len(got), len(want), got)
			}
		}
	}
}

func TestDecoderRefuses(t *testing.T) {
	k := [4]byte{1, 2, 3, 4}
	unmasked := clientFrame(true, opText, []byte("hi"), k)
	unmasked[1] &^= 0x80
	long := append([]byte{0x81, 0xFF}, make([]byte, 12)...)
	long[2] = 0x80 // a 64-bit length with its top bit set
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"unmasked", unmasked, errProtocol("")},
		{"reserved bit", append([]byte{0xC1}, clientFrame(true, opText, nil, k)[1:]...), errProtocol("")},
		{"unknown opcode", clientFrame(true, 0x3, nil, k), errProtocol("")},
		{"fragmented ping", clientFrame(false, opPing, nil, k), errProtocol("")},
		{"ping over 125 bytes", clientFrame(true, opPing, make([]byte, 126), k), errProtocol("")},
		{"stray continuation", clientFrame(true, opContinuation, []byte("x"), k), errProtocol("")},
		{"message inside a message", append(clientFrame(false, opText, []byte("a"), k), clientFrame(true, opText, []byte("b"), k)...), errProtocol("")},
		{"length top bit", long, errProtocol("")},
		{"too big", clientFrame(true, opText, make([]byte, 101), k), errTooBig},
		{"too big in fragments", append(clientFrame(false, opText, make([]byte, 60), k), clientFrame(true, opContinuation, make([]byte, 60), k)...), errTooBig},
	}
	for _, c := range cases {
		_, err := decodeAll(c.in, 512, 512, 100)
		var pe errProtocol
		switch {
		case errors.As(c.want, &pe) && !errors.As(err, &pe):
			t.Errorf("%s: err = %v, want a protocol error", c.name, err)
		case errors.Is(c.want, errTooBig) && !errors.Is(err, errTooBig):
			t.Errorf("%s: err = %v, want too big", c.name, err)
		}
	}
}

// TestDecoderClaimedLength: a header claiming a large message costs only what arrives.
func TestDecoderClaimedLength(t *testing.T) {
	d := &decoder{buf: make([]byte, 512)}
	hdr := binary.BigEndian.AppendUint64([]byte{0x81, 0x80 | 127}, 40<<20)
	hdr = append(hdr, 0, 0, 0, 0) // the mask key
	d.filled(copy(d.space(), hdr))
	if op, _, err := d.next(48 << 20); op != 0 || err != nil {
		t.Fatalf("next = %d, %v; want more bytes needed", op, err)
	}
	if c := cap(d.msg); c > 2*growStep {
		t.Fatalf("a 40 MiB header with no payload reserved %d bytes", c)
	}
}

func TestUnmask(t *testing.T) {
	key := [4]byte{0xA1, 0xB2, 0xC3, 0xD4}
	for n := range 40 {
		for pos := range 4 {
			b := bytes.Repeat([]byte{0x5A}, n)
			end := unmask(b, key, pos)
			for i, c := range b {
				if c != 0x5A^key[(pos+i)&3] {
					t.Fatalf("len %d pos %d: byte %d = %#x", n, pos, i, c)
				}
			}
			if end != (pos+n)&3 {
				t.Fatalf("len %d pos %d: end %d", n, pos, end)
			}
		}
	}
}

// FuzzDecoder: any bytes, read in any pieces, decode without panicking into
// messages within the limit; and messages framed with any key and fragmentation
// decode to themselves.
func FuzzDecoder(f *testing.F) {
	k := [4]byte{9, 8, 7, 6}
	f.Add(clientFrame(true, opText, []byte(`{"jsonrpc":"2.0"}`), k), uint8(5), uint16(512))
	f.Add(append(clientFrame(false, opText, []byte("ab"), k), clientFrame(true, opContinuation, []byte("cd"), k)...), uint8(1), uint16(256))
	f.Add([]byte{0x81, 0xFE, 0x01, 0x00, 1, 2, 3, 4}, uint8(3), uint16(300))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8, bufSize uint16) {
		size := max(int(bufSize)%4096, maxControlFrame)
		const limit = 1000
		got, _ := decodeAll(in, size, int(chunk)+1, limit) // arbitrary bytes may be refused
		for _, m := range got {
			if (m.op == opText || m.op == opBinary) && len(m.payload) > limit {
				t.Fatalf("a %d-byte message passed the %d limit", len(m.payload), limit)
			}
			if m.op >= opClose && len(m.payload) > 125 {
				t.Fatalf("a %d-byte control frame", len(m.payload))
			}
		}
		// Round trip: the input as a message, split into up to three fragments.
		if len(in) > limit {
			in = in[:limit]
		}
		var key [4]byte
		copy(key[:], in)
		a, b := len(in)/3, 2*len(in)/3
		frames := clientFrame(false, opBinary, in[:a], key)
		frames = append(frames, clientFrame(false, opContinuation, in[a:b], key)...)
		frames = append(frames, clientFrame(true, opContinuation, in[b:], key)...)
		got, err := decodeAll(frames, size, int(chunk)+1, limit)
		if err != nil || len(got) != 1 || got[0].payload != string(in) {
			t.Fatalf("round trip of %d bytes: %v, %d messages", len(in), err, len(got))
		}
	})
}

func TestCloseReply(t *testing.T) {
	for _, c := range []struct {
		in    []byte
		reply []byte
		ok    bool
	}{
		{nil, nil, true},
		{[]byte{0x03}, nil, false},                                    // a 1-byte payload
		{[]byte{0x03, 0xED}, nil, false},                              // 1005 may not be sent
		{[]byte{0x0B, 0xB7}, nil, false},                              // 2999: reserved
		{[]byte{0x10, 0xE1, 'b', 'y', 'e'}, []byte{0x10, 0xE1}, true}, // 4321, reason dropped
		{[]byte{0x03, 0xE8}, []byte{0x03, 0xE8}, true},                // 1000
	} {
		d, reply, err := closeReply(c.in)
		if (err == nil) != c.ok || string(reply) != string(c.reply) || (c.ok && d != DisconnectNormal) {
			t.Errorf("closeReply(%x) = %v, %x, %v", c.in, d, reply, err)
		}
	}
}
