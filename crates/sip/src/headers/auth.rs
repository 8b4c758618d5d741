//! Authorization / Proxy-Authorization credentials and WWW-Authenticate / Proxy-Authenticate
//! challenges (RFC 3261 §20.7, §20.27, §20.28, §20.44, §25.1; RFC 7616 §3.3–3.4).
//!
//! These headers are not comma lists: commas separate the auth-params of one value. Parameter
//! values are tokens or quoted strings; [`AuthParams::get`] returns them unquoted.

use std::borrow::Cow;

use crate::error::Problem;
use crate::scan::{is_lws, is_token, split_outside, trim_lws, unquote};

/// The comma-separated `name=value` list after the scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthParams<'a> {
    raw: &'a str,
}

impl<'a> AuthParams<'a> {
    fn iter_raw(&self) -> impl Iterator<Item = Result<(&'a str, &'a str), Problem>> + 'a {
        let empty = self.raw.is_empty();
        split_outside(self.raw, b',').filter(move |_| !empty).map(|item| {
            let item = item?;
            let (name, value) = item.split_once('=').ok_or(Problem::BadParameter)?;
            let (name, value) = (trim_lws(name), trim_lws(value));
            if !is_token(name) || value.is_empty() {
                return Err(Problem::BadParameter);
            }
            if !value.starts_with('"') && !is_token(value) {
                return Err(Problem::BadParameter);
            }
            Ok((name, value))
        })
    }

    pub fn validate(&self) -> Result<(), Problem> {
        self.iter_raw().try_for_each(|r| r.map(|_| ()))
    }

    /// Every parameter as (name, unquoted value).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> + 'a {
        self.iter_raw().filter_map(Result::ok).map(|(n, v)| (n, unquote(v)))
    }

    /// The unquoted value of `name` (case-insensitive name).
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.iter_raw()
            .filter_map(Result::ok)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unquote(v))
    }
}

fn split_scheme(s: &str) -> Result<(&str, AuthParams<'_>), Problem> {
    let s = trim_lws(s);
    let end = s.bytes().position(is_lws).unwrap_or(s.len());
    let scheme = &s[..end];
    if !is_token(scheme) {
        return Err(Problem::BadToken);
    }
    // Parameters are checked as they are read ([`AuthParams::validate`], [`Credentials::digest`]),
    // so a long Authorization header is walked once.
    Ok((
        scheme,
        AuthParams {
            raw: trim_lws(&s[end..]),
        },
    ))
}

/// What a client sends: `Digest username="...", realm="...", ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub scheme: &'a str,
    pub params: AuthParams<'a>,
}

impl<'a> Credentials<'a> {
    /// Reads the scheme; the parameters are checked when read (see [`AuthParams::validate`]).
    pub fn parse(s: &'a str) -> Result<Credentials<'a>, Problem> {
        let (scheme, params) = split_scheme(s)?;
        Ok(Credentials { scheme, params })
    }

    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
}

/// The fields of Digest credentials (RFC 7616 §3.4, RFC 3261 §22.4), read in one pass and
/// unquoted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestCredentials<'a> {
    pub username: Cow<'a, str>,
    pub realm: Cow<'a, str>,
    pub nonce: Cow<'a, str>,
    pub uri: Cow<'a, str>,
    pub response: Cow<'a, str>,
    pub algorithm: Option<Cow<'a, str>>,
    pub cnonce: Option<Cow<'a, str>>,
    pub opaque: Option<Cow<'a, str>>,
    pub qop: Option<Cow<'a, str>>,
    pub nc: Option<Cow<'a, str>>,
    pub userhash: bool,
}

