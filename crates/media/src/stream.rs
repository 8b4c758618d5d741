//! Per-stream state and the slab that holds it. A stream lives in one slot, found in O(1) from the
//! epoll token of any of its four sockets (slot index, generation, which socket); the generation
//! makes tokens and [`StreamId`]s of a released stream miss the slot's next occupant.
//!
//! A slot's state sits behind its own mutex. Its relay thread holds it while it drains a socket and
//! sends the packets on, so a release on another thread can never close a socket under it; the
//! proxy's calls hold it for a few field reads or writes. All four sockets of a stream are on the
//! same relay thread, so the lock is uncontended on the packet path. The activity clock the media
//! timeout reads is kept in atomics beside the lock, so scanning for timeouts never waits on a
//! relay thread.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::StreamId;
use crate::latch::Latch;
use crate::srtp::LegSrtp;
use crate::stats::LegStats;

/// The token of a relay thread's eventfd.
pub(crate) const WAKE: u64 = u64::MAX;

/// Which of a stream's sockets an epoll token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Which {
    pub leg: usize,
    pub rtcp: bool,
}

/// Token layout: bits 0–1 the socket (leg × 2 + rtcp), bits 2–17 the slot, bits 18–49 the
/// generation. Slots are fewer than 2^15 (each takes four ports), and the top bits stay zero, so
/// no token equals [`WAKE`].
pub(crate) fn token(id: StreamId, which: Which) -> u64 {
    (u64::from(id.generation) << 18) | (u64::from(id.slot) << 2) | (which.leg as u64 * 2) | u64::from(which.rtcp)
}

pub(crate) fn untoken(token: u64) -> (StreamId, Which) {
    let id = StreamId {
        slot: ((token >> 2) & 0xffff) as u32,
        generation: (token >> 18) as u32,
    };
    let which = Which {
        leg: ((token >> 1) & 1) as usize,
        rtcp: token & 1 == 1,
    };
    (id, which)
}

/// One slot of the slab, on its own cache line so relay threads working on neighbouring slots do
/// not slow each other down.
#[repr(align(64))]
pub(crate) struct Slot {
    pub state: Mutex<Option<Box<Stream>>>,
    /// Relay clock (ns, never 0) of the last accepted packet; 0 if none.
    pub last_packet: AtomicU64,
    /// Relay clock of the latest `set_remote` that left both remotes known; 0 while one is missing.
    pub armed_at: AtomicU64,
}

impl Slot {
    pub fn new() -> Slot {
        Slot {
            state: Mutex::new(None),
            last_packet: AtomicU64::new(0),
            armed_at: AtomicU64::new(0),
        }
    }

    /// Nanoseconds without media at `now`, if the timeout runs for this slot's stream.
    pub fn idle_ns(&self, now: u64) -> Option<u64> {
        let armed = self.armed_at.load(Ordering::Relaxed);
        if armed == 0 {
            return None;
        }
        let last = self.last_packet.load(Ordering::Relaxed).max(armed);
        Some(now.saturating_sub(last))
    }
}

pub(crate) struct Stream {
    pub generation: u32,
    pub call: Box<str>,
    /// The relay thread whose epoll has the sockets.
    pub worker: usize,
    pub legs: [LegState; 2],
}

pub(crate) struct LegState {
    pub port: u16,
    pub rtp: Endpoint,
    pub rtcp: Endpoint,
    pub sdp_rtp: Option<SocketAddr>,
    pub sdp_rtcp: Option<SocketAddr>,
    pub stats: LegStats,
    /// SRTP keys of this leg; `None` for plain RTP.
    pub srtp: Option<Box<LegSrtp>>,
}

pub(crate) struct Endpoint {
    pub socket: UdpSocket,
    pub latch: Latch,
    /// The source latched before a `set_remote` that repeated the same SDP address: packets toward
    /// the phone keep going there until the port latches again, so a re-INVITE leaves no gap.
    pub held: Option<SocketAddr>,
}

impl Endpoint {
    pub fn new(socket: UdpSocket) -> Endpoint {
        Endpoint {
            socket,
            latch: Latch::Closed,
            held: None,
        }
    }

    /// Opens the port again for a remote announced as `sdp`, replacing `previous`.
    fn reopen(&mut self, sdp: SocketAddr, previous: Option<SocketAddr>, relay_ip: IpAddr, now: u64) {
        self.held = if previous == Some(sdp) {
            self.latch.latched().or(self.held)
        } else {
            None
        };
        self.latch = Latch::open(sdp.ip(), relay_ip, now);
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl LegState {
    pub fn new(port: u16, rtp: UdpSocket, rtcp: UdpSocket) -> LegState {
        LegState {
            port,
            rtp: Endpoint::new(rtp),
            rtcp: Endpoint::new(rtcp),
            sdp_rtp: None,
            sdp_rtcp: None,
            stats: LegStats::default(),
            srtp: None,
        }
    }

    pub fn endpoint(&self, rtcp: bool) -> &Endpoint {
        if rtcp { &self.rtcp } else { &self.rtp }
    }

    /// Where packets toward this leg's phone go: the latched source, else the source latched before
    /// a re-INVITE that kept the address, else the SDP address (never an unspecified address or
    /// port 0: Linux would deliver those to the local host).
    #[inline]
    pub fn destination(&self, rtcp: bool) -> Option<SocketAddr> {
        let (ep, sdp) = if rtcp {
            (&self.rtcp, self.sdp_rtcp)
        } else {
            (&self.rtp, self.sdp_rtp)
        };
        ep.latch
            .latched()
            .or(ep.held)
            .or(sdp)
            .filter(|a| a.port() != 0 && !a.ip().is_unspecified())
    }

    /// Sets the remote announced in SDP and opens both ports for latching.
    pub fn set_remote(&mut self, rtp: SocketAddr, rtcp: Option<SocketAddr>, relay_ip: IpAddr, now: u64) {
        let rtcp = rtcp.or_else(|| rtp.port().checked_add(1).map(|p| SocketAddr::new(rtp.ip(), p)));
        self.rtp.reopen(rtp, self.sdp_rtp, relay_ip, now);
        // With RTP on port 65535 there is no RTCP port to send to; the RTCP port still latches.
        self.rtcp.reopen(rtcp.unwrap_or(rtp), self.sdp_rtcp, relay_ip, now);
        self.sdp_rtp = Some(rtp);
        self.sdp_rtcp = rtcp;
    }

    pub fn snapshot(&self) -> LegStats {
        LegStats {
            remote_rtp: self.sdp_rtp,
            remote_rtcp: self.sdp_rtcp,
            latched_rtp: self.rtp.latch.latched(),
            latched_rtcp: self.rtcp.latch.latched(),
            srtp_rx: self.srtp.as_ref().is_some_and(|s| s.rx.is_some()),
            srtp_tx: self.srtp.as_ref().is_some_and(|s| s.tx.is_some()),
            ..self.stats.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_never_wake() {
        for (slot, generation) in [(0, 0), (1, 7), (16383, u32::MAX)] {
            for leg in 0..2 {
                for rtcp in [false, true] {
                    let id = StreamId { slot, generation };
                    let w = Which { leg, rtcp };
                    let t = token(id, w);
                    assert_ne!(t, WAKE);
                    assert_eq!(untoken(t), (id, w));
                }
            }
        }
    }
}
