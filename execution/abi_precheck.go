package execution

import (
	"errors"
	"fmt"
)

// abiPrecheck walks the structure of a wasm binary before wazero decodes it, and
// refuses counts and lengths that claim more than the bytes that follow. wazero
// allocates vectors by their declared count before reading them, so without this a
// 23-byte module that declares four billion exports (or a 4 GiB name, data segment or
// local list) makes it allocate gigabytes and can bring the process down. Constructs
// the walk does not know are left to wazero's own validation.
func abiPrecheck(wasm []byte) error {
	r := &wasmReader{b: wasm}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return errors.New("not a wasm binary (bad magic number)")
	}
	r.pos = 8
	for !r.done() {
		id := r.byte()
		size := r.u32()
		if r.err != nil || uint64(size) > uint64(r.left()) {
			return fmt.Errorf("section %d at offset %d: size %d runs past the end", id, r.pos, size)
		}
		s := &wasmReader{b: r.b[r.pos : r.pos+int(size)], base: r.pos, known: true}
		r.pos += int(size)
		if err := precheckSection(id, s); err != nil {
			return fmt.Errorf("section %d: %w", id, err)
		}
	}
	return r.err
}

// Minimum encoded sizes of one entry of each section's vector.
var minEntryBytes = map[byte]int{
	1: 3, 2: 4, 3: 1, 4: 3, 5: 2, 6: 4, 7: 3, 9: 3, 10: 3, 11: 3, 13: 2,
}

// maxLocals bounds the locals of one function (V8's limit).
const maxLocals = 50000

func precheckSection(id byte, s *wasmReader) error {
	if id == 0 {
		return precheckCustom(s)
	}
	min, ok := minEntryBytes[id]
	if !ok {
		return nil // start, data count, or unknown: nothing allocated by count
	}
	n := s.vec(min)
	for i := uint32(0); i < n && s.err == nil && s.known; i++ {
		switch id {
		case 1:
			s.funcType()
		case 2:
			s.name()
			s.name()
			s.importDesc()
		case 7:
			s.name()
			s.byte()
			s.u32()
		case 9:
			s.elemSegment()
		case 10:
			s.code()
		case 11:
			s.dataSegment()
		default:
			s.known = false // fixed-size entries: the count check is enough
		}
	}
	return s.err
}

func precheckCustom(s *wasmReader) error {
	if s.name() != "name" || s.err != nil {
		return nil // wazero reads other custom sections as one bounded byte slice
	}
	for !s.done() && s.err == nil {
		sub := s.byte()
		size := s.u32()
		if s.err == nil && uint64(size) > uint64(s.left()) {
			return fmt.Errorf("name subsection %d runs past the end", sub)
		}
		t := &wasmReader{b: s.b[s.pos : s.pos+int(size)], base: s.base + s.pos, known: true}
		s.pos += int(size)
		switch sub {
		case 0:
			t.name()
		case 1:
			for n, i := t.vec(2), uint32(0); i < n && t.err == nil; i++ {
				t.u32()
				t.name()
			}
		case 2:
			for n, i := t.vec(2), uint32(0); i < n && t.err == nil; i++ {
				t.u32()
				for m, j := t.vec(2), uint32(0); j < m && t.err == nil; j++ {
					t.u32()
					t.name()
				}
			}
		}
		if t.err != nil {
			return t.err
		}
	}
	return s.err
}

// wasmReader reads a wasm binary, recording the first error; known turns false at a
// construct it cannot parse, which ends the checks of that section.
type wasmReader struct {
	b     []byte
	pos   int
	base  int // offset of b in the module, for messages
	err   error
	known bool
}

func (r *wasmReader) done() bool { return r.err != nil || r.pos >= len(r.b) }
func (r *wasmReader) left() int  { return len(r.b) - r.pos }

func (r *wasmReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("offset %d: "+format, append([]any{r.base + r.pos}, args...)...)
	}
}

func (r *wasmReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	r.pos++
	return r.b[r.pos-1]
}

func (r *wasmReader) skip(n int) {
	if r.err == nil && n > r.left() {
		r.fail("unexpected end")
	}
	if r.err == nil {
		r.pos += n
	}
}

// leb reads an unsigned LEB128 of at most maxBytes bytes.
func (r *wasmReader) leb(maxBytes int) uint64 {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		b := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v
		}
	}
	r.fail("LEB128 number too long")
	return 0
}

