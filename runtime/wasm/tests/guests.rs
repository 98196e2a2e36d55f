//! WebAssembly atoms in the deterministic simulator: the Rust demo guest against the native
//! demo (alone and mixed in one cluster), replay by seed, a `wat` guest answering a native
//! client, and hostile guests contained while their node keeps running.

mod common;

use common::{demo_module, wat};
use rasp_runtime::demo::{demo_boot, DemoConfig, DemoOutcome, OUTCOME_KEY};
use rasp_runtime::sim::{seed_from_env, Sim, SimConfig};
use rasp_runtime::{boot, AtomAddr, AtomId, Boot, Contact, Corr, Dest, Message, NodeId, Time};
use rasp_wasm::{wasm_boot, Limits, WasmAtom, WasmError, WasmModule};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: u32 = 4;

fn cfg() -> DemoConfig {
    DemoConfig {
        nodes: NODES,
        increments: 20,
        ..DemoConfig::default()
    }
}

/// Which runtime each node's demo atom is.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Native,
    Wasm,
}

/// Runs the demo with each node's atom of the given kind; each node's stored outcome and
/// the run's trace hash.
fn run(kinds: &[Kind], seed: u64) -> (Vec<Option<DemoOutcome>>, u64, Sim) {
    let module = kinds.contains(&Kind::Wasm).then(demo_module).flatten();
    let mut sim = Sim::new(SimConfig::seeded(seed)).unwrap();
    let mut ids: Vec<NodeId> = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let join = if i == 0 {
            Vec::new()
        } else {
            vec![Contact::bare(ids[0])]
        };
        let c = DemoConfig { join, ..cfg() };
        let b: Boot = match k {
            Kind::Native => demo_boot(c),
            Kind::Wasm => wasm_boot(
                module.clone().expect("wasm guest built"),
                rmp_serde::to_vec(&c).unwrap(),
            ),
        };
        ids.push(sim.add_node(b));
    }
    sim.run_until(Time::from_secs(30));
    for (k, &n) in kinds.iter().zip(&ids) {
        let wasm = sim.with_atom::<WasmAtom, _>(AtomAddr::new(n, AtomId(0)), |w| w.memory_bytes());
        match k {
            Kind::Wasm => assert!(wasm.is_some_and(|m| m > 0), "node {n:?} runs the guest"),
            Kind::Native => assert!(wasm.is_none()),
        }
    }
    let outcomes = ids
        .iter()
        .map(|&n| {
            sim.store(n)
                .get(OUTCOME_KEY)
                .map(|b| rmp_serde::from_slice::<DemoOutcome>(&b).unwrap())
        })
        .collect();
    let hash = sim.trace_hash();
    (outcomes, hash, sim)
}

fn expected() -> DemoOutcome {
    DemoOutcome {
        entries: NODES,
        total: u64::from(NODES) * cfg().increments,
        pongs: NODES - 1,
    }
}

#[test]
fn the_rust_guest_reaches_the_native_outcome_alone_and_mixed() {
    if demo_module().is_none() {
        return;
    }
    let seed = seed_from_env(0x5eed);
    let repro = format!("RASP_SEED={seed} cargo test --release -p rasp-wasm --test guests");
    let want = vec![Some(expected()); NODES as usize];
    let (native, _, _) = run(&[Kind::Native; NODES as usize], seed);
    assert_eq!(native, want, "native; {repro}");
    let (wasm, _, sim) = run(&[Kind::Wasm; NODES as usize], seed);
    assert_eq!(wasm, want, "wasm; {repro}");
    assert_eq!(sim.metrics().counter("wasm_atoms_stopped", "fault"), 0);
    // Native and wasm atoms on the same cluster speak the same messages.
    let mixed = [Kind::Native, Kind::Wasm, Kind::Native, Kind::Wasm];
    let (mixed, _, _) = run(&mixed, seed);
    assert_eq!(mixed, want, "mixed; {repro}");
}

