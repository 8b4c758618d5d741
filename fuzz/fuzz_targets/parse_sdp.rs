//! SDP parsing, serialization and the proxy's edits: see `check_sdp` for the invariants. Also the
//! SDES keys (`a=crypto`, RFC 4568): every usable key writes back to a value that reads the same.
#![no_main]

#[path = "../../crates/sdp/tests/support/checks.rs"]
mod checks;

fn check_crypto(value: &str) {
    if let Some(c) = sdp::Crypto::parse(value) {
        assert_eq!(sdp::Crypto::parse(&c.value()), Some(c), "a=crypto does not read back");
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check_sdp(data);
    if let Ok(text) = std::str::from_utf8(data) {
        check_crypto(text);
    }
    if let Ok(s) = sdp::Sdp::parse(data) {
        for m in s.media() {
            let _ = m.is_srtp();
            for c in m.crypto() {
                check_crypto(&c.value());
            }
        }
    }
});
