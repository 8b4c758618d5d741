//! Flood limits (issue #10 item 2): a token bucket per source IP address, checked on every packet
//! before it is parsed (like Kamailio's pike module), a cap on TLS handshakes in progress per
//! source, and the overload test behind 503 shedding.
//!
//! Overload is judged by how long requests wait in the UDP receive queue (the kernel stamps each
//! datagram on arrival, `SO_TIMESTAMPNS`): when even the shortest wait over 100 ms is past
//! `overload_queue_delay` ([`OverloadDetector`]), the server is behind, and
//! every new request it admits makes the queue longer, the phones retransmit, and the
//! retransmissions fill the queue further (the spiral Kamailio falls into). Shedding the *first*
//! request of each new transaction with a stateless 503 + Retry-After costs a parse and a send
//! in the worker, or, while the worker is behind, only a scan of the raw header lines and a send
//! in the receive thread (`shed::quick`, `transport::udp`);
//! the flows already admitted (a REGISTER with credentials, retransmissions, ACK, in-dialog
//! requests, responses) go on, so goodput stays at capacity. CoDel-style: the queue's sojourn
//! time, not its length, says whether the server keeps up.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sip::{Message, Method};

use crate::config::GuardSettings;

use super::Networks;

/// Shards of the bucket table: receive threads rarely meet on one lock.
const SHARDS: usize = 16;
/// Sources tracked per shard before idle ones are forgotten.
const MAX_PER_SHARD: usize = 8192;
/// Most TLS handshakes in progress from one address.
const MAX_HANDSHAKES_PER_SOURCE: u32 = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Flood {
    /// Tokens per second and the bucket size; `rate == 0.0` is no limit.
    rate: f64,
    burst: f64,
    shards: Box<[Mutex<HashMap<IpAddr, Bucket>>]>,
    hasher: std::collections::hash_map::RandomState,
    trusted: Networks,
    handshakes: Arc<Mutex<HashMap<IpAddr, u32>>>,
    overload_delay: Duration,
    pub retry_after: u32,
}

impl Flood {
    pub fn new(settings: &GuardSettings) -> Self {
        Flood {
            rate: f64::from(settings.source_rate),
            burst: f64::from(settings.source_burst.max(settings.source_rate).max(1)),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            trusted: Networks::parse_lossy(&settings.trusted_networks),
            handshakes: Arc::default(),
            overload_delay: settings.overload_queue_delay,
            retry_after: settings.retry_after,
        }
    }

    /// Takes a token from `ip`'s bucket; false when it has none left (the packet is dropped).
    pub fn take(&self, ip: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 || self.trusted.contains(ip) {
            return true;
        }
        let shard = &self.shards[(self.hasher.hash_one(ip) as usize) % SHARDS];
        let mut map = shard.lock();
        if map.len() >= MAX_PER_SHARD && !map.contains_key(&ip) {
            // Forget the sources whose buckets have refilled: they are as good as new.
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst);
            if map.len() >= MAX_PER_SHARD {
                // Still full (a spoofed-source flood): start over rather than grow.
                map.clear();
            }
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.rate;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A place for one TLS handshake from `ip`, given back when dropped; `None` when the source
    /// has too many in progress.
    pub fn handshake_slot(&self, ip: IpAddr) -> Option<HandshakeSlot> {
        let mut map = self.handshakes.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= MAX_HANDSHAKES_PER_SOURCE && !self.trusted.contains(ip) {
            return None;
        }
        *n += 1;
        Some(HandshakeSlot {
            ip,
            table: Arc::clone(&self.handshakes),
        })
    }

    /// An overload detector for one receive thread.
    pub fn detector(&self) -> OverloadDetector {
        OverloadDetector::new(self.overload_delay)
    }
}

/// Decides, packet by packet, whether a receive thread is overloaded, from how long each packet
/// waited in the socket's queue. CoDel's rule: a burst makes some packets wait and then drains;
/// overload is a *standing* queue, where even the packet that waited least in an interval waited
/// more than the target. Sans-IO: time comes in with each packet.
#[derive(Debug, Clone)]
pub struct OverloadDetector {
    target: Duration,
    interval_start: Option<Instant>,
    min_in_interval: Duration,
    overloaded: bool,
}

/// How long the shortest wait is watched before deciding (CoDel uses 100 ms).
const INTERVAL: Duration = Duration::from_millis(100);

impl OverloadDetector {
    pub fn new(target: Duration) -> Self {
        OverloadDetector {
            target,
            interval_start: None,
            min_in_interval: Duration::MAX,
            overloaded: false,
        }
    }

