//! Lattice-law checks, shared by the property tests of every type (after hydro's
//! `lattices::test`). Each function takes values and panics with a clear message on a
//! violation; none depends on a test framework.

use std::fmt::Debug;

use crate::{decode, encode, encoded_size, Lattice, Summarize, Threshold};

/// Above this many parts the (quadratic) irredundancy check is skipped.
pub const IRREDUNDANCY_LIMIT: usize = 64;

fn join<L: Lattice>(a: &L, b: &L) -> L {
    let mut x = a.clone();
    x.join(b);
    x
}

/// Join is commutative, associative and idempotent; bottom is its identity; `join` returns
/// `true` iff the value changed; `leq` agrees with join (`a ≤ b` iff `a ⊔ b == b`); strict
/// inflation agrees with `leq` and `!=`.
pub fn check_join<L: Lattice>(a: &L, b: &L, c: &L) {
    let ab = join(a, b);
    let ba = join(b, a);
    assert_eq!(ab, ba, "join not commutative:\n a = {a:?}\n b = {b:?}");
    assert_eq!(
        join(&ab, c),
        join(a, &join(b, c)),
        "join not associative:\n a = {a:?}\n b = {b:?}\n c = {c:?}"
    );
    assert_eq!(join(a, a), *a, "join not idempotent: a = {a:?}");
    let bot = L::bottom();
    assert!(bot.is_bottom(), "bottom() is not is_bottom()");
    assert_eq!(
        join(a, &bot),
        *a,
        "bottom is not a right identity: a = {a:?}"
    );
    assert_eq!(
        join(&bot, a),
        *a,
        "bottom is not a left identity: a = {a:?}"
    );
    assert_eq!(
        a.is_bottom(),
        *a == bot,
        "is_bottom disagrees with == bottom(): a = {a:?}"
    );
    assert!(bot.leq(a), "bottom is not ≤ a = {a:?}");
    for (x, y) in [(a, b), (b, a), (a, c), (a, a), (&bot, a), (a, &bot)] {
        let mut z = x.clone();
        let changed = z.join(y);
        assert_eq!(
            changed,
            z != *x,
            "join returned {changed} but changed = {}:\n x = {x:?}\n y = {y:?}",
            z != *x
        );
        assert_eq!(
            x.leq(y),
            join(x, y) == *y,
            "leq disagrees with join:\n x = {x:?}\n y = {y:?}"
        );
        assert!(
            x.leq(&z) && y.leq(&z),
            "join is not an upper bound:\n x = {x:?}\n y = {y:?}"
        );
        assert_eq!(
            x.is_strict_inflation(y),
            x.leq(y) && x != y,
            "is_strict_inflation wrong"
        );
        assert_eq!(x.is_inflation(y), x.leq(y), "is_inflation wrong");
    }
}

/// A mutator's delta rebuilds the new state: `before ⊔ delta == after`, and `before ≤ after`.
pub fn check_mutator<L: Lattice>(before: &L, delta: &L, after: &L) {
    assert_eq!(
        join(before, delta),
        *after,
        "before ⊔ delta != after:\n before = {before:?}\n delta = {delta:?}\n after = {after:?}"
    );
    assert!(
        before.leq(after),
        "mutator did not inflate:\n before = {before:?}\n after = {after:?}"
    );
}

/// The decomposition joins back to the whole, has no bottom part, its parts are irreducible
/// (each decomposes into itself) and irredundant (no part is ≤ the join of the others;
/// checked up to [`IRREDUNDANCY_LIMIT`] parts).
pub fn check_decomposition<L: Lattice>(a: &L) {
    let parts = a.decompose();
    let mut whole = L::bottom();
    for p in &parts {
        assert!(!p.is_bottom(), "decomposition of {a:?} has a bottom part");
        assert!(p.leq(a), "part {p:?} is not ≤ {a:?}");
        let pp = p.decompose();
        assert!(
            pp.len() == 1 && pp[0] == *p,
            "part {p:?} is not irreducible: decomposes into {pp:?}"
        );
        whole.join(p);
    }
    assert_eq!(
        whole, *a,
        "parts do not join back to the whole:\n parts = {parts:?}"
    );
    if parts.len() <= IRREDUNDANCY_LIMIT {
        for i in 0..parts.len() {
            let mut rest = L::bottom();
            for (j, p) in parts.iter().enumerate() {
                if j != i {
                    rest.join(p);
                }
            }
            assert!(
                !parts[i].leq(&rest),
                "part {:?} is redundant in the decomposition of {a:?}",
                parts[i]
            );
        }
    }
}

/// `delta(a, b) ⊔ b == a ⊔ b`, `delta(a, b) ≤ a`, `delta(a, a)` and `delta(⊥, b)` are bottom,
/// and `delta` agrees with the decomposition: it is the join of the parts of `a` not ≤ `b`.
pub fn check_delta<L: Lattice>(a: &L, b: &L) {
    let d = a.delta(b);
    assert_eq!(
        join(&d, b),
        join(a, b),
        "delta(a,b) ⊔ b != a ⊔ b:\n a = {a:?}\n b = {b:?}\n delta = {d:?}"
    );
    assert!(
        d.leq(a),
        "delta(a,b) is not ≤ a:\n a = {a:?}\n b = {b:?}\n delta = {d:?}"
    );
    assert!(
        a.delta(a).is_bottom(),
        "delta(a,a) is not bottom: a = {a:?}"
    );
    assert!(L::bottom().delta(b).is_bottom(), "delta(⊥,b) is not bottom");
    let mut expected = L::bottom();
    for p in a.decompose() {
        if !p.leq(b) {
            expected.join(&p);
        }
    }
    assert_eq!(
        d, expected,
        "delta(a,b) is not the join of a's parts not ≤ b:\n a = {a:?}\n b = {b:?}"
    );
}

