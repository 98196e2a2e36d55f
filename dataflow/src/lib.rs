//! # rasp-dataflow: monotone operators over CRDTs
//!
//! | module | holds |
//! |---|---|
//! | [`causal`] | derived dots ([`causal::DDot`]) tagged by source variable, their context, [`causal::DSet`] |
//! | [`fold`] | fold by an associative, commutative, invertible operation ([`fold::Folded`]) |
//! | [`ops`] | incremental map, filter, union, product, intersection over causal sets |

pub mod causal;
pub mod fold;
pub mod ops;
