;; The ping-pong ponger written by hand in the WebAssembly text format: it serves
;; "pingpong" and answers every "pp/ping" request with a "pp/pong" carrying the same bytes
;; (a `Ping(n)` and a `Pong(n)` encode alike), counting `wat_echoes`. Bodies go through its
;; inbox (`rasp_inbox`), so the host never calls its allocator for small ones.
(module
  (import "rasp" "on" (func $on (param i32 i32)))
  (import "rasp" "register" (func $register (param i32 i32) (result i64)))
  (import "rasp" "reply" (func $reply (param i64 i64 i32 i32 i32 i32 i32)))
  (import "rasp" "count" (func $count (param i32 i32 i64)))
  (memory (export "memory") 2)
  (data (i32.const 16) "pp/ping")
  (data (i32.const 32) "pp/pong")
  (data (i32.const 48) "pingpong")
  (data (i32.const 64) "wat_echoes")
  (func (export "rasp_abi_version") (result i32) (i32.const 1))
  ;; Larger bodies than the inbox get an address past the end: the host stops the guest.
  (func (export "rasp_alloc") (param $len i32) (result i32) (i32.const 131072))
  (func (export "rasp_inbox") (result i64)
    ;; 4096 << 32 | 61440
    (i64.or (i64.shl (i64.const 4096) (i64.const 32)) (i64.const 61440)))
  (func (export "rasp_init") (param i32 i32)
    (drop (call $register (i32.const 48) (i32.const 8)))
    (call $on (i32.const 16) (i32.const 7)))
  (func (export "rasp_message")
    (param $kind i64) (param $node i64) (param $atom i32) (param $has i32) (param $req i64)
    (param $ptr i32) (param $len i32) (result i32)
    (if (local.get $has)
      (then
        (call $reply (local.get $req) (local.get $node) (local.get $atom)
          (i32.const 32) (i32.const 7) (local.get $ptr) (local.get $len))))
    (call $count (i32.const 64) (i32.const 10) (i64.const 1))
    (i32.const 0))
  (func (export "rasp_future") (param i64 i32 i32 i32))
  (func (export "rasp_peer") (param i64 i32)))
