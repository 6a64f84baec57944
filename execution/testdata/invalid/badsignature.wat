;; invalid: imports storage_read with the wrong signature.
(module
  (import "env" "storage_read" (func (param i32 i32) (result i32)))
  (memory (export "memory") 1) (func (export "circlegate_abi_v1")))
