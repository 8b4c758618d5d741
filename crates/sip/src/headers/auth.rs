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
    let params = AuthParams { raw: trim_lws(&s[end..]) };
    params.validate()?;
    Ok((scheme, params))
}

/// What a client sends: `Digest username="...", realm="...", ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    pub scheme: &'a str,
    pub params: AuthParams<'a>,
}

impl<'a> Credentials<'a> {
    pub fn parse(s: &'a str) -> Result<Credentials<'a>, Problem> {
        let (scheme, params) = split_scheme(s)?;
        Ok(Credentials { scheme, params })
    }

    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
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
    fn unknown_scheme_parses() {
        let c = Credentials::parse("NoOneKnowsThisScheme opaque-data=here").expect("valid");
        assert!(!c.is_digest());
        assert_eq!(c.params.get("opaque-data").as_deref(), Some("here"));
    }

    #[test]
    fn malformed() {
        assert!(Credentials::parse("Digest username").is_err());
        assert!(Credentials::parse("Digest username=\"open").is_err());
        assert!(Challenge::parse("").is_err());
    }
}
