//! The transaction user for everything the server answers itself (RFC 3261 §8.2, §11, §16.3
//! step 3): OPTIONS to the server, CANCEL, and the answers to what is not handled yet.
//!
//! - OPTIONS addressed to the server (a Request-URI without a user part) gets 200 with Allow,
//!   Accept and Supported (§11.2), even with Max-Forwards 0 (RFC 4475 §3.3.11);
//! - any other request with Max-Forwards 0 gets 483 (it would have to be forwarded);
//! - a request failing the UAS checks gets their verdict (416, 420, 415, ...);
//! - a method the server does not handle yet gets 501 with Allow;
//! - CANCEL gets 200 when it matches an INVITE transaction, 481 otherwise (§9.2);
//! - REGISTER goes to the registrar when the server has a store (see [`crate::registrar`]);
//! - every other request, and every response and ACK for a client transaction, goes to the
//!   proxy (see [`crate::proxy`]) when there is one.

use sip::{HeaderName, KNOWN_METHODS, Message, Method, UasPolicy, Verdict, inspect_checked_request};
use sip_txn::{Event, Peer, TransactionLayer, TxId};

use crate::proxy::Proxy;
use crate::registrar::{Registrar, Reply};
use tracing::debug;

/// The Allow header: what this server answers today.
const ALLOW: &str = "OPTIONS, ACK, CANCEL";
const ALLOW_WITH_REGISTER: &str = "REGISTER, OPTIONS, ACK, CANCEL";
const ALLOW_PROXY: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, UPDATE, INFO, MESSAGE, SUBSCRIBE, NOTIFY, REFER";

const POLICY: UasPolicy<'static> = UasPolicy {
    schemes: &["sip", "sips", "tel"],
    methods: KNOWN_METHODS,
    extensions: &[],
    body_types: &["application/sdp"],
    answer_type: None,
};

/// Makes To tags: unique per process, not guessable from the outside.
pub struct TagSource {
    state: u64,
}

impl TagSource {
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        TagSource { state: h.finish() | 1 }
    }

    pub fn next_tag(&mut self) -> String {
        // xorshift64*: fast, and the seed comes from the per-process random hasher keys.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        format!("{:x}", self.state.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }
}

impl Default for TagSource {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters the dispatcher keeps (exported as metrics later).
#[derive(Debug, Default, Clone, Copy)]
pub struct DispatchStats {
    pub requests: u64,
    pub rejected: u64,
    pub stray_responses: u64,
}

/// A password guess the registrar or the proxy refused (see `DigestAuth::take_guess`), for the
/// brute-force defence (`guard::bans`), which the transport reports it to once the engine lock
/// is released: the engine itself keeps no clock and no ban list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRefusal {
    pub source: std::net::IpAddr,
    pub user: String,
}

/// Refusals held between two [`crate::engine::Engine::take_auth_refusals`] (more are dropped:
/// the transport takes them after every message).
const MAX_REFUSALS: usize = 4096;

/// A REGISTER whose bindings must be durable before its response goes out.
pub struct PendingWrite {
    pub tx: TxId,
    pub aor: String,
    pub bindings: Vec<store::Binding>,
    pub response: Message,
}

#[derive(Default)]
pub struct Dispatcher {
    tags: TagSource,
    pub stats: DispatchStats,
    pub registrar: Option<Registrar<crate::Subscribers>>,
    /// The proxy; it routes with the registrar's location service and credentials.
    pub proxy: Option<Proxy>,
    /// Writes to hand to the group committer once the engine lock is released.
    pub pending: Vec<PendingWrite>,
    /// Password guesses to report to the brute-force defence.
    pub refusals: Vec<AuthRefusal>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Dispatcher {
    pub fn new(registrar: Option<Registrar<crate::Subscribers>>, proxy: Option<Proxy>) -> Self {
        let proxy = proxy.filter(|_| registrar.is_some());
        Dispatcher {
            registrar,
            proxy,
            ..Dispatcher::default()
        }
    }

    fn allow(&self) -> &'static str {
        if self.proxy.is_some() {
            ALLOW_PROXY
        } else if self.registrar.is_some() {
            ALLOW_WITH_REGISTER
        } else {
            ALLOW
        }
    }

    /// Drops expired bindings from the location service.
    pub fn sweep(&mut self) -> usize {
        self.registrar.as_mut().map_or(0, |r| r.location.sweep(unix_now()))
    }

    fn register(&mut self, now: std::time::Instant, txn: &mut TransactionLayer, tx: TxId, req: &Message, from: &Peer) {
        let tag = self.tags.next_tag();
        let verdict = inspect_checked_request(req, &POLICY);
        if verdict != Verdict::Accept {
            self.stats.rejected += 1;
            if let Some(resp) = verdict.response(req, &tag) {
                self.respond(now, txn, tx, resp);
            }
            return;
        }
        let Some(registrar) = self.registrar.as_mut() else {
            return;
        };
        match registrar.handle(req, from, unix_now(), &tag) {
            Reply::Now(resp) => self.respond(now, txn, tx, resp),
            Reply::AfterCommit {
                aor,
                bindings,
                response,
            } => self.pending.push(PendingWrite {
                tx,
                aor,
                bindings,
                response,
            }),
        }
    }

