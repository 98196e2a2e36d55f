//! Full membership and client-server membership (Partisan's two simple modes, talk slides
//! 111–118), sans-IO.
//!
//! Every node holds the member list, a CRDT ([`Members`]) spread by periodic push-pull gossip,
//! and heartbeats the members it should be connected to; a member silent for
//! [`Config::failure_timeout`] is no longer a neighbour (locally: it comes back with its next
//! heartbeat), and one silent for [`Config::remove_after`] is marked removed in the CRDT (a
//! falsely removed node refutes by raising its incarnation, as in SWIM: Das, Gupta, Motivala,
//! "SWIM: Scalable Weakly-consistent Infection-style Process Group Membership Protocol", DSN
//! 2002, §4.2).
//!
//! Two guards keep a false removal from splitting the cluster for good:
//!
//! - **Own absence is not others' silence.** A heartbeat tick that fires much later than
//!   scheduled (more than [`Config::failure_timeout`] after the previous one: the process was
//!   stopped, swapped out or suspended) says that *this* node was away. The overrun is added to
//!   every member's last-heard time before silences are judged, so a node woken from a long
//!   pause does not mark every member removed on its first tick.
//! - **Removed members are probed.** Nobody heartbeats or gossips to a removed member, so two
//!   nodes (or two groups, after a partition longer than [`Config::remove_after`]) that each
//!   marked the other removed would never speak again. For [`Config::removed_probe_window`]
//!   after a member is seen removed, a node pushes its list, with a reply asked for, to one
//!   random such member every [`Config::removed_probe_interval`]. A live member finds itself
//!   removed in that list, refutes with a higher incarnation (SWIM §4.2) and answers with its
//!   list; both sides merge and re-admit each other. The cost is one message per interval per
//!   node, and only while removed members are recent: none in a healthy cluster.
//!
//! The same core runs client-server ([`Topology::ClientServer`]): a server's neighbours are all
//! members; a client's neighbours are the servers only, and a client keeps only the servers'
//! entries (and its own), so clients do not pay for the whole list.
//!
//! Heartbeats cost `n` messages per node per interval: Partisan documents full membership for
//! 60–200 nodes (Meiklejohn et al., "Partisan", USENIX ATC 2019), and the 1,000-node test reports the figure.

use crate::proto::{Core, Out, Outbox, Peer, Time};
use rand::seq::IndexedRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

rasp_runtime::string_enum! {
    /// A node's role in client-server mode.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Role: crate::Error = crate::Error::UnknownRole {
        /// Connected to every node.
        #[default]
        Server = "server",
        /// Connected to the servers only.
        Client = "client",
    }
}

/// Whether a member is in or out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// In the cluster.
    Alive,
    /// Left, or removed after a long silence (a tombstone for this incarnation).
    Left,
}

/// One member's entry: ordered by `(incarnation, status)` with `Left > Alive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Raised by the member itself to come back after leaving or being removed.
    pub incarnation: u64,
    /// In or out.
    pub status: Status,
    /// Its role (client-server mode).
    pub role: Role,
}

impl Entry {
    fn key(&self) -> (u64, Status) {
        (self.incarnation, self.status)
    }
}

/// The member list as a CRDT: a map from member to [`Entry`], merged key by key taking the
/// larger `(incarnation, status)`.
///
/// Written by hand rather than taken from `rasp-lattice` (a map of max-registers) because the
/// membership layer sits below the lattice layer in the stack (the README's layout:
/// membership runs on the runtime only), and the per-key order here (incarnation, then Left above Alive) is
/// membership-specific. Merge is commutative, associative and idempotent because it is a
/// pointwise max in a total order; it reports the keys it changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members<P: Ord> {
    /// The entries.
    pub entries: BTreeMap<P, Entry>,
}

impl<P: Ord> Default for Members<P> {
    fn default() -> Self {
        Members {
            entries: BTreeMap::new(),
        }
    }
}

impl<P: Peer> Members<P> {
    /// Merges one entry; true if it changed ours.
    pub fn merge_entry(&mut self, peer: P, entry: Entry) -> bool {
        match self.entries.get_mut(&peer) {
            Some(mine) if mine.key() >= entry.key() => false,
            Some(mine) => {
                *mine = entry;
                true
            }
            None => {
                self.entries.insert(peer, entry);
                true
            }
        }
    }

