;; opcodes_env: the imports of opcodes.wat, for engine_interrupt_test.go.
(module
  (global (export "g") i32 (i32.const 5))
  (func (export "tx_time") (result i64) (i64.const 42)))
