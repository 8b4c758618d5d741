//! The relay over loopback: phones are UDP sockets on 127.0.0.1 (and 127.0.0.2 for strangers).
//! Every test uses its own port range, below the ephemeral ports (32768+) the phones get, so they
//! run in parallel; every wait is bounded.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::thread::sleep;
use std::time::{Duration, Instant};

use media::{Leg, MediaConfig, MediaError, MediaRelay, StreamId};

const WAIT: Duration = Duration::from_secs(2);
const QUIET: Duration = Duration::from_millis(150);

fn relay(lo: u16, hi: u16, timeout: Duration) -> MediaRelay {
    MediaRelay::start(MediaConfig {
        address: "127.0.0.1".parse().expect("ip"),
        ports: (lo, hi),
        media_timeout: timeout,
        threads: 2,
    })
    .expect("relay starts")
}

fn phone(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).expect("bind phone");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("local addr")
}

fn at(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An RR with one report block, then an SDES chunk, as RFC 3550 §6.1 compounds them.
fn rr(reporter: u32, source: u32, fraction: u8, lost: u32, jitter: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&reporter.to_be_bytes());
    p.extend_from_slice(&source.to_be_bytes());
    p.extend_from_slice(&((u32::from(fraction) << 24) | (lost & 0xff_ffff)).to_be_bytes());
    p.extend_from_slice(&500u32.to_be_bytes());
    p.extend_from_slice(&jitter.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&[0x81, 202, 0, 2]);
    p.extend_from_slice(&reporter.to_be_bytes());
    p.extend_from_slice(&[1, 2, b'p', b'a']);
    p
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("a relayed packet within 2 s");
    (buf[..n].to_vec(), from)
}

fn nothing(s: &UdpSocket) -> bool {
    s.set_read_timeout(Some(QUIET)).expect("timeout");
    let mut buf = [0u8; 2048];
    let r = s.recv_from(&mut buf);
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    matches!(r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
}

/// Polls until `f` holds or 2 s pass (counters are updated by the relay thread).
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if f() {
            return true;
        }
        sleep(Duration::from_millis(5));
    }
    f()
}

/// A stream with both remotes set to two phones; returns (stream, phone A, phone B, A port, B port).
fn call(r: &MediaRelay, name: &str) -> (StreamId, UdpSocket, UdpSocket, u16, u16) {
    let s = r.allocate(name).expect("allocate");
    let (pa, pb) = r.ports(s).expect("ports");
    let (a, b) = (phone("127.0.0.1"), phone("127.0.0.1"));
    r.set_remote(s, Leg::A, addr(&a), None).expect("remote A");
    r.set_remote(s, Leg::B, addr(&b), None).expect("remote B");
    (s, a, b, pa, pb)
}

#[test]
fn relays_rtp_both_ways_payload_intact() {
    let r = relay(21000, 21019, Duration::from_secs(60));
    let (s, a, b, pa, pb) = call(&r, "both-ways");
    for seq in 0..5u16 {
        let p = rtp(seq, &[seq as u8; 160]);
        a.send_to(&p, at(pa)).expect("send A");
        let (got, from) = recv(&b);
        assert_eq!(got, p);
        assert_eq!(from, at(pb), "B hears the relay's B port");
        let q = rtp(1000 + seq, b"from B");
        b.send_to(&q, at(pb)).expect("send B");
        let (got, from) = recv(&a);
        assert_eq!(got, q);
        assert_eq!(from, at(pa), "A hears the relay's A port");
    }
    let st = r.stats(s).expect("stats");
    assert_eq!(st.call, "both-ways");
    assert_eq!(
        (st.a.rtp_packets, st.a.rtp_bytes, st.a.forwarded_packets),
        (5, 5 * 172, 5)
    );
    assert_eq!(
        (st.b.rtp_packets, st.b.rtp_bytes, st.b.forwarded_packets),
        (5, 5 * 18, 5)
    );
    assert_eq!(st.a.latched_rtp, Some(addr(&a)));
    assert_eq!(st.b.latched_rtp, Some(addr(&b)));
    assert_eq!(st.a.stolen_dropped + st.b.stolen_dropped, 0);
    assert!(st.idle.is_some_and(|d| d < Duration::from_secs(2)));
}

