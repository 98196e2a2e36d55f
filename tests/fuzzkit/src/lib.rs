//! # rasp-fuzzkit: the decoder fuzzing engine of rasp's tests
//!
//! Every decoder that reads bytes from the network or the disk gets a [`Target`]: a source of
//! valid encodings and the decoder (which returns the value's re-encoding on success). The
//! engine runs it on generated inputs, on the stable toolchain, and checks three things for
//! each input:
//!
//! - **no panic** (each call runs under [`std::panic::catch_unwind`]);
//! - **a clear error**: a refused input gives a non-empty message;
//! - **bounded allocation**: the peak of bytes held by the decoder during the call, measured
//!   by a counting global allocator (the `allocation-counter` crate, per thread), stays
//!   within `base + per_byte × input length` (see [`Target::alloc_limit`]). A length field
//!   that claims gigabytes must be refused before it is believed.
//!
//! and, for valid inputs, the **round trip**: decoding a valid encoding and encoding the
//! value again gives the same bytes; for mutated inputs that still decode, decoding the
//! re-encoding gives the same re-encoding again (the decoder's output is stable).
//!
//! ## Inputs
//!
//! Each case picks one of these, from a ChaCha8 stream seeded by `RASP_FUZZ_SEED` (default
//! 0) and the target's name, so a run replays exactly:
//!
//! | strategy | what |
//! |---|---|
//! | `valid` | a fresh valid encoding (round trip) |
//! | `random` | 0–256 random bytes |
//! | `flip` | 1–8 bit flips in a valid encoding |
//! | `truncate` | a valid encoding cut short |
//! | `overwrite` | bytes of a valid encoding replaced by edge values (0x00, 0xff, 0x7f, 0x80, MessagePack markers) |
//! | `length` | a MessagePack length field (str, bin, array, map, ext; 8, 16 and 32 bits) inserted or rewritten to claim up to 4 GiB |
//! | `nesting` | up to 100,000 nested arrays or maps (or `[` / `{` in text) |
//! | `splice` | the head of one valid encoding and the tail of another |
//! | `insert` / `delete` | random byte ranges added or removed |
//! | `token` | a token of the target's dictionary inserted (text formats: keys, brackets, huge numbers) |
//! | `stack` | 2–4 of the mutations above in a row |
//!
//! ## How many
//!
//! `RASP_FUZZ_CASES` inputs per target (default [`DEFAULT_CASES`], a few seconds per target
//! in the default test run). The documented long run sets `RASP_FUZZ_CASES=1000000`; see the
//! README's "Bad input" section for the command and the counts measured.
//!
//! A failure prints the target, the case, the strategy, the input (hex, cut at 4 KiB) and
//! the command that replays the run; `RASP_FUZZ_SAVE=<dir>` also writes the whole input to
//! `<dir>/<target>-case<n>.bin`.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Inputs per target when `RASP_FUZZ_CASES` is not set.
pub const DEFAULT_CASES: u64 = 3_000;

/// The random stream targets draw valid values from.
pub type FuzzRng = ChaCha8Rng;

/// Builds a [`Target`] that names its package and test binary in the replay command.
#[macro_export]
macro_rules! target {
    ($name:expr, $valid:expr, $decode:expr $(,)?) => {
        $crate::Target::new(
            $name,
            env!("CARGO_PKG_NAME"),
            env!("CARGO_CRATE_NAME"),
            $valid,
            $decode,
        )
    };
}

/// The cases per target: `RASP_FUZZ_CASES`, else [`DEFAULT_CASES`].
///
/// # Panics
/// If `RASP_FUZZ_CASES` is set but is not a number (a typo would silently run the default).
pub fn cases_from_env() -> u64 {
    match std::env::var("RASP_FUZZ_CASES") {
        Ok(s) => s
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("RASP_FUZZ_CASES={s:?} is not a number")),
        Err(_) => DEFAULT_CASES,
    }
}

/// The base seed: `RASP_FUZZ_SEED`, else 0.
///
/// # Panics
/// If `RASP_FUZZ_SEED` is set but is not a number.
pub fn seed_from_env() -> u64 {
    match std::env::var("RASP_FUZZ_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("RASP_FUZZ_SEED={s:?} is not a number")),
        Err(_) => 0,
    }
}

type Valid<'a> = Box<dyn FnMut(&mut FuzzRng) -> Vec<u8> + 'a>;
type Decode<'a> = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + 'a>;

