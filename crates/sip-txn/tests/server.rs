//! Server transactions on a virtual clock: every timer path (G, H, I, J, L, the 100 Trying delay),
//! retransmission absorption, ACK handling, CANCEL and RFC 2543 matching.

mod support;

use std::time::Duration;

use sip::Message;
use sip_txn::{Event, TimerConfig, Transport, TxnError};
use support::*;

fn reply(h: &mut Harness, tx: sip_txn::TxId, code: u16) {
    let req = h.layer.request_of(tx).expect("live").clone();
    let resp = Message::response_to(&req, code, None, Some("srv"));
    h.layer.respond(h.now, tx, resp).expect("respond");
}

#[test]
fn non_invite_over_udp_absorbs_retransmissions_and_lingers_for_timer_j() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    let req = request("OPTIONS", "z9hG4bKopt", "UDP");
    h.receive(&req, &p);
    let tx = only_request(h.events());
    assert!(h.transmits().is_empty(), "no 100 Trying for non-INVITE");
    reply(&mut h, tx, 200);
    let first = h.transmits();
    assert_eq!(first.len(), 1);
    for i in 1..=5 {
        h.advance_to(i * 100);
        h.receive(&req, &p);
        let again = h.transmits();
        assert_eq!(again.len(), 1, "the stored response is sent again");
        assert_eq!(
            again[0].message.to_bytes(),
            first[0].message.to_bytes(),
            "identical bytes"
        );
    }
    assert!(h.events().is_empty(), "retransmissions never reach the TU");
    // Timer J: 64*T1 after the final response.
    h.advance_to(64 * T1 - 1);
    assert_eq!(h.layer.len(), 1);
    h.advance_to(64 * T1);
    assert_eq!(terminated(&h.events()), 1);
    assert!(h.layer.is_empty());
    h.receive(&req, &p);
    only_request(h.events());
}

#[test]
fn a_stateless_answer_leaves_no_transaction_and_a_retransmission_is_a_new_request() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    let req = request("REGISTER", "z9hG4bKreg", "UDP");
    h.receive(&req, &p);
    let tx = only_request(h.events());
    let challenge = Message::response_to(h.layer.request_of(tx).expect("live"), 401, None, Some("srv"));
    h.layer.respond_stateless(h.now, tx, challenge).expect("respond");
    assert_eq!(h.transmits().iter().map(status).collect::<Vec<_>>(), [Some(401)]);
    assert_eq!(terminated(&h.events()), 1);
    assert!(h.layer.is_empty(), "nothing lingers for Timer J");
    h.advance_to(100);
    h.receive(&req, &p);
    let again = only_request(h.events());
    assert_ne!(again, tx, "the retransmission is answered afresh");

    // An INVITE keeps its transaction: its final response is retransmitted until ACKed.
    let invite = request("INVITE", "z9hG4bKinv", "UDP");
    h.receive(&invite, &p);
    let itx = only_request(h.events());
    let _ = h.transmits();
    let challenge = Message::response_to(h.layer.request_of(itx).expect("live"), 407, None, Some("srv"));
    h.layer.respond_stateless(h.now, itx, challenge).expect("respond");
    assert_eq!(h.transmits().len(), 1);
    assert!(
        h.layer.request_of(itx).is_none() && h.layer.len() == 2,
        "the INVITE is Completed, not gone"
    );
}

#[test]
fn non_invite_over_tcp_ends_at_once() {
    let mut h = Harness::new();
    h.receive(&request("OPTIONS", "z9hG4bKtcp", "TCP"), &peer(Transport::Tcp));
    let tx = only_request(h.events());
    reply(&mut h, tx, 200);
    assert_eq!(h.transmits().len(), 1);
    h.advance_to(0);
    assert_eq!(terminated(&h.events()), 1, "Timer J is zero on reliable transports");
}

#[test]
fn provisional_then_final_and_retransmission_in_proceeding() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    let req = request("MESSAGE", "z9hG4bKmsg", "UDP");
    h.receive(&req, &p);
    let tx = only_request(h.events());
    reply(&mut h, tx, 180);
    assert_eq!(status(&h.transmits()[0]), Some(180));
    h.receive(&req, &p);
    assert_eq!(
        status(&h.transmits()[0]),
        Some(180),
        "Proceeding re-sends the provisional"
    );
    reply(&mut h, tx, 404);
    assert_eq!(status(&h.transmits()[0]), Some(404));
    let err = h
        .layer
        .respond(h.now, tx, Message::response(200, None))
        .expect_err("second final");
    assert!(matches!(err, TxnError::InvalidState(_)));
}