#[test]
fn bursts_are_relayed_in_order() {
    let r = relay(21020, 21039, Duration::from_secs(60));
    let (s, a, b, pa, _) = call(&r, "burst");
    for seq in 0..100u16 {
        a.send_to(&rtp(seq, &[7; 160]), at(pa)).expect("send");
    }
    for seq in 0..100u16 {
        let (got, _) = recv(&b);
        assert_eq!(u16::from_be_bytes([got[2], got[3]]), seq);
    }
    assert!(eventually(|| r
        .stats(s)
        .is_some_and(|st| st.a.forwarded_packets == 100)));
}

#[test]
fn latches_to_the_real_source_not_the_sdp_port() {
    let r = relay(21040, 21059, Duration::from_secs(60));
    let s = r.allocate("nat-port").expect("allocate");
    let (pa, pb) = r.ports(s).expect("ports");
    // A's SDP names `decoy`; A's packets really come from `a` (a NAT rewrote the port).
    let (decoy, a, b) = (phone("127.0.0.1"), phone("127.0.0.1"), phone("127.0.0.1"));
    r.set_remote(s, Leg::A, addr(&decoy), None).expect("remote A");
    r.set_remote(s, Leg::B, addr(&b), None).expect("remote B");

    b.send_to(&rtp(1, b"before latch"), at(pb)).expect("send");
    assert_eq!(
        recv(&decoy).0,
        rtp(1, b"before latch"),
        "unlatched: toward the SDP address"
    );

    a.send_to(&rtp(1, b"hello"), at(pa)).expect("send");
    assert_eq!(recv(&b).0, rtp(1, b"hello"));
    b.send_to(&rtp(2, b"after latch"), at(pb)).expect("send");
    assert_eq!(recv(&a).0, rtp(2, b"after latch"), "latched: toward the real source");
    assert!(nothing(&decoy));
    assert_eq!(r.stats(s).expect("stats").a.latched_rtp, Some(addr(&a)));

    // A session refresh repeating the SDP: media keeps going to the real source meanwhile...
    r.set_remote(s, Leg::A, addr(&decoy), None).expect("refresh");
    assert_eq!(r.stats(s).expect("stats").a.latched_rtp, None);
    b.send_to(&rtp(3, b"during refresh"), at(pb)).expect("send");
    assert_eq!(recv(&a).0, rtp(3, b"during refresh"));
    // ...and the leg latches again on A's next packet.
    a.send_to(&rtp(2, b"again"), at(pa)).expect("send");
    assert_eq!(recv(&b).0, rtp(2, b"again"));
    assert_eq!(r.stats(s).expect("stats").a.latched_rtp, Some(addr(&a)));
    assert!(nothing(&decoy));
}

#[test]
fn third_party_is_dropped_after_latching_until_a_reinvite() {
    let r = relay(21060, 21079, Duration::from_secs(60));
    let (s, a, b, pa, pb) = call(&r, "steal");
    a.send_to(&rtp(1, b"legit"), at(pa)).expect("send");
    assert_eq!(recv(&b).0, rtp(1, b"legit"));

    let thief = phone("127.0.0.1");
    for seq in 0..3 {
        thief.send_to(&rtp(seq, b"injected"), at(pa)).expect("send");
    }
    assert!(nothing(&b), "the thief's packets must not reach B");
    assert!(eventually(|| r.stats(s).is_some_and(|st| st.a.stolen_dropped == 3)));
    // B's media keeps going to the real A, not to the thief.
    b.send_to(&rtp(9, b"to A"), at(pb)).expect("send");
    assert_eq!(recv(&a).0, rtp(9, b"to A"));
    assert!(nothing(&thief));

    // A re-INVITE moves A to a new socket: the leg latches anew to the first acceptable source.
    let a2 = phone("127.0.0.1");
    r.set_remote(s, Leg::A, addr(&a2), None).expect("re-INVITE");
    a2.send_to(&rtp(2, b"moved"), at(pa)).expect("send");
    assert_eq!(recv(&b).0, rtp(2, b"moved"));
    a.send_to(&rtp(3, b"old socket"), at(pa)).expect("send");
    assert!(nothing(&b));
    assert_eq!(r.stats(s).expect("stats").a.latched_rtp, Some(addr(&a2)));
}

