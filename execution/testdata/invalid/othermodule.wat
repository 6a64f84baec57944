;; invalid: imports from a module the host does not provide.
(module
  (import "host" "exec" (func (param i32)))
  (memory (export "memory") 1) (func (export "circlegate_abi_v1")))
