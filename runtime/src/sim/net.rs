//! The simulator's pluggable network model: per-link latency, loss, duplication and
//! reordering. Partitions, crashes and clock skew are handled by the simulator itself, so
//! every model gets them.

use crate::error::Error;
use crate::ids::NodeId;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Decides the fate of each message crossing the simulated network.
///
/// Called with the simulator's seeded RNG, so models stay deterministic as long as they
/// take all randomness from it.
pub trait NetModel {
    /// Pushes one delivery delay per copy of a message from `from` to `to` into `out`
    /// (nothing: lost; two: duplicated). `out` is empty on entry.
    fn transmit(
        &mut self,
        from: NodeId,
        to: NodeId,
        rng: &mut dyn RngCore,
        out: &mut Vec<Duration>,
    );
    /// One-way delay for connection setup between two nodes (a connection takes a round
    /// trip; connection setup is never lost, as TCP retransmits).
    fn latency(&mut self, from: NodeId, to: NodeId, rng: &mut dyn RngCore) -> Duration;
}

/// A latency distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Latency {
    /// Always the same.
    Constant(Duration),
    /// Uniform in `[min, max]`.
    Uniform {
        /// Lower bound.
        min: Duration,
        /// Upper bound.
        max: Duration,
    },
    /// `min` plus an exponential with the given mean (memoryless queueing delay).
    Exponential {
        /// Propagation floor.
        min: Duration,
        /// Mean of the exponential part.
        mean: Duration,
    },
    /// `min` plus a log-normal with the given median and shape `sigma` (heavy tail, the
    /// usual fit for Internet RTTs; sigma 0.5-1.0 is typical).
    LogNormal {
        /// Propagation floor.
        min: Duration,
        /// Median of the log-normal part.
        median: Duration,
        /// Standard deviation of the underlying normal.
        sigma: f64,
    },
}

/// Cap on any sampled latency, so heavy tails cannot stall a run.
const MAX_LATENCY: Duration = Duration::from_secs(3600);

/// A uniform sample in the open interval (0, 1).
fn unit(rng: &mut dyn RngCore) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

impl Latency {
    /// Draws a delay.
    pub fn sample(&self, rng: &mut dyn RngCore) -> Duration {
        let d = match *self {
            Latency::Constant(d) => return d,
            Latency::Uniform { min, max } => {
                let (lo, hi) = (min.as_nanos() as u64, max.as_nanos() as u64);
                return Duration::from_nanos(if hi > lo {
                    rng.random_range(lo..=hi)
                } else {
                    lo
                });
            }
            Latency::Exponential { min, mean } => {
                min.as_secs_f64() - mean.as_secs_f64() * unit(rng).ln()
            }
            Latency::LogNormal { min, median, sigma } => {
                // Box-Muller: a standard normal from two uniforms.
                let z = (-2.0 * unit(rng).ln()).sqrt() * (std::f64::consts::TAU * unit(rng)).cos();
                min.as_secs_f64() + median.as_secs_f64() * (sigma * z).exp()
            }
        };
        Duration::try_from_secs_f64(d)
            .unwrap_or(MAX_LATENCY)
            .min(MAX_LATENCY)
    }

    fn validate(&self) -> Result<(), Error> {
        match *self {
            Latency::Uniform { min, max } if min > max => Err(Error::Config(format!(
                "uniform latency: min {min:?} > max {max:?}"
            ))),
            Latency::LogNormal { sigma, .. } if !(0.0..=10.0).contains(&sigma) => Err(
                Error::Config(format!("log-normal latency: sigma {sigma} outside [0, 10]")),
            ),
            _ => Ok(()),
        }
    }
}

/// Behaviour of one directed link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkConfig {
    /// Delay distribution.
    pub latency: Latency,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a (not lost) message is delivered twice.
    pub duplicate: f64,
    /// Probability a message gets an extra delay, uniform in `[0, reorder_delay]`, so that
    /// later messages overtake it (on top of what latency variance already reorders).
    pub reorder: f64,
    /// Maximum extra delay of a reordered message.
    pub reorder_delay: Duration,
}