    /// Handles one event of the transaction layer; answers go back through `txn`.
    pub fn on_event(&mut self, now: std::time::Instant, txn: &mut TransactionLayer, event: Event) {
        match event {
            Event::Request { tx, request, from } => {
                self.stats.requests += 1;
                let source = from.addr.ip();
                if request.method() == Some(&Method::Register) && self.registrar.is_some() {
                    self.register(now, txn, tx, &request, &from);
                    self.note_guess(source);
                    return;
                }
                let to_us = request.request_uri().is_some_and(|u| u.user.is_none());
                let for_proxy = self.proxy.is_some() && !(to_us && request.method() == Some(&Method::Options));
                if for_proxy {
                    self.proxied(now, txn, tx, request, from);
                    self.note_guess(source);
                    return;
                }
                let response = self.answer(&request);
                self.respond(now, txn, tx, response);
            }
            Event::Cancel {
                tx, invite, request, ..
            } => {
                let code = if invite.is_some() { 200 } else { 481 };
                let response = Message::response_to(&request, code, None, Some(&self.tags.next_tag()));
                self.respond(now, txn, tx, response);
                if let (Some(invite), Some(proxy)) = (invite, self.proxy.as_mut()) {
                    proxy.on_cancel(now, txn, invite);
                }
            }
            Event::StrayResponse { response, from } => {
                self.stats.stray_responses += 1;
                debug!(status = response.status_code(), %from.addr, "a response that matches no transaction");
                if let Some(proxy) = self.proxy.as_mut() {
                    proxy.on_stray_response(txn, response);
                }
            }
            Event::Ack { request, from, .. } => {
                if let Some(proxy) = self.proxy.as_mut() {
                    proxy.on_ack(txn, request, from);
                }
            }
            Event::Response { tx, response } => {
                if let Some(proxy) = self.proxy.as_mut() {
                    proxy.on_response(now, txn, tx, response);
                }
            }
            Event::Terminated { tx } => {
                if let Some(proxy) = self.proxy.as_mut() {
                    proxy.on_terminated(tx);
                }
            }
            Event::Timeout { tx } => {
                debug!(?tx, "transaction timed out");
                if let Some(proxy) = self.proxy.as_mut() {
                    proxy.on_client_failure(now, txn, tx, 408);
                }
            }
            Event::TransportError { tx } => {
                debug!(?tx, "transport error");
                if let Some(proxy) = self.proxy.as_mut() {
                    proxy.on_client_failure(now, txn, tx, 503);
                }
            }
        }
    }

    /// Keeps the password guess the request just handled made, if it made one.
    fn note_guess(&mut self, source: std::net::IpAddr) {
        let Some(user) = self.registrar.as_mut().and_then(|r| r.auth.take_guess()) else {
            return;
        };
        if self.refusals.len() < MAX_REFUSALS {
            self.refusals.push(AuthRefusal { source, user });
        }
    }

    /// A request for the proxy: §16.3 checks that are the proxy's own, then routing.
    fn proxied(&mut self, now: std::time::Instant, txn: &mut TransactionLayer, tx: TxId, request: Message, from: Peer) {
        let tag = self.tags.next_tag();
        if request.max_forwards().ok().flatten() == Some(0) {
            self.stats.rejected += 1;
            self.respond(now, txn, tx, Message::response_to(&request, 483, None, Some(&tag)));
            return;
        }
        // §16.3 step 5: this proxy supports no extension that a Proxy-Require could name.
        let unsupported: Vec<String> = request
            .option_tags(HeaderName::ProxyRequire)
            .map(str::to_owned)
            .collect();
        if !unsupported.is_empty() {
            self.stats.rejected += 1;
            let mut resp = Message::response_to(&request, 420, None, Some(&tag));
            resp.push_header(HeaderName::Unsupported, &unsupported.join(", "));
            self.respond(now, txn, tx, resp);
            return;
        }
        if let (Some(proxy), Some(registrar)) = (self.proxy.as_mut(), self.registrar.as_mut()) {
            proxy.on_request(now, txn, registrar, tx, request, from, unix_now());
        }
    }

    /// Ends a call from the server's side (media timeout, operator); see [`Proxy::hang_up`].
    pub fn hang_up(&mut self, now: std::time::Instant, txn: &mut TransactionLayer, call_id: &str, why: &str) -> bool {
        self.proxy.as_mut().is_some_and(|p| p.hang_up(now, txn, call_id, why))
    }