    /// Merges another list; returns the members whose entry changed.
    pub fn merge(&mut self, other: &Members<P>) -> Vec<P> {
        other
            .entries
            .iter()
            .filter(|(p, e)| self.merge_entry((*p).clone(), **e))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// Full or client-server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Topology {
    /// Everybody connects to everybody.
    Full,
    /// Servers connect to everybody, clients to servers; this node has the given role.
    ClientServer(Role),
}

/// Parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Period of heartbeats to every neighbour.
    pub heartbeat_interval: Duration,
    /// A neighbour silent this long is down (locally).
    pub failure_timeout: Duration,
    /// A member silent this long is marked removed in the member list.
    pub remove_after: Duration,
    /// Period of member-list gossip (push to one random member, which answers if it knows more).
    pub gossip_interval: Duration,
    /// Period of probes of recently removed members (push-pull to one of them; module docs).
    /// Probes go out on gossip ticks, so at most one per [`Config::gossip_interval`].
    pub removed_probe_interval: Duration,
    /// How long after a member is seen removed it is still probed.
    pub removed_probe_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // Our choice: Partisan heartbeats about once a second.
            heartbeat_interval: Duration::from_secs(1),
            // Our choice: five missed heartbeats.
            failure_timeout: Duration::from_secs(5),
            // Our choice: a minute of silence removes a member.
            remove_after: Duration::from_secs(60),
            // Our choice: push-pull once a second converges in O(log n) seconds.
            gossip_interval: Duration::from_secs(1),
            // Our choice: a probe every two gossip rounds heals a mutual removal within seconds
            // and costs half a message per second per node while it lasts.
            removed_probe_interval: Duration::from_secs(2),
            // Our choice: ten minutes covers a pause or a partition several times the removal
            // limit; members gone longer rejoin through their seeds or a restart.
            removed_probe_window: Duration::from_secs(600),
        }
    }
}

/// Wire messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<P: Ord> {
    /// "I am alive."
    Heartbeat,
    /// A member list pushed; `reply` asks for the receiver's list back if it knows more.
    State {
        /// The (filtered) list.
        members: Members<P>,
        /// Whether the receiver should answer with what it knows beyond this.
        reply: bool,
    },
}

/// Timers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timer {
    /// Send heartbeats and check silences.
    Heartbeat,
    /// Gossip the member list.
    Gossip,
}

/// Neighbour changes.
pub use crate::hyparview::Event;

/// The buffer this core appends to.
pub type FullOutbox<P> = Outbox<P, Message<P>, Timer, Event<P>>;

/// The full / client-server state of one node.
#[derive(Clone, Debug)]
pub struct FullMembership<P: Ord> {
    me: P,
    topology: Topology,
    config: Config,
    members: Members<P>,
    neighbours: BTreeSet<P>,
    last_heard: BTreeMap<P, Time>,
    /// Members seen removed, and when: probed until `removed_probe_window` has passed.
    removed_at: BTreeMap<P, Time>,
    /// When the last removed-member probe went out.
    last_probe: Option<Time>,
    /// When the last heartbeat tick ran (to tell a late tick: our own absence).
    last_tick: Option<Time>,
    seeds: Vec<P>,
    started: bool,
    left: bool,
}

impl<P: Peer> FullMembership<P> {
    /// A node that knows only itself.
    pub fn new(me: P, topology: Topology, config: Config) -> Self {
        let role = match topology {
            Topology::Full => Role::Server,
            Topology::ClientServer(r) => r,
        };
        let mut members = Members::default();
        members.merge_entry(
            me.clone(),
            Entry {
                incarnation: 0,
                status: Status::Alive,
                role,
            },
        );
        FullMembership {
            me,
            topology,
            config,
            members,
            neighbours: BTreeSet::new(),
            last_heard: BTreeMap::new(),
            removed_at: BTreeMap::new(),
            last_probe: None,
            last_tick: None,
            seeds: Vec::new(),
            started: false,
            left: false,
        }
    }

    /// The member list.
    pub fn members(&self) -> &Members<P> {
        &self.members
    }

