;; A guest written by hand in the WebAssembly text format against rasp's atom ABI v1: it
;; serves "echo" and answers every "wat/ping" request with a "wat/pong" carrying the same
;; bytes. It allocates from one scratch buffer: the host writes a body and calls the
;; handler at once, and the handler is done with it before the next allocation.
(module
  (import "rasp" "on" (func $on (param i32 i32)))
  (import "rasp" "register" (func $register (param i32 i32) (result i64)))
  (import "rasp" "reply" (func $reply (param i64 i64 i32 i32 i32 i32 i32)))
  (import "rasp" "count" (func $count (param i32 i32 i64)))
  (memory (export "memory") 2)
  (data (i32.const 16) "wat/ping")
  (data (i32.const 32) "wat/pong")
  (data (i32.const 48) "echo")
  (data (i32.const 64) "wat_echoes")
  (func (export "rasp_abi_version") (result i32) (i32.const 1))
  (func (export "rasp_alloc") (param $len i32) (result i32)
    ;; bodies up to 64 KiB - 4 KiB fit the scratch buffer; a larger one gets an address
    ;; past the end, which the host refuses (and stops the guest) rather than corrupt it.
    (if (result i32) (i32.le_u (local.get $len) (i32.const 61440))
      (then (i32.const 4096))
      (else (i32.const 131072))))
  (func (export "rasp_init") (param i32 i32)
    (drop (call $register (i32.const 48) (i32.const 4)))
    (call $on (i32.const 16) (i32.const 8)))
  (func (export "rasp_message")
    (param $kind i64) (param $node i64) (param $atom i32) (param $has i32) (param $req i64)
    (param $ptr i32) (param $len i32) (result i32)
    (if (local.get $has)
      (then
        (call $reply (local.get $req) (local.get $node) (local.get $atom)
          (i32.const 32) (i32.const 8) (local.get $ptr) (local.get $len))))
    (call $count (i32.const 64) (i32.const 10) (i64.const 1))
    (i32.const 0))
  (func (export "rasp_future") (param i64 i32 i32 i32))
  (func (export "rasp_peer") (param i64 i32)))
