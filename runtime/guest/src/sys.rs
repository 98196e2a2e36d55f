//! The host's imports (module `"rasp"`, ABI version 1) and safe wrappers over them.
//!
//! Byte arguments go to the host as (pointer, length) into this module's memory; the host
//! copies them before the import returns. A syscall that returns bytes returns their
//! length (or a negative code) and leaves them in the host's result buffer, which
//! `rasp.result_take` copies into a buffer the guest allocated: the host never calls back
//! into the guest during a syscall.
#![allow(unsafe_code)]

use crate::{Contact, Dest, SysError};

/// No such value (`store_get` of a missing key, `lookup` of an unserved name, `contact`).
const NONE: i64 = -1;
/// The host refused; the result buffer holds the reason (UTF-8).
const REFUSED: i64 = -2;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "rasp")]
    extern "C" {
        pub fn send(
            dest_node: u64,
            dest_service: u32,
            dest_id: u64,
            kind_ptr: u32,
            kind_len: u32,
            body_ptr: u32,
            body_len: u32,
        );
        pub fn reply(
            request: u64,
            to_node: u64,
            to_atom: u32,
            kind_ptr: u32,
            kind_len: u32,
            body_ptr: u32,
            body_len: u32,
        );
        pub fn request(
            dest_node: u64,
            dest_service: u32,
            dest_id: u64,
            kind_ptr: u32,
            kind_len: u32,
            body_ptr: u32,
            body_len: u32,
            resp_ptr: u32,
            resp_len: u32,
            timeout_ns: u64,
        ) -> u64;
        pub fn after(delay_ns: u64) -> u64;
        pub fn every(period_ns: u64) -> u64;
        pub fn cancel(token: u64) -> i64;
        pub fn on(kind_ptr: u32, kind_len: u32);
        pub fn on_peer();
        pub fn now() -> u64;
        pub fn random() -> u64;
        pub fn me_node() -> u64;
        pub fn me_atom() -> u32;
        pub fn store_get(key_ptr: u32, key_len: u32) -> i64;
        pub fn store_put(key_ptr: u32, key_len: u32, val_ptr: u32, val_len: u32) -> i64;
        pub fn store_delete(key_ptr: u32, key_len: u32) -> i64;
        pub fn store_scan(prefix_ptr: u32, prefix_len: u32) -> i64;
        pub fn result_take(ptr: u32);
        pub fn register(name_ptr: u32, name_len: u32) -> i64;
        pub fn lookup(name_ptr: u32, name_len: u32) -> i64;
        pub fn connect(contact_ptr: u32, contact_len: u32);
        pub fn disconnect(node: u64);
        pub fn connected() -> i64;
        pub fn contact(node: u64) -> i64;
        pub fn my_contact() -> i64;
        pub fn spawn(arg_ptr: u32, arg_len: u32) -> i64;
        pub fn stop(atom: u32);
        pub fn log(level: u32, ptr: u32, len: u32);
        pub fn count(name_ptr: u32, name_len: u32, n: u64);
    }
}

/// Off WebAssembly there is no host: every syscall says so.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments, missing_docs)]
mod imports {
    fn no_host() -> ! {
        panic!("rasp-guest: syscalls exist only inside a rasp WebAssembly host")
    }
    pub unsafe fn send(_: u64, _: u32, _: u64, _: u32, _: u32, _: u32, _: u32) {
        no_host()
    }
    pub unsafe fn reply(_: u64, _: u64, _: u32, _: u32, _: u32, _: u32, _: u32) {
        no_host()
    }
    pub unsafe fn request(
        _: u64,
        _: u32,
        _: u64,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
        _: u64,
    ) -> u64 {
        no_host()
    }
    pub unsafe fn after(_: u64) -> u64 {
        no_host()
    }
    pub unsafe fn every(_: u64) -> u64 {
        no_host()
    }
    pub unsafe fn cancel(_: u64) -> i64 {
        no_host()
    }
    pub unsafe fn on(_: u32, _: u32) {
        no_host()
    }
    pub unsafe fn on_peer() {
        no_host()
    }
    pub unsafe fn now() -> u64 {
        no_host()
    }
    pub unsafe fn random() -> u64 {
        no_host()
    }
    pub unsafe fn me_node() -> u64 {
        no_host()
    }
    pub unsafe fn me_atom() -> u32 {
        no_host()
    }
    pub unsafe fn store_get(_: u32, _: u32) -> i64 {
        no_host()
    }
    pub unsafe fn store_put(_: u32, _: u32, _: u32, _: u32) -> i64 {
        no_host()
    }
    pub unsafe fn store_delete(_: u32, _: u32) -> i64 {
        no_host()
    }
    pub unsafe fn store_scan(_: u32, _: u32) -> i64 {
        no_host()
    }
    pub unsafe fn result_take(_: u32) {
        no_host()
    }
    pub unsafe fn register(_: u32, _: u32) -> i64 {
        no_host()
    }
    pub unsafe fn lookup(_: u32, _: u32) -> i64 {
        no_host()
    }
    pub unsafe fn connect(_: u32, _: u32) {
        no_host()
    }
    pub unsafe fn disconnect(_: u64) {
        no_host()
    }
    pub unsafe fn connected() -> i64 {
        no_host()
    }
    pub unsafe fn contact(_: u64) -> i64 {
        no_host()
    }
    pub unsafe fn my_contact() -> i64 {
        no_host()
    }
    pub unsafe fn spawn(_: u32, _: u32) -> i64 {
        no_host()
    }
    pub unsafe fn stop(_: u32) {
        no_host()
    }
    pub unsafe fn log(_: u32, _: u32, _: u32) {
        no_host()
    }
    pub unsafe fn count(_: u32, _: u32, _: u64) {
        no_host()
    }
}