    /// Current neighbours.
    pub fn neighbours(&self) -> &BTreeSet<P> {
        &self.neighbours
    }

    fn my_role(&self) -> Role {
        match self.topology {
            Topology::Full => Role::Server,
            Topology::ClientServer(r) => r,
        }
    }

    /// Whether this node keeps / connects to that member.
    fn wants(&self, peer: &P, entry: &Entry) -> bool {
        *peer == self.me || self.my_role() == Role::Server || entry.role == Role::Server
    }

    /// What `to` (with entry `to_entry`) keeps of our list.
    fn filtered_for(&self, to_role: Role) -> Members<P> {
        match to_role {
            Role::Server => self.members.clone(),
            Role::Client => Members {
                entries: self
                    .members
                    .entries
                    .iter()
                    .filter(|(_, e)| e.role == Role::Server)
                    .map(|(p, e)| (p.clone(), *e))
                    .collect(),
            },
        }
    }

    /// Arms the timers.
    pub fn start<R: Rng + ?Sized>(&mut self, rng: &mut R, out: &mut FullOutbox<P>) {
        if self.started {
            return;
        }
        self.started = true;
        for (period, timer) in [
            (self.config.heartbeat_interval, Timer::Heartbeat),
            (self.config.gossip_interval, Timer::Gossip),
        ] {
            let nanos = period.as_nanos().clamp(1, u64::MAX as u128) as u64;
            out.push(Out::Timer {
                after: Duration::from_nanos(rng.random_range(1..=nanos)),
                timer,
            });
        }
    }

    /// Joins through `seeds`: pushes our entry to each and asks for their lists.
    pub fn join<R: Rng + ?Sized>(
        &mut self,
        seeds: Vec<P>,
        now: Time,
        rng: &mut R,
        out: &mut FullOutbox<P>,
    ) {
        self.seeds = seeds.into_iter().filter(|s| *s != self.me).collect();
        if self.left {
            self.left = false;
            self.bump_incarnation();
        }
        self.start(rng, out);
        for s in self.seeds.clone() {
            self.last_heard.entry(s.clone()).or_insert(now);
            out.push(Out::Send {
                to: s,
                msg: Message::State {
                    members: self.members.clone(),
                    reply: true,
                },
            });
        }
    }

    fn bump_incarnation(&mut self) {
        let mut e = self.members.entries[&self.me];
        e.incarnation += 1;
        e.status = Status::Alive;
        self.members.entries.insert(self.me.clone(), e);
    }

    /// Leaves: marks ourselves Left and tells every neighbour.
    pub fn leave(&mut self, out: &mut FullOutbox<P>) {
        let mut e = self.members.entries[&self.me];
        e.status = Status::Left;
        self.members.entries.insert(self.me.clone(), e);
        let mine = Members {
            entries: BTreeMap::from([(self.me.clone(), e)]),
        };
        for p in std::mem::take(&mut self.neighbours) {
            out.push(Out::Send {
                to: p.clone(),
                msg: Message::State {
                    members: mine.clone(),
                    reply: false,
                },
            });
            out.push(Out::Disconnect(p.clone()));
            out.push(Out::Event(Event::NeighbourDown(p)));
        }
        self.left = true;
    }

    /// Every `removed_probe_interval`, pushes our list (reply asked) to one member seen
    /// removed within `removed_probe_window` (module docs: a mutual false removal heals).
    fn probe_removed<R: Rng + ?Sized>(&mut self, now: Time, rng: &mut R, out: &mut FullOutbox<P>) {
        let window = self.config.removed_probe_window;
        self.removed_at
            .retain(|_, at| now.saturating_sub(*at) <= window);
        if self.removed_at.is_empty()
            || self
                .last_probe
                .is_some_and(|t| now.saturating_sub(t) < self.config.removed_probe_interval)
        {
            return;
        }
        let candidates: Vec<&P> = self.removed_at.keys().collect();
        let Some(p) = candidates.choose(rng).map(|p| (*p).clone()) else {
            return;
        };
        self.last_probe = Some(now);
        let role = self
            .members
            .entries
            .get(&p)
            .map_or(Role::Server, |e| e.role);
        out.push(Out::Send {
            to: p,
            msg: Message::State {
                members: self.filtered_for(role),
                reply: true,
            },
        });
    }