impl Default for LinkConfig {
    /// A clean LAN-like link: 1 ms constant, no faults.
    fn default() -> Self {
        LinkConfig {
            latency: Latency::Constant(Duration::from_millis(1)),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
        }
    }
}

impl LinkConfig {
    /// Checks probabilities and distributions.
    pub fn validate(&self) -> Result<(), Error> {
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::Config(format!(
                    "link {name} probability {p} outside [0, 1]"
                )));
            }
        }
        self.latency.validate()
    }
}

/// A per-link override of the default link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkOverride {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Behaviour of the directed link `from -> to`.
    pub link: LinkConfig,
}

/// Configuration of the default network model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Behaviour of every link without an override.
    pub default: LinkConfig,
    /// Directed links that behave differently.
    pub links: Vec<LinkOverride>,
}

impl NetConfig {
    /// Checks every link.
    pub fn validate(&self) -> Result<(), Error> {
        self.default.validate()?;
        self.links.iter().try_for_each(|l| l.link.validate())
    }
}

/// The default model: every directed link behaves per its [`LinkConfig`].
pub struct LinkModel {
    default: LinkConfig,
    links: BTreeMap<(NodeId, NodeId), LinkConfig>,
}

impl LinkModel {
    /// Builds the model (call [`NetConfig::validate`] first).
    pub fn new(cfg: &NetConfig) -> Self {
        LinkModel {
            default: cfg.default.clone(),
            links: cfg
                .links
                .iter()
                .map(|l| ((l.from, l.to), l.link.clone()))
                .collect(),
        }
    }

    fn link(&self, from: NodeId, to: NodeId) -> &LinkConfig {
        if self.links.is_empty() {
            return &self.default;
        }
        self.links.get(&(from, to)).unwrap_or(&self.default)
    }
}

fn chance(rng: &mut dyn RngCore, p: f64) -> bool {
    p > 0.0 && (p >= 1.0 || unit(rng) < p)
}

impl NetModel for LinkModel {
    fn transmit(
        &mut self,
        from: NodeId,
        to: NodeId,
        rng: &mut dyn RngCore,
        out: &mut Vec<Duration>,
    ) {
        let l = self.link(from, to);
        if chance(rng, l.loss) {
            return;
        }
        let copies = if chance(rng, l.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let mut d = l.latency.sample(rng);
            if chance(rng, l.reorder) {
                d += Duration::from_nanos(rng.random_range(0..=l.reorder_delay.as_nanos() as u64));
            }
            out.push(d);
        }
    }

    fn latency(&mut self, from: NodeId, to: NodeId, rng: &mut dyn RngCore) -> Duration {
        self.link(from, to).latency.sample(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mean_ms(l: &Latency, n: usize) -> f64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        (0..n)
            .map(|_| l.sample(&mut rng).as_secs_f64() * 1e3)
            .sum::<f64>()
            / n as f64
    }

    #[test]
    fn latency_distributions_have_the_configured_centre() {
        let ms = Duration::from_millis;
        assert_eq!(mean_ms(&Latency::Constant(ms(4)), 10), 4.0);
        let u = mean_ms(
            &Latency::Uniform {
                min: ms(2),
                max: ms(6),
            },
            20_000,
        );
        assert!((u - 4.0).abs() < 0.1, "uniform mean {u}");
        let e = mean_ms(
            &Latency::Exponential {
                min: ms(1),
                mean: ms(3),
            },
            20_000,
        );
        assert!((e - 4.0).abs() < 0.15, "exponential mean {e}");
        // Log-normal mean = median * exp(sigma^2 / 2).
        let l = mean_ms(
            &Latency::LogNormal {
                min: ms(1),
                median: ms(2),
                sigma: 0.5,
            },
            50_000,
        );
        let want = 1.0 + 2.0 * (0.125f64).exp();
        assert!((l - want).abs() < 0.1, "log-normal mean {l}, want {want}");
    }

    #[test]
    fn bad_config_is_rejected() {
        let mut c = NetConfig::default();
        c.default.loss = 1.5;
        assert!(c.validate().is_err());
        c.default.loss = 0.1;
        c.default.latency = Latency::Uniform {
            min: Duration::from_millis(3),
            max: Duration::from_millis(1),
        };
        assert!(c.validate().is_err());
    }
}
