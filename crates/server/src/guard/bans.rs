//! Brute-force defence: failed authentications per source and per user, and the ban list.
//!
//! What counts as a failure: a *password guess*, i.e. digest credentials whose response was
//! checked against a password and was wrong, or that named an unknown user (see
//! [`crate::auth::DigestAuth::take_guess`]). A nonce that is not ours, a replayed `nc` or a stale
//! nonce is not a guess: it says nothing about the password, and a forged or replayed packet
//! from someone else's address cannot make one. Nor is a nonce issued to another address (nonces
//! are bound to the client's address, or its IPv6 /64): a wrong password counts only against a
//! source that received the challenge, so spoofing a victim's address over UDP cannot get the
//! victim banned. A 403 for right credentials on someone else's
//! address-of-record (or From) is not a guess either: the password was right. Requests without
//! credentials (the first REGISTER of every phone, a scanner's probe) are not failures.
//!
//! The rules, within a sliding window of `ban_window`:
//!
//! - **per source**: a source with `ban_after_ip_failures` guesses (for any users) is banned for
//!   `ban_time`. A success does not reset it: an attacker holding one valid account could
//!   otherwise log in between guesses at others.
//! - **per user**: once one user has had `ban_after_user_failures` guesses from all sources
//!   together (a distributed attack, each source staying under its own threshold), every source
//!   that guesses at that user again is banned at once. Sources that only authenticate
//!   correctly are never affected, and the account itself is never locked: locking it would
//!   let anyone lock out any user.
//!
//! Trusted networks are neither counted nor banned. An IPv6 source is counted and banned by
//! its /64: one subscriber line gets a whole /64 and can rotate addresses inside it at will.
//!
//! Counts use an approximated sliding window (the count of the current fixed window plus the
//! previous window's count weighted by how much of it still overlaps), which keeps two numbers
//! per source instead of a timestamp per failure. Memory is bounded: at most [`MAX_TRACKED`]
//! sources, [`MAX_TRACKED`] users and [`MAX_BANS`] bans; past that, idle counters go first, then
//! the oldest; bans expire on their own.
//!
//! Thread safety: [`Bans::is_banned`] runs on every packet on the receive threads: an atomic
//! count of bans answers "no ban at all" without a lock, otherwise it takes a read lock on the
//! ban map. Failures are reported by the transport after the engine lock is released.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::Networks;
use crate::config::GuardSettings;

/// Most sources (and, separately, users) whose failures are counted at once.
pub const MAX_TRACKED: usize = 100_000;
/// Most bans held at once.
pub const MAX_BANS: usize = 100_000;

/// Why a source was banned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanReason {
    /// Too many password guesses from this source.
    SourceFailures,
    /// It kept guessing at a user under attack from many sources.
    UserFailures { user: String },
}

impl BanReason {
    /// `source-failures` or `user-failures` (the API's words).
    pub fn as_str(&self) -> &'static str {
        match self {
            BanReason::SourceFailures => "source-failures",
            BanReason::UserFailures { .. } => "user-failures",
        }
    }
}

/// One banned source.
#[derive(Debug, Clone)]
pub struct Ban {
    /// The banned address: an IPv4 address, or the first address of an IPv6 /64.
    pub ip: IpAddr,
    /// 32 for IPv4, 64 for IPv6.
    pub prefix_len: u8,
    pub reason: BanReason,
    pub since: Instant,
    pub until: Instant,
    /// The source's password guesses within the window when it was banned.
    pub failures: u32,
}

