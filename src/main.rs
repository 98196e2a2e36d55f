//! `rasp`: the command-line tool. `rasp node` starts a node; see `rasp --help`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
