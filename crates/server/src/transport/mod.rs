//! SIP transports (RFC 3261 §18): UDP, TCP and TLS listeners, the path from received bytes to the
//! engine, and the path from the engine's transmissions back to the network.
//!
//! Received requests get `received`/`rport` on their top Via before anything else sees them
//! ([`crate::via`]); responses go back to where the request came from: the same connection for
//! TCP/TLS, the source address (and port, with rport) for UDP. Malformed requests are answered 400
//! with the parser's reason where a Via allows it; malformed responses are dropped.

pub mod conn;
pub mod stream;
pub mod tls;
pub mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use sip::{Limits, Message, ParseError};
use sip_txn::{Peer, Transmit, Transport};
use tokio::sync::Notify;
use tracing::debug;

use crate::config::ServerConfig;
use crate::engine::Engine;
use crate::via::stamp_request;

/// State shared by every transport task.
pub struct Shared {
    pub engine: Mutex<Engine>,
    pub config: ServerConfig,
    pub limits: Limits,
    pub udp: Vec<Arc<std::net::UdpSocket>>,
    /// Makes registrations durable before their 200 (see `store::GroupCommitter`).
    committer: Option<store::GroupCommitter>,
    /// Where the committer reports finished writes.
    committed: tokio::sync::mpsc::UnboundedSender<Committed>,
    /// Writes the records of finished calls.
    records: Option<store::RecordWriter>,
    /// Set on shutdown; the UDP receive threads stop.
    pub stopping: std::sync::atomic::AtomicBool,
    pub conns: conn::ConnTable,
    /// Wakes the timer task when a new, earlier deadline appears.
    pub timer_wake: Notify,
    /// The deadline the timer task sleeps for, in ns after `epoch` (u64::MAX: none).
    armed: AtomicU64,
    epoch: Instant,
    pub stats: Stats,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Bans, flood limits and overload shedding.
    pub guard: crate::guard::Guard,
    /// The media relay, for its gauges.
    pub relay: Option<media::MediaRelay>,
    /// The stores the server opened (the admin API uses them too).
    pub stores: Option<store::Stores>,
    /// The SIP trace (and its HEP sender), when on.
    pub trace: Option<sip_trace::TraceRing>,
    /// Where the server listens: the local side of traced messages.
    pub local: crate::Listening,
    /// The local address of each socket in `udp`.
    udp_local: Vec<SocketAddr>,
    pub started: Instant,
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0))
}

/// A write the committer finished: the response to send for transaction `tx`.
pub struct Committed {
    pub tx: sip_txn::TxId,
    pub result: Result<(), store::StoreError>,
    pub response: Message,
}

