//! `rasp`: the command-line tool. `rasp node` starts a node; see `rasp --help`. The commands
//! live in the library ([`rasp::cli`]) so other commands can reuse `rasp node`'s boot.

fn main() -> std::process::ExitCode {
    rasp::cli::main()
}
