//! The registrar (RFC 3261 §10.3): digest-authenticated REGISTER, bindings per address-of-record
//! with expiry, q-values and Call-ID/CSeq ordering, `Contact: *` removal, 423 below the minimum
//! interval, and the network path each binding arrived on (RFC 3581 source, connection).
//!
//! TLS policy: a REGISTER over UDP/TCP whose Request-URI or a Contact is `sips:` gets 403
//! "Forbidden (sips: needs TLS)" before authentication (RFC 3261 §26.2.2: a SIPS URI asks for TLS
//! on every hop, so a SIPS Contact is only registered over TLS). 403 rather than 400: the request
//! is well formed, and the same REGISTER over TLS would succeed; it is refused, not misunderstood.
//! A user flagged `tls_only` gets 403 "Forbidden (TLS required)" for a REGISTER over UDP/TCP,
//! only once its credentials are right, so the answer tells nothing about which users exist or
//! how they are configured. The flag is read through the subscriber cache: a change made by the
//! CLI or the API applies within a second.
//!
//! The in-memory [`Location`] answers lookups; every change is also written through the store's
//! group committer, and the 200 is sent only once that write is durable (the caller gets
//! [`Reply::AfterCommit`]). At start the bindings that have not expired are loaded back.

use std::collections::HashMap;
use std::net::IpAddr;

use sip::headers::Contact;
use sip::{HeaderName, Message, Scheme};
use sip_txn::{Peer, Transport};
use store::{Binding, SubscriberCache, SubscriberStore};

use crate::auth::{AuthOutcome, DigestAuth};

/// Registration intervals, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            min: 60,
            max: 3600,
            default: 3600,
        }
    }
}

/// Every binding the server knows, by address-of-record (`user@domain`).
#[derive(Debug, Default)]
pub struct Location {
    by_aor: HashMap<String, Vec<Binding>>,
}

impl Location {
    pub fn from_bindings(bindings: Vec<Binding>) -> Self {
        let mut by_aor: HashMap<String, Vec<Binding>> = HashMap::new();
        for b in bindings {
            by_aor.entry(b.aor.clone()).or_default().push(b);
        }
        Location { by_aor }
    }

    /// The unexpired bindings of an AOR, highest q first.
    pub fn lookup(&self, aor: &str, now: u64) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .by_aor
            .get(aor)
            .map(|v| v.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        v.sort_by_key(|b| std::cmp::Reverse(b.q));
        v
    }

    pub fn set(&mut self, aor: &str, bindings: Vec<Binding>) {
        if bindings.is_empty() {
            self.by_aor.remove(aor);
        } else {
            self.by_aor.insert(aor.to_owned(), bindings);
        }
    }

    /// Drops expired bindings; returns how many.
    pub fn sweep(&mut self, now: u64) -> usize {
        let mut n = 0;
        self.by_aor.retain(|_, v| {
            let before = v.len();
            v.retain(|b| b.expires_at > now);
            n += before - v.len();
            !v.is_empty()
        });
        n
    }

    /// Takes a snapshot of the shared location store (other nodes' writes), except for the
    /// AORs where this node `me` holds a binding, in memory or in the snapshot: this node wrote
    /// those last, and a write of its own may still be on its way to the store.
    pub fn merge_shared(&mut self, bindings: Vec<Binding>, me: &str) {
        let mut fresh = Location::from_bindings(bindings).by_aor;
        let ours = |v: &Vec<Binding>| v.iter().any(|b| b.node == me);
        fresh.retain(|aor, v| !ours(v) && !self.by_aor.get(aor).is_some_and(ours));
        for (aor, local) in &self.by_aor {
            if ours(local) {
                fresh.insert(aor.clone(), local.clone());
            }
        }
        self.by_aor = fresh;
    }

    pub fn aors(&self) -> usize {
        self.by_aor.len()
    }

    /// Every binding held (expired ones too until the next sweep).
    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.by_aor.values().flatten()
    }

    /// The bindings of one AOR as held (unsorted, expired ones included).
    pub fn of(&self, aor: &str) -> &[Binding] {
        self.by_aor.get(aor).map_or(&[], Vec::as_slice)
    }
}

