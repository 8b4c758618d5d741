//! The TLS policy of the registrar and the proxy on the sans-IO engine (no sockets): `sips:`
//! Request-URIs and Contacts over UDP/TCP, `tls_only` users registering and calling, calls to
//! `tls_only` users or `sips:` URIs going to TLS bindings only, and SDES-SRTP keys taken from and
//! sent toward TLS phones only (with a fake media relay that records what it is told).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use server::auth::DigestAuth;
use server::engine::Engine;
use server::proxy::media::{Anchored, Leg, MediaControl};
use server::proxy::{LocalAddrs, Proxy, ProxyConfig};
use server::registrar::{Intervals, Location, Registrar};
use sip::digest::{Algorithm, ha1, ha2, response};
use sip::{HeaderName, Message};
use sip_txn::{Peer, TimerConfig, Transmit, Transport};
use store::{Binding, SqliteStore, Subscriber, SubscriberCache, SubscriberStore};

const DOMAIN: &str = "example.com";
/// alice may use any transport; bob and dave are `tls_only`; carol may use any transport.
const USERS: [(&str, bool); 4] = [("alice", false), ("bob", true), ("carol", false), ("dave", true)];

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A phone at `addr` over `transport`.
fn phone(transport: Transport, addr: &str, conn: u64) -> Peer {
    Peer {
        transport,
        addr: addr.parse().expect("addr"),
        conn,
    }
}

fn binding(user: &str, contact: &str, source: &str, conn: u64) -> Binding {
    Binding {
        aor: format!("{user}@{DOMAIN}"),
        contact: contact.to_owned(),
        expires_at: unix_now() + 3600,
        q: 1000,
        call_id: format!("reg-{contact}"),
        cseq: 1,
        source: source.to_owned(),
        conn,
        user_agent: None,
        behind_nat: false,
        node: String::new(),
    }
}

struct Rig {
    engine: Engine,
    now: Instant,
    seq: u32,
    dir: std::path::PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `set_srtp` as the relay was told it: stream, leg, the phone's key, ours toward it.
type SrtpCall = (u64, Leg, Option<media::SrtpKey>, Option<media::SrtpKey>);

/// A media relay that hands out ports and records the SRTP keys it is given.
#[derive(Clone, Default)]
struct FakeRelay {
    srtp: Arc<Mutex<Vec<SrtpCall>>>,
    next: u16,
}

impl FakeRelay {
    fn srtp(&self) -> Vec<SrtpCall> {
        self.srtp.lock().expect("lock").clone()
    }
}

impl MediaControl for FakeRelay {
    fn address(&self) -> IpAddr {
        "203.0.113.1".parse().expect("ip")
    }
    fn allocate(&mut self, _call: &str) -> Result<Anchored, String> {
        self.next += 4;
        let a = 20_000 + self.next;
        Ok((u64::from(self.next), (a, a + 2)))
    }
    fn set_remote(&mut self, _stream: u64, _leg: Leg, _rtp: SocketAddr, _rtcp: Option<SocketAddr>) {}
    fn set_srtp(&mut self, stream: u64, leg: Leg, rx: Option<media::SrtpKey>, tx: Option<media::SrtpKey>) {
        self.srtp.lock().expect("lock").push((stream, leg, rx, tx));
    }
    fn release_call(&mut self, _call: &str) {}
    fn stats(&self, _stream: u64) -> Option<media::StreamStats> {
        None
    }
    fn timed_out(&mut self) -> Vec<String> {
        Vec::new()
    }
}

fn rig(bindings: Vec<Binding>) -> Rig {
    rig_with(bindings, None)
}

/// The rig with the proxy anchoring media in `relay`.
fn rig_with_relay(bindings: Vec<Binding>, relay: &FakeRelay) -> Rig {
    rig_with(bindings, Some(relay.clone()))
}

fn rig_with(bindings: Vec<Binding>, relay: Option<FakeRelay>) -> Rig {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sb-tls-policy-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = SqliteStore::open_in(&dir).expect("store");
    for (user, tls_only) in USERS {
        let s = Subscriber::new(user, DOMAIN, &format!("pw-{user}")).expect("subscriber");
        store.add(&s.with_tls_only(tls_only)).expect("add");
    }
    let registrar = Registrar {
        domain: DOMAIN.into(),
        intervals: Intervals::default(),
        auth: DigestAuth::new([7u8; 32], 300),
        subscribers: SubscriberCache::new(std::sync::Arc::new(store) as server::Subscribers),
        auth_failures: 0,
        node: String::new(),
        location: Location::from_bindings(bindings),
    };
    let local = LocalAddrs {
        udp: Some("192.0.2.1:5060".parse().expect("addr")),
        tcp: Some("192.0.2.1:5060".parse().expect("addr")),
        tls: Some("192.0.2.1:5061".parse().expect("addr")),
        domain: DOMAIN.into(),
    };
    let now = Instant::now();
    let mut proxy = Proxy::new(ProxyConfig::default(), local, now, 1_700_000_000_000, 7);
    if let Some(relay) = relay {
        proxy = proxy.with_media(Box::new(relay), sdp::CodecPolicy::default());
    }
    Rig {
        engine: Engine::new(TimerConfig::default(), Some(registrar), Some(proxy)),
        now,
        seq: 0,
        dir,
    }
}

fn via_transport(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        _ => "TLS",
    }
}

