//! The server's counters and their Prometheus text exposition (format 0.0.4).
//!
//! Counters are relaxed atomics bumped on the hot paths (a message in, a message out, a store
//! commit); gauges (registrations, calls, transactions, relay ports) are read from their owners
//! when `/metrics` is scraped, so nothing keeps a second copy of them. Written by hand: the
//! exposition format is a few lines of text, and a metrics crate would add a registry and a
//! lock where a fixed array of atomics does.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sip::{Message, Method};

/// Methods counted by name; anything else is `other`.
const METHODS: [&str; 15] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
    "other",
];

fn method_index(m: &Method) -> usize {
    let name = m.as_str();
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|&k| k == name)
        .unwrap_or(METHODS.len() - 1)
}

/// Upper bounds (seconds) of the store commit latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Requests by method and responses by status code, in one direction.
struct Traffic {
    requests: [AtomicU64; METHODS.len()],
    /// Index `code - 100` for 100..=699.
    responses: [AtomicU64; 600],
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Traffic {
    fn count(&self, m: &Message) {
        if let Some(method) = m.method() {
            self.requests[method_index(method)].fetch_add(1, Ordering::Relaxed);
        } else if let Some(code) = m.status_code() {
            self.count_status(code);
        }
    }

    fn count_status(&self, code: u16) {
        if let Some(slot) = code.checked_sub(100).and_then(|i| self.responses.get(usize::from(i))) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A latency histogram with fixed buckets.
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Every counter the server keeps.
#[derive(Default)]
pub struct Metrics {
    received: Traffic,
    sent: Traffic,
    /// Calls that ended, by disposition (`store::Disposition` order).
    calls_ended: [AtomicU64; 5],
    /// Registrations made durable, and those the store refused.
    pub store_commits: AtomicU64,
    pub store_failures: AtomicU64,
    store_latency: Histogram,
    /// Messages dropped by the trace's HEP sender.
    pub trace_recorded: AtomicU64,
    /// Requests answered 503 because the server was overloaded.
    pub overload_rejected: AtomicU64,
    /// Datagrams dropped because a UDP worker's queue was full.
    pub overload_dropped: AtomicU64,
}

/// Values read from their owners at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    pub bindings: usize,
    pub registered_users: usize,
    pub active_calls: usize,
    pub transactions: usize,
    pub auth_failures: u64,
    /// The brute-force defence and scanner blocking (`guard::bans`, `guard::agents`).
    pub bans: usize,
    pub bans_made: u64,
    pub banned_packets: u64,
    pub scanner_drops: u64,
    pub connections: usize,
    pub relay: Option<RelayGauges>,
    pub trace_messages: usize,
    pub hep_dropped: u64,
    pub parse_errors: u64,
    pub send_errors: u64,
    pub engine_locks: u64,
    pub engine_wait_ns: u64,
    pub engine_hold_ns: u64,
    pub uptime: Duration,
}

/// The media relay, read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct RelayGauges {
    /// Port pairs (streams) the pool holds, and those in use.
    pub streams_total: usize,
    pub streams_in_use: usize,
    /// Packets and bytes relayed since start, over every stream (ended streams included).
    pub packets: u64,
    pub bytes: u64,
}

const DISPOSITIONS: [store::Disposition; 5] = [
    store::Disposition::Answered,
    store::Disposition::Busy,
    store::Disposition::NoAnswer,
    store::Disposition::Cancelled,
    store::Disposition::Failed,
];

impl Metrics {
    pub fn received(&self, m: &Message) {
        self.received.count(m);
    }

