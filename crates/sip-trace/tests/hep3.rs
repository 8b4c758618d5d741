//! HEP3 encoding against a byte layout checked by hand, and delivery to a collector on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::Bytes;
use sip_trace::hep3::{HepSender, encode};
use sip_trace::{Direction, Proto, TraceRing, TracedMessage};

const PAYLOAD: &[u8] = b"OPTIONS sip:x SIP/2.0\r\n\r\n"; // 25 bytes

fn message(direction: Direction, proto: Proto, local: &str, remote: &str) -> TracedMessage {
    TracedMessage::new(
        1,
        1_700_000_000_123_456,
        direction,
        proto,
        local.parse().unwrap(),
        remote.parse().unwrap(),
        Bytes::from_static(PAYLOAD),
    )
}

#[test]
#[rustfmt::skip]
fn ipv4_udp_received() {
    let m = message(Direction::In, Proto::Udp, "192.0.2.1:5060", "198.51.100.7:5070");
    let mut expected: Vec<u8> = vec![
        b'H', b'E', b'P', b'3', 0x00, 0x7c, // total length 124 = 99 + 25
        0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x02, // IP family: IPv4
        0x00, 0x00, 0x00, 0x02, 0x00, 0x07, 0x11, // IP protocol: UDP
        0x00, 0x00, 0x00, 0x07, 0x00, 0x08, 0x13, 0xce, // source port 5070
        0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x13, 0xc4, // destination port 5060
        0x00, 0x00, 0x00, 0x09, 0x00, 0x0a, 0x65, 0x53, 0xf1, 0x00, // seconds 1700000000
        0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x01, 0xe2, 0x40, // microseconds 123456
        0x00, 0x00, 0x00, 0x0b, 0x00, 0x07, 0x01, // protocol type: SIP
        0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x00, 0x07, 0xd1, // capture agent 2001
        0x00, 0x00, 0x00, 0x03, 0x00, 0x0a, 198, 51, 100, 7, // source: the peer (received)
        0x00, 0x00, 0x00, 0x04, 0x00, 0x0a, 192, 0, 2, 1, // destination: the server
        0x00, 0x00, 0x00, 0x0f, 0x00, 0x1f, // payload, 6 + 25
    ];
    expected.extend_from_slice(PAYLOAD);
    assert_eq!(encode(&m, 2001), expected);
}

#[test]
#[rustfmt::skip]
fn ipv6_tls_sent() {
    let m = message(Direction::Out, Proto::Tls, "[2001:db8::1]:5061", "[2001:db8::7]:40000");
    let mut expected: Vec<u8> = vec![
        b'H', b'E', b'P', b'3', 0x00, 0x94, // total length 148 = 123 + 25
        0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x0a, // IP family: IPv6
        0x00, 0x00, 0x00, 0x02, 0x00, 0x07, 0x06, // IP protocol: TCP (TLS, decrypted)
        0x00, 0x00, 0x00, 0x07, 0x00, 0x08, 0x13, 0xc5, // source port 5061: the server (sent)
        0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x9c, 0x40, // destination port 40000
        0x00, 0x00, 0x00, 0x09, 0x00, 0x0a, 0x65, 0x53, 0xf1, 0x00, // seconds
        0x00, 0x00, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x01, 0xe2, 0x40, // microseconds
        0x00, 0x00, 0x00, 0x0b, 0x00, 0x07, 0x01, // protocol type: SIP
        0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x07, // capture agent 7
        0x00, 0x00, 0x00, 0x05, 0x00, 0x16, // source 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0x00, 0x00, 0x00, 0x06, 0x00, 0x16, // destination 2001:db8::7
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
        0x00, 0x00, 0x00, 0x0f, 0x00, 0x1f, // payload, 6 + 25
    ];
    expected.extend_from_slice(PAYLOAD);
    assert_eq!(encode(&m, 7), expected);
}

#[test]
fn oversized_payload_fits_one_datagram() {
    let mut m = message(Direction::In, Proto::Tcp, "[2001:db8::1]:5060", "[2001:db8::7]:5060");
    m.payload = Bytes::from(vec![b'x'; 100_000]);
    let packet = encode(&m, 1);
    assert_eq!(packet.len(), 65_507);
    assert_eq!(u16::from_be_bytes([packet[4], packet[5]]), 65_507);
}

fn collector() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

#[test]
fn sender_delivers_to_a_collector() {
    let (socket, addr) = collector();
    let sender = HepSender::new(addr, 2001).unwrap();
    let m = message(Direction::In, Proto::Udp, "192.0.2.1:5060", "198.51.100.7:5070");
    assert!(sender.send(&m));
    let mut buf = [0u8; 2048];
    let (n, from) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &encode(&m, 2001)[..]);
    assert!(from.ip().is_loopback());
    assert_eq!((sender.sent(), sender.dropped()), (1, 0));

    // Through the ring, which sends what it records.
    let ring = TraceRing::new(10).with_hep(sender);
    ring.record(m.at_us, m.direction, m.proto, m.local, m.remote, m.payload.clone());
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &encode(&m, 2001)[..]);
    assert_eq!(ring.hep().unwrap().sent(), 2);
    assert_eq!(ring.len(), 1);
}

#[test]
fn sender_counts_drops_and_never_blocks() {
    let (socket, addr) = collector();
    drop(socket); // nobody listens: the kernel answers port unreachable
    let sender = HepSender::new(addr, 1).unwrap();
    let m = message(Direction::In, Proto::Udp, "192.0.2.1:5060", "198.51.100.7:5070");
    let start = std::time::Instant::now();
    for _ in 0..20 {
        sender.send(&m);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(sender.sent() + sender.dropped(), 20);
    assert!(sender.dropped() > 0, "a refused send is counted as dropped");
}