/// The digest answer to the challenge in `challenge` (WWW- or Proxy-Authenticate).
fn credentials(challenge: &Message, header: HeaderName, user: &str, password: &str, method: &str, uri: &str) -> String {
    let c = challenge
        .challenges(header)
        .map(|c| c.expect("challenge"))
        .find(|c| c.params.get("algorithm").as_deref() == Some("MD5"))
        .expect("an MD5 challenge");
    let nonce = c.params.get("nonce").expect("nonce").into_owned();
    let h1 = ha1(Algorithm::Md5, user, DOMAIN, password);
    let r = response(
        Algorithm::Md5,
        &h1,
        &nonce,
        "00000001",
        "c0ffee",
        Some("auth"),
        &ha2(Algorithm::Md5, method, uri),
    );
    format!(
        "Digest username=\"{user}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", \
         algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
    )
}

/// What came back for a request: the final response to it (from `out` or, for a REGISTER that
/// changed bindings, the one waiting for the durable write).
fn final_response(engine: &mut Engine, out: &[Transmit], call_id: &str) -> Option<Message> {
    let pending = engine.take_pending().into_iter().map(|p| p.response);
    out.iter()
        .map(|t| t.message.clone())
        .chain(pending)
        .filter(|m| m.call_id() == Ok(call_id))
        .find(|m| m.status_code().is_some_and(|c| c >= 200))
}

impl Rig {
    fn deliver(&mut self, msg: &str, from: &Peer) -> Vec<Transmit> {
        let mut out = Vec::new();
        let msg = Message::parse(msg.as_bytes().to_vec()).expect("valid message");
        self.engine.on_message(self.now, msg, from.clone(), &mut out);
        out
    }

    /// REGISTER `user` from `from` (Request-URI `ruri`, Contact `contact`), answering a 401 with
    /// `password`; the final response.
    fn register(&mut self, user: &str, password: &str, ruri: &str, contact: &str, from: &Peer) -> Message {
        self.seq += 1;
        let (seq, call_id) = (self.seq, format!("reg-{user}-{}", self.seq));
        let req = |cseq: u32, auth: &str| {
            format!(
                "REGISTER {ruri} SIP/2.0\r\nVia: SIP/2.0/{t} {addr};branch=z9hG4bKr{}-{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=r{user}\r\nTo: <sip:{user}@{DOMAIN}>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <{contact}>\r\n{auth}Content-Length: 0\r\n\r\n",
                seq,
                t = via_transport(from.transport),
                addr = from.addr,
            )
        };
        let out = self.deliver(&req(1, ""), from);
        let first = final_response(&mut self.engine, &out, &call_id).expect("an answer");
        if first.status_code() != Some(401) {
            return first;
        }
        let auth = credentials(&first, HeaderName::WwwAuthenticate, user, password, "REGISTER", ruri);
        let out = self.deliver(&req(2, &format!("Authorization: {auth}\r\n")), from);
        final_response(&mut self.engine, &out, &call_id).expect("an answer")
    }

    /// An INVITE from `caller` at `from` to `ruri`, answering the 407; everything the engine sent
    /// for the authenticated INVITE (or for the first one, when it was not challenged).
    fn invite(&mut self, caller: &str, ruri: &str, from: &Peer) -> Vec<Transmit> {
        self.invite_with(caller, ruri, from, "")
    }