/// A count over an approximated sliding window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    current: u32,
    previous: u32,
    last: Instant,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            start: now,
            current: 0,
            previous: 0,
            last: now,
        }
    }

    fn roll(&mut self, now: Instant, w: Duration) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= w * 2 {
            *self = Window::new(now);
        } else if elapsed >= w {
            self.previous = self.current;
            self.current = 0;
            self.start += w;
        }
    }

    /// Failures within the last `w` (the previous window's share by overlap, rounded down).
    fn count(&self, now: Instant, w: Duration) -> u32 {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed >= w * 2 {
            return 0;
        }
        if elapsed >= w {
            let into = (elapsed - w).as_nanos();
            let overlap = w.as_nanos().saturating_sub(into);
            let prev = u128::from(self.current) * overlap / w.as_nanos().max(1);
            return u32::try_from(prev).unwrap_or(u32::MAX);
        }
        let overlap = w.as_nanos().saturating_sub(elapsed.as_nanos());
        let prev = u128::from(self.previous) * overlap / w.as_nanos().max(1);
        self.current.saturating_add(u32::try_from(prev).unwrap_or(u32::MAX))
    }

    /// Adds one failure; returns the count within the last `w`.
    fn add(&mut self, now: Instant, w: Duration) -> u32 {
        self.roll(now, w);
        self.current = self.current.saturating_add(1);
        self.last = now;
        self.count(now, w)
    }
}

/// A bounded table of windows by key.
struct Counters<K> {
    map: HashMap<K, Window>,
}

impl<K: std::hash::Hash + Eq + Clone> Counters<K> {
    fn new() -> Self {
        Counters { map: HashMap::new() }
    }

    fn add(&mut self, key: &K, now: Instant, w: Duration) -> u32 {
        if let Some(win) = self.map.get_mut(key) {
            return win.add(now, w);
        }
        if self.map.len() >= MAX_TRACKED {
            self.make_room(now, w);
        }
        let mut win = Window::new(now);
        let n = win.add(now, w);
        self.map.insert(key.clone(), win);
        n
    }

    /// Forgets counts that fell out of the window; if that is not enough, the eighth of the
    /// table that failed longest ago.
    fn make_room(&mut self, now: Instant, w: Duration) {
        self.map.retain(|_, win| win.count(now, w) > 0);
        if self.map.len() < MAX_TRACKED {
            return;
        }
        let mut lasts: Vec<Instant> = self.map.values().map(|win| win.last).collect();
        let cut = lasts.len() / 8;
        let (_, &mut oldest_kept, _) = lasts.select_nth_unstable(cut);
        self.map.retain(|_, win| win.last > oldest_kept);
    }

    fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The key a source is counted and banned by: the IPv4 address (also when it arrives
/// IPv4-mapped), or the IPv6 /64.
pub fn source_key(ip: IpAddr) -> (IpAddr, u8) {
    match ip {
        IpAddr::V4(_) => (ip, 32),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), 32),
            None => {
                let s = v6.segments();
                (IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)), 64)
            }
        },
    }
}

pub struct Bans {
    ip_threshold: u32,
    user_threshold: u32,
    window: Duration,
    ban_time: Duration,
    trusted: Networks,
    /// Entries in `banned` (expired ones included until removed): zero means no lookup.
    active: AtomicUsize,
    banned: RwLock<HashMap<IpAddr, Ban>>,
    sources: Mutex<Counters<IpAddr>>,
    users: Mutex<Counters<String>>,
    /// Packets and connections dropped because their source was banned.
    dropped: AtomicU64,
    /// Bans made since start.
    made: AtomicU64,
}

impl Bans {
    pub fn new(settings: &GuardSettings) -> Self {
        Bans {
            ip_threshold: settings.ban_after_ip_failures,
            user_threshold: settings.ban_after_user_failures,
            window: settings.ban_window.max(Duration::from_secs(1)),
            ban_time: settings.ban_time,
            trusted: Networks::parse_lossy(&settings.trusted_networks),
            active: AtomicUsize::new(0),
            banned: RwLock::new(HashMap::new()),
            sources: Mutex::new(Counters::new()),
            users: Mutex::new(Counters::new()),
            dropped: AtomicU64::new(0),
            made: AtomicU64::new(0),
        }
    }