    /// Keeps `removed_at` in step with the entries of `peers`: removed ones are recorded (first
    /// time seen), alive ones forgotten.
    fn note_status(&mut self, peers: impl IntoIterator<Item = P>, now: Time) {
        for p in peers {
            if p == self.me {
                continue;
            }
            match self.members.entries.get(&p).map(|e| e.status) {
                Some(Status::Left) if self.wants(&p, &self.members.entries[&p]) => {
                    self.removed_at.entry(p).or_insert(now);
                }
                _ => {
                    self.removed_at.remove(&p);
                }
            }
        }
    }

    fn heartbeat(&mut self, now: Time, out: &mut FullOutbox<P>) {
        // A tick far later than scheduled means this node was away (stopped, suspended): the
        // gap beyond one interval is our absence, not the members' silence (module docs).
        if let Some(prev) = self.last_tick {
            let gap = now.saturating_sub(prev);
            if gap > self.config.failure_timeout {
                let overrun = gap.saturating_sub(self.config.heartbeat_interval);
                for heard in self.last_heard.values_mut() {
                    *heard = (*heard + overrun).min(now);
                }
            }
        }
        self.last_tick = Some(now);
        let mut removed = Vec::new();
        for (p, e) in &self.members.entries {
            if *p == self.me || e.status != Status::Alive || !self.wants(p, e) {
                continue;
            }
            let heard = *self.last_heard.entry(p.clone()).or_insert(now);
            let silence = now.saturating_sub(heard);
            if silence > self.config.failure_timeout && self.neighbours.remove(p) {
                out.push(Out::Disconnect(p.clone()));
                out.push(Out::Event(Event::NeighbourDown(p.clone())));
            }
            if silence > self.config.remove_after {
                removed.push(p.clone());
                continue;
            }
            out.push(Out::Send {
                to: p.clone(),
                msg: Message::Heartbeat,
            });
        }
        for p in &removed {
            if let Some(e) = self.members.entries.get_mut(p) {
                e.status = Status::Left;
            }
            self.last_heard.remove(p);
        }
        self.note_status(removed, now);
    }

    /// `peer` was just heard from: it is a neighbour if alive and wanted.
    fn refresh(&mut self, peer: &P, out: &mut FullOutbox<P>) {
        let Some(e) = self.members.entries.get(peer) else {
            return;
        };
        if e.status == Status::Alive && self.wants(peer, e) && self.neighbours.insert(peer.clone())
        {
            out.push(Out::Connect(peer.clone()));
            out.push(Out::Event(Event::NeighbourUp(peer.clone())));
        }
    }
}

impl<P: Peer> Core<P> for FullMembership<P> {
    type Message = Message<P>;
    type Timer = Timer;
    type Event = Event<P>;

    /// The driver lost the connection to `peer`: it is down until heard from again.
    fn peer_down<R: Rng + ?Sized>(
        &mut self,
        peer: &P,
        _now: Time,
        _rng: &mut R,
        out: &mut FullOutbox<P>,
    ) {
        if self.neighbours.remove(peer) {
            out.push(Out::Event(Event::NeighbourDown(peer.clone())));
        }
    }

    /// Handles a timer.
    fn on_timer<R: Rng + ?Sized>(
        &mut self,
        timer: Timer,
        now: Time,
        rng: &mut R,
        out: &mut FullOutbox<P>,
    ) {
        match timer {
            Timer::Heartbeat => {
                out.push(Out::Timer {
                    after: self.config.heartbeat_interval,
                    timer: Timer::Heartbeat,
                });
                if !self.left {
                    self.heartbeat(now, out);
                }
            }
            Timer::Gossip => {
                out.push(Out::Timer {
                    after: self.config.gossip_interval,
                    timer: Timer::Gossip,
                });
                if self.left {
                    return;
                }
                let targets: Vec<(&P, &Entry)> = self
                    .members
                    .entries
                    .iter()
                    .filter(|(p, e)| {
                        **p != self.me && e.status == Status::Alive && self.wants(p, e)
                    })
                    .collect();
                let target = targets.choose(rng).map(|(p, e)| ((*p).clone(), e.role));
                self.probe_removed(now, rng, out);
                if let Some((p, role)) = target {
                    out.push(Out::Send {
                        to: p,
                        msg: Message::State {
                            members: self.filtered_for(role),
                            reply: true,
                        },
                    });
                } else if let Some(seed) = self.seeds.choose(rng) {
                    // Knows nobody alive: back to the seeds.
                    out.push(Out::Send {
                        to: seed.clone(),
                        msg: Message::State {
                            members: self.members.clone(),
                            reply: true,
                        },
                    });
                }
            }
        }
    }