    /// [`Rig::invite`] with `sdp` as the INVITE's body (none when empty).
    fn invite_with(&mut self, caller: &str, ruri: &str, from: &Peer, sdp: &str) -> Vec<Transmit> {
        self.seq += 1;
        let (seq, call_id) = (self.seq, format!("call-{}", self.seq));
        let body = if sdp.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        let req = |cseq: u32, auth: &str| {
            format!(
                "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/{t} {addr};branch=z9hG4bKi{}-{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{caller}@{DOMAIN}>;tag=i{caller}\r\nTo: <{ruri}>\r\n\
                 Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{caller}@{addr}>\r\n{auth}{body}\
                 Content-Length: {len}\r\n\r\n{sdp}",
                seq,
                t = via_transport(from.transport),
                addr = from.addr,
                len = sdp.len(),
            )
        };
        let out = self.deliver(&req(1, ""), from);
        let Some(challenge) = out
            .iter()
            .find(|t| t.message.status_code() == Some(407))
            .map(|t| t.message.clone())
        else {
            return out;
        };
        let auth = credentials(
            &challenge,
            HeaderName::ProxyAuthenticate,
            caller,
            &format!("pw-{caller}"),
            "INVITE",
            ruri,
        );
        self.deliver(&req(2, &format!("Proxy-Authorization: {auth}\r\n")), from)
    }
}

fn finals_to(out: &[Transmit], peer: &Peer) -> Vec<Message> {
    out.iter()
        .filter(|t| t.to.addr == peer.addr && t.message.status_code().is_some_and(|c| c >= 200))
        .map(|t| t.message.clone())
        .collect()
}

fn invites(out: &[Transmit]) -> Vec<&Transmit> {
    out.iter()
        .filter(|t| t.message.method().is_some_and(|m| m.as_str() == "INVITE"))
        .collect()
}

#[test]
fn a_sips_register_over_udp_or_tcp_is_refused_before_any_challenge() {
    let mut r = rig(Vec::new());
    let udp = phone(Transport::Udp, "192.0.2.30:5060", 0);
    let tcp = phone(Transport::Tcp, "192.0.2.31:40000", 3);
    let tls = phone(Transport::Tls, "192.0.2.32:40001", 4);
    for (from, ruri, contact) in [
        (&udp, "sip:example.com", "sips:carol@192.0.2.30"),
        (&tcp, "sip:example.com", "sips:carol@192.0.2.31"),
        (&udp, "sips:example.com", "sip:carol@192.0.2.30"),
    ] {
        let resp = r.register("carol", "pw-carol", ruri, contact, from);
        assert_eq!(
            resp.status_code(),
            Some(403),
            "{ruri} {contact} over {:?}",
            from.transport
        );
        assert!(
            resp.reason_phrase().is_some_and(|why| why.contains("sips: needs TLS")),
            "{:?}",
            resp.reason_phrase()
        );
    }
    // The same over TLS is fine.
    let resp = r.register("carol", "pw-carol", "sips:example.com", "sips:carol@192.0.2.32", &tls);
    assert_eq!(resp.status_code(), Some(200));
}

#[test]
fn a_tls_only_user_registers_over_tls_and_is_refused_elsewhere_after_authentication() {
    let mut r = rig(Vec::new());
    let udp = phone(Transport::Udp, "192.0.2.40:5060", 0);
    let tcp = phone(Transport::Tcp, "192.0.2.41:40000", 5);
    let tls = phone(Transport::Tls, "192.0.2.42:40001", 6);
    for from in [&udp, &tcp] {
        let resp = r.register("bob", "pw-bob", "sip:example.com", "sip:bob@192.0.2.40", from);
        assert_eq!(resp.status_code(), Some(403), "{:?}", from.transport);
        assert_eq!(resp.reason_phrase(), Some("Forbidden (TLS required)"));
        // A wrong password still gets the challenge: the 403 is for bob only.
        let resp = r.register("bob", "wrong", "sip:example.com", "sip:bob@192.0.2.40", from);
        assert_eq!(resp.status_code(), Some(401));
    }
    let resp = r.register(
        "bob",
        "pw-bob",
        "sip:example.com",
        "sip:bob@192.0.2.42;transport=tls",
        &tls,
    );
    assert_eq!(resp.status_code(), Some(200));
    // Others may still use UDP.
    let resp = r.register("alice", "pw-alice", "sip:example.com", "sip:alice@192.0.2.40", &udp);
    assert_eq!(resp.status_code(), Some(200));
}

