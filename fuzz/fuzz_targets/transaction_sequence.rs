//! The sans-IO transaction layer (`sip-txn`) fed a sequence of operations on a virtual clock:
//! messages from the network (built from templates whose branch, Call-ID, CSeq, method, status
//! and tags the fuzzer picks from small sets, so that they match each other's transactions; the
//! same templates with a byte-level edit; raw bytes), requests the TU sends, TU responses,
//! transport errors and clock advances.
//!
//! Properties:
//! - nothing panics, and every `poll_event` / `poll_transmit` queue drains (bounded per step);
//! - after `handle_timeout(now)`, `poll_timeout()` is later than `now` (every due timer fired);
//! - `len() == server_transactions() + client_transactions()`, and `len()` never exceeds the
//!   number of operations that could have created a transaction (no leak per message);
//! - a transaction id is terminated at most once, only if it was handed out, and no event names
//!   it afterwards;
//! - at the end, once a well-behaved TU and peer have closed what is left open by design (a final
//!   response for every server transaction still waiting for one, a final response from the
//!   network for every client transaction, which an INVITE in Proceeding waits for forever), five
//!   minutes of clock with no new input leave 0 transactions and no armed timer.
//!
//! Run it without ASan (`cargo +nightly fuzz run -s none transaction_sequence`): every layer
//! reserves a 64 MB timer heap up front, which ASan pays for on each input (~130 executions per
//! second with it, ~10,000 without). The code under test is safe Rust.
#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use sip::Message;
use sip_txn::{Event, Peer, TimerConfig, TransactionLayer, Transport, TxId};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Drive the whole engine (`server::engine::Engine` with no registrar and no proxy) instead
    /// of the bare layer.
    engine: bool,
    zero_trying_delay: bool,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A templated message arrives from the network.
    Receive { msg: Template, from: PeerSel },
    /// The same, with `bytes` written over the rendering at `at` (or inserted).
    Mutated {
        msg: Template,
        from: PeerSel,
        at: u16,
        insert: bool,
        bytes: Vec<u8>,
    },
    /// Arbitrary bytes arrive.
    Raw { from: PeerSel, bytes: Vec<u8> },
    /// The clock moves on by this many milliseconds.
    Advance(u16),
    /// The clock moves on by this many seconds.
    AdvanceSecs(u8),
    /// The TU answers one of the server transactions it was told about.
    Respond { pick: u8, code: Code, to_tag: bool },
    /// The TU starts a client transaction.
    Send { msg: Template, to: PeerSel },
    /// The transport fails for one of the transactions handed out.
    TransportError { pick: u8 },
    /// A message sent outside any transaction (2xx ACK).
    Stateless { msg: Template, to: PeerSel },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Invite,
    Ack,
    Cancel,
    Bye,
    Register,
    Options,
    Response(Code),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Code {
    Common(u8),
    Any(u16),
}

