//! Parse cost of a typical REGISTER with Authorization and a typical INVITE with SDP, for this
//! crate and, side by side in the same run, for `rsip` (the most used Rust SIP parser).
//!
//! Two levels are measured for each parser:
//! - `parse`: the message is split into start line and headers (what every packet costs);
//! - `decide`: additionally the headers a registrar/proxy decides on are parsed into typed values
//!   (Via with branch, From/To with tags, Call-ID, CSeq, Max-Forwards, Contact, Authorization).
//!
//! Run: `cargo bench -p sip --bench parse`. The ratios are printed at the end.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use rsip::headers::{ToTypedHeader, UntypedHeader};
use rsip::message::HasHeaders;
use rsip::prelude::HeadersExt;
use sip::{HeaderName, Message};

const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-524287-1---7a2b1c3d4e5f6a7b;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1001@192.168.1.20:5060;rinstance=6f8d2e1a7c3b9d40;transport=UDP>;expires=3600\r\n\
To: <sip:1001@example.com>\r\n\
From: \"Alice\" <sip:1001@example.com>;tag=a73kszlfl\r\n\
Call-ID: NjM5ZTE4YzE0ZGY1YjQ2ZmE4NTc2NjBkMmQ5ZTM1MjQ\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Supported: replaces, outbound, path\r\n\
User-Agent: Zoiper rv2.10.20.5\r\n\
Authorization: Digest username=\"1001\",realm=\"example.com\",nonce=\"ZmQ3YjE5ZGM1ODYzNGE0Zjk3YjY1NmU1MDhlNzk1YjE=\",uri=\"sip:example.com\",response=\"6c4b2e0dcbb4d1b3a8fbcdb1b7c8f9e2\",cnonce=\"8f3bd5a1e0c1\",nc=00000001,qop=auth,algorithm=MD5\r\n\
Content-Length: 0\r\n\
\r\n";

const INVITE: &[u8] = b"INVITE sip:1002@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-524287-1---98f1c0a3b2d4e6f8;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1001@192.168.1.20:5060;transport=UDP>\r\n\
To: <sip:1002@example.com>\r\n\
From: \"Alice\" <sip:1001@example.com>;tag=d9e1f3a5\r\n\
Call-ID: YjQ2ZmE4NTc2NjBkMmQ5ZTM1MjQNjM5ZTE4YzE0ZGY1\r\n\
CSeq: 2 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Zoiper rv2.10.20.5\r\n\
Proxy-Authorization: Digest username=\"1001\",realm=\"example.com\",nonce=\"ZmQ3YjE5ZGM1ODYzNGE0Zjk3YjY1NmU1MDhlNzk1YjE=\",uri=\"sip:1002@example.com\",response=\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\",cnonce=\"1c2d3e4f\",nc=00000001,qop=auth,algorithm=MD5\r\n\
Content-Length: 310\r\n\
\r\n\
v=0\r\n\
o=Z 0 419211 IN IP4 192.168.1.20\r\n\
s=Z\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
m=audio 8000 RTP/AVP 106 9 98 101 0 8 3\r\n\
a=rtpmap:106 opus/48000/2\r\n\
a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1\r\n\
a=rtpmap:98 telephone-event/48000\r\n\
a=fmtp:98 0-16\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n";

fn ours_parse(buf: &'static [u8]) -> Message {
    Message::parse(Bytes::from_static(buf)).expect("valid")
}

/// Everything a registrar or proxy needs to decide on the message.
fn ours_decide(buf: &'static [u8], auth: HeaderName) -> usize {
    let m = ours_parse(buf);
    m.check_essentials().expect("valid");
    let via = m.via().expect("via");
    let mut n = via.branch().map_or(0, str::len) + usize::from(via.rport().is_some());
    n += m.from_header().expect("from").tag().map_or(0, str::len);
    n += m.to_header().expect("to").uri.host.len();
    n += m.call_id().expect("call-id").len();
    n += m.cseq().expect("cseq").seq as usize;
    n += usize::from(m.max_forwards().expect("mf").unwrap_or(70));
    for c in m.contacts() {
        n += c.expect("contact").expires().map_or(0, |e| e.unwrap_or(0) as usize);
    }
    for c in m.credentials(auth) {
        let d = c.expect("credentials").digest().expect("digest");
        n += d.response.len() + d.nonce.len() + d.username.len() + d.uri.len();
    }
    n
}

