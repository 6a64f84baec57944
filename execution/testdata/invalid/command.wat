;; invalid: a WASI command (exports _start) rather than a reactor.
(module (memory (export "memory") 1) (func (export "circlegate_abi_v1")) (func (export "_start")))
