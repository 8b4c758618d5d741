//! The media relay's port pool end to end: thousands of short calls through the real binary must
//! give every RTP port back. The relay gets a small range, so a stream leaked by any call would
//! soon leave later calls without ports (503): 5,000 sequential answered calls, each carrying an
//! RTP packet both ways and hung up alternately by the caller and the callee, then the whole pool
//! taken at once (and one call more refused with 503); and, on a pool of one stream, calls that
//! end without a conversation (486, CANCEL, the ring timeout) or by the server (media timeout).
//!
//! The phones are a compact SIP client written here over UDP on loopback: the caller (alice)
//! goes INVITE → 407 → ACK → INVITE with a digest → 100/180/200 → ACK → BYE → 200 like a phone;
//! the callee (bob, registered at its own socket) answers 180 and 200 with SDP. Both run in
//! lock step on the test thread, so no message is retransmitted and every wait is bounded.
//!
//! Relay ports: 7000-7099 and 7200-7203, apart from the ephemeral ports (32768+) the phones get,
//! the server's default range (10000-20000) that other tests use, the media crate's tests and
//! benchmarks (20000-39999) and SIPp's media ports (6000+).

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sip::digest::{Algorithm, ha1, ha2, response};
use sip::{HeaderName, Message};
use store::{CallRecord, Disposition, RecordStore};
use support::{Server, TempDir, udp_client, udp_transaction};

const DOMAIN: &str = "test.invalid";
const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");
/// How long any one message may take to arrive.
const WAIT: Duration = Duration::from_secs(5);

/// A phone's two sockets: SIP and RTP.
struct Endpoint {
    sip: UdpSocket,
    media: UdpSocket,
}

impl Endpoint {
    fn new() -> Endpoint {
        let bind = || {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
            s
        };
        Endpoint {
            sip: bind(),
            media: bind(),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sip.local_addr().expect("addr")
    }

    fn media_port(&self) -> u16 {
        self.media.local_addr().expect("addr").port()
    }
}

/// The next SIP message on `sock` that `wanted` accepts, skipping others (a 100 Trying, a
/// provisional response); after [`WAIT`], the messages skipped.
fn try_recv_sip(sock: &UdpSocket, wanted: impl Fn(&Message) -> bool) -> Result<Message, Vec<String>> {
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 65_536];
    let mut skipped = Vec::new();
    while Instant::now() < deadline {
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let m = Message::parse(buf[..n].to_vec()).expect("a parseable message");
        if wanted(&m) {
            return Ok(m);
        }
        skipped.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    Err(skipped)
}

/// [`try_recv_sip`] or fail.
fn recv_sip(sock: &UdpSocket, what: &str, wanted: impl Fn(&Message) -> bool) -> Message {
    try_recv_sip(sock, wanted)
        .unwrap_or_else(|skipped| panic!("no {what} within {WAIT:?}; got instead:\n{}", skipped.join("\n")))
}

/// What arrived on `sock` in the last moments, for a failure message.
fn drain(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_536];
    let mut out = String::new();
    while let Ok(n) = sock.recv(&mut buf) {
        out += &String::from_utf8_lossy(&buf[..n]);
        out += "\n";
    }
    out
}

/// The next RTP packet on `sock` with SSRC `ssrc` (late packets of earlier calls are skipped),
/// and where it came from.
fn recv_rtp(sock: &UdpSocket, ssrc: u32, what: &str) -> (Vec<u8>, SocketAddr) {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if n >= 12 && buf[8..12] == ssrc.to_be_bytes() {
            return (buf[..n].to_vec(), from);
        }
    }
    panic!("no RTP {what} (SSRC {ssrc}) within {WAIT:?}");
}

/// A PCMU RTP packet: 12 bytes of header and 160 of payload.
fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160u8).map(|i| i ^ 0x55));
    p
}

