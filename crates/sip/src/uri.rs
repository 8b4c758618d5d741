//! URIs: `sip:` and `sips:` (RFC 3261 §19.1), `tel:` (RFC 3966) and any other absolute URI kept
//! opaque. Parsing borrows from the input; `%`-escapes stay in the raw parts and are resolved on
//! request ([`Uri::user_unescaped`]) and by comparison.
//!
//! [`Uri::equivalent`] implements the comparison rules of §19.1.4: scheme and host compare
//! case-insensitively, the user part case-sensitively, escapes equal the characters they encode,
//! `user`/`ttl`/`method`/`maddr`/`transport` parameters must match when either side has them, other
//! parameters only when both have them, and URI headers must all match.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::error::Problem;
use crate::params::Params;
use crate::scan::{check_escapes, parse_decimal, unescape};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'a> {
    Sip,
    Sips,
    Tel,
    /// Any other absolute URI (`isbn:`, `http:`, `soap.beep:`...), kept opaque.
    Other(&'a str),
}

impl Scheme<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }

    pub fn is_sip_family(&self) -> bool {
        matches!(self, Scheme::Sip | Scheme::Sips)
    }
}

/// A parsed URI, borrowing from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a str,
    pub scheme: Scheme<'a>,
    /// Raw (still escaped) user part; for `tel:` the subscriber number.
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Raw host as written, brackets included for IPv6 references; empty for `tel:` and others.
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// Raw URI headers after `?`.
    pub headers: Option<&'a str>,
}

fn is_uri_char(b: u8) -> bool {
    b > 0x20 && b != 0x7f && !matches!(b, b'<' | b'>' | b'"')
}

impl<'a> Uri<'a> {
    pub fn parse(s: &'a str) -> Result<Uri<'a>, Problem> {
        if s.is_empty() {
            return Err(Problem::Empty);
        }
        // One pass: white space, characters never legal in a URI, the first ':' and '%'.
        let mut colon = None;
        let mut first_bad = None;
        let mut whitespace = false;
        let mut escaped = false;
        for (i, &c) in s.as_bytes().iter().enumerate() {
            if !is_uri_char(c) {
                whitespace |= c.is_ascii_whitespace();
                first_bad.get_or_insert(i);
            } else if c == b':' {
                colon.get_or_insert(i);
            } else if c == b'%' {
                escaped = true;
            }
        }
        if whitespace {
            return Err(Problem::WhitespaceInUri);
        }
        let colon = colon.ok_or(Problem::BadScheme)?;
        let scheme_text = &s[..colon];
        let rest = &s[colon + 1..];
        if !is_scheme(scheme_text) {
            return Err(Problem::BadScheme);
        }
        if first_bad.is_some() {
            return Err(Problem::BadUser);
        }
        let scheme = if scheme_text.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_text.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_text.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            if rest.is_empty() {
                return Err(Problem::Empty);
            }
            return Ok(Uri {
                raw: s,
                scheme: Scheme::Other(scheme_text),
                user: Some(rest),
                password: None,
                host: "",
                port: None,
                params: Params::default(),
                headers: None,
            });
        };
        if scheme == Scheme::Tel {
            let end = rest.find(';').unwrap_or(rest.len());
            let number = &rest[..end];
            if number.is_empty() {
                return Err(Problem::BadUser);
            }
            let params = Params::new(&rest[end..]);
            params.validate()?;
            return Ok(Uri {
                raw: s,
                scheme,
                user: Some(number),
                password: None,
                host: "",
                port: None,
                params,
                headers: None,
            });
        }
        // '@' is never legal unescaped after the userinfo, so the first one ends it.
        let (user, password, hostpart) = match memchr::memchr(b'@', rest.as_bytes()) {
            Some(at) => {
                let userinfo = &rest[..at];
                let (user, password) = match userinfo.find(':') {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(Problem::BadUser);
                }
                if escaped {
                    check_escapes(userinfo)?;
                }
                (Some(user), password, &rest[at + 1..])
            }
            None => (None, None, rest),
        };
        let hp_end = hostpart
            .bytes()
            .position(|c| c == b';' || c == b'?')
            .unwrap_or(hostpart.len());
        let (host, port) = split_hostport(&hostpart[..hp_end])?;
        let after = &hostpart[hp_end..];
        let (param_text, headers) = match after.find('?') {
            Some(q) => (&after[..q], Some(&after[q + 1..])),
            None => (after, None),
        };
        let params = Params::new(param_text);
        params.validate()?;
        if escaped {
            check_escapes(after)?;
        }
        Ok(Uri {
            raw: s,
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The URI exactly as it was written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The user part with `%HH` escapes resolved (`sip:%75ser@x` has user `user`).
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(unescape)
    }

    /// The user part unescaped, as text; `None` if absent or not UTF-8.
    pub fn user_str(&self) -> Option<Cow<'a, str>> {
        match self.user_unescaped()? {
            Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
            Cow::Owned(v) => String::from_utf8(v).ok().map(Cow::Owned),
        }
    }

    /// The host without IPv6 brackets.
    pub fn host_unbracketed(&self) -> &'a str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(self.host)
    }