    /// Ends the calls whose media stopped.
    pub fn check_media(&mut self, now: std::time::Instant, txn: &mut TransactionLayer) {
        if let Some(proxy) = self.proxy.as_mut() {
            proxy.check_media(now, txn);
        }
    }

    /// The proxy's timers (ring timeout, Timer C, call length).
    pub fn on_timeout(&mut self, now: std::time::Instant, txn: &mut TransactionLayer) {
        if let Some(proxy) = self.proxy.as_mut() {
            proxy.on_timeout(now, txn);
        }
    }

    pub fn next_deadline(&self) -> Option<std::time::Instant> {
        self.proxy.as_ref().and_then(Proxy::next_deadline)
    }

    /// Call records to hand to the record writer.
    pub fn take_records(&mut self) -> Vec<store::CallRecord> {
        self.proxy.as_mut().map(Proxy::take_records).unwrap_or_default()
    }

    pub fn respond(&mut self, now: std::time::Instant, txn: &mut TransactionLayer, tx: TxId, response: Message) {
        // Challenges are answered statelessly (RFC 3261 §8.2.7): half of every REGISTER+auth
        // exchange then leaves no transaction behind for 64*T1.
        let result = if matches!(response.status_code(), Some(401 | 407)) {
            txn.respond_stateless(now, tx, response)
        } else {
            txn.respond(now, tx, response)
        };
        if let Err(e) = result {
            debug!(?tx, error = %e, "could not respond");
        }
    }

    /// The response to a request addressed to this server; the request has passed
    /// `check_essentials` (the transports check every message on arrival).
    pub fn answer(&mut self, request: &Message) -> Message {
        let tag = self.tags.next_tag();
        let to_us = request.request_uri().is_some_and(|u| u.user.is_none());
        let is_options = request.method() == Some(&Method::Options);
        let verdict = inspect_checked_request(request, &POLICY);
        if let Verdict::Reject { .. } = verdict {
            self.stats.rejected += 1;
            return verdict
                .response(request, &tag)
                .unwrap_or_else(|| Message::response_to(request, 400, None, Some(&tag)));
        }
        if request.max_forwards().ok().flatten() == Some(0) && !(is_options && to_us) {
            self.stats.rejected += 1;
            return Message::response_to(request, 483, None, Some(&tag));
        }
        if is_options && to_us {
            let mut ok = Message::response_to(request, 200, None, Some(&tag));
            ok.push_header(HeaderName::Allow, self.allow());
            ok.push_header(HeaderName::Accept, "application/sdp");
            ok.push_header(HeaderName::Supported, "");
            return ok;
        }
        self.stats.rejected += 1;
        let mut resp = Message::response_to(request, 501, None, Some(&tag));
        resp.push_header(HeaderName::Allow, self.allow());
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str, extra: &str) -> Message {
        let raw = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\n\
             To: <{uri}>\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(raw.into_bytes()).expect("valid")
    }

    #[test]
    fn options_to_the_server() {
        let mut d = Dispatcher::default();
        let r = d.answer(&request("OPTIONS", "sip:127.0.0.1:5060", "Max-Forwards: 70\r\n"));
        assert_eq!(r.status_code(), Some(200));
        assert_eq!(r.header("Allow"), Some(ALLOW));
        assert_eq!(r.header("Accept"), Some("application/sdp"));
        assert!(r.header("Supported").is_some());
        assert!(r.to_header().expect("to").tag().is_some());
        let r = d.answer(&request("OPTIONS", "sip:example.com", "Max-Forwards: 0\r\n"));
        assert_eq!(
            r.status_code(),
            Some(200),
            "the target of an OPTIONS may answer it with Max-Forwards 0"
        );
    }

    #[test]
    fn what_is_not_handled_yet() {
        let mut d = Dispatcher::default();
        let r = d.answer(&request("INVITE", "sip:1001@example.com", "Max-Forwards: 70\r\n"));
        assert_eq!(r.status_code(), Some(501));
        assert_eq!(r.header("Allow"), Some(ALLOW));
        assert_eq!(
            d.answer(&request("INVITE", "sip:1001@example.com", "Max-Forwards: 0\r\n"))
                .status_code(),
            Some(483)
        );
        assert_eq!(
            d.answer(&request("FOO", "sip:example.com", "")).status_code(),
            Some(501)
        );
        assert_eq!(
            d.answer(&request("OPTIONS", "sip:1001@example.com", "")).status_code(),
            Some(501)
        );
        assert_eq!(
            d.answer(&request("OPTIONS", "nobody:opaque", "")).status_code(),
            Some(416)
        );
        assert_eq!(
            d.answer(&request("OPTIONS", "sip:example.com", "Require: foo\r\n"))
                .status_code(),
            Some(420)
        );
    }

    #[test]
    fn tags_differ() {
        let mut t = TagSource::new();
        let a = t.next_tag();
        assert_ne!(a, t.next_tag());
    }
}