fn sdp(user: &str, port: u16) -> String {
    format!(
        "v=0\r\no={user} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// The c= address and m=audio port of an SDP body.
fn sdp_target(m: &Message) -> (String, u16) {
    let body = String::from_utf8_lossy(m.body()).into_owned();
    let c = body.lines().find_map(|l| l.strip_prefix("c=IN IP4 ")).map(str::trim);
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok());
    match (c, port) {
        (Some(c), Some(p)) => (c.to_owned(), p),
        _ => panic!("no c= and m=audio in:\n{body}"),
    }
}

/// A response to `req` (RFC 3261 §8.2.6.2) with `extra` header lines and an optional SDP body.
fn reply(req: &Message, status: &str, to_tag: Option<&str>, extra: &str, body: Option<&str>) -> String {
    let mut r = format!("SIP/2.0 {status}\r\n");
    for v in req.header_values("Via") {
        r += &format!("Via: {v}\r\n");
    }
    let to = req.header("To").expect("To");
    let to = match to_tag {
        Some(t) if !to.contains(";tag=") => format!("{to};tag={t}"),
        _ => to.to_owned(),
    };
    r += &format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}",
        req.header("From").expect("From"),
        req.header("Call-ID").expect("Call-ID"),
        req.header("CSeq").expect("CSeq"),
    );
    match body {
        Some(b) => {
            r + &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
        }
        None => r + "Content-Length: 0\r\n\r\n",
    }
}

fn is_final(m: &Message, method: &str) -> bool {
    m.status_code().is_some_and(|c| c >= 200) && m.cseq().is_ok_and(|c| c.method.as_str() == method)
}

fn is_request(m: &Message, method: &str, call_id: &str) -> bool {
    m.method().is_some_and(|x| x.as_str() == method) && m.call_id().is_ok_and(|c| c == call_id)
}

/// An answered call, as the phones know it.
struct Dialog {
    n: u32,
    call_id: String,
    /// The Record-Route of the proxy, the route set of both sides.
    route: String,
    /// The callee's Contact URI: the caller's remote target.
    callee_contact: String,
    /// The relay ports the caller and the callee were told to send to.
    leg_a: u16,
    leg_b: u16,
}

/// The server, the two phones and the caller's call counter.
struct Rig {
    server: Server,
    caller: Endpoint,
    callee: Endpoint,
    next: u32,
}

/// How the callee answers an INVITE.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// 180, then 200 with SDP.
    Accept,
    /// 486 Busy Here.
    Busy,
    /// 180, then nothing until the caller cancels.
    RingOnly,
}

impl Rig {
    /// A fresh server with `rtp_ports` (and `extra` flags) that knows alice and bob; bob
    /// registered at the callee's socket.
    fn start(rtp_ports: &str, extra: &[&str]) -> Rig {
        let dir = TempDir::new("mediapool");
        support::add_user(dir.path(), ALICE.0, ALICE.1);
        support::add_user(dir.path(), BOB.0, BOB.1);
        // One caller places thousands of calls here: no per-user cap.
        let mut args = vec!["--rtp-ports", rtp_ports, "--max-calls-per-user", "0"];
        args.extend_from_slice(extra);
        let server = Server::start_in(dir, &args);
        let rig = Rig {
            server,
            caller: Endpoint::new(),
            callee: Endpoint::new(),
            next: 0,
        };
        rig.register_bob();
        rig
    }

    fn register_bob(&self) {
        let sock = udp_client();
        let local = sock.local_addr().expect("local");
        let contact = self.callee.addr();
        let register = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-reg{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:bob@{DOMAIN}>;tag=reg\r\nTo: <sip:bob@{DOMAIN}>\r\n\
                 Call-ID: reg-bob@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:bob@{contact}>\r\n\
                 Expires: 3600\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        };
        let challenge = udp_transaction(&sock, self.server.udp, &register(1, ""));
        assert_eq!(challenge.status_code(), Some(401));
        let auth = digest(
            &challenge,
            HeaderName::WwwAuthenticate,
            BOB,
            "REGISTER",
            &format!("sip:{DOMAIN}"),
        );
        let ok = udp_transaction(
            &sock,
            self.server.udp,
            &register(2, &format!("Authorization: {auth}\r\n")),
        );
        assert_eq!(ok.status_code(), Some(200), "{ok:?}");
    }

