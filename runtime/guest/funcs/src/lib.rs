//! Dataflow functions compiled to WebAssembly, shipped with a program graph to nodes whose
//! binaries lack them (`rasp_dataflow::Program::map_wasm`, `filter_wasm`):
//!
//! - `shout`: a word in capitals (`map`, `String` to `String`);
//! - `long_word`: whether a word has more than four letters (`filter` over `String`);
//! - `double`: twice a number (`map`, `u64` to `u64`).
#![allow(unsafe_code)] // the export macros write `#[no_mangle]` exports.

rasp_guest::export_buffers!();
rasp_guest::export_map!(shout: String => String, |s: String| s.to_uppercase());
rasp_guest::export_filter!(long_word: String, |s: &String| s.chars().count() > 4);
rasp_guest::export_map!(double: u64 => u64, |n: u64| n.wrapping_mul(2));
