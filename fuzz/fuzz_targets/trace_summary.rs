//! The trace's header scan (`sip_trace::summarize`) and the ring's Call-ID index on arbitrary
//! bytes: see `check_summary` for the invariants.
#![no_main]

#[path = "../../crates/sip-trace/tests/support/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_summary(data));
