;; watcounter: the counter app written by hand in WebAssembly text, to show that the
;; circlegate ABI v1 (docs/abi.md) needs no SDK and no particular language.
;;
;;   wat2wasm watcounter.wat -o watcounter.wasm
;;
;; Methods: increment -> {"value": N} (adds 1), get -> {"value": N}.
;; State: the key "count" holds N as 8 bytes, little endian.
(module
  (import "env" "storage_read" (func $storage_read (param i32 i32 i64) (result i32)))
  (import "env" "storage_write" (func $storage_write (param i32 i32 i32 i32 i64) (result i32)))
  (import "env" "read_register" (func $read_register (param i64 i32 i32) (result i32)))
  (import "env" "value_return" (func $value_return (param i32 i32)))
  (import "env" "log_utf8" (func $log_utf8 (param i32 i32)))

  ;; Memory layout (one page):
  ;;   0..5     the key "count"
  ;;   16..24   the counter as read from or written to storage
  ;;   40..49   the output prefix {"value":
  ;;   64..97   the output is built here: at most 9 + 20 digits + "}", ending at 97
  ;;   100..111 the log line "incremented"
  (memory (export "memory") 1)
  (data (i32.const 0) "count")
  (data (i32.const 40) "{\"value\":")
  (data (i32.const 100) "incremented")

  ;; The ABI marker.
  (func (export "circlegate_abi_v1"))

  ;; $load returns the stored counter, 0 if unset.
  (func $load (result i64)
    (if (result i64) (call $storage_read (i32.const 0) (i32.const 5) (i64.const 0))
      (then
        (drop (call $read_register (i64.const 0) (i32.const 16) (i32.const 8)))
        (i64.load (i32.const 16)))
      (else (i64.const 0))))

  ;; $store writes the counter (the previous value goes to register 1, unused).
  (func $store (param $v i64)
    (i64.store (i32.const 16) (local.get $v))
    (drop (call $storage_write (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 8) (i64.const 1))))

  ;; $return returns {"value":N}: the digits of N are written backwards ending at 96,
  ;; then "}" at 96, then the 9-byte prefix is copied in front of the digits.
  (func $return (param $v i64)
    (local $p i32)
    (local.set $p (i32.const 96))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digits (i64.ne (local.get $v) (i64.const 0))))
    (i32.store8 (i32.const 96) (i32.const 125)) ;; '}'
    (local.set $p (i32.sub (local.get $p) (i32.const 9)))
    (memory.copy (local.get $p) (i32.const 40) (i32.const 9))
    (call $value_return (local.get $p) (i32.sub (i32.const 97) (local.get $p))))

  (func (export "increment")
    (local $v i64)
    (local.set $v (i64.add (call $load) (i64.const 1)))
    (call $store (local.get $v))
    (call $log_utf8 (i32.const 100) (i32.const 11))
    (call $return (local.get $v)))

  (func (export "get")
    (call $return (call $load))))