    /// One of alice's INVITEs for call `n`.
    fn invite(&self, n: u32, cseq: u32, auth: Option<&str>) -> String {
        let me = self.caller.addr();
        let body = sdp("alice", self.caller.media_port());
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "INVITE sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{n}-inv{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=a{n}\r\nTo: <sip:bob@{DOMAIN}>\r\n\
             Call-ID: pool-{n}@test\r\nCSeq: {cseq} INVITE\r\nContact: <sip:alice@{me}>\r\n{auth}\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// The ACK for a non-2xx final response to alice's INVITE `cseq` of call `n` (same branch).
    fn ack_failure(&self, n: u32, cseq: u32, resp: &Message) {
        let me = self.caller.addr();
        let ack = format!(
            "ACK sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{n}-inv{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=a{n}\r\nTo: {}\r\n\
             Call-ID: pool-{n}@test\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            resp.header("To").expect("To")
        );
        self.send_caller(&ack);
    }

    fn send_caller(&self, msg: &str) {
        self.caller.sip.send_to(msg.as_bytes(), self.server.udp).expect("send");
    }

    fn send_callee(&self, msg: &str) {
        self.callee.sip.send_to(msg.as_bytes(), self.server.udp).expect("send");
    }

    /// INVITE → 407 → ACK → INVITE with alice's digest; returns the call's number. The
    /// authenticated INVITE is on its way.
    fn dial(&mut self) -> u32 {
        self.next += 1;
        let n = self.next;
        self.send_caller(&self.invite(n, 1, None));
        let challenge = recv_sip(&self.caller.sip, "407", |m| is_final(m, "INVITE"));
        assert_eq!(challenge.status_code(), Some(407), "call {n}: {challenge:?}");
        self.ack_failure(n, 1, &challenge);
        let auth = digest(
            &challenge,
            HeaderName::ProxyAuthenticate,
            ALICE,
            "INVITE",
            &format!("sip:bob@{DOMAIN}"),
        );
        self.send_caller(&self.invite(n, 2, Some(&auth)));
        n
    }

    /// The callee takes call `n`'s INVITE and answers as told; returns the INVITE.
    fn answer(&self, n: u32, how: Answer) -> Message {
        let call_id = format!("pool-{n}@test");
        let inv = try_recv_sip(&self.callee.sip, |m| is_request(m, "INVITE", &call_id)).unwrap_or_else(|skipped| {
            panic!(
                "call {n}: no INVITE at the callee within {WAIT:?}; it got:\n{}\nthe caller got:\n{}",
                skipped.join("\n"),
                drain(&self.caller.sip)
            )
        });
        let tag = format!("b{n}");
        let mut rr = String::new();
        for v in inv.header_values("Record-Route") {
            rr += &format!("Record-Route: {v}\r\n");
        }
        let contact = format!("{rr}Contact: <sip:bob@{}>\r\n", self.callee.addr());
        if how == Answer::Busy {
            self.send_callee(&reply(&inv, "486 Busy Here", Some(&tag), "", None));
            return inv;
        }
        self.send_callee(&reply(&inv, "180 Ringing", Some(&tag), &contact, None));
        if how == Answer::Accept {
            let body = sdp("bob", self.callee.media_port());
            self.send_callee(&reply(&inv, "200 OK", Some(&tag), &contact, Some(&body)));
        }
        inv
    }

    /// A whole call setup: dial, answer, 200, ACK (which reaches the callee), one RTP packet
    /// each way through the relay. The call stays up.
    fn connect(&mut self, range: (u16, u16)) -> Dialog {
        let n = self.dial();
        let inv = self.answer(n, Answer::Accept);
        let (ip_b, leg_b) = sdp_target(&inv);
        let ok = recv_sip(&self.caller.sip, "the 200 for the INVITE", |m| is_final(m, "INVITE"));
        assert_eq!(ok.status_code(), Some(200), "call {n}: {ok:?}");
        let (ip_a, leg_a) = sdp_target(&ok);
        for (ip, port) in [(&ip_a, leg_a), (&ip_b, leg_b)] {
            assert_eq!(ip, "127.0.0.1", "call {n}");
            assert!(
                (range.0..=range.1).contains(&port),
                "call {n}: port {port} outside {range:?}"
            );
        }
        let route = ok.header("Record-Route").expect("Record-Route").to_owned();
        let callee_contact = ok
            .header("Contact")
            .expect("Contact")
            .trim_matches(|c| c == '<' || c == '>')
            .to_owned();
        let d = Dialog {
            n,
            call_id: format!("pool-{n}@test"),
            route,
            callee_contact,
            leg_a,
            leg_b,
        };
        self.send_caller(&self.in_dialog_from_caller(&d, "ACK", 2));
        recv_sip(&self.callee.sip, "the ACK at the callee", |m| {
            is_request(m, "ACK", &d.call_id)
        });
        self.media_both_ways(&d);
        d
    }

    /// One RTP packet from the caller to the callee and one back, through the relay.
    fn media_both_ways(&self, d: &Dialog) {
        let (a, b) = (2 * d.n, 2 * d.n + 1);
        self.caller
            .media
            .send_to(&rtp(a, d.n as u16), ("127.0.0.1", d.leg_a))
            .expect("send RTP");
        let (got, from) = recv_rtp(&self.callee.media, a, "at the callee");
        assert_eq!(got, rtp(a, d.n as u16), "call {}", d.n);
        assert_eq!(from.port(), d.leg_b, "call {}: the relay sends from leg B", d.n);
        self.callee
            .media
            .send_to(&rtp(b, d.n as u16), ("127.0.0.1", d.leg_b))
            .expect("send RTP");
        let (got, from) = recv_rtp(&self.caller.media, b, "at the caller");
        assert_eq!(got, rtp(b, d.n as u16), "call {}", d.n);
        assert_eq!(from.port(), d.leg_a, "call {}: the relay sends from leg A", d.n);
    }

    /// An in-dialog request from the caller, loose-routed through the proxy.
    fn in_dialog_from_caller(&self, d: &Dialog, method: &str, cseq: u32) -> String {
        let me = self.caller.addr();
        format!(
            "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{}-{method}{cseq};rport\r\n\
             Route: {}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=a{}\r\n\
             To: <sip:bob@{DOMAIN}>;tag=b{}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            d.callee_contact, d.n, d.route, d.n, d.n, d.call_id
        )
    }

    /// Hangs up: BYE from the caller (or the callee), 200 from the other side.
    fn hang_up(&self, d: &Dialog, by_caller: bool) {
        let (from, to) = if by_caller {
            self.send_caller(&self.in_dialog_from_caller(d, "BYE", 3));
            (&self.caller, &self.callee)
        } else {
            let me = self.callee.addr();
            let bye = format!(
                "BYE sip:alice@{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{}-cbye;rport\r\n\
                 Route: {}\r\nMax-Forwards: 70\r\nFrom: <sip:bob@{DOMAIN}>;tag=b{}\r\n\
                 To: <sip:alice@{DOMAIN}>;tag=a{}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
                self.caller.addr(),
                d.n,
                d.route,
                d.n,
                d.n,
                d.call_id
            );
            self.send_callee(&bye);
            (&self.callee, &self.caller)
        };
        let bye = recv_sip(&to.sip, "the BYE", |m| is_request(m, "BYE", &d.call_id));
        to.sip
            .send_to(reply(&bye, "200 OK", None, "", None).as_bytes(), self.server.udp)
            .expect("send");
        let ok = recv_sip(&from.sip, "the 200 for the BYE", |m| {
            is_final(m, "BYE") && m.call_id().is_ok_and(|c| c == d.call_id)
        });
        assert_eq!(ok.status_code(), Some(200), "call {}: {ok:?}", d.n);
    }

    /// A call the relay has no ports for: dialled, refused with 503 before the callee hears of
    /// it, the 503 acknowledged.
    fn refused_for_lack_of_ports(&mut self) {
        let n = self.dial();
        let resp = recv_sip(&self.caller.sip, "a final response", |m| is_final(m, "INVITE"));
        assert_eq!(resp.status_code(), Some(503), "call {n}: {resp:?}");
        assert!(resp.header("Retry-After").is_some(), "call {n}: {resp:?}");
        self.ack_failure(n, 2, &resp);
        // The callee never heard of it.
        let call_id = format!("pool-{n}@test");
        let mut buf = vec![0u8; 65_536];
        while let Ok(len) = self.callee.sip.recv(&mut buf) {
            let m = Message::parse(buf[..len].to_vec()).expect("parseable");
            assert!(m.call_id().ok() != Some(call_id.as_str()), "the callee got {m:?}");
        }
    }

    /// The caller's final response to its INVITE of call `n`, which must be `code`; ACKed.
    fn caller_gets(&self, n: u32, code: u16) {
        let resp = recv_sip(&self.caller.sip, "a final response", |m| is_final(m, "INVITE"));
        assert_eq!(resp.status_code(), Some(code), "call {n}: {resp:?}");
        self.ack_failure(n, 2, &resp);
    }

    /// The callee takes the CANCEL of call `n` (whose INVITE was `inv`): 200 for it, 487 for the
    /// INVITE, then the proxy's ACK.
    fn callee_cancelled(&self, n: u32, inv: &Message) {
        let call_id = format!("pool-{n}@test");
        let cancel = recv_sip(&self.callee.sip, "the CANCEL", |m| is_request(m, "CANCEL", &call_id));
        self.send_callee(&reply(&cancel, "200 OK", None, "", None));
        self.send_callee(&reply(inv, "487 Request Terminated", Some(&format!("b{n}")), "", None));
        recv_sip(&self.callee.sip, "the ACK for the 487", |m| {
            is_request(m, "ACK", &call_id)
        });
    }

    /// A call the callee refuses with 486.
    fn busy(&mut self) -> u32 {
        let n = self.dial();
        self.answer(n, Answer::Busy);
        let call_id = format!("pool-{n}@test");
        recv_sip(&self.callee.sip, "the ACK for the 486", |m| {
            is_request(m, "ACK", &call_id)
        });
        self.caller_gets(n, 486);
        n
    }

    /// A call the caller cancels while it rings.
    fn cancelled(&mut self) -> u32 {
        let n = self.dial();
        let inv = self.answer(n, Answer::RingOnly);
        recv_sip(&self.caller.sip, "the 180", |m| m.status_code() == Some(180));
        let me = self.caller.addr();
        self.send_caller(&format!(
            "CANCEL sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{n}-inv2;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=a{n}\r\nTo: <sip:bob@{DOMAIN}>\r\n\
             Call-ID: pool-{n}@test\r\nCSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n"
        ));
        recv_sip(&self.caller.sip, "the 200 for the CANCEL", |m| is_final(m, "CANCEL"));
        self.callee_cancelled(n, &inv);
        self.caller_gets(n, 487);
        n
    }

    /// A call nobody answers: the proxy cancels it at the ring timeout and the caller gets 480.
    fn unanswered(&mut self) -> u32 {
        let n = self.dial();
        let inv = self.answer(n, Answer::RingOnly);
        self.callee_cancelled(n, &inv);
        self.caller_gets(n, 480);
        n
    }

    /// An answered call whose media stops: the server sends BYE both ways at the media timeout.
    fn media_stops(&mut self, range: (u16, u16)) -> u32 {
        let d = self.connect(range);
        for phone in [&self.caller, &self.callee] {
            let deadline = Instant::now() + Duration::from_secs(10);
            let bye = loop {
                let mut buf = vec![0u8; 65_536];
                if let Ok(n) = phone.sip.recv(&mut buf) {
                    let m = Message::parse(buf[..n].to_vec()).expect("parseable");
                    if is_request(&m, "BYE", &d.call_id) {
                        break m;
                    }
                }
                assert!(Instant::now() < deadline, "call {}: no BYE from the server", d.n);
            };
            phone
                .sip
                .send_to(reply(&bye, "200 OK", None, "", None).as_bytes(), self.server.udp)
                .expect("send");
        }
        d.n
    }

    /// Every port of `range` can be bound here: the server holds none of them.
    fn assert_no_port_held(&self, range: (u16, u16)) {
        let held: Vec<u16> = (range.0..=range.1)
            .filter(|p| UdpSocket::bind(("127.0.0.1", *p)).is_err())
            .collect();
        assert!(held.is_empty(), "ports still bound after every call ended: {held:?}");
    }

    /// The call records, once there are `n` (waiting up to 10 s for the writer).
    fn records(&self, n: usize) -> Vec<CallRecord> {
        let store = store::SqliteStore::open_in(self.server.dir.path()).expect("open the store");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let records = RecordStore::list_records(&store, 0, u64::MAX, n + 100).expect("list records");
            if records.len() >= n || Instant::now() > deadline {
                assert_eq!(records.len(), n, "call records");
                return records;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The credentials answering the MD5 challenge in `challenge`'s `header`.
fn digest(challenge: &Message, header: HeaderName, (user, password): (&str, &str), method: &str, uri: &str) -> String {
    let chosen = challenge
        .challenges(header)
        .map(|c| c.expect("challenge"))
        .find(|c| c.params.get("algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5")))
        .expect("an MD5 challenge");
    let nonce = chosen.params.get("nonce").expect("nonce").into_owned();
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

/// 5,000 sequential calls on a pool of 25 streams, then the whole pool at once.
#[test]
fn five_thousand_calls_leave_the_pool_full() {
    const CALLS: u32 = 5_000;
    const RANGE: (u16, u16) = (7000, 7099);
    /// Even ports with their odd neighbour in range: 50 RTP/RTCP pairs, two per stream.
    const STREAMS: u32 = 25;
    let mut rig = Rig::start(&format!("{}-{}", RANGE.0, RANGE.1), &[]);

    let started = Instant::now();
    for i in 0..CALLS {
        let d = rig.connect(RANGE);
        rig.hang_up(&d, i % 2 == 0);
    }
    let took = started.elapsed();
    eprintln!(
        "{CALLS} calls in {took:?} ({:.0} calls/s)",
        f64::from(CALLS) / took.as_secs_f64()
    );
    rig.assert_no_port_held(RANGE);

    // Every stream of the pool at once, then one too many.
    let held: Vec<Dialog> = (0..STREAMS).map(|_| rig.connect(RANGE)).collect();
    rig.refused_for_lack_of_ports();
    for d in &held {
        rig.hang_up(d, true);
    }
    rig.assert_no_port_held(RANGE);
    let last = rig.connect(RANGE);
    rig.hang_up(&last, false);

    let records = rig.records((CALLS + STREAMS + 2) as usize);
    let mut answered = 0;
    for r in &records {
        if r.status == 503 {
            assert_eq!(r.disposition, Disposition::Failed, "{r:#?}");
            continue;
        }
        answered += 1;
        let n: u32 = r
            .call_id
            .strip_prefix("pool-")
            .and_then(|s| s.strip_suffix("@test"))
            .and_then(|s| s.parse().ok())
            .expect("one of ours");
        assert_eq!(r.disposition, Disposition::Answered, "{r:#?}");
        assert_eq!(r.status, 200, "{r:#?}");
        let by = if n <= CALLS && n % 2 == 1 || (CALLS < n && n <= CALLS + STREAMS) {
            "caller"
        } else {
            "callee"
        };
        assert_eq!(r.hangup.as_deref(), Some(by), "{r:#?}");
        for m in [&r.caller_media, &r.callee_media] {
            assert_eq!(
                (m.codec.as_deref(), m.packets, m.bytes),
                (Some("PCMU"), 1, 172),
                "{r:#?}"
            );
        }
    }
    assert_eq!(answered, CALLS + STREAMS + 1);
    eprintln!("whole test: {:?}", started.elapsed());
}

/// Calls that end without a conversation, or by the server, on a pool of one stream: each kind
/// twice, so the second finds ports only if the first gave them back, then an answered call.
#[test]
fn refused_cancelled_and_timed_out_calls_give_their_ports_back() {
    const RANGE: (u16, u16) = (7200, 7203);
    let mut rig = Rig::start(
        &format!("{}-{}", RANGE.0, RANGE.1),
        &["--ring-timeout", "1", "--media-timeout", "1"],
    );
    let started = Instant::now();
    let mut expected = Vec::new();
    for _round in 0..2 {
        expected.push((rig.busy(), Disposition::Busy, 486, None));
        expected.push((rig.cancelled(), Disposition::Cancelled, 487, None));
        expected.push((rig.unanswered(), Disposition::NoAnswer, 480, None));
        expected.push((
            rig.media_stops(RANGE),
            Disposition::Answered,
            200,
            Some("media-timeout"),
        ));
    }
    let last = rig.connect(RANGE);
    rig.hang_up(&last, true);
    expected.push((last.n, Disposition::Answered, 200, Some("caller")));
    rig.assert_no_port_held(RANGE);
    eprintln!("{} calls in {:?}", expected.len(), started.elapsed());

    let records = rig.records(expected.len());
    for (n, disposition, status, hangup) in expected {
        let call_id = format!("pool-{n}@test");
        let r = records.iter().find(|r| r.call_id == call_id).expect("a record");
        assert_eq!(
            (r.disposition, r.status, r.hangup.as_deref()),
            (disposition, status, hangup),
            "{r:#?}"
        );
    }
}
