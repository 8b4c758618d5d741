//! Defences against a hostile internet (issue #10): what a packet from a source must pass before
//! the server spends work on it.
//!
//! - [`bans`]: failed digest authentications counted per source IP and per user; past a
//!   threshold the source is banned for a while and its packets are dropped unanswered.
//! - [`flood`]: a token bucket per source IP (like Kamailio's pike), and overload shedding: when
//!   the receive queue backs up, new out-of-dialog requests get 503 + Retry-After instead of
//!   work, so the requests already admitted finish and goodput holds at capacity.
//! - [`agents`]: requests from known scanner User-Agents are dropped unanswered (after parsing).
//! - [`shed`]: the overload 503 written from the raw datagram, without a parse.
//!
//! The checks run on the receive threads before the engine lock, most of them before parsing.
//!
//! The other nodes of a platform (see `crate::cluster`) pass unchecked: every call from their
//! phones to this node's phones arrives from one address, the node's, and would soon exceed a
//! per-source rate meant for one phone.

pub mod agents;
pub mod bans;
pub mod flood;
pub mod shed;

use std::net::IpAddr;
use std::time::Instant;

use crate::config::GuardSettings;

/// Every check a received packet passes, shared by the transports.
pub struct Guard {
    pub bans: bans::Bans,
    pub flood: flood::Flood,
    pub agents: agents::Agents,
    /// The addresses of the platform's other live nodes (empty on a single server).
    peers: parking_lot::RwLock<Vec<IpAddr>>,
    has_peers: std::sync::atomic::AtomicBool,
}

/// What to do with a packet, decided before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Go on.
    Yes,
    /// Drop it unanswered (banned source, or over its rate).
    Drop,
}

impl Guard {
    pub fn new(settings: &GuardSettings) -> Self {
        Guard {
            bans: bans::Bans::new(settings),
            flood: flood::Flood::new(settings),
            agents: agents::Agents::new(&settings.blocked_user_agents),
            peers: parking_lot::RwLock::new(Vec::new()),
            has_peers: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The addresses of the platform's other live nodes, which pass unchecked.
    pub fn set_peers(&self, mut peers: Vec<IpAddr>) {
        peers.sort_unstable();
        peers.dedup();
        self.has_peers
            .store(!peers.is_empty(), std::sync::atomic::Ordering::Relaxed);
        *self.peers.write() = peers;
    }

    fn is_peer(&self, source: IpAddr) -> bool {
        self.has_peers.load(std::sync::atomic::Ordering::Relaxed) && self.peers.read().contains(&source)
    }

    /// The cheap checks on a packet's source, before it is parsed.
    pub fn admit(&self, source: IpAddr, now: Instant) -> Admit {
        if self.is_peer(source) {
            return Admit::Yes;
        }
        if self.bans.is_banned(source, now) || !self.flood.take(source, now) {
            return Admit::Drop;
        }
        Admit::Yes
    }
}

/// A set of networks in CIDR notation (`203.0.113.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Default)]
pub struct Networks(Vec<(IpAddr, u8)>);

impl Networks {
    /// Parses every entry; an entry that is not an address or a CIDR is an error naming it.
    pub fn parse(entries: &[String]) -> Result<Networks, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.trim();
                let (addr, len) = match e.split_once('/') {
                    Some((a, l)) => (a, Some(l)),
                    None => (e, None),
                };
                let ip: IpAddr = addr.parse().map_err(|_| format!("{e:?}: not an IP address or CIDR"))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let len = match len {
                    Some(l) => l
                        .parse::<u8>()
                        .ok()
                        .filter(|&l| l <= max)
                        .ok_or_else(|| format!("{e:?}: prefix length must be 0..={max}"))?,
                    None => max,
                };
                Ok((ip, len))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Networks)
    }

    /// Like [`Networks::parse`], skipping bad entries (the config layer rejects them first).
    pub fn parse_lossy(entries: &[String]) -> Networks {
        Networks(
            entries
                .iter()
                .filter_map(|e| Networks::parse(std::slice::from_ref(e)).ok())
                .flat_map(|n| n.0)
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 address arriving on a dual-stack socket as ::ffff:a.b.c.d is the IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|&(net, len)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), len),
            _ => false,
        })
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let (whole, rest) = (usize::from(len / 8), len % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_nodes_pass_the_per_source_limit() {
        let settings = GuardSettings {
            source_rate: 1,
            source_burst: 1,
            trusted_networks: Vec::new(),
            ..GuardSettings::default()
        };
        let guard = Guard::new(&settings);
        let (node, phone): (IpAddr, IpAddr) = ("10.0.0.2".parse().expect("ip"), "198.51.100.7".parse().expect("ip"));
        let now = Instant::now();
        assert_eq!(guard.admit(phone, now), Admit::Yes);
        assert_eq!(guard.admit(phone, now), Admit::Drop, "one a second for a phone");
        guard.set_peers(vec![node]);
        for _ in 0..100 {
            assert_eq!(guard.admit(node, now), Admit::Yes);
        }
        guard.set_peers(Vec::new());
        assert_eq!(guard.admit(node, now), Admit::Yes, "its first packet as a stranger");
        assert_eq!(guard.admit(node, now), Admit::Drop, "a node gone is a stranger again");
    }

    #[test]
    fn cidr_matching() {
        let n = Networks::parse(&[
            "10.0.0.0/8".into(),
            "192.0.2.7".into(),
            "2001:db8::/33".into(),
            "198.51.100.128/25".into(),
        ])
        .expect("valid");
        for yes in [
            "10.200.1.1",
            "192.0.2.7",
            "2001:db8:7fff::1",
            "198.51.100.200",
            "::ffff:10.0.0.1",
        ] {
            assert!(n.contains(yes.parse().expect("ip")), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "2001:db8:8000::1", "198.51.100.127"] {
            assert!(!n.contains(no.parse().expect("ip")), "{no}");
        }
        assert!(
            Networks::parse(&["0.0.0.0/0".into()])
                .expect("valid")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(Networks::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
