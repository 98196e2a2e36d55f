//! The dataflow layer's decoders, fuzzed with `rasp_fuzzkit`: the replica's sync messages
//! (`dataflow/hello` with the graph a peer teaches, `dataflow/sync` with encoded deltas and
//! states, `dataflow/ack`), every variable type's encoded state as the replica decodes it
//! (what a `Sync` carries and what the store keeps under `var/<id>`), and the JSON bodies of
//! the HTTP API (updates, declarations, thresholds). Decoded messages go on down the real
//! receive path: a learnt graph into a fresh program, each synced variable into a program
//! that holds it. `RASP_FUZZ_CASES` sets the inputs per decoder; the long run is in the
//! README's "Bad input" section.

use rand::Rng;
use rasp_dataflow::fold::Count;
use rasp_dataflow::json::JsonTypes;
use rasp_dataflow::replica::{Ack, Hello, Sync};
use rasp_dataflow::{Func, Program};
use rasp_fuzzkit::{target, FuzzRng};
use rasp_lattice::ORSet;
use rasp_runtime::{Message, Payload};
use serde_json::{json, Value};
use std::cell::RefCell;

/// A program with one variable of every JSON type (`v/<name>`).
fn plain_program(types: &JsonTypes) -> Program {
    let mut p = Program::new(1);
    types.teach(&mut p);
    for name in types.names() {
        if !name.starts_with("dset") {
            types
                .declare(&mut p, &format!("v/{name}"), name)
                .expect("declares");
        }
    }
    p
}

/// [`plain_program`] with derived variables of every operator kind over string sets.
fn program(types: &JsonTypes) -> Program {
    let mut p = plain_program(types);
    let a = p.declare::<ORSet<String>>("s/a").expect("declares");
    let b = p.declare::<ORSet<String>>("s/b").expect("declares");
    let u = p.union("s/union", &a, &b).expect("union");
    let x = p.product("s/product", &a, &b).expect("product");
    p.intersection("s/intersection", &a, &b)
        .expect("intersection");
    p.filter("s/filter", &u, Func::new("short", |s: &String| s.len() < 4))
        .expect("filter");
    p.map(
        "s/map",
        &u,
        Func::new("upper", |s: &String| s.to_uppercase()),
    )
    .expect("map");
    p.filter(
        "s/pairs",
        &x,
        Func::new("same-len", |(l, r): &(String, String)| l.len() == r.len()),
    )
    .expect("filter");
    p.fold::<String, _, Count>("s/count", &u).expect("fold");
    p
}

fn small_string(rng: &mut FuzzRng) -> String {
    let len = rng.random_range(0..6);
    (0..len)
        .map(|_| char::from(rng.random_range(b'a'..=b'e')))
        .collect()
}

fn number(rng: &mut FuzzRng) -> Value {
    match rng.random_range(0..12) {
        0 => json!(i64::MAX),
        1 => json!(u64::MAX),
        2 => json!(-1),
        3 => json!(i64::MIN),
        4 => json!(1e300),
        5 => json!(0.5),
        _ => json!(rng.random_range(0..10)),
    }
}

fn element(rng: &mut FuzzRng) -> Value {
    if rng.random_bool(0.7) {
        json!(small_string(rng))
    } else {
        number(rng)
    }
}

/// One JSON update of any type (most are wrong for a given type: the error path counts).
fn random_op(rng: &mut FuzzRng) -> Value {
    let xs = |rng: &mut FuzzRng| -> Vec<Value> {
        (0..rng.random_range(0..4)).map(|_| element(rng)).collect()
    };
    match rng.random_range(0..18) {
        0 => json!({"inc": number(rng)}),
        1 => json!({"dec": number(rng)}),
        2 => json!({"add": element(rng)}),
        3 => json!({"remove": element(rng)}),
        4 => json!({"add_all": xs(rng)}),
        5 => json!({"remove_all": xs(rng)}),
        6 => json!("clear"),
        7 => json!({"set": element(rng)}),
        8 => json!("enable"),
        9 => json!("disable"),
        10 => json!({"assign": element(rng)}),
        11 => json!({"put": small_string(rng), "value": element(rng)}),
        12 => json!({"grant": number(rng)}),
        13 => json!({"use": number(rng)}),
        14 => json!({"transfer": number(rng), "to": number(rng)}),
        15 => json!({"withdraw": number(rng)}),
        16 => json!("withdraw_all"),
        _ => json!({"raise": number(rng)}),
    }
}

