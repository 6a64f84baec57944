;; startslow: a module that takes long to start (its start function counts to
;; 400 million) and has methods: hold counts to 20 million, holdtrap does the same
;; and then traps, get does nothing. For the pool's tests: an instance is slow to
;; start, and a call can keep one busy for a while.
(module
  (memory (export "memory") 1)
  (func $count (param $n i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  (func $start (call $count (i32.const 400000000)))
  (start $start)
  (func (export "circlegate_abi_v1"))
  (func (export "hold") (call $count (i32.const 20000000)))
  (func (export "holdtrap") (call $count (i32.const 20000000)) unreachable)
  (func (export "get")))
