;; invalid: imports its memory.
(module (import "env" "memory" (memory 1)) (export "memory" (memory 0)) (func (export "circlegate_abi_v1")))
