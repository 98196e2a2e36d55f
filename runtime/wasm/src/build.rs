//! Building a guest crate into a `.wasm` module with the machine's cargo (what the tests
//! and `rasp`'s own checks use; a user can as well run the printed command by hand).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target guests compile to.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// Whether the toolchain has the standard library for [`TARGET`] (`rustup target add
/// wasm32-unknown-unknown` installs it).
pub fn target_installed() -> bool {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "target-libdir", "--target", TARGET])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&dir).is_dir()
                && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some())
        }
        _ => false,
    }
}

/// Builds package `package` of the workspace at `workspace` for [`TARGET`] with the
/// workspace's `guest` profile (release, whole-program optimisation, abort on panic, no
/// debug info) into `target_dir`; the path of its `.wasm`. The error holds the command and
/// what cargo printed.
pub fn build_guest(workspace: &Path, package: &str, target_dir: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--profile",
            "guest",
            "--quiet",
            "--target",
            TARGET,
            "-p",
            package,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    // The outer cargo's settings for the host build must not leak into the guest's.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let shown = format!(
        "{cargo} build --profile guest --target {TARGET} -p {package} --target-dir {}",
        target_dir.display()
    );
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let file = target_dir
        .join(TARGET)
        .join("guest")
        .join(format!("{}.wasm", package.replace('-', "_")));
    if file.is_file() {
        Ok(file)
    } else {
        Err(format!("{shown} wrote no {}", file.display()))
    }
}