    /// The host as an IP address, if it is one.
    pub fn host_ip(&self) -> Option<IpAddr> {
        self.host_unbracketed().parse().ok()
    }

    pub fn transport_param(&self) -> Option<&'a str> {
        self.params.value("transport")
    }

    /// `;lr` (loose routing, RFC 3261 §19.1.1).
    pub fn is_loose_route(&self) -> bool {
        self.params.contains("lr")
    }

    /// URI equivalence per RFC 3261 §19.1.4 (and plain case-insensitive comparison for schemes
    /// other than `sip`/`sips`).
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        match (self.scheme, other.scheme) {
            (Scheme::Sip, Scheme::Sip) | (Scheme::Sips, Scheme::Sips) => {}
            (Scheme::Tel, Scheme::Tel) => {
                return tel_digits(self.user) == tel_digits(other.user)
                    && params_match_both(&self.params, &other.params);
            }
            (Scheme::Other(a), Scheme::Other(b)) => {
                return a.eq_ignore_ascii_case(b) && self.user == other.user;
            }
            _ => return false,
        }
        if self.user.map(unescape) != other.user.map(unescape)
            || self.password.map(unescape) != other.password.map(unescape)
            || !hosts_equal(self.host, other.host)
            || self.port != other.port
        {
            return false;
        }
        for special in ["user", "ttl", "method", "maddr", "transport"] {
            let a = param_unescaped(&self.params, special.as_bytes());
            let b = param_unescaped(&other.params, special.as_bytes());
            match (a, b) {
                (None, None) => {}
                (Some(a), Some(b)) if opt_eq_ci(a, b) => {}
                _ => return false,
            }
        }
        if !params_match_both(&self.params, &other.params) {
            return false;
        }
        headers_equal(self.headers, other.headers)
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// Splits `host[:port]`, validating both. IPv6 references keep their brackets.
pub(crate) fn split_hostport(s: &str) -> Result<(&str, Option<u16>), Problem> {
    let (host, port_text) = if s.starts_with('[') {
        let close = s.find(']').ok_or(Problem::BadHost)?;
        let host = &s[..=close];
        host[1..close].parse::<Ipv6Addr>().map_err(|_| Problem::BadHost)?;
        let rest = &s[close + 1..];
        match rest.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if rest.is_empty() => (host, None),
            None => return Err(Problem::BadHost),
        }
    } else {
        match s.find(':') {
            Some(c) => (&s[..c], Some(&s[c + 1..])),
            None => (s, None),
        }
    };
    if !host.starts_with('[') {
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            return Err(Problem::BadHost);
        }
    }
    let port = match port_text {
        Some(p) => Some(parse_decimal(p, 65535).map_err(|_| Problem::BadPort)? as u16),
        None => None,
    };
    Ok((host, port))
}

fn hosts_equal(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let strip = |h: &str| h.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
    matches!((strip(a), strip(b)), (Some(x), Some(y)) if x == y)
}

fn opt_eq_ci(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => unescape(a).eq_ignore_ascii_case(&unescape(b)),
        _ => false,
    }
}

/// The first parameter whose unescaped name equals `name` (case-insensitive).
fn param_unescaped<'a>(p: &Params<'a>, name: &[u8]) -> Option<Option<&'a str>> {
    p.iter()
        .filter_map(Result::ok)
        .find(|q| unescape(q.name).eq_ignore_ascii_case(name))
        .map(|q| q.value)
}

/// Parameters present in both URIs must have equal values (names and values case-insensitive,
/// escapes resolved). A name repeated within one URI counts by its first occurrence.
fn params_match_both(a: &Params<'_>, b: &Params<'_>) -> bool {
    a.iter().filter_map(Result::ok).all(|pa| {
        let name = unescape(pa.name);
        match (param_unescaped(a, &name), param_unescaped(b, &name)) {
            (Some(va), Some(vb)) => opt_eq_ci(va, vb),
            _ => true,
        }
    })
}