#[test]
fn calls_to_a_tls_only_user_go_to_its_tls_bindings_only() {
    let mut r = rig(vec![
        binding("bob", "sip:bob@192.0.2.50:5060", "udp:192.0.2.50:5060", 0),
        binding(
            "bob",
            "sip:bob@192.0.2.51:40000;transport=tls",
            "tls:192.0.2.51:40000",
            9,
        ),
        binding("dave", "sip:dave@192.0.2.52:5060", "udp:192.0.2.52:5060", 0),
    ]);
    let alice = phone(Transport::Udp, "192.0.2.10:5060", 0);
    let out = r.invite("alice", "sip:bob@example.com", &alice);
    let sent = invites(&out);
    assert_eq!(sent.len(), 1, "one branch: {out:?}");
    assert_eq!(sent[0].to.transport, Transport::Tls);
    assert_eq!(sent[0].to.conn, 9, "over bob's own TLS connection");

    // dave is registered over UDP only: not reached.
    let out = r.invite("alice", "sip:dave@example.com", &alice);
    assert!(invites(&out).is_empty());
    let refused = finals_to(&out, &alice);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status_code(), Some(480));
    assert_eq!(
        refused[0].reason_phrase(),
        Some("Temporarily Unavailable (no TLS registration)")
    );
}

#[test]
fn a_tls_only_caller_is_refused_over_udp_after_authentication() {
    let mut r = rig(vec![binding(
        "carol",
        "sip:carol@192.0.2.60:5060",
        "udp:192.0.2.60:5060",
        0,
    )]);
    let bob_udp = phone(Transport::Udp, "192.0.2.61:5060", 0);
    let out = r.invite("bob", "sip:carol@example.com", &bob_udp);
    assert!(invites(&out).is_empty());
    let refused = finals_to(&out, &bob_udp);
    assert_eq!(refused.len(), 1, "{out:?}");
    assert_eq!(refused[0].status_code(), Some(403));
    assert_eq!(refused[0].reason_phrase(), Some("Forbidden (TLS required)"));

    let bob_tls = phone(Transport::Tls, "192.0.2.62:40000", 11);
    let out = r.invite("bob", "sip:carol@example.com", &bob_tls);
    assert_eq!(invites(&out).len(), 1, "over TLS bob calls: {out:?}");
}

#[test]
fn a_sips_request_uri_needs_tls_in_and_out() {
    let mut r = rig(vec![
        binding("carol", "sip:carol@192.0.2.70:5060", "udp:192.0.2.70:5060", 0),
        binding("alice", "sip:alice@192.0.2.71:5060", "udp:192.0.2.71:5060", 0),
        binding("alice", "sips:alice@192.0.2.72:40000", "tls:192.0.2.72:40000", 12),
    ]);
    // Over UDP: 480 with Warning 381, before any challenge.
    let carol_udp = phone(Transport::Udp, "192.0.2.73:5060", 0);
    let out = r.invite("carol", "sips:alice@example.com", &carol_udp);
    assert!(out.iter().all(|t| t.message.status_code() != Some(407)), "no challenge");
    let refused = finals_to(&out, &carol_udp);
    assert_eq!(refused.len(), 1, "{out:?}");
    assert_eq!(refused[0].status_code(), Some(480));
    assert_eq!(refused[0].header("Warning"), Some("381 example.com \"SIPS Required\""));

    // Over TLS: delivered to alice's TLS binding only.
    let carol_tls = phone(Transport::Tls, "192.0.2.74:40000", 13);
    let out = r.invite("carol", "sips:alice@example.com", &carol_tls);
    let sent = invites(&out);
    assert_eq!(sent.len(), 1, "{out:?}");
    assert_eq!((sent[0].to.transport, sent[0].to.conn), (Transport::Tls, 12));

    // Over TLS to someone registered over UDP only: 480 with Warning 380.
    let alice_tls = phone(Transport::Tls, "192.0.2.75:40000", 14);
    let out = r.invite("alice", "sips:carol@example.com", &alice_tls);
    assert!(invites(&out).is_empty());
    let refused = finals_to(&out, &alice_tls);
    assert_eq!(refused.len(), 1, "{out:?}");
    assert_eq!(refused[0].status_code(), Some(480));
    assert_eq!(
        refused[0].header("Warning"),
        Some("380 example.com \"SIPS Not Allowed\"")
    );
}

