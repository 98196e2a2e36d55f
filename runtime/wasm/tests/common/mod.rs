//! Shared by the guest tests: the Rust demo guest, built once per test process.
#![allow(dead_code)]

use rasp_wasm::build::{build_guest, target_installed, TARGET};
use rasp_wasm::{Limits, WasmModule};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `rasp-guest-demo` built for wasm32, or `None` (said on stderr) when the toolchain lacks
/// the target: the tests then run only their `wat` guests.
pub fn demo_wasm_path() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        if !target_installed() {
            eprintln!(
                "the {TARGET} target is not installed (rustup target add {TARGET}): \
                 the Rust guest is skipped, the wat guests still run"
            );
            return None;
        }
        let ws = workspace();
        Some(
            build_guest(&ws, "rasp-guest-demo", &ws.join("target/guest"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
    })
    .clone()
}

/// The demo guest as a module with the default limits.
pub fn demo_module() -> Option<Arc<WasmModule>> {
    demo_wasm_path().map(|p| WasmModule::from_file(&p, Limits::default()).unwrap())
}

/// A `wat` guest of this folder's `guests/`.
pub fn wat(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/guests")
            .join(name),
    )
    .unwrap()
}
