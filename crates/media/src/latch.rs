//! Symmetric latching (RFC 7362, "hosted NAT traversal"): a phone behind a NAT announces an address
//! in its SDP that nobody outside can reach, so the relay sends to wherever that phone's packets
//! really come from. RFC 7362 §5 names the risk: whoever sends first gets the stream. This module
//! owns the rule that limits who may latch. It is sans-IO: the caller passes the source and the
//! time, so the rule is tested without sockets.
//!
//! The rule, per leg and separately for its RTP and its RTCP port:
//!
//! 1. Until the proxy gives the leg's remote (`set_remote`), nothing is accepted on its ports
//!    (counted as `unexpected_dropped`).
//! 2. After that, the port is open and the first packet from an acceptable source latches it:
//!    a. a source whose IP equals the IP in the leg's SDP, at any time; or
//!    b. a source whose IP equals the IP the leg's other port (RTCP for RTP, RTP for RTCP) has
//!    already latched to; or
//!    c. when the SDP address cannot be the phone's real address as seen from the relay — private
//!    (RFC 1918), shared (RFC 6598), link-local, loopback (unless the relay is on loopback),
//!    unspecified, unique-local IPv6, or another address family than the relay's — any source, but
//!    only within [`LATCH_WINDOW`] of the latest `set_remote` on either leg of the stream. (The
//!    caller's phone can only start sending once it has the answer, which is when the proxy sets
//!    the callee's remote, so that call opens the caller's window again.)
//!
//!    Other sources are dropped and counted as `stolen_dropped`; packets accepted while open are
//!    relayed.
//! 3. Once latched, only that exact source (IP and port) is accepted; everything else is dropped
//!    and counted as `stolen_dropped`. Toward the phone, the relay sends to the latched source
//!    instead of the SDP address.
//! 4. `set_remote` on the leg again (a re-INVITE) opens both of its ports again under rule 2. If
//!    the SDP address did not change, packets toward the phone keep going to the old latched
//!    source until the port latches again, so a session refresh leaves no gap.
//!
//! So a public phone can never be hijacked by another IP, and a NATed phone only during the
//! seconds around call setup before its own first packet arrives. A NAT that changes the phone's
//! mapping mid-call cuts its media until the next re-INVITE, the price of rule 3.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long after a `set_remote` a NATed phone (rule 2c in the [module docs](self)) may latch from
/// an address other than its SDP's.
pub const LATCH_WINDOW: Duration = Duration::from_secs(10);

/// The latch of one port. Times are nanoseconds on the relay's monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Latch {
    /// The leg's remote is not known: nothing is accepted.
    Closed,
    /// The remote is known and no source latched yet.
    Open {
        sdp_ip: IpAddr,
        /// The SDP address cannot be the phone's as seen from here (rule 2c).
        nat: bool,
        /// Rule 2c applies until this instant.
        window_end: u64,
    },
    /// Only this source is accepted.
    Latched(SocketAddr),
}

/// What to do with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// From the latched source.
    Accept,
    /// Accepted, and the port has just latched to its source.
    Latched,
    /// The leg's remote is not known yet.
    Unexpected,
    /// Not from the phone of this leg.
    Stolen,
}

impl Latch {
    /// Opens the port for a remote announced as `sdp_ip`, on a relay bound to `relay_ip`.
    pub fn open(sdp_ip: IpAddr, relay_ip: IpAddr, now: u64) -> Latch {
        Latch::Open {
            sdp_ip: canonical(sdp_ip),
            nat: nat_suspect(sdp_ip, relay_ip),
            window_end: now.saturating_add(LATCH_WINDOW.as_nanos() as u64),
        }
    }

    /// Starts rule 2c's window again if the port is still open.
    pub fn refresh(&mut self, now: u64) {
        if let Latch::Open { window_end, .. } = self {
            *window_end = now.saturating_add(LATCH_WINDOW.as_nanos() as u64);
        }
    }

