//! rasp studio: pages in the browser that draw rasp programs and clusters.
//!
//! - [`live`]: `rasp studio --attach ADDR,...`, the live view of a running cluster of real
//!   nodes, drawn from each node's HTTP API ([`crate::http`]).

pub mod live;
