//! rasp
