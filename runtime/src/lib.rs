//! rasp-runtime (placeholder)
