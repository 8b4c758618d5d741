//! Client transactions on a virtual clock: Timers A, B, D, E, F, K, M, the ACK for non-2xx,
//! 2xx retransmissions in Accepted, stray responses.

mod support;

use sip_txn::{Event, Transport, TxnError};
use support::*;

fn start(h: &mut Harness, method: &str, branch: &str, transport: Transport) -> sip_txn::TxId {
    let t = match transport {
        Transport::Udp => "UDP",
        _ => "TCP",
    };
    let req = parse(&request(method, branch, t));
    h.layer.send_request(h.now, req, peer(transport)).expect("started")
}

fn responses(events: &[Event]) -> Vec<u16> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Response { response, .. } => response.status_code(),
            _ => None,
        })
        .collect()
}

#[test]
fn invite_over_udp_retransmits_on_timer_a_until_timer_b() {
    let mut h = Harness::new();
    start(&mut h, "INVITE", "z9hG4bKa", Transport::Udp);
    let sent = h.run_until(64 * T1);
    // Timer A doubles without the T2 cap (§17.1.1.2).
    assert_eq!(times(&sent), [0, 500, 1500, 3500, 7500, 15500, 31500]);
    let ev = h.events();
    assert_eq!(timeouts(&ev), 1, "Timer B");
    assert_eq!(terminated(&ev), 1);
}

#[test]
fn invite_over_tcp_sends_once_and_times_out_on_b() {
    let mut h = Harness::new();
    start(&mut h, "INVITE", "z9hG4bKb", Transport::Tcp);
    let sent = h.run_until(64 * T1);
    assert_eq!(times(&sent), [0]);
    assert_eq!(timeouts(&h.events()), 1);
}

#[test]
fn provisional_stops_timer_a_and_b() {
    let mut h = Harness::new();
    start(&mut h, "INVITE", "z9hG4bKp", Transport::Udp);
    h.transmits();
    h.advance_to(100);
    h.receive(&response(180, "INVITE", "z9hG4bKp", Some("t")), &peer(Transport::Udp));
    assert_eq!(responses(&h.events()), [180]);
    let sent = h.run_until(200_000);
    assert!(sent.is_empty(), "no retransmission in Proceeding");
    assert!(
        h.events().is_empty(),
        "no Timer B in Proceeding (Timer C is the proxy's)"
    );
    assert_eq!(h.layer.client_transactions(), 1);
}

#[test]
fn non_2xx_is_acked_by_the_layer_and_timer_d_ends_it() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    start(&mut h, "INVITE", "z9hG4bKd", Transport::Udp);
    h.transmits();
    h.advance_to(50);
    h.receive(&response(486, "INVITE", "z9hG4bKd", Some("callee")), &p);
    assert_eq!(responses(&h.events()), [486]);
    let acks = h.transmits();
    assert_eq!(acks.len(), 1);
    let ack = &acks[0].message;
    assert_eq!(ack.method(), Some(&sip::Method::Ack));
    assert_eq!(ack.request_uri_str(), Some("sip:bob@example.com"));
    assert_eq!(
        ack.via().expect("via").branch(),
        Some("z9hG4bKd"),
        "same branch as the INVITE"
    );
    assert_eq!(ack.vias().count(), 1);
    assert_eq!(
        ack.to_header().expect("to").tag(),
        Some("callee"),
        "To from the response"
    );
    assert_eq!(ack.from_header().expect("from").tag(), Some("a1"));
    assert_eq!(ack.cseq().expect("cseq").seq, 7);
    assert_eq!(ack.cseq().expect("cseq").method, sip::Method::Ack);
    assert_eq!(ack.routes().count(), 1, "the INVITE's Route set");
    assert_eq!(ack.call_id(), Ok("call-z9hG4bKd"));
    ack.check_essentials().expect("a well-formed ACK");
    // A retransmitted final: ACK again, nothing to the TU.
    h.receive(&response(486, "INVITE", "z9hG4bKd", Some("callee")), &p);
    assert_eq!(h.transmits().len(), 1);
    assert!(h.events().is_empty());
    // Timer D: at least 32 s.
    h.advance_to(50 + 32_000 - 1);
    assert_eq!(h.layer.len(), 1);
    h.advance_to(50 + 32_000);
    assert_eq!(terminated(&h.events()), 1);
}

