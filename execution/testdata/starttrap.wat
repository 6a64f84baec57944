;; starttrap: a module whose start function calls the ABI, which is not available
;; before a method runs.
(module
  (import "env" "log_utf8" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (func $start (call $log (i32.const 0) (i32.const 1)))
  (start $start)
  (func (export "circlegate_abi_v1"))
  (func (export "get")))
