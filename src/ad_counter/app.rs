//! The advertisement counter as an [`App`]: [`AdCounter`], run by `rasp ad-counter` in the
//! simulator and across real processes, and by `rasp ad-counter sim|node` like any app.
//!
//! - **Servers** hold every variable and arm one trigger per ad ([`NodeCtx::trigger_once`]: the
//!   smallest live armed server fires it, once in a connected cluster; when that server
//!   dies, another takes over; at most once per side of a partition, and the removal is
//!   idempotent, see [`program::remove_ad`]): when the ad's counter reaches the
//!   threshold, the ad is removed from its vendor set. The server of index 0 also adds the
//!   ads and their contracts when it first starts (not again after a restart that finds the
//!   contracts in its store: adding a removed ad again would bring it back).
//! - **Clients** hold `ads-with-contracts` and the counters (and, under HyParView, relay the
//!   servers' sources and trigger sets: [`program::relay_interest`]). Every impression
//!   interval a client picks one of the ads it sees (its node's seeded RNG) and increments
//!   that ad's counter, online or not; the replica ships the increments when it can.
//!
//! A node's role is its app role ([`NodeMeta::role`]): `--role` on a real node, the first
//! `--servers` nodes in the simulator, in every membership mode.
//!
//! **The invariant.** A client never counts an impression for an ad whose removal it has
//! already received. A subscription to `ads-with-contracts` records every ad that disappears
//! from it; an impression about to be counted for such an ad (it would have to reappear: a
//! removal is final) is refused and counted as a violation ([`ClientLog::violations`]).
//! [`App::invariants`] states it for the tools: no violation and no resurrection on any node.
//!
//! **Exact mode** (`exact`, `--exact`; beyond Lasp). Each ad's counter is a bounded counter
//! `rights/<ad>` ([`rasp_lattice::BCounter`]: Balegas et al., "Extending Eventually Consistent
//! Cloud Databases for Enforcing Numeric Invariants", SRDS 2015, §3) instead of `views/<ad>`:
//! - the seeding server grants itself `threshold` rights per ad ([`program::seed_ads`]);
//! - a client uses one right per impression while it holds one, online or offline; without
//!   one the impression is refused and counted ([`ClientLog::refused_no_rights`]);
//! - a client short of rights (below [`AdCounter::low_water`]) sends a [`RightsRequest`] to
//!   the node its copy of the counter shows holding the most rights (a server at first,
//!   another client later); the asked node transfers up to [`AdCounter::batch`] of its own
//!   rights (a server all it is asked, a client at most half of what it holds). A client sends
//!   at most one request per impression interval, and asks again for the same ad only after
//!   [`REQUEST_RETRY`], so an answer lost to loss or a partition is retried, without a storm;
//! - the trigger fires when the rights used reach `threshold` (so every right was used), and
//!   whoever holds rights of a removed ad withdraws them (`withdraw_all`) when it sees the
//!   removal.
//!
//! The total used never passes the rights granted (the bounded counter's invariant), so the
//! overcount is 0 by construction; the price is the refused impressions and the request
//! traffic, both in the [`super::Summary`]. A request goes to a node id: in the simulator any
//! node is reachable; on real processes the asked node must be dialable (full and
//! client-server membership; under HyParView a client reaches the servers it has addresses
//! for).

use super::program::{self, AdVars};
use crate::app::{App, AppAtom, Invariant, NodeCtx, NodeMeta};
use clap::Args;
use rasp_dataflow::json::JsonTypes;
use rasp_dataflow::update::{consume, inc, transfer, withdraw_all};
use rasp_dataflow::{Error, Interest, Program, Var};
use rasp_lattice::{BCounter, ORSet, Threshold};
use rasp_membership::{Mode, Role};
use rasp_runtime::{Message, NodeId, Origin, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The app's own flags (`rasp ad-counter sim|node`).
#[derive(Clone, Debug, Args)]
pub struct AdArgs {
    /// Ads per vendor (two vendors)
    #[arg(
        long,
        env = "RASP_ADS_PER_VENDOR",
        value_name = "N",
        default_value_t = 10
    )]
    pub ads_per_vendor: u32,
    /// Impressions after which an ad is removed
    #[arg(long, env = "RASP_THRESHOLD", value_name = "N", default_value_t = 2000)]
    pub threshold: u64,
    /// Milliseconds between two impressions of a client
    #[arg(
        long,
        env = "RASP_IMPRESSION_INTERVAL_MS",
        value_name = "MS",
        default_value_t = 1000
    )]
    pub impression_interval_ms: u64,
    /// Real nodes: print `ad=<json>` (the node's report and traffic) on stdout every MS
    /// milliseconds (`rasp ad-counter --processes` reads it; the simulator reads the atoms)
    #[arg(long, value_name = "MS")]
    pub report_ms: Option<u64>,
    /// Exact mode: each ad's impressions are bounded-counter rights shared among the clients
    /// (0 overcount; impressions without a right are refused)
    #[arg(long)]
    pub exact: bool,
}

