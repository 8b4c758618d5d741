//! The authenticating stateful proxy (RFC 3261 §16) and call tracking.
//!
//! - Out-of-dialog requests from local users are challenged with 407 (§22.3, shared digest code
//!   with the registrar), checked against their From (403 for spoofing), and routed by the
//!   Request-URI user: 404 for an unknown user, 480 for one with no binding, otherwise every
//!   binding rings in parallel (§16.6 forking). A Request-URI outside the domain gets 403: the
//!   server is not an open relay.
//! - TLS policy (RFC 5630): a request to a `sips:` Request-URI that arrived over UDP/TCP gets 480
//!   with `Warning: 381 "SIPS Required"` before any challenge (480 rather than 403: nothing is
//!   wrong with the caller's rights, and the same request over TLS goes through; the Warning code
//!   tells the caller's phone why). A `tls_only` caller over UDP/TCP gets 403 "Forbidden (TLS
//!   required)" once authenticated. A call to a `tls_only` user, or to any `sips:` Request-URI, is
//!   delivered to TLS bindings only; with none, 480 (with `Warning: 380 "SIPS Not Allowed"` for a
//!   `sips:` Request-URI).
//! - INVITE responses go through a response context (§16.7): provisional responses are forwarded
//!   while no final response went upstream, so a 180 never follows its 200; the first 2xx is
//!   forwarded at once and the other branches are CANCELled; a 6xx ends the call; otherwise the
//!   best final response is sent when every branch has one ([`call::rank`]).
//! - CANCEL from the caller cancels every branch (§16.10); the 487s come back and the caller gets
//!   487. The ring timeout (480) and Timer C (§16.6 step 11, 408) end unanswered calls.
//! - Record-Route (§16.6 step 4; two entries when the transport changes) keeps the proxy in the
//!   dialog; in-dialog requests are loose-routed (§16.4, §16.12) and sent to the other party's
//!   registered path: the source address and connection the phone used, not the private
//!   address in its Contact (NAT).
//! - SDES-SRTP only over TLS signalling (RFC 4568 §8.3, see [`media`]): an offer with `a=crypto`
//!   keys in a request that came over UDP/TCP gets 488 with `Warning: 399 <domain> "SRTP keys
//!   need TLS signalling"`, and SRTP goes only toward phones whose signalling is TLS (a branch
//!   without TLS gets the offer as plain RTP, bridged at the relay).
//! - Every finished call becomes a [`CallRecord`]; the engine hands them to the record writer.
//!
//! Sans-IO like the rest of the engine: time comes in as `now`, messages go out through the
//! transaction layer.

pub mod call;
pub mod media;
pub mod route;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use sip::{HeaderName, Message, Method, Scheme};
use sip_txn::{Peer, TransactionLayer, TxId};
use store::{CallRecord, Disposition, SubscriberStore};
use tracing::debug;

use crate::auth::AuthOutcome;
use crate::cluster::{ClusterView, Hop};
use crate::registrar::{Registrar, is_secure};
pub use call::{Call, Phase};
pub use route::LocalAddrs;

/// The proxy's timers and limits.
#[derive(Debug, Clone, Copy)]
pub struct ProxyConfig {
    /// An unanswered call is ended with 480 after this long.
    pub ring_timeout: Duration,
    /// Timer C (§16.6 step 11): no provisional response for this long ends the call with 408.
    pub timer_c: Duration,
    /// An answered call that sees no BYE for this long is forgotten (record hangup: `server`).
    pub max_call: Duration,
    /// Most calls one user may have in progress as caller (0: no limit): a stolen password
    /// then places a handful of fraudulent calls, not hundreds.
    pub max_calls_per_user: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            ring_timeout: Duration::from_secs(60),
            timer_c: Duration::from_secs(180),
            max_call: Duration::from_secs(4 * 3600),
            max_calls_per_user: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Ring,
    TimerC,
    MaxCall,
}

/// A request forwarded statefully outside a call's INVITE (BYE, re-INVITE, MESSAGE, ...): its
/// responses go back to `server_tx`.
#[derive(Debug, Clone)]
struct Relay {
    server_tx: TxId,
    /// For a request inside a call: the call, and the side that answers it (for SDP in its
    /// responses), and whether the request carried an offer.
    dialog: Option<(String, media::Leg, bool)>,
}

pub struct Proxy {
    config: ProxyConfig,
    local: LocalAddrs,
    calls: HashMap<String, Call>,
    serials: HashMap<String, u64>,
    by_server_tx: HashMap<TxId, String>,
    by_client_tx: HashMap<TxId, String>,
    relays: HashMap<TxId, Relay>,
    timers: BinaryHeap<Reverse<(Instant, u64, TimerKind, String)>>,
    next_serial: u64,
    records: Vec<CallRecord>,
    branch_salt: u64,
    branch_seq: u64,
    /// Wall clock at an instant, for the times in call records.
    wall_anchor: (Instant, u64),
    /// The media relay, when media is anchored.
    media: Option<Box<dyn media::MediaControl>>,
    policy: sdp::CodecPolicy,
    /// Calls in progress per caller, for `max_calls_per_user`.
    calls_by_caller: HashMap<String, u32>,
    /// The other nodes of the platform, when there are any (see `crate::cluster`).
    cluster: Option<ClusterView>,
}

/// Where one branch of a request goes.
#[derive(Debug, Clone)]
struct Target {
    /// The registered contact: the Request-URI of the branch.
    contact: String,
    to: Peer,
    /// `to` is the node that holds the phone's flow: the branch is an internal hop.
    hop: bool,
    /// The phone registered over TLS (a hop itself is UDP between nodes).
    secure: bool,
}

/// The user part of a SIP URI's user, lower-case host.
fn user_of(uri: &sip::Uri<'_>) -> Option<String> {
    uri.user_str().map(|u| u.into_owned())
}

impl Proxy {
    pub fn new(config: ProxyConfig, local: LocalAddrs, now: Instant, wall_ms: u64, salt: u64) -> Self {
        Proxy {
            config,
            local,
            calls: HashMap::new(),
            serials: HashMap::new(),
            by_server_tx: HashMap::new(),
            by_client_tx: HashMap::new(),
            relays: HashMap::new(),
            timers: BinaryHeap::new(),
            next_serial: 0,
            records: Vec::new(),
            branch_salt: salt,
            branch_seq: 0,
            calls_by_caller: HashMap::new(),
            cluster: None,
            wall_anchor: (now, wall_ms),
            media: None,
            policy: sdp::CodecPolicy::default(),
        }
    }

