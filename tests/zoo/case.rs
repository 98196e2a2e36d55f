//! The zoo's driver: one [`Case`] per bug, run as fuzz → shrink → replay (and `check` where
//! the configuration is small), with the switch on (the bug) and off (the fixed code or the
//! correct program, which must stay clean over the same fuzz runs: what makes the invariant
//! honest). [`run`] returns one [`Row`] of the README's "Bug zoo" table.

use rasp::app::check::{self, CheckArgs};
use rasp::app::fuzz::{fuzz, replay, write_failure, FuzzArgs, TraceFile};
use rasp::app::shrink::shrink_to_file;
use rasp::app::App;
use std::time::Duration;

/// One bug of the zoo.
pub struct Case<A: App> {
    /// Short name (the table's first column).
    pub name: &'static str,
    /// The app with the bug (switch on, or the wrong program).
    pub buggy: A,
    /// The same app without it (switch off, or the correct program).
    pub fixed: A,
    /// The invariant that must catch it.
    pub invariant: &'static str,
    /// The fuzzer's settings (seed and budget known to find it).
    pub fuzz: FuzzArgs,
    /// The minimal execution a human would give: one line per external input (node starts
    /// included, as the shrinker counts them) and per remote message delivery.
    pub hand_made: &'static [&'static str],
    /// `check` on a scripted small configuration, if there is one.
    pub check: Option<CheckCase<A>>,
    /// Whether the fixed app must be clean over the same runs (false only where the zoo
    /// found the fixed code failing too: the row then says how).
    pub expect_clean: bool,
}

/// `check` on a case: the buggy and the fixed app acting from their start hooks (the model
/// checker has no workload), and the search's settings.
pub struct CheckCase<A: App> {
    /// Finds the bug.
    pub buggy: A,
    /// Clean up to the depth the bug was found at.
    pub fixed: A,
    /// Search settings.
    pub args: CheckArgs,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The case.
    pub name: &'static str,
    /// Fuzz runs until found (the failing run's index + 1 at most; the fuzzer stops at the
    /// first batch holding a failure).
    pub runs: u64,
    /// Fuzz wall time.
    pub fuzz_wall: Duration,
    /// Simulator events before → after shrinking.
    pub events: (u64, u64),
    /// The decided part of the run ([`rasp::app::shrink::ShrinkReport::decided`]): the whole
    /// run for a safety failure, the run until it went quiet for a bounded eventual one.
    pub decided: rasp::app::shrink::Decided,
    /// The hand-made minimum (inputs + deliveries).
    pub hand_made: usize,
    /// Shrinking's wall time.
    pub shrink_wall: Duration,
    /// `check`: (depth of the counterexample, states explored), if run.
    pub check: Option<(usize, u64)>,
    /// The fixed app's first failure over the same runs, if any.
    pub fixed_fails: Option<String>,
}

impl Row {
    /// Events removed by shrinking, in percent, over the whole run.
    pub fn reduction(&self) -> f64 {
        100.0 * (1.0 - self.events.1 as f64 / self.events.0.max(1) as f64)
    }

    /// Events removed by shrinking, in percent, over the decided part.
    pub fn decided_reduction(&self) -> f64 {
        let (a, b) = self.decided.events;
        100.0 * (1.0 - b as f64 / a.max(1) as f64)
    }

    /// The decided part's inputs + deliveries after shrinking over the hand-made minimum
    /// (which lists the steps up to the state that stays wrong).
    pub fn ratio(&self) -> f64 {
        self.decided.steps.1 as f64 / self.hand_made.max(1) as f64
    }

    /// The row in the README's table format.
    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} | {:.2} s | {} → {} | {:.1} % | {} | {} → {} | {:.1} % | {} | {} | {:.2}× | {:.2} s | {} | {} |",
            self.name,
            self.runs,
            self.fuzz_wall.as_secs_f64(),
            self.events.0,
            self.events.1,
            self.reduction(),
            if self.decided.whole_run { "whole run" } else { "until quiet" },
            self.decided.events.0,
            self.decided.events.1,
            self.decided_reduction(),
            self.decided.steps.1,
            self.hand_made,
            self.ratio(),
            self.shrink_wall.as_secs_f64(),
            self.check
                .map_or("–".to_string(), |(d, s)| format!("depth {d}, {s} states")),
            self.fixed_fails.as_deref().unwrap_or("clean"),
        )
    }
}

