//! rasp-dataflow (placeholder)
