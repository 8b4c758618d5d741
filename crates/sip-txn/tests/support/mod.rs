//! A virtual clock and message builders for the transaction-layer tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::Message;
use sip_txn::{Event, Peer, TimerConfig, TransactionLayer, Transmit, Transport};

pub const T1: u64 = 500;

pub struct Harness {
    pub layer: TransactionLayer,
    pub t0: Instant,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(TimerConfig::default())
    }

    pub fn with(config: TimerConfig) -> Self {
        // The only clock reading: a fixed origin; every later instant is origin + offset.
        let t0 = Instant::now();
        Harness {
            layer: TransactionLayer::new(config),
            t0,
            now: t0,
        }
    }

    pub fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Moves the clock to `ms` after the origin, firing due timers.
    pub fn advance_to(&mut self, ms: u64) {
        self.now = self.at(ms);
        self.layer.handle_timeout(self.now);
    }

    /// Runs the clock to `end_ms`, stopping at every deadline the layer announces, and returns
    /// (time in ms, transmission) for everything sent on the way.
    pub fn run_until(&mut self, end_ms: u64) -> Vec<(u64, Transmit)> {
        let mut sent = Vec::new();
        loop {
            sent.extend(self.transmits().into_iter().map(|t| (self.ms(), t)));
            match self.layer.poll_timeout() {
                Some(d) if d <= self.at(end_ms) => {
                    self.now = d;
                    self.layer.handle_timeout(d);
                }
                _ => break,
            }
        }
        self.now = self.at(end_ms);
        self.layer.handle_timeout(self.now);
        sent.extend(self.transmits().into_iter().map(|t| (self.ms(), t)));
        sent
    }

    pub fn ms(&self) -> u64 {
        self.now.duration_since(self.t0).as_millis() as u64
    }

    pub fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.layer.poll_transmit()).collect()
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.layer.poll_event()).collect()
    }

    pub fn receive(&mut self, raw: &str, from: &Peer) {
        let m = parse(raw);
        self.layer.handle_message(self.now, m, from.clone());
    }
}

pub fn parse(raw: &str) -> Message {
    let m = Message::parse(raw.as_bytes().to_vec()).expect("test message parses");
    m.check_essentials().expect("test message is well-formed");
    m
}

pub fn peer(transport: Transport) -> Peer {
    let addr: SocketAddr = "192.0.2.10:5060".parse().expect("addr");
    Peer {
        transport,
        addr,
        conn: 0,
    }
}

pub fn request(method: &str, branch: &str, transport: &str) -> String {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 192.0.2.10:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:proxy.example.com;lr>\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 7 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A response to `request(method, branch, ...)`.
pub fn response(code: u16, method: &str, branch: &str, to_tag: Option<&str>) -> String {
    let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "SIP/2.0 {code} Whatever\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>{tag}\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 7 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

pub fn status(t: &Transmit) -> Option<u16> {
    t.message.status_code()
}

pub fn times(sent: &[(u64, Transmit)]) -> Vec<u64> {
    sent.iter().map(|(t, _)| *t).collect()
}

/// The one Request event's transaction.
pub fn only_request(events: Vec<Event>) -> sip_txn::TxId {
    let reqs: Vec<_> = events
        .into_iter()
        .filter_map(|e| match e {
            Event::Request { tx, .. } => Some(tx),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 1, "exactly one new request");
    reqs[0]
}

pub fn terminated(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Terminated { .. })).count()
}

pub fn timeouts(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Timeout { .. })).count()
}
