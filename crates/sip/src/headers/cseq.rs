//! CSeq (§20.16), Call-ID (§20.8), Max-Forwards (§20.22) and delta-seconds values such as
//! Expires (§20.19). Overlarge numbers are errors, never wrapped (RFC 4475 §3.1.2.4).

use crate::error::Problem;
use crate::method::Method;
use crate::scan::{is_lws, parse_decimal, trim_lws};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(s: &str) -> Result<CSeq, Problem> {
        let s = trim_lws(s);
        let split = s.bytes().position(is_lws).ok_or(Problem::BadMethod)?;
        let seq = parse_decimal(&s[..split], u64::from(u32::MAX))? as u32;
        let method = Method::parse(trim_lws(&s[split..])).ok_or(Problem::BadMethod)?;
        Ok(CSeq { seq, method })
    }
}

/// A Call-ID is `word ["@" word]`: no white space, not empty.
pub fn parse_call_id(s: &str) -> Result<&str, Problem> {
    let s = trim_lws(s);
    if s.is_empty() {
        return Err(Problem::Empty);
    }
    if s.bytes().any(|b| is_lws(b) || b < 0x20) {
        return Err(Problem::BadToken);
    }
    Ok(s)
}

/// Max-Forwards: 0..=255.
pub fn parse_max_forwards(s: &str) -> Result<u8, Problem> {
    parse_decimal(trim_lws(s), 255).map(|v| v as u8)
}

/// delta-seconds up to 2^32-1 (Expires, Min-Expires, the `expires` Contact parameter).
pub fn parse_delta_seconds(s: &str) -> Result<u32, Problem> {
    parse_decimal(trim_lws(s), u64::from(u32::MAX)).map(|v| v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_with_fold_and_leading_zeros() {
        assert_eq!(
            CSeq::parse("0009\r\n  INVITE"),
            Ok(CSeq {
                seq: 9,
                method: Method::Invite
            })
        );
        assert_eq!(
            CSeq::parse("36893488147419103232 REGISTER"),
            Err(Problem::NumberTooLarge)
        );
        assert_eq!(CSeq::parse("4294967295 BYE").map(|c| c.seq), Ok(u32::MAX));
        assert_eq!(CSeq::parse("12"), Err(Problem::BadMethod));
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_max_forwards(" 0068 "), Ok(68));
        assert_eq!(parse_max_forwards("300"), Err(Problem::NumberTooLarge));
        assert_eq!(parse_delta_seconds("3600"), Ok(3600));
        assert!(parse_delta_seconds("10000000000000").is_err());
        assert_eq!(parse_call_id(" a@b "), Ok("a@b"));
        assert!(parse_call_id("a b").is_err());
    }
}