#[test]
fn public_sdp_latches_only_its_own_ip_private_sdp_the_first_source() {
    let r = relay(21080, 21099, Duration::from_secs(60));
    let (s, _a, b, pa, pb) = call(&r, "rules");
    // The SDP says 127.0.0.1 (as routable as the relay itself): a stranger on 127.0.0.2 cannot latch.
    let stranger = phone("127.0.0.2");
    stranger.send_to(&rtp(1, b"x"), at(pa)).expect("send");
    assert!(nothing(&b));
    assert!(eventually(|| r
        .stats(s)
        .is_some_and(|st| st.a.stolen_dropped == 1 && st.a.latched_rtp.is_none())));

    // The SDP says 10.1.2.3 (behind a NAT): the first source within the window latches.
    r.set_remote(s, Leg::A, "10.1.2.3:4000".parse().expect("addr"), None)
        .expect("remote");
    let natted = phone("127.0.0.2");
    natted.send_to(&rtp(1, b"natted"), at(pa)).expect("send");
    assert_eq!(recv(&b).0, rtp(1, b"natted"));
    b.send_to(&rtp(2, b"back"), at(pb)).expect("send");
    assert_eq!(recv(&natted).0, rtp(2, b"back"));
    stranger.send_to(&rtp(3, b"late"), at(pa)).expect("send");
    assert!(nothing(&b), "once latched, the window no longer matters");
}

#[test]
fn nothing_flows_toward_a_leg_without_remote() {
    let r = relay(21100, 21119, Duration::from_secs(60));
    let s = r.allocate("early").expect("allocate");
    let (pa, pb) = r.ports(s).expect("ports");
    let (a, b) = (phone("127.0.0.1"), phone("127.0.0.1"));
    b.send_to(&rtp(1, b"too early"), at(pb)).expect("send");
    r.set_remote(s, Leg::A, addr(&a), None).expect("remote A");
    a.send_to(&rtp(1, b"nowhere"), at(pa)).expect("send");
    assert!(nothing(&a) && nothing(&b));
    assert!(eventually(|| r.stats(s).is_some_and(
        |st| st.b.unexpected_dropped == 1 && st.a.undeliverable_dropped == 1
    )));
    let st = r.stats(s).expect("stats");
    assert_eq!(st.idle, None, "the media timeout waits for both remotes");
    assert_eq!(st.b.latched_rtp, None, "no latching before the remote is known");
}

#[test]
fn rtcp_is_relayed_on_port_plus_one_and_reports_are_read() {
    let r = relay(21120, 21139, Duration::from_secs(60));
    let s = r.allocate("rtcp").expect("allocate");
    let (pa, pb) = r.ports(s).expect("ports");
    let (a, a_rtcp, b, b_rtcp) = (
        phone("127.0.0.1"),
        phone("127.0.0.1"),
        phone("127.0.0.1"),
        phone("127.0.0.1"),
    );
    r.set_remote(s, Leg::A, addr(&a), Some(addr(&a_rtcp)))
        .expect("remote A");
    r.set_remote(s, Leg::B, addr(&b), Some(addr(&b_rtcp)))
        .expect("remote B");

    let report = rr(0xaaaa, 0xbbbb, 26, 42, 160);
    a_rtcp.send_to(&report, at(pa + 1)).expect("send");
    let (got, from) = recv(&b_rtcp);
    assert_eq!(got, report);
    assert_eq!(from, at(pb + 1));

    let back = rr(0xbbbb, 0xaaaa, 0, 0, 8);
    b_rtcp.send_to(&back, at(pb + 1)).expect("send");
    assert_eq!(recv(&a_rtcp), (back, at(pa + 1)));

    // rtcp-mux (RFC 5761): an RR on the RTP port is relayed there and read too.
    let muxed = rr(0xaaaa, 0xbbbb, 128, 7, 99);
    a.send_to(&muxed, at(pa)).expect("send");
    assert_eq!(recv(&b).0, muxed);

    assert!(eventually(|| r.stats(s).is_some_and(|st| st.a.reports == 2)));
    let st = r.stats(s).expect("stats");
    let ra = st.a.report.expect("A's report");
    assert_eq!((ra.reporter_ssrc, ra.source_ssrc), (0xaaaa, 0xbbbb));
    assert_eq!((ra.fraction_lost, ra.cumulative_lost, ra.jitter), (128, 7, 99));
    let rb = st.b.report.expect("B's report");
    assert_eq!((rb.fraction_lost, rb.cumulative_lost, rb.jitter), (0, 0, 8));
    assert_eq!((st.a.rtcp_packets, st.a.rtp_packets, st.b.rtcp_packets), (2, 0, 1));
    assert_eq!(st.a.latched_rtcp, Some(addr(&a_rtcp)));
    assert_eq!(st.a.remote_rtcp, Some(addr(&a_rtcp)));
}

