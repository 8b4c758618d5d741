//! Replays every input the fuzzers found (`tests/data/fuzz/`) and the RFC 4475 messages through
//! the fuzz targets' invariants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/checks.rs"]
mod checks;

use std::path::PathBuf;

fn files(dir: &str) -> Vec<PathBuf> {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", dir].iter().collect();
    let mut v: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.retain(|p| p.extension().is_none_or(|e| e == "dat"));
    v.sort();
    v
}

#[test]
fn fuzz_findings_stay_fixed() {
    let found = files("fuzz");
    assert!(!found.is_empty());
    for path in found {
        let data = std::fs::read(&path).unwrap();
        checks::check_datagram(&data);
        checks::check_stream(&data);
    }
}

#[test]
fn torture_messages_hold_the_invariants() {
    for path in files("rfc4475") {
        let data = std::fs::read(&path).unwrap();
        checks::check_datagram(&data);
        for cut in [0u8, 1, 17, 200, 255] {
            let mut d = vec![cut];
            d.extend_from_slice(&data);
            checks::check_stream(&d);
        }
    }
}
