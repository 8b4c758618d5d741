//! Datagram parsing: see `check_datagram` for the invariants.
#![no_main]

#[path = "../../crates/sip/tests/support/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_datagram(data));