/// If `a ≤ b` then `f(a) ≤' f(b)` for a monotone read `f` (e.g. a query with `⊆` on sets).
pub fn check_monotone<L: Lattice, V: Debug>(
    a: &L,
    b: &L,
    f: impl Fn(&L) -> V,
    leq: impl Fn(&V, &V) -> bool,
) {
    if a.leq(b) {
        let (fa, fb) = (f(a), f(b));
        assert!(
            leq(&fa, &fb),
            "read not monotone: a ≤ b but f(a) = {fa:?} ≰ f(b) = {fb:?}"
        );
    }
}

/// Every threshold that holds on `a` holds on every inflation `b ≥ a` (call it only with
/// thresholds monotone for the type: `AtLeast`, `Strict`, `NotBottom`, and `Value` /
/// `Cardinality`, strict or not, where the measure is monotone). Panics if a threshold is unsupported.
pub fn check_thresholds<L: Lattice>(thresholds: &[Threshold<L>], a: &L, b: &L) {
    if !a.leq(b) {
        return;
    }
    for t in thresholds {
        let ha = t
            .holds(a)
            .unwrap_or_else(|e| panic!("threshold {t:?}: {e}"));
        let hb = t
            .holds(b)
            .unwrap_or_else(|e| panic!("threshold {t:?}: {e}"));
        assert!(
            !ha || hb,
            "threshold {t:?} held on a = {a:?} but not on its inflation b = {b:?}"
        );
    }
}

/// Encoding round-trips and [`encoded_size`] equals the encoded length.
pub fn check_serde<L: Lattice>(a: &L) {
    let bytes = encode(a).unwrap_or_else(|e| panic!("encode failed for {a:?}: {e}"));
    assert_eq!(
        bytes.len(),
        encoded_size(a),
        "encoded_size disagrees with encode for {a:?}"
    );
    let back: L = decode(&bytes).unwrap_or_else(|e| panic!("decode failed for {a:?}: {e}"));
    assert_eq!(back, *a, "serde round trip changed the value");
}

/// All of the above on three states (and their joins).
pub fn check_all<L: Lattice>(a: &L, b: &L, c: &L) {
    check_join(a, b, c);
    let ab = join(a, b);
    for x in [a, b, c, &ab] {
        check_decomposition(x);
        check_serde(x);
    }
    for (x, y) in [
        (a, b),
        (b, a),
        (a, c),
        (c, b),
        (&ab, c),
        (c, &ab),
        (a, &ab),
        (&ab, a),
    ] {
        check_delta(x, y);
    }
    let ts = [
        Threshold::AtLeast(a.clone()),
        Threshold::Strict(a.clone()),
        Threshold::NotBottom,
    ];
    for (x, y) in [(a, &ab), (b, &ab), (a, a)] {
        check_thresholds(&ts, x, y);
    }
}

/// The summary law ([`Summarize`]): `b ⊔ a.delta_since(&b.summary()) == b ⊔ a` and
/// `a.delta_since(s) ≤ a`, for the summary of `b` and for an older one (the summary of
/// `older ≤ b`); the encoded hooks ([`Lattice::encoded_summary`],
/// [`Lattice::delta_since_encoded`]) agree with the typed methods, and a summary survives its
/// encoding.
pub fn check_summary<L: Summarize>(a: &L, b: &L, older: &L) {
    assert!(older.leq(b), "check_summary needs older ≤ b");
    let want = join(b, a);
    for s in [b.summary(), older.summary()] {
        let d = a.delta_since(&s);
        assert!(
            d.leq(a),
            "delta_since is not below self:\n a = {a:?}\n summary = {s:?}\n delta = {d:?}"
        );
        assert_eq!(
            join(b, &d),
            want,
            "b ⊔ a.delta_since(summary) differs from b ⊔ a:\n a = {a:?}\n b = {b:?}\n summary = {s:?}\n delta = {d:?}"
        );
    }
    let s = b.summary();
    let bytes = b
        .encoded_summary()
        .expect("a Summarize type overrides encoded_summary (summary_hooks!)");
    assert_eq!(
        bytes,
        encode(&s).expect("summary encodes"),
        "encoded_summary"
    );
    let back: L::Summary = decode(&bytes).expect("summary decodes");
    assert_eq!(back, s, "summary does not survive its encoding");
    let d = a
        .delta_since_encoded(&bytes)
        .expect("a Summarize type overrides delta_since_encoded (summary_hooks!)")
        .expect("a summary's own encoding decodes");
    assert_eq!(d, a.delta_since(&s), "delta_since_encoded");
    assert!(
        a.delta_since_encoded(&[0xc1]).expect("overridden").is_err(),
        "a summary that does not decode is an error"
    );
}