/// How long a client waits for an answer to a [`RightsRequest`] before asking again for the
/// same ad.
pub const REQUEST_RETRY: Duration = Duration::from_secs(3);

/// A client's request for rights on an ad's bounded counter (exact mode, see the module
/// docs): "transfer up to `want` of your rights on `rights/<ad>` to actor `to`".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightsRequest {
    /// The ad.
    pub ad: String,
    /// The actor (node id) to transfer to.
    pub to: u64,
    /// Rights wanted (the asked node gives at most [`AdCounter::batch`]).
    pub want: u64,
}
impl Message for RightsRequest {
    const KIND: &'static str = "ad-counter/rights-request";
}

/// The advertisement counter (see the module docs). The value configures every node; each
/// node's copy keeps what that node saw and did ([`AdCounter::log`], [`AdCounter::fired`]).
#[derive(Clone, Debug)]
pub struct AdCounter {
    /// Ads per vendor.
    pub ads_per_vendor: u32,
    /// Impressions after which an ad is removed.
    pub threshold: u64,
    /// Time between two impressions of a client.
    pub impression_interval: Duration,
    /// Exact mode: bounded-counter rights instead of grow-only counters (module docs).
    pub exact: bool,
    /// The bug zoo only (`tests/zoo/`): the client keeps showing and counting ads from the
    /// list it had, removed ones included, instead of refusing an ad whose removal it saw:
    /// the client bug the ad counter's invariant exists for (Meiklejohn, Van Roy, "Lasp",
    /// PPDP 2015, §6: a client must stop displaying an ad once it learns of its removal).
    /// Off by default, and off is the client as it is.
    #[doc(hidden)]
    pub keeps_counting_removed: bool,
    /// This node's record; replaced by a fresh one at every start, so nodes never share it.
    /// Behind a mutex because the subscription that fills it lives in the program.
    node: Arc<Mutex<NodeRecord>>,
}

impl Default for AdCounter {
    fn default() -> Self {
        AdCounter::new(10, 2000, Duration::from_secs(1))
    }
}

#[derive(Debug, Default)]
struct NodeRecord {
    log: ClientLog,
    fired: Vec<String>,
    /// A client's pending impression timer (the first, at a random phase, then the
    /// periodic one), cancelled when the run goes quiet ([`App::on_quiet`]).
    impressions: Option<rasp_runtime::TimerId>,
}

/// A client's record of what it saw and did.
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
    /// Exact mode: impressions refused because this client held no right on the ad.
    #[serde(default)]
    pub refused_no_rights: u64,
    /// Exact mode: rights requests this client sent.
    #[serde(default)]
    pub rights_requests: u64,
    /// Exact mode: rights this node transferred to others on request.
    #[serde(default)]
    pub rights_given: u64,
    /// Exact mode: rights this node withdrew from removed ads.
    #[serde(default)]
    pub rights_withdrawn: u64,
    /// Exact mode: when this client last asked for rights on each ad.
    #[serde(skip)]
    pub asked: BTreeMap<String, Time>,
}

impl AdCounter {
    /// The app with `ads_per_vendor` ads per vendor, removed at `threshold` impressions, and
    /// a client impression every `impression_interval`.
    pub fn new(ads_per_vendor: u32, threshold: u64, impression_interval: Duration) -> Self {
        AdCounter {
            ads_per_vendor,
            threshold,
            impression_interval,
            exact: false,
            keeps_counting_removed: false,
            node: Arc::default(),
        }
    }

    /// The same app in exact mode (see the module docs).
    pub fn exact(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }

    /// Exact mode: rights a node gives per request (1% of the threshold, at least 1).
    pub fn batch(&self) -> u64 {
        (self.threshold / 100).max(1)
    }

