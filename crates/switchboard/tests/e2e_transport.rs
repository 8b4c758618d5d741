//! End-to-end tests against the real binary on loopback: OPTIONS over UDP, TCP and TLS;
//! retransmission absorption; Via stamping; malformed input; stream framing; keep-alives;
//! graceful shutdown; TLS certificate reload.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sip::{Frame, Limits, Message, StreamFramer};
use support::{Server, options, recv_message, udp_client, udp_transaction};

#[test]
fn options_over_udp_gets_200_with_capabilities_and_stamped_via() {
    let server = Server::start(&[]);
    let s = udp_client();
    let local = s.local_addr().expect("local");
    let resp = udp_transaction(&s, server.udp, &options("UDP", local, server.udp, "z9hG4bKudp1", ""));
    assert_eq!(resp.status_code(), Some(200));
    assert!(resp.header("Allow").is_some_and(|a| a.contains("OPTIONS")));
    assert_eq!(resp.header("Accept"), Some("application/sdp"));
    assert!(resp.header("Supported").is_some());
    assert!(resp.to_header().expect("to").tag().is_some());
    let via = resp.via().expect("via");
    assert_eq!(via.branch(), Some("z9hG4bKudp1"));
    assert_eq!(via.received(), Some("127.0.0.1"));
    assert_eq!(via.rport(), Some(Some(local.port())));
    assert_eq!(resp.call_id(), Ok("z9hG4bKudp1@test"));
}

#[test]
fn udp_retransmissions_are_one_transaction_with_identical_responses() {
    let server = Server::start(&[]);
    let s = udp_client();
    let req = options("UDP", s.local_addr().expect("local"), server.udp, "z9hG4bKretrans", "");
    let mut responses = Vec::new();
    for _ in 0..5 {
        s.send_to(req.as_bytes(), server.udp).expect("send");
        let (_, raw) = recv_message(&s);
        responses.push(raw);
    }
    assert!(
        responses.windows(2).all(|w| w[0] == w[1]),
        "5 byte-identical responses (same To tag: one transaction)"
    );
    s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let mut buf = [0u8; 2048];
    assert!(s.recv(&mut buf).is_err(), "exactly one response per request");
}

#[test]
fn what_cannot_be_served_gets_the_right_status() {
    let server = Server::start(&[]);
    let s = udp_client();
    let local = s.local_addr().expect("local");
    let invite = options("UDP", local, server.udp, "z9hG4bKinv", "").replace("OPTIONS", "INVITE");
    let r = udp_transaction(&s, server.udp, &invite);
    assert_eq!(r.status_code(), Some(407), "the proxy routes nothing for a stranger");
    assert!(r.header("Proxy-Authenticate").is_some());

    let mf0 = options("UDP", local, server.udp, "z9hG4bKmf0", "")
        .replace("OPTIONS sip:", "MESSAGE sip:someone@")
        .replace("1 OPTIONS", "1 MESSAGE")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(udp_transaction(&s, server.udp, &mf0).status_code(), Some(483));

    let bad_uri = options("UDP", local, server.udp, "z9hG4bKbad", "")
        .replace(&format!("OPTIONS sip:{}", server.udp), "OPTIONS sip:a@b; lr");
    let r = udp_transaction(&s, server.udp, &bad_uri);
    assert_eq!(r.status_code(), Some(400));
    assert_eq!(r.reason_phrase(), Some("Bad Request-URI: whitespace inside URI"));

    let bad_cseq =
        options("UDP", local, server.udp, "z9hG4bKcseq", "").replace("CSeq: 1 OPTIONS", "CSeq: 99999999999 OPTIONS");
    let r = udp_transaction(&s, server.udp, &bad_cseq);
    assert_eq!(r.status_code(), Some(400));
    assert_eq!(r.reason_phrase(), Some("Bad CSeq header: number out of range"));

    let version = options("UDP", local, server.udp, "z9hG4bKver", "").replace("SIP/2.0\r\n", "SIP/7.0\r\n");
    assert_eq!(udp_transaction(&s, server.udp, &version).status_code(), Some(505));

    // A malformed response is dropped: no answer, and the server keeps serving.
    s.send_to(b"SIP/2.0 200 OK\r\nVia: garbage\r\n\r\n", server.udp)
        .expect("send");
    s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let mut buf = [0u8; 2048];
    assert!(s.recv(&mut buf).is_err(), "responses are never answered");
    let ok = udp_transaction(&s, server.udp, &options("UDP", local, server.udp, "z9hG4bKafter", ""));
    assert_eq!(ok.status_code(), Some(200));
}

