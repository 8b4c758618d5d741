//! Classic libpcap files of traced messages, for Wireshark, tshark and sngrep.
//!
//! Link type `LINKTYPE_RAW` (101): each frame starts with its IP header, IPv4 or IPv6 by its
//! version nibble, so one file mixes both families without inventing MAC addresses (Wireshark,
//! tshark, tcpdump and sngrep all read it). Each message is one frame (long TCP ones aside, see
//! below): a synthetic IPv4 (with its
//! header checksum) or IPv6 header, then a UDP header, or for TCP and TLS a TCP header with
//! PSH|ACK whose sequence numbers grow by the payload length per direction of each 4-tuple (the
//! acknowledgment is the other direction's next sequence number), so Wireshark's reassembly sees
//! a gapless stream. UDP and TCP checksums are filled in. TLS messages are written decrypted
//! under their real port: Wireshark decodes SIP on 5061 over plain TCP only with "Decode As…
//! SIP" (`-d tcp.port==5061,sip` for tshark; sngrep looks at the payload and needs nothing).
//!
//! Frames are at most 65535 bytes. A longer TCP or TLS message becomes several segments, which
//! Wireshark reassembles into the whole message (cutting it instead would hide it: the SIP
//! dissector waits for the rest of its Content-Length). A UDP datagram cannot be that long on the
//! wire, but one that is anyway is cut: the captured length is below the original length and the
//! IP and UDP length fields say at most 65535.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use crate::{Direction, Proto, TracedMessage};

/// `LINKTYPE_RAW`: the frame is an IPv4 or IPv6 packet.
pub const LINKTYPE_RAW: u32 = 101;
/// Frames are cut to this length.
pub const SNAPLEN: usize = 65_535;

