//! The attributes this crate understands, read from and written to `a=` lines: direction
//! (RFC 8866 §6.7, RFC 3264 §5.1), `rtpmap` (§6.6), `fmtp` (§6.15), `ptime` (§6.4) and `rtcp`
//! (RFC 3605 §2.1).
//!
//! The parser checks each of them once ([`check`]), so the accessors that read them later can
//! treat a line that does not parse as absent instead of failing. Every other attribute is kept
//! as an opaque line.

use std::fmt;
use std::net::IpAddr;

use crate::error::Problem;
use crate::line::Line;

/// The direction of a media stream (RFC 8866 §6.7, RFC 3264 §5.1); `SendRecv` when no
/// direction attribute is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name: `sendrecv`, `sendonly`, `recvonly`, `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction named by an attribute name (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }

    /// The direction seen from the other end: what an answer mirrors (RFC 3264 §6.1).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether media flows towards the side that wrote this direction.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Whether the side that wrote this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The direction a line sets, if it is a direction attribute.
pub(crate) fn direction_of(line: &Line) -> Option<Direction> {
    match line.attribute()? {
        (name, None) => Direction::from_name(name),
        _ => None,
    }
}

/// The first direction attribute among `lines`.
pub(crate) fn direction_in(lines: &[Line]) -> Option<Direction> {
    lines.iter().find_map(direction_of)
}

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rtpmap<'a> {
    pub pt: u8,
    pub name: &'a str,
    pub clock: u32,
    pub channels: Option<u8>,
}

/// A decimal number made of ASCII digits only (`str::parse` would also take a leading `+`).
pub(crate) fn decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An RTP payload type, 0–127.
pub(crate) fn payload_type(s: &str) -> Option<u8> {
    decimal::<u8>(s).filter(|&pt| pt <= 127)
}

