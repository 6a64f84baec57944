package execution

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Stopping a guest, and letting the Go runtime stop it. Compiled wasm runs as native
// code that the Go scheduler cannot preempt: a guest that never leaves it keeps its
// thread, and also stalls every stop-the-world pause of the garbage collector (and
// with it every goroutine, the timer that would end the call included) until it
// returns. wazero's WithCloseOnContextDone avoids both by leaving the compiled code
// at every loop header to look at the module, which costs Go guests (a loop in every
// function) five to ten times their speed. Instead, compile rewrites each module
// before wazero sees it, adding three i32 globals, $fuel, $stop and $tmp:
//
//   - at every function entry and loop header, a check subtracts a cost from $fuel
//     and, once $fuel is not positive, yields: it leaves the compiled code (a
//     memory.grow of 0 pages, which wazero runs in Go, where the runtime can preempt
//     the goroutine), traps if $stop is set, and refills $fuel with fuelBudget;
//   - the cost of a check is the number of code bytes from it to the end of its
//     function, an upper bound of what can run before the next check (a path goes
//     forward until it reaches a loop header or a call), and every bulk memory or
//     table instruction also subtracts its length operand, through $tmp; so the
//     guest yields at least every fuelBudget bytes of code or bulk work, which
//     keeps a pause of the runtime short whatever the guest does;
//   - when the call's deadline passes or its caller gives up, the host sets $stop and
//     empties $fuel (engine_deadline.go), so the guest traps at its next check.
//
// A check is a few inline instructions; the yield runs once per fuelBudget. Checking
// function entries as well as loops also stops guests that recurse without looping,
// which wazero's loop checks never see. A start function would run inside wazero's
// instantiation, before the host can reach the globals, so the start section is
// removed and its function exported as abiStart, which the engine calls right after
// instantiation, under the call's deadline.
//
// The rewrite knows every instruction of WebAssembly 2.0 (what the runtime enables)
// and refuses the others; it also refuses code and exports that name a global past
// the module's own, which would reach the new ones.
const (
	abiFuel  = "circlegate:fuel"
	abiStop  = "circlegate:stop"
	abiStart = "circlegate:start"
	// fuelBudget is the fuel between two yields: bytes of code, or of bulk work.
	fuelBudget = 4 << 20
)

// Section ids and the kinds of import and export the rewrite looks at.
const (
	secCustom   = 0
	secImport   = 2
	secMemory   = 5
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secCode     = 10
	secDataCnt  = 12
	secTag      = 13
	kindFunc    = 0
	kindMemory  = 2
	kindGlobal  = 3
	debugPrefix = ".debug_"
)

// sectionRank orders the known sections as the binary format requires.
var sectionRank = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, secTag: 6, 6: 7, 7: 8, 8: 9, 9: 10, secDataCnt: 11, 10: 12, 11: 13}

type wasmSection struct {
	id      byte
	payload []byte
}

// fuelGlobals are the indexes of the globals instrument adds.
type fuelGlobals struct {
	fuel, stop, tmp uint32
	memory          bool // the module has a memory, so a check can yield with memory.grow
}

// check returns the check at a function entry or loop header.
func (g *fuelGlobals) check(cost uint32) []byte {
	b := g.spend(nil, cost)
	b = append(b, 0x23) // global.get $fuel
	b = binary.AppendUvarint(b, uint64(g.fuel))
	b = append(b, 0x41, 0x00, 0x4c, 0x04, 0x40) // i32.const 0, i32.le_s, if
	if g.memory {
		b = append(b, 0x41, 0x00, 0x40, 0x00, 0x1a) // i32.const 0, memory.grow 0, drop
	}
	b = append(b, 0x23) // global.get $stop, if, unreachable, end
	b = binary.AppendUvarint(b, uint64(g.stop))
	b = append(b, 0x04, 0x40, 0x00, 0x0b)
	b = binary.AppendVarint(append(b, 0x41), fuelBudget) // i32.const budget, global.set $fuel
	b = append(b, 0x24)
	b = binary.AppendUvarint(b, uint64(g.fuel))
	return append(b, 0x0b) // end
}

// spend appends: global.get $fuel, i32.const cost, i32.sub, global.set $fuel.
func (g *fuelGlobals) spend(b []byte, cost uint32) []byte {
	b = append(b, 0x23)
	b = binary.AppendUvarint(b, uint64(g.fuel))
	b = appendSLEB(append(b, 0x41), int64(cost))
	b = append(b, 0x6b, 0x24)
	return binary.AppendUvarint(b, uint64(g.fuel))
}

