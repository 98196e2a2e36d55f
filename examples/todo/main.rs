//! A collaborative to-do list, written once as a rasp `App` ([`app::Todo`]) and run in the
//! simulator or as real processes:
//!
//! ```sh
//! cargo run --release --example todo -- sim --nodes 3 --membership full
//! cargo run --release --example todo -- node --index 0 --listen /ip4/127.0.0.1/tcp/7000 --data-dir n0
//! ```
//!
//! See the README's "Write your own program".

mod app;

/// The model checker and the fuzzer allocate and free many small values per simulated
/// event; mimalloc does that markedly faster than the system allocator (README "Model
/// checking" has the figures).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rasp::main(app::Todo::default())
}
