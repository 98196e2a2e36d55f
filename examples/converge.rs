//! Five replicas update an OR-set, a PN-counter and a grow-only map of counters concurrently,
//! ship each update as a delta, and the network delivers the deltas in shuffled order with
//! duplicates. At the end every replica holds the same state.
//!
//! Run: `cargo run --release --example converge` (seeded: the output is always the same).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rasp::lattice::{encoded_size, Actor, GCounter, GMap, Lattice, ORSet, PNCounter, Query};

const REPLICAS: usize = 5;
const ROUNDS: usize = 20;
const FRUITS: [&str; 6] = ["apple", "banana", "cherry", "date", "elder", "fig"];

/// One replica's variables.
#[derive(Clone, PartialEq, Debug)]
struct Replica {
    cart: ORSet<String>,
    stock: PNCounter,
    views: GMap<String, GCounter>,
}

/// A delta on the wire.
#[derive(Clone)]
enum Delta {
    Cart(ORSet<String>),
    Stock(PNCounter),
    Views(GMap<String, GCounter>),
}

impl Replica {
    fn new() -> Self {
        Replica {
            cart: ORSet::bottom(),
            stock: PNCounter::bottom(),
            views: GMap::bottom(),
        }
    }

    /// Applies a received delta; returns whether anything changed.
    fn receive(&mut self, d: &Delta) -> bool {
        match d {
            Delta::Cart(s) => self.cart.join(s),
            Delta::Stock(c) => self.stock.join(c),
            Delta::Views(m) => self.views.join(m),
        }
    }

    /// One random local update; returns its delta.
    fn update(&mut self, me: Actor, rng: &mut ChaCha8Rng) -> Delta {
        let fruit = FRUITS[rng.random_range(0..FRUITS.len())].to_string();
        match rng.random_range(0..5) {
            0 | 1 => Delta::Cart(self.cart.add(me, fruit)),
            2 => Delta::Cart(self.cart.remove(&fruit)),
            3 => {
                let n = rng.random_range(1..4);
                Delta::Stock(if rng.random_bool(0.6) {
                    self.stock.inc(me, n)
                } else {
                    self.stock.dec(me, n)
                })
            }
            _ => Delta::Views(self.views.apply(fruit, |c| c.inc(me, 1))),
        }
    }
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(2016);
    let mut replicas = vec![Replica::new(); REPLICAS];
    let (mut sent, mut delivered, mut useless, mut bytes) = (0usize, 0usize, 0usize, 0usize);
    let mut delayed: Vec<(usize, Delta)> = Vec::new();

    for _round in 0..ROUNDS {
        // Every replica updates concurrently, without seeing the others' updates of this round.
        let mut in_flight: Vec<(usize, Delta)> = Vec::new();
        for (r, rep) in replicas.iter_mut().enumerate() {
            let delta = rep.update(r as Actor + 1, &mut rng);
            bytes += match &delta {
                Delta::Cart(s) => encoded_size(s),
                Delta::Stock(c) => encoded_size(c),
                Delta::Views(m) => encoded_size(m),
            };
            for to in (0..REPLICAS).filter(|&t| t != r) {
                in_flight.push((to, delta.clone()));
                sent += 1;
                if rng.random_bool(0.25) {
                    in_flight.push((to, delta.clone())); // the network duplicates
                }
            }
        }
        // Last round's late messages join this round's; a quarter of these are late again.
        in_flight.append(&mut delayed);
        in_flight.shuffle(&mut rng);
        delayed = in_flight.split_off(in_flight.len() * 3 / 4);
        for (to, d) in &in_flight {
            delivered += 1;
            if !replicas[*to].receive(d) {
                useless += 1;
            }
        }
    }
    // The network finally delivers the stragglers.
    delayed.shuffle(&mut rng);
    for (to, d) in &delayed {
        delivered += 1;
        if !replicas[*to].receive(d) {
            useless += 1;
        }
    }

    println!("{REPLICAS} replicas, {ROUNDS} rounds: {sent} deltas sent, {delivered} delivered ({useless} changed nothing: duplicates or already known), {bytes} delta bytes encoded");
    for (r, rep) in replicas.iter().enumerate() {
        println!(
            "replica {}: cart {:?}, stock {}, views {:?}",
            r + 1,
            rep.cart.query(),
            rep.stock.query(),
            rep.views.query()
        );
    }
    let converged = replicas.iter().all(|r| *r == replicas[0]);
    println!(
        "converged: {converged} (full cart state: {} bytes)",
        encoded_size(&replicas[0].cart)
    );
    assert!(converged, "replicas diverged");
}
