//! The counters the relay keeps per stream and leg, as the proxy sees them.

use std::net::SocketAddr;
use std::time::Duration;

use crate::rtcp::ReceptionReport;

/// One leg of a stream: what its phone sent to the relay (so [`StreamStats::a`] is the A→B
/// direction), and what that phone reported in RTCP about the media it receives (so `a.report` is
/// the caller's view of the B→A direction).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegStats {
    /// RTP datagrams accepted from this leg's phone (RTCP sent on the RTP port is counted as RTCP).
    pub rtp_packets: u64,
    /// Their bytes (UDP payload).
    pub rtp_bytes: u64,
    /// RTCP datagrams accepted from this leg's phone.
    pub rtcp_packets: u64,
    /// Their bytes.
    pub rtcp_bytes: u64,
    /// Datagrams sent on toward the other leg.
    pub forwarded_packets: u64,
    /// Their bytes.
    pub forwarded_bytes: u64,
    /// Datagrams from a source the latching rule rejected ([`crate::latch`]).
    pub stolen_dropped: u64,
    /// Datagrams that arrived before this leg's remote was set.
    pub unexpected_dropped: u64,
    /// Accepted datagrams dropped because the other leg's destination was not known yet.
    pub undeliverable_dropped: u64,
    /// Accepted datagrams the socket did not take (buffer full, unreachable) or that were longer
    /// than the relay's buffers.
    pub send_errors: u64,
    /// SRTP/SRTCP packets from the phone that failed authentication or replay checks (dropped).
    pub srtp_dropped: u64,
    /// Whether the leg decrypts SRTP from its phone / encrypts SRTP toward it.
    pub srtp_rx: bool,
    pub srtp_tx: bool,
    /// The RTP address this leg's SDP announced.
    pub remote_rtp: Option<SocketAddr>,
    /// The RTCP address: the announced one, or the RTP address with port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// The source the RTP port latched to.
    pub latched_rtp: Option<SocketAddr>,
    /// The source the RTCP port latched to.
    pub latched_rtcp: Option<SocketAddr>,
    /// The latest report block this phone sent (RFC 3550 §6.4), about the media it receives.
    pub report: Option<ReceptionReport>,
    /// Report blocks seen from this phone.
    pub reports: u64,
}

/// A stream's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamStats {
    /// The call the stream was allocated for.
    pub call: String,
    /// The RTP ports of leg A and leg B.
    pub ports: (u16, u16),
    /// Leg A: the caller's packets (A→B) and reports.
    pub a: LegStats,
    /// Leg B: the callee's packets (B→A) and reports.
    pub b: LegStats,
    /// Time since the stream's last accepted packet, or since both remotes were set if none came
    /// since; `None` while a remote is missing (the media timeout does not run then).
    pub idle: Option<Duration>,
}