/// Writes `messages` as one pcap file (file header included), in the given order.
pub fn write(messages: &[TracedMessage], out: &mut impl Write) -> io::Result<()> {
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // microsecond timestamps
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    header.extend_from_slice(&(SNAPLEN as u32).to_le_bytes());
    header.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    out.write_all(&header)?;

    let mut state = Streams::default();
    let mut frame = Vec::new();
    for m in messages {
        let (src, dst) = wire_addrs(m.direction, m.local, m.remote);
        let ip_len = if src.is_ipv4() { 20 } else { 40 };
        let payload = &m.payload[..];
        match m.proto {
            Proto::Udp => {
                let orig_len = ip_len + 8 + payload.len();
                let kept = payload.len().min(SNAPLEN - ip_len - 8);
                build_frame(&mut frame, &mut state, src, dst, None, payload, kept);
                write_record(out, m.at_us, &frame, orig_len)?;
            }
            Proto::Tcp | Proto::Tls => {
                // Segments of at most a frame; most messages are one.
                let max = SNAPLEN - ip_len - 20;
                let mut rest = payload;
                loop {
                    let (segment, more) = rest.split_at(rest.len().min(max));
                    let seq = *state.next_seq.entry((src, dst)).or_insert(1);
                    let ack = *state.next_seq.entry((dst, src)).or_insert(1);
                    state
                        .next_seq
                        .insert((src, dst), seq.wrapping_add(segment.len() as u32));
                    build_frame(
                        &mut frame,
                        &mut state,
                        src,
                        dst,
                        Some((seq, ack)),
                        segment,
                        segment.len(),
                    );
                    write_record(out, m.at_us, &frame, frame.len())?;
                    rest = more;
                    if rest.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Per-file state: TCP sequence numbers per direction and the IPv4 identification counter.
#[derive(Default)]
struct Streams {
    next_seq: HashMap<(SocketAddr, SocketAddr), u32>,
    ip_id: u16,
}

/// Source and destination of a message on the wire, both of one family (IPv4 when both are IPv4
/// or IPv4-mapped, IPv6 otherwise).
pub(crate) fn wire_addrs(direction: Direction, local: SocketAddr, remote: SocketAddr) -> (SocketAddr, SocketAddr) {
    let (src, dst) = match direction {
        Direction::In => (remote, local),
        Direction::Out => (local, remote),
    };
    let (s, d) = (src.ip().to_canonical(), dst.ip().to_canonical());
    let (s, d) = match (s, d) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (s, d),
        _ => (IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d))),
    };
    (SocketAddr::new(s, src.port()), SocketAddr::new(d, dst.port()))
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn write_record(out: &mut impl Write, at_us: u64, frame: &[u8], orig_len: usize) -> io::Result<()> {
    let mut record = [0u8; 16];
    record[0..4].copy_from_slice(&((at_us / 1_000_000) as u32).to_le_bytes());
    record[4..8].copy_from_slice(&((at_us % 1_000_000) as u32).to_le_bytes());
    record[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
    record[12..16].copy_from_slice(&u32::try_from(orig_len).unwrap_or(u32::MAX).to_le_bytes());
    out.write_all(&record)?;
    out.write_all(frame)
}

/// Fills `frame` with an IP packet carrying `payload` over UDP (`tcp == None`) or TCP (with
/// its sequence and acknowledgment numbers), of which only the first `kept` bytes are captured.
/// The length fields say the whole payload, up to their 65535 limit.
fn build_frame(
    frame: &mut Vec<u8>,
    state: &mut Streams,
    src: SocketAddr,
    dst: SocketAddr,
    tcp: Option<(u32, u32)>,
    payload: &[u8],
    kept: usize,
) {
    frame.clear();
    let (l4_len, proto) = if tcp.is_some() { (20, 6u8) } else { (8, 17u8) };
    // What the headers declare: IPv4's total length includes its own header, IPv6's does not.
    let l4_total = (l4_len + payload.len()).min(SNAPLEN - if src.is_ipv4() { 20 } else { 0 });
    let declared = &payload[..l4_total - l4_len];

    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = [0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((20 + l4_total) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&state.ip_id.to_be_bytes());
            state.ip_id = state.ip_id.wrapping_add(1);
            h[6] = 0x40; // don't fragment
            h[8] = 64;
            h[9] = proto;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let sum = checksum(&[&h]);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&h);
        }
        (s, d) => {
            let mut h = [0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(l4_total as u16).to_be_bytes());
            h[6] = proto;
            h[7] = 64;
            h[8..24].copy_from_slice(&to_v6(s).octets());
            h[24..40].copy_from_slice(&to_v6(d).octets());
            frame.extend_from_slice(&h);
        }
    }

    let pseudo = pseudo_header(src.ip(), dst.ip(), proto, l4_total);
    match tcp {
        None => {
            let mut h = [0u8; 8];
            h[0..2].copy_from_slice(&src.port().to_be_bytes());
            h[2..4].copy_from_slice(&dst.port().to_be_bytes());
            h[4..6].copy_from_slice(&(l4_total as u16).to_be_bytes());
            let sum = match checksum(&[&pseudo, &h, declared]) {
                0 => 0xffff, // 0 means "no checksum" in UDP
                s => s,
            };
            h[6..8].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&h);
        }
        Some((seq, ack)) => {
            let mut h = [0u8; 20];
            h[0..2].copy_from_slice(&src.port().to_be_bytes());
            h[2..4].copy_from_slice(&dst.port().to_be_bytes());
            h[4..8].copy_from_slice(&seq.to_be_bytes());
            h[8..12].copy_from_slice(&ack.to_be_bytes());
            h[12] = 5 << 4; // data offset: 5 words
            h[13] = 0x18; // PSH | ACK
            h[14..16].copy_from_slice(&65_535u16.to_be_bytes());
            let sum = checksum(&[&pseudo, &h, declared]);
            h[16..18].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&h);
        }
    }
    frame.extend_from_slice(&payload[..kept]);
}

/// The pseudo-header of the UDP and TCP checksums (RFC 768, RFC 8200 §8.1).
fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, l4_total: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(l4_total as u16).to_be_bytes());
        }
        (s, d) => {
            p.extend_from_slice(&to_v6(s).octets());
            p.extend_from_slice(&to_v6(d).octets());
            p.extend_from_slice(&(l4_total as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
    }
    p
}

/// The Internet checksum over the concatenation of `parts` (each of even length except the
/// last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u64 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_ipv4_header() {
        // The example of RFC 1071-style checks found in many references.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&[&h]), 0xb861);
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        let local: SocketAddr = "[::ffff:192.0.2.1]:5060".parse().unwrap();
        let remote: SocketAddr = "192.0.2.9:5070".parse().unwrap();
        let (s, d) = wire_addrs(Direction::In, local, remote);
        assert_eq!(s, remote);
        assert_eq!(d, "192.0.2.1:5060".parse().unwrap());
        let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        let (s, d) = wire_addrs(Direction::Out, v6, remote);
        assert_eq!(s, v6);
        assert_eq!(d, "[::ffff:192.0.2.9]:5070".parse().unwrap());
    }
}