/// What to do with a REGISTER.
#[derive(Debug)]
pub enum Reply {
    /// Send this response now.
    Now(Message),
    /// Write `bindings` for `aor` durably, then send `response`.
    AfterCommit {
        aor: String,
        bindings: Vec<Binding>,
        response: Message,
    },
}

pub struct Registrar<S: SubscriberStore> {
    pub domain: String,
    pub intervals: Intervals,
    pub auth: DigestAuth,
    pub subscribers: SubscriberCache<S>,
    pub location: Location,
    /// Credentials presented and refused (wrong password, unknown user, replayed nc).
    pub auth_failures: u64,
    /// This node's id in a cluster, recorded in each binding it makes (empty on a single
    /// server).
    pub node: String,
}

/// Whether signalling from `t` is encrypted (TLS, or secure WebSocket).
pub fn is_secure(t: Transport) -> bool {
    matches!(t, Transport::Tls | Transport::Wss)
}

/// Whether `req` asks for SIPS: its Request-URI or one of its Contacts is a `sips:` URI.
fn wants_sips(req: &Message) -> bool {
    req.request_uri().is_some_and(|u| u.scheme == Scheme::Sips)
        || req
            .contacts()
            .filter_map(Result::ok)
            .any(|c| c.addr().is_some_and(|a| a.uri.scheme == Scheme::Sips))
}

fn source_of(peer: &Peer) -> String {
    let t = match peer.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
        Transport::Ws => "ws",
        Transport::Wss => "wss",
    };
    format!("{t}:{}", peer.addr)
}

/// NAT detection for a REGISTER (what Kamailio's `nat_uac_test` checks): the packet's source
/// address (`received`) or port (`rport`) differs from the Via sent-by, or the Contact is a private address while the packet came from a public one.
fn behind_nat(req: &Message, contact: &sip::Uri<'_>, from: &Peer) -> bool {
    // RFC 3581 puts `received` on every Via that asks for rport, so only a value that differs
    // from the sent-by counts.
    let via_moved = req.via().is_ok_and(|v| {
        let host = v.host.trim_start_matches('[').trim_end_matches(']');
        v.received().is_some_and(|r| !r.eq_ignore_ascii_case(host))
            || matches!(v.rport(), Some(Some(p)) if p != v.port.unwrap_or(5060))
    });
    let private = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64),
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    };
    let contact_private = contact.host_ip().is_some_and(private) && !private(from.addr.ip());
    via_moved || contact_private
}

