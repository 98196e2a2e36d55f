//! Recorded runs and their replay.
//!
//! A [`Trace`] holds what is needed to re-run a simulation except the program itself:
//! the seed, the configuration, every driver input in order (nodes added, messages
//! injected as encoded bytes, faults, run commands) and the running trace hash after
//! every event. [`replay`] rebuilds the simulator from it, re-applies the inputs with the
//! same program (the boot closures, supplied by the caller) and checks the run
//! reproduces event by event, reporting the first divergent event.

use super::{Fault, NetModel, Sim, SimConfig};
use crate::error::Error;
use crate::host::Boot;
use crate::ids::{Dest, NodeId, Time};
use crate::message::{Corr, KindId};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Trace file format version.
pub const VERSION: u32 = 1;

/// One driver input, in the order it was given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// `add_node` (the next node id).
    AddNode,
    /// `inject*`: an encoded message from the client.
    Inject {
        /// Delivery time.
        at: Time,
        /// Destination.
        to: Dest,
        /// Message kind.
        kind: KindId,
        /// Correlation.
        corr: Corr,
        /// MessagePack payload.
        bytes: Vec<u8>,
    },
    /// `schedule`.
    Schedule {
        /// When.
        at: Time,
        /// What.
        fault: Fault,
    },
    /// `apply` (and the crash/restart/partition/heal helpers).
    Apply(Fault),
    /// `run_until` / `run_for`.
    RunUntil(Time),
    /// `run_until_idle`.
    RunUntilIdle(Time),
    /// `step`.
    Step,
    /// [`Sim::enter_control`]: the explorer's controlled mode starts.
    Control,
    /// [`Sim::pick`]: the pending event with this sequence number runs.
    Pick(u64),
    /// [`Sim::discard`]: the in-flight message with this sequence number is lost.
    Discard(u64),
}

/// A recorded run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Format version.
    pub version: u32,
    /// The effective seed.
    pub seed: u64,
    /// The configuration.
    pub config: SimConfig,
    /// Driver inputs in order.
    pub inputs: Vec<Input>,
    /// Running trace hash after each event (`hashes[i]` after event `i + 1`).
    pub hashes: Vec<u64>,
    /// The trace hash at the time the trace was taken.
    pub final_hash: u64,
}

impl Trace {
    /// Writes the trace as MessagePack.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        std::fs::write(path, self.to_bytes()?)?;
        Ok(())
    }
    /// Reads a trace written by [`Trace::save`]; a file that is not one is an error naming
    /// the file (see [`Trace::from_bytes`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Trace, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("trace file {}", path.display()), e))?;
        Trace::from_bytes(&bytes)
            .map_err(|e| Error::decode(format!("trace file {}", path.display()), e))
    }

    /// Decodes the bytes of a trace file. Malformed bytes, another format version and a
    /// configuration the simulator would refuse ([`SimConfig::validate`]) are errors, never a
    /// panic (fuzzed: the README's "Bad input" section).
    pub fn from_bytes(bytes: &[u8]) -> Result<Trace, Error> {
        let t: Trace = crate::wire::decode(bytes, "trace")?;
        if t.version != VERSION {
            return Err(Error::refused(format!(
                "trace version {} (expected {VERSION})",
                t.version
            )));
        }
        t.config
            .validate()
            .map_err(|e| Error::decode("trace: its configuration is invalid", e))?;
        Ok(t)
    }

    /// The bytes [`Trace::save`] writes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        rmp_serde::to_vec(self).map_err(|e| Error::encode("trace", e))
    }
}

#[derive(Default)]
pub(super) struct Recorder {
    pub(super) inputs: Vec<Input>,
    pub(super) hashes: Vec<u64>,
}

pub(super) struct Verifier {
    pub(super) expected: Vec<u64>,
    pub(super) divergence: Option<(u64, String)>,
}

impl Verifier {
    pub(super) fn check(&mut self, event: u64, now: Time, hash: u64) {
        if self.divergence.is_some() {
            return;
        }
        match self.expected.get(event as usize - 1) {
            Some(&h) if h == hash => {}
            Some(&h) => {
                self.divergence = Some((
                    event,
                    format!("at time {now:?}: trace hash {hash:016x}, recorded {h:016x}"),
                ))
            }
            None => {
                self.divergence = Some((
                    event,
                    format!(
                        "at time {now:?}: the replay has more events than the {} recorded",
                        self.expected.len()
                    ),
                ))
            }
        }
    }
}

