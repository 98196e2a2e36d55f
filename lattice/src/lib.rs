//! rasp-lattice (placeholder)
