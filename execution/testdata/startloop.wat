;; startloop: a module whose start function never returns.
(module
  (memory (export "memory") 1)
  (func $start (loop $l (br $l)))
  (start $start)
  (func (export "circlegate_abi_v1"))
  (func (export "get")))
