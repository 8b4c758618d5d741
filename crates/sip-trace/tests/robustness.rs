//! `summarize` and the ring on arbitrary and mutated input (the fuzz target checks the same).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;

const SAMPLE: &[u8] = b"INVITE sip:1002@example.com SIP/2.0\r\n\
    v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
    f: \"Alice\" <sip:1001@example.com>;tag=a1\r\n\
    t: <sip:1002@example.com>\r\n\
    i: abc123@192.0.2.1\r\n\
    CSeq: 1 INVITE\r\n\
    l: 0\r\n\r\n";

#[test]
fn sample_and_edge_cases() {
    support::checks::check_summary(SAMPLE);
    for g in [
        &b""[..],
        b"\n",
        b"\r\n\r\n",
        b"SIP/2.0 200",
        b"A B SIP/2.0\ni:",
        b"\xff\xfe\xfd",
        b"i:x\r\n\r\n",
    ] {
        support::checks::check_summary(g);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        support::checks::check_summary(&data);
    }

    #[test]
    fn mutated_messages(edits in proptest::collection::vec((0usize..SAMPLE.len(), any::<u8>()), 1..8)) {
        let mut m = SAMPLE.to_vec();
        for (at, b) in edits {
            m[at] = b;
        }
        support::checks::check_summary(&m);
    }

    #[test]
    fn truncated_messages(cut in 0usize..SAMPLE.len()) {
        support::checks::check_summary(&SAMPLE[..cut]);
    }
}