    /// Exact mode: a client holding fewer rights than this on an ad asks for more (half a
    /// batch, at least 1).
    pub fn low_water(&self) -> u64 {
        (self.batch() / 2).max(1)
    }

    fn record(&self) -> MutexGuard<'_, NodeRecord> {
        // A panic while the lock is held leaves a record that is still consistent field by
        // field: keep reading it.
        self.node.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handles on the program's variables.
    pub fn vars(&self) -> AdVars {
        AdVars::of(self.ads_per_vendor)
    }

    /// This node's log (empty on servers).
    pub fn log(&self) -> ClientLog {
        self.record().log.clone()
    }

    /// Visible ads, as of the last change of `ads-with-contracts`.
    pub fn visible(&self) -> BTreeSet<String> {
        self.record().log.visible.clone()
    }

    /// Impressions counted here, in total.
    pub fn own_impressions(&self) -> u64 {
        self.record().log.impressions.values().sum()
    }

    /// Ads whose removal trigger fired on this node, in firing order.
    pub fn fired(&self) -> Vec<String> {
        self.record().fired.clone()
    }

    fn watch(&self, p: &mut Program) -> Result<(), Error> {
        let vars = self.vars();
        // What a restarted node reloaded from its store is visible from the start.
        let now = program::visible_ads(p, &vars)?;
        self.record().log.visible = now;
        let node = self.node.clone();
        p.subscribe(&vars.ads_with_contracts.clone(), move |p, _| {
            let Ok(now) = program::visible_ads(p, &vars) else {
                return;
            };
            let mut r = node.lock().unwrap_or_else(|e| e.into_inner());
            let log = &mut r.log;
            let gone: Vec<String> = log.visible.difference(&now).cloned().collect();
            let back = now.intersection(&log.removed_seen).count() as u64;
            log.resurrections += back;
            log.removed_seen.extend(gone);
            log.visible = now;
        })
        .map(|_| ())
    }

    fn serve(&mut self, node: &mut NodeCtx<'_, Self>) {
        let vars = self.vars();
        let seeded = node.query(&vars.contracts).is_ok_and(|c| !c.is_empty());
        if node.index() == Some(0) && !seeded {
            let rights = self.exact.then_some(self.threshold);
            if let Err(e) = program::seed_ads(node.program_mut(), &vars, rights) {
                tracing::error!(error = %e, "cannot add the ads");
            }
        }
        let threshold = i64::try_from(self.threshold).unwrap_or(i64::MAX);
        if self.exact {
            self.serve_exact(node, &vars);
            return;
        }
        for ad in &vars.ads {
            let record = self.node.clone();
            let name = ad.clone();
            let armed = node.trigger_once(
                &format!("remove/{ad}"),
                &program::views(ad),
                Threshold::value(threshold),
                move |p, _| {
                    if let Err(e) = program::remove_ad(p, &name) {
                        tracing::error!(ad = %name, error = %e, "cannot remove the ad");
                    }
                    tracing::info!(ad = %name, "threshold reached: ad removed");
                    record
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .fired
                        .push(name);
                },
            );
            if let Err(e) = armed {
                tracing::error!(ad = %ad, error = %e, "cannot arm the trigger");
            }
        }
    }

    /// Exact mode on a server: a trigger per ad on the rights used, the request handler, and
    /// the withdrawal of removed ads' rights every second.
    fn serve_exact(&mut self, node: &mut NodeCtx<'_, Self>, vars: &AdVars) {
        for ad in &vars.ads {
            let record = self.node.clone();
            let name = ad.clone();
            let armed = node.trigger_once(
                &format!("remove/{ad}"),
                &program::rights(ad),
                Threshold::value(i64::try_from(self.threshold).unwrap_or(i64::MAX)),
                move |p, _| {
                    if let Err(e) = program::remove_ad(p, &name) {
                        tracing::error!(ad = %name, error = %e, "cannot remove the ad");
                    }
                    tracing::info!(ad = %name, "every right used: ad removed");
                    record
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .fired
                        .push(name);
                },
            );
            if let Err(e) = armed {
                tracing::error!(ad = %ad, error = %e, "cannot arm the trigger");
            }
        }
        node.every(Duration::from_secs(1), |a, n| {
            let Some(left) = vendor_ads(n.program()) else {
                return;
            };
            let contracts = n.query(&a.vars().contracts).unwrap_or_default();
            let removed: Vec<String> = contracts
                .into_iter()
                .filter(|ad| !left.contains(ad))
                .collect();
            a.withdraw_removed(n, removed);
        });
    }