#[test]
fn every_2xx_reaches_the_tu_in_accepted_until_timer_m() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    start(&mut h, "INVITE", "z9hG4bKm", Transport::Udp);
    h.transmits();
    h.receive(&response(200, "INVITE", "z9hG4bKm", Some("x")), &p);
    h.receive(&response(200, "INVITE", "z9hG4bKm", Some("x")), &p);
    h.receive(&response(200, "INVITE", "z9hG4bKm", Some("y")), &p);
    assert_eq!(
        responses(&h.events()),
        [200, 200, 200],
        "forked and retransmitted 2xx all go up"
    );
    assert!(h.transmits().is_empty(), "the layer never ACKs a 2xx");
    h.advance_to(64 * T1 - 1);
    assert_eq!(h.layer.len(), 1);
    h.advance_to(64 * T1);
    assert_eq!(terminated(&h.events()), 1);
}

#[test]
fn non_invite_over_udp_retransmits_on_timer_e_capped_at_t2_until_timer_f() {
    let mut h = Harness::new();
    start(&mut h, "OPTIONS", "z9hG4bKe", Transport::Udp);
    let sent = h.run_until(64 * T1);
    assert_eq!(
        times(&sent),
        [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let ev = h.events();
    assert_eq!(timeouts(&ev), 1, "Timer F");
    assert_eq!(terminated(&ev), 1);
}

#[test]
fn timer_e_fires_every_t2_in_proceeding_then_k_ends_it() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    start(&mut h, "REGISTER", "z9hG4bKk", Transport::Udp);
    h.transmits();
    h.advance_to(100);
    h.receive(&response(100, "REGISTER", "z9hG4bKk", None), &p);
    assert_eq!(responses(&h.events()), [100]);
    let sent = h.run_until(12_000);
    assert_eq!(times(&sent), [500, 4500, 8500], "in Proceeding, E is reset to T2");
    h.receive(&response(200, "REGISTER", "z9hG4bKk", Some("r")), &p);
    assert_eq!(responses(&h.events()), [200]);
    h.receive(&response(200, "REGISTER", "z9hG4bKk", Some("r")), &p);
    assert!(h.events().is_empty(), "the retransmitted final is absorbed");
    let sent = h.run_until(12_000 + 5_000 - 1);
    assert!(sent.is_empty(), "no more retransmissions once Completed");
    assert_eq!(h.layer.len(), 1);
    h.advance_to(12_000 + 5_000);
    assert_eq!(terminated(&h.events()), 1, "Timer K = T4");
}

#[test]
fn non_invite_over_tcp_has_no_e_and_zero_k() {
    let mut h = Harness::new();
    start(&mut h, "OPTIONS", "z9hG4bKtk", Transport::Tcp);
    h.transmits();
    h.receive(&response(200, "OPTIONS", "z9hG4bKtk", Some("r")), &peer(Transport::Tcp));
    h.advance_to(0);
    let ev = h.events();
    assert_eq!(responses(&ev), [200]);
    assert_eq!(terminated(&ev), 1);
}

#[test]
fn stray_responses_and_send_errors() {
    let mut h = Harness::new();
    h.receive(&response(200, "OPTIONS", "z9hG4bKnobody", None), &peer(Transport::Udp));
    assert!(matches!(h.events().as_slice(), [Event::StrayResponse { .. }]));

    let ack = parse(&request("ACK", "z9hG4bKack", "UDP"));
    assert_eq!(
        h.layer.send_request(h.now, ack.clone(), peer(Transport::Udp)),
        Err(TxnError::AckIsNotATransaction)
    );
    h.layer.send_stateless(ack, peer(Transport::Udp));
    assert!(matches!(h.transmits().as_slice(), [t] if t.tx.is_none()));
    let no_cookie = parse(&request("OPTIONS", "old", "UDP"));
    assert_eq!(
        h.layer.send_request(h.now, no_cookie, peer(Transport::Udp)),
        Err(TxnError::MissingBranch)
    );
    start(&mut h, "OPTIONS", "z9hG4bKdup", Transport::Udp);
    let dup = parse(&request("OPTIONS", "z9hG4bKdup", "UDP"));
    assert_eq!(
        h.layer.send_request(h.now, dup, peer(Transport::Udp)),
        Err(TxnError::DuplicateBranch)
    );
    let tx = start(&mut h, "OPTIONS", "z9hG4bKfail", Transport::Udp);
    h.events();
    h.layer.transport_error(h.now, tx);
    assert!(matches!(
        h.events().as_slice(),
        [Event::TransportError { .. }, Event::Terminated { .. }]
    ));
}

#[test]
fn the_timer_queue_stays_bounded() {
    let mut h = Harness::new();
    for i in 0..1_000 {
        start(&mut h, "OPTIONS", &format!("z9hG4bKq{i}"), Transport::Udp);
        h.receive(
            &response(200, "OPTIONS", &format!("z9hG4bKq{i}"), Some("r")),
            &peer(Transport::Udp),
        );
    }
    h.run_until(64 * T1 + 10_000);
    assert!(h.layer.is_empty());
    assert_eq!(h.layer.poll_timeout(), None, "stale timers are pruned");
}