    /// Anchors the media of every call in `relay`, with offers filtered by `policy`.
    /// Routes to phones held by other nodes through them (see `crate::cluster`).
    pub fn with_cluster(mut self, view: Option<ClusterView>) -> Self {
        self.cluster = view;
        self
    }

    pub fn cluster_mut(&mut self) -> Option<&mut ClusterView> {
        self.cluster.as_mut()
    }

    /// Where a request for binding `b` goes: to the phone, or through the node that holds its
    /// flow. When that node is gone, a UDP phone is tried directly (its Contact, or its NAT
    /// address, which may still let us in); a TCP/TLS phone's connection died with the node.
    fn target_of(&self, b: &store::Binding) -> Option<Target> {
        let secure = b.source.starts_with("tls:") || b.source.starts_with("wss:");
        let target = |to: Peer, hop: bool| Target {
            contact: b.contact.clone(),
            to,
            hop,
            secure,
        };
        if let Some(view) = &self.cluster
            && !view.is_local(&b.node)
        {
            if let Some(addr) = view.peer(&b.node) {
                let node = Peer {
                    transport: sip_txn::Transport::Udp,
                    addr,
                    conn: 0,
                };
                return Some(target(node, true));
            }
            let direct = route::binding_target(b)?;
            return (direct.transport == sip_txn::Transport::Udp).then(|| target(direct, false));
        }
        Some(target(route::binding_target(b)?, false))
    }

    pub fn with_media(mut self, relay: Box<dyn media::MediaControl>, policy: sdp::CodecPolicy) -> Self {
        self.media = Some(relay);
        self.policy = policy;
        self
    }

    /// Rewrites the SDP body of `msg` (sent by side `from`) through the relay. `Ok(())` when
    /// there is nothing to do.
    #[allow(clippy::too_many_arguments)]
    fn anchor_body(
        ctl: &mut Option<Box<dyn media::MediaControl>>,
        policy: &sdp::CodecPolicy,
        domain: &str,
        call_id: &str,
        call_media: &mut media::CallMedia,
        msg: &mut Message,
        from: media::Leg,
        offer: bool,
    ) -> Result<(), media::MediaFailure> {
        let Some(ctl) = ctl.as_deref_mut() else {
            return Ok(());
        };
        if call_media.passthrough || !media::has_sdp(msg) {
            return Ok(());
        }
        // An offer in a request can be refused; a response or an ACK cannot (`anchor` then
        // ignores the keys).
        let sender_secure = call_media.signalling[match from {
            media::Leg::A => 0,
            media::Leg::B => 1,
        }];
        let refusable = offer && msg.method().is_some_and(|m| *m != Method::Ack);
        if refusable && !sender_secure && media::has_mandatory_keys(msg.body()) {
            debug!(call_id, "SDES keys offered over signalling without TLS: refused");
            let warning = format!("399 {domain} \"SRTP keys need TLS signalling\"");
            return Err(media::MediaFailure::InsecureKeys(warning));
        }
        if !sender_secure && let Some(plain) = media::without_keys(msg.body()) {
            // Best-effort SRTP (`RTP/AVP` with `a=crypto`, what many softphones offer by
            // default): the call goes on as plain RTP, which the offer allows.
            debug!(call_id, "best-effort SDES keys without TLS: dropped, plain RTP");
            let content_type = msg.content_type().unwrap_or("application/sdp").to_owned();
            msg.set_body(bytes::Bytes::from(plain), Some(&content_type));
        }
        let body = media::anchor(ctl, policy, call_id, call_media, msg.body(), from, offer, domain)?;
        let content_type = msg.content_type().unwrap_or("application/sdp").to_owned();
        msg.set_body(bytes::Bytes::from(body), Some(&content_type));
        Ok(())
    }

    /// The answer to a request whose SDP could not be anchored.
    fn media_refusal(req: &Message, failure: &media::MediaFailure, tag: &str) -> Message {
        match failure {
            media::MediaFailure::BadSdp(why) => {
                Message::response_to(req, 400, Some(&format!("Bad SDP: {why}")), Some(tag))
            }
            media::MediaFailure::NoCodec(warning) | media::MediaFailure::InsecureKeys(warning) => {
                let mut resp = Message::response_to(req, 488, None, Some(tag));
                resp.push_header(HeaderName::Warning, warning);
                resp
            }
            media::MediaFailure::NoPorts => {
                let mut resp = Message::response_to(req, 503, Some("Service Unavailable (no media ports)"), Some(tag));
                resp.push_header(HeaderName::RetryAfter, "5");
                resp
            }
        }
    }

    /// Whether each leg of `call` signals over TLS/WSS, for an SDP from `sender` that arrived
    /// from `from` (`None`: a response, on the leg's own path). Leg A is the caller's transport;
    /// leg B the answering branch's phone (before the answer, the branch that sent the latest
    /// response), through another node counting as that phone's own transport. A request counts
    /// only if it came over TLS itself, or from that other node.
    fn signalling(call: &Call, sender: Option<(media::Leg, &Peer)>) -> [bool; 2] {
        let mut s = [is_secure(call.caller_peer.transport), call.callee_secure];
        match sender {
            Some((media::Leg::A, from)) => s[0] &= is_secure(from.transport),
            Some((media::Leg::B, from)) => s[1] &= call.callee_hop || is_secure(from.transport),
            None => {}
        }
        s
    }

    /// Media counters of a call, per phone, for its record; the relay's streams are released.
    fn media_of(&mut self, call_id: &str, call_media: &media::CallMedia) -> (store::LegMedia, store::LegMedia) {
        let mut legs = (store::LegMedia::default(), store::LegMedia::default());
        legs.0.codec = call_media.codecs[0].clone();
        legs.1.codec = call_media.codecs[1].clone();
        let Some(ctl) = self.media.as_deref_mut() else {
            return legs;
        };
        for (i, (handle, _)) in call_media.streams.iter().flatten().enumerate() {
            let Some(stats) = ctl.stats(*handle) else {
                continue;
            };
            for (leg, s) in [(&mut legs.0, &stats.a), (&mut legs.1, &stats.b)] {
                leg.packets += s.rtp_packets;
                leg.bytes += s.rtp_bytes;
                if i == 0
                    && let Some(r) = &s.report
                {
                    leg.loss_permille = Some(u32::from(r.fraction_lost) * 1000 / 256);
                    let clock = if leg.codec.as_deref().is_some_and(|c| c.eq_ignore_ascii_case("opus")) {
                        48_000
                    } else {
                        8_000
                    };
                    leg.jitter_us = Some((f64::from(r.jitter) * 1_000_000.0 / f64::from(clock)) as u32);
                }
            }
        }
        ctl.release_call(call_id);
        legs
    }