    /// A request counted by its method alone (one answered without a parse).
    pub fn received_method(&self, method: &sip::Method) {
        self.received.requests[method_index(method)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn sent(&self, m: &Message) {
        self.sent.count(m);
    }

    /// A response the transport made itself (a 400 to an unparseable request).
    pub fn sent_status(&self, code: u16) {
        self.sent.count_status(code);
    }

    pub fn call_ended(&self, d: store::Disposition) {
        if let Some(i) = DISPOSITIONS.iter().position(|&x| x == d) {
            self.calls_ended[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A registration write finished after `latency` (queueing, batching and fsync).
    pub fn store_commit(&self, ok: bool, latency: Duration) {
        if ok {
            self.store_commits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.store_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.store_latency.observe(latency);
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let o = &mut out;
        gauge(
            o,
            "switchboard_uptime_seconds",
            "Seconds since the server started.",
            g.uptime.as_secs(),
        );
        gauge(
            o,
            "switchboard_registrations",
            "Unexpired contact bindings in the location service.",
            g.bindings,
        );
        gauge(
            o,
            "switchboard_registered_users",
            "Addresses-of-record with at least one binding.",
            g.registered_users,
        );
        gauge(
            o,
            "switchboard_active_calls",
            "Calls ringing or answered.",
            g.active_calls,
        );
        let _ = writeln!(
            o,
            "# HELP switchboard_calls_total Calls that ended, by disposition.\n# TYPE switchboard_calls_total counter"
        );
        for (d, n) in DISPOSITIONS.iter().zip(&self.calls_ended) {
            let _ = writeln!(
                o,
                "switchboard_calls_total{{disposition=\"{}\"}} {}",
                d.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
        gauge(
            o,
            "switchboard_sip_transactions",
            "SIP transactions in the transaction layer.",
            g.transactions,
        );
        for (name, help, t) in [
            (
                "switchboard_sip_requests_received_total",
                "SIP requests received, by method.",
                &self.received,
            ),
            (
                "switchboard_sip_requests_sent_total",
                "SIP requests sent (forwarded or generated), by method.",
                &self.sent,
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (m, n) in METHODS.iter().zip(&t.requests) {
                let _ = writeln!(o, "{name}{{method=\"{m}\"}} {}", n.load(Ordering::Relaxed));
            }
        }
        for (name, help, t) in [
            (
                "switchboard_sip_responses_received_total",
                "SIP responses received, by status code.",
                &self.received,
            ),
            (
                "switchboard_sip_responses_sent_total",
                "SIP responses sent, by status code.",
                &self.sent,
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (i, n) in t.responses.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(o, "{name}{{status=\"{}\"}} {n}", i + 100);
                }
            }
        }
        counter(
            o,
            "switchboard_auth_failures_total",
            "Digest credentials presented and refused (wrong password, unknown user, replayed nonce count).",
            g.auth_failures,
        );
        gauge(
            o,
            "switchboard_bans",
            "Source addresses banned now for failed authentications.",
            g.bans,
        );
        counter(o, "switchboard_bans_total", "Bans made since start.", g.bans_made);
        counter(
            o,
            "switchboard_banned_packets_total",
            "Packets and connections from banned sources dropped unanswered.",
            g.banned_packets,
        );
        counter(
            o,
            "switchboard_scanner_drops_total",
            "Requests from blocked (scanner) User-Agents dropped unanswered.",
            g.scanner_drops,
        );
        counter(
            o,
            "switchboard_parse_errors_total",
            "Messages that could not be parsed or failed the request checks.",
            g.parse_errors,
        );
        counter(
            o,
            "switchboard_send_errors_total",
            "Messages that could not be sent.",
            g.send_errors,
        );
        gauge(
            o,
            "switchboard_connections",
            "Open TCP and TLS connections.",
            g.connections,
        );
        counter(
            o,
            "switchboard_store_commits_total",
            "Registration writes made durable.",
            self.store_commits.load(Ordering::Relaxed),
        );
        counter(
            o,
            "switchboard_store_failures_total",
            "Registration writes the store refused.",
            self.store_failures.load(Ordering::Relaxed),
        );
        self.store_latency.render(
            o,
            "switchboard_store_commit_seconds",
            "Time from a registration's write request to its durable commit.",
        );
        if let Some(r) = &g.relay {
            gauge(
                o,
                "switchboard_relay_ports",
                "Relay ports in the pool (two per stream: RTP and RTCP on each leg count as one pair).",
                r.streams_total * 2,
            );
            gauge(
                o,
                "switchboard_relay_ports_in_use",
                "Relay ports allocated to calls.",
                r.streams_in_use * 2,
            );
            counter(
                o,
                "switchboard_relay_packets_total",
                "RTP and RTCP packets relayed.",
                r.packets,
            );
            counter(
                o,
                "switchboard_relay_bytes_total",
                "RTP and RTCP bytes relayed.",
                r.bytes,
            );
        }
        gauge(
            o,
            "switchboard_trace_messages",
            "SIP messages held in the trace ring.",
            g.trace_messages,
        );
        counter(
            o,
            "switchboard_overload_rejected_total",
            "New requests answered 503 + Retry-After because the receive queue stood.",
            self.overload_rejected.load(Ordering::Relaxed),
        );
        counter(
            o,
            "switchboard_overload_dropped_total",
            "UDP datagrams dropped because the worker's queue was full.",
            self.overload_dropped.load(Ordering::Relaxed),
        );
        counter(
            o,
            "switchboard_hep_dropped_total",
            "Trace messages the HEP sender could not send.",
            g.hep_dropped,
        );
        counter(
            o,
            "switchboard_engine_lock_acquisitions_total",
            "Times the engine lock was taken.",
            g.engine_locks,
        );
        counter(
            o,
            "switchboard_engine_lock_wait_seconds_total",
            "Time spent waiting for the engine lock.",
            g.engine_wait_ns as f64 / 1e9,
        );
        counter(
            o,
            "switchboard_engine_lock_hold_seconds_total",
            "Time the engine lock was held.",
            g.engine_hold_ns as f64 / 1e9,
        );
        out
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = Metrics::default();
        let invite = Message::parse(bytes::Bytes::from_static(
            b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parses");
        m.received(&invite);
        m.sent_status(407);
        m.sent_status(407);
        m.sent_status(99); // ignored, not a panic
        m.call_ended(store::Disposition::Busy);
        m.store_commit(true, Duration::from_micros(700));
        let text = m.render(&Gauges {
            bindings: 3,
            ..Gauges::default()
        });
        assert!(text.contains("switchboard_sip_requests_received_total{method=\"INVITE\"} 1\n"));
        assert!(text.contains("switchboard_sip_responses_sent_total{status=\"407\"} 2\n"));
        assert!(text.contains("switchboard_calls_total{disposition=\"busy\"} 1\n"));
        assert!(text.contains("switchboard_overload_rejected_total 0\n"), "{text}");
        assert!(text.contains("switchboard_registrations 3\n"));
        assert!(text.contains("switchboard_store_commit_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("switchboard_store_commit_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("switchboard_store_commit_seconds_count 1\n"));
        // Every sample line belongs to a declared metric.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {base} ")), "{line}");
        }
    }
}