/// Applies random updates to random variables of `p` (errors are expected and ignored).
fn churn(p: &mut Program, types: &JsonTypes, rng: &mut FuzzRng, ids: &[String]) {
    for _ in 0..rng.random_range(0..20) {
        let id = &ids[rng.random_range(0..ids.len())];
        let _ = types.update(p, id, &random_op(rng));
    }
}

fn updatable(p: &Program) -> Vec<String> {
    p.held()
        .into_iter()
        .filter(|id| !p.is_derived(id).unwrap_or(true))
        .collect()
}

fn encode<M: Message>(m: &M) -> Vec<u8> {
    rmp_serde::to_vec(m).expect("encodes")
}

#[test]
fn dataflow_sync() {
    let types = JsonTypes::standard();
    let ids = updatable(&program(&types));
    target!(
        "dataflow_sync",
        |rng: &mut FuzzRng| {
            let mut p = program(&types);
            p.record_changes(true);
            churn(&mut p, &types, rng, &ids);
            let state = rng.random_bool(0.5);
            let vars: Vec<(String, Vec<u8>)> = if state {
                p.held()
                    .into_iter()
                    .filter(|_| rng.random_bool(0.3))
                    .map(|id| {
                        let bytes = p.state_dyn(&id).expect("held").encode();
                        (id, bytes)
                    })
                    .collect()
            } else {
                p.drain_changes()
                    .into_iter()
                    .map(|(id, d)| (id.to_string(), d.encode()))
                    .collect()
            };
            encode(&Sync {
                seq: rng.random(),
                state,
                vars,
            })
        },
        |b: &[u8]| {
            let m = Payload::Wire(b.to_vec())
                .decode::<Sync>()
                .map_err(|e| e.to_string())?;
            // The replica's receive path: each variable is decoded by its type and joined;
            // one that does not decode is skipped (and logged) without the others.
            let mut p = program(&types);
            for (id, bytes) in &m.vars {
                let _ = p.apply_encoded(id, bytes);
            }
            Ok(encode(&m))
        }
    )
    .alloc_limit(2 << 20, 64)
    .run();
}

#[test]
fn dataflow_hello() {
    let types = JsonTypes::standard();
    target!(
        "dataflow_hello",
        |rng: &mut FuzzRng| {
            let p = program(&types);
            let mut graph = p.graph();
            graph.retain(|_| rng.random_bool(0.8));
            encode(&Hello {
                modules: (0..rng.random_range(0..3u32))
                    .map(|_| format!("{:064x}", rng.random::<u128>()))
                    .collect(),
                reply: rng.random(),
                held: p
                    .held()
                    .into_iter()
                    .filter(|_| rng.random_bool(0.5))
                    .collect(),
                summaries: p
                    .held()
                    .into_iter()
                    .filter_map(|id| Some((id.clone(), p.state_dyn(&id).ok()?.summary_dyn()?)))
                    .collect(),
                graph,
                epoch: rng.random(),
            })
        },
        |b: &[u8]| {
            let m = Payload::Wire(b.to_vec())
                .decode::<Hello>()
                .map_err(|e| e.to_string())?;
            // What a replica does with a greeting's graph: learn each declaration.
            let mut p = Program::new(2);
            types.teach(&mut p);
            for d in m.graph.iter().cloned() {
                let _ = p.add_decl(d);
            }
            // And with its summaries: the deltas since them, for the variables it has.
            for (id, summary) in &m.summaries {
                if let Ok(state) = p.state_dyn(id) {
                    let _ = state.delta_since_dyn(summary);
                }
            }
            Ok(encode(&m))
        }
    )
    .alloc_limit(2 << 20, 64)
    .run();
}