    /// Whether the queue stood over the last interval.
    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    /// A packet that waited `waited`, dequeued at `now`: whether new work should be shed now.
    pub fn on_packet(&mut self, now: Instant, waited: Duration) -> bool {
        if self.target.is_zero() {
            return false;
        }
        self.min_in_interval = self.min_in_interval.min(waited);
        let start = *self.interval_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= INTERVAL {
            self.overloaded = self.min_in_interval > self.target;
            self.min_in_interval = Duration::MAX;
            self.interval_start = Some(now);
        }
        // Shed only while the queue stands and this packet itself waited: once it drains, the
        // next packets are taken in at once, before the interval ends.
        self.overloaded && waited > self.target
    }
}

/// Whether shedding may answer this message with 503: the first request of a new transaction,
/// outside any dialog, without credentials. Everything else belongs to work already admitted.
pub fn sheddable(m: &Message) -> bool {
    let Some(method) = m.method() else {
        return false;
    };
    if matches!(method, Method::Ack | Method::Cancel | Method::Bye) {
        return false;
    }
    let in_dialog = m.to_header().ok().and_then(|t| t.tag().map(|_| ())).is_some();
    !in_dialog && m.header("Authorization").is_none() && m.header("Proxy-Authorization").is_none()
}

/// One TLS handshake in progress.
pub struct HandshakeSlot {
    ip: IpAddr,
    table: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut map = self.table.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flood(rate: u32, burst: u32) -> Flood {
        Flood::new(&GuardSettings {
            source_rate: rate,
            source_burst: burst,
            trusted_networks: vec!["10.0.0.0/8".into()],
            ..GuardSettings::default()
        })
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let f = flood(100, 200);
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        let t0 = Instant::now();
        let admitted = (0..1000).filter(|_| f.take(ip, t0)).count();
        assert_eq!(admitted, 200, "the burst");
        // One second later: 100 more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..1000).filter(|_| f.take(ip, t1)).count(), 100);
        // Another source is not affected, a trusted one is never limited.
        let other: IpAddr = "198.51.100.8".parse().expect("ip");
        assert!(f.take(other, t1));
        let trusted: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!((0..5000).filter(|_| f.take(trusted, t1)).count(), 5000);
    }

    #[test]
    fn zero_rate_is_no_limit() {
        let f = flood(0, 0);
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        let t = Instant::now();
        assert!((0..100_000).all(|_| f.take(ip, t)));
    }

    #[test]
    fn the_table_stays_bounded_under_spoofed_sources() {
        let f = flood(10, 20);
        let t = Instant::now();
        for i in 0..200_000u32 {
            f.take(IpAddr::from(i.to_be_bytes()), t);
        }
        let total: usize = f.shards.iter().map(|s| s.lock().len()).sum();
        assert!(total <= SHARDS * MAX_PER_SHARD, "{total}");
    }

    #[test]
    fn handshake_slots_are_capped_and_given_back() {
        let f = flood(100, 200);
        let ip: IpAddr = "198.51.100.7".parse().expect("ip");
        let slots: Vec<_> = (0..MAX_HANDSHAKES_PER_SOURCE)
            .map(|_| f.handshake_slot(ip).expect("slot"))
            .collect();
        assert!(f.handshake_slot(ip).is_none());
        drop(slots);
        assert!(f.handshake_slot(ip).is_some());
        assert!(f.handshakes.lock().len() <= 1);
    }

    #[test]
    fn a_burst_is_not_overload_but_a_standing_queue_is() {
        let target = Duration::from_millis(50);
        let mut d = OverloadDetector::new(target);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // A burst: waits rise to 300 ms and drain within the interval; some packet waited little.
        let mut shed = 0;
        for i in 0..200u64 {
            let waited = if i < 100 { ms(300 - 3 * i) } else { ms(1) };
            shed += usize::from(d.on_packet(t0 + Duration::from_micros(1000 * i), waited));
        }
        assert_eq!(shed, 0, "a burst that drains is taken in");
        // A standing queue: every packet of an interval waits more than the target.
        let t1 = t0 + ms(300);
        let mut shed = 0;
        for i in 0..300u64 {
            shed += usize::from(d.on_packet(t1 + ms(i), ms(120)));
        }
        assert!(shed >= 190, "shedding starts after one interval ({shed})");
        // The queue drains: packets that waited little are taken in at once.
        assert!(!d.on_packet(t1 + ms(301), ms(2)));
        // A whole interval of short waits clears the state.
        for i in 0..120u64 {
            d.on_packet(t1 + ms(302 + i), ms(2));
        }
        assert!(
            !d.on_packet(t1 + ms(430), ms(80)),
            "over the target but no standing queue"
        );
        assert!(
            !OverloadDetector::new(Duration::ZERO).on_packet(t1, ms(10_000)),
            "0 turns it off"
        );
    }

    #[test]
    fn only_new_unauthenticated_requests_are_shed() {
        let msg = |s: &str| Message::parse(bytes::Bytes::from(s.replace('\n', "\r\n"))).expect("parses");
        let head = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nCall-ID: c\nMax-Forwards: 70\nContent-Length: 0\n";
        assert!(sheddable(&msg(&format!(
            "REGISTER sip:x SIP/2.0\n{head}To: <sip:a@x>\nCSeq: 1 REGISTER\n\n"
        ))));
        assert!(!sheddable(&msg(&format!(
            "REGISTER sip:x SIP/2.0\n{head}To: <sip:a@x>\nCSeq: 2 REGISTER\nAuthorization: Digest username=\"a\"\n\n"
        ))));
        assert!(!sheddable(&msg(&format!(
            "BYE sip:x SIP/2.0\n{head}To: <sip:b@x>;tag=2\nCSeq: 3 BYE\n\n"
        ))));
        assert!(!sheddable(&msg(&format!(
            "INVITE sip:x SIP/2.0\n{head}To: <sip:b@x>;tag=2\nCSeq: 3 INVITE\n\n"
        ))));
        assert!(sheddable(&msg(&format!(
            "INVITE sip:b@x SIP/2.0\n{head}To: <sip:b@x>\nCSeq: 1 INVITE\n\n"
        ))));
        assert!(!sheddable(&msg(
            "SIP/2.0 200 OK\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@x>;tag=2\nCall-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n\n"
        )));
    }
}