    /// Exact mode: withdraws this node's rights on every ad of `removed` (ads it saw removed).
    fn withdraw_removed(&mut self, node: &mut NodeCtx<'_, Self>, removed: Vec<String>) {
        let me = node.id().0;
        for ad in removed {
            let held = node
                .query(&program::rights(&ad))
                .ok()
                .map_or(0, |_| rights_of(node, &ad, me));
            if held == 0 {
                continue;
            }
            match node.update(&program::rights(&ad), withdraw_all()) {
                Ok(_) => self.record().log.rights_withdrawn += held,
                Err(e) => tracing::error!(ad = %ad, error = %e, "cannot withdraw the rights"),
            }
        }
    }

    /// Exact mode: answers a [`RightsRequest`] with a transfer of part of this node's rights.
    /// A request for an unknown or removed ad, or to this node itself, changes nothing.
    fn answer(&mut self, node: &mut NodeCtx<'_, Self>, req: RightsRequest) {
        let me = node.id().0;
        if req.to == me || req.want == 0 || !self.vars().ads.contains(&req.ad) {
            return;
        }
        if self.record().log.removed_seen.contains(&req.ad) {
            return;
        }
        let held = rights_of(node, &req.ad, me);
        let spare = match node.role() {
            Role::Server => held,
            Role::Client => held / 2,
        };
        let give = spare.min(req.want).min(self.batch());
        if give == 0 {
            return;
        }
        match node.update(&program::rights(&req.ad), transfer(req.to, give)) {
            Ok(_) => self.record().log.rights_given += give,
            Err(e) => tracing::debug!(ad = %req.ad, error = %e, "cannot transfer rights"),
        }
    }

    /// Exact mode: asks for rights on one ad this client is short of (`first`, the ad it just
    /// picked, else the visible ad it holds fewest rights on), at most one request per call
    /// and per ad per [`REQUEST_RETRY`].
    fn ask_for_rights(&mut self, node: &mut NodeCtx<'_, Self>, first: Option<&str>) {
        let me = node.id().0;
        let now = node.now();
        let low = self.low_water();
        let candidates: Vec<String> = {
            let r = self.record();
            let due = |ad: &String| {
                r.log
                    .asked
                    .get(ad)
                    .is_none_or(|t| now.0.saturating_sub(t.0) >= REQUEST_RETRY.as_nanos() as u64)
            };
            let mut v: Vec<String> = first.map(str::to_string).into_iter().collect();
            v.extend(r.log.visible.iter().cloned());
            v.into_iter()
                .filter(|ad| !r.log.removed_seen.contains(ad) && due(ad))
                .collect()
        };
        let mut best: Option<(String, u64)> = None;
        for (i, ad) in candidates.iter().enumerate() {
            let held = rights_of(node, ad, me);
            if held >= low {
                continue;
            }
            if i == 0 && first.is_some() {
                best = Some((ad.clone(), held));
                break;
            }
            if best.as_ref().is_none_or(|(_, h)| held < *h) {
                best = Some((ad.clone(), held));
            }
        }
        let Some((ad, _)) = best else {
            return;
        };
        let Ok(state) = node.program().state(&program::rights(&ad)) else {
            return;
        };
        let Some(holder) = richest(state, me) else {
            return;
        };
        let want = self.batch();
        node.send(
            NodeId(holder),
            RightsRequest {
                ad: ad.clone(),
                to: me,
                want,
            },
        );
        node.count("ad_counter.rights_requests", 1);
        let mut r = self.record();
        r.log.rights_requests += 1;
        r.log.asked.insert(ad, now);
    }

    fn impression(&mut self, node: &mut NodeCtx<'_, Self>) {
        let offline = node.neighbours().is_empty();
        let ad = {
            let mut r = self.record();
            // The bug zoo's client shows the ads it ever had, removed ones included.
            let shown: Vec<&String> = if self.keeps_counting_removed {
                r.log.visible.union(&r.log.removed_seen).collect()
            } else {
                r.log.visible.iter().collect()
            };
            let len = shown.len();
            if len == 0 {
                return;
            }
            let k = (node.random_u64() % len as u64) as usize;
            let ad = shown[k].clone();
            if r.log.removed_seen.contains(&ad) {
                r.log.violations += 1;
                node.count("ad_counter.violations", 1);
                if !self.keeps_counting_removed {
                    return;
                }
            }
            ad
        };
        self.count_impression(node, ad, offline);
    }

