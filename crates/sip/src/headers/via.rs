//! Via (RFC 3261 §20.42, §18.2.1) with the `received` and `rport` parameters of RFC 3581.
//!
//! `sent-protocol` allows white space around each `/` and folds anywhere (RFC 4475 §3.1.1.1).

use crate::error::Problem;
use crate::params::Params;
use crate::scan::{is_lws, is_token_byte, parse_decimal, trim_lws};
use crate::uri::split_hostport;

/// The magic cookie that starts every RFC 3261 branch (§8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    pub protocol: &'a str,
    pub version: &'a str,
    /// `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS` or any other token, as written.
    pub transport: &'a str,
    /// The sent-by host, brackets kept for IPv6.
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_lws(&mut self) {
        let b = self.s.as_bytes();
        while self.pos < b.len() && is_lws(b[self.pos]) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Result<&'a str, Problem> {
        self.skip_lws();
        let b = self.s.as_bytes();
        let start = self.pos;
        while self.pos < b.len() && is_token_byte(b[self.pos]) {
            self.pos += 1;
        }
        if start == self.pos {
            Err(Problem::BadProtocol)
        } else {
            Ok(&self.s[start..self.pos])
        }
    }

    fn slash(&mut self) -> Result<(), Problem> {
        self.skip_lws();
        if self.s.as_bytes().get(self.pos) == Some(&b'/') {
            self.pos += 1;
            Ok(())
        } else {
            Err(Problem::BadProtocol)
        }
    }
}

impl<'a> Via<'a> {
    pub fn parse(s: &'a str) -> Result<Via<'a>, Problem> {
        let mut c = Cursor { s, pos: 0 };
        let protocol = c.token()?;
        c.slash()?;
        let version = c.token()?;
        c.slash()?;
        let transport = c.token()?;
        let before = c.pos;
        c.skip_lws();
        if c.pos == before {
            return Err(Problem::MissingSentBy);
        }
        let b = s.as_bytes();
        let host_start = c.pos;
        if b.get(c.pos) == Some(&b'[') {
            c.pos += memchr::memchr(b']', &b[c.pos..]).ok_or(Problem::BadHost)? + 1;
        } else {
            while c.pos < b.len() && !matches!(b[c.pos], b':' | b';') && !is_lws(b[c.pos]) {
                c.pos += 1;
            }
        }
        let host_text = &s[host_start..c.pos];
        if host_text.is_empty() {
            return Err(Problem::MissingSentBy);
        }
        let (host, _) = split_hostport(host_text)?;
        let after_host = c.pos;
        c.skip_lws();
        let port = if b.get(c.pos) == Some(&b':') {
            c.pos += 1;
            c.skip_lws();
            let digits_start = c.pos;
            while c.pos < b.len() && b[c.pos].is_ascii_digit() {
                c.pos += 1;
            }
            Some(parse_decimal(&s[digits_start..c.pos], 65535).map_err(|_| Problem::BadPort)? as u16)
        } else {
            c.pos = after_host;
            None
        };
        let params = after_params(&s[c.pos..])?;
        Ok(Via {
            protocol,
            version,
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params.value("branch")
    }

    /// Whether the branch carries the RFC 3261 magic cookie and something after it, so that it can
    /// be used alone to match transactions (§17.2.3). A bare cookie does not count (RFC 4475 §3.2.1).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_COOKIE.len() && b.starts_with(BRANCH_COOKIE))
    }

    pub fn received(&self) -> Option<&'a str> {
        self.params.value("received")
    }

    /// `None`: no rport; `Some(None)`: `;rport` without a value (a request asking for it);
    /// `Some(Some(p))`: filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| parse_decimal(p, 65535).ok()).map(|p| p as u16))
    }

    pub fn maddr(&self) -> Option<&'a str> {
        self.params.value("maddr")
    }

    pub fn is_sip_2_0(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("SIP") && self.version == "2.0"
    }
}

fn after_params(rest: &str) -> Result<Params<'_>, Problem> {
    let t = trim_lws(rest);
    if !t.is_empty() && !t.starts_with(';') {
        return Err(Problem::TrailingGarbage);
    }
    let params = Params::new(rest);
    params.validate()?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_and_folded() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").expect("valid");
        assert_eq!(
            (v.protocol, v.version, v.transport, v.host),
            ("SIP", "2.0", "UDP", "192.0.2.2")
        );
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8").expect("valid");
        assert_eq!(v.host, "spindle.example.com");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        assert!(v.has_rfc3261_branch());
    }

    #[test]
    fn ports_rport_received_ipv6() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9]:5070;rport;branch=z9hG4bKx").expect("valid");
        assert_eq!(v.host, "[2001:db8::9]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        let v = Via::parse("SIP/2.0/TCP h.example.com : 5061 ;received=192.0.2.1;rport=4000").expect("valid");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.received(), Some("192.0.2.1"));
        assert_eq!(v.rport(), Some(Some(4000)));
    }

    #[test]
    fn malformed() {
        assert_eq!(Via::parse("SIP/2.0/UDP 192.0.2.15;;"), Err(Problem::EmptyParameter));
        assert_eq!(Via::parse("SIP/2.0/UDP"), Err(Problem::MissingSentBy));
        assert_eq!(Via::parse("SIP/2.0 host"), Err(Problem::BadProtocol));
        assert_eq!(Via::parse("SIP/2.0/UDP host:70000"), Err(Problem::BadPort));
        assert_eq!(Via::parse("SIP/2.0/UDP host junk"), Err(Problem::TrailingGarbage));
        assert_eq!(
            Via::parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").map(|v| v.has_rfc3261_branch()),
            Ok(false)
        );
    }
}