#[test]
fn rtcp_defaults_to_rtp_port_plus_one() {
    let r = relay(21140, 21159, Duration::from_secs(60));
    let s = r.allocate("rtcp-default").expect("allocate");
    let (pa, _) = r.ports(s).expect("ports");
    // B's phone: RTP on an even port and RTCP on the next one.
    let (b, b_rtcp) = (5..200)
        .find_map(|i| {
            let p = 21400 + 2 * i;
            Some((
                UdpSocket::bind(("127.0.0.1", p)).ok()?,
                UdpSocket::bind(("127.0.0.1", p + 1)).ok()?,
            ))
        })
        .expect("a free even/odd pair");
    b_rtcp.set_read_timeout(Some(WAIT)).expect("timeout");
    let a_rtcp = phone("127.0.0.1");
    r.set_remote(s, Leg::A, "127.0.0.1:9".parse().expect("addr"), None)
        .expect("remote A");
    r.set_remote(s, Leg::B, addr(&b), None).expect("remote B");
    let report = rr(1, 2, 3, 4, 5);
    a_rtcp.send_to(&report, at(pa + 1)).expect("send");
    assert_eq!(recv(&b_rtcp).0, report);
    assert_eq!(r.stats(s).expect("stats").b.remote_rtcp, Some(addr(&b_rtcp)));
}

#[test]
fn media_timeout_is_reported_once_per_silence() {
    let timeout = Duration::from_millis(300);
    let r = relay(21160, 21199, timeout);
    let (_s1, a1, b1, pa1, _) = call(&r, "silent");
    let (_s2, a2, b2, pa2, _) = call(&r, "talking");
    let ringing = r.allocate("ringing").expect("allocate");
    r.set_remote(ringing, Leg::A, "127.0.0.1:9".parse().expect("addr"), None)
        .expect("remote");

    a1.send_to(&rtp(1, b"one packet"), at(pa1)).expect("send");
    assert_eq!(recv(&b1).0, rtp(1, b"one packet"));
    let start = Instant::now();
    let mut reported = Vec::new();
    while start.elapsed() < Duration::from_millis(900) {
        a2.send_to(&rtp(1, b"still here"), at(pa2)).expect("send");
        let _ = recv(&b2);
        reported.extend(r.timed_out());
        sleep(Duration::from_millis(20));
    }
    assert_eq!(reported, ["silent"], "reported once; talking and ringing calls never");

    // Media again re-arms it.
    a1.send_to(&rtp(2, b"back"), at(pa1)).expect("send");
    let _ = recv(&b1);
    assert!(eventually(|| r.timed_out().is_empty()));
    // Now nobody talks: both established calls time out (once each), the ringing one still not.
    let mut later = Vec::new();
    assert!(eventually(|| {
        later.extend(r.timed_out());
        later.len() >= 2
    }));
    later.sort();
    assert_eq!(later, ["silent", "talking"]);
    assert_eq!(r.release_call("silent"), 1);
    assert_eq!(r.release_call("talking"), 1);
    assert!(r.timed_out().is_empty());
}

