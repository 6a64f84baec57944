;; pool: for the pool's tests. hold counts to a billion, long enough to keep an
;; instance busy while a test acts; holdtrap does the same and then traps; get does
;; nothing. Its memory starts at two pages, so a call limited to one cannot start it.
(module
  (memory (export "memory") 2)
  (func $count (param $n i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  (func (export "circlegate_abi_v1"))
  (func (export "hold") (call $count (i32.const 1000000000)))
  (func (export "holdtrap") (call $count (i32.const 1000000000)) unreachable)
  (func (export "get")))