#[test]
fn dataflow_ack() {
    target!(
        "dataflow_ack",
        |rng: &mut FuzzRng| encode(&Ack { seq: rng.random() }),
        |b: &[u8]| {
            Payload::Wire(b.to_vec())
                .decode::<Ack>()
                .map(|m| encode(&m))
                .map_err(|e| e.to_string())
        }
    )
    .run();
}

/// Every variable type's encoded state and delta, decoded as the replica does (by the
/// variable's declared type): the inner payload of a `Sync`, and the `var/<id>` store record
/// a node restores at start.
#[test]
fn variable_states() {
    let types = JsonTypes::standard();
    let base = program(&types);
    let ids = updatable(&base);
    let mut all = base.held();
    all.sort();
    // 31 variables: a few hundred inputs each by default, the full count when asked.
    let per_type = match std::env::var("RASP_FUZZ_CASES") {
        Ok(_) => rasp_fuzzkit::cases_from_env(),
        Err(_) => 300,
    };
    for id in all {
        let name: &'static str = Box::leak(format!("state {id}").into_boxed_str());
        let id2 = id.clone();
        target!(
            name,
            |rng: &mut FuzzRng| {
                let mut p = program(&types);
                p.record_changes(true);
                churn(&mut p, &types, rng, &ids);
                let changes = p.drain_changes();
                match changes.iter().find(|(v, _)| **v == *id) {
                    Some((_, d)) if rng.random_bool(0.5) => d.encode(),
                    _ => p.state_dyn(&id).expect("held").encode(),
                }
            },
            |b: &[u8]| {
                base.decode(&id2, b)
                    .map(|v| v.encode())
                    .map_err(|e| e.to_string())
            }
        )
        .cases(per_type)
        .run();
    }
}

/// The HTTP API's JSON bodies (`POST /vars/<id>` updates, `PUT /vars/<id>` declarations,
/// the `threshold` of reads), parsed as the API does (`serde_json`, then
/// `rasp_dataflow::json`), and applied to a variable of every type.
#[test]
fn http_json_bodies() {
    let types = JsonTypes::standard();
    // Without derived variables: a product's delta grows with its other input (an update's
    // cost there is the operator's, not the body's), and state here accumulates over cases.
    let state = RefCell::new((plain_program(&types), 0u32));
    let ids = updatable(&state.borrow().0);
    let dictionary = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\"inc\"",
        "\"add\"",
        "\"put\"",
        "\"value\"",
        "\"type\"",
        "\"orset\"",
        "\"strict\"",
        "\"cardinality\"",
        "\"contains\"",
        "null",
        "true",
        "-",
        "1e999",
        "18446744073709551616",
        "-9223372036854775809",
        "0.0",
        "\"\\u0000\"",
        "\"\\ud800\"",
    ];
    target!(
        "http_json_bodies",
        |rng: &mut FuzzRng| {
            let v = match rng.random_range(0..8) {
                0 => json!({"type": types.names()[rng.random_range(0..types.names().len())]}),
                1 => json!({"strict": {"value": number(rng)}}),
                2 => json!({"cardinality": number(rng)}),
                3 => json!({"contains": [element(rng), element(rng)]}),
                _ => random_op(rng),
            };
            serde_json::to_vec(&v).expect("encodes")
        },
        |b: &[u8]| {
            let v: Value =
                serde_json::from_slice(b).map_err(|e| format!("malformed JSON body: {e}"))?;
            let mut s = state.borrow_mut();
            // A fresh program now and then, so its state stays small.
            s.1 += 1;
            if s.1.is_multiple_of(500) {
                s.0 = plain_program(&types);
            }
            let p = &mut s.0;
            if let Some(name) = v.get("type").and_then(Value::as_str) {
                let _ = types.declare(p, "http/new", name);
            }
            for id in &ids {
                let _ = types.update(p, id, &v);
                let _ = types.holds(p, id, &v);
            }
            Ok(serde_json::to_vec(&v).expect("encodes"))
        }
    )
    .text(&dictionary)
    // serde_json (without its `float_roundtrip` feature) may read a float 1 ulp off, so a
    // re-encoded body need not re-encode identically; panics, errors and allocation are
    // what this target checks.
    .loose_round_trip()
    .unstable()
    .alloc_limit(1 << 20, 256)
    .run();
}