#[test]
fn invite_gets_100_trying_from_the_layer_after_200_ms() {
    let mut h = Harness::new();
    h.receive(&request("INVITE", "z9hG4bKinv", "UDP"), &peer(Transport::Udp));
    let tx = only_request(h.events());
    h.advance_to(199);
    assert!(h.transmits().is_empty());
    h.advance_to(200);
    let t = h.transmits();
    assert_eq!(t.len(), 1);
    assert_eq!(status(&t[0]), Some(100));
    assert!(
        t[0].message.to_header().expect("to").tag().is_none(),
        "100 Trying has no To tag"
    );
    reply(&mut h, tx, 180);
    assert_eq!(status(&h.transmits()[0]), Some(180));
}

#[test]
fn no_100_trying_when_the_tu_answers_first() {
    let mut h = Harness::new();
    h.receive(&request("INVITE", "z9hG4bKfast", "UDP"), &peer(Transport::Udp));
    let tx = only_request(h.events());
    h.advance_to(50);
    reply(&mut h, tx, 486);
    assert_eq!(status(&h.transmits()[0]), Some(486));
    h.advance_to(200);
    assert!(h.transmits().is_empty(), "nothing at 200 ms");
}

#[test]
fn trying_delay_zero_sends_100_on_arrival() {
    let mut h = Harness::with(TimerConfig {
        trying_delay: Duration::ZERO,
        ..TimerConfig::default()
    });
    h.receive(&request("INVITE", "z9hG4bKproxy", "UDP"), &peer(Transport::Udp));
    assert_eq!(status(&h.transmits()[0]), Some(100));
}

#[test]
fn invite_non_2xx_is_retransmitted_on_timer_g_until_timer_h() {
    let mut h = Harness::new();
    h.receive(&request("INVITE", "z9hG4bKg", "UDP"), &peer(Transport::Udp));
    let tx = only_request(h.events());
    reply(&mut h, tx, 486);
    let sent = h.run_until(64 * T1);
    // At 0 the response itself, then T1, 2T1, 4T1, then capped at T2 = 4 s.
    assert_eq!(
        times(&sent),
        [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(sent.iter().all(|(_, t)| status(t) == Some(486)));
    let ev = h.events();
    assert_eq!(timeouts(&ev), 1, "Timer H: the ACK never came");
    assert_eq!(terminated(&ev), 1);
    assert!(h.layer.is_empty());
}

#[test]
fn ack_confirms_and_timer_i_ends_it() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    h.receive(&request("INVITE", "z9hG4bKack", "UDP"), &p);
    let tx = only_request(h.events());
    reply(&mut h, tx, 603);
    h.transmits();
    h.advance_to(700);
    assert_eq!(h.transmits().len(), 1, "one retransmission at T1");
    let ack =
        request("ACK", "z9hG4bKack", "UDP").replace("To: <sip:bob@example.com>", "To: <sip:bob@example.com>;tag=srv");
    h.receive(&ack, &p);
    h.receive(&ack, &p);
    assert!(h.events().is_empty(), "ACK for a non-2xx is absorbed");
    let sent = h.run_until(700 + 5_000 - 1);
    assert!(sent.is_empty(), "Timer G stopped in Confirmed");
    assert_eq!(h.layer.len(), 1);
    h.advance_to(700 + 5_000);
    assert_eq!(terminated(&h.events()), 1, "Timer I = T4");
}

#[test]
fn reliable_invite_has_no_timer_g_and_zero_timer_i() {
    let mut h = Harness::new();
    let p = peer(Transport::Tcp);
    h.receive(&request("INVITE", "z9hG4bKrel", "TCP"), &p);
    let tx = only_request(h.events());
    reply(&mut h, tx, 486);
    h.transmits();
    h.receive(&request("ACK", "z9hG4bKrel", "TCP"), &p);
    h.advance_to(0);
    assert_eq!(terminated(&h.events()), 1);
    assert!(h.transmits().is_empty());
}

#[test]
fn accepted_absorbs_invite_retransmissions_passes_acks_and_ends_on_timer_l() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    let inv = request("INVITE", "z9hG4bKacc", "UDP");
    h.receive(&inv, &p);
    let tx = only_request(h.events());
    let saved = h.layer.request_of(tx).expect("live").clone();
    reply(&mut h, tx, 200);
    assert_eq!(status(&h.transmits()[0]), Some(200));
    assert!(h.layer.request_of(tx).is_none(), "the request is dropped once answered");
    h.receive(&inv, &p);
    assert!(
        h.transmits().is_empty(),
        "Accepted: the INVITE retransmission is absorbed silently"
    );
    h.layer
        .respond(h.now, tx, Message::response_to(&saved, 200, None, Some("srv")))
        .expect("2xx in Accepted");
    assert_eq!(h.transmits().len(), 1, "further 2xx from the TU are sent");
    h.receive(&request("ACK", "z9hG4bKacc", "UDP"), &p);
    let ev = h.events();
    assert!(matches!(ev.as_slice(), [Event::Ack { invite: Some(i), .. }] if *i == tx));
    h.advance_to(64 * T1 - 1);
    assert_eq!(h.layer.len(), 1);
    h.advance_to(64 * T1);
    assert_eq!(terminated(&h.events()), 1);
}