    /// Counts one impression of `ad` here (a use of a right in exact mode).
    fn count_impression(&mut self, node: &mut NodeCtx<'_, Self>, ad: String, offline: bool) {
        // Not under the lock: an update runs the program's subscriptions.
        if self.exact {
            let removed: Vec<String> = self.record().log.removed_seen.iter().cloned().collect();
            self.withdraw_removed(node, removed);
            let used = node.update(&program::rights(&ad), consume(1));
            if used.is_err() {
                self.record().log.refused_no_rights += 1;
                node.count("ad_counter.refused_no_rights", 1);
                self.ask_for_rights(node, Some(&ad));
                return;
            }
            self.ask_for_rights(node, Some(&ad));
        } else if let Err(e) = node.update(&program::views(&ad), inc(1)) {
            tracing::error!(ad = %ad, error = %e, "cannot count an impression");
            return;
        }
        let now = node.now();
        let mut r = self.record();
        *r.log.impressions.entry(ad).or_insert(0) += 1;
        r.log.last_impression = Some(now);
        if offline {
            r.log.offline_impressions += 1;
        }
    }
}

impl App for AdCounter {
    type Args = AdArgs;

    fn configure(&mut self, args: &AdArgs) -> Result<(), String> {
        if args.ads_per_vendor == 0 {
            return Err("--ads-per-vendor must be at least 1".into());
        }
        if args.threshold == 0 {
            return Err("--threshold must be at least 1".into());
        }
        if args.impression_interval_ms == 0 {
            return Err("--impression-interval-ms must be at least 1".into());
        }
        if args.report_ms == Some(0) {
            return Err("--report-ms must be at least 1".into());
        }
        self.ads_per_vendor = args.ads_per_vendor;
        self.threshold = args.threshold;
        self.impression_interval = Duration::from_millis(args.impression_interval_ms);
        self.exact = args.exact;
        Ok(())
    }

    fn program(&self, p: &mut Program) -> Result<(), Error> {
        program::build(p, self.ads_per_vendor, self.exact).map(|_| ())
    }

    fn interest(&self, node: &NodeMeta) -> Interest {
        match (node.role, node.membership) {
            (Role::Server, _) => Interest::All,
            (Role::Client, Mode::HyParView) => {
                program::relay_interest(self.ads_per_vendor, self.exact)
            }
            (Role::Client, _) => program::client_interest(self.ads_per_vendor, self.exact),
        }
    }

    fn json_types(&self) -> JsonTypes {
        let mut t = JsonTypes::standard();
        t.register_read_only::<rasp_dataflow::causal::DSet<(String, String)>>(
            "dset<(string,string)>",
        );
        t
    }

    fn start(&mut self, node: &mut NodeCtx<'_, Self>) {
        self.node = Arc::default();
        if let Err(e) = self.watch(node.program_mut()) {
            tracing::error!(error = %e, "cannot watch ads-with-contracts");
        }
        if self.exact {
            node.on::<RightsRequest>(|a, n, _: &Origin, req| a.answer(n, req));
        }
        match node.role() {
            Role::Server => self.serve(node),
            Role::Client => {
                // Start at a random phase so clients do not all count at the same instant.
                let every = self.impression_interval;
                let phase = node.random_u64() % every.as_nanos().max(1) as u64;
                let first = node.after(Duration::from_nanos(phase), move |a, n| {
                    a.impression(n);
                    let next = n.every(every, |a, n| a.impression(n));
                    a.record().impressions = Some(next);
                });
                self.record().impressions = Some(first);
            }
        }
    }