#[test]
fn ports_are_even_in_range_and_exhaust_cleanly() {
    let (lo, hi) = (21201, 21222); // even RTP ports 21202..=21220: 10 pairs, 5 streams
    let r = relay(lo, hi, Duration::from_secs(60));
    assert_eq!(r.pool_size(), 5);
    let mut streams = Vec::new();
    loop {
        match r.allocate("many") {
            Ok(s) => streams.push(s),
            Err(MediaError::PortsExhausted) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // Pairs another program holds in the range are skipped, so at most the pool's size.
    assert!(!streams.is_empty() && streams.len() <= 5);
    assert_eq!(r.pool_free(), 0);
    let mut seen = Vec::new();
    for s in &streams {
        let (a, b) = r.ports(*s).expect("ports");
        for p in [a, b] {
            assert_eq!(p % 2, 0);
            assert!(p > lo && p < hi, "{p} and {} within {lo}-{hi}", p + 1);
            seen.push(p);
        }
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), streams.len() * 2, "no port handed out twice");
    assert_eq!(r.streams("many").len(), streams.len());
    assert_eq!(r.release_call("many"), streams.len());
    assert_eq!(r.pool_free(), r.pool_size());
    assert!(streams.iter().all(|s| r.ports(*s).is_none() && r.stats(*s).is_none()));
    assert!(!r.release(streams[0]), "stale ids are harmless");
    // The ports are closed: the OS lets anyone bind them again.
    for p in seen {
        drop(UdpSocket::bind(("127.0.0.1", p)).expect("released port is free"));
    }
}

#[test]
fn five_thousand_allocate_release_cycles_leave_the_pool_full() {
    let r = relay(21240, 21279, Duration::from_secs(60));
    let full = r.pool_size();
    assert_eq!(r.pool_free(), full);
    let mut live: Vec<StreamId> = Vec::new();
    for i in 0..5000usize {
        // Up to three streams live at a time, released in a shuffled order.
        let s = r.allocate(&format!("cycle-{}", i % 7)).expect("allocate");
        let (pa, pb) = r.ports(s).expect("ports");
        assert!(pa % 2 == 0 && pb % 2 == 0 && (21240..21279).contains(&pa) && (21240..21279).contains(&pb));
        live.push(s);
        if live.len() > 2 {
            let victim = live.swap_remove(i % live.len());
            assert!(r.release(victim));
        }
    }
    for s in live {
        assert!(r.release(s));
    }
    assert_eq!(r.pool_free(), full);
    assert_eq!(r.active_streams(), 0);
    for i in 0..7 {
        assert!(r.streams(&format!("cycle-{i}")).is_empty());
    }
}

#[test]
fn remotes_that_loop_into_the_relay_are_refused() {
    let r = relay(21280, 21299, Duration::from_secs(60));
    let s = r.allocate("loop").expect("allocate");
    let (pa, pb) = r.ports(s).expect("ports");
    assert!(matches!(
        r.set_remote(s, Leg::B, at(pa), None),
        Err(MediaError::InvalidRemote)
    ));
    assert!(matches!(
        r.set_remote(s, Leg::A, at(40000), Some(at(pb + 1))),
        Err(MediaError::InvalidRemote)
    ));
    assert!(r.release(s));
    assert!(matches!(
        r.set_remote(s, Leg::A, at(40000), None),
        Err(MediaError::UnknownStream)
    ));
}

#[test]
fn shutdown_releases_everything() {
    let r = relay(21300, 21319, Duration::from_secs(60));
    let (s, a, b, pa, _) = call(&r, "up");
    a.send_to(&rtp(1, b"x"), at(pa)).expect("send");
    let _ = recv(&b);
    let clone = r.clone();
    clone.shutdown();
    r.shutdown();
    assert_eq!(r.pool_free(), r.pool_size());
    assert!(r.stats(s).is_none());
    assert!(matches!(r.allocate("late"), Err(MediaError::ShutDown)));
    a.send_to(&rtp(2, b"y"), at(pa)).expect("send");
    assert!(nothing(&b));
}

#[test]
fn the_handle_is_shareable_across_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<MediaRelay>();
    fn plain<T: Send + Sync + Copy + Eq + std::hash::Hash + std::fmt::Display>() {}
    plain::<StreamId>();
}