#[test]
fn ack_for_2xx_without_a_transaction_goes_to_the_tu() {
    let mut h = Harness::new();
    h.receive(&request("ACK", "z9hG4bKnew", "UDP"), &peer(Transport::Udp));
    assert!(matches!(h.events().as_slice(), [Event::Ack { invite: None, .. }]));
    assert!(h.layer.is_empty());
}

#[test]
fn cancel_finds_its_invite() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    h.receive(&request("INVITE", "z9hG4bKc", "UDP"), &p);
    let inv = only_request(h.events());
    h.receive(&request("CANCEL", "z9hG4bKc", "UDP"), &p);
    let ev = h.events();
    let Some(Event::Cancel { tx, invite, .. }) = ev.first() else {
        panic!("cancel event: {ev:?}")
    };
    assert_eq!(*invite, Some(inv));
    assert_ne!(*tx, inv);
    h.receive(&request("CANCEL", "z9hG4bKother", "UDP"), &p);
    assert!(matches!(h.events().as_slice(), [Event::Cancel { invite: None, .. }]));
    assert_eq!(h.layer.pending_server_transactions(), 3);
}

#[test]
fn rfc2543_requests_match_without_the_cookie() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    let old = request("INVITE", "oldstyle1", "UDP");
    h.receive(&old, &p);
    let tx = only_request(h.events());
    reply(&mut h, tx, 486);
    h.transmits();
    h.receive(&old, &p);
    assert_eq!(
        status(&h.transmits()[0]),
        Some(486),
        "retransmission matched the old way"
    );
    assert!(h.events().is_empty());
    let ack = old.replace("INVITE sip:", "ACK sip:").replace("7 INVITE", "7 ACK");
    h.receive(&ack, &p);
    assert!(h.events().is_empty(), "ACK matched the old way and absorbed");
    let bare = request("OPTIONS", "z9hG4bK", "UDP");
    h.receive(&bare, &p);
    let tx2 = only_request(h.events());
    reply(&mut h, tx2, 200);
    h.transmits();
    h.receive(&bare, &p);
    assert_eq!(
        h.transmits().len(),
        1,
        "a bare magic cookie falls back to RFC 2543 matching"
    );
}

#[test]
fn tu_errors_and_transport_errors() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    h.receive(&request("OPTIONS", "z9hG4bKerr", "UDP"), &p);
    let tx = only_request(h.events());
    let req = h.layer.request_of(tx).expect("live").clone();
    assert!(matches!(
        h.layer.respond(h.now, tx, req.clone()),
        Err(TxnError::NotAResponse)
    ));
    h.layer.transport_error(h.now, tx);
    let ev = h.events();
    assert!(matches!(
        ev.as_slice(),
        [Event::TransportError { .. }, Event::Terminated { .. }]
    ));
    assert!(matches!(
        h.layer.respond(h.now, tx, Message::response_to(&req, 200, None, None)),
        Err(TxnError::UnknownTransaction)
    ));
}

#[test]
fn matches_server_transaction_sees_retransmissions_acks_and_cancels() {
    let mut h = Harness::new();
    let p = peer(Transport::Udp);
    h.receive(&request("INVITE", "z9hG4bKm", "UDP"), &p);
    h.events();
    assert!(
        h.layer
            .matches_server_transaction(&parse(&request("INVITE", "z9hG4bKm", "UDP")))
    );
    assert!(
        h.layer
            .matches_server_transaction(&parse(&request("ACK", "z9hG4bKm", "UDP")))
    );
    assert!(
        h.layer
            .matches_server_transaction(&parse(&request("CANCEL", "z9hG4bKm", "UDP")))
    );
    assert!(
        !h.layer
            .matches_server_transaction(&parse(&request("INVITE", "z9hG4bKz", "UDP")))
    );
}