    /// Handles a message.
    fn on_message<R: Rng + ?Sized>(
        &mut self,
        from: P,
        msg: Message<P>,
        now: Time,
        _rng: &mut R,
        out: &mut FullOutbox<P>,
    ) {
        if self.left || from == self.me {
            return;
        }
        self.last_heard.insert(from.clone(), now);
        match msg {
            Message::Heartbeat => {}
            Message::State { members, reply } => {
                let incoming: Members<P> = Members {
                    entries: members
                        .entries
                        .into_iter()
                        .filter(|(p, e)| self.wants(p, e))
                        .collect(),
                };
                let changed = self.members.merge(&incoming);
                let mine = self.members.entries[&self.me];
                if mine.status == Status::Left {
                    // Removed while alive: refute.
                    self.bump_incarnation();
                }
                self.note_status(changed.iter().cloned(), now);
                for p in changed {
                    if p == self.me {
                        continue;
                    }
                    self.last_heard.entry(p.clone()).or_insert(now);
                    let alive = self
                        .members
                        .entries
                        .get(&p)
                        .is_some_and(|e| e.status == Status::Alive);
                    if !alive && self.neighbours.remove(&p) {
                        out.push(Out::Disconnect(p.clone()));
                        out.push(Out::Event(Event::NeighbourDown(p)));
                    }
                }
                if reply {
                    let to_role = self
                        .members
                        .entries
                        .get(&from)
                        .map_or(Role::Server, |e| e.role);
                    let answer = self.filtered_for(to_role);
                    if answer
                        .entries
                        .iter()
                        .any(|(p, e)| incoming.entries.get(p) != Some(e))
                    {
                        out.push(Out::Send {
                            to: from.clone(),
                            msg: Message::State {
                                members: answer,
                                reply: false,
                            },
                        });
                    }
                }
            }
        }
        self.refresh(&from, out);
    }

    fn kind(msg: &Message<P>) -> &'static str {
        match msg {
            Message::Heartbeat => "heartbeat",
            Message::State { .. } => "state",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn alive() -> Entry {
        Entry {
            incarnation: 0,
            status: Status::Alive,
            role: Role::Server,
        }
    }

    /// A heartbeat tick 70 s after the previous one (the process was stopped) is this node's
    /// absence: nobody is removed, everybody is heartbeated.
    #[test]
    fn late_tick_is_own_absence() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut m = FullMembership::new(0u64, Topology::Full, Config::default());
        let mut out = Vec::new();
        let list = Members {
            entries: BTreeMap::from([(1, alive()), (2, alive())]),
        };
        let t0 = Duration::from_secs(1);
        for from in [1, 2] {
            let msg = Message::State {
                members: list.clone(),
                reply: false,
            };
            m.on_message(from, msg, t0, &mut rng, &mut out);
        }
        assert_eq!(m.neighbours().len(), 2);
        m.on_timer(Timer::Heartbeat, t0, &mut rng, &mut out);
        out.clear();
        let late = t0 + Duration::from_secs(70);
        m.on_timer(Timer::Heartbeat, late, &mut rng, &mut out);
        assert!(
            m.members()
                .entries
                .values()
                .all(|e| e.status == Status::Alive),
            "{:?}",
            m.members()
        );
        let beats = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Out::Send {
                        msg: Message::Heartbeat,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(beats, 2);
        assert_eq!(m.neighbours().len(), 2);
        // Members that stay silent are still judged: their silence counts one interval before
        // the late tick (the tick was due then), and every second after it.
        for s in 1..=7 {
            let t = late + Duration::from_secs(s);
            m.on_timer(Timer::Heartbeat, t, &mut rng, &mut out);
            assert_eq!(m.neighbours().is_empty(), s >= 5, "at resume + {s} s");
        }
    }
}
