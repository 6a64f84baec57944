;; invalid: no circlegate_abi_v1 export.
(module (memory (export "memory") 1) (func (export "get")))