#[test]
fn a_wasm_run_replays_bit_for_bit_from_its_seed() {
    if demo_module().is_none() {
        return;
    }
    let (a, ha, _) = run(&[Kind::Wasm; NODES as usize], 7);
    let (b, hb, _) = run(&[Kind::Wasm; NODES as usize], 7);
    assert_eq!(a, b);
    assert_eq!(ha, hb, "same seed, same trace hash");
    let (_, hc, _) = run(&[Kind::Wasm; NODES as usize], 8);
    assert_ne!(ha, hc, "another seed, another schedule");
}

/// The `wat` echo guest's request and reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct WatPing(u64, String);
impl Message for WatPing {
    const KIND: &'static str = "wat/ping";
}

#[test]
fn a_wat_guest_answers_requests() {
    let module = WasmModule::new(&wat("echo.wat"), Limits::default()).unwrap();
    let mut sim = Sim::new(SimConfig::seeded(1)).unwrap();
    let n = sim.add_node(wasm_boot(module, Vec::new()));
    sim.run_until(Time::from_millis(10));
    let mut asked = Vec::new();
    for i in 0..5u64 {
        let body = WatPing(i, format!("hello {i}"));
        asked.push((
            sim.inject_request(Dest::service(n, "echo"), body.clone()),
            body,
        ));
    }
    sim.run_until(Time::from_secs(1));
    let out = sim.take_outbox();
    for (id, body) in asked {
        let reply = out
            .iter()
            .find(|e| e.corr == Corr::Reply(id))
            .unwrap_or_else(|| panic!("no reply to request {id:?}"));
        let back: WatPing = reply.payload.clone().decode().unwrap();
        assert_eq!(back, body, "the echo carries the same bytes");
    }
    assert_eq!(sim.node_metrics(n).counter("wat_echoes", ""), 5);
}

/// What triggers the hostile guest.
#[derive(Clone, Serialize, Deserialize)]
struct Go;
impl Message for Go {
    const KIND: &'static str = "hostile/go";
}

/// A node running the hostile guest (atom 0) in `mode` beside the `wat` echo guest (atom
/// 1); the guest is triggered at 10 ms. Returns the sim, the node and the wall time the
/// triggering step took.
fn hostile(mode: u8, limits: Limits) -> (Sim, NodeId, Duration) {
    let bad = WasmModule::new(&wat("hostile.wat"), limits).unwrap();
    let echo = WasmModule::new(&wat("echo.wat"), Limits::default()).unwrap();
    let mut sim = Sim::new(SimConfig::seeded(3)).unwrap();
    let n = sim.add_node(boot(move |b| {
        b.spawn(WasmAtom::new(bad.clone(), vec![mode]));
        b.spawn(WasmAtom::new(echo.clone(), Vec::new()));
    }));
    sim.run_until(Time::from_millis(5));
    assert!(sim
        .with_atom::<WasmAtom, _>(AtomAddr::new(n, AtomId(0)), |_| ())
        .is_some());
    sim.inject(Dest::Atom(AtomAddr::new(n, AtomId(0))), Go);
    let t = Instant::now();
    sim.run_until(Time::from_millis(20));
    let took = t.elapsed();
    (sim, n, took)
}

/// The node still answers: the echo guest beside the stopped one replies.
fn still_answers(sim: &mut Sim, n: NodeId) {
    let id = sim.inject_request(Dest::service(n, "echo"), WatPing(9, "alive?".into()));
    sim.run_until(sim.now() + Duration::from_millis(50));
    let out = sim.take_outbox();
    assert!(
        out.iter().any(|e| e.corr == Corr::Reply(id)),
        "the node stopped answering after the hostile guest"
    );
}

fn stopped(sim: &Sim, n: NodeId, cause: &str) {
    assert_eq!(
        sim.node_metrics(n).counter("wasm_atoms_stopped", cause),
        1,
        "stopped for {cause}: {:?}",
        sim.node_metrics(n)
    );
    assert!(
        sim.with_atom::<WasmAtom, _>(AtomAddr::new(n, AtomId(0)), |_| ())
            .is_none(),
        "the hostile atom is gone"
    );
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
fn a_well_behaved_hostile_guest_handles_the_message() {
    let (sim, n, _) = hostile(0, Limits::default());
    assert_eq!(sim.node_metrics(n).counter("hostile_handled", ""), 1);
    assert_eq!(sim.metrics().counter("wasm_atoms_stopped", "fuel"), 0);
}

#[test]
fn an_endless_loop_is_stopped_by_its_fuel() {
    let (mut sim, n, took) = hostile(1, Limits::default());
    stopped(&sim, n, "fuel");
    eprintln!("the endless loop was stopped after {took:?}");
    // 10 M units of fuel: well under a second of interpretation even on a loaded machine.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    still_answers(&mut sim, n);
}

#[test]
fn growing_memory_by_4_gib_is_refused_without_allocating() {
    let before = rss_bytes();
    let (mut sim, n, _) = hostile(2, Limits::default());
    stopped(&sim, n, "memory");
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 256 << 20, "the process grew by {grown} bytes");
    still_answers(&mut sim, n);
}

