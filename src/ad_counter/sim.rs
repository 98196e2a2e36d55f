//! The advertisement counter in the deterministic simulator: builds the cluster (servers
//! first, then clients, all joining through node 0), drives the offline epochs and the
//! transient partitions, samples the run, and measures the [`Summary`].
//!
//! **Offline clients.** Time is cut into epochs of `offline_duration`; at the start of each
//! epoch every client is offline for the whole epoch with probability `offline_fraction`
//! (the driver's RNG, seeded from the run's seed). Offline means partitioned from every other
//! node: the client keeps counting impressions into its local replica and ships them when the
//! partition heals. Once the servers have removed every ad, no client goes offline again
//! (the partitions heal), so every replica can converge.
//!
//! **Divergence** (plotted): at each sample, for the servers and up to 32 evenly spaced
//! clients, the fraction of the impressions counted so far (anywhere) that the replica's
//! counters do not reflect yet, averaged; and the number of clients that still see an ad the
//! servers have removed.
//!
//! **Convergence**: every replica's state of every variable it shares with server 0 is equal
//! to server 0's (lattice equality, both `≤`), checked after the servers removed every ad.

use super::app::{self, AdCounter};
use super::config::AdConfig;
use super::summary::{
    peak_rss_kib, ByteTally, HostFigures, Measured, RunResult, Sample, Series, Summary,
};
use crate::app::{AppAtom, ReplicationArgs, APP_ATOM};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rasp_dataflow::replica::ReplicaConfig;
use rasp_membership::Role;
use rasp_runtime::sim::{Fault, LinkConfig, NetConfig, Sim, SimConfig};
use rasp_runtime::{AtomAddr, NodeId, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Partition ids: offline clients use `OFFLINE_BASE + client index`.
const OFFLINE_BASE: u32 = 1_000_000;
/// Partition ids of the transient network partitions.
const SPLIT_BASE: u32 = 2_000_000;
/// Clients sampled for divergence (besides the servers).
const DIVERGENCE_SAMPLE: usize = 32;

/// Progress of a running simulation, for a progress bar.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Virtual seconds so far.
    pub t: f64,
    /// Ads still in the vendor sets.
    pub ads_left: u64,
    /// Impressions so far.
    pub impressions: u64,
    /// Clients offline now.
    pub offline: u64,
}

fn secs(t: Time) -> f64 {
    t.0 as f64 / 1e9
}

/// The app every node of a run of `cfg` runs.
pub fn app(cfg: &AdConfig) -> AdCounter {
    AdCounter::new(cfg.ads_per_vendor, cfg.threshold, cfg.impression_interval).exact(cfg.exact)
}

/// The replication settings of a run of `cfg`: the same rule as every app's nodes
/// ([`ReplicationArgs::config`]: durable, a trigger owner suspected after ten sync intervals).
pub fn replica_config(cfg: &AdConfig) -> crate::Result<ReplicaConfig> {
    let mut config = ReplicationArgs {
        sync: Some(cfg.sync),
        sync_interval_ms: Some(u64::try_from(cfg.sync_interval.as_millis()).unwrap_or(u64::MAX)),
    }
    .config()?;
    config.catch_up_summaries = !cfg.whole_state_catch_up;
    Ok(config)
}

