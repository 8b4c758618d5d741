//! SRTP on a leg (RFC 3711, keys from SDES, RFC 4568): the relay terminates SRTP toward a phone
//! that uses it. Each leg may hold an inbound context (the key the phone encrypts with, from its
//! SDP) and an outbound one (a key of ours, which the proxy put in the SDP it sent the phone).
//! A packet from leg X to leg Y is decrypted with X's inbound context if X has one, then encrypted
//! with Y's outbound context if Y has one; so SRTP↔RTP and SRTP↔SRTP (a separate key per leg)
//! both work. RTCP is SRTCP under the same master key (RFC 3711 §3.4), also with `rtcp-mux`.
//!
//! The crypto is `webrtc-srtp` (the webrtc-rs project's pure-Rust SRTP, AES-CM-128 with
//! HMAC-SHA1-80 here). It returns each packet in a fresh buffer, so unlike the plain path this one
//! allocates per packet; streams without SRTP never reach it.

use bytes::Bytes;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use crate::MediaError;

/// Master key (16 bytes) and master salt (14 bytes) of `AES_CM_128_HMAC_SHA1_80`.
pub type SrtpKey = [u8; 30];

/// A fresh random master key and salt from the operating system's generator.
pub fn random_key() -> Result<SrtpKey, MediaError> {
    let mut key = [0u8; 30];
    getrandom::fill(&mut key).map_err(|e| MediaError::Io(std::io::Error::other(e.to_string())))?;
    Ok(key)
}

/// Replay window (packets) for what phones send us (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: usize = 128;

pub(crate) struct Keyed {
    key: SrtpKey,
    ctx: Context,
}

impl Keyed {
    fn new(key: SrtpKey, inbound: bool) -> Result<Keyed, MediaError> {
        let (rtp, rtcp) = if inbound {
            (
                Some(srtp_replay_protection(REPLAY_WINDOW)),
                Some(srtcp_replay_protection(REPLAY_WINDOW)),
            )
        } else {
            (None, None)
        };
        let ctx = Context::new(
            &key[..16],
            &key[16..],
            ProtectionProfile::Aes128CmHmacSha1_80,
            rtp,
            rtcp,
        )
        .map_err(|e| MediaError::Io(std::io::Error::other(e.to_string())))?;
        Ok(Keyed { key, ctx })
    }
}

/// The SRTP state of one leg.
#[derive(Default)]
pub(crate) struct LegSrtp {
    /// Decrypts what this leg's phone sends.
    pub rx: Option<Keyed>,
    /// Encrypts what goes to this leg's phone.
    pub tx: Option<Keyed>,
}

impl LegSrtp {
    /// Sets the keys; a context whose key did not change is kept (with its rollover counters and
    /// replay window: a re-INVITE repeating the key must not restart the keystream).
    pub fn set(&mut self, rx: Option<SrtpKey>, tx: Option<SrtpKey>) -> Result<(), MediaError> {
        fn update(slot: &mut Option<Keyed>, key: Option<SrtpKey>, inbound: bool) -> Result<(), MediaError> {
            match key {
                None => *slot = None,
                Some(k) if slot.as_ref().is_some_and(|s| s.key == k) => {}
                Some(k) => *slot = Some(Keyed::new(k, inbound)?),
            }
            Ok(())
        }
        update(&mut self.rx, rx, true)?;
        update(&mut self.tx, tx, false)
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_none() && self.tx.is_none()
    }
}

/// One packet from a leg with `from` state toward a leg with `to` state: the plaintext (for the
/// RTCP reader) and what to send. `None` if it failed authentication, was a replay or does not
/// parse.
pub(crate) fn translate(
    from: Option<&mut LegSrtp>,
    to: Option<&mut LegSrtp>,
    data: &[u8],
    rtcp: bool,
) -> Option<(Bytes, Bytes)> {
    // A panic in the crate must not take the relay thread down with it.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| translate_inner(from, to, data, rtcp))).ok()?
}