fn rsip_parse(buf: &[u8]) -> rsip::SipMessage {
    rsip::SipMessage::try_from(buf).expect("rsip parses")
}

fn rsip_decide(buf: &[u8]) -> usize {
    let rsip::SipMessage::Request(req) = rsip_parse(buf) else {
        unreachable!()
    };
    let via = req.via_header().expect("via").typed().expect("typed via");
    let mut n = via.branch().map_or(0, |b| b.to_string().len());
    n += req
        .from_header()
        .expect("from")
        .typed()
        .expect("from")
        .tag()
        .map_or(0, |t| t.to_string().len());
    n += req
        .to_header()
        .expect("to")
        .typed()
        .expect("to")
        .uri
        .host_with_port
        .to_string()
        .len();
    n += req.call_id_header().expect("call-id").value().len();
    n += req.cseq_header().expect("cseq").typed().expect("cseq").seq as usize;
    n += req.max_forwards_header().expect("mf").num().expect("mf") as usize;
    if let Ok(c) = req.contact_header() {
        n += c
            .typed()
            .expect("contact")
            .expires()
            .map_or(0, |e| e.seconds().unwrap_or(0) as usize);
    }
    for h in req.headers.iter() {
        match h {
            rsip::Header::Authorization(a) => {
                let d = a.typed().expect("auth");
                n += d.response.len() + d.nonce.len() + d.username.len() + d.uri.to_string().len();
            }
            rsip::Header::ProxyAuthorization(a) => {
                let d = a.typed().expect("auth").0;
                n += d.response.len() + d.nonce.len() + d.username.len() + d.uri.to_string().len();
            }
            _ => {}
        }
    }
    n
}

fn benches(c: &mut Criterion) {
    for (name, msg, auth) in [
        ("register", REGISTER, HeaderName::Authorization),
        ("invite_sdp", INVITE, HeaderName::ProxyAuthorization),
    ] {
        let mut g = c.benchmark_group(name);
        g.bench_function("switchboard/parse", |b| b.iter(|| ours_parse(black_box(msg))));
        g.bench_function("switchboard/decide", |b| b.iter(|| ours_decide(black_box(msg), auth)));
        g.bench_function("rsip/parse", |b| b.iter(|| rsip_parse(black_box(msg))));
        g.bench_function("rsip/decide", |b| b.iter(|| rsip_decide(black_box(msg))));
        g.finish();
    }
}

criterion_group! {
    name = group;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}

/// ns per call, measured directly for the summary table (criterion prints its own estimates).
fn ns_per_call(mut f: impl FnMut() -> usize) -> f64 {
    let mut sink = 0usize;
    for _ in 0..2_000 {
        sink = sink.wrapping_add(f());
    }
    let iters = 200_000;
    let start = Instant::now();
    for _ in 0..iters {
        sink = sink.wrapping_add(f());
    }
    black_box(sink);
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn summary() {
    println!("\nsummary (ns/message, lower is better; ratio = rsip / switchboard)");
    println!(
        "{:<12} {:<8} {:>12} {:>12} {:>8}",
        "message", "level", "switchboard", "rsip", "ratio"
    );
    for (name, msg, auth) in [
        ("register", REGISTER, HeaderName::Authorization),
        ("invite_sdp", INVITE, HeaderName::ProxyAuthorization),
    ] {
        let ours = ns_per_call(|| ours_parse(black_box(msg)).headers().count());
        let theirs = ns_per_call(|| rsip_parse(black_box(msg)).headers().iter().count());
        println!(
            "{name:<12} {:<8} {ours:>12.0} {theirs:>12.0} {:>7.1}x",
            "parse",
            theirs / ours
        );
        let ours = ns_per_call(|| ours_decide(black_box(msg), auth));
        let theirs = ns_per_call(|| rsip_decide(black_box(msg)));
        println!(
            "{name:<12} {:<8} {ours:>12.0} {theirs:>12.0} {:>7.1}x",
            "decide",
            theirs / ours
        );
    }
}

fn main() {
    // `cargo test --benches` runs this binary once with `--bench` absent: keep that quick.
    let benching = std::env::args().any(|a| a == "--bench");
    if !benching {
        assert!(ours_decide(REGISTER, HeaderName::Authorization) > 0);
        assert!(rsip_decide(REGISTER) > 0);
        assert!(ours_decide(INVITE, HeaderName::ProxyAuthorization) > 0);
        assert!(rsip_decide(INVITE) > 0);
        return;
    }
    group();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