/// Runs the advertisement counter in the simulator; `progress` is called after every sample.
pub fn run(cfg: &AdConfig, progress: &mut dyn FnMut(&Progress)) -> crate::Result<RunResult> {
    cfg.validate()?;
    let started = Instant::now();
    let servers = cfg.servers as usize;
    let clients = cfg.clients as usize;
    let n = servers + clients;
    let mut sim = cluster(cfg)?;
    let node = |i: usize| NodeId(i as u64);
    let all: Vec<NodeId> = (0..n).map(node).collect();
    let ads = cfg.ads();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xadc0_47e2);

    // Transient partitions: two random halves, at random times in the expected run.
    let expected = cfg.expected_run();
    for k in 0..cfg.partitions {
        let at = Duration::from_secs_f64(rng.random_range(0.0..expected.as_secs_f64().max(1.0)));
        let mut shuffled = all.clone();
        shuffled.shuffle(&mut rng);
        let (a, b) = shuffled.split_at(n / 2);
        let id = SPLIT_BASE + k;
        sim.schedule(
            Time(at.as_nanos() as u64),
            Fault::Partition {
                id,
                a: a.to_vec(),
                b: b.to_vec(),
                one_way: false,
            },
        );
        sim.schedule(
            Time((at + cfg.offline_duration).as_nanos() as u64),
            Fault::Heal(id),
        );
    }

    let sample_every = cfg
        .sync_interval
        .max(Duration::from_secs_f64(expected.as_secs_f64() / 400.0));
    let tail_step = (cfg.sync_interval / 4).max(Duration::from_millis(10));
    let end = Time(cfg.duration.as_nanos() as u64);
    let mut offline: BTreeSet<usize> = BTreeSet::new();
    let mut next_epoch = Time(0);
    let mut series = Series::default();
    let mut converged_at: Option<Time> = None;
    let sampled: Vec<usize> = {
        let mut v: Vec<usize> = (0..servers).collect();
        let k = clients.min(DIVERGENCE_SAMPLE);
        v.extend((0..k).map(|j| servers + j * clients / k));
        v
    };

    loop {
        let now = sim.now();
        let servers_done = servers_done(&sim, servers);
        // Offline epochs.
        if servers_done {
            for c in std::mem::take(&mut offline) {
                sim.heal(OFFLINE_BASE + c as u32);
            }
        } else if cfg.offline_fraction > 0.0 && now >= next_epoch {
            for c in 0..clients {
                let off = rng.random_bool(cfg.offline_fraction);
                let i = servers + c;
                if off && offline.insert(c) {
                    let others: Vec<NodeId> =
                        all.iter().copied().filter(|&x| x != node(i)).collect();
                    sim.partition(OFFLINE_BASE + c as u32, &[node(i)], &others, false);
                } else if !off && offline.remove(&c) {
                    sim.heal(OFFLINE_BASE + c as u32);
                }
            }
            next_epoch = Time(next_epoch.0 + cfg.offline_duration.as_nanos() as u64);
        }
        if now >= end {
            break;
        }
        let mut step = if servers_done {
            tail_step
        } else {
            sample_every
        };
        if cfg.offline_fraction > 0.0 && !servers_done {
            step = step.min(
                Duration::from_nanos(next_epoch.0.saturating_sub(now.0))
                    .max(Duration::from_millis(1)),
            );
        }
        sim.run_for(step);
        let s = sample(&sim, servers, n, &ads, &sampled, offline.len() as u64);
        progress(&Progress {
            t: s.t,
            ads_left: s.ads_left,
            impressions: s.impressions,
            offline: s.offline,
        });
        let done_now = s.ads_left == 0 && s.stale == 0 && offline.is_empty();
        series.samples.push(s);
        if done_now && converged(&sim, n) {
            converged_at = Some(sim.now());
            break;
        }
    }

    // The outcome.
    let mut summary = measure(&sim, cfg, servers, n, &ads);
    summary.converged = converged_at.is_some();
    summary.converged_at_s = converged_at.map(secs);
    summary.convergence_s = converged_at.map(|t| (secs(t) - summary.last_impression_s).max(0.0));
    summary.events = sim.events();
    summary.trace_hash = sim.trace_hash();
    Ok(RunResult {
        summary,
        host: HostFigures {
            wall_s: started.elapsed().as_secs_f64(),
            peak_rss_kib: peak_rss_kib(),
        },
        series,
    })
}

/// The simulator with the run's nodes of `cfg` added (servers first, every node joining
/// through node 0), not yet run.
fn cluster(cfg: &AdConfig) -> crate::Result<Sim> {
    let servers = cfg.servers as usize;
    let n = servers + cfg.clients as usize;
    let sim_cfg = SimConfig {
        seed: cfg.seed,
        seed_from_env: false,
        net: NetConfig {
            default: LinkConfig {
                latency: rasp_runtime::sim::Latency::Uniform {
                    min: Duration::from_millis(5),
                    max: Duration::from_millis(50),
                },
                loss: cfg.loss,
                ..LinkConfig::default()
            },
            links: Vec::new(),
        },
        ..SimConfig::default()
    };
    let mut sim = Sim::new(sim_cfg).map_err(|e| e.to_string())?;
    let app = app(cfg);
    let config = replica_config(cfg)?;
    for i in 0..n {
        let role = if i < servers {
            Role::Server
        } else {
            Role::Client
        };
        let boot = crate::app::sim::app_node_boot(&app, i as u32, cfg.membership, role, &config)?;
        let id = sim.add_node(boot);
        debug_assert_eq!(id, NodeId(i as u64));
    }
    Ok(sim)
}

fn with_app<R>(sim: &Sim, i: usize, f: impl FnOnce(&AppAtom<AdCounter>) -> R) -> Option<R> {
    sim.with_atom::<AppAtom<AdCounter>, _>(AtomAddr::new(NodeId(i as u64), APP_ATOM), f)
}

fn vendor_ads(a: &AppAtom<AdCounter>) -> Option<BTreeSet<String>> {
    a.program().and_then(app::vendor_ads)
}