/// Transport counters (exported as metrics by a later issue).
#[derive(Default)]
pub struct Stats {
    pub parse_errors: AtomicU64,
    pub dropped_responses: AtomicU64,
    pub send_errors: AtomicU64,
    /// Engine lock: times taken, nanoseconds waited for it and held.
    pub engine_locks: AtomicU64,
    pub engine_wait_ns: AtomicU64,
    pub engine_hold_ns: AtomicU64,
    pub engine_hold_max_ns: AtomicU64,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: ServerConfig,
        udp: Vec<Arc<std::net::UdpSocket>>,
        registrar: Option<crate::registrar::Registrar<crate::Subscribers>>,
        committer: Option<store::GroupCommitter>,
        committed: tokio::sync::mpsc::UnboundedSender<Committed>,
        proxy: Option<crate::proxy::Proxy>,
        records: Option<store::RecordWriter>,
        relay: Option<media::MediaRelay>,
        local: crate::Listening,
        stores: Option<store::Stores>,
    ) -> Arc<Shared> {
        let limits = Limits {
            max_message_size: config.max_message_size,
            ..Limits::default()
        };
        let trace = config.trace.enabled.then(|| {
            let ring = sip_trace::TraceRing::new(config.trace.capacity);
            let hep = config.trace.hep_collector.and_then(|c| {
                sip_trace::hep3::HepSender::new(c, config.trace.hep_agent_id)
                    .map_err(|e| tracing::warn!(collector = %c, error = %e, "HEP sender not started"))
                    .ok()
            });
            match hep {
                Some(h) => ring.with_hep(h),
                None => ring,
            }
        });
        Arc::new(Shared {
            metrics: Arc::default(),
            guard: crate::guard::Guard::new(&config.guard),
            relay,
            stores,
            trace,
            local,
            udp_local: udp
                .iter()
                .map(|s| s.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))))
                .collect(),
            started: Instant::now(),
            engine: Mutex::new(Engine::new(config.timers, registrar, proxy)),
            committer,
            records,
            committed,
            limits,
            udp,
            stopping: std::sync::atomic::AtomicBool::new(false),
            conns: conn::ConnTable::new(config.max_connections_per_source),
            timer_wake: Notify::new(),
            armed: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            stats: Stats::default(),
            config,
        })
    }

    fn offset(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Runs `f` on the engine, then sends what it produced and re-arms the timer if needed.
    pub fn with_engine(&self, f: impl FnOnce(&mut Engine, Instant, &mut Vec<Transmit>)) {
        let mut out = Vec::new();
        let asked = Instant::now();
        let (deadline, pending, records, refusals) = {
            let mut engine = self.engine.lock();
            let got = Instant::now();
            f(&mut engine, got, &mut out);
            let r = (
                engine.next_deadline(),
                engine.take_pending(),
                engine.take_records(),
                engine.take_auth_refusals(),
            );
            let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            self.stats.engine_locks.fetch_add(1, Ordering::Relaxed);
            self.stats
                .engine_wait_ns
                .fetch_add(nanos(got - asked), Ordering::Relaxed);
            let held = nanos(got.elapsed());
            if held > 5_000_000 {
                // Usually the holder lost its CPU for a time slice (2 cores, more runnable threads).
                debug!(
                    held_ms = held / 1_000_000,
                    transactions = engine.transactions(),
                    first = ?out.first().map(|t| (t.message.method().cloned(), t.message.status_code())),
                    outputs = out.len(),
                    "engine lock held long"
                );
            }
            self.stats.engine_hold_ns.fetch_add(held, Ordering::Relaxed);
            self.stats.engine_hold_max_ns.fetch_max(held, Ordering::Relaxed);
            r
        };
        for w in pending {
            self.submit(w);
        }
        if !refusals.is_empty() {
            let now = Instant::now();
            for r in refusals {
                self.guard.bans.failure(r.source, &r.user, now);
            }
        }
        for r in &records {
            self.metrics.call_ended(r.disposition);
        }
        if let Some(writer) = &self.records {
            for r in records {
                writer.submit(r);
            }
        }
        if let Some(d) = deadline {
            let d = self.offset(d);
            if d < self.armed.load(Ordering::Acquire) {
                self.armed.store(d, Ordering::Release);
                self.timer_wake.notify_one();
            }
        }
        self.send_all(out);
    }

    /// Hands a registration to the group committer; its response follows once it is durable.
    fn submit(&self, w: crate::dispatch::PendingWrite) {
        let crate::dispatch::PendingWrite {
            tx,
            aor,
            bindings,
            response,
        } = w;
        let report = self.committed.clone();
        self.write_bindings(aor, bindings, move |result| {
            let _ = report.send(Committed { tx, result, response });
        });
    }

    /// Writes an AOR's binding set durably; `done` learns the outcome (on the committer's
    /// thread). Commit latency goes to the metrics.
    pub fn write_bindings(
        &self,
        aor: String,
        bindings: Vec<store::Binding>,
        done: impl FnOnce(Result<(), store::StoreError>) + Send + 'static,
    ) {
        let asked = Instant::now();
        let Some(c) = &self.committer else {
            done(Err(store::StoreError::Backend("no store".into())));
            return;
        };
        let metrics = Arc::clone(&self.metrics);
        let done: Box<dyn FnOnce(Result<(), store::StoreError>) + Send> = Box::new(move |result| {
            metrics.store_commit(result.is_ok(), asked.elapsed());
            done(result);
        });
        c.submit(store::Write { aor, bindings, done });
    }

    /// Sends the responses of durable (or failed) registrations, up to 32 under one engine lock:
    /// a whole group commit at once (hundreds) would hold the lock for milliseconds and stall
    /// the receive threads.
    pub async fn run_committed(self: Arc<Self>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Committed>) {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 32).await > 0 {
            let responses: Vec<_> = batch
                .drain(..)
                .map(|c| {
                    let response = match c.result {
                        Ok(()) => c.response,
                        Err(e) => {
                            tracing::error!(error = %e, "registration not stored");
                            Message::response_to(&c.response, 500, Some("Storage failure"), None)
                        }
                    };
                    (c.tx, response)
                })
                .collect();
            self.with_engine(|e, now, out| {
                for (tx, response) in responses {
                    e.respond(now, tx, response, out);
                }
            });
        }
    }

    /// Serializes and sends each transmission on its transport.
    pub fn send_all(&self, out: Vec<Transmit>) {
        for t in out {
            self.metrics.sent(&t.message);
            let bytes = t.message.to_bytes();
            if !self.send_bytes(&t.to, bytes) {
                self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                if let Some(tx) = t.tx {
                    let mut more = Vec::new();
                    self.engine.lock().on_transport_error(Instant::now(), tx, &mut more);
                    // Errors of error handling are not chased further.
                    for m in more {
                        self.send_bytes(&m.to, m.message.to_bytes());
                    }
                }
            }
        }
    }

    /// Sends raw bytes to a peer; false when it cannot be done.
    pub fn send_bytes(&self, to: &Peer, bytes: Bytes) -> bool {
        self.trace(sip_trace::Direction::Out, to.transport, to.addr, to.conn, &bytes);
        match to.transport {
            Transport::Udp => {
                let Some(sock) = self.udp.get(to.conn as usize).or_else(|| self.udp.first()) else {
                    return false;
                };
                // A blocking send: with a 4 MiB send buffer it does not wait in practice.
                match sock.send_to(&bytes, to.addr) {
                    Ok(_) => true,
                    Err(e) => {
                        debug!(error = %e, to = %to.addr, "udp send failed");
                        false
                    }
                }
            }
            _ => self.conns.send(to.conn, bytes),
        }
    }

    /// Sends a 503 [`crate::guard::shed::quick`] wrote from the raw request (overload, no
    /// parse). Counted like [`Shared::shed`]; not traced: under a flood the trace would hold
    /// nothing but these.
    pub fn shed_raw(&self, response: Vec<u8>, method: &sip::Method, source: SocketAddr, conn: u64) {
        self.metrics.received_method(method);
        self.metrics.overload_rejected.fetch_add(1, Ordering::Relaxed);
        self.metrics.sent_status(503);
        let Some(sock) = self.udp.get(conn as usize).or_else(|| self.udp.first()) else {
            return;
        };
        if let Err(e) = sock.send_to(&response, source) {
            debug!(error = %e, to = %source, "udp send failed");
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Answers a request with 503 + Retry-After without taking it in: the server is overloaded
    /// (see `guard::flood`). Stateless: a retransmission gets another 503.
    pub fn shed(&self, request: &Message, raw: &Bytes, transport: Transport, source: SocketAddr, conn: u64) {
        self.trace(sip_trace::Direction::In, transport, source, conn, raw);
        self.metrics.received(request);
        self.metrics.overload_rejected.fetch_add(1, Ordering::Relaxed);
        if request.method() == Some(&sip::Method::Ack) {
            return;
        }
        // A To tag, as every final response carries (§8.2.6.2); no dialog comes of a 503.
        let mut resp = Message::response_to(request, 503, Some("Service Unavailable"), Some("overload"));
        resp.push_header(sip::HeaderName::RetryAfter, &self.guard.flood.retry_after.to_string());
        self.metrics.sent(&resp);
        // The Via was not stamped: answer where the packet came from (RFC 3581 behaviour).
        self.send_bytes(
            &Peer {
                transport,
                addr: source,
                conn,
            },
            resp.to_bytes(),
        );
    }

    /// Copies a message into the trace ring (and to the HEP collector).
    fn trace(
        &self,
        direction: sip_trace::Direction,
        transport: Transport,
        remote: SocketAddr,
        conn: u64,
        bytes: &Bytes,
    ) {
        let Some(t) = &self.trace else {
            return;
        };
        let (proto, local) = match transport {
            Transport::Udp => (
                sip_trace::Proto::Udp,
                self.udp_local.get(conn as usize).or(self.udp_local.first()).copied(),
            ),
            Transport::Tls | Transport::Wss => (sip_trace::Proto::Tls, self.local.tls.first().copied()),
            Transport::Tcp | Transport::Ws => (sip_trace::Proto::Tcp, self.local.tcp.first().copied()),
        };
        let local = local.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        t.record(unix_micros(), direction, proto, local, remote, bytes.clone());
    }

    /// The timer task: fires the engine's timers on time.
    pub async fn run_timers(self: Arc<Self>) {
        loop {
            let armed = self.armed.load(Ordering::Acquire);
            let sleep = if armed == u64::MAX {
                tokio::time::sleep(std::time::Duration::from_secs(3600))
            } else {
                let at = self.epoch + std::time::Duration::from_nanos(armed);
                tokio::time::sleep_until(tokio::time::Instant::from_std(at))
            };
            tokio::select! {
                _ = sleep => {
                    self.armed.store(u64::MAX, Ordering::Release);
                    self.with_engine(|e, now, out| e.on_timeout(now, out));
                }
                _ = self.timer_wake.notified() => {}
            }
        }
    }

    /// Handles one complete received message (datagram or stream frame) from `source`: answers
    /// what cannot be parsed or checked, stamps the Via of requests (which also decides where
    /// their UDP responses go), and hands the rest to the engine.
    pub fn on_received(
        &self,
        parsed: Result<Message, ParseError>,
        raw: &Bytes,
        transport: Transport,
        source: SocketAddr,
        conn: u64,
    ) {
        if let Ok(m) = &parsed
            && self.guard.agents.blocks(m)
        {
            debug!(%source, user_agent = m.header("User-Agent").unwrap_or_default(), "scanner dropped");
            return;
        }
        self.trace(sip_trace::Direction::In, transport, source, conn, raw);
        let mut message = match parsed {
            Ok(m) => m,
            Err(e) => {
                self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                debug!(%source, error = %e, "unparseable message");
                if let Some(resp) = sip::reject_unparsed(raw, &e) {
                    self.metrics.sent_status(400);
                    self.send_bytes(
                        &Peer {
                            transport,
                            addr: source,
                            conn,
                        },
                        Bytes::from(resp),
                    );
                }
                return;
            }
        };
        self.metrics.received(&message);
        if let Err(e) = message.check_essentials() {
            self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
            if message.is_request() && message.method() != Some(&sip::Method::Ack) {
                let resp = Message::response_to(&message, e.status_code(), Some(&e.to_string()), None);
                self.metrics.sent(&resp);
                self.send_bytes(
                    &Peer {
                        transport,
                        addr: source,
                        conn,
                    },
                    resp.to_bytes(),
                );
            } else {
                self.stats.dropped_responses.fetch_add(1, Ordering::Relaxed);
                debug!(%source, error = %e, "dropped a malformed response");
            }
            return;
        }
        let peer = if message.is_request() {
            match stamp_request(
                &mut message,
                source,
                self.config.force_rport || transport != Transport::Udp,
            ) {
                Ok(reply_to) => Peer {
                    transport,
                    addr: reply_to,
                    conn,
                },
                Err(_) => return,
            }
        } else {
            Peer {
                transport,
                addr: source,
                conn,
            }
        };
        self.with_engine(|e, now, out| e.on_message(now, message, peer, out));
    }
}