    /// The latched source, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        match self {
            Latch::Latched(a) => Some(*a),
            _ => None,
        }
    }

    /// Decides on a packet from `src`; `sibling` is the IP the leg's other port latched to.
    #[inline]
    pub fn admit(&mut self, src: SocketAddr, sibling: Option<IpAddr>, now: u64) -> Verdict {
        match *self {
            Latch::Latched(a) if a == src => Verdict::Accept,
            Latch::Latched(_) => Verdict::Stolen,
            Latch::Closed => Verdict::Unexpected,
            Latch::Open {
                sdp_ip,
                nat,
                window_end,
            } => {
                let ip = canonical(src.ip());
                let acceptable = ip == sdp_ip || sibling.map(canonical) == Some(ip) || (nat && now <= window_end);
                if acceptable {
                    *self = Latch::Latched(src);
                    Verdict::Latched
                } else {
                    Verdict::Stolen
                }
            }
        }
    }
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether an SDP address cannot be where the phone's packets come from, as seen by a relay on
/// `relay`: the phone is then presumably behind a NAT (rule 2c).
pub(crate) fn nat_suspect(sdp: IpAddr, relay: IpAddr) -> bool {
    let (sdp, relay) = (canonical(sdp), canonical(relay));
    if sdp.is_ipv4() != relay.is_ipv4() && !relay.is_unspecified() {
        return true;
    }
    let loopback_ok = relay.is_loopback();
    match sdp {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_unspecified()
                || a.is_private()
                || a.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // RFC 6598 shared address space
                || (a.is_loopback() && !loopback_ok)
                || a.is_broadcast()
                || a.is_multicast()
        }
        IpAddr::V6(a) => {
            a.is_unspecified()
                || a.is_unique_local()
                || a.is_unicast_link_local()
                || (a.is_loopback() && !loopback_ok)
                || a.is_multicast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn closed_accepts_nothing() {
        let mut l = Latch::Closed;
        assert_eq!(l.admit(sa("192.0.2.1:4000"), None, 0), Verdict::Unexpected);
        assert_eq!(l, Latch::Closed);
    }

    #[test]
    fn public_sdp_latches_only_its_own_ip_any_port() {
        let relay = ip("203.0.113.1");
        let mut l = Latch::open(ip("198.51.100.7"), relay, 0);
        assert_eq!(l.admit(sa("198.51.100.8:4000"), None, 1), Verdict::Stolen);
        assert_eq!(l.admit(sa("198.51.100.7:61000"), None, 100 * S), Verdict::Latched);
        assert_eq!(l.latched(), Some(sa("198.51.100.7:61000")));
        assert_eq!(l.admit(sa("198.51.100.7:61000"), None, 101 * S), Verdict::Accept);
        assert_eq!(l.admit(sa("198.51.100.7:61001"), None, 101 * S), Verdict::Stolen);
    }

    #[test]
    fn private_sdp_latches_first_source_within_window() {
        let relay = ip("203.0.113.1");
        let mut l = Latch::open(ip("192.168.1.20"), relay, 5 * S);
        assert_eq!(l.admit(sa("198.51.100.9:1024"), None, 6 * S), Verdict::Latched);
        assert_eq!(l.admit(sa("198.51.100.10:1024"), None, 7 * S), Verdict::Stolen);

        let mut late = Latch::open(ip("10.0.0.5"), relay, 0);
        assert_eq!(late.admit(sa("198.51.100.9:1024"), None, 11 * S), Verdict::Stolen);
        late.refresh(11 * S);
        assert_eq!(late.admit(sa("198.51.100.9:1024"), None, 12 * S), Verdict::Latched);
    }

    #[test]
    fn sibling_ip_is_trusted() {
        let relay = ip("203.0.113.1");
        let mut l = Latch::open(ip("10.0.0.5"), relay, 0);
        let sib = Some(ip("198.51.100.9"));
        assert_eq!(l.admit(sa("198.51.100.1:1"), sib, 60 * S), Verdict::Stolen);
        assert_eq!(l.admit(sa("198.51.100.9:7079"), sib, 60 * S), Verdict::Latched);
    }

    #[test]
    fn mapped_addresses_compare_as_v4() {
        let mut l = Latch::open(ip("::ffff:198.51.100.7"), ip("203.0.113.1"), 0);
        assert_eq!(l.admit(sa("198.51.100.7:5000"), None, 0), Verdict::Latched);
    }

    #[test]
    fn nat_suspects() {
        let public = ip("203.0.113.1");
        for s in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "169.254.1.1",
            "127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(nat_suspect(ip(s), public), "{s}");
        }
        for s in ["fd00::1", "fe80::1", "::1", "2001:db8::1"] {
            assert!(nat_suspect(ip(s), public), "{s} (family differs or unroutable)");
        }
        assert!(!nat_suspect(ip("198.51.100.7"), public));
        assert!(!nat_suspect(ip("100.128.0.1"), public));
        assert!(!nat_suspect(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(!nat_suspect(ip("2001:db8::1"), ip("2001:db8::2")));
    }
}