/// Header sets must be equal: same names (case-insensitive) with the same unescaped values.
fn headers_equal(a: Option<&str>, b: Option<&str>) -> bool {
    fn pairs(h: Option<&str>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v: Vec<_> = h
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (unescape(k).to_ascii_lowercase(), unescape(v).into_owned())
            })
            .collect();
        v.sort();
        v
    }
    if a.is_none() && b.is_none() {
        return true;
    }
    pairs(a) == pairs(b)
}

/// Digits of a telephone number without visual separators (RFC 3966 §5.1.1).
fn tel_digits(n: Option<&str>) -> Option<String> {
    n.map(|n| {
        n.chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .map(|c| c.to_ascii_lowercase())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Uri<'_> {
        Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn full_sip_uri() {
        let x = u("sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?Subject=hi&Priority=urgent");
        assert_eq!(x.scheme, Scheme::Sips);
        assert_eq!(x.user, Some("alice"));
        assert_eq!(x.password, Some("secret"));
        assert_eq!(x.host, "[2001:db8::10]");
        assert_eq!(x.host_ip(), Some("2001:db8::10".parse().expect("ip")));
        assert_eq!(x.port, Some(5061));
        assert_eq!(x.transport_param(), Some("tcp"));
        assert!(x.is_loose_route());
        assert_eq!(x.headers, Some("Subject=hi&Priority=urgent"));
    }

    #[test]
    fn semicolon_and_escapes_in_user() {
        let x = u("sip:user;par=u%40example.net@example.com");
        assert_eq!(x.user, Some("user;par=u%40example.net"));
        assert_eq!(x.user_str().as_deref(), Some("user;par=u@example.net"));
        assert_eq!(x.host, "example.com");
        let y = u("sip:sips%3Auser%40example.com@example.net");
        assert_eq!(y.user_str().as_deref(), Some("sips:user@example.com"));
    }

    #[test]
    fn tel_and_other_schemes() {
        let t = u("tel:+1-201-555-0123;phone-context=example.com");
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some("+1-201-555-0123"));
        assert_eq!(t.params.value("phone-context"), Some("example.com"));
        assert!(t.equivalent(&u("tel:+12015550123;phone-context=example.com")));
        let o = u("soap.beep://192.0.2.103:3002");
        assert_eq!(o.scheme, Scheme::Other("soap.beep"));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Uri::parse("<sip:user@example.com>"), Err(Problem::BadScheme));
        assert_eq!(Uri::parse("sip:user@example.com; lr"), Err(Problem::WhitespaceInUri));
        assert_eq!(Uri::parse("sip:user@exa mple.com"), Err(Problem::WhitespaceInUri));
        assert_eq!(Uri::parse("sip:user@host:99999"), Err(Problem::BadPort));
        assert_eq!(Uri::parse("sip:user@[::1"), Err(Problem::BadHost));
        assert_eq!(Uri::parse("sip:us%zzer@host"), Err(Problem::BadEscape));
        assert_eq!(Uri::parse("sip:@host"), Err(Problem::BadUser));
        assert_eq!(Uri::parse("sip:host;;"), Err(Problem::EmptyParameter));
    }

    /// The equivalent and non-equivalent pairs listed in RFC 3261 §19.1.4.
    #[test]
    fn rfc3261_comparison_examples() {
        let equal = [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ];
        for (a, b) in equal {
            assert!(u(a).equivalent(&u(b)), "{a} == {b}");
            assert!(u(b).equivalent(&u(a)), "{b} == {a}");
        }
        let different = [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
            ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
        ];
        for (a, b) in different {
            assert!(!u(a).equivalent(&u(b)), "{a} != {b}");
            assert!(!u(b).equivalent(&u(a)), "{b} != {a}");
        }
        assert!(u("sip:[2001:db8::1]").equivalent(&u("sip:[2001:DB8:0::1]")));
        // Escaped parameter names and values equal their plain forms (RFC 4475 §3.1.1.3).
        let esc = u("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert!(esc.equivalent(&u("sip:caller@host5.example.net;lr;name=value%2541")));
        assert!(!esc.equivalent(&u("sip:caller@host5.example.net;lr;name=other")));
        // A repeated parameter compares by its first occurrence, so comparison stays reflexive.
        let dup = u("sip:h;par=1;par=2");
        assert!(dup.equivalent(&dup));
    }
}