/// Whether `data` can be an SRTP (`rtcp` false) or SRTCP packet at all. Checked before the crate
/// sees it: `webrtc-srtp` 0.17 underflows on SRTCP shorter than its trailer, returns SRTCP with
/// the E bit clear without checking its tag, and lets the first packet of an SSRC set the replay
/// window before authentication (so a stray plain packet, such as libre's unencrypted RTCP
/// `PING` APP packet, made every SRTCP packet after it "too old").
fn plausible(data: &[u8], rtcp: bool) -> bool {
    if rtcp {
        // Header and sender SSRC, E flag and index (RFC 3711 §3.4), 80-bit tag; E must be set (we
        // never negotiate UNENCRYPTED_SRTCP).
        data.len() >= 8 + 4 + TAG_LEN && data[data.len() - TAG_LEN - 4] & 0x80 != 0
    } else {
        data.len() >= 12 + TAG_LEN && data[0] >> 6 == 2
    }
}

/// HMAC-SHA1-80.
const TAG_LEN: usize = 10;

fn translate_inner(
    from: Option<&mut LegSrtp>,
    to: Option<&mut LegSrtp>,
    data: &[u8],
    rtcp: bool,
) -> Option<(Bytes, Bytes)> {
    let rx = from.and_then(|s| s.rx.as_mut());
    if rx.is_some() && !plausible(data, rtcp) {
        return None;
    }
    let plain = match rx {
        Some(k) if rtcp => k.ctx.decrypt_rtcp(data).ok()?,
        Some(k) => k.ctx.decrypt_rtp(data).ok()?,
        None => Bytes::copy_from_slice(data),
    };
    let out = match to.and_then(|s| s.tx.as_mut()) {
        Some(k) if rtcp => k.ctx.encrypt_rtcp(&plain).ok()?,
        Some(k) => k.ctx.encrypt_rtp(&plain).ok()?,
        None => plain.clone(),
    };
    Some((plain, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend(std::iter::repeat_n(0xd5, 160));
        p
    }

    fn rtcp_sr() -> Vec<u8> {
        // A sender report with no report blocks: V=2, PT=200, length 6 (28 bytes).
        let mut p = vec![0x80, 200, 0, 6];
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(&[0; 20]);
        p
    }

    /// Phone A encrypts with its key; the relay decrypts (A's rx), re-encrypts for B (B's tx);
    /// phone B decrypts with the key we gave it, and gets A's plaintext.
    #[test]
    fn srtp_to_srtp_with_a_key_per_leg_and_to_plain_rtp() {
        let (ka, kb) = (random_key().expect("key"), random_key().expect("key"));
        assert_ne!(ka, kb);
        let mut phone_a = Keyed::new(ka, false).expect("ctx");
        let mut phone_b = Keyed::new(kb, true).expect("ctx");
        let mut leg_a = LegSrtp::default();
        leg_a.set(Some(ka), None).expect("set");
        let mut leg_b = LegSrtp::default();
        leg_b.set(None, Some(kb)).expect("set");
        for seq in [65533u16, 65534, 65535, 0, 1, 2] {
            let plain = rtp(seq);
            let wire = phone_a.ctx.encrypt_rtp(&plain).expect("encrypt");
            assert_eq!(wire.len(), plain.len() + 10, "an 80-bit tag");
            assert_ne!(&wire[12..plain.len()], &plain[12..]);
            let (p, out) = translate(Some(&mut leg_a), Some(&mut leg_b), &wire, false).expect("relayed");
            assert_eq!(&p[..], &plain[..]);
            assert_eq!(&phone_b.ctx.decrypt_rtp(&out).expect("B decrypts")[..], &plain[..]);
        }
        // Toward a plain-RTP leg the plaintext goes out as it is.
        let plain = rtp(3);
        let wire = phone_a.ctx.encrypt_rtp(&plain).expect("encrypt");
        let (_, out) = translate(Some(&mut leg_a), None, &wire, false).expect("relayed");
        assert_eq!(&out[..], &plain[..]);
        let sr = rtcp_sr();
        let wire = phone_a.ctx.encrypt_rtcp(&sr).expect("encrypt");
        let (p, out) = translate(Some(&mut leg_a), Some(&mut leg_b), &wire, true).expect("relayed");
        assert_eq!(&p[..], &sr[..]);
        assert_eq!(&phone_b.ctx.decrypt_rtcp(&out).expect("B decrypts")[..], &sr[..]);
    }

    #[test]
    fn forged_replayed_and_wrongly_keyed_packets_are_dropped() {
        let ka = random_key().expect("key");
        let mut phone = Keyed::new(ka, false).expect("ctx");
        let mut leg = LegSrtp::default();
        leg.set(Some(ka), None).expect("set");
        let wire = phone.ctx.encrypt_rtp(&rtp(7)).expect("encrypt");
        assert!(translate(Some(&mut leg), None, &wire, false).is_some());
        assert!(translate(Some(&mut leg), None, &wire, false).is_none(), "a replay");
        let mut forged = phone.ctx.encrypt_rtp(&rtp(8)).expect("encrypt").to_vec();
        forged[20] ^= 1;
        assert!(
            translate(Some(&mut leg), None, &forged, false).is_none(),
            "a flipped bit"
        );
        let mut other = Keyed::new(random_key().expect("key"), false).expect("ctx");
        let wire = other.ctx.encrypt_rtp(&rtp(9)).expect("encrypt");
        assert!(translate(Some(&mut leg), None, &wire, false).is_none(), "another key");
        assert!(translate(Some(&mut leg), None, &rtp(10), false).is_none(), "plain RTP");
        for short in [&[][..], &[0x80], &[0x80, 200, 0, 1, 1, 2, 3, 4], &[0x80; 21]] {
            assert!(translate(Some(&mut leg), None, short, true).is_none());
            assert!(translate(Some(&mut leg), None, short, false).is_none());
        }
    }

    /// A plain RTCP packet before the first SRTCP one (libre sends such a `PING`) is dropped and
    /// does not spoil the replay window for what follows; SRTCP with the E bit clear is refused.
    #[test]
    fn a_plain_rtcp_packet_first_does_not_block_srtcp() {
        let ka = random_key().expect("key");
        let mut phone = Keyed::new(ka, false).expect("ctx");
        let mut leg = LegSrtp::default();
        leg.set(Some(ka), None).expect("set");
        let ping = [
            0x80, 0xcc, 0, 3, 0x12, 0x34, 0x56, 0x78, b'P', b'I', b'N', b'G', b'P', b'O', b'N', b'G',
        ];
        assert!(translate(Some(&mut leg), None, &ping, true).is_none());
        let wire = phone.ctx.encrypt_rtcp(&ping).expect("encrypt");
        let (p, _) = translate(Some(&mut leg), None, &wire, true).expect("SRTCP after a plain packet");
        assert_eq!(&p[..], &ping[..]);
        let mut clear = phone.ctx.encrypt_rtcp(&rtcp_sr()).expect("encrypt").to_vec();
        let e = clear.len() - 14;
        clear[e] &= 0x7f;
        assert!(translate(Some(&mut leg), None, &clear, true).is_none(), "E bit clear");
    }

    /// RFC 3711 Appendix B.2 key derivation feeds the cipher: check a packet against libsrtp's
    /// well-known test vector (srtp_driver's AES-CM-128/HMAC-SHA1-80 policy, key 0xe1f97a0d...).
    #[test]
    fn libsrtp_reference_packet() {
        let key: SrtpKey = [
            0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39, 0x0e, 0xc6,
            0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
        ];
        let plain: [u8; 28] = [
            0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
            0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab,
        ];
        let expected: [u8; 38] = [
            0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 0x4e, 0x55, 0xdc, 0x4c, 0xe7, 0x99,
            0x78, 0xd8, 0x8c, 0xa4, 0xd2, 0x15, 0x94, 0x9d, 0x24, 0x02, 0xb7, 0x8d, 0x6a, 0xcc, 0x99, 0xea, 0x17, 0x9b,
            0x8d, 0xbb,
        ];
        let mut k = Keyed::new(key, false).expect("ctx");
        assert_eq!(&k.ctx.encrypt_rtp(&plain).expect("encrypt")[..], &expected[..]);
        let mut leg = LegSrtp::default();
        leg.set(Some(key), None).expect("set");
        let (p, _) = translate(Some(&mut leg), None, &expected, false).expect("decrypts");
        assert_eq!(&p[..], &plain[..]);
    }
}
