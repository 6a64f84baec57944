//go:build wasip1

package sdk

import "unsafe"

// The host ABI, version 1 (docs/abi.md). Pointers are offsets into linear memory.

//go:wasmimport env input
func abiInput(register uint64)

//go:wasmimport env register_len
func abiRegisterLen(register uint64) uint64

//go:wasmimport env read_register
func abiReadRegister(register uint64, ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport env value_return
func abiValueReturn(ptr unsafe.Pointer, n uint32)

//go:wasmimport env storage_read
func abiStorageRead(keyPtr unsafe.Pointer, keyLen uint32, register uint64) uint32

//go:wasmimport env storage_write
func abiStorageWrite(keyPtr unsafe.Pointer, keyLen uint32, valPtr unsafe.Pointer, valLen uint32, register uint64) uint32

//go:wasmimport env storage_remove
func abiStorageRemove(keyPtr unsafe.Pointer, keyLen uint32, register uint64) uint32

//go:wasmimport env storage_scan
func abiStorageScan(prefixPtr unsafe.Pointer, prefixLen uint32, afterPtr unsafe.Pointer, afterLen uint32, limit uint32, register uint64) uint32

//go:wasmimport env emit
func abiEmit(kindPtr unsafe.Pointer, kindLen uint32, dataPtr unsafe.Pointer, dataLen uint32)

//go:wasmimport env log_utf8
func abiLog(ptr unsafe.Pointer, n uint32)

//go:wasmimport env caller
func abiCaller(register uint64)

//go:wasmimport env context_id
func abiContextID(register uint64)

//go:wasmimport env tx_time
func abiTxTime() uint64

//go:wasmimport env panic_utf8
func abiPanic(ptr unsafe.Pointer, n uint32)

// abiV1 is the marker that declares the ABI version the module speaks.
//
//go:wasmexport circlegate_abi_v1
func abiV1() {}

// scratch is the register the SDK uses for every host result.
const scratch = 0

const registerUnset = ^uint64(0)

// readRegister returns a copy of a register, or nil, false if it is unset.
func readRegister(id uint64) ([]byte, bool) {
	n := abiRegisterLen(id)
	if n == registerUnset {
		return nil, false
	}
	buf := make([]byte, n)
	abiReadRegister(id, bytesPtr(buf), uint32(n))
	return buf, true
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}

func stringPtr(s string) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}