/// One decoder under test. Build it with [`target!`], adjust, then [`Target::run`].
pub struct Target<'a> {
    name: &'static str,
    package: &'static str,
    test: &'static str,
    valid: Valid<'a>,
    decode: Decode<'a>,
    text: bool,
    exact: bool,
    stable: bool,
    base: u64,
    per_byte: u64,
    cases: u64,
    dictionary: Vec<Vec<u8>>,
}

/// What a run saw.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Inputs tried.
    pub cases: u64,
    /// Inputs the decoder accepted.
    pub accepted: u64,
    /// Inputs it refused with an error.
    pub refused: u64,
    /// Valid encodings round-tripped.
    pub round_trips: u64,
    /// The largest peak allocation of one call, in bytes.
    pub peak_alloc: u64,
    /// The length of the input that caused it.
    pub peak_input_len: usize,
    /// The largest input tried, in bytes.
    pub max_input_len: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
}

const STRATEGIES: [&str; 12] = [
    "valid",
    "random",
    "flip",
    "truncate",
    "overwrite",
    "length",
    "nesting",
    "splice",
    "insert",
    "delete",
    "token",
    "stack",
];

/// MessagePack markers of length fields: (marker, bytes of length that follow).
const LENGTH_MARKERS: [(u8, usize); 11] = [
    (0xd9, 1), // str 8
    (0xda, 2), // str 16
    (0xdb, 4), // str 32
    (0xc4, 1), // bin 8
    (0xc5, 2), // bin 16
    (0xc6, 4), // bin 32
    (0xdc, 2), // array 16
    (0xdd, 4), // array 32
    (0xde, 2), // map 16
    (0xdf, 4), // map 32
    (0xc9, 4), // ext 32
];

const EDGE_BYTES: [u8; 16] = [
    0x00, 0xff, 0x7f, 0x80, 0x90, 0x9f, 0xa0, 0xc0, 0xc1, 0xc2, 0xcf, 0xd3, 0xdd, 0xdf, 0xdb, 0xc6,
];

impl<'a> Target<'a> {
    /// A target named `name` (use [`target!`], which fills `package` and `test`): `valid`
    /// draws a valid encoding; `decode` decodes bytes and returns the value's encoding, or a
    /// message saying why the bytes were refused.
    pub fn new(
        name: &'static str,
        package: &'static str,
        test: &'static str,
        valid: impl FnMut(&mut FuzzRng) -> Vec<u8> + 'a,
        decode: impl Fn(&[u8]) -> Result<Vec<u8>, String> + 'a,
    ) -> Self {
        Target {
            name,
            package,
            test,
            valid: Box::new(valid),
            decode: Box::new(decode),
            text: false,
            exact: true,
            stable: true,
            base: 256 * 1024,
            per_byte: 64,
            cases: cases_from_env(),
            dictionary: Vec::new(),
        }
    }

    /// A text format (TOML, JSON): mutations also insert `dictionary` tokens and nesting is
    /// `[` / `{`.
    pub fn text(mut self, dictionary: &[&str]) -> Self {
        self.text = true;
        self.dictionary = dictionary.iter().map(|t| t.as_bytes().to_vec()).collect();
        self
    }

    /// Valid encodings need not re-encode to the same bytes (text formats: whitespace and
    /// key order), only to bytes that decode to the same encoding again.
    pub fn loose_round_trip(mut self) -> Self {
        self.exact = false;
        self
    }

    /// No re-decoding of what the decoder returns (for decoders whose output is a summary
    /// rather than an encoding of the same format, e.g. the records read from a store file).
    pub fn unstable(mut self) -> Self {
        self.stable = false;
        self
    }

    /// The allocation bound of one call: `base + per_byte × input length` bytes at peak
    /// (default 256 KiB + 64 per byte).
    pub fn alloc_limit(mut self, base: u64, per_byte: u64) -> Self {
        self.base = base;
        self.per_byte = per_byte;
        self
    }

    /// Overrides the number of inputs (e.g. for a decoder that touches the disk).
    pub fn cases(mut self, n: u64) -> Self {
        self.cases = n;
        self
    }

