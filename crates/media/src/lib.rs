//! # media — switchboard's RTP/RTCP relay
//!
//! Media anchoring for every call: each stream gets two legs (A, the caller's side, and B, the
//! callee's), each leg an even RTP port and RTP+1 for RTCP (RFC 3550 §11) taken from a pool on the
//! media address. RTP and RTCP that arrive on one leg's ports leave from the other leg's ports
//! toward that leg's phone; the relay latches to the real source of each phone (RFC 7362) with a
//! rule that keeps a third party from taking the stream over ([`latch`]), counts packets and bytes
//! per direction, reads loss and jitter from the phones' RTCP report blocks (RFC 3550 §6.4), and
//! reports calls whose media stopped so the proxy can end them.
//!
//! Written by hand because it is the core of the product and its hottest path: at 1,000 G.711
//! calls it moves 100,000 packets a second, and every microsecond per packet is a tenth of a core.
//! A fixed set of relay threads each owns an epoll instance; a readable socket is drained with one
//! `recvmmsg` into preallocated buffers and its packets leave with one `sendto`/`sendmmsg`, with no
//! heap allocation, no channel and no async runtime between the two; busy threads poll instead of
//! waking up per packet (`worker.rs`). Linux only.
//!
//! SRTP (RFC 3711 with SDES keys) is terminated per leg when the proxy gives a leg keys
//! ([`MediaRelay::set_srtp`], `srtp.rs`); streams without keys keep the allocation-free path.
//!
//! Files: `relay.rs` holds the handle the proxy calls (allocation, remotes, release, stats, media
//! timeout), `stream.rs` the per-stream state and its slab, `pool.rs` the port pool, `latch.rs`
//! the latching rule, `rtcp.rs` the report-block reader, `worker.rs` the relay threads, `sys.rs`
//! the epoll/eventfd/`recvmmsg` wrappers.
//!
//! ```no_run
//! use std::time::Duration;
//! use media::{Leg, MediaConfig, MediaRelay};
//! let relay = MediaRelay::start(MediaConfig {
//!     address: "192.0.2.10".parse()?,
//!     ports: (20000, 29999),
//!     media_timeout: Duration::from_secs(60),
//!     threads: 0,
//! })?;
//! let stream = relay.allocate("call-1@example.com")?;
//! let (a_port, b_port) = relay.ports(stream).expect("just allocated");
//! // a_port goes into the SDP toward the caller, b_port into the SDP toward the callee.
//! relay.set_remote(stream, Leg::A, "198.51.100.7:4000".parse()?, None)?;
//! # let _ = (a_port, b_port);
//! for call in relay.timed_out() {
//!     // send BYE both ways, then:
//!     relay.release_call(&call);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(not(target_os = "linux"))]
compile_error!("the media relay needs Linux (epoll, recvmmsg, sendmmsg, eventfd)");

pub mod latch;
mod pool;
mod relay;
pub mod rtcp;
mod srtp;
mod stats;
mod stream;
mod sys;
mod worker;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

pub use latch::LATCH_WINDOW;
pub use relay::MediaRelay;
pub use rtcp::ReceptionReport;
pub use srtp::{SrtpKey, random_key as random_srtp_key};
pub use stats::{LegStats, StreamStats};

/// The relay's settings.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// The address the media ports are bound on (and that the SDP announces).
    pub address: IpAddr,
    /// The port range, both ends inclusive. RTP ports are the even ports `p` with `p + 1` in range.
    /// Best kept out of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`, by default
    /// 32768–60999) or reserved (`ip_local_reserved_ports`): a pair some other socket holds is
    /// skipped, so the pool then holds fewer streams.
    pub ports: (u16, u16),
    /// A call none of whose streams carried a packet for this long is reported by
    /// [`MediaRelay::timed_out`].
    pub media_timeout: Duration,
    /// Relay threads; 0 means one per core.
    pub threads: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            address: IpAddr::from([127, 0, 0, 1]),
            ports: (30000, 39999),
            media_timeout: Duration::from_secs(60),
            threads: 0,
        }
    }
}

/// One of the two legs of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The caller's side: the port announced to the caller, the phone that sent the offer.
    A,
    /// The callee's side.
    B,
}

impl Leg {
    pub(crate) fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }
}

/// A stream: the two legs allocated together. Stale ids (of released streams) are harmless: every
/// operation checks the generation and treats them as unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slot, self.generation)
    }
}

/// What a control operation can fail with.
#[derive(Debug)]
pub enum MediaError {
    /// No free port pair could be bound.
    PortsExhausted,
    /// The stream was released (or never existed).
    UnknownStream,
    /// The remote address would loop media back into the relay (it is one of the relay's own ports).
    InvalidRemote,
    /// The relay was shut down.
    ShutDown,
    /// A system call failed.
    Io(io::Error),
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaError::PortsExhausted => f.write_str("media port pool exhausted"),
            MediaError::UnknownStream => f.write_str("unknown media stream"),
            MediaError::InvalidRemote => f.write_str("remote media address not usable"),
            MediaError::ShutDown => f.write_str("media relay shut down"),
            MediaError::Io(e) => write!(f, "media relay: {e}"),
        }
    }
}

impl std::error::Error for MediaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MediaError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for MediaError {
    fn from(e: io::Error) -> Self {
        MediaError::Io(e)
    }
}
