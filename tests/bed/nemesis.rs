//! The nemesis: faults of the real network and of the real processes, drawn from a seed and
//! printed as they act (`nemesis +12.40s: partition {0,3} | {1,2,4}`, then `heal`). One fault
//! is active at a time; each lasts a drawn time, and a drawn quiet gap follows its heal.
//!
//! | kind | what it does (inside the nodes' namespaces) |
//! |---|---|
//! | `link` | on a few random links (both directions): packet loss (nftables `numgen random` drop), duplication (an nftables `dup` on the `netdev` egress hook), and slow, jittery, reordering links: an htb qdisc with a slow and a slower class, each packet of the link sent through one of them at random (nftables sets its `meta priority`); with `netem` in the kernel, the slow class also gets `netem delay D J` |
//! | `partition` | symmetric: two random halves drop each other's packets (nftables input rules) |
//! | `oneway` | one half drops what the other sends; the other way stays open |
//! | `bridge` | two halves that drop each other, and one node that sees both |
//! | `kill` | kill -9 of a random node; at the heal it restarts with the same command line and data directory |
//! | `pause` | SIGSTOP of a random node for longer than the failure detector (`suspect_after` = 10 sync intervals); SIGCONT at the heal |
//!
//! The kernel of the machine this bed was written on has no `netem` qdisc (`tc qdisc add …
//! netem` answers "Specified qdisc kind is unknown"): the link faults are built from what
//! it has (nftables, htb), and use netem only where the kernel offers it
//! ([`super::netns::Hosts::netem`]).

use super::cluster::Cluster;
use super::netns::{in_ns, node_ip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::time::Instant;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Loss, duplication, slow and reordering links.
    Link,
    /// Symmetric partition.
    Partition,
    /// One-way partition.
    OneWay,
    /// Bridge partition.
    Bridge,
    /// kill -9 and restart.
    Kill,
    /// SIGSTOP / SIGCONT.
    Pause,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::Link,
        Kind::Partition,
        Kind::OneWay,
        Kind::Bridge,
        Kind::Kill,
        Kind::Pause,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Link => "link",
            Kind::Partition => "partition",
            Kind::OneWay => "oneway",
            Kind::Bridge => "bridge",
            Kind::Kill => "kill",
            Kind::Pause => "pause",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// One fault, with its parameters.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Link faults on these links (both directions).
    Link {
        /// The links.
        links: Vec<(usize, usize)>,
        /// Packets dropped, per mille.
        loss_pm: u32,
        /// Packets duplicated, per mille.
        dup_pm: u32,
        /// Packets sent through the slower class, percent (the rest through the slow one).
        slower_pct: u32,
    },
    /// `b` and `a` drop each other (`one_way`: only `b` drops what `a` sends).
    Split {
        /// One side.
        a: Vec<usize>,
        /// The other.
        b: Vec<usize>,
        /// Only `b` drops.
        one_way: bool,
        /// A node in neither side that sees both.
        bridge: Option<usize>,
    },
    /// kill -9 of the node; restart at the heal.
    Kill(usize),
    /// SIGSTOP of the node; SIGCONT at the heal.
    Pause(usize),
}

impl Fault {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Link { .. } => Kind::Link,
            Fault::Split {
                bridge: Some(_), ..
            } => Kind::Bridge,
            Fault::Split { one_way: true, .. } => Kind::OneWay,
            Fault::Split { .. } => Kind::Partition,
            Fault::Kill(_) => Kind::Kill,
            Fault::Pause(_) => Kind::Pause,
        }
    }
}

fn set(v: &[usize]) -> String {
    let s: Vec<String> = v.iter().map(usize::to_string).collect();
    format!("{{{}}}", s.join(","))
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Link {
                links,
                loss_pm,
                dup_pm,
                slower_pct,
            } => {
                let l: Vec<String> = links.iter().map(|(a, b)| format!("{a}-{b}")).collect();
                write!(
                    f,
                    "link [{}]: loss {:.1}%, duplication {:.1}%, slow links ({slower_pct}% of packets on the slower class: reordering)",
                    l.join(" "),
                    *loss_pm as f64 / 10.0,
                    *dup_pm as f64 / 10.0
                )
            }
            Fault::Split {
                a,
                b,
                one_way,
                bridge,
            } => match (one_way, bridge) {
                (_, Some(x)) => write!(f, "bridge {} | {} with {x} seeing both", set(a), set(b)),
                (true, None) => write!(f, "oneway {} -/-> {}", set(a), set(b)),
                (false, None) => write!(f, "partition {} | {}", set(a), set(b)),
            },
            Fault::Kill(n) => write!(f, "kill -9 node {n}"),
            Fault::Pause(n) => write!(f, "SIGSTOP node {n}"),
        }
    }
}