// bulk returns what goes before a bulk instruction, whose length operand is on top
// of the stack: it subtracts the length from $fuel and leaves the stack as it was.
func (g *fuelGlobals) bulk() []byte {
	var b []byte
	op := func(code byte, idx uint32) {
		b = append(b, code)
		b = binary.AppendUvarint(b, uint64(idx))
	}
	op(0x24, g.tmp)  // global.set $tmp
	op(0x23, g.tmp)  // global.get $tmp (the operand again)
	op(0x23, g.fuel) // global.get $fuel
	op(0x23, g.tmp)  // global.get $tmp
	b = append(b, 0x6b)
	op(0x24, g.fuel) // i32.sub, global.set $fuel
	return b
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// instrument returns wasm with the fuel checks (see above), and without the DWARF
// sections, whose code offsets the checks would invalidate.
func instrument(wasm []byte) ([]byte, error) {
	secs, err := splitSections(wasm)
	if err != nil {
		return nil, err
	}
	var g fuelGlobals
	var globals uint32 // imported, then defined
	start := int64(-1)
	for _, s := range secs {
		r := &wasmReader{b: s.payload, known: true}
		switch s.id {
		case secImport:
			n, mem, err := importedGlobals(s.payload)
			if err != nil {
				return nil, fmt.Errorf("import section: %w", err)
			}
			globals += n
			g.memory = g.memory || mem
		case secMemory:
			g.memory = g.memory || r.u32() > 0
		case secGlobal:
			globals += r.u32()
		case secStart:
			if start >= 0 {
				return nil, errors.New("more than one start section")
			}
			start = int64(r.u32())
		}
		if r.err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, r.err)
		}
	}
	g.fuel, g.stop, g.tmp = globals, globals+1, globals+2
	out := append(make([]byte, 0, len(wasm)+len(wasm)/4), wasm[:8]...)
	emit := func(id byte, payload []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(payload)))
		out = append(out, payload...)
	}
	wroteGlobal, wroteExport := false, false
	for _, s := range secs {
		if r, ok := sectionRank[s.id]; ok {
			if !wroteGlobal && r > sectionRank[secGlobal] {
				emit(secGlobal, addGlobals(nil))
				wroteGlobal = true
			}
			if !wroteExport && r > sectionRank[secExport] {
				p, err := addExports(nil, &g, start)
				if err != nil {
					return nil, err
				}
				emit(secExport, p)
				wroteExport = true
			}
		}
		switch s.id {
		case secCustom:
			r := &wasmReader{b: s.payload, known: true}
			if name := r.name(); r.err == nil && strings.HasPrefix(name, debugPrefix) {
				continue
			}
			emit(s.id, s.payload)
		case secGlobal:
			emit(s.id, addGlobals(s.payload))
			wroteGlobal = true
		case secExport:
			p, err := addExports(s.payload, &g, start)
			if err != nil {
				return nil, fmt.Errorf("export section: %w", err)
			}
			emit(s.id, p)
			wroteExport = true
		case secStart: // exported as abiStart instead
		case secCode:
			p, err := instrumentCode(s.payload, &g)
			if err != nil {
				return nil, fmt.Errorf("code section: %w", err)
			}
			emit(s.id, p)
		default:
			emit(s.id, s.payload)
		}
	}
	if !wroteGlobal {
		emit(secGlobal, addGlobals(nil))
	}
	if !wroteExport {
		p, err := addExports(nil, &g, start)
		if err != nil {
			return nil, err
		}
		emit(secExport, p)
	}
	return out, nil
}

// splitSections splits a module into its sections.
func splitSections(wasm []byte) ([]wasmSection, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a wasm binary (bad magic number)")
	}
	r := &wasmReader{b: wasm, pos: 8, known: true}
	var secs []wasmSection
	for !r.done() {
		id := r.byte()
		p := r.bytes()
		if r.err != nil {
			return nil, r.err
		}
		secs = append(secs, wasmSection{id, p})
	}
	return secs, r.err
}