    /// Calls whose media stopped are ended with BYE to both sides.
    pub fn check_media(&mut self, now: Instant, txn: &mut TransactionLayer) {
        let silent = self.media.as_deref_mut().map(|m| m.timed_out()).unwrap_or_default();
        for call_id in silent {
            if !self.hang_up(now, txn, &call_id, "media-timeout")
                && let Some(ctl) = self.media.as_deref_mut()
            {
                ctl.release_call(&call_id);
            }
        }
    }

    /// Calls being set up or talking.
    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    /// Records of calls that ended since the last call.
    pub fn take_records(&mut self) -> Vec<CallRecord> {
        std::mem::take(&mut self.records)
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, ..))| *at)
    }

    /// Unix milliseconds of an instant of the proxy's clock.
    pub fn wall_ms(&self, t: Instant) -> u64 {
        let (anchor, ms) = self.wall_anchor;
        if t >= anchor {
            ms + u64::try_from(t.duration_since(anchor).as_millis()).unwrap_or(0)
        } else {
            ms.saturating_sub(u64::try_from(anchor.duration_since(t).as_millis()).unwrap_or(0))
        }
    }

    fn next_branch(&mut self) -> String {
        self.branch_seq += 1;
        format!("z9hG4bK-sb{:x}-{:x}", self.branch_salt, self.branch_seq)
    }

    fn tag(&mut self) -> String {
        self.branch_seq += 1;
        format!("sb{:x}{:x}", self.branch_salt & 0xffff_ffff, self.branch_seq)
    }

    fn arm(&mut self, at: Instant, kind: TimerKind, call_id: &str) {
        let serial = self.serials.get(call_id).copied().unwrap_or(0);
        self.timers.push(Reverse((at, serial, kind, call_id.to_owned())));
    }

    /// The request as forwarded to `to`: new Request-URI, Max-Forwards decremented, our
    /// credentials removed (§22.3), Record-Route when asked, and our Via on top.
    fn forward(
        &mut self,
        req: &Message,
        target: Option<&str>,
        from: &Peer,
        to: &Peer,
        record_route: bool,
    ) -> Option<Message> {
        let mut fwd = req.clone();
        if let Some(t) = target {
            fwd.set_request_uri(t);
        }
        let max_forwards = req.max_forwards().ok().flatten().unwrap_or(70);
        fwd.set_header(HeaderName::MaxForwards, &max_forwards.saturating_sub(1).to_string());
        fwd.remove_headers(HeaderName::ProxyAuthorization);
        if record_route {
            fwd.prepend_header(HeaderName::RecordRoute, &self.local.record_route(from.transport)?);
            if to.transport != from.transport {
                fwd.prepend_header(HeaderName::RecordRoute, &self.local.record_route(to.transport)?);
            }
        }
        let branch = self.next_branch();
        fwd.prepend_header(HeaderName::Via, &self.local.via(to.transport, &branch)?);
        Some(fwd)
    }

    fn reply(
        &mut self,
        now: Instant,
        txn: &mut TransactionLayer,
        tx: TxId,
        req: &Message,
        code: u16,
        reason: Option<&str>,
    ) {
        self.reply_warning(now, txn, tx, req, code, reason, None);
    }

    /// The proxy's own final response, with a Warning header (RFC 3261 §20.43) when given.
    #[allow(clippy::too_many_arguments)]
    fn reply_warning(
        &mut self,
        now: Instant,
        txn: &mut TransactionLayer,
        tx: TxId,
        req: &Message,
        code: u16,
        reason: Option<&str>,
        warning: Option<&str>,
    ) {
        let tag = self.tag();
        let mut resp = Message::response_to(req, code, reason, Some(&tag));
        if let Some(warning) = warning {
            resp.push_header(HeaderName::Warning, warning);
        }
        if let Err(e) = txn.respond(now, tx, resp) {
            debug!(?tx, error = %e, "could not respond");
        }
    }

    /// A record for an INVITE refused before any branch rang (404, 480 unregistered, 403, ...).
    fn record_refused(&mut self, now: Instant, req: &Message, caller: &str, callee: &str, status: u16) {
        let t = self.wall_ms(now);
        self.records.push(CallRecord {
            call_id: req.call_id().unwrap_or_default().to_owned(),
            caller: caller.to_owned(),
            callee: callee.to_owned(),
            started_ms: t,
            answered_ms: None,
            ended_ms: t,
            disposition: Disposition::Failed,
            status,
            hangup: None,
            answered_by: None,
            caller_media: store::LegMedia::default(),
            callee_media: store::LegMedia::default(),
        });
    }

    /// A new request for the proxy (not REGISTER, not addressed to the server itself). It has
    /// passed the transport checks and Max-Forwards is above 0.
    #[allow(clippy::too_many_arguments)]
    pub fn on_request<S: SubscriberStore>(
        &mut self,
        now: Instant,
        txn: &mut TransactionLayer,
        registrar: &mut Registrar<S>,
        tx: TxId,
        req: Message,
        from: Peer,
        unix: u64,
    ) {
        let has_to_tag = req.to_header().ok().and_then(|t| t.tag().map(str::to_owned)).is_some();
        if has_to_tag {
            self.in_dialog(now, txn, tx, req, from);
            return;
        }
        let method = req.method().cloned().unwrap_or(Method::Options);
        if matches!(method, Method::Bye | Method::Prack | Method::Update | Method::Info) {
            self.reply(now, txn, tx, &req, 481, None);
            return;
        }
        self.initial(now, txn, registrar, tx, req, from, unix);
    }

    #[allow(clippy::too_many_arguments)]
    fn initial<S: SubscriberStore>(
        &mut self,
        now: Instant,
        txn: &mut TransactionLayer,
        registrar: &mut Registrar<S>,
        tx: TxId,
        mut req: Message,
        from: Peer,
        unix: u64,
    ) {
        // §16.4: a Route naming this server is removed; a pre-loaded route elsewhere is refused
        // (the proxy routes only to its own users).
        loop {
            let top = req.routes().next().map(|r| r.is_ok_and(|r| self.local.is_ours(&r.uri)));
            let Some(ours) = top else {
                break;
            };
            if !ours {
                self.reply(now, txn, tx, &req, 403, Some("Forbidden (relaying denied)"));
                return;
            }
            req.remove_first_value(HeaderName::Route);
        }
        if let Some(hop) = self.cluster.as_ref().and_then(|view| view.verify_hop(&req, unix)) {
            match hop {
                Ok(hop) => self.deliver_hop(now, txn, registrar, tx, req, from, unix, hop),
                Err(why) => self.reply(now, txn, tx, &req, 403, Some(why)),
            }
            return;
        }
        let Some(ruri) = req.request_uri() else {
            return;
        };
        let domain = registrar.domain.clone();
        let ours = matches!(ruri.scheme, Scheme::Sip | Scheme::Sips)
            && (ruri.host_unbracketed().eq_ignore_ascii_case(&domain) || self.local.is_ours(&ruri.clone()))
            || ruri.host_ip().is_some_and(|ip| {
                [self.local.udp, self.local.tcp, self.local.tls]
                    .into_iter()
                    .flatten()
                    .any(|a| a.ip() == ip)
            });
        if !ours {
            self.reply(now, txn, tx, &req, 403, Some("Forbidden (relaying denied)"));
            return;
        }
        let sips = ruri.scheme == Scheme::Sips;
        if sips && !is_secure(from.transport) {
            let reason = Some("Temporarily Unavailable (sips: needs TLS)");
            let warning = format!("381 {domain} \"SIPS Required\"");
            self.reply_warning(now, txn, tx, &req, 480, reason, Some(&warning));
            return;
        }
        let callee = user_of(&ruri);
        let is_invite = req.method() == Some(&Method::Invite);

        let caller = match registrar.authenticate(&req, HeaderName::ProxyAuthorization, from.addr.ip(), unix) {
            AuthOutcome::Authenticated { username } => username,
            AuthOutcome::Challenge { stale } => {
                let tag = self.tag();
                let resp = registrar.challenge(&req, 407, stale, &tag, from.addr.ip(), unix);
                // Statelessly for non-INVITE requests (RFC 3261 §8.2.7); an INVITE's 407 is
                // retransmitted until ACKed, as ever.
                if let Err(e) = txn.respond_stateless(now, tx, resp) {
                    debug!(?tx, error = %e, "could not respond");
                }
                return;
            }
            AuthOutcome::BadRequest(why) => {
                self.reply(now, txn, tx, &req, 400, Some(why));
                return;
            }
        };
        let from_ok = req.from_header().is_ok_and(|f| {
            f.uri.user_str().as_deref() == Some(caller.as_str())
                && f.uri.host_unbracketed().eq_ignore_ascii_case(&domain)
        });
        if !from_ok {
            self.reply(
                now,
                txn,
                tx,
                &req,
                403,
                Some("Forbidden (From is not the authenticated user)"),
            );
            return;
        }
        if !is_secure(from.transport) && registrar.is_tls_only(&caller) {
            self.reply(now, txn, tx, &req, 403, Some("Forbidden (TLS required)"));
            return;
        }
        if !registrar.allowed_from(&caller, from.addr.ip()) {
            self.reply(
                now,
                txn,
                tx,
                &req,
                403,
                Some("Forbidden (not allowed from this network)"),
            );
            return;
        }
        let limit = self.config.max_calls_per_user;
        if is_invite && limit > 0 && self.calls_by_caller.get(&caller).copied().unwrap_or(0) >= limit {
            let callee = user_of(&ruri).unwrap_or_default();
            self.record_refused(now, &req, &caller, &callee, 403);
            self.reply(now, txn, tx, &req, 403, Some("Forbidden (too many calls in progress)"));
            return;
        }
        let Some(callee) = callee.filter(|c| registrar.has_subscriber(c)) else {
            if is_invite {
                let callee = user_of(&ruri).unwrap_or_default();
                self.record_refused(now, &req, &caller, &callee, 404);
            }
            self.reply(now, txn, tx, &req, 404, None);
            return;
        };
        let aor = format!("{callee}@{domain}");
        let mut targets: Vec<Target> = registrar
            .location
            .lookup(&aor, unix)
            .into_iter()
            .filter_map(|b| self.target_of(b))
            .collect();
        let registered = !targets.is_empty();
        if sips || registrar.is_tls_only(&callee) {
            targets.retain(|t| t.secure);
        }
        if targets.is_empty() {
            if is_invite {
                self.record_refused(now, &req, &caller, &callee, 480);
            }
            // Registered, but not over TLS: say so (an authenticated caller may know).
            let no_tls = Some("Temporarily Unavailable (no TLS registration)");
            let (reason, warning) = match (registered, sips) {
                (false, _) => (None, None),
                (true, false) => (no_tls, None),
                (true, true) => (no_tls, Some(format!("380 {domain} \"SIPS Not Allowed\""))),
            };
            self.reply_warning(now, txn, tx, &req, 480, reason, warning.as_deref());
            return;
        }
        if is_invite {
            self.invite(now, txn, tx, req, from, caller, callee, targets, None, unix);
        } else {
            // Other requests go to the preferred contact only.
            let target = targets.into_iter().next().expect("targets is not empty");
            let record_route = matches!(req.method(), Some(Method::Subscribe | Method::Refer));
            let hop = target.hop.then_some((aor.as_str(), unix));
            self.relay(
                now,
                txn,
                tx,
                &req,
                Some(&target.contact),
                &from,
                target.to,
                record_route,
                hop,
            );
        }
    }

    /// A request another node of the platform routed here because this node holds the phone's
    /// flow (see `crate::cluster`): the caller was authenticated there, and that node anchors
    /// the media and keeps the call record. Delivered over the phone's own path to the binding
    /// its Request-URI names, or 480 when this node no longer holds it.
    #[allow(clippy::too_many_arguments)]
    fn deliver_hop<S: SubscriberStore>(
        &mut self,
        now: Instant,
        txn: &mut TransactionLayer,
        registrar: &mut Registrar<S>,
        tx: TxId,
        mut req: Message,
        from: Peer,
        unix: u64,
        hop: Hop,
    ) {
        req.remove_other(crate::cluster::HOP_HEADER);
        let target = {
            let Some(ruri) = req.request_uri() else {
                return;
            };
            let local = |node: &str| self.cluster.as_ref().is_none_or(|v| v.is_local(node));
            registrar
                .location
                .lookup(&hop.aor, unix)
                .into_iter()
                .filter(|b| local(&b.node))
                .find(|b| sip::Uri::parse(&b.contact).is_ok_and(|u| u.equivalent(&ruri)))
                .and_then(|b| Some((b.contact.clone(), route::binding_target(b)?)))
        };
        let Some((contact, to)) = target else {
            self.reply(
                now,
                txn,
                tx,
                &req,
                480,
                Some("Temporarily Unavailable (not registered on this node)"),
            );
            return;
        };
        let target = Target {
            contact,
            to,
            hop: false,
            secure: false,
        };
        if req.method() == Some(&Method::Invite) {
            let caller = req.from_header().ok().and_then(|f| user_of(&f.uri)).unwrap_or_default();
            let callee = hop.aor.split('@').next().unwrap_or_default().to_owned();
            self.invite(
                now,
                txn,
                tx,
                req,
                from,
                caller,
                callee,
                vec![target],
                Some(hop.node),
                unix,
            );
        } else {
            let record_route = matches!(req.method(), Some(Method::Subscribe | Method::Refer));
            self.relay(
                now,
                txn,
                tx,
                &req,
                Some(&target.contact),
                &from,
                target.to,
                record_route,
                None,
            );
        }
    }

    /// Forwards a request statefully on its own; its responses go back on `tx`. Returns the
    /// client transaction.
    #[allow(clippy::too_many_arguments)]
    fn relay(
        &mut self,
        now: Instant,
        txn: &mut TransactionLayer,
        tx: TxId,
        req: &Message,
        target: Option<&str>,
        from: &Peer,
        to: Peer,
        record_route: bool,
        hop: Option<(&str, u64)>,
    ) -> Option<TxId> {
        let Some(mut fwd) = self.forward(req, target, from, &to, record_route) else {
            self.reply(now, txn, tx, req, 503, Some("No local address for that transport"));
            return None;
        };
        if let (Some((aor, unix)), Some(view)) = (hop, &self.cluster) {
            view.sign_hop(&mut fwd, aor, unix);
        }
        match txn.send_request(now, fwd, to) {
            Ok(client) => {
                self.relays.insert(
                    client,
                    Relay {
                        server_tx: tx,
                        dialog: None,
                    },
                );
                Some(client)
            }
            Err(e) => {
                debug!(error = %e, "could not forward");
                self.reply(now, txn, tx, req, 500, None);
                None
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn invite(
        &mut self,
        now: Instant,
        txn: &mut TransactionLayer,
        tx: TxId,
        req: Message,
        from: Peer,
        caller: String,
        callee: String,
        targets: Vec<Target>,
        hop_from: Option<String>,
        unix: u64,
    ) {
        let call_id = req.call_id().unwrap_or_default().to_owned();
        if self.calls.contains_key(&call_id) {
            // The same call again without a To tag: a loop through this proxy or a merged request.
            self.reply(now, txn, tx, &req, 482, None);
            return;
        }
        let mut req = req;
        let mut call_media = media::CallMedia::default();
        call_media.passthrough = hop_from.is_some();
        // The offer is anchored once, with SRTP toward the callee if any branch's phone is on
        // TLS; the branches without TLS get it without keys (below; see `media`).
        let any_secure = targets.iter().any(|t| t.secure);
        call_media.signalling = [is_secure(from.transport), any_secure];
        let invite_had_sdp = media::has_sdp(&req);
        let anchored = self.media.is_some() && !call_media.passthrough && invite_had_sdp;
        if let Err(failure) = Self::anchor_body(
            &mut self.media,
            &self.policy,
            &self.local.domain,
            &call_id,
            &mut call_media,
            &mut req,
            media::Leg::A,
            true,
        ) {
            if let Some(ctl) = self.media.as_deref_mut() {
                ctl.release_call(&call_id);
            }
            let tag = self.tag();
            let resp = Self::media_refusal(&req, &failure, &tag);
            let code = resp.status_code().unwrap_or(488);
            self.record_refused(now, &req, &caller, &callee, code);
            let _ = txn.respond(now, tx, resp);
            return;
        }
        let _ = txn.respond(now, tx, Message::response_to(&req, 100, None, None));
        let mut branches = Vec::with_capacity(targets.len());
        let aor = format!("{callee}@{}", self.local.domain);
        for Target {
            contact,
            to,
            hop,
            secure,
        } in targets
        {
            let Some(mut fwd) = self.forward(&req, Some(&contact), &from, &to, true) else {
                continue;
            };
            if anchored
                && !secure
                && let Some(body) = media::without_keys(fwd.body())
            {
                let content_type = fwd.content_type().unwrap_or("application/sdp").to_owned();
                fwd.set_body(bytes::Bytes::from(body), Some(&content_type));
            }
            if let (true, Some(view)) = (hop, &self.cluster) {
                view.sign_hop(&mut fwd, &aor, unix);
            }
            match txn.send_request(now, fwd.clone(), to.clone()) {
                Ok(client) => {
                    self.by_client_tx.insert(client, call_id.clone());
                    branches.push(call::Branch {
                        tx: client,
                        request: fwd,
                        to,
                        secure,
                        hop,
                        target: contact,
                        provisional: false,
                        final_status: None,
                        cancel_pending: false,
                        cancel_sent: false,
                    });
                }
                Err(e) => debug!(error = %e, "could not fork"),
            }
        }
        if branches.is_empty() {
            if let Some(ctl) = self.media.as_deref_mut() {
                ctl.release_call(&call_id);
            }
            self.record_refused(now, &req, &caller, &callee, 480);
            self.reply(now, txn, tx, &req, 480, None);
            return;
        }
        let caller_tag = req
            .from_header()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned))
            .unwrap_or_default();
        self.next_serial += 1;
        self.serials.insert(call_id.clone(), self.next_serial);
        let call = Call {
            call_id: call_id.clone(),
            caller,
            callee,
            caller_tag,
            server_tx: tx,
            caller_peer: from,
            callee_peer: None,
            callee_secure: any_secure,
            callee_hop: false,
            branches,
            best: None,
            cancelled: false,
            phase: Phase::Routing,
            started: now,
            answered: None,
            answered_by: None,
            ring_deadline: now + self.config.ring_timeout,
            timer_c: now + self.config.timer_c,
            dialog: call::Dialog {
                caller_from: req.header("From").unwrap_or_default().to_owned(),
                caller_contact: req.header("Contact").and_then(call::contact_uri).unwrap_or_default(),
                caller_cseq: req.cseq().map(|c| c.seq).unwrap_or(1),
                ..call::Dialog::default()
            },
            media: call_media,
            invite_had_sdp,
            hop_from,
        };
        self.arm(call.ring_deadline, TimerKind::Ring, &call_id);
        self.arm(call.timer_c, TimerKind::TimerC, &call_id);
        self.by_server_tx.insert(tx, call_id.clone());
        if call.hop_from.is_none() {
            *self.calls_by_caller.entry(call.caller.clone()).or_insert(0) += 1;
        }
        self.calls.insert(call_id, call);
    }

    /// Sends CANCEL on every branch still without a final response, except `keep` (§16.7 step
    /// 10, §16.10). A branch that has not sent a provisional response yet gets its CANCEL when
    /// it does (§9.1).
    fn cancel_branches(now: Instant, txn: &mut TransactionLayer, call: &mut Call, keep: Option<TxId>) {
        for b in call.branches.iter_mut().filter(|b| Some(b.tx) != keep) {
            if b.final_status.is_some() || b.cancel_sent {
                continue;
            }
            if !b.provisional {
                b.cancel_pending = true;
                continue;
            }
            Self::send_cancel(now, txn, b);
        }
    }

    fn send_cancel(now: Instant, txn: &mut TransactionLayer, b: &mut call::Branch) {
        let inv = &b.request;
        let mut cancel = Message::request(Method::Cancel, inv.request_uri_str().unwrap_or_default());
        if let Some(via) = inv.header("Via") {
            cancel.push_header(HeaderName::Via, via);
        }
        cancel.push_header(HeaderName::MaxForwards, "70");
        for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
            if let Some(v) = inv.headers().find(|h| h.name == name).map(|h| h.value.to_owned()) {
                cancel.push_header(name, &v);
            }
        }
        let seq = inv.cseq().map(|c| c.seq).unwrap_or(1);
        cancel.push_header(HeaderName::CSeq, &format!("{seq} CANCEL"));
        for r in inv.header_values("Route").map(str::to_owned).collect::<Vec<_>>() {
            cancel.push_header(HeaderName::Route, &r);
        }
        cancel.push_header(HeaderName::ContentLength, "0");
        match txn.send_request(now, cancel, b.to.clone()) {
            Ok(_) => b.cancel_sent = true,
            Err(e) => debug!(error = %e, "could not send CANCEL"),
        }
    }

    /// Sends a response upstream on the call's INVITE server transaction, without our Via. A
    /// 2xx that comes after that transaction ended goes straight to the caller.
    fn upstream(now: Instant, txn: &mut TransactionLayer, call: &Call, mut resp: Message) {
        resp.remove_first_value(HeaderName::Via);
        let is_2xx = resp.status_code().is_some_and(|c| (200..300).contains(&c));
        if txn.respond(now, call.server_tx, resp.clone()).is_err() && is_2xx {
            txn.send_stateless(resp, call.caller_peer.clone());
        }
    }

    /// Ends an unanswered call: the best response (or `status`, when given) goes upstream and
    /// the call is recorded.
    fn finish_unanswered(&mut self, now: Instant, txn: &mut TransactionLayer, call_id: &str, status: Option<u16>) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        // After a CANCEL the caller gets 487: the callee's own when one came back (§16.7
        // forwards the best response), else one of ours.
        let best_is_487 = call.best.as_ref().and_then(Message::status_code) == Some(487);
        let status = status.or_else(|| (call.cancelled && !best_is_487).then_some(487));
        let code = match (status, call.best.clone()) {
            (Some(code), _) => self.respond_own(now, txn, call.server_tx, code),
            // §16.7 step 6: a 503 downstream does not mean this proxy is overloaded.
            (None, Some(best)) if best.status_code() == Some(503) => self.respond_own(now, txn, call.server_tx, 500),
            (None, Some(best)) => {
                let code = best.status_code().unwrap_or(500);
                Self::upstream(now, txn, &call, best);
                code
            }
            (None, None) => self.respond_own(now, txn, call.server_tx, 408),
        };
        let disposition = call::disposition(code, call.cancelled);
        self.record_call(now, call_id, call, disposition, code, None);
    }

    /// Answers the INVITE server transaction `tx` with a response of the proxy's own; returns
    /// its code.
    fn respond_own(&mut self, now: Instant, txn: &mut TransactionLayer, tx: TxId, code: u16) -> u16 {
        let tag = self.tag();
        if let Some(req) = txn.request_of(tx) {
            let resp = Message::response_to(req, code, None, Some(&tag));
            let _ = txn.respond(now, tx, resp);
        }
        code
    }

    /// Ends an answered call (BYE, or the call outlived `max_call`).
    fn finish_answered(&mut self, now: Instant, call_id: &str, hangup: &str) {
        if let Some(call) = self.calls.remove(call_id) {
            self.record_call(now, call_id, call, Disposition::Answered, 200, Some(hangup));
        }
    }

    /// Forgets a call that left `self.calls`, frees its media and writes its record.
    fn record_call(
        &mut self,
        now: Instant,
        call_id: &str,
        call: Call,
        disposition: Disposition,
        status: u16,
        hangup: Option<&str>,
    ) {
        self.serials.remove(call_id);
        self.by_server_tx.remove(&call.server_tx);
        if let Some(n) = self.calls_by_caller.get_mut(&call.caller) {
            *n -= 1;
            if *n == 0 {
                self.calls_by_caller.remove(&call.caller);
            }
        }
        let (caller_media, callee_media) = self.media_of(call_id, &call.media);
        if call.hop_from.is_some() {
            // The node the call came from keeps its record.
            return;
        }
        self.records.push(CallRecord {
            started_ms: self.wall_ms(call.started),
            answered_ms: call.answered.map(|a| self.wall_ms(a)),
            ended_ms: self.wall_ms(now),
            call_id: call.call_id,
            caller: call.caller,
            callee: call.callee,
            disposition,
            status,
            hangup: hangup.map(str::to_owned),
            answered_by: call.answered_by,
            caller_media,
            callee_media,
        });
    }

    /// A response on one of the proxy's client transactions; false when it is not the proxy's.
    pub fn on_response(&mut self, now: Instant, txn: &mut TransactionLayer, tx: TxId, mut resp: Message) -> bool {
        let code = resp.status_code().unwrap_or(500);
        if let Some(relay) = self.relays.get(&tx).cloned() {
            if code >= 200 {
                self.relays.remove(&tx);
            }
            if code > 100 {
                let mut resp = resp;
                if let Some((call_id, answerer, request_had_offer)) = &relay.dialog
                    && code < 300
                    && let Some(call) = self.calls.get_mut(call_id)
                {
                    call.media.signalling = Self::signalling(call, None);
                    if let Err(e) = Self::anchor_body(
                        &mut self.media,
                        &self.policy,
                        &self.local.domain,
                        call_id,
                        &mut call.media,
                        &mut resp,
                        *answerer,
                        !request_had_offer,
                    ) {
                        debug!(
                            ?e,
                            "SDP in an in-dialog response could not be anchored; forwarded as is"
                        );
                    }
                }
                resp.remove_first_value(HeaderName::Via);
                if let Err(e) = txn.respond(now, relay.server_tx, resp) {
                    debug!(error = %e, "could not relay a response");
                }
            }
            return true;
        }
        let Some(call_id) = self.by_client_tx.get(&tx).cloned() else {
            return false;
        };
        let timer_c = self.config.timer_c;
        let Some(call) = self.calls.get_mut(&call_id) else {
            debug!(code, "response for a call that has ended");
            return true;
        };
        // A 2xx from another fork after the answer is forwarded (§16.7) but its SDP is left
        // alone: the relay keeps pointing at the phone that answered, and the caller will
        // end that second dialog.
        let answered_elsewhere = call.phase == Phase::Answered
            && call
                .branches
                .iter()
                .find(|b| b.tx == tx)
                .is_none_or(|b| Some(&b.to) != call.callee_peer.as_ref());
        if (101..300).contains(&code) && !answered_elsewhere {
            if let Some(b) = call.branches.iter().find(|b| b.tx == tx) {
                (call.callee_secure, call.callee_hop) = (b.secure, b.hop);
            }
            call.media.signalling = Self::signalling(call, None);
            let offer = !call.invite_had_sdp && code >= 200;
            let mut rewritten = resp;
            if let Err(e) = Self::anchor_body(
                &mut self.media,
                &self.policy,
                &self.local.domain,
                &call_id,
                &mut call.media,
                &mut rewritten,
                media::Leg::B,
                offer,
            ) {
                debug!(?e, "SDP from the callee could not be anchored; forwarded as is");
            }
            resp = rewritten;
        }
        let Some(branch) = call.branch_of(tx) else {
            return true;
        };
        match code {
            100..=199 => {
                branch.provisional = true;
                if branch.cancel_pending && !branch.cancel_sent {
                    Self::send_cancel(now, txn, branch);
                }
                call.timer_c = now + timer_c;
                if code > 100 && call.phase == Phase::Routing && !call.cancelled {
                    Self::upstream(now, txn, call, resp);
                }
            }
            200..=299 => {
                branch.final_status = Some(code);
                let target = branch.target.clone();
                let peer = branch.to.clone();
                Self::upstream(now, txn, call, resp.clone());
                if call.phase == Phase::Routing {
                    call.dialog.callee_to = resp.header("To").unwrap_or_default().to_owned();
                    call.dialog.callee_contact = resp.header("Contact").and_then(call::contact_uri).unwrap_or_default();
                    call.phase = Phase::Answered;
                    call.answered = Some(now);
                    call.answered_by = Some(target);
                    call.callee_peer = Some(peer);
                    Self::cancel_branches(now, txn, call, Some(tx));
                    let at = now + self.config.max_call;
                    self.arm(at, TimerKind::MaxCall, &call_id);
                }
            }
            _ => {
                branch.final_status = Some(code);
                if call.phase == Phase::Answered {
                    return true;
                }
                call.consider(&resp);
                if code >= 600 {
                    Self::cancel_branches(now, txn, call, Some(tx));
                    self.finish_unanswered(now, txn, &call_id, None);
                } else if call.all_final() {
                    self.finish_unanswered(now, txn, &call_id, None);
                }
            }
        }
        true
    }

    /// A client transaction of the proxy got no response (Timer B/F: 408) or could not be sent
    /// (503), as if that response had arrived (§16.7 step 1, §16.9).
    pub fn on_client_failure(&mut self, now: Instant, txn: &mut TransactionLayer, tx: TxId, code: u16) {
        if let Some(relay) = self.relays.remove(&tx) {
            if let Some(req) = txn.request_of(relay.server_tx).cloned() {
                self.reply(now, txn, relay.server_tx, &req, code, None);
            }
            return;
        }
        let Some(call_id) = self.by_client_tx.get(&tx).cloned() else {
            return;
        };
        let Some(resp) = self
            .calls
            .get_mut(&call_id)
            .and_then(|c| c.branch_of(tx))
            .filter(|b| b.final_status.is_none())
            .map(|b| Message::response_to(&b.request, code, None, None))
        else {
            return;
        };
        self.on_response(now, txn, tx, resp);
    }

    /// A client transaction ended.
    pub fn on_terminated(&mut self, tx: TxId) {
        self.by_client_tx.remove(&tx);
        self.relays.remove(&tx);
    }

    /// CANCEL from the caller for INVITE server transaction `invite` (already answered 200).
    pub fn on_cancel(&mut self, now: Instant, txn: &mut TransactionLayer, invite: TxId) {
        let Some(call_id) = self.by_server_tx.get(&invite).cloned() else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        if call.phase != Phase::Routing {
            return;
        }
        call.cancelled = true;
        Self::cancel_branches(now, txn, call, None);
        if call.all_final() {
            self.finish_unanswered(now, txn, &call_id, None);
        }
    }

    /// Where an in-dialog request goes: after our own Route entries, the next Route, or else the
    /// other party's registered path.
    fn in_dialog_target(&self, req: &mut Message, call: &Call) -> Option<Peer> {
        while req
            .routes()
            .next()
            .is_some_and(|r| r.is_ok_and(|r| self.local.is_ours(&r.uri)))
        {
            req.remove_first_value(HeaderName::Route);
        }
        if let Some(Ok(next)) = req.routes().next() {
            let (transport, addr) = route::uri_target(&next.uri)?;
            return Some(Peer {
                transport,
                addr,
                conn: 0,
            });
        }
        let from_caller = call.sent_by_caller(req);
        if from_caller {
            call.callee_peer
                .clone()
                .or_else(|| call.branches.iter().find(|b| b.provisional).map(|b| b.to.clone()))
        } else {
            Some(call.caller_peer.clone())
        }
    }

    /// A request inside a dialog this proxy record-routed (§16.12).
    fn in_dialog(&mut self, now: Instant, txn: &mut TransactionLayer, tx: TxId, mut req: Message, from: Peer) {
        let call_id = req.call_id().unwrap_or_default().to_owned();
        let Some(call) = self.calls.get(&call_id) else {
            self.reply(now, txn, tx, &req, 481, None);
            return;
        };
        let Some(to) = self.in_dialog_target(&mut req, call) else {
            self.reply(
                now,
                txn,
                tx,
                &req,
                404,
                Some("Not Found (no route for the in-dialog request)"),
            );
            return;
        };
        let from_caller = call.sent_by_caller(&req);
        let hangup = (req.method() == Some(&Method::Bye) && call.phase == Phase::Answered).then_some(if from_caller {
            "caller"
        } else {
            "callee"
        });
        if let (Ok(cseq), Some(call)) = (req.cseq(), self.calls.get_mut(&call_id)) {
            let seen = if from_caller {
                &mut call.dialog.caller_cseq
            } else {
                &mut call.dialog.callee_cseq
            };
            *seen = (*seen).max(cseq.seq);
        }
        let sender = if from_caller { media::Leg::A } else { media::Leg::B };
        let answerer = if from_caller { media::Leg::B } else { media::Leg::A };
        // SDP in a PRACK answers an offer in a reliable provisional response (RFC 3262);
        // elsewhere in a request it is an offer.
        let is_offer = req.method() != Some(&Method::Prack);
        let had_offer = media::has_sdp(&req) && is_offer;
        if media::has_sdp(&req)
            && let Some(call) = self.calls.get_mut(&call_id)
        {
            call.media.signalling = Self::signalling(call, Some((sender, &from)));
            if let Err(failure) = Self::anchor_body(
                &mut self.media,
                &self.policy,
                &self.local.domain,
                &call_id,
                &mut call.media,
                &mut req,
                sender,
                is_offer,
            ) {
                let tag = self.tag();
                let resp = Self::media_refusal(&req, &failure, &tag);
                let _ = txn.respond(now, tx, resp);
                return;
            }
        }
        if let Some(client) = self.relay(now, txn, tx, &req, None, &from, to, false, None) {
            if let Some(relay) = self.relays.get_mut(&client) {
                relay.dialog = Some((call_id.clone(), answerer, had_offer));
            }
            if let Some(side) = hangup {
                self.finish_answered(now, &call_id, side);
            }
        }
    }

    /// Ends an answered call from the middle (media timeout, an operator's hang-up): a BYE to
    /// each side, as if the other side had sent it, and the record says `hangup`. An unanswered
    /// call is cancelled instead (480 to the caller). Returns whether the call existed.
    pub fn hang_up(&mut self, now: Instant, txn: &mut TransactionLayer, call_id: &str, hangup: &str) -> bool {
        let Some(call) = self.calls.get_mut(call_id) else {
            return false;
        };
        if call.phase == Phase::Routing {
            Self::cancel_branches(now, txn, call, None);
            self.finish_unanswered(now, txn, call_id, Some(480));
            return true;
        }
        let d = call.dialog.clone();
        let reason = format!("SIP;cause=200;text=\"{hangup}\"");
        let byes = [
            // To the caller, in the callee's name.
            (
                &d.caller_contact,
                &d.callee_to,
                &d.caller_from,
                d.callee_cseq.max(1) + 1,
                call.caller_peer.clone(),
            ),
            // To the callee, in the caller's name.
            (
                &d.callee_contact,
                &d.caller_from,
                &d.callee_to,
                d.caller_cseq + 1,
                call.callee_peer.clone().unwrap_or_else(|| call.caller_peer.clone()),
            ),
        ];
        for (target, from, to, cseq, peer) in byes {
            if target.is_empty() {
                continue;
            }
            let mut bye = Message::request(Method::Bye, target);
            let branch = self.next_branch();
            let Some(via) = self.local.via(peer.transport, &branch) else {
                continue;
            };
            bye.push_header(HeaderName::Via, &via);
            bye.push_header(HeaderName::MaxForwards, "70");
            bye.push_header(HeaderName::From, from);
            bye.push_header(HeaderName::To, to);
            bye.push_header(HeaderName::CallId, call_id);
            bye.push_header(HeaderName::CSeq, &format!("{cseq} BYE"));
            bye.push_header(HeaderName::Reason, &reason);
            bye.push_header(HeaderName::ContentLength, "0");
            if let Err(e) = txn.send_request(now, bye, peer) {
                debug!(error = %e, "could not send BYE");
            }
        }
        self.finish_answered(now, call_id, hangup);
        true
    }

    /// An ACK for a 2xx (end to end, §13.2.2.4): forwarded statelessly along the dialog.
    pub fn on_ack(&mut self, txn: &mut TransactionLayer, mut req: Message, from: Peer) {
        let call_id = req.call_id().unwrap_or_default().to_owned();
        let Some(call) = self.calls.get(&call_id) else {
            debug!("ACK for an unknown call dropped");
            return;
        };
        let Some(to) = self.in_dialog_target(&mut req, call) else {
            return;
        };
        if media::has_sdp(&req)
            && let Some(call) = self.calls.get_mut(&call_id)
        {
            let from_caller = call.sent_by_caller(&req);
            let side = if from_caller { media::Leg::A } else { media::Leg::B };
            call.media.signalling = Self::signalling(call, Some((side, &from)));
            if let Err(e) = Self::anchor_body(
                &mut self.media,
                &self.policy,
                &self.local.domain,
                &call_id,
                &mut call.media,
                &mut req,
                side,
                false,
            ) {
                debug!(?e, "SDP in an ACK could not be anchored; forwarded as is");
            }
        }
        let Some(fwd) = self.forward(&req, None, &from, &to, false) else {
            return;
        };
        txn.send_stateless(fwd, to);
    }

    /// A response that matched no client transaction: a 2xx retransmission for an answered
    /// call goes to its caller (§16.7: proxies forward 2xx statelessly); others are dropped.
    pub fn on_stray_response(&mut self, txn: &mut TransactionLayer, mut resp: Message) {
        let is_2xx = resp.status_code().is_some_and(|c| (200..300).contains(&c));
        let Some(call) = resp.call_id().ok().and_then(|id| self.calls.get(id)) else {
            return;
        };
        let ours = resp
            .via()
            .is_ok_and(|v| v.branch().is_some_and(|b| b.starts_with("z9hG4bK-sb")));
        if is_2xx && ours {
            let to = call.caller_peer.clone();
            resp.remove_first_value(HeaderName::Via);
            txn.send_stateless(resp, to);
        }
    }

    /// Fires the ring timeout, Timer C and the call-length limit.
    pub fn on_timeout(&mut self, now: Instant, txn: &mut TransactionLayer) {
        while let Some(Reverse((at, serial, kind, call_id))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.serials.get(&call_id) != Some(&serial) {
                continue;
            }
            let Some(call) = self.calls.get_mut(&call_id) else {
                continue;
            };
            match kind {
                TimerKind::Ring if call.phase == Phase::Routing => {
                    Self::cancel_branches(now, txn, call, None);
                    self.finish_unanswered(now, txn, &call_id, Some(480));
                }
                TimerKind::TimerC if call.phase == Phase::Routing => {
                    if call.timer_c > at {
                        let next = call.timer_c;
                        self.arm(next, TimerKind::TimerC, &call_id);
                        continue;
                    }
                    Self::cancel_branches(now, txn, call, None);
                    self.finish_unanswered(now, txn, &call_id, Some(408));
                }
                TimerKind::MaxCall if call.phase == Phase::Answered => {
                    self.finish_answered(now, &call_id, "server");
                }
                _ => {}
            }
        }
    }
}
