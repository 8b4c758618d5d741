//! The proxy on a virtual clock: the engine (transaction layer + registrar + proxy) is sans-IO,
//! so forking, best-response selection, CANCEL, the ring timeout and Timer C are driven here
//! message by message and second by second, with no sockets and no sleeping.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use server::auth::DigestAuth;
use server::cluster::{ClusterView, HOP_HEADER, Hop};
use server::engine::Engine;
use server::proxy::{LocalAddrs, Proxy, ProxyConfig};
use server::registrar::{Intervals, Location, Registrar};
use sip::Message;
use sip::digest::{Algorithm, ha1, ha2, response};
use sip_txn::{Peer, TimerConfig, Transmit, Transport};
use store::{Binding, Disposition, SqliteStore, Subscriber, SubscriberCache, SubscriberStore};

const DOMAIN: &str = "example.com";

fn peer(addr: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr.parse().expect("addr"),
        conn: 0,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Rig {
    engine: Engine,
    calls: u32,
    now: Instant,
    caller: Peer,
    _dir: std::path::PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn binding(contact: &str, source: &str, conn: u64, behind_nat: bool) -> Binding {
    Binding {
        aor: format!("bob@{DOMAIN}"),
        contact: contact.to_owned(),
        expires_at: unix_now() + 3600,
        q: 1000,
        call_id: format!("reg-{contact}"),
        cseq: 1,
        source: source.to_owned(),
        conn,
        user_agent: None,
        behind_nat,
        node: String::new(),
    }
}

/// alice calls bob; bob has a binding for each of `contacts` (all at distinct addresses).
fn rig(contacts: &[&str], config: ProxyConfig) -> Rig {
    let bindings = contacts
        .iter()
        .map(|c| {
            let uri = sip::Uri::parse(c).expect("contact");
            binding(c, &format!("udp:{}:{}", uri.host, uri.port.unwrap_or(5060)), 0, false)
        })
        .collect();
    rig_with(bindings, config)
}

fn rig_with(bindings: Vec<Binding>, config: ProxyConfig) -> Rig {
    rig_on_node(bindings, config, None)
}

/// The secret the test platform's nodes share.
const CLUSTER_SECRET: [u8; 32] = [5; 32];

/// This rig as node `me` of a platform whose live nodes are `nodes` (id, hop address).
fn cluster_rig(bindings: Vec<Binding>, me: &str, nodes: &[(&str, &str)]) -> Rig {
    let mut r = rig_on_node(
        bindings,
        ProxyConfig::default(),
        Some(ClusterView::new(me, &CLUSTER_SECRET)),
    );
    r.engine.set_cluster_nodes(
        nodes
            .iter()
            .map(|(id, addr)| ((*id).to_owned(), addr.parse().expect("addr")))
            .collect(),
    );
    r
}

fn rig_on_node(bindings: Vec<Binding>, config: ProxyConfig, cluster: Option<ClusterView>) -> Rig {
    let dir = std::env::temp_dir().join(format!(
        "sb-proxy-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let store = SqliteStore::open_in(&dir).expect("store");
    for user in ["alice", "bob", "carol"] {
        store
            .add(&Subscriber::new(user, DOMAIN, &format!("pw-{user}")).expect("subscriber"))
            .expect("add");
    }

    let registrar = Registrar {
        domain: DOMAIN.into(),
        intervals: Intervals::default(),
        auth: DigestAuth::new([9u8; 32], 300),
        subscribers: SubscriberCache::new(std::sync::Arc::new(store) as server::Subscribers),
        auth_failures: 0,
        node: String::new(),
        location: Location::from_bindings(bindings),
    };
    let local = LocalAddrs {
        udp: Some("192.0.2.1:5060".parse().expect("addr")),
        tcp: Some("192.0.2.1:5060".parse().expect("addr")),
        tls: None,
        domain: DOMAIN.into(),
    };
    let now = Instant::now();
    let proxy = Proxy::new(config, local, now, 1_700_000_000_000, 42).with_cluster(cluster);
    Rig {
        engine: Engine::new(TimerConfig::default(), Some(registrar), Some(proxy)),
        calls: 0,
        now,
        caller: peer("192.0.2.10:5060"),
        _dir: dir,
    }
}

fn parse(s: &str) -> Message {
    Message::parse(s.as_bytes().to_vec()).expect("valid message")
}

fn invite(callee: &str, cseq: u32, branch: &str, auth: Option<&str>) -> String {
    request("INVITE", callee, "call-1@192.0.2.10", cseq, branch, auth)
}

fn request(method: &str, callee: &str, call_id: &str, cseq: u32, branch: &str, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} sip:{callee}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport=5060;received=192.0.2.10\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=alice1\r\nTo: <sip:{callee}@{DOMAIN}>\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@192.0.2.10:5060>\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

impl Rig {
    fn deliver(&mut self, msg: Message, from: &Peer) -> Vec<Transmit> {
        let mut out = Vec::new();
        self.engine.on_message(self.now, msg, from.clone(), &mut out);
        out
    }

    fn advance(&mut self, by: Duration) -> Vec<Transmit> {
        let end = self.now + by;
        let mut out = Vec::new();
        while let Some(at) = self.engine.next_deadline().filter(|d| *d <= end) {
            self.now = at.max(self.now);
            self.engine.on_timeout(self.now, &mut out);
        }
        self.now = end;
        out
    }

    /// INVITE → 407 → ACK → INVITE with credentials; returns what the second INVITE produced.
    /// The first call has Call-ID `call-1@192.0.2.10` and branches `z9hG4bKa1`, `z9hG4bKa2`.
    fn call(&mut self, callee: &str) -> Vec<Transmit> {
        self.call_from(callee, "alice")
    }

    /// A call authenticated as alice with `from_user` in the From header.
    fn call_from(&mut self, callee: &str, from_user: &str) -> Vec<Transmit> {
        let spoof = |m: String| m.replace("From: <sip:alice@", &format!("From: <sip:{from_user}@"));
        self.calls += 1;
        let n = self.calls;
        let call_id = format!("call-{n}@192.0.2.10");
        let caller = self.caller.clone();
        let first = format!("z9hG4bK{}1", ["a", "b", "c", "d"][(n as usize - 1) % 4]);
        let second = format!("z9hG4bK{}2", ["a", "b", "c", "d"][(n as usize - 1) % 4]);
        let out = self.deliver(
            parse(&spoof(request("INVITE", callee, &call_id, 1, &first, None))),
            &caller,
        );
        let challenge = out
            .iter()
            .find(|t| t.message.status_code() == Some(407))
            .expect("407 first");
        let to_tag = challenge
            .message
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .expect("tag");
        let ack = request("ACK", callee, &call_id, 1, &first, None).replace(
            &format!("To: <sip:{callee}@{DOMAIN}>"),
            &format!("To: <sip:{callee}@{DOMAIN}>;tag={to_tag}"),
        );
        self.deliver(parse(&spoof(ack)), &caller);
        let header = challenge.message.header("Proxy-Authenticate").expect("challenge");
        let nonce = header
            .split("nonce=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("nonce");
        let uri = format!("sip:{callee}@{DOMAIN}");
        let h1 = ha1(Algorithm::Md5, "alice", DOMAIN, "pw-alice");
        let r = response(
            Algorithm::Md5,
            &h1,
            nonce,
            "00000001",
            "c0ffee",
            Some("auth"),
            &ha2(Algorithm::Md5, "INVITE", &uri),
        );
        let auth = format!(
            "Digest username=\"alice\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\", \
             algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\""
        );
        self.deliver(
            parse(&spoof(request("INVITE", callee, &call_id, 2, &second, Some(&auth)))),
            &caller,
        )
    }
}

fn to(out: &[Transmit], addr: &str) -> Vec<Message> {
    let addr: SocketAddr = addr.parse().expect("addr");
    out.iter()
        .filter(|t| t.to.addr == addr)
        .map(|t| t.message.clone())
        .collect()
}

fn codes(msgs: &[Message]) -> Vec<u16> {
    msgs.iter().filter_map(Message::status_code).collect()
}

/// Status codes without Timer G retransmissions (the test caller does not ACK).
fn distinct_codes(msgs: &[Message]) -> Vec<u16> {
    let mut c = codes(msgs);
    c.dedup();
    c
}

fn methods(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| m.method().map(|m| m.as_str().to_owned()))
        .collect()
}

/// The callee's answer to a forwarded request.
fn answer(req: &Message, code: u16) -> Message {
    let resp = Message::response_to(req, code, None, Some("bobtag"));
    Message::parse(resp.to_bytes()).expect("reparse")
}

const PHONE_A: &str = "192.0.2.20:5060";
const PHONE_B: &str = "192.0.2.21:5060";

fn two_phones() -> Rig {
    rig(
        &["sip:bob@192.0.2.20:5060", "sip:bob@192.0.2.21:5060"],
        ProxyConfig::default(),
    )
}

#[test]
fn forks_and_the_first_2xx_wins() {
    let mut r = two_phones();
    let out = r.call("bob");
    assert_eq!(codes(&to(&out, "192.0.2.10:5060")), [100], "100 Trying at once");
    let a = to(&out, PHONE_A).pop().expect("INVITE to phone A");
    let b = to(&out, PHONE_B).pop().expect("INVITE to phone B");
    for fwd in [&a, &b] {
        assert_eq!(
            fwd.request_uri_str().map(|u| u.starts_with("sip:bob@192.0.2.2")),
            Some(true)
        );
        assert_eq!(fwd.max_forwards().expect("mf"), Some(69));
        assert!(fwd.header("Proxy-Authorization").is_none(), "our credentials stay here");
        assert_eq!(
            fwd.header("Record-Route"),
            Some("<sip:192.0.2.1:5060;transport=udp;lr>")
        );
        assert!(fwd.via().expect("via").host == "192.0.2.1");
    }

    let ringing = r.deliver(answer(&a, 180), &peer(PHONE_A));
    assert_eq!(codes(&to(&ringing, "192.0.2.10:5060")), [180]);
    let ok = r.deliver(answer(&b, 200), &peer(PHONE_B));
    let upstream = to(&ok, "192.0.2.10:5060");
    assert_eq!(codes(&upstream), [200]);
    assert_eq!(upstream[0].vias().count(), 1, "our Via is removed");
    assert_eq!(methods(&to(&ok, PHONE_A)), ["CANCEL"], "the other branch is cancelled");

    // A late 180 from the cancelled branch never follows the 200 upstream.
    let late = r.deliver(answer(&a, 183), &peer(PHONE_A));
    assert!(to(&late, "192.0.2.10:5060").is_empty());
    r.deliver(answer(&a, 487), &peer(PHONE_A));
    assert_eq!(r.engine.active_calls(), 1);

    // The caller's BYE is loose-routed to the phone that answered and ends the call.
    let bye = parse(&format!(
        "BYE sip:bob@192.0.2.21:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbye\r\n\
         Route: <sip:192.0.2.1:5060;transport=udp;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=alice1\r\n\
         To: <sip:bob@{DOMAIN}>;tag=bobtag\r\nCall-ID: call-1@192.0.2.10\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"
    ));
    let caller = r.caller.clone();
    let out = r.deliver(bye, &caller);
    let fwd = to(&out, PHONE_B).pop().expect("BYE to phone B");
    assert!(fwd.header("Route").is_none(), "our Route entry is consumed");
    let out = r.deliver(answer(&fwd, 200), &peer(PHONE_B));
    assert_eq!(codes(&to(&out, "192.0.2.10:5060")), [200]);
    assert_eq!(r.engine.active_calls(), 0);
    let records = r.engine.take_records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].disposition, Disposition::Answered);
    assert_eq!(records[0].hangup.as_deref(), Some("caller"));
    assert_eq!(records[0].answered_by.as_deref(), Some("sip:bob@192.0.2.21:5060"));
}

#[test]
fn busy_everywhere_is_busy_and_the_best_response_is_chosen() {
    let mut r = two_phones();
    let out = r.call("bob");
    let a = to(&out, PHONE_A).pop().expect("INVITE A");
    let b = to(&out, PHONE_B).pop().expect("INVITE B");
    let first = r.deliver(answer(&a, 480), &peer(PHONE_A));
    assert!(to(&first, "192.0.2.10:5060").is_empty(), "waits for every branch");
    let last = r.deliver(answer(&b, 486), &peer(PHONE_B));
    assert_eq!(
        codes(&to(&last, "192.0.2.10:5060")),
        [486],
        "busy beats temporarily unavailable"
    );
    let records = r.engine.take_records();
    assert_eq!(records[0].disposition, Disposition::Busy);
    assert_eq!(records[0].status, 486);
}

#[test]
fn caller_cancel_reaches_every_branch() {
    let mut r = two_phones();
    let out = r.call("bob");
    let a = to(&out, PHONE_A).pop().expect("INVITE A");
    let b = to(&out, PHONE_B).pop().expect("INVITE B");
    r.deliver(answer(&a, 180), &peer(PHONE_A));
    let cancel = parse(&format!(
        "CANCEL sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa2;rport=5060;received=192.0.2.10\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=alice1\r\nTo: <sip:bob@{DOMAIN}>\r\n\
         Call-ID: call-1@192.0.2.10\r\nCSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n"
    ));
    let caller = r.caller.clone();
    let out = r.deliver(cancel, &caller);
    assert_eq!(codes(&to(&out, "192.0.2.10:5060")), [200], "200 for the CANCEL");
    assert_eq!(methods(&to(&out, PHONE_A)), ["CANCEL"]);
    assert!(
        to(&out, PHONE_B).is_empty(),
        "no CANCEL before a provisional response (§9.1)"
    );
    let out = r.deliver(answer(&b, 180), &peer(PHONE_B));
    assert_eq!(methods(&to(&out, PHONE_B)), ["CANCEL"], "sent once B rings");
    assert!(to(&out, "192.0.2.10:5060").is_empty(), "no 180 upstream after CANCEL");
    r.deliver(answer(&a, 487), &peer(PHONE_A));
    let out = r.deliver(answer(&b, 487), &peer(PHONE_B));
    assert_eq!(codes(&to(&out, "192.0.2.10:5060")), [487]);
    let records = r.engine.take_records();
    assert_eq!(records[0].disposition, Disposition::Cancelled);
}

#[test]
fn ring_timeout_gives_480_and_cancels() {
    let config = ProxyConfig {
        ring_timeout: Duration::from_secs(20),
        ..ProxyConfig::default()
    };
    let mut r = rig(&["sip:bob@192.0.2.20:5060"], config);
    let out = r.call("bob");
    let a = to(&out, PHONE_A).pop().expect("INVITE A");
    r.deliver(answer(&a, 180), &peer(PHONE_A));
    let out = r.advance(Duration::from_secs(19));
    assert!(to(&out, "192.0.2.10:5060").is_empty(), "still ringing at 19 s");
    let out = r.advance(Duration::from_secs(2));
    assert_eq!(distinct_codes(&to(&out, "192.0.2.10:5060")), [480]);
    assert_eq!(
        methods(&to(&out, PHONE_A))[0],
        "CANCEL",
        "then retransmitted until answered"
    );
    let records = r.engine.take_records();
    assert_eq!(records[0].disposition, Disposition::NoAnswer);
}

#[test]
fn timer_c_ends_a_silent_branch_with_408() {
    let config = ProxyConfig {
        ring_timeout: Duration::from_secs(600),
        timer_c: Duration::from_secs(180),
        ..ProxyConfig::default()
    };
    let mut r = rig(&["sip:bob@192.0.2.20:5060"], config);
    let out = r.call("bob");
    let a = to(&out, PHONE_A).pop().expect("INVITE A");
    // Without a provisional response Timer B ends the branch after 32 s; with one, only Timer C
    // does, and each provisional response restarts it.
    r.deliver(answer(&a, 180), &peer(PHONE_A));
    let out = r.advance(Duration::from_secs(170));
    assert_eq!(codes(&to(&out, "192.0.2.10:5060")), Vec::<u16>::new());
    r.deliver(answer(&a, 180), &peer(PHONE_A));
    let out = r.advance(Duration::from_secs(150));
    assert!(to(&out, "192.0.2.10:5060").is_empty(), "restarted by the second 180");
    let out = r.advance(Duration::from_secs(40));
    assert_eq!(distinct_codes(&to(&out, "192.0.2.10:5060")), [408]);
    assert_eq!(methods(&to(&out, PHONE_A))[0], "CANCEL");
}

#[test]
fn refusals() {
    let mut r = rig(&[], ProxyConfig::default());
    assert_eq!(codes(&to(&r.call("nobody"), "192.0.2.10:5060")), [404]);
    assert_eq!(
        codes(&to(&r.call_from("bob", "carol"), "192.0.2.10:5060")),
        [403],
        "alice's credentials with carol in From"
    );
    assert_eq!(
        codes(&to(&r.call("carol"), "192.0.2.10:5060")),
        [480],
        "known, not registered"
    );
    let records = r.engine.take_records();
    assert_eq!(
        records.iter().map(|r| r.status).collect::<Vec<_>>(),
        [404, 480],
        "refused calls are recorded; a spoofed one is not a call"
    );
    assert!(records.iter().all(|r| r.disposition == Disposition::Failed));

    // Another domain: no challenge, no relaying.
    let caller = r.caller.clone();
    let foreign = invite("bob", 1, "z9hG4bKf1", None)
        .replace(&format!("INVITE sip:bob@{DOMAIN}"), "INVITE sip:bob@elsewhere.org");
    let out = r.deliver(parse(&foreign), &caller);
    assert_eq!(codes(&to(&out, "192.0.2.10:5060")), [403]);

    // In-dialog request for no call: 481.
    let stray = invite("bob", 5, "z9hG4bKs1", None).replace(
        &format!("To: <sip:bob@{DOMAIN}>"),
        &format!("To: <sip:bob@{DOMAIN}>;tag=x"),
    );
    let out = r.deliver(parse(&stray), &caller);
    assert_eq!(codes(&to(&out, "192.0.2.10:5060")), [481]);
}

#[test]
fn nat_and_transport_changes() {
    let bindings = vec![
        // Behind NAT: the Contact is private, the REGISTER came from the router's public side.
        binding("sip:bob@10.0.0.5:5060", "udp:203.0.113.5:40000", 0, true),
        // Over TCP: requests use the phone's own connection.
        binding("sip:bob@10.0.0.6:5070;transport=tcp", "tcp:203.0.113.6:50000", 7, true),
    ];
    let mut r = rig_with(bindings, ProxyConfig::default());
    let out = r.call("bob");
    let nat = to(&out, "203.0.113.5:40000")
        .pop()
        .expect("INVITE to the NAT binding's source");
    assert_eq!(
        nat.request_uri_str(),
        Some("sip:bob@10.0.0.5:5060"),
        "Request-URI stays the Contact"
    );
    assert_eq!(nat.header_values("Record-Route").count(), 1);
    let tcp = out
        .iter()
        .find(|t| t.to.transport == Transport::Tcp)
        .expect("INVITE over TCP");
    assert_eq!(tcp.to.conn, 7, "over the phone's connection");
    assert_eq!(tcp.to.addr, "203.0.113.6:50000".parse::<SocketAddr>().expect("addr"));
    let rr: Vec<&str> = tcp.message.header_values("Record-Route").collect();
    assert_eq!(
        rr,
        [
            "<sip:192.0.2.1:5060;transport=tcp;lr>",
            "<sip:192.0.2.1:5060;transport=udp;lr>"
        ],
        "two entries where the transport changes, the callee's side on top"
    );
    assert!(tcp.message.via().expect("via").transport.eq_ignore_ascii_case("TCP"));
}

#[test]
fn the_server_can_end_an_answered_call() {
    let mut r = rig(&["sip:bob@192.0.2.20:5060"], ProxyConfig::default());
    let out = r.call("bob");
    let a = to(&out, PHONE_A).pop().expect("INVITE A");
    let mut ok = Message::response_to(&a, 200, None, Some("bobtag"));
    ok.push_header(sip::HeaderName::Contact, "<sip:bob@192.0.2.20:5060>");
    r.deliver(Message::parse(ok.to_bytes()).expect("reparse"), &peer(PHONE_A));
    let mut out = Vec::new();
    let now = r.now;
    assert!(r.engine.hang_up(now, "call-1@192.0.2.10", "media-timeout", &mut out));
    let to_caller = to(&out, "192.0.2.10:5060");
    let to_callee = to(&out, PHONE_A);
    assert_eq!(methods(&to_caller), ["BYE"]);
    assert_eq!(methods(&to_callee), ["BYE"]);
    let bye = &to_caller[0];
    assert_eq!(
        bye.request_uri_str(),
        Some("sip:alice@192.0.2.10:5060"),
        "to the caller's Contact"
    );
    assert_eq!(
        bye.from_header().expect("from").tag(),
        Some("bobtag"),
        "in the callee's name"
    );
    assert_eq!(bye.to_header().expect("to").tag(), Some("alice1"));
    let bye = &to_callee[0];
    assert_eq!(bye.request_uri_str(), Some("sip:bob@192.0.2.20:5060"));
    assert_eq!(bye.cseq().expect("cseq").seq, 3, "above the INVITE's CSeq 2");
    let records = r.engine.take_records();
    assert_eq!(records[0].hangup.as_deref(), Some("media-timeout"));
    assert_eq!(r.engine.active_calls(), 0);
}

#[test]
fn a_caller_has_at_most_max_calls_per_user_in_progress() {
    let mut r = rig(
        &["sip:bob@192.0.2.20:5060"],
        ProxyConfig {
            max_calls_per_user: 2,
            ..ProxyConfig::default()
        },
    );
    for _ in 0..2 {
        let out = r.call("bob");
        assert_eq!(codes(&to(&out, "192.0.2.10:5060")), [100], "within the limit");
    }
    let out = r.call("bob");
    let refused = to(&out, "192.0.2.10:5060");
    assert_eq!(codes(&refused), [403], "the third call in progress is refused");
    assert!(refused[0].reason_phrase().is_some_and(|p| p.contains("too many calls")));
    assert!(to(&out, PHONE_A).is_empty(), "and not forwarded");
    assert_eq!(r.engine.active_calls(), 2);
    // One call ends (busy): the next one goes through.
    let mut out = r.advance(Duration::from_millis(1));
    out.clear();
    assert!(r.engine.hang_up(r.now, "call-1@192.0.2.10", "test", &mut out));
    let out = r.call("bob");
    assert_eq!(
        codes(&to(&out, "192.0.2.10:5060")),
        [100],
        "room again after a call ended"
    );
}

/// bob's binding held by node `node`, registered from `source` with contact `contact`.
fn held_by(node: &str, contact: &str, source: &str, conn: u64) -> Binding {
    Binding {
        node: node.to_owned(),
        ..binding(contact, source, conn, false)
    }
}

#[test]
fn a_phone_held_by_another_node_is_reached_through_it_over_a_signed_hop() {
    let bob = held_by("b", "sip:bob@198.51.100.7:5060", "udp:198.51.100.7:5060", 0);
    let mut r = cluster_rig(vec![bob], "a", &[("a", "192.0.2.1:5060"), ("b", "192.0.2.2:5060")]);
    let out = r.call("bob");
    assert!(to(&out, "198.51.100.7:5060").is_empty(), "not to the phone directly");
    let hop = to(&out, "192.0.2.2:5060");
    assert_eq!(methods(&hop), ["INVITE"]);
    let invite = &hop[0];
    assert_eq!(invite.request_uri_str(), Some("sip:bob@198.51.100.7:5060"));
    assert!(invite.header("Record-Route").is_some(), "node A stays in the dialog");
    let t = invite
        .header(HOP_HEADER)
        .and_then(|h| h.split("t=").nth(1))
        .and_then(|t| t.split(';').next())
        .and_then(|t| t.parse::<u64>().ok())
        .expect("hop time");
    let node_b = ClusterView::new("b", &CLUSTER_SECRET);
    assert_eq!(
        node_b.verify_hop(invite, t),
        Some(Ok(Hop {
            node: "a".into(),
            aor: format!("bob@{DOMAIN}")
        }))
    );
}

#[test]
fn when_the_holding_node_is_gone_udp_phones_are_tried_directly_and_tcp_ones_are_not() {
    let udp = held_by("c", "sip:bob@198.51.100.7:5060", "udp:198.51.100.7:5060", 0);
    let tcp = held_by(
        "c",
        "sip:bob@198.51.100.8:5060;transport=tcp",
        "tcp:198.51.100.8:40000",
        7,
    );
    let mut r = cluster_rig(vec![udp, tcp.clone()], "a", &[("a", "192.0.2.1:5060")]);
    let out = r.call("bob");
    assert_eq!(
        methods(&to(&out, "198.51.100.7:5060")),
        ["INVITE"],
        "UDP: straight to the phone"
    );
    assert!(
        to(&out, "198.51.100.8:40000").is_empty(),
        "TCP: its connection died with node c"
    );

    let mut r = cluster_rig(vec![tcp], "a", &[("a", "192.0.2.1:5060")]);
    let out = r.call("bob");
    assert_eq!(distinct_codes(&to(&out, "192.0.2.10:5060")), [480]);
}

/// An INVITE from node A (192.0.2.1) for bob's contact, signed with `secret` at `unix`.
fn hop_invite(secret: &[u8; 32], unix: u64) -> Message {
    let raw = "INVITE sip:bob@198.51.100.7:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKhop1;rport\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKa2;received=192.0.2.10;rport=5060\r\n\
         Record-Route: <sip:192.0.2.1:5060;transport=udp;lr>\r\n\
         Max-Forwards: 69\r\nFrom: <sip:alice@example.com>;tag=alice1\r\nTo: <sip:bob@example.com>\r\n\
         Call-ID: hop-1@192.0.2.10\r\nCSeq: 2 INVITE\r\nContact: <sip:alice@192.0.2.10:5060>\r\nContent-Length: 0\r\n\r\n";
    let mut m = parse(raw);
    ClusterView::new("a", secret).sign_hop(&mut m, &format!("bob@{DOMAIN}"), unix);
    Message::parse(m.to_bytes()).expect("reparse")
}

#[test]
fn the_holding_node_delivers_a_signed_hop_without_asking_for_credentials() {
    let bob = held_by("b", "sip:bob@198.51.100.7:5060", "udp:198.51.100.7:5060", 0);
    let mut r = cluster_rig(vec![bob], "b", &[("a", "192.0.2.1:5060"), ("b", "192.0.2.2:5060")]);
    let node_a = peer("192.0.2.1:5060");
    let out = r.deliver(hop_invite(&CLUSTER_SECRET, unix_now()), &node_a);
    assert_eq!(distinct_codes(&to(&out, "192.0.2.1:5060")), [100], "no 407 for a hop");
    let delivered = to(&out, "198.51.100.7:5060");
    assert_eq!(methods(&delivered), ["INVITE"]);
    assert!(
        delivered[0].header(HOP_HEADER).is_none(),
        "the hop header stays between nodes"
    );
    // The answer goes back to node A, and the call leaves no record here (A keeps it).
    let out = r.deliver(answer(&delivered[0], 200), &peer("198.51.100.7:5060"));
    assert_eq!(codes(&to(&out, "192.0.2.1:5060")), [200]);
    assert!(r.engine.take_records().is_empty());

    // Signed with another secret, or replayed later: refused.
    let mut r = cluster_rig(
        vec![held_by("b", "sip:bob@198.51.100.7:5060", "udp:198.51.100.7:5060", 0)],
        "b",
        &[("a", "192.0.2.1:5060")],
    );
    let out = r.deliver(hop_invite(&[6; 32], unix_now()), &node_a);
    assert_eq!(distinct_codes(&to(&out, "192.0.2.1:5060")), [403]);
    let out = r.deliver(hop_invite(&CLUSTER_SECRET, unix_now() - 3600), &node_a);
    assert_eq!(distinct_codes(&to(&out, "192.0.2.1:5060")), [403]);
    assert!(to(&out, "198.51.100.7:5060").is_empty());
}