#[test]
fn a_trap_in_a_handler_stops_only_that_atom() {
    let (mut sim, n, _) = hostile(3, Limits::default());
    stopped(&sim, n, "trap");
    still_answers(&mut sim, n);
}

#[test]
fn a_pointer_outside_memory_is_a_fault() {
    let (mut sim, n, _) = hostile(4, Limits::default());
    stopped(&sim, n, "fault");
    still_answers(&mut sim, n);
}

#[test]
fn a_flood_of_sends_stops_at_the_output_cap() {
    let limits = Limits {
        output_bytes_per_call: 4 << 20,
        fuel_per_call: u64::MAX / 2,
        ..Limits::default()
    };
    let (mut sim, n, _) = hostile(5, limits);
    stopped(&sim, n, "fault");
    still_answers(&mut sim, n);
}

#[test]
fn an_allocator_answering_outside_memory_is_a_fault() {
    let (mut sim, n, _) = hostile(6, Limits::default());
    stopped(&sim, n, "fault");
    still_answers(&mut sim, n);
}

#[test]
fn modules_that_cannot_run_are_refused_at_load() {
    let unknown = r#"(module (import "env" "abort" (func)) (memory (export "memory") 1))"#;
    let err = WasmModule::new(unknown.as_bytes(), Limits::default()).unwrap_err();
    assert!(matches!(err, WasmError::UnknownImport { .. }), "{err}");
    assert!(err.to_string().contains("env.abort"), "{err}");

    let no_exports = r#"(module (memory (export "memory") 1))"#;
    let err = WasmModule::new(no_exports.as_bytes(), Limits::default()).unwrap_err();
    assert!(err.to_string().contains("rasp_abi_version"), "{err}");

    let junk = b"\0asm\x01\0\0\0garbage";
    let err = WasmModule::new(junk, Limits::default()).unwrap_err();
    assert!(matches!(err, WasmError::Invalid(_)), "{err}");

    let mut echo = String::from_utf8(wat("echo.wat")).unwrap();
    echo = echo.replace(
        "(i32.const 1))\n  (func (export \"rasp_alloc\")",
        "(i32.const 2))\n  (func (export \"rasp_alloc\")",
    );
    let err = WasmModule::new(echo.as_bytes(), Limits::default()).unwrap_err();
    assert!(matches!(err, WasmError::Version { found: 2 }), "{err}");

    let big = Limits {
        memory_bytes: 64 << 10,
        ..Limits::default()
    };
    let err = WasmModule::new(&wat("echo.wat"), big).unwrap_err();
    assert!(matches!(err, WasmError::Instantiate(_)), "{err}");
}

/// The guest's module is shared: many instances, one validation.
#[test]
fn instances_of_one_module_are_independent() {
    let module: Arc<WasmModule> = WasmModule::new(&wat("echo.wat"), Limits::default()).unwrap();
    let mut sim = Sim::new(SimConfig::seeded(5)).unwrap();
    let nodes: Vec<NodeId> = (0..3)
        .map(|_| sim.add_node(wasm_boot(module.clone(), Vec::new())))
        .collect();
    sim.run_until(Time::from_millis(10));
    for &n in &nodes {
        sim.inject_request(Dest::service(n, "echo"), WatPing(1, "x".into()));
    }
    sim.run_until(Time::from_millis(100));
    for &n in &nodes {
        assert_eq!(sim.node_metrics(n).counter("wat_echoes", ""), 1);
    }
}
