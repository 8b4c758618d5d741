//! Addresses: the `c=` connection lines (RFC 8866 §5.7) at session and media level, the address
//! in `o=` (§5.2), and their rewriting when media is anchored on another address.
//!
//! A connection address that is not an IP literal (an FQDN, allowed by the grammar) reads as
//! `None`. Multicast `/ttl` and `/count` suffixes are ignored when reading. The unspecified
//! address (`0.0.0.0`, `::`) is the RFC 2543 way of putting a stream on hold (RFC 3264 §8.4),
//! except with ICE, where it stands for "no default candidate yet" (RFC 8840 §4.3, port 9) and
//! the candidates carry the addresses.

use std::net::IpAddr;

use crate::error::Problem;
use crate::line::Line;

/// `IN IP4 <addr>` or `IN IP6 <addr>`: the value of a `c=` line for `addr`.
pub(crate) fn connection_value(addr: IpAddr) -> String {
    format!("IN {} {addr}", addr_type(addr))
}

fn addr_type(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// Checks `c=<nettype> <addrtype> <address>`.
pub(crate) fn check_connection(value: &str) -> Result<(), Problem> {
    match value.split_ascii_whitespace().count() {
        3 => Ok(()),
        _ => Err(Problem::BadConnection),
    }
}

/// Checks `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
pub(crate) fn check_origin(value: &str) -> Result<(), Problem> {
    match value.split_ascii_whitespace().count() {
        6 => Ok(()),
        _ => Err(Problem::BadOrigin),
    }
}

/// The IP address of a `c=` value, without any multicast suffix.
pub(crate) fn parse_connection(value: &str) -> Option<IpAddr> {
    let address = value.split_ascii_whitespace().nth(2)?;
    address.split('/').next()?.parse().ok()
}

/// The address of the first `c=` line among `lines`.
pub(crate) fn connection_in(lines: &[Line]) -> Option<IpAddr> {
    lines
        .iter()
        .find(|l| l.kind == b'c')
        .and_then(|l| parse_connection(&l.value))
}

/// Whether a `c=` line carries the unspecified address (hold, RFC 3264 §8.4).
pub(crate) fn is_null(line: &Line) -> bool {
    line.kind == b'c' && parse_connection(&line.value).is_some_and(|a| a.is_unspecified())
}

/// Whether ICE is in use at this level (`a=ice-ufrag`, RFC 8839 §5.4), which makes an
/// unspecified `c=` address mean something other than hold.
pub(crate) fn uses_ice(lines: &[Line]) -> bool {
    lines.iter().any(|l| l.is_attribute("ice-ufrag"))
}

/// Points every `c=` line among `lines` at `addr`, except those on hold when `keep_hold`;
/// returns whether any `c=` line was there.
pub(crate) fn rewrite_connections(lines: &mut [Line], addr: IpAddr, keep_hold: bool) -> bool {
    let mut found = false;
    for line in lines.iter_mut().filter(|l| l.kind == b'c') {
        found = true;
        if !(keep_hold && is_null(line)) {
            line.value = connection_value(addr);
        }
    }
    found
}

/// Rewrites the address type and address of an `o=` line (RFC 8866 §5.2), keeping the user name,
/// session id and version.
pub(crate) fn rewrite_origin(line: &mut Line, addr: IpAddr) {
    let fields: Vec<&str> = line.value.split_ascii_whitespace().collect();
    if let [user, id, version, ..] = fields.as_slice() {
        line.value = format!("{user} {id} {version} IN {} {addr}", addr_type(addr));
    }
}

/// Where a session-level `c=` goes when there is none: before the first `b= t= r= z= k= a=`
/// (RFC 8866 §5 order), or at the end.
pub(crate) fn session_connection_slot(lines: &[Line]) -> usize {
    lines
        .iter()
        .position(|l| matches!(l.kind, b'b' | b't' | b'r' | b'z' | b'k' | b'a'))
        .unwrap_or(lines.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_addresses() {
        assert_eq!(parse_connection("IN IP4 192.0.2.1"), Some(IpAddr::from([192, 0, 2, 1])));
        assert_eq!(
            parse_connection("IN IP4 224.2.1.1/127/3"),
            Some(IpAddr::from([224, 2, 1, 1]))
        );
        assert_eq!(parse_connection("IN IP6 2001:db8::1").map(|a| a.is_ipv6()), Some(true));
        assert_eq!(parse_connection("IN IP4 media.example.com"), None);
        assert!(is_null(&Line::new(b'c', "IN IP4 0.0.0.0")));
        assert!(is_null(&Line::new(b'c', "IN IP6 ::")));
        assert!(!is_null(&Line::new(b'c', "IN IP4 192.0.2.1")));
    }

    #[test]
    fn rewrites() {
        let mut o = Line::new(b'o', "- 1 2 IN IP4 10.0.0.1");
        rewrite_origin(&mut o, "2001:db8::9".parse().expect("v6"));
        assert_eq!(o.value, "- 1 2 IN IP6 2001:db8::9");
        let mut lines = vec![
            Line::new(b'c', "IN IP4 10.0.0.1"),
            Line::new(b'c', "IN IP4 0.0.0.0"),
            Line::new(b'a', "x"),
        ];
        assert!(rewrite_connections(&mut lines, IpAddr::from([203, 0, 113, 5]), true));
        assert_eq!(lines[0].value, "IN IP4 203.0.113.5");
        assert_eq!(lines[1].value, "IN IP4 0.0.0.0");
        assert!(rewrite_connections(&mut lines, IpAddr::from([203, 0, 113, 5]), false));
        assert_eq!(lines[1].value, "IN IP4 203.0.113.5");
        assert!(!rewrite_connections(
            &mut lines[2..],
            IpAddr::from([203, 0, 113, 5]),
            true
        ));
    }
}
