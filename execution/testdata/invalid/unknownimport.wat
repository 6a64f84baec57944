;; invalid: imports an env function ABI v1 does not have.
(module
  (import "env" "storage_nuke" (func (param i32)))
  (memory (export "memory") 1) (func (export "circlegate_abi_v1")))
