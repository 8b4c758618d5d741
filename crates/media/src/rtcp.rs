//! Reading RTCP report blocks (RFC 3550 §6.4.1 SR, §6.4.2 RR) out of the compound packets the
//! phones send, so the relay can show each side's view of loss and jitter. Only reads, never
//! rewrites: the packets are relayed untouched. Also the RTP/RTCP demultiplexing test of RFC 5761
//! §4 for RTCP sent on the RTP port (rtcp-mux).
//!
//! A compound packet is read only if its sub-packets' lengths add up to exactly the datagram: SRTCP
//! (RFC 3711 §3.4) appends an index and a tag and encrypts the blocks, so its reports are never
//! mistaken for plain ones. Never panics on peer input.

/// One report block: what a receiver says about one source it receives (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceptionReport {
    /// SSRC of the phone that sent the report.
    pub reporter_ssrc: u32,
    /// SSRC of the source the block is about.
    pub source_ssrc: u32,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start of reception (expected minus received; may be negative with
    /// duplicates).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in RTP timestamp units (125 µs for G.711 at 8 kHz).
    pub jitter: u32,
}

impl ReceptionReport {
    /// The fraction lost as a number between 0 and 1.
    pub fn loss(&self) -> f64 {
        f64::from(self.fraction_lost) / 256.0
    }

    /// The jitter in milliseconds for a codec clocked at `clock_rate` Hz.
    pub fn jitter_ms(&self, clock_rate: u32) -> f64 {
        if clock_rate == 0 {
            return 0.0;
        }
        f64::from(self.jitter) * 1000.0 / f64::from(clock_rate)
    }
}

const SR: u8 = 200;
const RR: u8 = 201;
const BLOCK: usize = 24;

/// Whether a datagram that arrived on an RTP port is RTCP (RFC 5761 §4: payload type with the
/// marker bit in 192..=223).
#[inline]
pub fn is_rtcp_mux(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && matches!(datagram[1], 192..=223)
}

/// The last report block in a plain (unencrypted) compound RTCP packet, and how many blocks it
/// held. `None` when the datagram is not well-formed RTCP or carries no report block.
pub fn last_report(datagram: &[u8]) -> Option<(ReceptionReport, usize)> {
    let mut rest = datagram;
    let mut last = None;
    let mut count = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let header: [u8; 4] = rest.get(..4)?.try_into().ok()?;
        if header[0] >> 6 != 2 {
            return None;
        }
        let len = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
        let packet = rest.get(..len)?;
        rest = &rest[len..];
        let rc = usize::from(header[0] & 0x1f);
        let blocks_at = match header[1] {
            SR => 28,
            RR => 8,
            _ => continue,
        };
        let reporter_ssrc = be32(packet, 4)?;
        for i in 0..rc {
            let block = packet.get(blocks_at + i * BLOCK..blocks_at + (i + 1) * BLOCK)?;
            last = Some(read_block(reporter_ssrc, block)?);
            count += 1;
        }
    }
    last.map(|r| (r, count))
}

fn read_block(reporter_ssrc: u32, b: &[u8]) -> Option<ReceptionReport> {
    let lost = be32(b, 4)?;
    // 24-bit two's complement (RFC 3550 §6.4.1).
    let cumulative_lost = ((lost << 8) as i32) >> 8;
    Some(ReceptionReport {
        reporter_ssrc,
        source_ssrc: be32(b, 0)?,
        fraction_lost: (lost >> 24) as u8,
        cumulative_lost,
        highest_seq: be32(b, 8)?,
        jitter: be32(b, 12)?,
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An RR with one block (`fraction`, `lost`, `jitter`) followed by an SDES with one CNAME.
    pub fn rr(reporter: u32, source: u32, fraction: u8, lost: i32, jitter: u32) -> Vec<u8> {
        let mut p = vec![0x81, RR, 0, 7];
        p.extend_from_slice(&reporter.to_be_bytes());
        p.extend_from_slice(&source.to_be_bytes());
        let l = (lost as u32) & 0x00ff_ffff;
        p.extend_from_slice(&((u32::from(fraction) << 24) | l).to_be_bytes());
        p.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        p.extend_from_slice(&jitter.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        // SDES, one chunk: SSRC, CNAME "ab", end, padded to 4.
        p.extend_from_slice(&[0x81, 202, 0, 2]);
        p.extend_from_slice(&reporter.to_be_bytes());
        p.extend_from_slice(&[1, 2, b'a', b'b']);
        p
    }

    #[test]
    fn reads_rr_block() {
        let p = rr(0x1111, 0x2222, 64, 1234, 80);
        let (r, n) = last_report(&p).expect("report");
        assert_eq!(n, 1);
        assert_eq!(r.reporter_ssrc, 0x1111);
        assert_eq!(r.source_ssrc, 0x2222);
        assert_eq!(r.fraction_lost, 64);
        assert_eq!(r.cumulative_lost, 1234);
        assert_eq!(r.highest_seq, 0x0001_0203);
        assert_eq!(r.jitter, 80);
        assert!((r.loss() - 0.25).abs() < 1e-9);
        assert!((r.jitter_ms(8000) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn negative_cumulative_loss() {
        let p = rr(1, 2, 0, -3, 0);
        assert_eq!(last_report(&p).expect("report").0.cumulative_lost, -3);
    }

    #[test]
    fn reads_sr_block() {
        let mut p = vec![0x81, SR, 0, 12];
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(&[0; 20]); // NTP, RTP ts, packet and octet counts
        p.extend_from_slice(&9u32.to_be_bytes());
        p.extend_from_slice(&[3, 0, 0, 5]);
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&17u32.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        let (r, _) = last_report(&p).expect("report");
        assert_eq!(
            (
                r.reporter_ssrc,
                r.source_ssrc,
                r.fraction_lost,
                r.cumulative_lost,
                r.jitter
            ),
            (7, 9, 3, 5, 17)
        );
    }

    #[test]
    fn rejects_srtcp_and_garbage() {
        let mut p = rr(1, 2, 0, 0, 0);
        p.extend_from_slice(&[0x80, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]); // index + tag
        assert_eq!(last_report(&p), None);
        assert_eq!(last_report(&[]), None);
        assert_eq!(last_report(&[0x81, RR, 0xff, 0xff, 0, 0, 0, 0]), None);
        assert_eq!(last_report(&[0x81, RR, 0, 1, 0, 0, 0, 1]), None); // RC=1 but no block
        assert_eq!(last_report(&[0x80, RR, 0, 1, 0, 0, 0, 1]), None); // no block at all
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let _ = last_report(&junk);
        }
    }

    #[test]
    fn demultiplexes() {
        assert!(is_rtcp_mux(&rr(1, 2, 0, 0, 0)));
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 0x80; // marker, PT 0
        assert!(!is_rtcp_mux(&rtp));
        rtp[1] = 96;
        assert!(!is_rtcp_mux(&rtp));
    }
}
