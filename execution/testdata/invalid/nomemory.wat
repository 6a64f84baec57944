;; invalid: no exported memory.
(module (memory 1) (func (export "circlegate_abi_v1")) (func (export "get")))
