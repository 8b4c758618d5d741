//! The message parser: start line, header lines with folding, Content-Length and the body
//! (RFC 3261 §7.1–§7.5, §18.3, §25.1).
//!
//! One pass over the header section with `memchr`: each header line is split at its colon, its
//! name looked up, and its value recorded as offsets. Values are parsed later, on demand. The
//! whole header section must be UTF-8 (checked line by line, so no byte is visited twice). Leading
//! CRLFs before the start line are skipped (§7.5).
//!
//! A datagram may end right after its last header line, without the empty line.
//!
//! Tolerated as harmless (RFC 4475 §3.1.2.9/§3.1.2.10): several spaces between the parts of the
//! Request-Line and trailing white space after the version; such a start line is rewritten in
//! canonical form when the message is serialized. Everything else malformed is a [`ParseError`].

use bytes::Bytes;
use memchr::memchr;

use crate::error::{ParseError, Problem};
use crate::message::{Body, HeaderEntry, Message, StartLine, Text};
use crate::method::Method;
use crate::name::HeaderName;
use crate::scan::{is_token, parse_decimal, trim_lws};
use crate::uri::Uri;

/// Bounds applied while parsing peer input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest message accepted, in bytes (start line, headers and body).
    pub max_message_size: usize,
    /// The most header lines accepted in one message.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65_535,
            max_headers: 256,
        }
    }
}

/// How the message was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// UDP: Content-Length optional; without it the body is the rest of the datagram; bytes
    /// beyond Content-Length are ignored (§18.3).
    Datagram,
    /// TCP/TLS: Content-Length required.
    Stream,
}

impl Message {
    /// Parses one datagram with the default [`Limits`].
    pub fn parse(buf: impl Into<Bytes>) -> Result<Message, ParseError> {
        parse(buf.into(), Framing::Datagram, &Limits::default())
    }

    /// Parses with explicit framing rules and limits.
    pub fn parse_with(buf: Bytes, framing: Framing, limits: &Limits) -> Result<Message, ParseError> {
        parse(buf, framing, limits)
    }
}

#[inline]
fn utf8(b: &[u8]) -> Result<&str, ParseError> {
    std::str::from_utf8(b).map_err(|_| ParseError::HeaderNotUtf8)
}