impl Code {
    fn get(self) -> u16 {
        const COMMON: [u16; 16] = [
            100, 180, 183, 200, 202, 302, 401, 404, 407, 408, 481, 486, 487, 500, 503, 603,
        ];
        match self {
            Code::Common(i) => COMMON[usize::from(i) % COMMON.len()],
            Code::Any(c) => 100 + c % 600,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Template {
    kind: Kind,
    /// The CSeq method: the request's own, or another one (a response names its request's).
    cseq_method: Option<MethodSel>,
    /// 0..=3: branch z9hG4bK-b<n>; 4: an RFC 2543 branch-less Via.
    branch: u8,
    via_host: u8,
    call_id: u8,
    cseq: u8,
    from_tag: u8,
    /// 0: no To tag.
    to_tag: u8,
    /// A second Via below the top one.
    second_via: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum MethodSel {
    Invite,
    Ack,
    Cancel,
    Bye,
    Register,
    Options,
}

impl MethodSel {
    fn as_str(self) -> &'static str {
        match self {
            MethodSel::Invite => "INVITE",
            MethodSel::Ack => "ACK",
            MethodSel::Cancel => "CANCEL",
            MethodSel::Bye => "BYE",
            MethodSel::Register => "REGISTER",
            MethodSel::Options => "OPTIONS",
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct PeerSel {
    tcp: bool,
    addr: u8,
    conn: u8,
}

impl PeerSel {
    fn peer(self) -> Peer {
        let addrs = ["192.0.2.10:5060", "192.0.2.11:5060", "[2001:db8::1]:5070"];
        let addr: SocketAddr = addrs[usize::from(self.addr) % addrs.len()].parse().expect("address");
        Peer {
            transport: if self.tcp { Transport::Tcp } else { Transport::Udp },
            addr,
            conn: u64::from(self.conn % 3),
        }
    }
}

impl Template {
    fn render(&self, transport: Transport) -> String {
        let hosts = ["192.0.2.10:5060", "192.0.2.1:5060", "pc.example.com"];
        let host = hosts[usize::from(self.via_host) % hosts.len()];
        let branch = match self.branch % 5 {
            4 => String::new(),
            n => format!(";branch=z9hG4bK-b{n}"),
        };
        let t = transport.as_str();
        let call_id = self.call_id % 3;
        let cseq = 1 + self.cseq % 3;
        let from_tag = self.from_tag % 2;
        let to_tag = match self.to_tag % 3 {
            0 => String::new(),
            n => format!(";tag=t{n}"),
        };
        let second = if self.second_via {
            "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-down\r\n"
        } else {
            ""
        };
        let method = match self.kind {
            Kind::Invite => "INVITE",
            Kind::Ack => "ACK",
            Kind::Cancel => "CANCEL",
            Kind::Bye => "BYE",
            Kind::Register => "REGISTER",
            Kind::Options => "OPTIONS",
            Kind::Response(_) => "INVITE",
        };
        let cseq_method = self.cseq_method.map_or(method, MethodSel::as_str);
        let start = match self.kind {
            Kind::Response(code) => format!("SIP/2.0 {} Whatever", code.get()),
            _ => format!("{method} sip:bob@example.com SIP/2.0"),
        };
        format!(
            "{start}\r\n\
             Via: SIP/2.0/{t} {host}{branch}\r\n\
             {second}\
             Max-Forwards: 70\r\n\
             From: <sip:alice@example.com>;tag=f{from_tag}\r\n\
             To: <sip:bob@example.com>{to_tag}\r\n\
             Call-ID: call-{call_id}@example.com\r\n\
             CSeq: {cseq} {cseq_method}\r\n\
             Contact: <sip:alice@192.0.2.10:5060>\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }
}

/// Parsed and checked as the transport does before handing a message to the layer.
fn parse(bytes: Vec<u8>) -> Option<Message> {
    let m = Message::parse(bytes).ok()?;
    m.check_essentials().ok()?;
    Some(m)
}

fn origin() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

struct Harness {
    layer: TransactionLayer,
    now: Instant,
    /// Server transactions announced to the TU, with their requests.
    server_txs: Vec<(TxId, Message)>,
    /// Every id handed out (events or `send_request`).
    known: HashSet<TxId>,
    terminated: HashSet<TxId>,
    /// Operations that could have created a transaction.
    creators: usize,
}

impl Harness {
    fn drain(&mut self) {
        let mut n = 0usize;
        while let Some(t) = self.layer.poll_transmit() {
            n += 1;
            assert!(n < 10_000, "transmit queue does not drain");
            let _ = t.message.to_bytes();
        }
        let mut n = 0usize;
        while let Some(e) = self.layer.poll_event() {
            n += 1;
            assert!(n < 10_000, "event queue does not drain");
            let tx = match &e {
                Event::Request { tx, request, .. } | Event::Cancel { tx, request, .. } => {
                    assert!(self.known.insert(*tx), "a new request reuses a transaction id");
                    self.server_txs.push((*tx, request.clone()));
                    Some(*tx)
                }
                Event::Ack { invite, .. } => {
                    if let Some(i) = invite {
                        assert!(!self.terminated.contains(i), "ACK names a terminated INVITE");
                    }
                    None
                }
                Event::Response { tx, .. } | Event::Timeout { tx } | Event::TransportError { tx } => Some(*tx),
                Event::StrayResponse { .. } => None,
                Event::Terminated { tx } => {
                    assert!(self.known.contains(tx), "terminated an id never handed out");
                    assert!(self.terminated.insert(*tx), "terminated twice");
                    None
                }
            };
            if let Some(tx) = tx {
                assert!(self.known.contains(&tx), "event for an unknown transaction");
                assert!(!self.terminated.contains(&tx), "event after Terminated");
            }
        }
        assert_eq!(
            self.layer.len(),
            self.layer.server_transactions() + self.layer.client_transactions()
        );
        assert!(
            self.layer.len() <= self.creators,
            "{} transactions from {} requests",
            self.layer.len(),
            self.creators
        );
        let _ = self.layer.pending_server_transactions();
    }

    fn tick(&mut self, by: Duration) {
        self.now += by;
        self.layer.handle_timeout(self.now);
        if let Some(next) = self.layer.poll_timeout() {
            assert!(next > self.now, "a due timer was left unfired");
        }
    }

    fn receive(&mut self, m: Message, from: Peer) {
        let _ = self.layer.matches_server_transaction(&m);
        if m.is_request() {
            self.creators += 1;
        }
        self.layer.handle_message(self.now, m, from);
    }
}

/// The engine answers every request itself, so with no new input after the last operation every
/// transaction ends within the longest timer.
fn run_engine(config: TimerConfig, ops: Vec<Op>) {
    let mut engine = server::engine::Engine::new(config, None, None);
    let mut now = origin();
    let mut out = Vec::new();
    let mut seen: Vec<TxId> = Vec::new();
    let mut requests = 0usize;
    for op in ops {
        let received = match op {
            Op::Receive { msg, from } | Op::Send { msg, to: from } | Op::Stateless { msg, to: from } => {
                let peer = from.peer();
                parse(msg.render(peer.transport).into_bytes()).map(|m| (m, peer))
            }
            Op::Mutated {
                msg,
                from,
                at,
                insert,
                bytes,
            } => {
                let peer = from.peer();
                let mut raw = msg.render(peer.transport).into_bytes();
                let at = usize::from(at) % (raw.len() + 1);
                let end = if insert { at } else { (at + bytes.len()).min(raw.len()) };
                raw.splice(at..end, bytes);
                parse(raw).map(|m| (m, peer))
            }
            Op::Raw { from, bytes } => parse(bytes).map(|m| (m, from.peer())),
            Op::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                engine.on_timeout(now, &mut out);
                None
            }
            Op::AdvanceSecs(s) => {
                now += Duration::from_secs(u64::from(s));
                engine.on_timeout(now, &mut out);
                None
            }
            Op::TransportError { pick } | Op::Respond { pick, .. } => {
                if !seen.is_empty() {
                    let tx = seen[usize::from(pick) % seen.len()];
                    engine.on_transport_error(now, tx, &mut out);
                }
                None
            }
        };
        if let Some((m, peer)) = received {
            if m.is_request() {
                requests += 1;
            }
            engine.on_message(now, m, peer, &mut out);
        }
        for t in out.drain(..) {
            if let Some(tx) = t.tx
                && !seen.contains(&tx)
            {
                seen.push(tx);
            }
            let _ = t.message.to_bytes();
        }
        assert!(engine.transactions() <= requests, "more transactions than requests");
        assert!(engine.take_pending().is_empty(), "no registrar, yet a pending write");
        let _ = engine.take_auth_refusals();
    }
    let end = now + Duration::from_secs(300);
    let mut steps = 0u32;
    while let Some(at) = engine.next_deadline() {
        if at > end {
            break;
        }
        steps += 1;
        assert!(steps < 100_000, "deadlines keep re-arming");
        now = now.max(at);
        engine.on_timeout(now, &mut out);
        out.clear();
    }
    engine.on_timeout(end, &mut out);
    assert_eq!(engine.in_flight(), 0, "the engine left a transaction waiting");
    assert_eq!(engine.transactions(), 0, "transactions outlive every timer");
    assert_eq!(engine.active_calls(), 0);
}

libfuzzer_sys::fuzz_target!(|input: Input| {
    let config = TimerConfig {
        trying_delay: if input.zero_trying_delay {
            Duration::ZERO
        } else {
            TimerConfig::default().trying_delay
        },
        ..TimerConfig::default()
    };
    if input.engine {
        run_engine(config, input.ops);
        return;
    }
    let mut h = Harness {
        layer: TransactionLayer::new(config),
        now: origin(),
        server_txs: Vec::new(),
        known: HashSet::new(),
        terminated: HashSet::new(),
        creators: 0,
    };
    let mut handed_out: Vec<TxId> = Vec::new();
    for op in input.ops {
        match op {
            Op::Receive { msg, from } => {
                let peer = from.peer();
                if let Some(m) = parse(msg.render(peer.transport).into_bytes()) {
                    h.receive(m, peer);
                }
            }
            Op::Mutated {
                msg,
                from,
                at,
                insert,
                bytes,
            } => {
                let peer = from.peer();
                let mut raw = msg.render(peer.transport).into_bytes();
                let at = usize::from(at) % (raw.len() + 1);
                if insert {
                    raw.splice(at..at, bytes);
                } else {
                    let end = (at + bytes.len()).min(raw.len());
                    raw.splice(at..end, bytes);
                }
                if let Some(m) = parse(raw) {
                    h.receive(m, peer);
                }
            }
            Op::Raw { from, bytes } => {
                if let Some(m) = parse(bytes) {
                    h.receive(m, from.peer());
                }
            }
            Op::Advance(ms) => h.tick(Duration::from_millis(u64::from(ms))),
            Op::AdvanceSecs(s) => h.tick(Duration::from_secs(u64::from(s))),
            Op::Respond { pick, code, to_tag } => {
                if !h.server_txs.is_empty() {
                    let (tx, req) = &h.server_txs[usize::from(pick) % h.server_txs.len()];
                    let resp = Message::response_to(req, code.get(), None, to_tag.then_some("uas"));
                    let _ = h.layer.respond(h.now, *tx, resp);
                }
            }
            Op::Send { msg, to } => {
                let peer = to.peer();
                if let Some(m) = parse(msg.render(peer.transport).into_bytes()) {
                    if m.is_request() {
                        h.creators += 1;
                    }
                    if let Ok(tx) = h.layer.send_request(h.now, m, peer) {
                        assert!(h.known.insert(tx), "send_request reused an id");
                        handed_out.push(tx);
                    }
                }
            }
            Op::TransportError { pick } => {
                let ids: Vec<TxId> = h.known.iter().copied().collect();
                if !ids.is_empty() {
                    let mut ids = ids;
                    ids.sort();
                    h.layer.transport_error(h.now, ids[usize::from(pick) % ids.len()]);
                }
            }
            Op::Stateless { msg, to } => {
                let peer = to.peer();
                if let Some(m) = parse(msg.render(peer.transport).into_bytes()) {
                    h.layer.send_stateless(m, peer);
                }
            }
        }
        h.drain();
    }

    // A well-behaved TU answers every request it was given; the peers answer every request we
    // sent. Then nothing may outlive the longest timer (64*T1 = 32 s; Timer D is 32 s; K, I, J
    // at most 64*T1).
    let pending: Vec<(TxId, Message)> = h.server_txs.clone();
    for (tx, req) in pending {
        let resp = Message::response_to(&req, 500, None, Some("end"));
        let _ = h.layer.respond(h.now, tx, resp);
    }
    for tx in handed_out {
        if let Some(req) = h.layer.request_of(tx).cloned() {
            let resp = Message::response_to(&req, 487, None, Some("end"));
            let from = PeerSel {
                tcp: false,
                addr: 0,
                conn: 0,
            }
            .peer();
            h.layer.handle_message(h.now, resp, from);
        }
    }
    h.drain();
    // Five minutes, stopping at every deadline the layer announces.
    let end = h.now + Duration::from_secs(300);
    let mut steps = 0u32;
    while let Some(at) = h.layer.poll_timeout() {
        if at > end {
            break;
        }
        steps += 1;
        assert!(steps < 100_000, "timers keep re-arming");
        h.tick(at - h.now);
        h.drain();
    }
    h.tick(end - h.now);
    h.drain();
    assert_eq!(
        h.layer.len(),
        0,
        "transactions outlive every timer: {} server ({} awaiting a final), {} client",
        h.layer.server_transactions(),
        h.layer.pending_server_transactions(),
        h.layer.client_transactions()
    );
    assert_eq!(h.layer.poll_timeout(), None, "a timer outlives every transaction");
});