/// Per-user network ACLs (issue #10 item 3) share this rig: carol may only use 198.51.100.0/24.
#[test]
fn a_user_with_allowed_networks_is_refused_elsewhere_after_authentication() {
    let mut r = rig(vec![binding("alice", "sip:alice@192.0.2.40", "udp:192.0.2.40:5060", 0)]);
    SqliteStore::open_in(&r.dir)
        .expect("a second handle, as `switchboard user passwd` would")
        .set_allowed_networks("carol", DOMAIN, &["198.51.100.0/24".to_owned()])
        .expect("set");
    let outside = phone(Transport::Udp, "192.0.2.50:5060", 0);
    let inside = phone(Transport::Udp, "198.51.100.7:5060", 0);

    // A wrong password from outside learns nothing: the usual 401.
    let resp = r.register("carol", "wrong", "sip:example.com", "sip:carol@192.0.2.50", &outside);
    assert_eq!(resp.status_code(), Some(401));
    let resp = r.register("carol", "pw-carol", "sip:example.com", "sip:carol@192.0.2.50", &outside);
    assert_eq!(resp.status_code(), Some(403));
    assert!(
        resp.reason_phrase()
            .is_some_and(|why| why.contains("not allowed from this network"))
    );
    let resp = r.register(
        "carol",
        "pw-carol",
        "sip:example.com",
        "sip:carol@198.51.100.7",
        &inside,
    );
    assert_eq!(resp.status_code(), Some(200), "from the allowed network");

    let out = r.invite("carol", "sip:alice@example.com", &outside);
    let refused = finals_to(&out, &outside);
    assert_eq!(
        refused.iter().filter_map(Message::status_code).collect::<Vec<_>>(),
        [403]
    );
    assert!(invites(&out).is_empty(), "nothing forwarded");
    let out = r.invite("carol", "sip:alice@example.com", &inside);
    assert_eq!(invites(&out).len(), 1, "a call from the allowed network goes through");
    // Users without a list are not affected.
    let resp = r.register("alice", "pw-alice", "sip:example.com", "sip:alice@192.0.2.50", &outside);
    assert_eq!(resp.status_code(), Some(200));
}

// ----- SDES-SRTP only over TLS signalling (RFC 4568 §8.3) -----

const ALICE_KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
const CAROL_KEY: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk";

/// An SDP from `host` with one audio stream: SRTP keyed with `key` (tag 1), or plain RTP.
fn sdp_from(host: &str, key: Option<&str>) -> String {
    let media = match key {
        Some(k) => format!("m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}\r\n"),
        None => "m=audio 4000 RTP/AVP 0\r\n".to_owned(),
    };
    format!("v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n{media}")
}

fn key_of(inline: &str) -> media::SrtpKey {
    sdp::Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{inline}"))
        .expect("key")
        .key_salt
}

/// The profile and the usable `a=crypto` keys of the first m-line of a message's SDP.
fn audio_of(m: &Message) -> (String, Vec<sdp::Crypto>) {
    let sdp = sdp::Sdp::parse(m.body()).expect("an SDP body");
    let audio = sdp.media().next().expect("an m-line");
    (audio.proto().to_owned(), audio.crypto())
}

/// The callee's 200 with `sdp` for the INVITE the proxy sent it.
fn answer(invite: &Message, tag: &str, contact: &str, sdp: &str) -> Message {
    let mut ok = Message::response_to(invite, 200, None, Some(tag));
    ok.push_header(HeaderName::Contact, &format!("<{contact}>"));
    ok.set_body(bytes::Bytes::from(sdp.to_owned()), Some("application/sdp"));
    ok
}

