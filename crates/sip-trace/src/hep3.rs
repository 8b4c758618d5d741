//! HEPv3 (the Homer Encapsulation Protocol, version 3): one message per UDP datagram to a Homer
//! collector (heplify-server, homer-app).
//!
//! A packet is `"HEP3"`, its total length (u16), then chunks of `vendor u16, type u16, length u16`
//! (the length counts the 6-byte chunk header) and the value, all big-endian. Vendor 0 chunks
//! used here, in this order: 1 IP family (2 = IPv4, 10 = IPv6), 2 IP protocol (17 UDP, 6 TCP —
//! TLS is sent as TCP with its decrypted payload), 7/8 source/destination ports, 9/10 timestamp
//! seconds and microseconds, 11 protocol type (1 = SIP), 12 capture agent id, 3/4 IPv4
//! source/destination or 5/6 IPv6, 15 payload. Source and destination are those of the message: for a received message the peer is
//! the source.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::pcap::wire_addrs;
use crate::{Direction, Proto, TracedMessage};

/// The largest UDP payload over IPv4: a HEP packet must fit in one datagram.
const MAX_DATAGRAM: usize = 65_507;

/// One HEP3 packet for `m`. A payload too big for one UDP datagram is truncated.
pub fn encode(m: &TracedMessage, agent_id: u32) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(
        &mut out,
        agent_id,
        m.at_us,
        m.direction,
        m.proto,
        m.local,
        m.remote,
        &m.payload,
    );
    out
}

#[allow(clippy::too_many_arguments)]
fn encode_into(
    out: &mut Vec<u8>,
    agent_id: u32,
    at_us: u64,
    direction: Direction,
    proto: Proto,
    local: SocketAddr,
    remote: SocketAddr,
    payload: &[u8],
) {
    let (src, dst) = wire_addrs(direction, local, remote);
    out.clear();
    out.extend_from_slice(b"HEP3\0\0");
    let ip_proto = match proto {
        Proto::Udp => 17,
        Proto::Tcp | Proto::Tls => 6,
    };
    let v4 = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some((s, d)),
        _ => None,
    };
    // The order of hep-c's `struct hep_generic` (Kamailio, OpenSIPS, FreeSWITCH): parsers that
    // read that fixed layout first (older sngrep) work too; the others go chunk by chunk.
    chunk(out, 0x0001, &[if v4.is_some() { 2 } else { 10 }]);
    chunk(out, 0x0002, &[ip_proto]);
    chunk(out, 0x0007, &src.port().to_be_bytes());
    chunk(out, 0x0008, &dst.port().to_be_bytes());
    chunk(out, 0x0009, &((at_us / 1_000_000) as u32).to_be_bytes());
    chunk(out, 0x000a, &((at_us % 1_000_000) as u32).to_be_bytes());
    chunk(out, 0x000b, &[1]);
    chunk(out, 0x000c, &agent_id.to_be_bytes());
    match v4 {
        Some((s, d)) => {
            chunk(out, 0x0003, &s.octets());
            chunk(out, 0x0004, &d.octets());
        }
        None => {
            chunk(out, 0x0005, &v6(src.ip()));
            chunk(out, 0x0006, &v6(dst.ip()));
        }
    }
    let room = MAX_DATAGRAM - out.len() - 6;
    chunk(out, 0x000f, &payload[..payload.len().min(room)]);
    let total = out.len() as u16; // <= MAX_DATAGRAM
    out[4..6].copy_from_slice(&total.to_be_bytes());
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn chunk(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&((value.len() + 6) as u16).to_be_bytes());
    out.extend_from_slice(value);
}

/// Sends messages to one collector over UDP, never blocking: a packet the socket does not take
/// at once (full buffer, collector unreachable) is dropped and counted.
#[derive(Debug)]
pub struct HepSender {
    socket: UdpSocket,
    collector: SocketAddr,
    agent_id: u32,
    sent: AtomicU64,
    dropped: AtomicU64,
}

thread_local! {
    /// Encoding buffer, reused so that sending does not allocate.
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl HepSender {
    /// A non-blocking UDP socket on an ephemeral port, connected to `collector`.
    pub fn new(collector: SocketAddr, agent_id: u32) -> io::Result<Self> {
        let bind: SocketAddr = match collector {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(bind)?;
        socket.connect(collector)?;
        socket.set_nonblocking(true)?;
        Ok(HepSender {
            socket,
            collector,
            agent_id,
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Sends one message; false when it was dropped.
    pub fn send(&self, m: &TracedMessage) -> bool {
        self.send_parts(m.at_us, m.direction, m.proto, m.local, m.remote, &m.payload)
    }

    pub(crate) fn send_parts(
        &self,
        at_us: u64,
        direction: Direction,
        proto: Proto,
        local: SocketAddr,
        remote: SocketAddr,
        payload: &[u8],
    ) -> bool {
        let ok = BUF.with_borrow_mut(|buf| {
            encode_into(buf, self.agent_id, at_us, direction, proto, local, remote, payload);
            let ok = matches!(self.socket.send(buf), Ok(n) if n == buf.len());
            if buf.capacity() > 16 * 1024 {
                *buf = Vec::new(); // do not keep a big message's buffer in every thread
            }
            ok
        });
        let counter = if ok { &self.sent } else { &self.dropped };
        counter.fetch_add(1, Ordering::Relaxed);
        ok
    }

    pub fn collector(&self) -> SocketAddr {
        self.collector
    }

    pub fn agent_id(&self) -> u32 {
        self.agent_id
    }

    /// Packets handed to the socket.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Packets dropped (socket buffer full, collector refusing, ...).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
