package execution

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/circlegate/circlegate/errs"
	"github.com/tetratelabs/wazero/api"
)

// The host functions of ABI v1 (abi.go lists them, docs/abi.md documents them). Each
// checks every pointer and length against the guest's memory and every size against
// the call's limits, and traps (via instance.trap) with a message naming itself.

// hostCall returns the instance whose call is running. Host functions called while
// a module starts up (no call yet) trap.
func hostCall(ctx context.Context, name string) *engineInstance {
	var in *engineInstance
	if x, ok := ctx.(*engineCtx); ok {
		in = x.in
	} else if in, ok = ctx.Value(hostCtxKey{}).(*engineInstance); !ok {
		panic(errs.E(errs.Internal, "%s called outside the engine", name))
	}
	if !in.call.active {
		in.trap("%s: called while the module starts up; the ABI is available in methods only", name)
	}
	return in
}

// read returns the guest memory [ptr, ptr+n) without copying, or traps.
func (in *engineInstance) read(m api.Module, fn string, ptr, n uint32) []byte {
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		in.trap("%s: memory range [%d, %d) is out of bounds (memory is %d bytes)", fn, ptr, uint64(ptr)+uint64(n), m.Memory().Size())
	}
	return b
}

// key reads a storage key or scan prefix, within max_key_bytes.
func (in *engineInstance) key(m api.Module, fn string, ptr, n uint32, empty bool) []byte {
	if max := in.call.lim.MaxKeyBytes; int64(n) > int64(max) {
		in.trap("%s: key is %d bytes, over max_key_bytes (%d)", fn, n, max)
	}
	if n == 0 && !empty {
		in.trap("%s: key is empty", fn)
	}
	return in.read(m, fn, ptr, n)
}

func (in *engineInstance) writable(fn string) {
	if in.call.c.ReadOnly {
		in.trap("%s: not allowed in a query (the call is read-only)", fn)
	}
}

func (in *engineInstance) register(id uint64) ([]byte, bool) {
	for _, r := range in.call.regs {
		if r.id == id {
			return r.data, true
		}
	}
	return nil, false
}

// setRegister sets a register to data, which the host must not change afterwards
// (registers are copied out, never written through).
func (in *engineInstance) setRegister(fn string, id uint64, data []byte) {
	cl := &in.call
	if data == nil {
		data = []byte{}
	}
	for i := range cl.regs {
		if cl.regs[i].id == id {
			cl.regs[i].data = data
			return
		}
	}
	if len(cl.regs) >= abiMaxRegisters {
		in.trap("%s: more than %d registers in use", fn, abiMaxRegisters)
	}
	cl.regs = append(cl.regs, engineRegister{id, data})
}

func (in *engineInstance) unsetRegister(id uint64) {
	cl := &in.call
	for i := range cl.regs {
		if cl.regs[i].id == id {
			cl.regs = slices.Delete(cl.regs, i, i+1)
			return
		}
	}
}