func (r *wasmReader) u32() uint32 { return uint32(r.leb(5)) }

// vec reads a vector count and checks that count entries of at least min bytes fit.
func (r *wasmReader) vec(min int) uint32 {
	n := r.u32()
	if r.err == nil && uint64(n)*uint64(min) > uint64(r.left()) {
		r.fail("vector of %d entries does not fit in the %d bytes left", n, r.left())
	}
	return n
}

// bytes reads a length-prefixed byte string without copying.
func (r *wasmReader) bytes() []byte {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(r.left()) {
		r.fail("length %d runs past the end", n)
	}
	if r.err != nil {
		return nil
	}
	r.pos += int(n)
	return r.b[r.pos-int(n) : r.pos]
}

func (r *wasmReader) name() string { return string(r.bytes()) }

func (r *wasmReader) valType() {
	switch t := r.byte(); t {
	case 0x63, 0x64: // (ref null ht), (ref ht)
		r.leb(5)
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69:
	default:
		r.known = false
	}
}

func (r *wasmReader) funcType() {
	if r.byte() != 0x60 {
		r.known = false
		return
	}
	for k := 0; k < 2 && r.known; k++ {
		for n, i := r.vec(1), uint32(0); i < n && r.err == nil && r.known; i++ {
			r.valType()
		}
	}
}

func (r *wasmReader) limits() {
	flags := r.byte()
	r.leb(10)
	if flags&1 != 0 {
		r.leb(10)
	}
}

func (r *wasmReader) importDesc() {
	switch r.byte() {
	case 0: // func
		r.u32()
	case 1: // table
		r.valType()
		r.limits()
	case 2: // memory
		r.limits()
	case 3: // global
		r.valType()
		r.byte()
	case 4: // tag
		r.byte()
		r.u32()
	default:
		r.known = false
	}
}

func (r *wasmReader) code() {
	size := r.u32()
	if r.err == nil && uint64(size) > uint64(r.left()) {
		r.fail("function body of %d bytes runs past the end", size)
		return
	}
	body := &wasmReader{b: r.b[r.pos : r.pos+int(size)], base: r.base + r.pos, known: true}
	r.pos += int(size)
	var locals uint64
	for n, i := body.vec(2), uint32(0); i < n && body.err == nil && body.known; i++ {
		locals += uint64(body.u32())
		body.valType()
	}
	if locals > maxLocals {
		body.fail("function declares %d locals, more than %d", locals, maxLocals)
	}
	if body.err != nil {
		r.err = body.err
	}
}

func (r *wasmReader) dataSegment() {
	switch flags := r.u32(); flags {
	case 0:
		r.constExpr()
	case 1:
	case 2:
		r.u32()
		r.constExpr()
	default:
		r.known = false
		return
	}
	if r.known {
		r.bytes()
	}
}

// elemSegment skips an element segment, checking its vector of function indexes
// or expressions.
func (r *wasmReader) elemSegment() {
	flags := r.u32()
	if flags > 7 {
		r.known = false
		return
	}
	if flags&3 == 2 { // explicit table index
		r.u32()
	}
	if flags&1 == 0 { // active: offset expression
		r.constExpr()
	}
	if flags&3 != 0 { // elemkind or reftype
		if flags&4 != 0 {
			r.valType()
		} else {
			r.byte()
		}
	}
	if flags&4 == 0 {
		for n, i := r.vec(1), uint32(0); i < n && r.err == nil; i++ {
			r.u32()
		}
		return
	}
	for n, i := r.vec(2), uint32(0); i < n && r.err == nil && r.known; i++ {
		r.constExpr()
	}
}

// constExpr skips a constant expression up to its end opcode.
func (r *wasmReader) constExpr() {
	for r.err == nil && r.known {
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41, 0x23, 0xd2: // i32.const, global.get, ref.func
			r.leb(5)
		case 0x42: // i64.const
			r.leb(10)
		case 0x43:
			r.skip(4)
		case 0x44:
			r.skip(8)
		case 0xd0: // ref.null
			r.leb(5)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		case 0xfd: // v128.const
			if r.u32() != 12 {
				r.known = false
			}
			r.skip(16)
		default:
			r.known = false
		}
	}
}