/// SRTP terminated on both legs with a key per leg (RFC 3711): phone A sends SRTP under its key,
/// phone B receives SRTP under the relay's key for B, and back; SRTCP the same way; a packet
/// under a wrong key is dropped and counted. Then leg B turns plain: B gets plain RTP.
#[test]
fn srtp_is_decrypted_and_re_encrypted_per_leg() {
    use webrtc_srtp::context::Context;
    use webrtc_srtp::protection_profile::ProtectionProfile::Aes128CmHmacSha1_80 as SUITE;
    let ctx = |k: &media::SrtpKey| Context::new(&k[..16], &k[16..], SUITE, None, None).expect("context");
    let r = relay(21700, 21719, Duration::from_secs(60));
    let s = r.allocate("srtp").expect("allocate");
    let (pa, pb) = r.ports(s).expect("ports");
    let (a, b) = (phone("127.0.0.1"), phone("127.0.0.1"));
    // RTCP to the same sockets: one socket per phone.
    r.set_remote(s, Leg::A, addr(&a), Some(addr(&a))).expect("remote");
    r.set_remote(s, Leg::B, addr(&b), Some(addr(&b))).expect("remote");
    let keys: Vec<media::SrtpKey> = (0..4).map(|_| media::random_srtp_key().expect("key")).collect();
    let (a_sends, relay_to_a, b_sends, relay_to_b) = (keys[0], keys[1], keys[2], keys[3]);
    r.set_srtp(s, Leg::A, Some(a_sends), Some(relay_to_a)).expect("keys");
    r.set_srtp(s, Leg::B, Some(b_sends), Some(relay_to_b)).expect("keys");
    let (mut a_tx, mut a_rx) = (ctx(&a_sends), ctx(&relay_to_a));
    let (mut b_tx, mut b_rx) = (ctx(&b_sends), ctx(&relay_to_b));
    let mut buf = [0u8; 2048];
    for seq in 1..=20u16 {
        let plain = rtp(seq, &[seq as u8; 160]);
        a.send_to(&a_tx.encrypt_rtp(&plain).expect("encrypt"), at(pa))
            .expect("send");
        let n = b.recv(&mut buf).expect("B receives");
        assert_eq!(&b_rx.decrypt_rtp(&buf[..n]).expect("B decrypts")[..], &plain[..]);
        b.send_to(&b_tx.encrypt_rtp(&plain).expect("encrypt"), at(pb))
            .expect("send");
        let n = a.recv(&mut buf).expect("A receives");
        assert_eq!(&a_rx.decrypt_rtp(&buf[..n]).expect("A decrypts")[..], &plain[..]);
    }
    let report = rr(0xdead_beef, 0x1234, 12, 3, 80);
    a.send_to(&a_tx.encrypt_rtcp(&report).expect("encrypt"), at(pa + 1))
        .expect("send");
    let (n, _) = b.recv_from(&mut buf).expect("B receives SRTCP");
    assert_eq!(&b_rx.decrypt_rtcp(&buf[..n]).expect("B decrypts")[..], &report[..]);
    // Under a key nobody gave the relay: dropped.
    let mut stranger = ctx(&media::random_srtp_key().expect("key"));
    a.send_to(&stranger.encrypt_rtp(&rtp(21, b"x")).expect("encrypt"), at(pa))
        .expect("send");
    sleep(QUIET);
    let st = r.stats(s).expect("stats");
    assert_eq!(
        (st.a.rtp_packets, st.a.rtcp_packets, st.a.srtp_dropped),
        (20, 1, 1),
        "{st:#?}"
    );
    assert_eq!(
        st.a.report.map(|rep| rep.fraction_lost),
        Some(12),
        "read from the decrypted SRTCP"
    );
    assert!(st.a.srtp_rx && st.a.srtp_tx && st.b.srtp_rx && st.b.srtp_tx);
    // B turns to plain RTP: what A sends arrives decrypted.
    r.set_srtp(s, Leg::B, None, None).expect("keys");
    let plain = rtp(22, b"plain");
    a.send_to(&a_tx.encrypt_rtp(&plain).expect("encrypt"), at(pa))
        .expect("send");
    let n = b.recv(&mut buf).expect("B receives");
    assert_eq!(&buf[..n], &plain[..]);
    b.send_to(&rtp(23, b"back"), at(pb)).expect("send");
    let n = a.recv(&mut buf).expect("A receives");
    assert_eq!(
        &a_rx.decrypt_rtp(&buf[..n]).expect("A decrypts")[..],
        &rtp(23, b"back")[..]
    );
    r.release(s);
    assert!(matches!(
        r.set_srtp(s, Leg::A, None, None),
        Err(MediaError::UnknownStream)
    ));
}
