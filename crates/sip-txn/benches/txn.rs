//! Throughput of the sans-IO transaction core: complete non-INVITE server transactions
//! (request in → event → TU's 200 → transmission → Timer J → terminated), on pre-parsed requests,
//! so the figure is the transaction layer's own cost (plus building the 200 with
//! `Message::response_to`, which every real TU pays).
//!
//! Run: `cargo bench -p sip-txn --bench txn`; prints `transactions/s`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use sip::Message;
use sip_txn::{Event, Peer, TimerConfig, TransactionLayer, Transport};

fn requests(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let raw = format!(
                "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-bench-{i};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:ping@127.0.0.1>;tag={i}\r\n\
                 To: <sip:127.0.0.1:5060>\r\n\
                 Call-ID: bench-{i}@127.0.0.1\r\n\
                 CSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            Message::parse(raw.into_bytes()).expect("valid")
        })
        .collect()
}

/// Runs every request through a full transaction; returns transmissions made.
fn run(layer: &mut TransactionLayer, reqs: Vec<Message>, t0: Instant) -> usize {
    let peer = Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], 5061)),
        conn: 0,
    };
    let mut sent = 0;
    for req in reqs {
        layer.handle_message(t0, req, peer.clone());
        while let Some(ev) = layer.poll_event() {
            if let Event::Request { tx, request, .. } = ev {
                let ok = Message::response_to(&request, 200, None, Some("bench"));
                let _ = layer.respond(t0, tx, ok);
            }
        }
        while let Some(t) = layer.poll_transmit() {
            black_box(&t);
            sent += 1;
        }
    }
    // Timer J (64*T1 over UDP) ends them all.
    layer.handle_timeout(t0 + Duration::from_secs(33));
    while layer.poll_event().is_some() {}
    sent
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let t0 = Instant::now();
    if !benching {
        let mut layer = TransactionLayer::new(TimerConfig::default());
        assert_eq!(run(&mut layer, requests(100), t0), 100);
        assert!(layer.is_empty());
        return;
    }
    let batch = 10_000;
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(5));
    c.bench_function("txn/options_server_transaction_x10000", |b| {
        b.iter_batched(
            || (TransactionLayer::new(TimerConfig::default()), requests(batch)),
            |(mut layer, reqs)| run(&mut layer, reqs, t0),
            BatchSize::LargeInput,
        )
    });
    c.final_summary();

    // Direct figure: 20 rounds of 10 000 transactions each.
    let mut total = Duration::ZERO;
    let rounds = 20;
    for _ in 0..rounds {
        let reqs = requests(batch);
        let mut layer = TransactionLayer::new(TimerConfig::default());
        let start = Instant::now();
        black_box(run(&mut layer, reqs, t0));
        total += start.elapsed();
    }
    let per_s = (rounds * batch) as f64 / total.as_secs_f64();
    println!("transactions/s: {per_s:.0} (non-INVITE server transactions, pre-parsed requests, one core)");
}
