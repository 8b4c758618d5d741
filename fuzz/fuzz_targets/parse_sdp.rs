//! SDP parsing, serialization and the proxy's edits: see `check_sdp` for the invariants.
#![no_main]

#[path = "../../crates/sdp/tests/support/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_sdp(data));