/// A guest address as the ABI passes it (wasm32 addresses fit in 32 bits).
fn addr(bytes: &[u8]) -> (u32, u32) {
    (bytes.as_ptr() as usize as u32, bytes.len() as u32)
}

/// Bodies up to this size go through one reusable buffer instead of the allocator: the
/// host only allocates right before it calls an entry point, and the entry point is done
/// with the body before the host's next allocation.
const SCRATCH_LEN: usize = 64 << 10;

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SCRATCH_LEN].into_boxed_slice());
}

fn scratch_addr() -> u32 {
    SCRATCH.with(|s| s.borrow_mut().as_mut_ptr() as usize as u32)
}

/// The scratch buffer as `rasp_inbox` reports it: address in the high 32 bits, capacity
/// in the low 32. The host writes bodies that fit straight into it, without `rasp_alloc`.
pub fn inbox() -> u64 {
    (u64::from(scratch_addr()) << 32) | SCRATCH_LEN as u64
}

/// A buffer of `len` bytes the host writes into; [`with_body`] reads it back.
pub fn alloc(len: u32) -> u32 {
    if len as usize <= SCRATCH_LEN {
        return scratch_addr();
    }
    let layout = std::alloc::Layout::array::<u8>(len as usize).expect("len fits a layout");
    // SAFETY: a non-zero-sized layout (len > SCRATCH_LEN); the host writes all `len` bytes
    // before the guest reads any, so the buffer is never read uninitialised.
    let ptr = unsafe { std::alloc::alloc(layout) };
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    ptr as usize as u32
}

/// Runs `f` on the body the host wrote at (`ptr`, `len`) (no buffer when `len == 0`), then
/// frees it if it was not the scratch buffer.
pub fn with_body<R>(ptr: u32, len: u32, f: impl FnOnce(&[u8]) -> R) -> R {
    if len == 0 {
        return f(&[]);
    }
    if len as usize <= SCRATCH_LEN && ptr == scratch_addr() {
        // Held for the length of `f`: the host allocates only between entry points.
        return SCRATCH.with(|s| f(&s.borrow()[..len as usize]));
    }
    let raw = std::ptr::slice_from_raw_parts_mut(ptr as usize as *mut u8, len as usize);
    // SAFETY: the host passes back exactly a (pointer, length) that `alloc` returned from
    // the allocator for this length, once: the box is rebuilt from that allocation.
    let body = unsafe { Box::from_raw(raw) };
    f(&body)
}

/// The host's result buffer of `len` bytes, copied into guest memory.
fn fetch(len: i64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    // SAFETY: the host writes exactly `len` bytes (the length it just returned) at `ptr`.
    unsafe { imports::result_take(buf.as_mut_ptr() as usize as u32) };
    buf
}

fn refused(code: i64) -> SysError {
    SysError(String::from_utf8_lossy(&fetch(code_len(code))).into_owned())
}

/// A refusal's reason has its length encoded below [`REFUSED`]: `REFUSED - len`.
fn code_len(code: i64) -> i64 {
    REFUSED - code
}

fn dest_parts(dest: Dest) -> (u64, u32, u64) {
    match dest {
        Dest::Atom(a) => (a.node.0, 0, u64::from(a.atom.0)),
        Dest::Service(n, id) => (n.0, 1, id),
    }
}

// Every wrapper below passes the host only (pointer, length) pairs of live slices, which
// the host copies before it returns; no other memory is touched.

pub fn send(dest: Dest, kind: &str, body: &[u8]) {
    let (n, s, id) = dest_parts(dest);
    let (kp, kl) = addr(kind.as_bytes());
    let (bp, bl) = addr(body);
    // SAFETY: see above.
    unsafe { imports::send(n, s, id, kp, kl, bp, bl) }
}

pub fn reply(request: u64, to: crate::AtomAddr, kind: &str, body: &[u8]) {
    let (kp, kl) = addr(kind.as_bytes());
    let (bp, bl) = addr(body);
    // SAFETY: see above.
    unsafe { imports::reply(request, to.node.0, to.atom.0, kp, kl, bp, bl) }
}

pub fn request(dest: Dest, kind: &str, body: &[u8], resp: &str, timeout_ns: u64) -> u64 {
    let (n, s, id) = dest_parts(dest);
    let (kp, kl) = addr(kind.as_bytes());
    let (bp, bl) = addr(body);
    let (rp, rl) = addr(resp.as_bytes());
    // SAFETY: see above.
    unsafe { imports::request(n, s, id, kp, kl, bp, bl, rp, rl, timeout_ns) }
}

