//! `name-addr` / `addr-spec` values with header parameters: From, To (§20.20, §20.39), Contact
//! (§20.10), Route, Record-Route (§20.34, §20.30), Reply-To.
//!
//! Rules that matter (§20, RFC 4475 §3.1.2.13/§3.3.12/§3.3.13): without `<>`, everything after the
//! first `;` behind the host is a header parameter, and a URI carrying `?` headers must be
//! enclosed in `<>`. A display name is a quoted string or a run of tokens; nothing may stand
//! between `<` and the URI.

use std::borrow::Cow;

use crate::error::Problem;
use crate::params::Params;
use crate::scan::{is_lws, is_token_byte, parse_decimal, quoted_end, trim_lws, unquote};
use crate::uri::Uri;

use super::parse_delta_seconds;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quotes kept), if any.
    pub display_raw: Option<&'a str>,
    pub uri: Uri<'a>,
    /// Whether the URI was enclosed in `<>`.
    pub bracketed: bool,
    /// Header parameters (`tag`, `expires`, `q`, ...).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    pub fn parse(s: &'a str) -> Result<NameAddr<'a>, Problem> {
        let s = trim_lws(s);
        if s.is_empty() {
            return Err(Problem::Empty);
        }
        let b = s.as_bytes();
        let (display_raw, lt) = if b[0] == b'"' {
            let end = quoted_end(b, 0)?;
            let rest = &s[end..];
            let skip = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii() && is_lws(c as u8)).len();
            if b.get(end + skip) != Some(&b'<') {
                return Err(Problem::BadDisplayName);
            }
            (Some(&s[..end]), Some(end + skip))
        } else {
            match memchr::memchr(b'<', b) {
                Some(lt) => {
                    let name = trim_lws(&s[..lt]);
                    if !name.bytes().all(|c| is_token_byte(c) || is_lws(c)) {
                        return Err(Problem::BadDisplayName);
                    }
                    (if name.is_empty() { None } else { Some(name) }, Some(lt))
                }
                None => (None, None),
            }
        };
        let (uri_text, rest, bracketed) = match lt {
            Some(lt) => {
                let gt = memchr::memchr(b'>', &b[lt..]).ok_or(Problem::UnterminatedAngle)? + lt;
                (&s[lt + 1..gt], &s[gt + 1..], true)
            }
            None => {
                let end = addr_spec_end(s);
                let uri_text = &s[..end];
                if uri_text.contains(['?', ',']) {
                    return Err(Problem::UriNeedsAngleBrackets);
                }
                (uri_text, &s[end..], false)
            }
        };
        let uri = Uri::parse(uri_text)?;
        let rest_trim = trim_lws(rest);
        if !rest_trim.is_empty() && !rest_trim.starts_with(';') {
            return Err(Problem::TrailingGarbage);
        }
        let params = Params::new(rest);
        params.validate()?;
        Ok(NameAddr {
            display_raw,
            uri,
            bracketed,
            params,
        })
    }

    /// The display name with quotes and escapes resolved.
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        self.display_raw.map(unquote)
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.params.value("tag")
    }
}

/// Where an addr-spec without `<>` ends: at white space, or at the first `;` behind the host
/// (a `;` in the user part, before `@`, belongs to the URI).
fn addr_spec_end(s: &str) -> usize {
    let b = s.as_bytes();
    let token_end = b.iter().position(|&c| is_lws(c)).unwrap_or(b.len());
    let token = &b[..token_end];
    let host_start = memchr::memchr(b'@', token).map(|at| at + 1).unwrap_or(0);
    memchr::memchr(b';', &token[host_start..])
        .map(|i| i + host_start)
        .unwrap_or(token_end)
}