#[test]
fn an_srtp_offer_over_udp_or_tcp_is_refused_with_488() {
    let relay = FakeRelay::default();
    let mut r = rig_with_relay(
        vec![binding("carol", "sip:carol@192.0.2.90:5060", "udp:192.0.2.90:5060", 0)],
        &relay,
    );
    let offer = sdp_from("192.0.2.80", Some(ALICE_KEY));
    for alice in [
        phone(Transport::Udp, "192.0.2.80:5060", 0),
        phone(Transport::Tcp, "192.0.2.80:40000", 21),
    ] {
        let out = r.invite_with("alice", "sip:carol@example.com", &alice, &offer);
        assert!(invites(&out).is_empty(), "not forwarded: {out:?}");
        let refused = finals_to(&out, &alice);
        assert_eq!(refused.len(), 1, "{out:?}");
        assert_eq!(refused[0].status_code(), Some(488));
        assert_eq!(
            refused[0].header("Warning"),
            Some("399 example.com \"SRTP keys need TLS signalling\"")
        );
    }
    assert!(relay.srtp().is_empty(), "no key reached the relay");

    // Best-effort SRTP over UDP (keys in an RTP/AVP m-line) goes on as plain RTP, keys dropped.
    let best_effort = sdp_from("192.0.2.80", Some(ALICE_KEY)).replace("RTP/SAVP", "RTP/AVP");
    let alice = phone(Transport::Udp, "192.0.2.80:5060", 0);
    let out = r.invite_with("alice", "sip:carol@example.com", &alice, &best_effort);
    let sent = invites(&out);
    assert_eq!(sent.len(), 1, "forwarded: {out:?}");
    assert_eq!(audio_of(&sent[0].message), ("RTP/AVP".to_owned(), Vec::new()));
    assert!(relay.srtp().is_empty(), "no key reached the relay");

    // Plain RTP over UDP is fine; a re-INVITE that then offers keys over UDP is refused too.
    let alice = phone(Transport::Udp, "192.0.2.80:5060", 0);
    let out = r.invite_with("alice", "sip:carol@example.com", &alice, &sdp_from("192.0.2.80", None));
    let sent = invites(&out);
    assert_eq!(sent.len(), 1, "{out:?}");
    let (fwd, carol) = (sent[0].message.clone(), sent[0].to.clone());
    let ok = answer(&fwd, "c1", "sip:carol@192.0.2.90:5060", &sdp_from("192.0.2.90", None));
    let out = r.deliver(&String::from_utf8_lossy(&ok.to_bytes()), &carol);
    assert_eq!(finals_to(&out, &alice)[0].status_code(), Some(200));
    let call_id = fwd.call_id().expect("Call-ID").to_owned();
    let reinvite = format!(
        "INVITE sip:carol@192.0.2.90:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bKre1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=ialice\r\nTo: <sip:carol@{DOMAIN}>;tag=c1\r\n\
         Call-ID: {call_id}\r\nCSeq: 10 INVITE\r\nContact: <sip:alice@{addr}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
        addr = alice.addr,
        len = offer.len(),
    );
    let out = r.deliver(&reinvite, &alice);
    assert!(invites(&out).is_empty(), "not forwarded: {out:?}");
    let refused = finals_to(&out, &alice);
    assert_eq!(refused.len(), 1, "{out:?}");
    assert_eq!(refused[0].status_code(), Some(488));
    assert_eq!(
        refused[0].header("Warning"),
        Some("399 example.com \"SRTP keys need TLS signalling\"")
    );
    assert!(relay.srtp().is_empty());
}

#[test]
fn srtp_from_a_tls_caller_reaches_a_udp_callee_as_plain_rtp() {
    let relay = FakeRelay::default();
    let mut r = rig_with_relay(
        vec![binding("carol", "sip:carol@192.0.2.91:5060", "udp:192.0.2.91:5060", 0)],
        &relay,
    );
    let alice = phone(Transport::Tls, "192.0.2.81:40000", 22);
    let out = r.invite_with(
        "alice",
        "sip:carol@example.com",
        &alice,
        &sdp_from("192.0.2.81", Some(ALICE_KEY)),
    );
    let sent = invites(&out);
    assert_eq!(sent.len(), 1, "{out:?}");
    let (proto, keys) = audio_of(&sent[0].message);
    assert_eq!(proto, "RTP/AVP");
    assert!(keys.is_empty());
    assert!(!String::from_utf8_lossy(sent[0].message.body()).contains("a=crypto"));
    // The relay decrypts leg A only, and encrypts toward no one yet.
    let alice_key = key_of(ALICE_KEY);
    assert_eq!(
        relay.srtp(),
        [(4, Leg::A, Some(alice_key), None), (4, Leg::B, None, None)]
    );

    // carol answers plain RTP: alice gets SRTP with the relay's key; the relay bridges.
    let (fwd, carol) = (sent[0].message.clone(), sent[0].to.clone());
    let ok = answer(&fwd, "c2", "sip:carol@192.0.2.91:5060", &sdp_from("192.0.2.91", None));
    let out = r.deliver(&String::from_utf8_lossy(&ok.to_bytes()), &carol);
    let to_alice = finals_to(&out, &alice);
    assert_eq!(to_alice.len(), 1, "{out:?}");
    let (proto, keys) = audio_of(&to_alice[0]);
    assert_eq!(proto, "RTP/SAVP");
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0].key_salt, alice_key);
    let told = relay.srtp();
    assert_eq!(
        told[told.len() - 2..],
        [
            (4, Leg::A, Some(alice_key), Some(keys[0].key_salt)),
            (4, Leg::B, None, None)
        ]
    );
}

