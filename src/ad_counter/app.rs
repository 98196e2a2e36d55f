//! The advertisement counter's application atom: one per node, embedding the node's
//! [`Replica`] of the [program](super::program).
//!
//! - **Servers** hold every variable and arm one trigger per ad ([`Replica::trigger`]: the
//!   smallest live armed server fires it, once in a connected cluster; when that server
//!   dies, another takes over; at most once per side of a partition, and the removal is
//!   idempotent, see [`program::remove_ad`]): when the ad's counter reaches the
//!   threshold, the ad is removed from its vendor set. The first server also adds the ads and
//!   their contracts at start.
//! - **Clients** hold `ads-with-contracts` and the counters. Every impression interval a client
//!   picks one of the ads it sees (its own seeded RNG) and increments that ad's counter, online
//!   or not; the replica ships the increments when it can.
//!
//! **The invariant.** A client never counts an impression for an ad whose removal it has
//! already received. A subscription to `ads-with-contracts` records every ad that disappears
//! from it; an impression about to be counted for such an ad (it would have to reappear: a
//! removal is final) is refused and counted as a violation ([`ClientLog::violations`]).

use super::program::{self, AdVars};
use rasp_dataflow::replica::{HasReplica, Replica, ReplicaConfig, SERVICE};
use rasp_dataflow::update::inc;
use rasp_dataflow::{Interest, Program};
use rasp_lattice::{ORSet, Threshold};
use rasp_membership::Role;
use rasp_runtime::{Atom, Ctx, Time};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// What one node of the application does.
#[derive(Clone, Debug)]
pub struct AppParams {
    /// Server or client.
    pub role: Role,
    /// Ads per vendor.
    pub ads_per_vendor: u32,
    /// Impressions after which an ad is removed.
    pub threshold: u64,
    /// Time between two impressions (clients).
    pub impression_interval: Duration,
    /// Replication settings (the interest is set from the role).
    pub replica: ReplicaConfig,
    /// Whether this node adds the ads and contracts at start (the first server).
    pub seed_data: bool,
    /// Clients also hold (without computing anything from them) the servers' sources and
    /// trigger sets, so that those travel between servers over a partial overlay
    /// (HyParView), where two servers are rarely neighbours. See
    /// [`program::relay_interest`].
    pub relay: bool,
}

/// A client's record of what it saw and did (shared with its subscription).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientLog {
    /// Ads visible in `ads-with-contracts` at the last change.
    pub visible: BTreeSet<String>,
    /// Ads whose removal this client received (they left `ads-with-contracts`).
    pub removed_seen: BTreeSet<String>,
    /// Impressions this client counted, per ad.
    pub impressions: BTreeMap<String, u64>,
    /// Impressions refused because the ad's removal had been received (must stay 0).
    pub violations: u64,
    /// Times an ad whose removal was received came back into view (must stay 0).
    pub resurrections: u64,
    /// When this client counted its last impression.
    pub last_impression: Option<Time>,
    /// Impressions counted while no neighbour was up (offline).
    pub offline_impressions: u64,
}

/// The application atom. Needs a membership atom on its node.
pub struct AdApp {
    params: AppParams,
    replica: Option<Replica>,
    vars: Option<AdVars>,
    log: Rc<RefCell<ClientLog>>,
    fired: Rc<RefCell<Vec<String>>>,
}

impl AdApp {
    /// An application atom with `params`.
    pub fn new(params: AppParams) -> Self {
        AdApp {
            params,
            replica: None,
            vars: None,
            log: Rc::default(),
            fired: Rc::default(),
        }
    }

    /// The node's role.
    pub fn role(&self) -> Role {
        self.params.role
    }

    /// The replica (`None` before init).
    pub fn replica_ref(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// The program (`None` before init).
    pub fn program(&self) -> Option<&Program> {
        self.replica.as_ref().map(Replica::program)
    }

    /// The client's log (empty on servers).
    pub fn log(&self) -> ClientLog {
        self.log.borrow().clone()
    }

    /// Visible ads, as of the last change of `ads-with-contracts`.
    pub fn visible(&self) -> BTreeSet<String> {
        self.log.borrow().visible.clone()
    }

    /// Impressions counted here, in total.
    pub fn own_impressions(&self) -> u64 {
        self.log.borrow().impressions.values().sum()
    }

    /// Ads whose removal trigger fired on this node, in firing order.
    pub fn fired(&self) -> Vec<String> {
        self.fired.borrow().clone()
    }

    /// The counter value of every ad as this node sees it.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        if let (Some(p), Some(vars)) = (self.program(), self.vars.as_ref()) {
            for ad in &vars.ads {
                if let Ok(v) = p.query(&program::views(ad)) {
                    out.insert(ad.clone(), v);
                }
            }
        }
        out
    }

    /// Ads still in the vendor sets (servers; `None` on clients).
    pub fn vendor_ads(&self) -> Option<BTreeSet<String>> {
        let p = self.program()?;
        let mut out = BTreeSet::new();
        for v in program::VENDORS {
            let var = rasp_dataflow::Var::<ORSet<String>>::named(&format!("ads/{v}"));
            out.extend(p.query(&var).ok()?);
        }
        Some(out)
    }

    fn impression(&mut self, ctx: &mut Ctx<Self>) {
        let Some(vars) = self.vars.clone() else {
            return;
        };
        let offline = self.replica().neighbours().is_empty();
        let (visible, len) = {
            let log = self.log.borrow();
            (log.visible.clone(), log.visible.len())
        };
        if len == 0 {
            return;
        }
        let k = (ctx.random_u64() % len as u64) as usize;
        let ad = visible.iter().nth(k).expect("k < len").clone();
        if self.log.borrow().removed_seen.contains(&ad) {
            self.log.borrow_mut().violations += 1;
            ctx.count("ad_counter.violations", 1);
            return;
        }
        let actor = ctx.node().0;
        let p = self.replica().program_mut();
        if let Err(e) = p.update(&program::views(&ad), inc(1), actor) {
            tracing::error!(ad = %ad, error = %e, "cannot count an impression");
            return;
        }
        let _ = vars;
        let mut log = self.log.borrow_mut();
        *log.impressions.entry(ad).or_insert(0) += 1;
        log.last_impression = Some(ctx.now());
        if offline {
            log.offline_impressions += 1;
        }
    }
}