// importedGlobals counts the globals an import section imports, and reports
// whether it imports a memory.
func importedGlobals(p []byte) (uint32, bool, error) {
	r := &wasmReader{b: p, known: true}
	var n uint32
	mem := false
	for count, i := r.vec(4), uint32(0); i < count && r.err == nil; i++ {
		r.name()
		r.name()
		if r.pos < len(r.b) {
			n += boolU32(r.b[r.pos] == kindGlobal)
			mem = mem || r.b[r.pos] == kindMemory
		}
		r.importDesc()
		if !r.known {
			return 0, false, errors.New("an import of an unknown kind")
		}
	}
	return n, mem, r.err
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// addGlobals appends $fuel, $stop and $tmp, (mut i32), to a global section's payload
// (nil: none yet).
func addGlobals(p []byte) []byte {
	var n uint32
	if len(p) > 0 {
		r := &wasmReader{b: p, known: true}
		n = r.u32()
	}
	out := binary.AppendUvarint(nil, uint64(n)+3)
	out = append(out, afterCount(p)...)
	out = appendSLEB(append(out, 0x7f, 0x01, 0x41), fuelBudget)
	out = append(out, 0x0b)
	return append(out, 0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b)
}

// addExports appends the exports of $fuel, $stop and, if the module has one, of its
// start function to an export section's payload (nil: none yet). A module that uses
// their names, or exports a global past its own, is refused.
func addExports(p []byte, g *fuelGlobals, start int64) ([]byte, error) {
	var n uint32
	r := &wasmReader{b: p, known: true}
	if len(p) > 0 {
		n = r.vec(3)
		for i := uint32(0); i < n && r.err == nil; i++ {
			name := r.name()
			kind := r.byte()
			idx := r.u32()
			switch {
			case strings.HasPrefix(name, "circlegate:"):
				return nil, fmt.Errorf("the export name %q is reserved", name)
			case kind == kindGlobal && idx >= g.fuel:
				return nil, fmt.Errorf("export %q names global %d, which does not exist", name, idx)
			}
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	add := uint64(2)
	if start >= 0 {
		add++
	}
	out := binary.AppendUvarint(nil, uint64(n)+add)
	out = append(out, afterCount(p)...)
	out = appendExport(out, abiFuel, kindGlobal, g.fuel)
	out = appendExport(out, abiStop, kindGlobal, g.stop)
	if start >= 0 {
		out = appendExport(out, abiStart, kindFunc, uint32(start))
	}
	return out, nil
}

// afterCount returns the entries of a vector: what follows its count.
func afterCount(p []byte) []byte {
	r := &wasmReader{b: p, known: true}
	if len(p) > 0 {
		r.u32()
	}
	return p[r.pos:]
}

func appendExport(b []byte, name string, kind byte, idx uint32) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = append(b, kind)
	return binary.AppendUvarint(b, uint64(idx))
}

// instrumentCode instruments every function body of a code section's payload.
func instrumentCode(p []byte, g *fuelGlobals) ([]byte, error) {
	r := &wasmReader{b: p, known: true}
	n := r.vec(2)
	out := binary.AppendUvarint(make([]byte, 0, len(p)+len(p)/4), uint64(n))
	var body []byte
	bulk := g.bulk()
	for i := uint32(0); i < n && r.err == nil; i++ {
		b := r.bytes()
		if r.err != nil {
			break
		}
		var err error
		if body, err = instrumentBody(body[:0], b, g, bulk); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	if r.err == nil && !r.done() {
		return nil, errors.New("bytes after the last function body")
	}
	return out, r.err
}

// instrumentBody appends the body b, instrumented, to out. The check at the entry is
// left out when the body reaches a loop header before anything that branches or
// calls: that loop's check, charged for the whole body, comes first anyway.
func instrumentBody(out, b []byte, g *fuelGlobals, bulk []byte) ([]byte, error) {
	r := &wasmReader{b: b, known: true}
	for n, i := r.vec(2), uint32(0); i < n && r.err == nil; i++ { // locals
		r.u32()
		r.valType()
	}
	if r.err != nil || !r.known {
		return nil, errors.New("bad locals")
	}
	out = append(out, b[:r.pos]...)
	code := r.pos
	entry := len(out) // where the entry check goes, if needed
	straight := true  // no branch or call since the entry
	last := r.pos
	for !r.done() {
		at := r.pos
		op := r.byte()
		sub, err := skipImmediates(r, op, g.fuel)
		if err != nil {
			return nil, fmt.Errorf("offset %d: %w", r.pos, err)
		}
		if r.err != nil {
			break
		}
		switch {
		case op == 0x03: // loop: check at the header, each iteration
			cost := uint32(len(b) - r.pos)
			if straight {
				cost, straight = uint32(len(b)-code), false
				entry = -1
			}
			out = append(out, b[last:r.pos]...)
			out = append(out, g.check(max(cost, 1))...)
			last = r.pos
		case op == 0xfc && isBulk(sub):
			out = append(out, b[last:at]...)
			out = append(out, bulk...)
			last, straight = at, false
		case op == 0x04 || (op >= 0x0c && op <= 0x11): // if, branches, return, calls
			straight = false
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	out = append(out, b[last:]...)
	if entry >= 0 {
		check := g.check(max(uint32(len(b)-code), 1))
		out = append(out[:entry], append(check, out[entry:]...)...)
	}
	return out, nil
}

// isBulk reports whether the 0xfc instruction sub takes a length operand on top of
// the stack: memory.init, memory.copy, memory.fill, table.init, table.copy,
// table.fill.
func isBulk(sub uint32) bool {
	return sub == 8 || sub == 10 || sub == 11 || sub == 12 || sub == 14 || sub == 17
}

// skipImmediates reads the immediates of the instruction op and returns the sub
// opcode of a prefixed one. It refuses opcodes outside WebAssembly 2.0 and a global
// index at or past globals.
func skipImmediates(r *wasmReader, op byte, globals uint32) (uint32, error) {
	switch {
	case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b ||
		(op >= 0x45 && op <= 0xc4) || op == 0xd1:
		// no immediates
	case op >= 0x02 && op <= 0x04: // block, loop, if
		return 0, blockType(r)
	case op == 0x0c || op == 0x0d || op == 0x10 || (op >= 0x20 && op <= 0x22) ||
		op == 0x25 || op == 0x26 || op == 0x3f || op == 0x40 || op == 0xd2:
		r.u32()
	case op == 0x23 || op == 0x24: // global.get, global.set
		if idx := r.u32(); r.err == nil && idx >= globals {
			return 0, fmt.Errorf("global %d does not exist", idx)
		}
	case op == 0x0e: // br_table
		for n, i := r.vec(1), uint32(0); i <= n && r.err == nil; i++ {
			r.u32()
		}
	case op == 0x11: // call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		for n, i := r.vec(1), uint32(0); i < n && r.err == nil; i++ {
			r.valType()
		}
		if !r.known {
			return 0, errors.New("select with an unknown value type")
		}
	case op >= 0x28 && op <= 0x3e:
		memArg(r)
	case op == 0x41:
		r.leb(5)
	case op == 0x42:
		r.leb(10)
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op == 0xd0: // ref.null
		r.leb(5)
	case op == 0xfc:
		sub := r.u32()
		return sub, skipFC(r, sub)
	case op == 0xfd:
		sub := r.u32()
		return sub, skipFD(r, sub)
	default:
		return 0, fmt.Errorf("instruction 0x%02x is not supported", op)
	}
	return 0, nil
}

func blockType(r *wasmReader) error {
	if r.pos >= len(r.b) {
		r.fail("unexpected end")
		return nil
	}
	switch r.b[r.pos] {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.pos++
		return nil
	}
	if v := signedLEB(r, 5); r.err == nil && v < 0 {
		return errors.New("unknown block type")
	}
	return nil
}

// signedLEB reads a signed LEB128 of at most maxBytes bytes.
func signedLEB(r *wasmReader, maxBytes int) int64 {
	var v int64
	for i := 0; i < maxBytes; i++ {
		b := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if shift := 7 * (i + 1); shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
	r.fail("LEB128 number too long")
	return 0
}

// memArg reads a memarg: alignment (with the multi-memory index flag) and offset.
func memArg(r *wasmReader) {
	if align := r.u32(); align&0x40 != 0 {
		r.u32()
	}
	r.leb(10)
}

func skipFC(r *wasmReader, sub uint32) error {
	switch {
	case r.err != nil:
	case sub <= 7: // saturating truncations
	case sub == 8 || sub == 10 || sub == 12 || sub == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17):
		r.u32()
	default:
		return fmt.Errorf("instruction 0xfc %d is not supported", sub)
	}
	return nil
}

func skipFD(r *wasmReader, sub uint32) error {
	switch {
	case r.err != nil:
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		memArg(r)
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.skip(1)
	case sub >= 84 && sub <= 91: // load and store lane
		memArg(r)
		r.skip(1)
	case sub <= 255:
		// no immediates
	default:
		return fmt.Errorf("instruction 0xfd %d is not supported", sub)
	}
	return nil
}
