//! Seeds from the environment and reproduction hints for failing seeded tests.

/// The seed to use: `RASP_SEED` from the environment (decimal or `0x` hex) if set and
/// valid, else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("RASP_SEED")
        .ok()
        .and_then(|s| parse_seed(&s))
        .unwrap_or(default)
}

/// Parses a decimal or `0x`-prefixed hexadecimal seed.
pub fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The command that re-runs the current test with `seed`, e.g.
/// `RASP_SEED=7 cargo test -p rasp-runtime --test sim_faults -- --exact loss_rate`.
///
/// Uses what libtest and cargo expose at run time: the thread name (the test's path),
/// the test binary's name and `CARGO_PKG_NAME`.
pub fn repro_command(seed: u64) -> String {
    let pkg = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "<package>".into());
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, hash))
                if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                name.to_string()
            }
            _ => stem,
        });
    let target = match bin {
        Some(b) if b.replace('-', "_") == pkg.replace('-', "_") => " --lib".to_string(),
        Some(b) => format!(" --test {b}"),
        None => String::new(),
    };
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(n) if n != "main" => format!(" -- --exact {n}"),
        _ => String::new(),
    };
    format!("RASP_SEED={seed} cargo test -p {pkg}{target}{test}")
}

/// Prints the seed and the reproduction command if dropped while panicking. Keep one
/// alive for the duration of a seeded test (the simulator holds one itself).
pub struct SeedGuard {
    seed: u64,
    repro: Option<String>,
}

impl SeedGuard {
    /// Guards a test run with `seed`.
    pub fn new(seed: u64) -> Self {
        SeedGuard { seed, repro: None }
    }
    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Replaces the reproduction hint ([`repro_command`], made for tests) with `cmd`: for a
    /// run started from a command line, that command line with its seed.
    pub fn set_repro(&mut self, cmd: impl Into<String>) {
        self.repro = Some(cmd.into());
    }
    /// The command that reproduces the run.
    pub fn repro(&self) -> String {
        self.repro
            .clone()
            .unwrap_or_else(|| repro_command(self.seed))
    }
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "rasp: seeded run failed with seed {}; reproduce with:\n    {}",
                self.seed,
                self.repro()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_and_hex() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed(" 0x2a "), Some(42));
        assert_eq!(parse_seed("nope"), None);
        let cmd = repro_command(9);
        assert!(cmd.starts_with("RASP_SEED=9 cargo test -p "), "{cmd}");
        assert!(
            cmd.contains("--exact sim::seed::tests::parses_decimal_and_hex"),
            "{cmd}"
        );
    }
}