fn servers_done(sim: &Sim, servers: usize) -> bool {
    (0..servers)
        .all(|i| with_app(sim, i, |a| vendor_ads(a).is_some_and(|s| s.is_empty())).unwrap_or(false))
}

fn sample(
    sim: &Sim,
    servers: usize,
    n: usize,
    ads: &[String],
    sampled: &[usize],
    offline: u64,
) -> Sample {
    let left: BTreeSet<String> =
        with_app(sim, 0, |a| vendor_ads(a).unwrap_or_default()).unwrap_or_default();
    let removed: BTreeSet<&String> = ads.iter().filter(|a| !left.contains(*a)).collect();
    let mut impressions = 0;
    let mut stale = 0;
    let mut payload = 0;
    for i in 0..n {
        with_app(sim, i, |a| {
            impressions += a.app().own_impressions();
            if i >= servers && a.app().visible().iter().any(|ad| removed.contains(ad)) {
                stale += 1;
            }
            if let Some(r) = a.replica_ref() {
                payload += r.stats().bytes_sent.values().sum::<u64>();
            }
        });
    }
    let mut divergence = 0.0;
    if impressions > 0 {
        for &i in sampled {
            let seen: u64 = with_app(sim, i, |a| {
                a.program().map_or(0, |p| {
                    app::counters(p, a.app().ads_per_vendor).values().sum()
                })
            })
            .unwrap_or(0);
            divergence += 1.0 - (seen.min(impressions) as f64 / impressions as f64);
        }
        divergence /= sampled.len() as f64;
    }
    let m = sim.metrics();
    Sample {
        t: secs(sim.now()),
        impressions,
        divergence,
        stale,
        ads_left: left.len() as u64,
        offline,
        kinds: m
            .kinds
            .iter()
            .map(|(k, s)| (k.clone(), s.bytes_sent))
            .collect(),
        payload,
    }
}

/// Whether every replica's shared variables equal server 0's.
fn converged(sim: &Sim, n: usize) -> bool {
    let Some(reference) = with_app(sim, 0, |a| {
        let p = a.program().expect("started");
        p.held()
            .into_iter()
            .filter_map(|id| p.state_dyn(&id).ok().map(|s| (id, s.clone_box())))
            .collect::<BTreeMap<_, _>>()
    }) else {
        return false;
    };
    (1..n).all(|i| {
        with_app(sim, i, |a| {
            let Some(p) = a.program() else {
                return false;
            };
            p.held()
                .iter()
                .all(|id| match (reference.get(id), p.state_dyn(id)) {
                    (Some(r), Ok(s)) => s.leq_dyn(&**r) && r.leq_dyn(s),
                    (None, _) => true, // not shared with server 0 (e.g. nothing of the program)
                    (_, Err(_)) => false,
                })
        })
        .unwrap_or(false)
    })
}

/// The least bytes that carry every impression to every replica of its counter: for each
/// ad, the `k`-th impression of client `a` is the delta `{a: k}` (encoded), sent once to
/// each other node holding the counter. From the counters of the first node that holds
/// them all (a server).
fn impression_lower_bound(sim: &Sim, n: usize, ads: &[String]) -> u64 {
    let mut total = 0u64;
    for ad in ads {
        let var = super::program::views(ad);
        let holders = (0..n)
            .filter(|&i| {
                with_app(sim, i, |a| a.program().is_some_and(|p| p.holds(var.id()))) == Some(true)
            })
            .count() as u64;
        let Some(state) = (0..n).find_map(|i| {
            with_app(sim, i, |a| {
                a.program().and_then(|p| p.state(&var).ok().cloned())
            })
            .flatten()
        }) else {
            continue;
        };
        for (&actor, &count) in state.counts() {
            let per_replica: u64 = (1..=count)
                .map(|k| {
                    rasp_lattice::encoded_size(&rasp_lattice::GCounter::default().inc(actor, k))
                        as u64
                })
                .sum();
            total += per_replica * holders.saturating_sub(1);
        }
    }
    total
}