impl HasReplica for AdApp {
    fn replica(&mut self) -> &mut Replica {
        self.replica
            .as_mut()
            .expect("handlers run only after init created the replica")
    }
}

impl Atom for AdApp {
    fn init(&mut self, ctx: &mut Ctx<Self>) {
        if let Err(e) = ctx.register(SERVICE) {
            tracing::error!(error = %e, "a dataflow atom already runs on this node");
            ctx.stop_self();
            return;
        }
        let node = ctx.node();
        let per_vendor = self.params.ads_per_vendor;
        let interest = match self.params.role {
            Role::Server => Interest::All,
            Role::Client if self.params.relay => program::relay_interest(per_vendor),
            Role::Client => program::client_interest(per_vendor),
        };
        let mut p = Program::with_interest(node.0, interest.clone());
        let vars = match program::build(&mut p, per_vendor) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the ad counter");
                ctx.stop_self();
                return;
            }
        };
        // Watch ads-with-contracts: what is visible, and what left it (a received removal).
        let log = self.log.clone();
        let watched = vars.clone();
        let sub = p.subscribe(&vars.ads_with_contracts, move |p, _| {
            let Ok(now) = program::visible_ads(p, &watched) else {
                return;
            };
            let mut log = log.borrow_mut();
            let gone: Vec<String> = log.visible.difference(&now).cloned().collect();
            let back = now.intersection(&log.removed_seen).count() as u64;
            log.resurrections += back;
            log.removed_seen.extend(gone);
            log.visible = now;
        });
        if let Err(e) = sub {
            tracing::error!(error = %e, "cannot watch ads-with-contracts");
        }
        let config = ReplicaConfig {
            interest,
            ..self.params.replica.clone()
        };
        self.replica = Some(Replica::new(node, config, p));
        Replica::install(self, ctx);
        self.vars = Some(vars.clone());
        match self.params.role {
            Role::Server => {
                if self.params.seed_data {
                    if let Err(e) = program::seed_ads(self.replica().program_mut(), &vars) {
                        tracing::error!(error = %e, "cannot add the ads");
                    }
                }
                let threshold = i64::try_from(self.params.threshold).unwrap_or(i64::MAX);
                for ad in &vars.ads {
                    let fired = self.fired.clone();
                    let name = ad.clone();
                    let armed = self.replica().trigger(
                        &format!("remove/{ad}"),
                        &program::views(ad),
                        Threshold::value(threshold),
                        move |p, _| {
                            if let Err(e) = program::remove_ad(p, &name) {
                                tracing::error!(ad = %name, error = %e, "cannot remove the ad");
                            }
                            fired.borrow_mut().push(name);
                        },
                    );
                    if let Err(e) = armed {
                        tracing::error!(ad = %ad, error = %e, "cannot arm the trigger");
                    }
                }
            }
            Role::Client => {
                // Start at a random phase so clients do not all count at the same instant.
                let every = self.params.impression_interval;
                let phase = ctx.random_u64() % every.as_nanos().max(1) as u64;
                ctx.after(Duration::from_nanos(phase), move |a: &mut AdApp, ctx| {
                    a.impression(ctx);
                    ctx.every(every, |a: &mut AdApp, ctx| a.impression(ctx));
                });
            }
        }
    }
}

/// What one node reports about itself (the real-process result line; the simulator reads the
/// same from the atoms).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node id.
    pub node: u64,
    /// `server` or `client`.
    pub role: String,
    /// Ads visible in `ads-with-contracts` here.
    pub visible: Vec<String>,
    /// Ads left in the vendor sets (servers).
    pub vendor_ads: Option<Vec<String>>,
    /// Counter values as seen here.
    pub counters: BTreeMap<String, u64>,
    /// Impressions counted here.
    pub impressions: u64,
    /// Invariant violations (must be 0).
    pub violations: u64,
    /// Removed ads that came back into view (must be 0).
    pub resurrections: u64,
    /// Triggers that fired here.
    pub fired: Vec<String>,
    /// Current replication neighbours.
    pub neighbours: usize,
}

impl AdApp {
    /// This node's report.
    pub fn report(&self, node: u64) -> NodeReport {
        let log = self.log.borrow();
        NodeReport {
            node,
            role: match self.params.role {
                Role::Server => "server".into(),
                Role::Client => "client".into(),
            },
            visible: log.visible.iter().cloned().collect(),
            vendor_ads: match self.params.role {
                Role::Server => self.vendor_ads().map(|s| s.into_iter().collect()),
                Role::Client => None,
            },
            counters: self.counters(),
            impressions: log.impressions.values().sum(),
            violations: log.violations,
            resurrections: log.resurrections,
            fired: self.fired.borrow().clone(),
            neighbours: self.replica.as_ref().map_or(0, |r| r.neighbours().len()),
        }
    }
}
