//! Defences against a hostile internet (issue #10): what a packet from a source must pass before
//! the server spends work on it.
//!
//! - [`bans`]: failed digest authentications counted per source IP and per user; past a
//!   threshold the source is banned for a while and its packets are dropped unanswered.
//! - [`flood`]: a token bucket per source IP (like Kamailio's pike), and overload shedding: when
//!   the receive queue backs up, new out-of-dialog requests get 503 + Retry-After instead of
//!   work, so the requests already admitted finish and goodput holds at capacity.
//!
//! The checks run on the receive threads before the engine lock, most of them before parsing.

pub mod bans;
pub mod flood;

use std::net::IpAddr;
use std::time::Instant;

use crate::config::GuardSettings;

/// Every check a received packet passes, shared by the transports.
pub struct Guard {
    pub bans: bans::Bans,
    pub flood: flood::Flood,
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
        }
    }

    /// The cheap checks on a packet's source, before it is parsed.
    pub fn admit(&self, source: IpAddr, now: Instant) -> Admit {
        if self.bans.is_banned(source, now) || !self.flood.take(source, now) {
            return Admit::Drop;
        }
        Admit::Yes
    }
}
