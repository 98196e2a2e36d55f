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

fn main() -> std::process::ExitCode {
    rasp::main(app::Todo::default())
}