/// A fault and when it starts and heals (seconds from the start of the nemesis).
#[derive(Clone, Debug)]
pub struct Step {
    /// Start.
    pub at: f64,
    /// Heal.
    pub heal: f64,
    /// The fault.
    pub fault: Fault,
}

/// Draws the schedule: faults of `kinds` over `duration_s` seconds for `n` nodes, each
/// lasting `fault_s.0..fault_s.1` seconds, with gaps of 1–3 s between them; the last heal
/// is before `duration_s`.
pub fn schedule(
    seed: u64,
    n: usize,
    kinds: &[Kind],
    duration_s: f64,
    fault_s: (f64, f64),
) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = rng.random_range(1.0..3.0);
    let mut out = Vec::new();
    while !kinds.is_empty() {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let len = rng.random_range(fault_s.0..fault_s.1);
        if t + len > duration_s {
            break;
        }
        let fault = draw(&mut rng, kind, n);
        out.push(Step {
            at: t,
            heal: t + len,
            fault,
        });
        t += len + rng.random_range(1.0..3.0);
    }
    out
}

fn halves(rng: &mut ChaCha8Rng, nodes: &mut [usize]) -> (Vec<usize>, Vec<usize>) {
    nodes.shuffle(rng);
    let cut = rng.random_range(1..nodes.len());
    let mut a = nodes[..cut].to_vec();
    let mut b = nodes[cut..].to_vec();
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

fn draw(rng: &mut ChaCha8Rng, kind: Kind, n: usize) -> Fault {
    let mut all: Vec<usize> = (0..n).collect();
    match kind {
        Kind::Link => {
            let count = rng.random_range(1..=n.min(6));
            let mut links = Vec::new();
            for _ in 0..count {
                let a = rng.random_range(0..n);
                let b = (a + rng.random_range(1..n)) % n;
                links.push((a.min(b), a.max(b)));
            }
            links.sort_unstable();
            links.dedup();
            Fault::Link {
                links,
                loss_pm: rng.random_range(10..=200),
                dup_pm: rng.random_range(0..=100),
                slower_pct: rng.random_range(10..=50),
            }
        }
        Kind::Partition | Kind::OneWay => {
            let (a, b) = halves(rng, &mut all);
            Fault::Split {
                a,
                b,
                one_way: kind == Kind::OneWay,
                bridge: None,
            }
        }
        Kind::Bridge => {
            let x = rng.random_range(0..n);
            let mut rest: Vec<usize> = all.into_iter().filter(|&i| i != x).collect();
            let (a, b) = halves(rng, &mut rest);
            Fault::Split {
                a,
                b,
                one_way: false,
                bridge: Some(x),
            }
        }
        Kind::Kill => Fault::Kill(rng.random_range(0..n)),
        Kind::Pause => Fault::Pause(rng.random_range(0..n)),
    }
}

/// Prepares every namespace for the link faults: an nftables table with input and output
/// chains, a `netdev` table on eth0's egress, and an htb qdisc with a fast default class and
/// two slow ones.
pub fn prepare(c: &Cluster) -> Result<(), String> {
    for h in &c.hosts.hosts {
        let ns = h.ns.as_str();
        in_ns(ns, &["nft", "add", "table", "ip", "rbed"])?;
        in_ns(
            ns,
            &[
                "nft",
                "add chain ip rbed input { type filter hook input priority 0; policy accept; }",
            ],
        )?;
        in_ns(
            ns,
            &[
                "nft",
                "add chain ip rbed output { type filter hook output priority 0; policy accept; }",
            ],
        )?;
        in_ns(ns, &["nft", "add", "table", "netdev", "rbdup"])?;
        in_ns(ns, &["nft", "add chain netdev rbdup egress { type filter hook egress device \"eth0\" priority 0; policy accept; }"])?;
        let tc = |args: &str| {
            let mut v = vec!["tc"];
            v.extend(args.split_whitespace());
            in_ns(ns, &v)
        };
        tc("qdisc add dev eth0 root handle 1: htb default 1")?;
        tc("class add dev eth0 parent 1: classid 1:1 htb rate 10gbit")?;
        // Slow: ~3 ms per full-size packet; slower: ~24 ms, so a link split between the two
        // delivers out of order, with a delay that varies with size and load (jitter).
        tc("class add dev eth0 parent 1: classid 1:2 htb rate 4mbit burst 1600")?;
        tc("class add dev eth0 parent 1: classid 1:3 htb rate 500kbit burst 1600")?;
        if c.hosts.netem {
            tc("qdisc add dev eth0 parent 1:2 handle 20: netem delay 20ms 10ms")?;
            tc("qdisc add dev eth0 parent 1:3 handle 30: netem delay 60ms 30ms")?;
        }
    }
    Ok(())
}

fn nft(c: &Cluster, node: usize, rule: &str) -> Result<(), String> {
    in_ns(&c.hosts.hosts[node].ns, &["nft", rule]).map(|_| ())
}

/// Applies `f`.
pub fn apply(c: &mut Cluster, f: &Fault) -> Result<(), String> {
    match f {
        Fault::Link {
            links,
            loss_pm,
            dup_pm,
            slower_pct,
        } => {
            for &(a, b) in links {
                for (from, to) in [(a, b), (b, a)] {
                    let ip = node_ip(to);
                    nft(c, from, &format!("add rule ip rbed output ip daddr {ip} numgen random mod 1000 < {loss_pm} drop"))?;
                    nft(
                        c,
                        from,
                        &format!("add rule ip rbed output ip daddr {ip} meta priority set 1:2"),
                    )?;
                    nft(c, from, &format!("add rule ip rbed output ip daddr {ip} numgen random mod 100 < {slower_pct} meta priority set 1:3"))?;
                    if *dup_pm > 0 {
                        nft(c, from, &format!("add rule netdev rbdup egress ip daddr {ip} numgen random mod 1000 < {dup_pm} dup to \"eth0\""))?;
                    }
                }
            }
        }
        Fault::Split { a, b, one_way, .. } => {
            let ips = |v: &[usize]| -> String {
                let s: Vec<String> = v.iter().map(|&i| node_ip(i).to_string()).collect();
                s.join(", ")
            };
            for &x in b {
                nft(
                    c,
                    x,
                    &format!("add rule ip rbed input ip saddr {{ {} }} drop", ips(a)),
                )?;
            }
            if !one_way {
                for &x in a {
                    nft(
                        c,
                        x,
                        &format!("add rule ip rbed input ip saddr {{ {} }} drop", ips(b)),
                    )?;
                }
            }
        }
        Fault::Kill(n) => c.kill(*n),
        Fault::Pause(n) => c.pause(*n, true),
    }
    Ok(())
}

/// Heals `f` (and, for the network, every rule in every namespace).
pub fn heal(c: &mut Cluster, f: &Fault) -> Result<(), String> {
    match f {
        Fault::Link { .. } | Fault::Split { .. } => heal_network(c),
        Fault::Kill(n) => c.launch(*n),
        Fault::Pause(n) => {
            c.pause(*n, false);
            Ok(())
        }
    }
}

/// Removes every nemesis rule in every namespace.
pub fn heal_network(c: &Cluster) -> Result<(), String> {
    for i in 0..c.nodes.len() {
        nft(c, i, "flush table ip rbed")?;
        nft(c, i, "flush table netdev rbdup")?;
    }
    Ok(())
}

/// How long the bed's nodes take to suspect a silent trigger owner: `suspect_after`, ten
/// sync intervals of 200 ms (`rasp::app`'s replication defaults).
pub const SUSPECT_AFTER_S: f64 = 2.0;

/// How many of `steps` could each elect one more trigger owner: splits, kills and pauses
/// that outlast [`SUSPECT_AFTER_S`] (see `history::check_workload`).
pub fn sides(steps: &[Step]) -> usize {
    steps
        .iter()
        .filter(|s| !matches!(s.fault, Fault::Link { .. }) && s.heal - s.at > SUSPECT_AFTER_S)
        .count()
}

/// What the nemesis did: per kind, how many faults.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// Faults applied, by kind.
    pub applied: std::collections::BTreeMap<&'static str, usize>,
    /// When the last heal happened.
    pub last_heal: Option<Instant>,
}