    /// Workload operations, for a hand-made branch of the studio or a plan file: `view AD`
    /// on a client shows the ad once (an impression, counted as the client's own timer counts
    /// one; an ad not in view is not shown), `remove AD` on a server removes the ad from its
    /// vendor's set (what the threshold trigger does).
    fn check_op(&self, op: &str) -> Result<(), String> {
        let ads = program::ad_names(self.ads_per_vendor);
        match op.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["view" | "remove", ad] if ads.iter().any(|a| a == ad) => Ok(()),
            ["view" | "remove", ad] => Err(format!("no ad {ad}: the ads are {}", ads.join(", "))),
            _ => Err(format!(
                "unknown operation {op:?}: the ad counter takes `view AD` (a client shows \
                 the ad once) and `remove AD` (a server removes it), e.g. `view {}`",
                ads[0]
            )),
        }
    }

    fn on_work(&mut self, node: &mut NodeCtx<'_, Self>, op: &str) {
        if let Err(e) = self.check_op(op) {
            tracing::warn!(op, error = %e, "workload operation refused");
            return;
        }
        let Some((verb, ad)) = op.trim().split_once(char::is_whitespace) else {
            return;
        };
        let ad = ad.trim().to_string();
        match (verb, node.role()) {
            ("view", Role::Client) => {
                let seen = {
                    let mut r = self.record();
                    if r.log.removed_seen.contains(&ad) {
                        r.log.violations += 1;
                        None
                    } else {
                        Some(r.log.visible.contains(&ad))
                    }
                };
                match seen {
                    Some(true) => {
                        let offline = node.neighbours().is_empty();
                        self.count_impression(node, ad, offline);
                    }
                    Some(false) => tracing::info!(ad, "not in view here: not shown"),
                    None => node.count("ad_counter.violations", 1),
                }
            }
            ("remove", Role::Server) => {
                if let Err(e) = program::remove_ad(node.program_mut(), &ad) {
                    tracing::error!(ad, error = %e, "cannot remove the ad");
                }
            }
            (verb, role) => {
                tracing::warn!(op, ?role, "`{verb}` is not an operation of this role");
            }
        }
    }

    /// A client counts an impression every interval for as long as it sees an ad: with a
    /// threshold not yet reached, the counters never stop growing, and replicas compared
    /// while clients count differ by the impressions of the last sync interval.
    fn self_driven(&self) -> bool {
        true
    }

    /// The run went quiet: a client stops counting impressions (the convergence of the
    /// counters after quiescence, Meiklejohn, Van Roy, "Lasp", PPDP 2015, §3, is checked
    /// once the last impression has been counted, as the ad counter's own simulation
    /// measures it: "convergence after last impression", README).
    fn on_quiet(&mut self, node: &mut NodeCtx<'_, Self>) {
        let timer = self.record().impressions.take();
        if let Some(t) = timer {
            node.cancel(t);
        }
    }

    fn invariants(&self) -> Vec<Invariant> {
        vec![
            Invariant::each("no impression for a removed ad", |n| {
                match n.app::<AdCounter>().map(|a| a.record().log.violations) {
                    Some(0) | None => Ok(()),
                    Some(v) => Err(format!("{v} impressions for ads whose removal it saw")),
                }
            }),
            Invariant::each("a removed ad stays removed", |n| {
                match n.app::<AdCounter>().map(|a| a.record().log.resurrections) {
                    Some(0) | None => Ok(()),
                    Some(v) => Err(format!("{v} removed ads came back into view")),
                }
            }),
        ]
    }
}

/// The rights `actor` holds on `ad`'s bounded counter as this node sees them (0 if the
/// counter is not held here).
fn rights_of(node: &NodeCtx<'_, AdCounter>, ad: &str, actor: u64) -> u64 {
    node.program()
        .state(&program::rights(ad))
        .map_or(0, |s| s.rights(actor))
}

/// The actor other than `me` that `state` shows holding the most rights (the smallest id on
/// a tie), if any holds one.
fn richest(state: &BCounter, me: u64) -> Option<u64> {
    let (granted, _, _, transfers) = state.parts();
    let actors: BTreeSet<u64> = granted
        .counts()
        .keys()
        .copied()
        .chain(transfers.keys().map(|&(_, to)| to))
        .filter(|&a| a != me)
        .collect();
    actors
        .into_iter()
        .map(|a| (state.rights(a), a))
        .filter(|&(r, _)| r > 0)
        .max_by_key(|&(r, a)| (r, std::cmp::Reverse(a)))
        .map(|(_, a)| a)
}

/// The counter value of every ad as `p` sees it (the rights used, in exact mode).
pub fn counters(p: &Program, per_vendor: u32) -> BTreeMap<String, u64> {
    program::ad_names(per_vendor)
        .into_iter()
        .filter_map(|ad| {
            let v = match p.query(&program::views(&ad)) {
                Ok(v) => v,
                Err(_) => p.query(&program::rights(&ad)).ok()?,
            };
            Some((ad, v))
        })
        .collect()
}