/// Reads framed SIP messages from a TCP stream.
fn read_messages(stream: &mut impl Read, framer: &mut StreamFramer, want: usize) -> Vec<Message> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want {
        while let Some(frame) = framer.next_frame().expect("framing") {
            match frame {
                Frame::Message(m) => out.push(m),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        if out.len() >= want {
            break;
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "server closed the connection");
        framer.push(&buf[..n]);
    }
    out
}

#[test]
fn options_over_tcp_pipelined_partial_and_keepalive() {
    let server = Server::start(&[]);
    let mut c = TcpStream::connect(server.tcp).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let local = c.local_addr().expect("local");
    let mut framer = StreamFramer::new(Limits::default());

    // Two requests in one write.
    let both = format!(
        "{}{}",
        options("TCP", local, server.tcp, "z9hG4bKtcp1", ""),
        options("TCP", local, server.tcp, "z9hG4bKtcp2", "")
    );
    c.write_all(both.as_bytes()).expect("write");
    let got = read_messages(&mut c, &mut framer, 2);
    let branches: Vec<_> = got
        .iter()
        .map(|m| m.via().expect("via").branch().map(str::to_owned))
        .collect();
    assert_eq!(
        branches,
        [Some("z9hG4bKtcp1".to_owned()), Some("z9hG4bKtcp2".to_owned())]
    );
    assert!(got.iter().all(|m| m.status_code() == Some(200)));

    // One request in three pieces.
    let req = options("TCP", local, server.tcp, "z9hG4bKtcp3", "");
    let (a, rest) = req.as_bytes().split_at(10);
    let (b, d) = rest.split_at(rest.len() / 2);
    for piece in [a, b, d] {
        c.write_all(piece).expect("write");
        c.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(read_messages(&mut c, &mut framer, 1)[0].status_code(), Some(200));

    // RFC 5626 keep-alive: CRLFCRLF is answered with CRLF.
    c.write_all(b"\r\n\r\n").expect("write");
    let mut pong = [0u8; 2];
    c.read_exact(&mut pong).expect("pong");
    assert_eq!(&pong, b"\r\n");
}

#[test]
fn tcp_connection_with_lost_framing_is_closed_after_a_400() {
    let server = Server::start(&[]);
    let mut c = TcpStream::connect(server.tcp).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let local = c.local_addr().expect("local");
    let req = options("TCP", local, server.tcp, "z9hG4bKneg", "").replace("Content-Length: 0", "Content-Length: -999");
    c.write_all(req.as_bytes()).expect("write");
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    let resp = Message::parse(all).expect("a 400 before the close");
    assert_eq!(resp.status_code(), Some(400));
    assert_eq!(resp.reason_phrase(), Some("Bad Content-Length"));
}

#[test]
fn idle_tcp_connections_are_closed() {
    let server = Server::start(&["--tcp-idle-timeout", "1"]);
    let mut c = TcpStream::connect(server.tcp).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let start = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(c.read(&mut buf).expect("closed, not timed out"), 0);
    assert!(start.elapsed() >= Duration::from_millis(900));
}

#[test]
fn many_sources_keep_getting_answers_while_one_floods_garbage() {
    // Loopback is trusted (never rate-limited) by default; here 127.0.0.2 is the internet.
    let server = Server::start(&["--trusted-networks", ""]);
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        let target = server.udp;
        std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.2:0").expect("bind");
            let garbage: [&[u8]; 3] = [
                b"\x00\x01\x02 not sip at all",
                b"INVITE <sip:x> SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKf\r\n\r\n",
                b"REGISTER sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\n",
            ];
            let mut sent = 0u64;
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && sent < 2_000_000 && Instant::now() < deadline {
                let _ = s.send_to(garbage[(sent % 3) as usize], target);
                sent += 1;
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let target = server.udp;
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.3:0").expect("bind");
                let local = s.local_addr().expect("local");
                udp_transaction(
                    &s,
                    target,
                    &options("UDP", local, target, &format!("z9hG4bKmany{i}"), ""),
                )
                .status_code()
            })
        })
        .collect();
    let answered = clients
        .into_iter()
        .map(|c| c.join().ok().flatten())
        .filter(|s| *s == Some(200))
        .count();
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().expect("flood thread");
    eprintln!("flood: {sent} malformed datagrams while 100 sources were served");
    assert_eq!(
        answered, 100,
        "every legitimate source got its 200 (flood sent {sent} datagrams)"
    );
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let mut server = Server::start(&[]);
    let s = udp_client();
    let local = s.local_addr().expect("local");
    assert_eq!(
        udp_transaction(&s, server.udp, &options("UDP", local, server.udp, "z9hG4bKterm", "")).status_code(),
        Some(200)
    );
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits within the grace period");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn options_over_ipv6_when_available() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback on this machine");
        return;
    }
    let server = Server::start(&["--sip-listen", "[::1]:0"]);
    let v6: Vec<SocketAddr> = server
        .stdout
        .iter()
        .filter_map(|l| l.strip_prefix("sip udp ").and_then(|a| a.trim().parse().ok()))
        .filter(|a: &SocketAddr| a.is_ipv6())
        .collect();
    let target = *v6.first().expect("an IPv6 listener printed");
    let s = UdpSocket::bind("[::1]:0").expect("bind");
    let local = s.local_addr().expect("local");
    let resp = udp_transaction(&s, target, &options("UDP", local, target, "z9hG4bKv6", ""));
    assert_eq!(resp.status_code(), Some(200));
}

#[test]
fn connections_beyond_the_per_source_cap_are_refused() {
    let server = Server::start(&["--max-connections-per-source", "2"]);
    let mut kept = Vec::new();
    for i in 0..2 {
        let mut c = TcpStream::connect(server.tcp).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
        let local = c.local_addr().expect("local");
        c.write_all(options("TCP", local, server.tcp, &format!("z9hG4bKcap{i}"), "").as_bytes())
            .expect("write");
        let mut framer = StreamFramer::new(Limits::default());
        assert_eq!(read_messages(&mut c, &mut framer, 1)[0].status_code(), Some(200));
        kept.push(c);
    }
    let mut third = TcpStream::connect(server.tcp).expect("the kernel accepts");
    third.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let local = third.local_addr().expect("local");
    let _ = third.write_all(options("TCP", local, server.tcp, "z9hG4bKcap3", "").as_bytes());
    let mut buf = [0u8; 64];
    assert!(
        matches!(third.read(&mut buf), Ok(0) | Err(_)),
        "the third connection is closed unanswered"
    );
    drop(kept);
}
