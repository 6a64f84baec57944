package execution

import (
	"encoding/binary"

	"github.com/circlegate/circlegate/store"
	"github.com/tetratelabs/wazero/api"
)

// The host ABI, version 1. docs/abi.md is its reference; keep the two in step.
const (
	// abiModule is the import module of every host function.
	abiModule = "env"
	// abiMarker is the export that declares a module speaks ABI v1.
	abiMarker = "circlegate_abi_v1"
	// abiMemory is the memory every module must export.
	abiMemory = "memory"
	// abiReactorInit is the WASI reactor start function, run once per instance.
	abiReactorInit = "_initialize"
	// abiCommandStart is the WASI command entry point, which a module must not have.
	abiCommandStart = "_start"
	// abiRegisterUnset is what register_len returns for an unset register (u64 max).
	abiRegisterUnset = ^uint64(0)
	// abiMaxRegisters is the most distinct registers one call may hold.
	abiMaxRegisters = 64
	// abiScanDefault and abiScanMax bound the entries of one storage_scan page.
	abiScanDefault = 100
	abiScanMax     = 1000
	// abiScanPageBytes is the size past which a storage_scan page ends early.
	abiScanPageBytes = 1 << 20
	// abiMaxLogLineBytes bounds a log line and abiMaxPanicBytes a panic_utf8 message;
	// longer ones are cut.
	abiMaxLogLineBytes = 4 << 10
	abiMaxPanicBytes   = 512
	// abiMaxKindBytes bounds an event kind.
	abiMaxKindBytes = 64
	// abiWASI is the WASI module Go guests import.
	abiWASI = "wasi_snapshot_preview1"
)

// abiFunc is one host function: its import name and wasm signature.
type abiFunc struct {
	name    string
	params  []api.ValueType
	names   []string
	results []api.ValueType
	fn      api.GoModuleFunc
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

func vt(t ...api.ValueType) []api.ValueType { return t }

// abiFuncs is the whole of ABI v1.
var abiFuncs = []abiFunc{
	{"input", vt(i64), []string{"register_id"}, nil, hostInput},
	{"register_len", vt(i64), []string{"register_id"}, vt(i64), hostRegisterLen},
	{"read_register", vt(i64, i32, i32), []string{"register_id", "ptr", "len"}, vt(i32), hostReadRegister},
	{"value_return", vt(i32, i32), []string{"ptr", "len"}, nil, hostValueReturn},
	{"storage_read", vt(i32, i32, i64), []string{"key_ptr", "key_len", "register_id"}, vt(i32), hostStorageRead},
	{"storage_write", vt(i32, i32, i32, i32, i64), []string{"key_ptr", "key_len", "value_ptr", "value_len", "register_id"}, vt(i32), hostStorageWrite},
	{"storage_remove", vt(i32, i32, i64), []string{"key_ptr", "key_len", "register_id"}, vt(i32), hostStorageRemove},
	{"storage_scan", vt(i32, i32, i32, i32, i32, i64), []string{"prefix_ptr", "prefix_len", "after_ptr", "after_len", "limit", "register_id"}, vt(i32), hostStorageScan},
	{"emit", vt(i32, i32, i32, i32), []string{"kind_ptr", "kind_len", "data_ptr", "data_len"}, nil, hostEmit},
	{"log_utf8", vt(i32, i32), []string{"ptr", "len"}, nil, hostLog},
	{"caller", vt(i64), []string{"register_id"}, nil, hostCaller},
	{"context_id", vt(i64), []string{"register_id"}, nil, hostContextID},
	{"tx_time", nil, nil, vt(i64), hostTxTime},
	{"panic_utf8", vt(i32, i32), []string{"ptr", "len"}, nil, hostPanic},
}

// abiEncodeScan encodes a storage_scan page: u32 count, then for each entry u32 key
// length, key, u32 value length, value; little endian.
func abiEncodeScan(kvs []store.KV) []byte {
	n := 4
	for _, kv := range kvs {
		n += 8 + len(kv.Key) + len(kv.Value)
	}
	b := make([]byte, 0, n)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(kvs)))
	for _, kv := range kvs {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv.Key)))
		b = append(b, kv.Key...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(kv.Value)))
		b = append(b, kv.Value...)
	}
	return b
}

// abiValidKind reports whether an event kind is 1 to 64 bytes of letters, digits,
// '_', '-', '.' and ':' starting with a lowercase letter. Capitalized kinds
// (StateMutation, ContextCreated, ...) belong to the node.
func abiValidKind(k []byte) bool {
	if len(k) == 0 || len(k) > abiMaxKindBytes || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for _, c := range k {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}
