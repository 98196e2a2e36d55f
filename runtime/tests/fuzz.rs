//! The runtime's decoders of bytes from the network and the disk, fuzzed with
//! `rasp_fuzzkit` (no panic, an error message for every refused input, bounded peak
//! allocation, round trips): the frame reader of the network runtime (length-prefixed
//! frames, with its budget and deadline), the envelope inside every frame, a message
//! payload, the simulator's trace file, and the node's redb store file. `RASP_FUZZ_CASES`
//! sets the inputs per decoder; the long run is in the README's "Bad input" section.

use rand::{Rng, RngCore};
use rasp_fuzzkit::{target, FuzzRng};
use rasp_runtime::demo::{demo_boot, DemoConfig};
use rasp_runtime::net::frame::{encode_frame, read_frame_bounded, Budget};
use rasp_runtime::net::RedbStore;
use rasp_runtime::sim::{Fault, Sim, SimConfig, Trace};
use rasp_runtime::{AtomAddr, AtomId, Contact, Corr, Dest, Envelope, Message, NodeId, RequestId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The network runtime's frame limit (`NetConfig::max_frame`'s default, 4 MiB).
const MAX_FRAME: usize = 4 << 20;

fn random_bytes(rng: &mut FuzzRng, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; rng.random_range(0..=max)];
    rng.fill_bytes(&mut v);
    v
}

#[test]
fn frames() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let budget = Budget::new(64 << 20);
    target!(
        "frames",
        |rng: &mut FuzzRng| {
            let mut wire = Vec::new();
            for _ in 0..rng.random_range(0..4) {
                encode_frame(&random_bytes(rng, 300), &mut wire);
            }
            wire
        },
        |b: &[u8]| {
            // Every frame in the bytes, as the node's stream reader reads them: each frame's
            // buffer is paid for from the budget and must complete within the deadline.
            rt.block_on(async {
                let mut r = futures::io::Cursor::new(b);
                let mut out = Vec::new();
                loop {
                    let mut buf = Vec::new();
                    match read_frame_bounded(
                        &mut r,
                        &mut buf,
                        MAX_FRAME,
                        &budget,
                        Duration::from_secs(1),
                    )
                    .await
                    {
                        Ok(None) => return Ok(out),
                        Ok(Some(_held)) => encode_frame(&buf, &mut out),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            })
        }
    )
    .run();
    assert_eq!(
        budget.available(),
        64 << 20,
        "every frame returned its budget"
    );
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
    n: u64,
    list: Vec<u32>,
}
impl Message for Note {
    const KIND: &'static str = "fuzz/note";
}

fn note(rng: &mut FuzzRng) -> Note {
    Note {
        text: String::from_utf8_lossy(&random_bytes(rng, 30)).into_owned(),
        n: rng.random(),
        list: (0..rng.random_range(0..8)).map(|_| rng.random()).collect(),
    }
}

fn dest(rng: &mut FuzzRng) -> Dest {
    if rng.random_bool(0.5) {
        Dest::Atom(AtomAddr::new(NodeId(rng.random()), AtomId(rng.random())))
    } else {
        Dest::service(NodeId(rng.random()), "membership")
    }
}

#[test]
fn envelopes() {
    target!(
        "envelopes",
        |rng: &mut FuzzRng| {
            let from = AtomAddr::new(NodeId(rng.random()), AtomId(rng.random()));
            let mut env = Envelope::new(from, dest(rng), note(rng));
            env.corr = match rng.random_range(0..3) {
                0 => Corr::None,
                1 => Corr::Request(RequestId(rng.random())),
                _ => Corr::Reply(RequestId(rng.random())),
            };
            env.encode().expect("encodes")
        },
        |b: &[u8]| {
            Envelope::decode(b)
                .and_then(|e| e.encode())
                .map_err(|e| e.to_string())
        }
    )
    .run();
}

#[test]
fn message_payloads() {
    target!(
        "message_payloads",
        |rng: &mut FuzzRng| rmp_serde::to_vec(&note(rng)).expect("encodes"),
        |b: &[u8]| {
            rasp_runtime::Payload::Wire(b.to_vec())
                .decode::<Note>()
                .map(|n| rmp_serde::to_vec(&n).expect("encodes"))
                .map_err(|e| e.to_string())
        }
    )
    .run();
}

/// A recorded run of the runtime's demo cluster with random faults.
fn recorded_trace(rng: &mut FuzzRng) -> Vec<u8> {
    let mut sim = Sim::new(SimConfig::seeded(rng.random())).expect("config");
    sim.start_recording();
    let cfg = DemoConfig {
        nodes: rng.random_range(1..4),
        increments: rng.random_range(0..3),
        ..DemoConfig::default()
    };
    let nodes = sim.add_nodes(cfg.nodes as usize, &demo_boot(cfg.clone()));
    for _ in 0..rng.random_range(0..4) {
        let n = nodes[rng.random_range(0..nodes.len())];
        let fault = match rng.random_range(0..5) {
            0 => Fault::Crash(n),
            1 => Fault::Restart(n),
            2 => Fault::Partition {
                id: rng.random(),
                a: vec![n],
                b: nodes.clone(),
                one_way: rng.random(),
            },
            3 => Fault::Pause(n),
            _ => Fault::HealAll,
        };
        if rng.random_bool(0.5) {
            sim.apply(fault);
        } else {
            sim.schedule(rasp_runtime::Time(rng.random_range(0..50_000_000)), fault);
        }
    }
    sim.run_for(Duration::from_millis(rng.random_range(0..40)));
    sim.trace().expect("recording").to_bytes().expect("encodes")
}

#[test]
fn trace_files() {
    target!("trace_files", recorded_trace, |b: &[u8]| {
        Trace::from_bytes(b)
            .and_then(|t| t.to_bytes())
            .map_err(|e| e.to_string())
    })
    .run();
}

/// A trace file that is not one is an error naming the file (it said only "trace: …").
#[test]
fn a_damaged_trace_file_is_an_error_naming_it() {
    let path = std::env::temp_dir().join(format!("rasp-fuzz-trace-{}.msgpack", std::process::id()));
    std::fs::write(&path, [0x95, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff]).unwrap();
    let e = Trace::load(&path).unwrap_err().to_string();
    std::fs::remove_file(&path).ok();
    assert!(e.contains(&path.display().to_string()), "{e}");
}

/// A store file of a node that ran: random records (the membership contacts, boot counter and
/// variable states are records like these).
fn store_file(rng: &mut FuzzRng, dir: &std::path::Path) -> Vec<u8> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    {
        let s = RedbStore::create(dir).expect("creates");
        for _ in 0..rng.random_range(0..20) {
            let key = format!("var/{}", rng.random_range(0..50));
            s.put(key.as_bytes(), &random_bytes(rng, 200)).expect("put");
        }
        let c = Contact {
            node: NodeId(rng.random()),
            addrs: vec!["/ip4/127.0.0.1/tcp/7000".into()],
        };
        s.put(
            b"membership/contacts",
            &rmp_serde::to_vec(&vec![c]).unwrap(),
        )
        .expect("put");
    }
    std::fs::read(dir.join("store.redb")).unwrap()
}

