//! Brute-force defence: failed authentications per source IP and per user, and the ban list.
//! (Being written for issue #10.)

use std::net::IpAddr;
use std::time::Instant;

use crate::config::GuardSettings;

pub struct Bans {}

impl Bans {
    pub fn new(_settings: &GuardSettings) -> Self {
        Bans {}
    }

    /// Whether packets from `ip` are dropped now.
    pub fn is_banned(&self, _ip: IpAddr, _now: Instant) -> bool {
        false
    }
}
