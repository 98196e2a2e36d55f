//! The test bed: real rasp processes in Linux network namespaces under a nemesis, with a
//! recorded history and a checker (see `tests/bed.rs` for the runs and the README's
//! "Testing under real faults").

pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod netns;
pub mod workload;