/// Ads still in the vendor sets as `p` sees them (`None` where the vendor sets are not held:
/// a client).
pub fn vendor_ads(p: &Program) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for v in program::VENDORS {
        let var = Var::<ORSet<String>>::named(&format!("ads/{v}"));
        out.extend(p.query(&var).ok()?);
    }
    Some(out)
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
    /// Exact mode: impressions refused for lack of rights here.
    #[serde(default)]
    pub refused_no_rights: u64,
    /// Exact mode: rights requests sent from here.
    #[serde(default)]
    pub rights_requests: u64,
}

/// The report of the node whose app atom is `atom` and whose id is `node`.
pub fn report(atom: &AppAtom<AdCounter>, node: u64) -> NodeReport {
    let app = atom.app();
    let role = atom.meta().role;
    let log = app.log();
    let program = atom.program();
    NodeReport {
        node,
        role: match role {
            Role::Server => "server".into(),
            Role::Client => "client".into(),
        },
        visible: log.visible.iter().cloned().collect(),
        vendor_ads: match role {
            Role::Server => program
                .and_then(vendor_ads)
                .map(|s| s.into_iter().collect()),
            Role::Client => None,
        },
        counters: program.map_or_else(BTreeMap::new, |p| counters(p, app.ads_per_vendor)),
        impressions: log.impressions.values().sum(),
        violations: log.violations,
        resurrections: log.resurrections,
        fired: app.fired(),
        neighbours: atom.replica_ref().map_or(0, |r| r.neighbours().len()),
        refused_no_rights: log.refused_no_rights,
        rights_requests: log.rights_requests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::sim::{run, SimArgs};
    use crate::app::NodeView;
    use rasp_runtime::NodeId;

    fn small() -> AdCounter {
        AdCounter::new(2, 20, Duration::from_millis(100))
    }

    #[test]
    fn the_invariants_see_each_nodes_log() {
        let app = small();
        let p = Program::new(0);
        let view = |a: &AdCounter| {
            let r = Invariant::check;
            let v = [NodeView {
                index: 3,
                id: NodeId(3),
                role: Role::Client,
                program: &p,
                app: a,
                boot: 1,
                started: rasp_runtime::Time::ZERO,
                membership: None,
            }];
            app.invariants()
                .iter()
                .map(|i| r(i, &v))
                .collect::<Vec<_>>()
        };
        assert!(view(&app).iter().all(Result::is_ok));
        app.record().log.violations = 2;
        let out = view(&app);
        assert_eq!(
            out[0].as_ref().unwrap_err(),
            "node 3: 2 impressions for ads whose removal it saw"
        );
        assert!(out[1].is_ok());
        app.record().log.resurrections = 1;
        assert!(view(&app)[1].as_ref().unwrap_err().contains("came back"));
    }

    /// `sim` tells the self-driven clients when the run goes quiet (`--active-s`, 10 s before
    /// the end by default), so a run whose ads are never all removed converges after their
    /// last impression; with the clients counting to the end, it cannot.
    #[test]
    fn sim_runs_converge_once_the_clients_stop_counting() {
        let args = SimArgs {
            nodes: 4,
            membership: Mode::ClientServer,
            duration_s: 20.0,
            check_every: 25,
            ..SimArgs::default()
        };
        let app = || AdCounter::new(5, 2000, Duration::from_millis(100));
        let r = run(app(), &args).unwrap();
        assert!(r.converged, "{}", r.text());
        assert!(r.converged_at_s.unwrap() > 10.0, "{}", r.text());
        let busy = SimArgs {
            active_s: Some(20.0),
            ..args
        };
        let r = run(app(), &busy).unwrap();
        assert!(!r.converged, "{}", r.text());
    }

    /// Node 0 seeds the ads once: after a crash and a restart from its store (once every ad
    /// is removed) it does not add them again, which would bring them back.
    #[test]
    fn a_restarted_seed_node_does_not_add_the_ads_again() {
        let args = SimArgs {
            nodes: 5,
            servers: Some(2),
            membership: Mode::Full,
            duration_s: 60.0,
            crash: vec!["0@40".parse().unwrap()],
            restart: vec!["0@42".parse().unwrap()],
            check_every: 25,
            ..SimArgs::default()
        };
        let r = run(small(), &args).unwrap();
        assert!(r.converged, "{}", r.text());
        for (i, vars) in &r.values {
            assert_eq!(vars["ads-with-contracts"], "{}", "node {i}: {}", r.text());
        }
        assert_eq!(r.values[&0]["ads/rovio"], "{}", "{}", r.text());
        assert_eq!(
            r.values[&0]["contracts"],
            r#"{"riot/0", "riot/1", "rovio/0", "rovio/1"}"#
        );
    }
    /// The fuzzer's settings of the client-server run that never converged: one server and
    /// three clients, one ad per vendor, faults within 3 s, 5 s to settle.
    fn client_server_fuzz(runs: u64) -> crate::app::fuzz::FuzzArgs {
        crate::app::fuzz::FuzzArgs {
            runs,
            seed: 1,
            threads: Some(1),
            nodes: 4,
            servers: Some(1),
            membership: Mode::ClientServer,
            horizon_s: 3.0,
            settle_s: 5.0,
            ..crate::app::fuzz::FuzzArgs::default()
        }
    }

    /// Seed 1, run 0 of `rasp ad-counter fuzz --seed 1 --nodes 4 --servers 1 --membership
    /// client-server --horizon-s 3 --settle-s 5 --ads-per-vendor 1 --threshold 20`: a
    /// partition and a crash with a wiped store, quiet at 4.6 s (the heal, after the 3 s
    /// horizon the clients count for at least). Clients counted an
    /// impression every second to the end, so the counters differed at every sample (by the
    /// impressions of the last sync interval) and convergence failed at 9.6 s although every
    /// delta reached the server. Told that the run went quiet, the clients stop counting:
    /// the counters stop changing within two sync rounds of the quiet time (a client's last
    /// increment reaches the server, then every other client) and the replicas converge.
    #[test]
    fn clients_stop_counting_when_the_run_goes_quiet_and_the_counters_converge() {
        use crate::app::fuzz::run_seed;
        use crate::app::plan::{execute, Collect, Plan};
        let app = AdCounter::new(1, 20, Duration::from_secs(1));
        let space = client_server_fuzz(1).space().unwrap();
        let plan = Plan::generate(&app, &space, run_seed(1, 0));
        assert_eq!(plan.active_until, Duration::from_secs(3));
        assert_eq!(plan.quiet(), Duration::from_millis(4_598), "{plan:?}");
        let collect = Collect {
            log: true,
            ..Collect::default()
        };
        let out = execute(&app, &plan, collect, None).unwrap();
        assert!(out.violation.is_none(), "{:?}", out.violation);
        let log = out.log.unwrap();
        let at = |i: u64| log.events[i as usize - 1].t;
        let counters: Vec<(Time, u32, &str)> = log
            .vars
            .iter()
            .filter(|(_, _, id, _)| id.starts_with("views/"))
            .map(|(i, n, id, _)| (at(*i), *n, id.as_str()))
            .collect();
        let quiet = Time(plan.quiet().as_nanos() as u64);
        // Clients counted after the faults (a partition, a crash) and before the quiet time.
        assert!(counters
            .iter()
            .any(|(t, n, _)| *n != 0 && *t > Time(4_000_000_000)));
        let last = counters.iter().map(|c| c.0).max().unwrap();
        let two_rounds = Time(quiet.0 + 2 * plan.sync_interval.as_nanos() as u64 + 200_000_000);
        assert!(last > quiet && last < two_rounds, "last change at {last:?}");
        // Every node was told, once.
        let told = log
            .events
            .iter()
            .filter(|e| e.label == crate::app::plan::QUIET_LABEL)
            .map(|e| (e.t, e.node))
            .collect::<Vec<_>>();
        assert_eq!(told, (0..4).map(|n| (quiet, Some(n))).collect::<Vec<_>>());
        let end = log.state_at(log.events.len() as u64);
        assert!(end.diverged.is_empty(), "{:?}", end.diverged);
        assert_eq!(
            end.nodes[0].vars["views/riot/0"],
            end.nodes[2].vars["views/riot/0"]
        );
    }

    /// More runs of the same setting, partitions, crashes, pauses, loss and duplication
    /// drawn per run: every one converges once the clients stop counting.
    #[test]
    fn client_server_runs_converge_after_quiescence() {
        let app = AdCounter::new(1, 20, Duration::from_secs(1));
        let report = crate::app::fuzz::fuzz(&app, &client_server_fuzz(40)).unwrap();
        assert_eq!(report.runs, 40);
        if let Some((i, _, v)) = report.failure {
            panic!("run {i}: {} {}", v.invariant, v.message);
        }
    }
}
