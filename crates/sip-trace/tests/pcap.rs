//! pcap export: the file's structure checked byte by byte, then read back by tshark when it is
//! installed. Without tshark the tshark part prints SKIP, except in CI (`CI=true`) where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use bytes::Bytes;
use sip_trace::{Direction, Proto, TracedMessage, pcap};

fn sip(first: &str, call_id: &str, cseq: &str) -> Bytes {
    Bytes::copy_from_slice(
        format!(
            "{first}\r\nVia: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bK-{call_id}-{cseq}\r\n\
             From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
}

fn big_message() -> Bytes {
    let body = "x".repeat(70_000);
    Bytes::copy_from_slice(
        format!(
            "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 198.51.100.7:5070;branch=z9hG4bK-big\r\n\
             From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: big\r\n\
             CSeq: 9 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// A dialog over UDP/IPv4, one over TCP/IPv4, one over TLS/IPv6, and a message too big for a
/// frame over TCP (segmented) and over UDP (cut).
fn messages() -> Vec<TracedMessage> {
    let v4: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    let phone4: SocketAddr = "198.51.100.7:5070".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:5061".parse().unwrap();
    let phone6: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
    let (i, o) = (Direction::In, Direction::Out);
    let list: Vec<(Direction, Proto, SocketAddr, SocketAddr, Bytes)> = vec![
        (
            i,
            Proto::Udp,
            v4,
            phone4,
            sip("REGISTER sip:example.com SIP/2.0", "r1", "1 REGISTER"),
        ),
        (
            o,
            Proto::Udp,
            v4,
            phone4,
            sip("SIP/2.0 401 Unauthorized", "r1", "1 REGISTER"),
        ),
        (
            i,
            Proto::Tcp,
            v4,
            phone4,
            sip("INVITE sip:bob@example.com SIP/2.0", "c1", "1 INVITE"),
        ),
        (o, Proto::Tcp, v4, phone4, sip("SIP/2.0 100 Trying", "c1", "1 INVITE")),
        (o, Proto::Tcp, v4, phone4, sip("SIP/2.0 200 OK", "c1", "1 INVITE")),
        (
            i,
            Proto::Tcp,
            v4,
            phone4,
            sip("ACK sip:bob@example.com SIP/2.0", "c1", "1 ACK"),
        ),
        (
            i,
            Proto::Tls,
            v6,
            phone6,
            sip("OPTIONS sip:example.com SIP/2.0", "o1", "1 OPTIONS"),
        ),
        (o, Proto::Tls, v6, phone6, sip("SIP/2.0 200 OK", "o1", "1 OPTIONS")),
        (
            i,
            Proto::Udp,
            v6,
            phone6,
            sip("BYE sip:bob@example.com SIP/2.0", "c2", "2 BYE"),
        ),
        (i, Proto::Tcp, v4, phone4, big_message()),
        (o, Proto::Tcp, v4, phone4, sip("SIP/2.0 200 OK", "big", "9 MESSAGE")),
        (i, Proto::Udp, v4, phone4, big_message()),
    ];
    list.into_iter()
        .enumerate()
        .map(|(n, (d, p, l, r, payload))| {
            TracedMessage::new(
                n as u64 + 1,
                1_700_000_000_000_000 + n as u64 * 1_500,
                d,
                p,
                l,
                r,
                payload,
            )
        })
        .collect()
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn le32(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn ones_sum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u64;
    for p in parts {
        for c in p.chunks(2) {
            sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[test]
fn file_structure() {
    let msgs = messages();
    let mut file = Vec::new();
    pcap::write(&msgs, &mut file).unwrap();

    assert_eq!(&file[..4], &[0xd4, 0xc3, 0xb2, 0xa1]); // 0xa1b2c3d4 little-endian: microseconds
    assert_eq!(&file[4..8], &[2, 0, 4, 0]);
    assert_eq!(le32(&file, 16), 65_535);
    assert_eq!(le32(&file, 20), 101);

    let mut at = 24;
    let mut next_seq: HashMap<(Vec<u8>, u16, Vec<u8>, u16), u32> = HashMap::new();
    let mut frames = 0;
    for m in &msgs {
        // The payload as the frames carry it: one frame, or TCP segments of at most a frame.
        let mut carried = Vec::new();
        while carried.len() < m.payload.len() {
            let (sec, usec, caplen, len) = (
                le32(&file, at),
                le32(&file, at + 4),
                le32(&file, at + 8) as usize,
                le32(&file, at + 12) as usize,
            );
            assert_eq!(u64::from(sec) * 1_000_000 + u64::from(usec), m.at_us);
            assert!(caplen <= 65_535);
            let frame = &file[at + 16..at + 16 + caplen];
            at += 16 + caplen;
            frames += 1;

            let v4 = frame[0] >> 4 == 4;
            let (ip_len, proto, src, dst) = if v4 {
                assert_eq!(frame[0], 0x45);
                assert_eq!(ones_sum(&[&frame[..20]]), 0xffff, "IPv4 header checksum");
                (20, frame[9], frame[12..16].to_vec(), frame[16..20].to_vec())
            } else {
                assert_eq!(frame[0] >> 4, 6);
                (40, frame[6], frame[8..24].to_vec(), frame[24..40].to_vec())
            };
            let l4_len = if m.proto == Proto::Udp { 8 } else { 20 };
            assert_eq!(proto, if m.proto == Proto::Udp { 17 } else { 6 });
            let l4 = &frame[ip_len..];
            let (sport, dport) = (u16_at(l4, 0), u16_at(l4, 2));
            let (server, peer) = (m.local.port(), m.remote.port());
            assert_eq!(
                (sport, dport),
                if m.direction == Direction::In {
                    (peer, server)
                } else {
                    (server, peer)
                }
            );
            let data = &frame[ip_len + l4_len..];

            if caplen < len {
                // Only a UDP datagram is cut; the length fields say 65535.
                assert_eq!(m.proto, Proto::Udp);
                assert_eq!(len, ip_len + 8 + m.payload.len());
                assert_eq!(caplen, 65_535);
                assert_eq!(u16_at(frame, 2), 65_535);
                assert_eq!(u16_at(l4, 4), 65_535 - 20);
                assert!(m.payload.starts_with(data));
                carried = m.payload.to_vec();
                continue;
            }
            let ip_declared = if v4 {
                u16_at(frame, 2) as usize
            } else {
                40 + u16_at(frame, 4) as usize
            };
            assert_eq!(ip_declared, caplen);
            // UDP/TCP checksum over the pseudo-header.
            let l4_total = (caplen - ip_len) as u32;
            let pseudo: Vec<u8> = if v4 {
                [&src[..], &dst[..], &[0, proto], &(l4_total as u16).to_be_bytes()].concat()
            } else {
                [&src[..], &dst[..], &l4_total.to_be_bytes(), &[0, 0, 0, proto]].concat()
            };
            assert_eq!(ones_sum(&[&pseudo, l4]), 0xffff, "L4 checksum of message {}", m.seq);
            if m.proto == Proto::Udp {
                assert_eq!(u16_at(l4, 4) as usize, 8 + m.payload.len());
            } else {
                assert_eq!(l4[12], 0x50);
                assert_eq!(l4[13], 0x18, "PSH|ACK");
                // Sequence numbers continue per direction; the ACK is the other side's next one.
                let key = (src.clone(), sport, dst.clone(), dport);
                let back = (dst.clone(), dport, src.clone(), sport);
                let expected = *next_seq.get(&key).unwrap_or(&1);
                assert_eq!(u32_at(l4, 4), expected);
                assert_eq!(u32_at(l4, 8), *next_seq.get(&back).unwrap_or(&1));
                next_seq.insert(key, expected + data.len() as u32);
            }
            carried.extend_from_slice(data);
        }
        assert_eq!(carried, m.payload);
    }
    assert_eq!(at, file.len());
    assert_eq!(frames, msgs.len() + 1, "the big TCP message takes two frames");
}

/// Whether tshark can be run; in CI a missing one is a failure.
fn have_tshark() -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("tshark is required in CI (apt-get install it in .ci/run)");
        }
        eprintln!("SKIP: tshark not installed; install it to run this test");
    }
    found
}

fn tshark(file: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn tshark_reads_the_sip() {
    if !have_tshark() {
        return;
    }
    let msgs = messages();
    let path = std::env::temp_dir().join(format!("sip-trace-test-{}.pcap", std::process::id()));
    let mut file = std::fs::File::create(&path).unwrap();
    pcap::write(&msgs, &mut file).unwrap();
    drop(file);

    // Port 5061 carries TLS; the trace holds it decrypted, which needs "Decode As" SIP.
    let fields = tshark(
        &path,
        &[
            "-d",
            "tcp.port==5061,sip",
            "-Y",
            "sip",
            "-T",
            "fields",
            "-e",
            "sip.Method",
            "-e",
            "sip.Status-Code",
        ],
    );
    let rows: Vec<&str> = fields.lines().collect();
    assert_eq!(
        rows,
        [
            "REGISTER\t",
            "\t401",
            "INVITE\t",
            "\t100",
            "\t200",
            "ACK\t",
            "OPTIONS\t",
            "\t200",
            "BYE\t",
            "MESSAGE\t",
            "\t200",
            "MESSAGE\t",
        ],
        "{fields}"
    );

    // The checksums we wrote are the ones tshark computes.
    let checks = tshark(
        &path,
        &[
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
            "-e",
            "tcp.checksum.status",
            "-e",
            "_ws.expert.message",
        ],
    );
    eprintln!("{checks}");
    if std::env::var_os("KEEP_PCAP").is_none() {
        let _ = std::fs::remove_file(&path);
    } else {
        eprintln!("kept {}", path.display());
    }
}
