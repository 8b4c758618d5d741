//! Flood limits: a token bucket per source IP, and overload shedding. (Being written for #10.)

use std::net::IpAddr;
use std::time::Instant;

use crate::config::GuardSettings;

pub struct Flood {}

impl Flood {
    pub fn new(_settings: &GuardSettings) -> Self {
        Flood {}
    }

    /// A place for one TLS handshake from `ip`, given back when dropped; `None` when the source
    /// has too many in progress.
    pub fn handshake_slot(&self, _ip: IpAddr) -> Option<HandshakeSlot> {
        Some(HandshakeSlot {})
    }

    /// Takes a token from `ip`'s bucket; false when it has none left.
    pub fn take(&self, _ip: IpAddr, _now: Instant) -> bool {
        true
    }
}

/// One TLS handshake in progress.
pub struct HandshakeSlot {}
