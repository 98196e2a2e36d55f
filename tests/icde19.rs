//! The ICDE'19 experiment (Enes et al., "Efficient Synchronization of State-based CRDTs", ICDE 2019, §VI) in the simulator: for both topologies
//! and the four workloads, rasp's BP+RR transmission, as a share of state-based, is at or
//! below the paper's BP+RR figure (at its precision, 0.1 point); the paper's Algorithm 2 (rasp's `bp_heard` off) lands at
//! the paper's figures (within 1.5 points) or below; every run converges. The full table:
//! `cargo run --release --example icde19`.

use rasp::dataflow::replica::SyncMode;
use rasp_icde19::{anchor, run, Setup, Shape, Workload};

struct Outcome {
    shape: Shape,
    workload: Workload,
    state: u64,
    paper_bp_rr: u64,
    rasp_bp_rr: u64,
    lower_bound: u64,
    converged: bool,
}

fn row(setup: &Setup, shape: Shape, workload: Workload) -> Outcome {
    let t = setup.topology(shape);
    let state = run(setup, &t, workload, SyncMode::State, false);
    let paper = run(setup, &t, workload, SyncMode::DeltaBpRr, false);
    let rasp = run(setup, &t, workload, SyncMode::DeltaBpRr, true);
    Outcome {
        shape,
        workload,
        state: state.bytes,
        paper_bp_rr: paper.bytes,
        rasp_bp_rr: rasp.bytes,
        lower_bound: state.lower_bound,
        converged: [&state, &paper, &rasp]
            .iter()
            .all(|r| r.divergence.converged && r.convergence.is_some()),
    }
}

#[test]
fn bp_rr_is_at_or_below_the_paper_in_every_row() {
    let seed = rasp::runtime::sim::seed_from_env(1);
    let setup = Setup {
        seed,
        ..Setup::default()
    };
    let rows: Vec<(Shape, Workload)> = [Shape::Tree, Shape::Mesh]
        .into_iter()
        .flat_map(|s| Workload::ALL.into_iter().map(move |w| (s, w)))
        .collect();
    // Two threads (one simulator each): the rows are independent.
    let (a, b) = rows.split_at(rows.len() / 2);
    let outcomes: Vec<Outcome> = std::thread::scope(|sc| {
        let ha = sc.spawn(|| {
            a.iter()
                .map(|&(s, w)| row(&setup, s, w))
                .collect::<Vec<_>>()
        });
        let hb = sc.spawn(|| {
            b.iter()
                .map(|&(s, w)| row(&setup, s, w))
                .collect::<Vec<_>>()
        });
        let mut v = ha.join().expect("thread");
        v.extend(hb.join().expect("thread"));
        v
    });
    let repro = format!("RASP_SEED={seed} cargo test --release --test icde19");
    for o in &outcomes {
        let pct = |b: u64| 100.0 * b as f64 / o.state as f64;
        let a = anchor(o.shape, o.workload);
        let (rasp, paper, lb) = (pct(o.rasp_bp_rr), pct(o.paper_bp_rr), pct(o.lower_bound));
        eprintln!(
            "{} {}: rasp BP+RR {rasp:.1}%, Algorithm 2 BP+RR {paper:.1}%, paper {:.1}%, lower bound {lb:.1}%",
            o.shape, o.workload, a.bp_rr
        );
        assert!(
            o.converged,
            "{} {}: a run did not converge ({repro})",
            o.shape, o.workload
        );
        // The paper's figures are given to 0.1 point: compare at that precision (the tree
        // rows sit at the structural optimum of ~50% for GMap 100%, as the paper's do).
        assert!(
            (rasp * 10.0).round() / 10.0 <= a.bp_rr,
            "{} {}: rasp BP+RR {rasp:.2}% above the paper's {:.1}% ({repro})",
            o.shape,
            o.workload,
            a.bp_rr
        );
        assert!(
            o.rasp_bp_rr <= o.paper_bp_rr,
            "{} {}: the BP refinement sent more ({repro})",
            o.shape,
            o.workload
        );
        assert!(
            paper <= a.bp_rr + 1.5,
            "{} {}: Algorithm 2 BP+RR {paper:.2}% far above the paper's {:.1}% ({repro})",
            o.shape,
            o.workload,
            a.bp_rr
        );
        // Delta sync ships something for every update: never (near) nothing.
        assert!(
            rasp > 0.3 * lb.min(100.0) / 2.0,
            "{} {}: implausibly small",
            o.shape,
            o.workload
        );
    }
}