#[test]
fn srtp_between_tls_phones_stays_srtp_both_ways() {
    let relay = FakeRelay::default();
    let mut r = rig_with_relay(
        vec![binding(
            "carol",
            "sip:carol@192.0.2.92:40000;transport=tls",
            "tls:192.0.2.92:40000",
            23,
        )],
        &relay,
    );
    let alice = phone(Transport::Tls, "192.0.2.82:40000", 24);
    let out = r.invite_with(
        "alice",
        "sip:carol@example.com",
        &alice,
        &sdp_from("192.0.2.82", Some(ALICE_KEY)),
    );
    let sent = invites(&out);
    assert_eq!(sent.len(), 1, "{out:?}");
    let (proto, keys) = audio_of(&sent[0].message);
    assert_eq!(proto, "RTP/SAVP");
    assert_eq!(keys.len(), 1, "the relay's key for carol");
    let (alice_key, ours_b) = (key_of(ALICE_KEY), keys[0].key_salt);
    assert_ne!(ours_b, alice_key);
    assert_eq!(
        relay.srtp(),
        [(4, Leg::A, Some(alice_key), None), (4, Leg::B, None, Some(ours_b))]
    );

    let (fwd, carol) = (sent[0].message.clone(), sent[0].to.clone());
    let ok = answer(
        &fwd,
        "c3",
        "sip:carol@192.0.2.92:40000;transport=tls",
        &sdp_from("192.0.2.92", Some(CAROL_KEY)),
    );
    let out = r.deliver(&String::from_utf8_lossy(&ok.to_bytes()), &carol);
    let to_alice = finals_to(&out, &alice);
    assert_eq!(to_alice.len(), 1, "{out:?}");
    let (proto, keys) = audio_of(&to_alice[0]);
    assert_eq!(proto, "RTP/SAVP");
    assert_eq!(keys.len(), 1);
    let ours_a = keys[0].key_salt;
    assert!(ours_a != alice_key && ours_a != key_of(CAROL_KEY) && ours_a != ours_b);
    let told = relay.srtp();
    assert_eq!(
        told[told.len() - 2..],
        [
            (4, Leg::A, Some(alice_key), Some(ours_a)),
            (4, Leg::B, Some(key_of(CAROL_KEY)), Some(ours_b))
        ]
    );
}

#[test]
fn a_forked_srtp_offer_keeps_its_keys_for_tls_branches_only() {
    let relay = FakeRelay::default();
    let mut r = rig_with_relay(
        vec![
            binding("carol", "sip:carol@192.0.2.93:5060", "udp:192.0.2.93:5060", 0),
            binding(
                "carol",
                "sip:carol@192.0.2.94:40000;transport=tls",
                "tls:192.0.2.94:40000",
                25,
            ),
        ],
        &relay,
    );
    let alice = phone(Transport::Tls, "192.0.2.83:40000", 26);
    let out = r.invite_with(
        "alice",
        "sip:carol@example.com",
        &alice,
        &sdp_from("192.0.2.83", Some(ALICE_KEY)),
    );
    let sent = invites(&out);
    assert_eq!(sent.len(), 2, "{out:?}");
    for t in sent {
        let (proto, keys) = audio_of(&t.message);
        match t.to.transport {
            Transport::Tls => assert_eq!((proto.as_str(), keys.len()), ("RTP/SAVP", 1)),
            _ => {
                assert_eq!((proto.as_str(), keys.len()), ("RTP/AVP", 0));
                assert!(!String::from_utf8_lossy(t.message.body()).contains("a=crypto"));
            }
        }
    }
}
