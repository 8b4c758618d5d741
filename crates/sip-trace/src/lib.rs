//! # sip-trace — the server's in-memory SIP trace
//!
//! Owns the trace of issue #8: a bounded ring of the most recent SIP messages the server received
//! and sent ([`TraceRing`]), grouped by Call-ID and searchable by user, exported as a pcap file
//! ([`pcap::write`]) that Wireshark, tshark and sngrep open, and optionally streamed as HEP3 to a
//! Homer collector ([`hep3::HepSender`]). Everything is sans-IO except the HEP sender's UDP
//! socket; the transport layer calls [`TraceRing::record`] for every message from many threads.
//!
//! Written by hand because the formats are tiny: a [`Summary`] is a header scan of a few
//! lines, not a SIP parse (the `sip` crate's full parser would allocate a whole message per
//! record); pcap writing is a 24-byte file header and a 16-byte record header per frame plus
//! synthetic IP/UDP/TCP headers; HEP3 is a dozen type-length-value chunks, and no maintained
//! crate implements it.
//!
//! ## Recording cost
//! [`TraceRing::record`] scans the payload's headers before taking the lock: no allocation,
//! `memchr` for line ends, and only lines that can be Call-ID, CSeq, From or To are looked at.
//! Under the lock it pushes a fixed-size entry, evicts the oldest when full, and keeps the
//! Call-ID index: one hash look-up for the new message and one for the evicted one, plus an
//! insert when the call is new and a remove and insert when the evicted message's call goes on
//! (its key moves). The payload is the transport's `Bytes`, shared by reference count, not
//! copied. No string is built until the trace is read, and then after the lock is released.
//! Measured (`scan_cost` test, release build, 2-core machine, ~300-byte messages): 0.3-0.5 µs
//! per record, scan included.
//!
//! ## Memory
//! Per message in the ring: a 144-byte entry (timestamps, both addresses, the `Bytes` handle,
//! the summary as six 16-bit ranges into the payload, the Call-ID link), plus the payload itself
//! (plus the `Bytes` shared header once the buffer is shared, about 24 bytes and an allocation);
//! plus, per distinct Call-ID, one 56-byte index slot (key = a `Bytes` slice of a payload, no
//! copy; first/last/count) and its control byte. Summary strings are never stored. At capacity
//! 100,000: 14.4 MB of entries (reserved up front, so recording never reallocates under the
//! lock; pages are touched as the ring fills), at most about 7.5 MB of index (131,072 slots
//! reserved, used as calls arrive), and the payloads: with typical 500-1,500 byte messages about
//! 100 MB. The transport should hand over a `Bytes` that owns just the message, not a slice of a
//! bigger receive buffer, which the ring would keep alive.
//!
//! ## Lookups
//! [`TraceRing::call`] follows the call's links from the index: O(messages of the call).
//! [`TraceRing::recent`] and [`TraceRing::search_user`] walk the ring back from the newest
//! message, stopping after `limit` calls; each call is met once (its last message carries a
//! flag). A search that matches nothing walks the whole ring under the lock: about 1.1 ms at
//! 100,000 messages (`scan_cost`), acceptable for an operator's query, so there is no user index.
//! `recent(50)` takes about 50 µs, `call` about 2 µs per message (strings included).

pub mod hep3;
pub mod pcap;
mod ring;
mod summary;

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use ring::{CallSummary, TraceRing};
pub use summary::{Summary, summarize};

/// Which way a message went, relative to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received by the server.
    In,
    /// Sent by the server.
    Out,
}

/// The transport a message used. TLS messages are recorded decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Udp,
    Tcp,
    Tls,
}

/// One message of the trace. Serializes with the payload as (lossy UTF-8) text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TracedMessage {
    /// Increasing, without gaps, from 1 for the first message recorded.
    pub seq: u64,
    /// Unix time in microseconds.
    pub at_us: u64,
    pub direction: Direction,
    pub proto: Proto,
    /// The server's address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    #[serde(serialize_with = "payload_as_text")]
    pub payload: bytes::Bytes,
    pub summary: Summary,
}

impl TracedMessage {
    /// A message with its summary computed from `payload`.
    pub fn new(
        seq: u64,
        at_us: u64,
        direction: Direction,
        proto: Proto,
        local: SocketAddr,
        remote: SocketAddr,
        payload: bytes::Bytes,
    ) -> Self {
        TracedMessage {
            seq,
            at_us,
            direction,
            proto,
            local,
            remote,
            summary: summarize(&payload),
            payload,
        }
    }
}

fn payload_as_text<S: serde::Serializer>(payload: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(payload))
}

/// The current Unix time in microseconds, for [`TraceRing::record`].
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