/// One Contact value: `*` or an address with `expires` and `q` parameters (§20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    Star,
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    pub fn parse(s: &'a str) -> Result<Contact<'a>, Problem> {
        if trim_lws(s) == "*" {
            return Ok(Contact::Star);
        }
        let addr = NameAddr::parse(s)?;
        Ok(Contact::Addr(addr))
    }

    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }

    /// The `expires` parameter: `None` when absent, `Some(Err)` when malformed or beyond 2^32-1.
    pub fn expires(&self) -> Option<Result<u32, Problem>> {
        let v = self.addr()?.params.get("expires")?;
        Some(v.ok_or(Problem::BadNumber).and_then(parse_delta_seconds))
    }

    /// The `q` parameter in thousandths (0..=1000); `None` when absent.
    pub fn q_millis(&self) -> Option<Result<u16, Problem>> {
        let v = self.addr()?.params.get("q")?;
        Some(v.ok_or(Problem::BadNumber).and_then(parse_qvalue))
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(s: &str) -> Result<u16, Problem> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !matches!(int, "0" | "1") {
        return Err(Problem::BadNumber);
    }
    let frac_v = if frac.is_empty() { 0 } else { parse_decimal(frac, 999)? };
    let scaled = frac_v * 10u64.pow(3 - frac.len() as u32);
    let v = if int == "1" { 1000 + scaled } else { scaled };
    if v > 1000 {
        return Err(Problem::NumberTooLarge);
    }
    Ok(v as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_display_with_escapes_and_folds() {
        let n = NameAddr::parse("\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8")
            .expect("valid");
        assert_eq!(n.display_name().as_deref(), Some("J Rosenberg \\\""));
        assert_eq!(n.uri.host, "example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
    }

    #[test]
    fn addr_spec_params_are_header_params() {
        let n = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").expect("valid");
        assert_eq!(n.uri.as_str(), "sip:+19725552222@gw1.example.net");
        assert!(n.params.contains("unknownparam"));
        let n = NameAddr::parse("<sip:+19725552222@gw1.example.net;unknownparam>").expect("valid");
        assert!(n.uri.params.contains("unknownparam"));
        assert!(n.params.is_empty());
        let n = NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").expect("valid");
        assert_eq!(n.tag(), Some("1918181833n"));
    }

    #[test]
    fn token_display_names() {
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").expect("valid");
        assert_eq!(n.display_raw, Some("caller"));
        let n = NameAddr::parse("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>").expect("valid");
        assert_eq!(n.display_raw, Some("token1~` token2'+_ token3*%!.-"));
    }

    #[test]
    fn malformed() {
        assert_eq!(
            NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>"),
            Err(Problem::UnterminatedQuote)
        );
        assert_eq!(
            NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>"),
            Err(Problem::BadDisplayName)
        );
        assert_eq!(
            NameAddr::parse("< sip:t.watson@example.org >"),
            Err(Problem::WhitespaceInUri)
        );
        assert_eq!(
            NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            Err(Problem::UriNeedsAngleBrackets)
        );
        assert_eq!(
            NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;"),
            Err(Problem::EmptyParameter)
        );
        assert_eq!(NameAddr::parse("<sip:a@b> junk"), Err(Problem::TrailingGarbage));
        assert_eq!(NameAddr::parse("<sip:a@b"), Err(Problem::UnterminatedAngle));
    }

    #[test]
    fn contact_params() {
        let c = Contact::parse("<sip:u@h>;expires=60;q=0.5").expect("valid");
        assert_eq!(c.expires(), Some(Ok(60)));
        assert_eq!(c.q_millis(), Some(Ok(500)));
        assert_eq!(Contact::parse(" * "), Ok(Contact::Star));
        let c = Contact::parse("<sip:u@h>;expires=280297596632815").expect("valid syntax");
        assert_eq!(c.expires(), Some(Err(Problem::NumberTooLarge)));
        assert_eq!(parse_qvalue("1.000"), Ok(1000));
        assert_eq!(parse_qvalue("0.33"), Ok(330));
        assert!(parse_qvalue("1.5").is_err());
        assert!(parse_qvalue("2").is_err());
    }
}