pub(crate) fn parse_rtpmap(value: &str) -> Option<Rtpmap<'_>> {
    let (pt, encoding) = value.trim().split_once([' ', '\t'])?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty() && !n.contains([' ', '\t']))?;
    let clock = parts.next().and_then(decimal::<u32>).filter(|&c| c > 0)?;
    let channels = match parts.next() {
        Some(c) => Some(decimal::<u8>(c).filter(|&c| c > 0)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(Rtpmap {
        pt: payload_type(pt)?,
        name,
        clock,
        channels,
    })
}

/// `a=fmtp:<format> <parameters>`: the format and the parameters (possibly empty).
pub(crate) fn parse_fmtp(value: &str) -> Option<(&str, &str)> {
    let (format, params) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if format.is_empty() {
        return None;
    }
    Some((format, params.trim_start_matches([' ', '\t'])))
}

/// `a=rtcp:<port> [IN IP4|IP6 <address>]`: the port and the address when it is an IP literal.
pub(crate) fn parse_rtcp(value: &str) -> Option<(u16, Option<IpAddr>)> {
    let mut fields = value.split_ascii_whitespace();
    let port = decimal::<u16>(fields.next()?)?;
    let rest: Vec<&str> = fields.collect();
    match rest.as_slice() {
        [] => Some((port, None)),
        [_nettype, _addrtype, addr] => Some((port, addr.parse().ok())),
        _ => None,
    }
}

/// `a=ptime:<ms>`, fractions allowed by the grammar and rounded down here.
pub(crate) fn parse_ptime(value: &str) -> Option<u32> {
    let value = value.trim();
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    if whole.is_empty() { Some(0) } else { decimal(whole) }
}

/// The value of the `a=rtcp` line for `port` and an optional address.
pub(crate) fn rtcp_value(port: u16, addr: Option<IpAddr>) -> String {
    match addr {
        Some(a) => format!("{port} {}", crate::connection::connection_value(a)),
        None => port.to_string(),
    }
}

/// Checks the syntax of an attribute this crate reads; any other attribute is accepted as is.
pub(crate) fn check(name: &str, value: Option<&str>) -> Result<(), Problem> {
    if name.is_empty() {
        return Err(Problem::BadAttributeName);
    }
    if Direction::from_name(name).is_some() {
        return match value {
            None => Ok(()),
            Some(_) => Err(Problem::UnexpectedValue),
        };
    }
    let is = |known: &str| name.eq_ignore_ascii_case(known);
    let (valid, problem) = if is("rtpmap") {
        (value.and_then(parse_rtpmap).is_some(), Problem::BadRtpmap)
    } else if is("fmtp") {
        (value.and_then(parse_fmtp).is_some(), Problem::BadFmtp)
    } else if is("rtcp") {
        (value.and_then(parse_rtcp).is_some(), Problem::BadRtcp)
    } else if is("ptime") {
        (value.and_then(parse_ptime).is_some(), Problem::BadPtime)
    } else {
        return Ok(());
    };
    if valid { Ok(()) } else { Err(problem) }
}

/// What one level (the session, or one media section) already holds, to refuse a line that
/// conflicts with it: a second direction attribute, a second `a=rtpmap` for a payload type.
#[derive(Debug, Default)]
pub(crate) struct LevelCheck {
    direction: bool,
    rtpmaps: u128,
}

impl LevelCheck {
    /// The state of a level whose lines are `lines` (already checked).
    pub fn of(lines: &[Line]) -> LevelCheck {
        let mut level = LevelCheck::default();
        for line in lines {
            let _ = level.admit(line);
        }
        level
    }

    /// Checks one more line of this level and records it.
    pub fn admit(&mut self, line: &Line) -> Result<(), Problem> {
        let Some((name, value)) = line.attribute() else {
            return Ok(());
        };
        check(name, value)?;
        if direction_of(line).is_some() {
            if self.direction {
                return Err(Problem::ConflictingDirection);
            }
            self.direction = true;
        } else if let Some(r) = line.attribute_value("rtpmap").and_then(parse_rtpmap) {
            let bit = 1u128 << r.pt;
            if self.rtpmaps & bit != 0 {
                return Err(Problem::DuplicateRtpmap);
            }
            self.rtpmaps |= bit;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmap() {
        let r = parse_rtpmap("96 opus/48000/2").expect("valid");
        assert_eq!((r.pt, r.name, r.clock, r.channels), (96, "opus", 48000, Some(2)));
        let r = parse_rtpmap("0 PCMU/8000 ").expect("trailing space tolerated");
        assert_eq!((r.pt, r.name, r.clock, r.channels), (0, "PCMU", 8000, None));
        for bad in [
            "",
            "96",
            "96 opus",
            "96 opus/",
            "96 /8000",
            "128 x/8000",
            "+1 x/8000",
            "96 x/8000/0",
            "96 x/1/2/3",
        ] {
            assert_eq!(parse_rtpmap(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fmtp_rtcp_ptime() {
        assert_eq!(parse_fmtp("101 0-16"), Some(("101", "0-16")));
        assert_eq!(parse_fmtp("101"), Some(("101", "")));
        assert_eq!(parse_fmtp(" 101"), None);
        assert_eq!(parse_rtcp("53020"), Some((53020, None)));
        assert_eq!(
            parse_rtcp("53020 IN IP4 126.16.64.4"),
            Some((53020, Some(IpAddr::from([126, 16, 64, 4]))))
        );
        assert_eq!(parse_rtcp("53020 IN IP4 host.example"), Some((53020, None)));
        assert_eq!(parse_rtcp("53020 IN IP4"), None);
        assert_eq!(parse_rtcp("70000"), None);
        assert_eq!(parse_ptime("20"), Some(20));
        assert_eq!(parse_ptime("2.5"), Some(2));
        assert_eq!(parse_ptime(".5"), Some(0));
        for bad in ["", ".", "x", "20ms", "-1", "1e3"] {
            assert_eq!(parse_ptime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn checks() {
        assert_eq!(check("sendonly", None), Ok(()));
        assert_eq!(check("SendOnly", Some("x")), Err(Problem::UnexpectedValue));
        assert_eq!(check("rtpmap", None), Err(Problem::BadRtpmap));
        assert_eq!(check("", Some("x")), Err(Problem::BadAttributeName));
        assert_eq!(check("x-anything", Some("whatever : at all")), Ok(()));
    }
}
