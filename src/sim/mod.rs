//! Provider simulators.

/// Fixed development key material.
pub mod keys;
