//! SDES keys: `a=crypto:<tag> <crypto-suite> inline:<key||salt>[|lifetime][|MKI:len] [params]`
//! (RFC 4568 §9.1) on `RTP/SAVP` and `RTP/SAVPF` media lines. Only the suite every SIP phone
//! speaks is understood, `AES_CM_128_HMAC_SHA1_80` (RFC 4568 §6.2.1: a 16-byte master key and a
//! 14-byte master salt, base64 in one `inline:` key); other suites, several keys per line, MKIs
//! and session parameters are read as "not usable" rather than errors.

use std::fmt;

/// The one suite understood.
pub const AES_CM_128_HMAC_SHA1_80: &str = "AES_CM_128_HMAC_SHA1_80";

/// Master key and salt of `AES_CM_128_HMAC_SHA1_80`: 16 + 14 bytes.
pub const KEY_SALT_LEN: usize = 30;

/// One usable `a=crypto` value.
#[derive(Clone, PartialEq, Eq)]
pub struct Crypto {
    /// The tag an answer names the accepted offer line by (1–999999999).
    pub tag: u32,
    /// Master key (16 bytes) followed by master salt (14 bytes).
    pub key_salt: [u8; KEY_SALT_LEN],
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: this ends up in logs.
        f.debug_struct("Crypto").field("tag", &self.tag).finish_non_exhaustive()
    }
}

impl Crypto {
    /// Reads an `a=crypto` value; `None` unless it is a single inline `AES_CM_128_HMAC_SHA1_80`
    /// key of the right length without MKI or session parameters.
    pub fn parse(value: &str) -> Option<Crypto> {
        let mut fields = value.split_ascii_whitespace();
        let tag = fields.next()?;
        if tag.is_empty() || tag.len() > 10 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let tag: u32 = tag.parse().ok()?;
        if !fields.next()?.eq_ignore_ascii_case(AES_CM_128_HMAC_SHA1_80) {
            return None;
        }
        let params = fields.next()?;
        if fields.next().is_some() || params.contains(';') {
            return None; // session parameters (UNENCRYPTED_SRTP, KDR, ...) or several keys
        }
        let inline = params.strip_prefix("inline:")?;
        let mut parts = inline.split('|');
        let key = parts.next()?;
        for extra in parts {
            // A lifetime is fine (we rekey long before 2^31 packets); an MKI is not supported.
            if extra.contains(':') {
                return None;
            }
        }
        let bytes = base64_decode(key)?;
        let key_salt: [u8; KEY_SALT_LEN] = bytes.try_into().ok()?;
        Some(Crypto { tag, key_salt })
    }

    /// The `a=crypto` value: `<tag> AES_CM_128_HMAC_SHA1_80 inline:<base64>`.
    pub fn value(&self) -> String {
        format!(
            "{} {AES_CM_128_HMAC_SHA1_80} inline:{}",
            self.tag,
            base64_encode(&self.key_salt)
        )
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64; padding optional (some phones leave it out).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4568_example_parses_and_round_trips() {
        // RFC 4568 §9.1's example key without lifetime/MKI is 40 base64 characters = 30 bytes.
        let v = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let c = Crypto::parse(v).expect("usable");
        assert_eq!(c.tag, 1);
        assert_eq!(c.value(), v);
        assert_eq!(Crypto::parse(&c.value()), Some(c.clone()));
        let with_lifetime = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20";
        assert_eq!(Crypto::parse(with_lifetime), Some(c));
        assert!(
            !format!("{:?}", Crypto::parse(v)).contains("PS1u"),
            "keys stay out of logs"
        );
    }

    #[test]
    fn unusable_lines_are_none() {
        for v in [
            "1 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP",
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
            "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80",
            "",
        ] {
            assert_eq!(Crypto::parse(v), None, "{v}");
        }
    }

    #[test]
    fn media_sections_read_and_rewrite_their_keys() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
            m=audio 4000 RTP/SAVP 0\r\n\
            a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
            a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
            m=audio 5000 RTP/AVP 0\r\nm=video 6000 UDP/TLS/RTP/SAVPF 96\r\n";
        let mut sdp = crate::Sdp::parse(sdp.as_bytes()).expect("parses");
        let m: Vec<_> = sdp.media().collect();
        assert!(m[0].is_srtp() && !m[1].is_srtp() && m[2].is_srtp());
        assert_eq!(m[0].crypto().iter().map(|c| c.tag).collect::<Vec<_>>(), [2]);
        assert!(m[1].crypto().is_empty() && m[2].crypto().is_empty());
        let mine = Crypto {
            tag: 2,
            key_salt: [7; KEY_SALT_LEN],
        };
        {
            let mut first = sdp.media_mut().next().expect("audio");
            assert_eq!(first.remove_attribute("crypto"), 2);
            first.push_attribute("crypto", Some(&mine.value())).expect("pushed");
            first.set_proto("RTP/AVP");
        }
        let again = crate::Sdp::parse(&sdp.to_bytes()).expect("parses");
        let first = again.media().next().expect("audio");
        assert_eq!((first.proto(), first.is_srtp()), ("RTP/AVP", false));
        assert_eq!(first.crypto(), [mine]);
    }

    #[test]
    fn base64_round_trips_every_length() {
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).as_deref(), Some(&data[..]));
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
    }
}