/// The summary from the atoms' final states and the runtime's metrics.
fn measure(sim: &Sim, cfg: &AdConfig, servers: usize, n: usize, ads: &[String]) -> Summary {
    let reports: Vec<_> = (0..n)
        .map(|i| {
            with_app(sim, i, |a| (app::report(a, i as u64), a.app().log()))
                .expect("every node runs the app")
        })
        .collect();
    let mut tally = ByteTally::default();
    for i in 0..n {
        let role = if i < servers { "server" } else { "client" };
        tally.add(role, &sim.node_metrics(NodeId(i as u64)).kinds);
    }
    let payload: u64 = (0..n)
        .map(|i| {
            with_app(sim, i, |a| {
                a.replica_ref()
                    .map_or(0, |r| r.stats().bytes_sent.values().sum::<u64>())
            })
            .unwrap_or(0)
        })
        .sum();
    let last = reports
        .iter()
        .filter_map(|(_, l)| l.last_impression)
        .max()
        .map_or(0.0, secs);
    let replica_sum = |f: fn(&rasp_dataflow::replica::ReplicaStats) -> u64| -> u64 {
        (0..n)
            .map(|i| with_app(sim, i, |a| a.replica_ref().map_or(0, |r| f(r.stats()))).unwrap_or(0))
            .sum()
    };
    let impressions: u64 = reports.iter().map(|(r, _)| r.impressions).sum();
    let lower_bound = if cfg.exact || impressions == 0 {
        0.0
    } else {
        impression_lower_bound(sim, n, ads) as f64 / impressions as f64
    };
    Summary {
        offline_impressions: reports.iter().map(|(_, l)| l.offline_impressions).sum(),
        last_impression_s: last,
        catch_up_summary_bytes: replica_sum(|s| s.summary_bytes_sent),
        catch_up_payload_bytes: replica_sum(|s| s.catch_up_bytes_sent),
        catch_up_missing_bytes: replica_sum(|s| s.catch_up_missing_bytes),
        impression_lower_bound: lower_bound,
        ..Summary::measured(Measured {
            world: "sim",
            cfg,
            ads: ads.to_vec(),
            reports: reports.iter().map(|(r, _)| r).collect(),
            tally,
            payload,
            run_s: secs(sim.now()).max(1e-9),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ad_counter::program;
    use rasp_membership::Mode;

    /// The rights a node holds over every ad, and its log.
    fn held(sim: &Sim, i: usize, ads: &[String]) -> (u64, app::ClientLog) {
        with_app(sim, i, |a| {
            let p = a.program().expect("started");
            let me = i as u64;
            let r = ads
                .iter()
                .map(|ad| p.state(&program::rights(ad)).map_or(0, |s| s.rights(me)))
                .sum();
            (r, a.app().log())
        })
        .expect("node runs the app")
    }

    /// Exact mode: a client cut off from every other node keeps counting impressions with
    /// the rights it holds, uses exactly those, then refuses every impression (0 rights);
    /// back online, it gets rights again and counts again.
    #[test]
    fn an_offline_client_counts_within_its_rights_then_stops() {
        let cfg = AdConfig {
            clients: 2,
            servers: 1,
            ads_per_vendor: 1,
            threshold: 800,
            impression_interval: Duration::from_millis(100),
            sync_interval: Duration::from_millis(200),
            offline_fraction: 0.0,
            membership: Mode::Full,
            exact: true,
            seed: 3,
            ..AdConfig::default()
        };
        let ads = cfg.ads();
        let mut sim = cluster(&cfg).unwrap();
        sim.run_for(Duration::from_secs(10));
        // Wait (bounded) for a moment when client 1 holds rights.
        let mut tries = 0;
        while held(&sim, 1, &ads).0 == 0 {
            tries += 1;
            assert!(tries < 200, "client 1 never received rights");
            sim.run_for(Duration::from_millis(10));
        }
        let (rights, before) = held(&sim, 1, &ads);
        let others = [NodeId(0), NodeId(2)];
        sim.partition(7, &[NodeId(1)], &others, false);
        sim.run_for(Duration::from_secs(20));
        let (left, during) = held(&sim, 1, &ads);
        let counted = |l: &app::ClientLog| l.impressions.values().sum::<u64>();
        assert_eq!(left, 0, "an offline client uses up its rights");
        assert_eq!(
            counted(&during) - counted(&before),
            rights,
            "offline, it counts exactly the rights it held ({rights})"
        );
        // 20 s at 10 impressions a second: all but `rights` refused.
        let refused = during.refused_no_rights - before.refused_no_rights;
        assert!(
            refused + rights >= 190 && refused + rights <= 201,
            "refused {refused}, counted {rights}"
        );
        assert!(during.rights_requests > before.rights_requests);
        sim.heal(7);
        sim.run_for(Duration::from_secs(10));
        let (_, after) = held(&sim, 1, &ads);
        assert!(
            counted(&after) > counted(&during) + 20,
            "back online it counts again: {} then {}",
            counted(&during),
            counted(&after)
        );
        // No right was created: the bound holds on the server's replica.
        with_app(&sim, 0, |a| {
            let p = a.program().unwrap();
            for ad in &ads {
                let s = p.state(&program::rights(ad)).unwrap();
                assert_eq!(s.granted(), cfg.threshold);
                assert!(s.used() <= s.granted());
            }
        });
    }
}
