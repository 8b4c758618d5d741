//! Invariants of `summarize` and of the ring on arbitrary input, shared by the robustness tests
//! and the fuzz target (`fuzz/fuzz_targets/trace_summary.rs`).

use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use sip_trace::{Direction, Proto, TraceRing, summarize};

/// Never panics on any input; every field is a piece of the input; a message is a request or a
/// response, not both; the ring files it under its Call-ID.
pub fn check_summary(data: &[u8]) {
    let s = summarize(data);
    assert!(!(s.method.is_some() && s.status.is_some()), "{s:?}");
    if let Some(code) = s.status {
        assert!((100..=699).contains(&code), "{s:?}");
    }
    assert!(!s.first_line.contains('\n'), "{s:?}");
    assert!(!s.call_id.contains([' ', '\t', '\r', '\n']), "{s:?}");
    if let Some(m) = &s.method {
        assert!(s.first_line.starts_with(m.as_str()) && !m.is_empty(), "{s:?}");
    }
    let text = std::str::from_utf8(data).ok().filter(|_| data.len() <= 65_535);
    if let Some(text) = text {
        let fields = [
            Some(&s.first_line),
            Some(&s.call_id),
            s.method.as_ref(),
            s.cseq_method.as_ref(),
        ];
        let users = [s.from_user.as_ref(), s.to_user.as_ref()];
        for f in fields.into_iter().chain(users).flatten() {
            assert!(text.contains(f.as_str()), "{f:?} not in the input");
        }
    }
    for f in [&s.method, &s.cseq_method, &s.from_user, &s.to_user]
        .into_iter()
        .flatten()
    {
        assert!(!f.is_empty(), "{s:?}");
    }

    let ring = TraceRing::new(2);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 5060));
    let payload = Bytes::copy_from_slice(data);
    for _ in 0..3 {
        ring.record(1, Direction::In, Proto::Udp, addr, addr, payload.clone());
    }
    ring.check_invariants();
    assert_eq!(ring.len(), 2);
    if s.call_id.is_empty() {
        assert_eq!(ring.calls(), 0);
    } else if text.is_some() {
        let got = ring.call(&s.call_id);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].seq, got[1].seq), (2, 3));
        assert_eq!(got[0].summary, s);
        let recent = ring.recent(10);
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].messages, 2);
    }
}