pub fn after(delay_ns: u64) -> u64 {
    // SAFETY: scalar arguments only.
    unsafe { imports::after(delay_ns) }
}

pub fn every(period_ns: u64) -> u64 {
    // SAFETY: scalar arguments only.
    unsafe { imports::every(period_ns) }
}

pub fn cancel(token: u64) -> bool {
    // SAFETY: scalar arguments only.
    unsafe { imports::cancel(token) == 1 }
}

pub fn on(kind: &str) {
    let (p, l) = addr(kind.as_bytes());
    // SAFETY: see above.
    unsafe { imports::on(p, l) }
}

pub fn on_peer() {
    // SAFETY: no arguments.
    unsafe { imports::on_peer() }
}

pub fn now() -> u64 {
    // SAFETY: no arguments.
    unsafe { imports::now() }
}

pub fn random() -> u64 {
    // SAFETY: no arguments.
    unsafe { imports::random() }
}

pub fn me_node() -> u64 {
    // SAFETY: no arguments.
    unsafe { imports::me_node() }
}

pub fn me_atom() -> u32 {
    // SAFETY: no arguments.
    unsafe { imports::me_atom() }
}

pub fn store_get(key: &[u8]) -> Result<Option<Vec<u8>>, SysError> {
    let (p, l) = addr(key);
    // SAFETY: see above.
    match unsafe { imports::store_get(p, l) } {
        NONE => Ok(None),
        n if n >= 0 => Ok(Some(fetch(n))),
        code => Err(refused(code)),
    }
}

fn status(code: i64) -> Result<(), SysError> {
    if code >= 0 {
        Ok(())
    } else {
        Err(refused(code))
    }
}

pub fn store_put(key: &[u8], value: &[u8]) -> Result<(), SysError> {
    let (kp, kl) = addr(key);
    let (vp, vl) = addr(value);
    // SAFETY: see above.
    status(unsafe { imports::store_put(kp, kl, vp, vl) })
}

pub fn store_delete(key: &[u8]) -> Result<(), SysError> {
    let (p, l) = addr(key);
    // SAFETY: see above.
    status(unsafe { imports::store_delete(p, l) })
}

pub fn store_scan(prefix: &[u8]) -> Result<crate::KvPairs, SysError> {
    let (p, l) = addr(prefix);
    // SAFETY: see above.
    let n = unsafe { imports::store_scan(p, l) };
    if n < 0 {
        return Err(refused(n));
    }
    rmp_serde::from_slice::<crate::KvPairs>(&fetch(n))
        .map_err(|e| SysError(format!("store scan result does not decode: {e}")))
}

pub fn register(name: &str) -> Result<(), SysError> {
    let (p, l) = addr(name.as_bytes());
    // SAFETY: see above.
    status(unsafe { imports::register(p, l) })
}

pub fn lookup(name: &str) -> Option<u32> {
    let (p, l) = addr(name.as_bytes());
    // SAFETY: see above.
    let n = unsafe { imports::lookup(p, l) };
    u32::try_from(n).ok()
}

pub fn connect(contact: &[u8]) {
    let (p, l) = addr(contact);
    // SAFETY: see above.
    unsafe { imports::connect(p, l) }
}

pub fn disconnect(node: u64) {
    // SAFETY: scalar arguments only.
    unsafe { imports::disconnect(node) }
}

pub fn connected() -> Vec<u64> {
    // SAFETY: no arguments.
    let n = unsafe { imports::connected() };
    if n < 0 {
        return Vec::new();
    }
    rmp_serde::from_slice(&fetch(n)).unwrap_or_default()
}

pub fn contact(node: u64) -> Option<Contact> {
    // SAFETY: scalar arguments only.
    let n = unsafe { imports::contact(node) };
    if n < 0 {
        return None;
    }
    rmp_serde::from_slice(&fetch(n)).ok()
}

pub fn my_contact() -> Contact {
    // SAFETY: no arguments.
    let n = unsafe { imports::my_contact() };
    let fallback = Contact {
        node: crate::NodeId(me_node()),
        addrs: Vec::new(),
    };
    if n < 0 {
        return fallback;
    }
    rmp_serde::from_slice(&fetch(n)).unwrap_or(fallback)
}

pub fn spawn(arg: &[u8]) -> Result<u32, SysError> {
    let (p, l) = addr(arg);
    // SAFETY: see above.
    let n = unsafe { imports::spawn(p, l) };
    if n < 0 {
        return Err(refused(n));
    }
    Ok(n as u32)
}

pub fn stop(atom: u32) {
    // SAFETY: scalar arguments only.
    unsafe { imports::stop(atom) }
}

pub fn log(level: u32, text: &str) {
    let (p, l) = addr(text.as_bytes());
    // SAFETY: see above.
    unsafe { imports::log(level, p, l) }
}

pub fn count(name: &str, n: u64) {
    let (p, l) = addr(name.as_bytes());
    // SAFETY: see above.
    unsafe { imports::count(p, l, n) }
}
