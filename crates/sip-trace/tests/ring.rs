//! The ring: eviction and the Call-ID index against a model, search by user, recent calls,
//! concurrent recording.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use sip_trace::{Direction, Proto, TraceRing};

fn local() -> SocketAddr {
    "192.0.2.1:5060".parse().unwrap()
}

fn remote() -> SocketAddr {
    "198.51.100.7:5070".parse().unwrap()
}

/// A request (`status == 0`) or response of a call between two users.
fn msg(call_id: &str, method: &str, status: u16, from: &str, to: &str) -> Bytes {
    let first = if status == 0 {
        format!("{method} sip:{to}@example.com SIP/2.0")
    } else {
        format!("SIP/2.0 {status} Whatever")
    };
    // Copied, not static: every payload has its own buffer, as from the transport.
    Bytes::copy_from_slice(
        format!(
            "{first}\r\nVia: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bK{call_id}\r\n\
             From: <sip:{from}@example.com>;tag=f\r\nTo: <sip:{to}@example.com>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
}

fn record(ring: &TraceRing, at_us: u64, payload: Bytes) {
    ring.record(at_us, Direction::In, Proto::Udp, local(), remote(), payload);
}

/// One recorded message of the model: its sequence number and Call-ID (None: no Call-ID).
type Model = Vec<(u64, u64, Option<String>)>;

/// Checks everything the ring answers against the model of all messages ever recorded.
fn check_against_model(ring: &TraceRing, model: &Model) {
    ring.check_invariants();
    let kept = &model[model.len().saturating_sub(ring.capacity())..];
    assert_eq!(ring.len(), kept.len());
    assert_eq!(ring.recorded(), model.len() as u64);
    let snapshot = ring.snapshot();
    assert_eq!(
        snapshot.iter().map(|m| m.seq).collect::<Vec<_>>(),
        kept.iter().map(|k| k.0).collect::<Vec<_>>()
    );

    // Calls, newest activity first.
    let mut calls: Vec<(String, Vec<(u64, u64)>)> = Vec::new();
    for (seq, at, id) in kept {
        let Some(id) = id else { continue };
        match calls.iter_mut().find(|c| &c.0 == id) {
            Some(c) => c.1.push((*seq, *at)),
            None => calls.push((id.clone(), vec![(*seq, *at)])),
        }
    }
    assert_eq!(ring.calls(), calls.len());
    calls.sort_by_key(|c| std::cmp::Reverse(c.1.last().unwrap().0));
    let recent = ring.recent(usize::MAX);
    assert_eq!(recent.len(), calls.len());
    for (summary, (id, msgs)) in recent.iter().zip(&calls) {
        assert_eq!(&summary.call_id, id);
        assert_eq!(summary.messages, msgs.len());
        assert_eq!(summary.first_at_us, msgs[0].1);
        assert_eq!(summary.last_at_us, msgs.last().unwrap().1);
        let got = ring.call(id);
        assert_eq!(
            got.iter().map(|m| m.seq).collect::<Vec<_>>(),
            msgs.iter().map(|m| m.0).collect::<Vec<_>>()
        );
        assert!(got.iter().all(|m| &m.summary.call_id == id));
    }
    if calls.len() > 2 {
        assert_eq!(ring.recent(2).len(), 2);
        assert_eq!(ring.recent(2)[1], recent[1]);
    }
    assert!(ring.recent(0).is_empty());
    assert!(ring.call("never-seen").is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Any sequence of messages over any small capacity: the ring keeps the newest `capacity`
    /// and the index agrees with it after every record.
    #[test]
    fn eviction_keeps_the_index_consistent(
        capacity in 1usize..24,
        calls in proptest::collection::vec(proptest::option::weighted(0.9, 0u8..10), 0..120),
    ) {
        let ring = TraceRing::new(capacity);
        let mut model: Model = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let at = 1_000 + i as u64 * 7;
            let payload = match call {
                Some(c) => msg(&format!("call-{c}@h"), "INVITE", 0, "a", "b"),
                None => Bytes::copy_from_slice(b"garbage without a call id\r\n\r\n"),
            };
            record(&ring, at, payload);
            model.push((i as u64 + 1, at, call.map(|c| format!("call-{c}@h"))));
            ring.check_invariants();
        }
        check_against_model(&ring, &model);
    }
}

#[test]
fn many_records_over_capacity() {
    let ring = TraceRing::new(1_000);
    let mut model: Model = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..30_000u64 {
        // xorshift: calls of very different lengths, some long-lived across evictions.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let call = if x.is_multiple_of(10) { x % 3 } else { x % 400 };
        let id = format!("{call:x}-id@198.51.100.7");
        record(&ring, i, msg(&id, "MESSAGE", 0, "a", "b"));
        model.push((i + 1, i, Some(id)));
        if i.is_multiple_of(2_500) {
            check_against_model(&ring, &model);
        }
    }
    check_against_model(&ring, &model);
}

#[test]
fn capacity_zero_is_off() {
    let ring = TraceRing::new(0);
    assert!(!ring.is_enabled());
    record(&ring, 1, msg("x", "INVITE", 0, "a", "b"));
    assert_eq!(ring.len(), 0);
    assert!(ring.call("x").is_empty());
    assert!(ring.recent(10).is_empty());
    ring.check_invariants();
}

#[test]
fn search_by_user_newest_first() {
    let ring = TraceRing::new(100);
    record(&ring, 10, msg("reg-1", "REGISTER", 0, "dave", "dave"));
    record(&ring, 11, msg("reg-1", "REGISTER", 401, "dave", "dave"));
    record(&ring, 20, msg("call-1", "INVITE", 0, "alice", "bob"));
    record(&ring, 21, msg("call-1", "INVITE", 180, "alice", "bob"));
    record(&ring, 30, msg("call-2", "INVITE", 0, "carol", "Alice"));
    record(&ring, 40, msg("call-1", "BYE", 0, "alice", "bob"));
    record(&ring, 41, msg("call-1", "BYE", 200, "alice", "bob"));

    let found = ring.search_user("alice", 10);
    assert_eq!(
        found.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(),
        ["call-1", "call-2"]
    );
    assert_eq!(found[0].messages, 4);
    assert_eq!(found[0].method, "INVITE");
    assert_eq!((found[0].first_at_us, found[0].last_at_us), (20, 41));
    assert_eq!(found[0].from_user.as_deref(), Some("alice"));
    assert_eq!(found[0].to_user.as_deref(), Some("bob"));
    assert_eq!(found[1].to_user.as_deref(), Some("Alice"));

    assert_eq!(ring.search_user("ALICE", 1).len(), 1);
    assert!(ring.search_user("ali", 10).is_empty());
    assert!(ring.search_user("", 10).is_empty());
    let dave = ring.search_user("dave", 10);
    assert_eq!(dave.len(), 1);
    assert_eq!((dave[0].method.as_str(), dave[0].messages), ("REGISTER", 2));

    let recent = ring.recent(10);
    assert_eq!(
        recent.iter().map(|c| c.call_id.as_str()).collect::<Vec<_>>(),
        ["call-1", "call-2", "reg-1"]
    );
}

#[test]
fn summary_uses_what_is_left_after_eviction() {
    let ring = TraceRing::new(3);
    record(&ring, 1, msg("c", "INVITE", 0, "alice", "bob"));
    record(&ring, 2, msg("c", "INVITE", 200, "alice", "bob"));
    record(&ring, 3, msg("c", "ACK", 0, "alice", "bob"));
    record(&ring, 4, msg("c", "BYE", 200, "alice", "bob"));
    let c = &ring.recent(1)[0];
    assert_eq!((c.messages, c.first_at_us, c.method.as_str()), (3, 2, "ACK"));
    record(&ring, 5, msg("d", "OPTIONS", 200, "x", "y"));
    record(&ring, 6, msg("d", "OPTIONS", 200, "x", "y"));
    let c = &ring.recent(2)[1];
    assert_eq!((c.call_id.as_str(), c.messages, c.method.as_str()), ("c", 1, ""));
    ring.check_invariants();
}

#[test]
fn call_returns_whole_messages() {
    let ring = TraceRing::new(10);
    let payload = msg("abc@h", "INVITE", 0, "alice", "bob");
    ring.record(42, Direction::Out, Proto::Tls, local(), remote(), payload.clone());
    let got = ring.call("abc@h");
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(
        (m.seq, m.at_us, m.direction, m.proto),
        (1, 42, Direction::Out, Proto::Tls)
    );
    assert_eq!((m.local, m.remote), (local(), remote()));
    assert_eq!(m.payload, payload);
    assert_eq!(m.summary.first_line, "INVITE sip:bob@example.com SIP/2.0");
    assert_eq!(m.summary.cseq_method.as_deref(), Some("INVITE"));
    assert_eq!(ring.since(0, 10).len(), 1);
    assert!(ring.since(1, 10).is_empty());
}

#[test]
fn concurrent_recording() {
    let ring = Arc::new(TraceRing::new(5_000));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                for i in 0..10_000u64 {
                    let id = format!("t{t}-c{}", i % 50);
                    record(&ring, i, msg(&id, "INFO", 0, "a", "b"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(ring.len(), 5_000);
    assert_eq!(ring.recorded(), 40_000);
    ring.check_invariants();
    let total: usize = ring.recent(usize::MAX).iter().map(|c| c.messages).sum();
    assert_eq!(total, 5_000);
}

/// The cost of the lookups at capacity 100,000 (run with `--release --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check"]
fn scan_cost() {
    use std::time::Instant;
    let ring = TraceRing::new(100_000);
    let payloads: Vec<Bytes> = (0..20_000)
        .map(|c| msg(&format!("{c:08x}@198.51.100.7"), "INVITE", 0, &format!("u{c}"), "bob"))
        .collect();
    let (l, r) = (local(), remote());
    let start = Instant::now();
    for i in 0..100_000u64 {
        ring.record(
            i,
            Direction::In,
            Proto::Udp,
            l,
            r,
            payloads[(i % 20_000) as usize].clone(),
        );
    }
    let per_record = start.elapsed() / 100_000;
    // Full: every record also evicts.
    let start = Instant::now();
    for i in 100_000..200_000u64 {
        ring.record(
            i,
            Direction::In,
            Proto::Udp,
            l,
            r,
            payloads[(i % 20_000) as usize].clone(),
        );
    }
    let per_record_full = start.elapsed() / 100_000;
    let t = Instant::now();
    let none = ring.search_user("nobody", 50);
    let search_miss = t.elapsed();
    let t = Instant::now();
    let recent = ring.recent(50);
    let recent_50 = t.elapsed();
    let t = Instant::now();
    let call = ring.call("00000007@198.51.100.7");
    let call_t = t.elapsed();
    assert!(none.is_empty() && recent.len() == 50 && call.len() == 5);
    eprintln!(
        "record: {per_record:?}/message filling, {per_record_full:?} full; search_user miss over 100k: {search_miss:?}; recent(50): {recent_50:?}; \
         call (5 messages): {call_t:?}"
    );
}
