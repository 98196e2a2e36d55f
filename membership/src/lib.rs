//! rasp-membership (placeholder)
