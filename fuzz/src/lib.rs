//! The fuzz target bodies live in `targets.rs`, shared with the CI smoke run
//! (`tests/fuzz_smoke.rs` in the main workspace), which runs them over the committed corpus.
#[path = "targets.rs"]
pub mod targets;