/// The outcome of a successful replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events replayed (all matched).
    pub events: u64,
    /// The final trace hash (equal to the recording's).
    pub final_hash: u64,
}

/// Replays a trace with the default network model. `boot_for(node)` must return the
/// boot closure the recorded run gave that node.
pub fn replay(
    trace: &Trace,
    boot_for: impl Fn(NodeId) -> Boot,
) -> Result<(Sim, ReplayReport), Error> {
    replay_with_model(trace, None, boot_for)
}

/// Replays a trace, with the custom network model the recorded run used (if any).
/// Returns the replayed simulator (for inspection) and the report, or
/// [`Error::ReplayDiverged`] naming the first event that differs.
pub fn replay_with_model(
    trace: &Trace,
    model: Option<Box<dyn NetModel>>,
    boot_for: impl Fn(NodeId) -> Boot,
) -> Result<(Sim, ReplayReport), Error> {
    if trace.version != VERSION {
        return Err(Error::refused(format!("trace version {}", trace.version)));
    }
    let cfg = SimConfig {
        seed: trace.seed,
        seed_from_env: false,
        ..trace.config.clone()
    };
    let mut sim = match model {
        Some(m) => Sim::with_model(cfg, m)?,
        None => Sim::new(cfg)?,
    };
    sim.verifier = Some(Verifier {
        expected: trace.hashes.clone(),
        divergence: None,
    });
    for input in &trace.inputs {
        if sim.halted() {
            break;
        }
        match input.clone() {
            Input::AddNode => {
                let id = NodeId(sim.node_count() as u64);
                sim.add_node(boot_for(id));
            }
            Input::Inject {
                at,
                to,
                kind,
                corr,
                bytes,
            } => sim.inject_raw(at, to, kind, corr, bytes),
            Input::Schedule { at, fault } => sim.schedule(at, fault),
            Input::Apply(f) => sim.apply(f),
            Input::RunUntil(t) => sim.run_until(t),
            Input::RunUntilIdle(t) => {
                sim.run_until_idle(t);
            }
            Input::Step => {
                sim.step();
            }
            Input::Control => sim.enter_control(),
            Input::Pick(seq) => {
                sim.pick(seq);
            }
            Input::Discard(seq) => {
                sim.discard(seq);
            }
        }
    }
    let v = sim.verifier.take().expect("set above");
    if let Some((event, detail)) = v.divergence {
        return Err(Error::ReplayDiverged { event, detail });
    }
    let events = sim.events();
    if events != trace.hashes.len() as u64 {
        return Err(Error::ReplayDiverged {
            event: events + 1,
            detail: format!(
                "the replay stopped after {events} events, {} recorded",
                trace.hashes.len()
            ),
        });
    }
    let report = ReplayReport {
        events,
        final_hash: sim.trace_hash(),
    };
    Ok((sim, report))
}

impl Sim {
    /// Checks the run event by event against `trace`'s recorded hashes from now on (call
    /// before any input): a driver that re-executes the recorded run by its own means (as the
    /// fuzzer's replay rebuilds it from its plan) gets the same per-event check as
    /// [`replay`]. The run halts at the first divergent event; [`Sim::replay_divergence`]
    /// names it.
    pub fn verify_against(&mut self, trace: &Trace) {
        self.verifier = Some(Verifier {
            expected: trace.hashes.clone(),
            divergence: None,
        });
    }

    /// The first event that differed from the trace given to [`Sim::verify_against`], as
    /// [`Error::ReplayDiverged`]; also an error if the run has fewer events than recorded.
    /// `Ok` with the number of events matched otherwise.
    pub fn replay_divergence(&self) -> Result<u64, Error> {
        let Some(v) = &self.verifier else {
            return Err(Error::Config("verify_against was not called".into()));
        };
        if let Some((event, detail)) = &v.divergence {
            return Err(Error::ReplayDiverged {
                event: *event,
                detail: detail.clone(),
            });
        }
        let events = self.events();
        if events != v.expected.len() as u64 {
            return Err(Error::ReplayDiverged {
                event: events + 1,
                detail: format!(
                    "the replay stopped after {events} events, {} recorded",
                    v.expected.len()
                ),
            });
        }
        Ok(events)
    }
}
