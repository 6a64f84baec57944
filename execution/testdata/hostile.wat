;; hostile: a guest that misbehaves in every way the engine must survive. Each
;; export is one misbehaviour; engine_test.go runs them all.
(module
  (import "env" "storage_read" (func $storage_read (param i32 i32 i64) (result i32)))
  (import "env" "storage_write" (func $storage_write (param i32 i32 i32 i32 i64) (result i32)))
  (import "env" "read_register" (func $read_register (param i64 i32 i32) (result i32)))
  (import "env" "register_len" (func $register_len (param i64) (result i64)))
  (import "env" "input" (func $input (param i64)))
  (import "env" "value_return" (func $value_return (param i32 i32)))
  (import "env" "emit" (func $emit (param i32 i32 i32 i32)))
  (import "env" "log_utf8" (func $log_utf8 (param i32 i32)))
  (import "env" "panic_utf8" (func $panic_utf8 (param i32 i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  ;; 40 pages (2.5 MiB): enough for the oversized values below to be in bounds.
  (memory (export "memory") 40)
  (data (i32.const 0) "key")
  (data (i32.const 16) "insufficient funds")
  (data (i32.const 48) "tick")
  (data (i32.const 64) "{\"ok\":true}")
  (data (i32.const 80) "StateMutation")
  (data (i32.const 96) "{not json")
  ;; 128..: a key built by $many_writes ("k" + 4 bytes of counter)
  (data (i32.const 128) "k")

  (func (export "circlegate_abi_v1"))

  ;; A well-behaved method, to check the module itself works.
  (func (export "ok")
    (drop (call $storage_write (i32.const 0) (i32.const 3) (i32.const 64) (i32.const 11) (i64.const 0)))
    (call $value_return (i32.const 64) (i32.const 11)))

  (func (export "loop") (loop $l (br $l)))

  ;; 2^62 calls without a single loop: only the checks at function entries stop it.
  (func $fanout (param $n i32)
    (if (local.get $n)
      (then
        (call $fanout (i32.sub (local.get $n) (i32.const 1)))
        (call $fanout (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "fanout") (call $fanout (i32.const 62)))

  ;; Fills 2 MiB over and over: bulk work that a count of loop iterations misses.
  (func (export "fill_loop")
    (loop $l (memory.fill (i32.const 0) (i32.const 1) (i32.const 2097152)) (br $l)))

  (func (export "grow")
    (loop $l
      (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)

  (func (export "trap") unreachable)

  (func $recurse (call $recurse))
  (func (export "recurse") (call $recurse))

  (func (export "panic") (call $panic_utf8 (i32.const 16) (i32.const 18)))

  (func (export "exit") (call $proc_exit (i32.const 3)))

  ;; Writes 2000 distinct keys k0000...
  (func (export "many_writes")
    (local $i i32)
    (loop $l
      (i32.store (i32.const 129) (local.get $i))
      (drop (call $storage_write (i32.const 128) (i32.const 5) (i32.const 64) (i32.const 11) (i64.const 0)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 2000)))))

  ;; A 2 MiB value, over the 1 MiB max_value_bytes.
  (func (export "big_value")
    (drop (call $storage_write (i32.const 0) (i32.const 3) (i32.const 4096) (i32.const 2097152) (i64.const 0))))

  ;; A 2 KiB key, over the 1 KiB max_key_bytes.
  (func (export "big_key")
    (drop (call $storage_write (i32.const 4096) (i32.const 2048) (i32.const 64) (i32.const 11) (i64.const 0))))

  ;; 101 events, one over max_events.
  (func (export "many_events")
    (local $i i32)
    (loop $l
      (call $emit (i32.const 48) (i32.const 4) (i32.const 64) (i32.const 11))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 101)))))

  ;; One 70000-byte event, over the 64 KiB max_event_bytes.
  (func (export "big_event")
    (call $emit (i32.const 48) (i32.const 4) (i32.const 4096) (i32.const 70000)))

  ;; A capitalized kind, reserved to the node.
  (func (export "bad_kind")
    (call $emit (i32.const 80) (i32.const 13) (i32.const 64) (i32.const 11)))

  ;; 2 MiB of output, over the 1 MiB max_output_bytes.
  (func (export "big_output")
    (call $value_return (i32.const 4096) (i32.const 2097152)))

  (func (export "bad_json")
    (call $value_return (i32.const 96) (i32.const 9)))

  ;; A key pointer far past the end of memory.
  (func (export "oob_key")
    (drop (call $storage_read (i32.const 0xFFFFFF00) (i32.const 100) (i64.const 0))))

  ;; A length that wraps past the end of memory.
  (func (export "oob_len")
    (call $log_utf8 (i32.const 16) (i32.const 0xFFFFFFFF)))

  ;; Copies the input register to the last byte of memory.
  (func (export "oob_register")
    (call $input (i64.const 0))
    (drop (call $read_register (i64.const 0) (i32.const 2621439) (i32.const 16))))

  ;; A buffer shorter than the register.
  (func (export "short_register")
    (call $input (i64.const 0))
    (drop (call $read_register (i64.const 0) (i32.const 4096)
      (i32.sub (i32.wrap_i64 (call $register_len (i64.const 0))) (i32.const 1)))))

  ;; Writes a key, then traps: the write must not survive.
  (func (export "write_then_trap")
    (drop (call $storage_write (i32.const 0) (i32.const 3) (i32.const 64) (i32.const 11) (i64.const 0)))
    unreachable)

  ;; Writes a key (call it read-only to see the query trap).
  (func (export "write")
    (drop (call $storage_write (i32.const 0) (i32.const 3) (i32.const 64) (i32.const 11) (i64.const 0))))

  ;; Emits an event (call it read-only to see the query trap).
  (func (export "emit")
    (call $emit (i32.const 48) (i32.const 4) (i32.const 64) (i32.const 11)))

  ;; 150 log lines: 100 kept, 50 dropped, not an error.
  (func (export "log_flood")
    (local $i i32)
    (loop $l
      (call $log_utf8 (i32.const 48) (i32.const 4))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 150))))))