/// Runs `steps` against the cluster from `t0`, printing each action and its heal; `tick`
/// runs about every 100 ms while it waits. Each step is healed at its heal time, so
/// nothing is active when it returns.
pub fn run(
    c: &mut Cluster,
    steps: &[Step],
    t0: Instant,
    mut tick: impl FnMut(&Cluster),
) -> Result<Record, String> {
    let mut rec = Record::default();
    for s in steps {
        wait_until(t0, s.at, c, &mut tick);
        println!("nemesis +{:.2}s: {}", t0.elapsed().as_secs_f64(), s.fault);
        apply(c, &s.fault)?;
        *rec.applied.entry(s.fault.kind().name()).or_default() += 1;
        wait_until(t0, s.heal, c, &mut tick);
        heal(c, &s.fault)?;
        println!(
            "nemesis +{:.2}s: heal {}",
            t0.elapsed().as_secs_f64(),
            s.fault.kind().name()
        );
        rec.last_heal = Some(Instant::now());
    }
    Ok(rec)
}

fn wait_until(t0: Instant, at: f64, c: &Cluster, tick: &mut impl FnMut(&Cluster)) {
    loop {
        tick(c);
        let now = t0.elapsed().as_secs_f64();
        if now >= at {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs_f64((at - now).min(0.1)));
    }
}
