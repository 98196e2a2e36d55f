//! `rasp`: the command-line tool. `rasp node` starts a node; see `rasp --help`. The commands
//! live in the library ([`rasp::cli`]) so other commands can reuse `rasp node`'s boot.

/// `rasp ad-counter check` and `fuzz` allocate and free many small values per simulated
/// event; mimalloc does that markedly faster than the system allocator (README "Model
/// checking").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rasp::cli::main()
}