    /// Whether packets from `ip` are dropped now. Counts the drop when they are.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        if self.active.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let key = source_key(ip).0;
        let expired = {
            let banned = self.banned.read();
            match banned.get(&key) {
                None => return false,
                Some(b) if b.until > now => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Some(_) => true,
            }
        };
        if expired && let Some(mut banned) = self.banned.try_write() {
            if banned.get(&key).is_some_and(|b| b.until <= now) {
                banned.remove(&key);
            }
            self.active.store(banned.len(), Ordering::Relaxed);
        }
        false
    }

    /// Reports a password guess for `user` from `ip`. Returns the ban it caused, if any.
    pub fn failure(&self, ip: IpAddr, user: &str, now: Instant) -> Option<Ban> {
        if self.trusted.contains(ip) {
            return None;
        }
        let (key, prefix_len) = source_key(ip);
        let w = self.window;
        let from_source = self.sources.lock().add(&key, now, w);
        let for_user = if self.user_threshold > 0 {
            self.users.lock().add(&user.to_owned(), now, w)
        } else {
            0
        };
        let reason = if self.ip_threshold > 0 && from_source >= self.ip_threshold {
            BanReason::SourceFailures
        } else if self.user_threshold > 0 && for_user >= self.user_threshold {
            BanReason::UserFailures { user: user.to_owned() }
        } else {
            return None;
        };
        let ban = Ban {
            ip: key,
            prefix_len,
            reason,
            since: now,
            until: now + self.ban_time,
            failures: from_source,
        };
        self.insert(ban.clone(), now);
        self.made.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            source = %key,
            reason = ban.reason.as_str(),
            user,
            failures = from_source,
            user_failures = for_user,
            seconds = self.ban_time.as_secs(),
            "source banned after failed authentications"
        );
        Some(ban)
    }

    fn insert(&self, ban: Ban, now: Instant) {
        let mut banned = self.banned.write();
        if banned.len() >= MAX_BANS && !banned.contains_key(&ban.ip) {
            banned.retain(|_, b| b.until > now);
            if banned.len() >= MAX_BANS
                && let Some(soonest) = banned.values().min_by_key(|b| b.until).map(|b| b.ip)
            {
                banned.remove(&soonest);
            }
        }
        banned.insert(ban.ip, ban);
        self.active.store(banned.len(), Ordering::Relaxed);
    }

    /// Lifts the ban on `ip` (any address of a banned IPv6 /64) and forgets its failures.
    /// Returns whether there was a ban in force.
    pub fn unban(&self, ip: IpAddr, now: Instant) -> bool {
        let key = source_key(ip).0;
        self.sources.lock().remove(&key);
        let mut banned = self.banned.write();
        let was = banned.remove(&key).is_some_and(|b| b.until > now);
        self.active.store(banned.len(), Ordering::Relaxed);
        if was {
            tracing::info!(source = %key, "ban lifted");
        }
        was
    }

    /// The bans in force, by address. Expired ones are dropped on the way.
    pub fn list(&self, now: Instant) -> Vec<Ban> {
        let mut banned = self.banned.write();
        banned.retain(|_, b| b.until > now);
        self.active.store(banned.len(), Ordering::Relaxed);
        let mut out: Vec<Ban> = banned.values().cloned().collect();
        drop(banned);
        out.sort_by_key(|b| b.ip);
        out
    }

    /// Bans in force.
    pub fn len(&self, now: Instant) -> usize {
        if self.active.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.banned.read().values().filter(|b| b.until > now).count()
    }

    pub fn is_empty(&self, now: Instant) -> bool {
        self.len(now) == 0
    }

    /// Packets and connections dropped because their source was banned, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Bans made since start.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Sources and users whose failures are being counted (for tests and diagnostics).
    pub fn tracked(&self) -> (usize, usize) {
        (self.sources.lock().len(), self.users.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ip: u32, user: u32, trusted: &[&str]) -> GuardSettings {
        GuardSettings {
            ban_after_ip_failures: ip,
            ban_after_user_failures: user,
            ban_window: Duration::from_secs(300),
            ban_time: Duration::from_secs(3600),
            trusted_networks: trusted.iter().map(|s| s.to_string()).collect(),
            ..GuardSettings::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_source_is_banned_at_its_threshold_and_the_ban_expires() {
        let bans = Bans::new(&settings(20, 0, &[]));
        let t0 = Instant::now();
        let attacker = ip("203.0.113.9");
        assert!(!bans.is_banned(attacker, t0));
        for i in 1..20 {
            assert!(
                bans.failure(attacker, "1001", t0 + Duration::from_millis(i)).is_none(),
                "{i}"
            );
        }
        assert!(!bans.is_banned(attacker, t0));
        let ban = bans.failure(attacker, "1001", t0).expect("20th failure bans");
        assert_eq!(
            (ban.reason, ban.failures, ban.prefix_len),
            (BanReason::SourceFailures, 20, 32)
        );
        assert!(bans.is_banned(attacker, t0 + Duration::from_secs(1)));
        assert!(!bans.is_banned(ip("203.0.113.10"), t0), "only that source");
        assert_eq!(bans.dropped(), 1);
        assert_eq!(bans.len(t0), 1);
        let later = t0 + Duration::from_secs(3601);
        assert!(!bans.is_banned(attacker, later), "bans expire");
        assert_eq!(bans.len(later), 0);
        assert!(bans.list(later).is_empty());
    }

    #[test]
    fn many_users_from_one_source_count_together_and_success_resets_nothing() {
        // svwar-like: one guess each at many users.
        let bans = Bans::new(&settings(20, 50, &[]));
        let t0 = Instant::now();
        let src = ip("198.51.100.7");
        for u in 0..19 {
            assert!(bans.failure(src, &format!("{}", 1000 + u), t0).is_none());
        }
        // (A success in between is not reported at all: nothing to reset.)
        assert!(bans.failure(src, "2000", t0).is_some());
    }

    #[test]
    fn failures_fall_out_of_the_window() {
        let bans = Bans::new(&settings(20, 0, &[]));
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for _ in 0..19 {
            bans.failure(src, "u", t0);
        }
        // Two windows later nothing is left.
        assert!(bans.failure(src, "u", t0 + Duration::from_secs(600)).is_none());
        // Half a window after a full one, about half of the previous window still counts.
        let bans = Bans::new(&settings(20, 0, &[]));
        for _ in 0..19 {
            bans.failure(src, "u", t0);
        }
        let half = t0 + Duration::from_secs(450);
        let mut n = 0;
        while bans.failure(src, "u", half).is_none() {
            n += 1;
        }
        assert!((9..=11).contains(&n), "{n} more failures to reach 20");
    }

    #[test]
    fn a_distributed_attack_on_one_user_bans_the_sources_that_keep_guessing() {
        let bans = Bans::new(&settings(20, 50, &[]));
        let t0 = Instant::now();
        // 10 sources, 5 guesses each at 1001: 50 for the user, none over the source threshold.
        let mut banned = Vec::new();
        for round in 0..5 {
            for s in 0..10 {
                let src = ip(&format!("198.51.100.{}", s + 1));
                if let Some(b) = bans.failure(src, "1001", t0 + Duration::from_secs(round)) {
                    banned.push(b);
                }
            }
        }
        assert_eq!(banned.len(), 1, "the 50th guess");
        assert_eq!(banned[0].reason, BanReason::UserFailures { user: "1001".into() });
        // Another source guessing at that user is banned at its first guess...
        let newcomer = ip("198.51.100.99");
        assert!(bans.failure(newcomer, "1001", t0 + Duration::from_secs(6)).is_some());
        // ...but a source guessing at another user is not, and nobody else is touched.
        let other = ip("198.51.100.100");
        assert!(bans.failure(other, "1002", t0 + Duration::from_secs(6)).is_none());
        assert!(!bans.is_banned(ip("198.51.100.2"), t0 + Duration::from_secs(6)));
        assert!(!bans.is_banned(ip("192.0.2.200"), t0 + Duration::from_secs(6)));
    }

    #[test]
    fn trusted_networks_are_never_counted_nor_banned() {
        let bans = Bans::new(&settings(3, 3, &["10.0.0.0/8", "2001:db8::/32"]));
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(bans.failure(ip("10.1.2.3"), "1001", t0).is_none());
            assert!(bans.failure(ip("2001:db8::5"), "1001", t0).is_none());
            assert!(bans.failure(ip("::ffff:10.9.9.9"), "1001", t0).is_none());
        }
        assert!(!bans.is_banned(ip("10.1.2.3"), t0));
        assert_eq!(bans.tracked(), (0, 0));
        assert!(bans.failure(ip("11.0.0.1"), "x", t0).is_none());
    }

    #[test]
    fn zero_thresholds_never_ban() {
        let bans = Bans::new(&settings(0, 0, &[]));
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert!(bans.failure(ip("192.0.2.1"), "1001", t0).is_none());
        }
    }

    #[test]
    fn ipv6_sources_are_banned_by_their_64() {
        let bans = Bans::new(&settings(2, 0, &[]));
        let t0 = Instant::now();
        bans.failure(ip("2001:db8:1:2::1"), "u", t0);
        let ban = bans.failure(ip("2001:db8:1:2:ffff::9"), "u", t0).expect("same /64");
        assert_eq!(ban.ip, ip("2001:db8:1:2::"));
        assert_eq!(ban.prefix_len, 64);
        assert!(bans.is_banned(ip("2001:db8:1:2:abcd::1"), t0));
        assert!(!bans.is_banned(ip("2001:db8:1:3::1"), t0));
        // An IPv4-mapped source is its IPv4 address.
        bans.failure(ip("::ffff:192.0.2.1"), "u", t0);
        assert!(bans.failure(ip("192.0.2.1"), "u", t0).is_some());
        assert!(bans.is_banned(ip("::ffff:192.0.2.1"), t0));
        assert!(bans.unban(ip("2001:db8:1:2::77"), t0));
        assert!(!bans.is_banned(ip("2001:db8:1:2::1"), t0));
    }

    #[test]
    fn unban_lifts_the_ban_and_forgets_the_failures() {
        let bans = Bans::new(&settings(3, 0, &[]));
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for _ in 0..3 {
            bans.failure(src, "u", t0);
        }
        assert!(bans.is_banned(src, t0));
        assert_eq!(bans.list(t0).len(), 1);
        assert!(bans.unban(src, t0));
        assert!(!bans.unban(src, t0), "nothing left to lift");
        assert!(!bans.is_banned(src, t0));
        assert!(bans.failure(src, "u", t0).is_none(), "counting starts over");
    }

    #[test]
    fn memory_is_bounded() {
        let bans = Bans::new(&settings(1_000, 1_000, &[]));
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 5_000) {
            let src = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            bans.failure(src, &format!("u{i}"), t0 + Duration::from_micros(u64::from(i)));
        }
        let (sources, users) = bans.tracked();
        assert!(sources <= MAX_TRACKED && users <= MAX_TRACKED, "{sources} {users}");
        // The newest are kept, the oldest went.
        let newest = IpAddr::from((0x0a00_0000u32 + MAX_TRACKED as u32 + 4_999).to_be_bytes());
        assert!(bans.sources.lock().map.contains_key(&newest));
        assert!(!bans.sources.lock().map.contains_key(&IpAddr::from([10, 0, 0, 0])));
    }

    #[test]
    fn the_ban_list_is_bounded() {
        let bans = Bans::new(&settings(1, 0, &[]));
        let t0 = Instant::now();
        for i in 0..(MAX_BANS as u32 + 10) {
            let src = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            bans.failure(src, "u", t0 + Duration::from_micros(u64::from(i)));
        }
        assert_eq!(bans.len(t0 + Duration::from_secs(1)), MAX_BANS);
        let last = IpAddr::from((0x0a00_0000u32 + MAX_BANS as u32 + 9).to_be_bytes());
        assert!(bans.is_banned(last, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn is_banned_is_cheap_without_bans_and_concurrent_with_failures() {
        let bans = std::sync::Arc::new(Bans::new(&settings(5, 0, &[])));
        let t0 = Instant::now();
        let readers: Vec<_> = (0..4)
            .map(|r| {
                let bans = bans.clone();
                std::thread::spawn(move || {
                    let mut hits = 0;
                    for i in 0..200_000u32 {
                        if bans.is_banned(IpAddr::from([192, 0, 2, (i % 50) as u8]), t0) {
                            hits += 1;
                        }
                    }
                    (r, hits)
                })
            })
            .collect();
        for i in 0..50u8 {
            for _ in 0..5 {
                bans.failure(IpAddr::from([192, 0, 2, i]), "u", t0);
            }
        }
        for r in readers {
            r.join().expect("reader");
        }
        assert_eq!(bans.len(t0), 50);
    }
}