fn http_date(unix: u64) -> String {
    // RFC 1123 date in GMT (RFC 3261 §20.17), without a date crate.
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

impl<S: SubscriberStore> Registrar<S> {
    /// Checks the digest credentials of `req` in `header` (Authorization for the registrar,
    /// Proxy-Authorization for the proxy) against the subscribers of the domain. `client` is
    /// the packet's source address: the nonce must have been issued to it.
    pub fn authenticate(&mut self, req: &Message, header: HeaderName, client: IpAddr, now: u64) -> AuthOutcome {
        let method = req.method().map(|m| m.as_str().to_owned()).unwrap_or_default();
        let uri = req.request_uri_str().unwrap_or_default().to_owned();
        let creds = req
            .credentials(header)
            .filter_map(Result::ok)
            .filter_map(|c| c.digest().ok())
            .find(|d| d.realm == self.domain);
        let Some(d) = creds else {
            return AuthOutcome::Challenge { stale: false };
        };
        let verify = |this: &mut Self| {
            let subscribers = &mut this.subscribers;
            let domain = &this.domain;
            this.auth.verify(&d, &method, &uri, domain, client, now, |u, alg| {
                subscribers
                    .get(u, domain)
                    .ok()
                    .flatten()
                    .and_then(|s| s.ha1(alg).map(str::to_owned))
            })
        };
        let outcome = match verify(self) {
            // Refused: maybe the user or the password changed a moment ago in another process.
            AuthOutcome::Challenge { stale: false } if self.subscribers.revalidate().unwrap_or(false) => verify(self),
            outcome => outcome,
        };
        if outcome == (AuthOutcome::Challenge { stale: false }) {
            self.auth_failures += 1;
        }
        outcome
    }

    /// A 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) with fresh challenges, for a
    /// request from `client` (the nonce is good from that address only).
    pub fn challenge(&mut self, req: &Message, code: u16, stale: bool, tag: &str, client: IpAddr, now: u64) -> Message {
        let header = if code == 407 {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        let mut resp = Message::response_to(req, code, None, Some(tag));
        for c in self.auth.challenges(&self.domain, now, client, stale) {
            resp.push_header(header, &c);
        }
        resp
    }

    /// Whether `user` is a subscriber of the domain.
    pub fn has_subscriber(&mut self, user: &str) -> bool {
        let domain = self.domain.clone();
        self.subscribers.get(user, &domain).ok().flatten().is_some()
    }

    /// Whether `user` is a subscriber of the domain flagged to use TLS only.
    pub fn is_tls_only(&mut self, user: &str) -> bool {
        let domain = self.domain.clone();
        self.subscribers
            .get(user, &domain)
            .ok()
            .flatten()
            .is_some_and(|s| s.tls_only)
    }

    /// Whether `user` may register and call from `ip` (its `allowed_networks`; none: anywhere).
    /// Asked only after authentication, so the answer says nothing to someone without the
    /// password.
    pub fn allowed_from(&mut self, user: &str, ip: std::net::IpAddr) -> bool {
        let domain = self.domain.clone();
        match self.subscribers.get(user, &domain).ok().flatten() {
            Some(s) if !s.allowed_networks.is_empty() => {
                crate::guard::Networks::parse_lossy(&s.allowed_networks).contains(ip)
            }
            _ => true,
        }
    }

    /// Handles a REGISTER that passed `check_essentials`. `now` is Unix time in seconds.
    pub fn handle(&mut self, req: &Message, from: &Peer, now: u64, tag: &str) -> Reply {
        let reply = |code: u16, reason: Option<&str>| Reply::Now(Message::response_to(req, code, reason, Some(tag)));
        let Ok(to) = req.to_header() else {
            return reply(400, Some("Bad To header"));
        };
        if !matches!(to.uri.scheme, Scheme::Sip | Scheme::Sips) {
            return reply(400, Some("To must be a SIP or SIPS address-of-record"));
        }
        let Some(user) = to.uri.user_str().map(|u| u.into_owned()) else {
            return reply(400, Some("To has no user part"));
        };
        if !to.uri.host_unbracketed().eq_ignore_ascii_case(&self.domain) {
            return reply(404, Some("Not Found (domain not served here)"));
        }
        let aor = format!("{user}@{}", self.domain);
        if !is_secure(from.transport) && wants_sips(req) {
            return reply(403, Some("Forbidden (sips: needs TLS)"));
        }

        // Authentication (§22.3): the digest must be ours, right, and for the AOR's user.
        let outcome = self.authenticate(req, HeaderName::Authorization, from.addr.ip(), now);
        match outcome {
            AuthOutcome::Authenticated { username } if username == user => {}
            AuthOutcome::Authenticated { .. } => return reply(403, Some("Forbidden (user does not match the AOR)")),
            AuthOutcome::BadRequest(why) => return reply(400, Some(why)),
            AuthOutcome::Challenge { stale } => {
                return Reply::Now(self.challenge(req, 401, stale, tag, from.addr.ip(), now));
            }
        }
        if !is_secure(from.transport) && self.is_tls_only(&user) {
            return reply(403, Some("Forbidden (TLS required)"));
        }
        if !self.allowed_from(&user, from.addr.ip()) {
            return reply(403, Some("Forbidden (not allowed from this network)"));
        }

        // Contacts (§10.3 steps 6-8).
        let contacts: Vec<Contact<'_>> = match req.contacts().collect() {
            Ok(c) => c,
            Err(_) => return reply(400, Some("Bad Contact header")),
        };
        let header_expires = req.expires().ok().flatten();
        let call_id = req.call_id().unwrap_or_default().to_owned();
        let cseq = req.cseq().map(|c| c.seq).unwrap_or_default();
        let mut bindings: Vec<Binding> = self.location.lookup(&aor, now).into_iter().cloned().collect();
        let before = bindings.clone();

        if contacts.iter().any(|c| matches!(c, Contact::Star)) {
            if contacts.len() != 1 || header_expires != Some(0) {
                return reply(400, Some("Contact: * needs Expires: 0 and no other Contact"));
            }
            if bindings.iter().any(|b| b.call_id == call_id && b.cseq >= cseq) {
                return reply(500, Some("Out of order CSeq"));
            }
            bindings.clear();
        }
        for c in contacts.iter().filter_map(Contact::addr) {
            let expires = match c.params.get("expires") {
                Some(Some(v)) => sip::headers::parse_delta_seconds(v).unwrap_or(self.intervals.default),
                _ => header_expires.unwrap_or(self.intervals.default),
            };
            if expires != 0 && expires < self.intervals.min {
                let mut resp = Message::response_to(req, 423, None, Some(tag));
                resp.push_header(HeaderName::MinExpires, &self.intervals.min.to_string());
                return Reply::Now(resp);
            }
            let expires = expires.min(self.intervals.max);
            let contact_uri = c.uri.as_str().to_owned();
            let q = Contact::Addr(*c).q_millis().and_then(Result::ok).unwrap_or(1000);
            let existing = bindings
                .iter()
                .position(|b| sip::Uri::parse(&b.contact).is_ok_and(|u| u.equivalent(&c.uri)));
            if let Some(i) = existing {
                if bindings[i].call_id == call_id && bindings[i].cseq >= cseq {
                    return reply(500, Some("Out of order CSeq"));
                }
                bindings.remove(i);
            }
            if expires > 0 {
                bindings.push(Binding {
                    aor: aor.clone(),
                    contact: contact_uri,
                    expires_at: now + u64::from(expires),
                    q,
                    call_id: call_id.clone(),
                    cseq,
                    source: source_of(from),
                    conn: if from.transport == Transport::Udp { 0 } else { from.conn },
                    user_agent: req.header("User-Agent").map(str::to_owned),
                    behind_nat: behind_nat(req, &c.uri, from),
                    node: self.node.clone(),
                });
            }
        }

        let mut ok = Message::response_to(req, 200, None, Some(tag));
        for b in &bindings {
            let left = b.expires_at.saturating_sub(now);
            let q = if b.q == 1000 {
                String::new()
            } else {
                format!(";q={}.{:03}", b.q / 1000, b.q % 1000)
            };
            ok.push_header(HeaderName::Contact, &format!("<{}>;expires={left}{q}", b.contact));
        }
        ok.push_header(HeaderName::Date, &http_date(now));
        if bindings == before {
            return Reply::Now(ok);
        }
        self.location.set(&aor, bindings.clone());
        Reply::AfterCommit {
            aor,
            bindings,
            response: ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc1123_gmt() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn location_sweeps_and_orders_by_q() {
        let b = |c: &str, exp: u64, q: u16| Binding {
            aor: "1000@x".into(),
            contact: c.into(),
            expires_at: exp,
            q,
            call_id: "c".into(),
            cseq: 1,
            source: "udp:1.2.3.4:5".into(),
            conn: 0,
            user_agent: None,
            behind_nat: false,
            node: String::new(),
        };
        let mut l = Location::from_bindings(vec![
            b("sip:a@h", 100, 500),
            b("sip:b@h", 200, 900),
            b("sip:c@h", 50, 1000),
        ]);
        let order: Vec<_> = l.lookup("1000@x", 60).iter().map(|b| b.contact.clone()).collect();
        assert_eq!(order, ["sip:b@h", "sip:a@h"]);
        assert_eq!(l.sweep(150), 2);
        assert_eq!(l.aors(), 1);
        assert_eq!(l.sweep(300), 1);
        assert_eq!(l.aors(), 0);
    }
}