    fn fail(&self, seed: u64, case: u64, strategy: &str, input: &[u8], what: &str) -> ! {
        // RASP_FUZZ_SAVE=<dir> keeps the whole input (for inputs too long to print).
        if let Ok(dir) = std::env::var("RASP_FUZZ_SAVE") {
            let path = std::path::Path::new(&dir).join(format!("{}-case{case}.bin", self.name));
            match std::fs::write(&path, input) {
                Ok(()) => eprintln!(
                    "fuzz target `{}`: input saved to {}",
                    self.name,
                    path.display()
                ),
                Err(e) => eprintln!("fuzz target `{}`: cannot save the input: {e}", self.name),
            }
        }
        let shown = if input.len() <= 4096 {
            hex(input)
        } else {
            format!("{}… ({} bytes)", hex(&input[..4096]), input.len())
        };
        panic!(
            "fuzz target `{}`: {what}\n  case {case} (strategy {strategy}), input {} bytes: {shown}\n  \
             replay: RASP_FUZZ_SEED={seed} RASP_FUZZ_CASES={} cargo test --release -p {} --test {} {} -- --nocapture",
            self.name,
            input.len(),
            case + 1,
            self.package,
            self.test,
            self.name,
        )
    }

    /// Runs the target on its inputs; prints one line of figures. Fails (panics) on the
    /// first panic, empty error, allocation over the bound or broken round trip.
    pub fn run(mut self) -> Report {
        let seed = seed_from_env();
        let mut rng = FuzzRng::seed_from_u64(seed ^ fnv1a(self.name));
        let start = Instant::now();
        let mut pool: Vec<Vec<u8>> = (0..64).map(|_| (self.valid)(&mut rng)).collect();
        let mut report = Report::default();
        let mut per_strategy = [0u64; STRATEGIES.len()];
        for case in 0..self.cases {
            if rng.random_ratio(1, 16) {
                let i = rng.random_range(0..pool.len());
                pool[i] = (self.valid)(&mut rng);
            }
            let s = pick_strategy(&mut rng);
            per_strategy[s] += 1;
            let input = if s == 0 {
                (self.valid)(&mut rng)
            } else {
                self.mutate(s, &pool, &mut rng)
            };
            report.max_input_len = report.max_input_len.max(input.len());
            let mut outcome = None;
            let info = allocation_counter::measure(|| {
                outcome = Some(catch_unwind(AssertUnwindSafe(|| (self.decode)(&input))));
            });
            let strategy = STRATEGIES[s];
            let Some(outcome) = outcome else {
                self.fail(seed, case, strategy, &input, "the decoder did not run")
            };
            let result = match outcome {
                Ok(r) => r,
                Err(p) => {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    self.fail(seed, case, strategy, &input, &format!("panicked: {msg}"))
                }
            };
            let limit = self.base + self.per_byte * input.len() as u64;
            if info.bytes_max > limit {
                self.fail(
                    seed,
                    case,
                    strategy,
                    &input,
                    &format!(
                        "allocated {} bytes at peak, over the bound of {limit} ({} + {} × {} input bytes)",
                        info.bytes_max,
                        self.base,
                        self.per_byte,
                        input.len()
                    ),
                );
            }
            if info.bytes_max > report.peak_alloc {
                report.peak_alloc = info.bytes_max;
                report.peak_input_len = input.len();
            }
            report.cases += 1;
            match result {
                Err(e) => {
                    if s == 0 {
                        self.fail(
                            seed,
                            case,
                            strategy,
                            &input,
                            &format!("a valid input was refused: {e}"),
                        );
                    }
                    if e.trim().is_empty() {
                        self.fail(
                            seed,
                            case,
                            strategy,
                            &input,
                            "refused with an empty message",
                        );
                    }
                    report.refused += 1;
                }
                Ok(encoded) => {
                    report.accepted += 1;
                    if s == 0 {
                        report.round_trips += 1;
                        if self.exact && encoded != input {
                            self.fail(
                                seed,
                                case,
                                strategy,
                                &input,
                                &format!("round trip: re-encoded as {}", hex(&encoded)),
                            );
                        }
                    }
                    if self.stable {
                        match (self.decode)(&encoded) {
                            Ok(again) if again == encoded => {}
                            Ok(again) => self.fail(
                                seed,
                                case,
                                strategy,
                                &input,
                                &format!(
                                    "unstable: re-encoded as {}, then as {}",
                                    hex(&encoded),
                                    hex(&again)
                                ),
                            ),
                            Err(e) => self.fail(
                                seed,
                                case,
                                strategy,
                                &input,
                                &format!("its re-encoding {} does not decode: {e}", hex(&encoded)),
                            ),
                        }
                    }
                }
            }
        }
        report.elapsed = start.elapsed();
        let mix: Vec<String> = STRATEGIES
            .iter()
            .zip(per_strategy)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        println!(
            "fuzz {}: {} inputs, 0 panics, {} accepted ({} round trips), {} refused, peak allocation {} bytes (input of {} bytes), largest input {} bytes, {:.1} s [{}]",
            self.name,
            report.cases,
            report.accepted,
            report.round_trips,
            report.refused,
            report.peak_alloc,
            report.peak_input_len,
            report.max_input_len,
            report.elapsed.as_secs_f64(),
            mix.join(", ")
        );
        report
    }