func boolI32(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// input(register_id i64): the call's args into a register.
func hostInput(ctx context.Context, _ api.Module, s []uint64) {
	in := hostCall(ctx, "input")
	in.setRegister("input", s[0], in.call.c.Args)
}

// register_len(register_id i64) -> i64: the register's length, or u64 max if unset.
func hostRegisterLen(ctx context.Context, _ api.Module, s []uint64) {
	in := hostCall(ctx, "register_len")
	r, ok := in.register(s[0])
	if !ok {
		s[0] = abiRegisterUnset
		return
	}
	s[0] = uint64(len(r))
}

// read_register(register_id i64, ptr i32, len i32) -> i32: copies the register to
// [ptr, ptr+len), which must hold it; 0 if the register is unset.
func hostReadRegister(ctx context.Context, m api.Module, s []uint64) {
	in := hostCall(ctx, "read_register")
	ptr, n := api.DecodeU32(s[1]), api.DecodeU32(s[2])
	dst := in.read(m, "read_register", ptr, n)
	r, ok := in.register(s[0])
	if !ok {
		s[0] = 0
		return
	}
	if uint64(len(r)) > uint64(n) {
		in.trap("read_register: register %d holds %d bytes, the buffer only %d", s[0], len(r), n)
	}
	copy(dst, r)
	s[0] = 1
}

// value_return(ptr i32, len i32): sets the method's output (JSON, or empty).
func hostValueReturn(ctx context.Context, m api.Module, s []uint64) {
	in := hostCall(ctx, "value_return")
	ptr, n := api.DecodeU32(s[0]), api.DecodeU32(s[1])
	if max := in.call.lim.MaxOutputBytes; int64(n) > int64(max) {
		in.trap("value_return: output is %d bytes, over max_output_bytes (%d)", n, max)
	}
	b := in.read(m, "value_return", ptr, n)
	if len(b) > 0 && !json.Valid(b) {
		in.trap("value_return: output is not valid JSON")
	}
	in.call.output = append(make([]byte, 0, len(b)), b...)
}

// storage_read(key_ptr i32, key_len i32, register_id i64) -> i32: the value into the
// register and 1, or 0 (register unset) if the key does not exist.
func hostStorageRead(ctx context.Context, m api.Module, s []uint64) {
	in := hostCall(ctx, "storage_read")
	key := in.key(m, "storage_read", api.DecodeU32(s[0]), api.DecodeU32(s[1]), false)
	v, ok := in.get(key)
	in.setOrUnset("storage_read", s[2], v, ok)
	s[0] = boolI32(ok)
}

func (in *engineInstance) setOrUnset(fn string, id uint64, v []byte, ok bool) {
	if ok {
		in.setRegister(fn, id, v)
	} else {
		in.unsetRegister(id)
	}
}

// storage_write(key_ptr, key_len, value_ptr, value_len i32, register_id i64) -> i32:
// sets key; the previous value goes into the register; 1 if the key existed.
func hostStorageWrite(ctx context.Context, m api.Module, s []uint64) {
	in := hostCall(ctx, "storage_write")
	in.writable("storage_write")
	key := in.key(m, "storage_write", api.DecodeU32(s[0]), api.DecodeU32(s[1]), false)
	n := api.DecodeU32(s[3])
	if max := in.call.lim.MaxValueBytes; int64(n) > int64(max) {
		in.trap("storage_write: value is %d bytes, over max_value_bytes (%d)", n, max)
	}
	val := in.read(m, "storage_write", api.DecodeU32(s[2]), n)
	old, existed := in.put("storage_write", key, val, false)
	in.setOrUnset("storage_write", s[4], old, existed)
	s[0] = boolI32(existed)
}

// storage_remove(key_ptr i32, key_len i32, register_id i64) -> i32: removes key; the
// removed value goes into the register; 1 if the key existed.
func hostStorageRemove(ctx context.Context, m api.Module, s []uint64) {
	in := hostCall(ctx, "storage_remove")
	in.writable("storage_remove")
	key := in.key(m, "storage_remove", api.DecodeU32(s[0]), api.DecodeU32(s[1]), false)
	old, existed := in.put("storage_remove", key, nil, true)
	in.setOrUnset("storage_remove", s[2], old, existed)
	s[0] = boolI32(existed)
}

// storage_scan(prefix_ptr, prefix_len, after_ptr, after_len, limit i32,
// register_id i64) -> i32: a page of entries into the register; 1 if more may
// follow.
func hostStorageScan(ctx context.Context, m api.Module, s []uint64) {
	in := hostCall(ctx, "storage_scan")
	prefix := in.key(m, "storage_scan", api.DecodeU32(s[0]), api.DecodeU32(s[1]), true)
	after := in.key(m, "storage_scan", api.DecodeU32(s[2]), api.DecodeU32(s[3]), true)
	limit := int(api.DecodeI32(s[4]))
	if limit <= 0 {
		limit = abiScanDefault
	}
	limit = min(limit, abiScanMax)
	kvs, more := in.scan(bytesClone(prefix), bytesClone(after), limit)
	in.setRegister("storage_scan", s[5], abiEncodeScan(kvs))
	s[0] = boolI32(more)
}

// bytesClone copies guest memory that must outlive a call into the state reader.
func bytesClone(b []byte) []byte { return append(make([]byte, 0, len(b)), b...) }

// emit(kind_ptr, kind_len, data_ptr, data_len i32): emits an event; data is JSON or
// empty.
func hostEmit(ctx context.Context, m api.Module, s []uint64) {
	in := hostCall(ctx, "emit")
	in.writable("emit")
	cl := &in.call
	kn, dn := api.DecodeU32(s[1]), api.DecodeU32(s[3])
	if len(cl.events) >= cl.lim.MaxEvents {
		in.trap("emit: the call emits more than max_events (%d) events", cl.lim.MaxEvents)
	}
	if size := uint64(kn) + uint64(dn); size > uint64(cl.lim.MaxEventBytes) {
		in.trap("emit: event is %d bytes, over max_event_bytes (%d)", size, cl.lim.MaxEventBytes)
	}
	kind := in.read(m, "emit", api.DecodeU32(s[0]), kn)
	if !abiValidKind(kind) {
		in.trap("emit: kind %q is invalid: 1 to 64 letters, digits, '_', '-', '.', ':', starting with a lowercase letter", truncate(string(kind), 80))
	}
	data := in.read(m, "emit", api.DecodeU32(s[2]), dn)
	if len(data) > 0 && !json.Valid(data) {
		in.trap("emit: data of event %s is not valid JSON", kind)
	}
	var d []byte
	if len(data) > 0 {
		d = bytesClone(data)
	}
	cl.events = append(cl.events, Emitted{Kind: string(kind), Data: d})
}

// log_utf8(ptr i32, len i32): adds a log line.
func hostLog(ctx context.Context, m api.Module, s []uint64) {
	in := hostCall(ctx, "log_utf8")
	in.addLog(in.read(m, "log_utf8", api.DecodeU32(s[0]), api.DecodeU32(s[1])))
}

// caller(register_id i64): the caller's public key (hex) into a register.
func hostCaller(ctx context.Context, _ api.Module, s []uint64) {
	in := hostCall(ctx, "caller")
	in.setRegister("caller", s[0], []byte(in.call.c.Caller))
}

// context_id(register_id i64): the context id into a register.
func hostContextID(ctx context.Context, _ api.Module, s []uint64) {
	in := hostCall(ctx, "context_id")
	in.setRegister("context_id", s[0], []byte(in.call.c.ContextID))
}

// tx_time() -> i64: the tx time in unix nanoseconds.
func hostTxTime(ctx context.Context, _ api.Module, s []uint64) {
	in := hostCall(ctx, "tx_time")
	s[0] = uint64(in.txNanos)
}

// panic_utf8(ptr i32, len i32): fails the call with the message.
func hostPanic(ctx context.Context, m api.Module, s []uint64) {
	in := hostCall(ctx, "panic_utf8")
	msg := in.read(m, "panic_utf8", api.DecodeU32(s[0]), api.DecodeU32(s[1]))
	text := truncate(strings.ToValidUTF8(string(msg[:min(len(msg), 4*abiMaxPanicBytes)]), "\uFFFD"), abiMaxPanicBytes)
	in.trap("app failed: %s", text)
}