/// The table's header.
pub const HEADER: &str = "| case | fuzz runs | fuzz wall | events before → after | reduction | \
decided part | its events before → after | its reduction | its inputs + deliveries after | \
hand-made minimum | ratio | shrink wall | check | fixed, same runs |\n\
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rasp-zoo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir.join(name)
}

/// Runs `case` (see the module docs) and asserts what must hold whatever the figures: the
/// bug is found by its invariant, both traces replay bit for bit to the same violation, the
/// fixed app is clean over the same runs, and `check` (if any) finds it while the fixed app
/// is clean to that depth. Prints the shrunk story and the row. Not `strict` (the table), a
/// fixed app's failure is reported in the row instead of failing the test.
pub fn run<A: App>(case: &Case<A>, shrink_budget: Duration, strict: bool) -> Row {
    let name = case.name;
    let r = fuzz(&case.buggy, &case.fuzz).unwrap();
    let (run, plan, v) = r.failure.unwrap_or_else(|| {
        panic!(
            "{name}: not found in {} runs (seed {}); repro: the zoo's `{name}` case",
            r.runs, case.fuzz.seed
        )
    });
    assert_eq!(v.invariant, case.invariant, "{name}: {v}");
    eprintln!("{name}: run {run} of seed {} fails: {v}", case.fuzz.seed);

    let path = tmp(&format!("{name}.trace"));
    write_failure(&case.buggy, Vec::new(), Some(run), &plan, &path).unwrap();
    let loaded = TraceFile::load(&path).unwrap();
    let back = replay(&case.buggy, &loaded).unwrap();
    assert!(back.exact && back.same_violation, "{name}: {back:?}");

    let out = tmp(&format!("{name}.min.trace"));
    let (s, min) = shrink_to_file(&case.buggy, &loaded, shrink_budget, &out).unwrap();
    assert_eq!(s.violation.invariant, case.invariant, "{name}");
    for l in &s.story {
        eprintln!("  {name}: {l}");
    }
    let again = replay(&case.buggy, &TraceFile::load(&out).unwrap()).unwrap();
    assert!(again.exact && again.same_violation, "{name}: {again:?}");
    assert_eq!(
        again.violation.as_ref().map(|v| &v.invariant[..]),
        Some(case.invariant)
    );
    assert_eq!(min.violation.as_ref(), again.violation.as_ref());

    let clean = fuzz(&case.fixed, &case.fuzz).unwrap();
    let fixed_fails = clean.failure.as_ref().map(|(i, plan, v)| {
        // Shrunk and told like the bug's own run, for whoever takes it up.
        let path = tmp(&format!("{name}.fixed.trace"));
        let file = write_failure(&case.fixed, Vec::new(), Some(*i), plan, &path).unwrap();
        let out = tmp(&format!("{name}.fixed.min.trace"));
        let (s, _) = shrink_to_file(&case.fixed, &file, shrink_budget, &out).unwrap();
        for l in &s.story {
            eprintln!("  {name} (fixed): {l}");
        }
        format!(
            "fails at run {i}: {} (shrunk to {} inputs + deliveries)",
            v.message,
            s.inputs.1 + s.delivered.1
        )
    });
    if case.expect_clean && strict {
        assert!(
            fixed_fails.is_none(),
            "{name}: the fixed app fails (seed {}): {fixed_fails:?}",
            case.fuzz.seed
        );
        assert_eq!(clean.runs, case.fuzz.runs);
    } else if let Some(f) = &fixed_fails {
        eprintln!("{name}: the fixed app {f}");
    }

    let checked = case.check.as_ref().map(|c| {
        let found = check::run(&c.buggy, &c.args).unwrap();
        let text = check::text(&c.args, &found);
        let cx = found
            .violation
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: check does not find it\n{text}"));
        assert_eq!(cx.invariant, case.invariant, "{name}\n{text}");
        for l in &cx.story {
            eprintln!("  {name} (check): {l}");
        }
        let depth = cx.settle_from.unwrap_or(cx.steps.len());
        let args = CheckArgs {
            depth: depth as u32,
            ..c.args.clone()
        };
        let fixed = check::run(&c.fixed, &args).unwrap();
        let text = check::text(&args, &fixed);
        assert!(fixed.violation.is_none(), "{name}: fixed\n{text}");
        (depth, found.states)
    });

    let row = Row {
        name,
        runs: r.runs,
        fuzz_wall: r.wall,
        events: s.events,
        decided: s.decided,
        hand_made: case.hand_made.len(),
        shrink_wall: s.wall,
        check: checked,
        fixed_fails,
    };
    eprintln!("{HEADER}\n{}", row.markdown());
    row
}