    fn mutate(&self, s: usize, pool: &[Vec<u8>], rng: &mut FuzzRng) -> Vec<u8> {
        let base = pool[rng.random_range(0..pool.len())].clone();
        match STRATEGIES[s] {
            "random" => {
                let mut v = vec![0u8; rng.random_range(0..=256)];
                rng.fill_bytes(&mut v);
                v
            }
            "splice" => {
                let other = &pool[rng.random_range(0..pool.len())];
                let a = rng.random_range(0..=base.len());
                let b = rng.random_range(0..=other.len());
                let mut v = base[..a].to_vec();
                v.extend_from_slice(&other[b..]);
                v
            }
            "stack" => {
                let mut v = base;
                for _ in 0..rng.random_range(2..=4) {
                    let m = rng.random_range(2..STRATEGIES.len() - 1);
                    v = self.mutate_one(m, v, rng);
                }
                v
            }
            _ => self.mutate_one(s, base, rng),
        }
    }

    fn mutate_one(&self, s: usize, mut v: Vec<u8>, rng: &mut FuzzRng) -> Vec<u8> {
        let pos = |rng: &mut FuzzRng, v: &Vec<u8>| rng.random_range(0..=v.len());
        match STRATEGIES[s] {
            "flip" if !v.is_empty() => {
                for _ in 0..rng.random_range(1..=8) {
                    let i = rng.random_range(0..v.len());
                    v[i] ^= 1 << rng.random_range(0..8);
                }
            }
            "truncate" => {
                let n = rng.random_range(0..=v.len());
                v.truncate(n);
            }
            "overwrite" if !v.is_empty() => {
                for _ in 0..rng.random_range(1..=4) {
                    let i = rng.random_range(0..v.len());
                    v[i] = EDGE_BYTES[rng.random_range(0..EDGE_BYTES.len())];
                }
            }
            "length" => self.claim_length(&mut v, rng),
            "nesting" => {
                let n = *[2usize, 100, 1_000, 10_000, 100_000]
                    .get(rng.random_range(0..5))
                    .unwrap_or(&2);
                let unit: &[u8] = if self.text {
                    [&b"["[..], b"{\"a\":", b"a = [", b"[[", b"{a="][rng.random_range(0..5)]
                } else {
                    [
                        &[0x91u8][..],
                        &[0x81, 0x00],
                        &[0xdc, 0x00, 0x01],
                        &[0x92, 0x00],
                    ][rng.random_range(0..4)]
                };
                let at = pos(rng, &v);
                let mut nest = Vec::with_capacity(unit.len() * n);
                for _ in 0..n {
                    nest.extend_from_slice(unit);
                }
                v.splice(at..at, nest);
            }
            "insert" => {
                let at = pos(rng, &v);
                let mut add = vec![0u8; rng.random_range(1..=32)];
                rng.fill_bytes(&mut add);
                v.splice(at..at, add);
            }
            "delete" if !v.is_empty() => {
                let a = rng.random_range(0..v.len());
                let b = rng.random_range(a..=v.len().min(a + 32));
                v.drain(a..b);
            }
            "token" => {
                let at = pos(rng, &v);
                let t = if self.text && !self.dictionary.is_empty() {
                    self.dictionary[rng.random_range(0..self.dictionary.len())].clone()
                } else {
                    vec![EDGE_BYTES[rng.random_range(0..EDGE_BYTES.len())]]
                };
                v.splice(at..at, t);
            }
            _ => {}
        }
        v
    }