pub(crate) fn parse(buf: Bytes, framing: Framing, limits: &Limits) -> Result<Message, ParseError> {
    let b: &[u8] = &buf;
    if b.len() > limits.max_message_size {
        return Err(ParseError::TooLarge {
            limit: limits.max_message_size,
        });
    }
    if b.len() > u32::MAX as usize {
        return Err(ParseError::TooLarge {
            limit: u32::MAX as usize,
        });
    }
    let mut pos = b
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .ok_or(ParseError::Empty)?;
    let msg_start = pos;

    // Start line.
    let nl = memchr(b'\n', &b[pos..]).ok_or(ParseError::Incomplete)? + pos;
    let line_end = if nl > pos && b[nl - 1] == b'\r' { nl - 1 } else { nl };
    let line = utf8(&b[pos..line_end])?;
    let (start, canonical) = parse_start_line(line, pos)?;
    pos = nl + 1;

    // Header lines.
    let mut headers: Vec<HeaderEntry> = Vec::with_capacity(16);
    let mut content_length: Option<usize> = None;
    let mut current: Option<(usize, usize)> = None;
    let head_end = loop {
        let Some(off) = memchr(b'\n', &b[pos..]) else {
            // A datagram whose last header line ends the packet, without the empty line: the
            // header section ends with the datagram (RFC 4475 §3.1.2.15 is sent that way).
            if framing == Framing::Datagram && pos == b.len() {
                if let Some((s, e)) = current.take() {
                    push_header(&buf, s, e, &mut headers, &mut content_length, limits)?;
                }
                break pos;
            }
            return Err(ParseError::Incomplete);
        };
        let nl = pos + off;
        let line_start = pos;
        let line_end = if nl > line_start && b[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        pos = nl + 1;
        if line_end == line_start {
            if let Some((s, e)) = current.take() {
                push_header(&buf, s, e, &mut headers, &mut content_length, limits)?;
            }
            break pos;
        }
        if matches!(b[line_start], b' ' | b'\t') {
            match current.as_mut() {
                Some(cur) => cur.1 = line_end,
                None => return Err(ParseError::BadHeaderLine),
            }
            continue;
        }
        if let Some((s, e)) = current.replace((line_start, line_end)) {
            push_header(&buf, s, e, &mut headers, &mut content_length, limits)?;
        }
    };

    let available = b.len() - head_end;
    let body_len = match (content_length, framing) {
        (Some(cl), _) if cl > available => return Err(ParseError::BodyTruncated),
        (Some(cl), _) => cl,
        (None, Framing::Datagram) => available,
        (None, Framing::Stream) => return Err(ParseError::MissingContentLength),
    };
    let msg_end = head_end + body_len;
    Ok(Message {
        start,
        headers,
        body: Body::Span(head_end as u32, msg_end as u32),
        pristine: canonical.then_some((msg_start as u32, msg_end as u32)),
        buf,
    })
}

fn push_header(
    buf: &Bytes,
    s: usize,
    e: usize,
    headers: &mut Vec<HeaderEntry>,
    content_length: &mut Option<usize>,
    limits: &Limits,
) -> Result<(), ParseError> {
    if headers.len() >= limits.max_headers {
        return Err(ParseError::TooLarge {
            limit: limits.max_message_size,
        });
    }
    let raw = utf8(&buf[s..e])?;
    let colon = memchr(b':', raw.as_bytes()).ok_or(ParseError::BadHeaderLine)?;
    let name = raw[..colon].trim_end_matches([' ', '\t']);
    if !is_token(name) {
        return Err(ParseError::BadHeaderLine);
    }
    let value_full = &raw[colon + 1..];
    let value = trim_lws(value_full);
    let value_start = if value.is_empty() {
        s + raw.len()
    } else {
        s + colon + 1 + (value_full.len() - value_full.trim_start_matches([' ', '\t', '\r', '\n']).len())
    };
    let header = HeaderName::from_name(name);
    if header == HeaderName::ContentLength {
        let n = parse_decimal(value, u32::MAX as u64).map_err(|_| ParseError::BadContentLength)? as usize;
        match content_length {
            Some(prev) if *prev != n => return Err(ParseError::DuplicateHeader("Content-Length")),
            _ => *content_length = Some(n),
        }
    }
    headers.push(HeaderEntry {
        name: header,
        name_text: Text::Span(s as u32, (s + name.len()) as u32),
        value: Text::Span(value_start as u32, (value_start + value.len()) as u32),
        raw_line: Some((s as u32, e as u32)),
    });
    Ok(())
}

/// Parses the start line; `base` is its offset in the buffer. Returns whether it is already in
/// canonical form (so the original bytes can be re-sent as they are).
fn parse_start_line(line: &str, base: usize) -> Result<(StartLine, bool), ParseError> {
    if let Some(rest) = strip_prefix_ci(line, "SIP/") {
        let (version, after) = rest.split_once(' ').unwrap_or((rest, ""));
        check_version(version)?;
        let (code_text, reason) = after.split_once(' ').unwrap_or((after, ""));
        if code_text.len() != 3 {
            return Err(ParseError::BadStatusCode);
        }
        let code = parse_decimal(code_text, 699).map_err(|_| ParseError::BadStatusCode)? as u16;
        if code < 100 {
            return Err(ParseError::BadStatusCode);
        }
        let reason_start = base + line.len() - reason.len();
        let canonical = line.starts_with("SIP/2.0 ") && after.contains(' ');
        let start = StartLine::Response {
            code,
            reason: Text::Span(reason_start as u32, (reason_start + reason.len()) as u32),
        };
        return Ok((start, canonical));
    }
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method_text), Some(uri), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ParseError::BadStartLine("expected METHOD URI SIP/2.0"));
    };
    if parts.next().is_some() {
        // `INVITE sip:user@example.com; lr SIP/2.0`: white space inside the Request-URI.
        return Err(ParseError::BadRequestUri(Problem::WhitespaceInUri));
    }
    match strip_prefix_ci(version, "SIP/") {
        Some(v) => check_version(v)?,
        None => return Err(ParseError::BadStartLine("bad SIP version")),
    }
    let method = Method::parse(method_text).ok_or(ParseError::BadStartLine("method is not a token"))?;
    let parsed = Uri::parse(uri).map_err(ParseError::BadRequestUri)?;
    if parsed.scheme.is_sip_family() && parsed.headers.is_some() {
        return Err(ParseError::BadRequestUri(Problem::UriHeadersNotAllowed));
    }
    let uri_start = base + (uri.as_ptr() as usize - line.as_ptr() as usize);
    let canonical = line.len() == method_text.len() + uri.len() + 2 + version.len() && version == "SIP/2.0";
    let start = StartLine::Request {
        method,
        uri: Text::Span(uri_start as u32, (uri_start + uri.len()) as u32),
    };
    Ok((start, canonical))
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v == "2.0" {
        return Ok(());
    }
    let looks_like_version = v.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit())
    });
    if looks_like_version {
        Err(ParseError::UnsupportedVersion)
    } else {
        Err(ParseError::BadStartLine("bad SIP version"))
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:1001@example.com>\r\n\
From: <sip:1001@example.com>;tag=456248\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 REGISTER\r\n\
Contact: <sip:1001@192.0.2.10:5060>;expires=3600\r\n\
l: 0\r\n\r\n";

    #[test]
    fn parses_and_reserializes_identically() {
        let m = Message::parse(REGISTER).expect("valid");
        assert!(m.is_request());
        assert_eq!(m.method(), Some(&Method::Register));
        assert_eq!(m.request_uri_str(), Some("sip:example.com"));
        assert_eq!(m.header("content-length"), Some("0"));
        assert_eq!(m.call_id(), Ok("843817637684230@998sdasdh09"));
        assert_eq!(&m.to_bytes()[..], REGISTER);
        let mut out = Vec::new();
        let mut changed = m.clone();
        changed.set_header(HeaderName::MaxForwards, "69");
        changed.set_header(HeaderName::MaxForwards, "70");
        changed.write_to(&mut out);
        assert_eq!(Message::parse(out).expect("reparse"), m);
    }

    #[test]
    fn leading_crlf_and_bare_lf() {
        let m = Message::parse(&b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\n\n"[..])
            .expect("valid");
        assert_eq!(m.via().map(|v| v.host), Ok("h"));
    }

    #[test]
    fn start_line_errors() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"", ParseError::Empty),
            (b"\r\n\r\n", ParseError::Empty),
            (b"INVITE sip:a@b SIP/2.0\r\nVia: x", ParseError::Incomplete),
            (b"OPTIONS sip:a@b SIP/7.0\r\n\r\n", ParseError::UnsupportedVersion),
            (
                b"OPTIONS sip:a@b HTTP/1.1\r\n\r\n",
                ParseError::BadStartLine("bad SIP version"),
            ),
            (b"SIP/2.0 4294967301 big\r\n\r\n", ParseError::BadStatusCode),
            (b"SIP/2.0 99 low\r\n\r\n", ParseError::BadStatusCode),
            (
                b"GET /\r\n\r\n",
                ParseError::BadStartLine("expected METHOD URI SIP/2.0"),
            ),
            (
                b"INVITE <sip:a@b> SIP/2.0\r\n\r\n",
                ParseError::BadRequestUri(Problem::BadScheme),
            ),
            (b"OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n", ParseError::BadHeaderLine),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\n folded-first: x\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (
                b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
                ParseError::BadHeaderLine,
            ),
            (b"OPTIONS sip:a@b SIP/2.0\r\nX: \xff\r\n\r\n", ParseError::HeaderNotUtf8),
        ];
        for (input, want) in cases {
            assert_eq!(
                Message::parse(Bytes::from_static(input)).err(),
                Some(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn content_length_rules() {
        let ok = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5\r\n\r\nhelloTRAILING";
        let m = Message::parse(&ok[..]).expect("valid");
        assert_eq!(m.body(), b"hello");
        let none = b"MESSAGE sip:a@b SIP/2.0\r\n\r\nrest";
        assert_eq!(Message::parse(&none[..]).expect("valid").body(), b"rest");
        assert_eq!(
            Message::parse_with(Bytes::from_static(none), Framing::Stream, &Limits::default()).err(),
            Some(ParseError::MissingContentLength)
        );
        let neg = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: -5\r\n\r\n";
        assert_eq!(Message::parse(&neg[..]).err(), Some(ParseError::BadContentLength));
        let big = b"MESSAGE sip:a@b SIP/2.0\r\nl: 99\r\n\r\nshort";
        assert_eq!(Message::parse(&big[..]).err(), Some(ParseError::BodyTruncated));
        let two = b"MESSAGE sip:a@b SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\nxy";
        assert_eq!(
            Message::parse(&two[..]).err(),
            Some(ParseError::DuplicateHeader("Content-Length"))
        );
        let limits = Limits {
            max_message_size: 10,
            ..Limits::default()
        };
        assert_eq!(
            Message::parse_with(Bytes::from_static(ok), Framing::Datagram, &limits).err(),
            Some(ParseError::TooLarge { limit: 10 })
        );
    }

    #[test]
    fn tolerated_start_lines_are_rewritten() {
        let m = Message::parse(&b"OPTIONS  sip:a@b  SIP/2.0  \r\nl: 0\r\n\r\n"[..]).expect("tolerated");
        assert!(!m.is_unchanged());
        assert_eq!(&m.to_bytes()[..], b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n");
    }

    #[test]
    fn empty_reason_phrase() {
        let m = Message::parse(&b"SIP/2.0 100 \r\nl: 0\r\n\r\n"[..]).expect("valid");
        assert_eq!(m.status_code(), Some(100));
        assert_eq!(m.reason_phrase(), Some(""));
        let m = Message::parse(&b"SIP/2.0 180\r\nl: 0\r\n\r\n"[..]).expect("valid");
        assert_eq!(m.reason_phrase(), Some(""));
        assert_eq!(&m.to_bytes()[..], b"SIP/2.0 180 \r\nl: 0\r\n\r\n");
    }
}