/// The node's store file, damaged in every way the engine knows (flipped bits, cut short,
/// overwritten, spliced): opening it and reading every record is an error or the records,
/// never a panic. Each input is a file on disk, so this target runs fewer cases by default
/// (`RASP_FUZZ_STORE_CASES`, default 200).
#[test]
fn store_files() {
    // A memory file system where there is one: every input is written and opened (fsync).
    let tmp = match std::path::Path::new("/dev/shm") {
        p if p.is_dir() => p.to_path_buf(),
        _ => std::env::temp_dir(),
    };
    let base = tmp.join(format!("rasp-fuzz-store-{}", std::process::id()));
    let gen_dir = base.join("gen");
    let try_dir = base.join("try");
    std::fs::create_dir_all(&try_dir).unwrap();
    let cases = std::env::var("RASP_FUZZ_STORE_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    target!(
        "store_files",
        |rng: &mut FuzzRng| store_file(rng, &gen_dir),
        |b: &[u8]| {
            let path = try_dir.join("store.redb");
            std::fs::write(&path, b).map_err(|e| e.to_string())?;
            let store = RedbStore::open(&try_dir).map_err(|e| e.to_string())?;
            let records = store.scan_prefix(b"").map_err(|e| e.to_string())?;
            drop(store);
            Ok(rmp_serde::to_vec(&records).expect("encodes"))
        }
    )
    .loose_round_trip()
    .unstable()
    .alloc_limit(64 << 20, 64)
    .cases(cases)
    .run();
    std::fs::remove_dir_all(&base).ok();
}

// ---- inputs the fuzzer found, kept as regression tests ----

/// Found by `message_payloads` (case 187): a 49-byte payload whose array-32 length field
/// claims 4,294,967,295 elements made the decoder reserve 1 MiB (serde's capped
/// pre-allocation for a `Vec`) before finding the bytes missing: 21,000 times the input,
/// from any peer, per message.
#[test]
fn a_payload_claiming_4g_elements_is_refused_before_allocating() {
    let input = rasp_fuzzkit::unhex(
        "93bb07efbfbd116b553fefbfbdefbfbd49c9885b5fefbfbd760befbfbdcf271350516637ab31ddffffffff91cebbc0b9d7",
    );
    let (r, peak) =
        rasp_fuzzkit::peak_alloc(|| rasp_runtime::Payload::Wire(input.clone()).decode::<Note>());
    let e = r.expect_err("refused").to_string();
    assert!(
        peak < 4096,
        "allocated {peak} bytes for a {}-byte input",
        input.len()
    );
    assert!(e.contains("fuzz/note"), "{e}");
}