    /// Inserts a length field claiming a huge size, or rewrites an existing one.
    fn claim_length(&self, v: &mut Vec<u8>, rng: &mut FuzzRng) {
        let claims: [u32; 6] = [u32::MAX, 0x7fff_ffff, 1 << 30, 0x00ff_ffff, 65_535, 1 << 20];
        let claim = claims[rng.random_range(0..claims.len())];
        if self.text {
            // Text has no length fields: a huge number or a long run instead.
            let at = rng.random_range(0..=v.len());
            let t = format!("{claim}{claim}{claim}");
            v.splice(at..at, t.into_bytes());
            return;
        }
        let existing: Vec<usize> = v
            .iter()
            .enumerate()
            .filter(|(_, b)| LENGTH_MARKERS.iter().any(|(m, _)| m == *b))
            .map(|(i, _)| i)
            .collect();
        if !existing.is_empty() && rng.random_bool(0.5) {
            let i = existing[rng.random_range(0..existing.len())];
            let width = LENGTH_MARKERS
                .iter()
                .find(|(m, _)| *m == v[i])
                .map_or(0, |(_, w)| *w);
            let be = claim.to_be_bytes();
            for k in 0..width {
                if let Some(b) = v.get_mut(i + 1 + k) {
                    *b = be[4 - width + k];
                }
            }
            return;
        }
        let (marker, width) = LENGTH_MARKERS[rng.random_range(0..LENGTH_MARKERS.len())];
        let mut field = vec![marker];
        field.extend_from_slice(&claim.to_be_bytes()[4 - width..]);
        if marker == 0xc9 {
            field.push(0x01); // ext type
        }
        let at = rng.random_range(0..=v.len());
        v.splice(at..at, field);
    }
}

fn pick_strategy(rng: &mut FuzzRng) -> usize {
    // Weights in per mille, in the order of STRATEGIES.
    const W: [u32; 12] = [80, 80, 150, 90, 100, 150, 40, 50, 70, 60, 40, 90];
    let mut x = rng.random_range(0..W.iter().sum::<u32>());
    for (i, w) in W.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    0
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The bytes of a hex string (for regression tests that keep a failing input).
///
/// # Panics
/// If `s` is not an even number of hex digits.
pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd number of hex digits");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// Measures the peak bytes allocated by `f` on this thread (the same counter the engine
/// uses), with its result.
pub fn peak_alloc<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let mut out = None;
    let info = allocation_counter::measure(|| out = Some(f()));
    (out.expect("ran"), info.bytes_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_decoder_is_reported_with_its_input() {
        let r = catch_unwind(|| {
            target!(
                "panics-on-ff",
                |_: &mut FuzzRng| vec![1, 2, 3],
                |b: &[u8]| {
                    assert!(!b.contains(&0xff), "saw 0xff");
                    Ok(b.to_vec())
                }
            )
            .cases(2_000)
            .run()
        });
        let msg = r.expect_err("must fail");
        let msg = msg.downcast_ref::<String>().expect("a message");
        assert!(msg.contains("panicked: saw 0xff"), "{msg}");
        assert!(msg.contains("replay: RASP_FUZZ_SEED="), "{msg}");
    }

    #[test]
    fn an_allocation_over_the_bound_is_reported() {
        let r = catch_unwind(|| {
            target!(
                "believes-lengths",
                |_: &mut FuzzRng| vec![0xdd, 0, 0, 0, 1, 0],
                |b: &[u8]| {
                    // A decoder that trusts a 32-bit length field.
                    if b.len() >= 5 && b[0] == 0xdd {
                        let n = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
                        let v: Vec<u8> = Vec::with_capacity(n.min(1 << 28));
                        std::hint::black_box(&v);
                    }
                    Ok(b.to_vec())
                }
            )
            .cases(2_000)
            .run()
        });
        let msg = r.expect_err("must fail");
        let msg = msg.downcast_ref::<String>().expect("a message");
        assert!(msg.contains("over the bound"), "{msg}");
    }

    #[test]
    fn a_sound_decoder_passes_and_counts() {
        let r = target!(
            "identity",
            |rng: &mut FuzzRng| {
                let mut v = vec![0u8; rng.random_range(0..20)];
                rng.fill_bytes(&mut v);
                if let Some(b) = v.first_mut() {
                    *b |= 1;
                }
                v
            },
            |b: &[u8]| if b.first() == Some(&0) {
                Err("leading zero".into())
            } else {
                Ok(b.to_vec())
            }
        )
        .cases(1_000)
        .run();
        assert_eq!(r.cases, 1_000);
        assert_eq!(r.accepted + r.refused, 1_000);
        assert!(r.round_trips > 0 && r.refused > 0);
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 1, 0xab, 0xff])), vec![0, 1, 0xab, 0xff]);
    }
}