impl<'a> Credentials<'a> {
    /// The Digest fields, when the scheme is Digest and username, realm, nonce, uri and response
    /// are all present.
    pub fn digest(&self) -> Result<DigestCredentials<'a>, Problem> {
        if !self.is_digest() {
            return Err(Problem::BadToken);
        }
        let mut d = DigestCredentials::default();
        let mut seen = 0u8;
        for item in self.params.iter_raw() {
            let (name, raw_value) = item?;
            let value = unquote(raw_value);
            let slot = match name.len() {
                2 if name.eq_ignore_ascii_case("nc") => {
                    d.nc = Some(value);
                    continue;
                }
                3 if name.eq_ignore_ascii_case("uri") => (&mut d.uri, 1),
                3 if name.eq_ignore_ascii_case("qop") => {
                    d.qop = Some(value);
                    continue;
                }
                5 if name.eq_ignore_ascii_case("realm") => (&mut d.realm, 2),
                5 if name.eq_ignore_ascii_case("nonce") => (&mut d.nonce, 4),
                6 if name.eq_ignore_ascii_case("cnonce") => {
                    d.cnonce = Some(value);
                    continue;
                }
                6 if name.eq_ignore_ascii_case("opaque") => {
                    d.opaque = Some(value);
                    continue;
                }
                8 if name.eq_ignore_ascii_case("username") => (&mut d.username, 8),
                8 if name.eq_ignore_ascii_case("response") => (&mut d.response, 16),
                8 if name.eq_ignore_ascii_case("userhash") => {
                    d.userhash = value.eq_ignore_ascii_case("true");
                    continue;
                }
                9 if name.eq_ignore_ascii_case("algorithm") => {
                    d.algorithm = Some(value);
                    continue;
                }
                _ => continue,
            };
            if seen & slot.1 == 0 {
                *slot.0 = value;
                seen |= slot.1;
            }
        }
        if seen != 31 {
            return Err(Problem::BadParameter);
        }
        Ok(d)
    }
}

/// What a server sends: `Digest realm="...", nonce="...", qop="auth", algorithm=SHA-256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge<'a> {
    pub scheme: &'a str,
    pub params: AuthParams<'a>,
}

impl<'a> Challenge<'a> {
    pub fn parse(s: &'a str) -> Result<Challenge<'a>, Problem> {
        let (scheme, params) = split_scheme(s)?;
        Ok(Challenge { scheme, params })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_credentials() {
        let c = Credentials::parse(
            "Digest username=\"1001\", realm=\"example.com\", nonce=\"abc,def\", uri=\"sip:example.com\",\r\n response=\"0123\", algorithm=SHA-256, cnonce=\"x\", qop=auth, nc=00000001",
        )
        .expect("valid");
        assert!(c.is_digest());
        assert_eq!(c.params.get("USERNAME").as_deref(), Some("1001"));
        assert_eq!(c.params.get("nonce").as_deref(), Some("abc,def"));
        assert_eq!(c.params.get("algorithm").as_deref(), Some("SHA-256"));
        assert_eq!(c.params.get("nc").as_deref(), Some("00000001"));
        assert_eq!(c.params.get("opaque"), None);
    }

    #[test]
    fn digest_fields_in_one_pass() {
        let c = Credentials::parse(
            "Digest username=\"bob\", realm=\"biloxi.com\", nonce=\"dcd98b\", uri=\"sip:bob@biloxi.com\", qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae4\", opaque=\"5ccc\"",
        )
        .expect("valid");
        let d = c.digest().expect("complete");
        assert_eq!((&*d.username, &*d.realm, &*d.nonce), ("bob", "biloxi.com", "dcd98b"));
        assert_eq!((&*d.uri, &*d.response), ("sip:bob@biloxi.com", "6629fae4"));
        assert_eq!(d.qop.as_deref(), Some("auth"));
        assert_eq!(d.nc.as_deref(), Some("00000001"));
        assert_eq!(d.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(d.opaque.as_deref(), Some("5ccc"));
        assert_eq!(d.algorithm, None);
        let partial = Credentials::parse("Digest username=\"bob\", realm=\"x\"").expect("valid syntax");
        assert_eq!(partial.digest(), Err(Problem::BadParameter));
    }

    #[test]
    fn unknown_scheme_parses() {
        let c = Credentials::parse("NoOneKnowsThisScheme opaque-data=here").expect("valid");
        assert!(!c.is_digest());
        assert_eq!(c.params.get("opaque-data").as_deref(), Some("here"));
    }

    #[test]
    fn malformed() {
        assert!(
            Credentials::parse("Digest username")
                .unwrap()
                .params
                .validate()
                .is_err()
        );
        assert!(Credentials::parse("Digest username=\"open").unwrap().digest().is_err());
        assert!(Credentials::parse("Dig\"est username=x").is_err());
        assert!(Challenge::parse("").is_err());
    }
}