/// Found by `trace_files` (case 1701): a 208-byte trace whose array-16 length claims 65,535
/// inputs reserved 1 MiB.
#[test]
fn a_trace_claiming_65535_inputs_is_refused_before_allocating() {
    let input = rasp_fuzzkit::unhex(
        "9601cf25eedd4d1d2108f098cf25eedd4d1d2108f0c3929581a8436f6e7374616e749200ce000f4240cb0000000000000000cb0000000000000000cb00000000000000009200ce0098968090a6456e636f6465c392010092000000dcffff93a74164644e6f6465a74164644e6f646581a852756e556e74696cce01f78a4098cf8817d912a01c18c9cf36cbe85d5032aa18cf15d75cc635eaf962cf70a28117dc10215fcfda0b86e702fc1722cf858ede",
    );
    let (r, peak) = rasp_fuzzkit::peak_alloc(|| Trace::from_bytes(&input));
    assert!(r.is_err());
    assert!(
        peak < 16 * 1024,
        "allocated {peak} bytes for a {}-byte input",
        input.len()
    );
}

/// An envelope whose payload `bin 32` claims 4 GiB, and one nested 100,000 arrays deep.
#[test]
fn envelopes_with_huge_claims_or_deep_nesting_are_refused_cheaply() {
    let mut claim = vec![0x95, 0x92, 0x01, 0x02, 0x81, 0x00, 0x92, 0x01, 0x02, 0xc0];
    claim.extend([0xc6, 0xff, 0xff, 0xff, 0xff]);
    let (r, peak) = rasp_fuzzkit::peak_alloc(|| Envelope::decode(&claim));
    assert!(r.is_err() && peak < 4096, "peak {peak}");
    let deep = vec![0x91; 100_000];
    let (r, peak) = rasp_fuzzkit::peak_alloc(|| Envelope::decode(&deep));
    let e = r.expect_err("refused").to_string();
    assert!(peak < 64 * 1024, "peak {peak}");
    assert!(e.contains("deep"), "{e}");
}

/// A store file kept as a fixture: its length, then `<offset> <hex>` runs (zeros elsewhere).
fn fixture_store(text: &str, name: &str) -> std::path::PathBuf {
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let len: usize = lines.next().unwrap().parse().unwrap();
    let mut bytes = vec![0u8; len];
    for l in lines {
        let (off, hex) = l.split_once(' ').unwrap();
        let off: usize = off.parse().unwrap();
        let run = rasp_fuzzkit::unhex(hex);
        bytes[off..off + run.len()].copy_from_slice(&run);
    }
    let dir = std::env::temp_dir().join(format!("rasp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("store.redb"), &bytes).unwrap();
    dir
}

/// Opens, reads and closes the store in `dir` under `catch_unwind`: what a node does.
fn open_read_close(dir: &std::path::Path) -> std::thread::Result<Result<(), String>> {
    std::panic::catch_unwind(|| match RedbStore::open(dir) {
        Ok(s) => {
            let r = s.scan_prefix(b"").map(|_| ()).map_err(|e| e.to_string());
            drop(s);
            r
        }
        Err(e) => Err(e.to_string()),
    })
}

/// Found by `store_files` (case 1375, `runtime/tests/fixtures/store-panics-on-read.txt`): a
/// damaged store that redb 2.6 opens but panics on reading ("range end index 16777157 out of
/// range for slice of length 4096" in its b-tree code): a node would have crashed reading its
/// records at start. Now opening reads every record once and calls such a file damaged.
#[test]
fn a_store_that_panics_redb_on_read_is_damaged_not_a_crash() {
    let dir = fixture_store(include_str!("fixtures/store-panics-on-read.txt"), "on-read");
    let r = open_read_close(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let e = r.expect("no panic").expect_err("a damaged store");
    assert!(e.contains("store.redb") && e.contains("damaged"), "{e}");
}

/// Found by `store_files` (case 5108, `runtime/tests/fixtures/store-panics-on-close.txt`):
/// closing a damaged store tripped an assertion in redb 2.6 (`cached_file.rs`), a panic at a
/// node's shutdown. Now closing turns it into a log line.
#[test]
fn a_store_that_panics_redb_on_close_is_not_a_crash() {
    let dir = fixture_store(
        include_str!("fixtures/store-panics-on-close.txt"),
        "on-close",
    );
    let r = open_read_close(&dir);
    std::fs::remove_dir_all(&dir).ok();
    assert!(r.is_ok(), "a panic");
}
