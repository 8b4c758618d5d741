//! Checks a received message must pass before anything acts on it, and the stateless verdict of a
//! UAS on a request addressed to it (RFC 3261 §8.1.1, §8.2.1–§8.2.3, §16.3; RFC 4475 §3.1.2, §3.3).
//!
//! [`Message::check_essentials`] parses the headers every element relies on (Via, From, To,
//! Call-ID, CSeq, Max-Forwards, Contact) and checks that single-valued ones appear once and that
//! the CSeq method matches the request method. A request that fails gets the error as a 400
//! reason (505 for a version); a response that fails is dropped.
//!
//! [`inspect_request`] then applies the UAS rules in the RFC's order: URI scheme (416), method
//! (405/501), Require (420), body type (415), Accept against the answer type (406).

use std::borrow::Cow;

use crate::error::ParseError;
use crate::headers::Contact;
use crate::message::Message;
use crate::method::Method;
use crate::name::HeaderName;
use crate::uri::Scheme;

impl Message {
    /// Parses and checks the headers every element relies on. See the module docs.
    pub fn check_essentials(&self) -> Result<(), ParseError> {
        let mut vias = 0;
        for via in self.vias() {
            via?;
            vias += 1;
        }
        if vias == 0 {
            return Err(ParseError::MissingHeader("Via"));
        }
        self.from_header()?;
        self.to_header()?;
        self.call_id()?;
        let cseq = self.cseq()?;
        self.max_forwards()?;
        for contact in self.contacts() {
            contact?;
        }
        if let Some(method) = self.method()
            && cseq.method != *method
        {
            return Err(ParseError::CSeqMethodMismatch);
        }
        Ok(())
    }
}

/// What a UAS supports, for [`inspect_request`].
#[derive(Debug, Clone)]
pub struct UasPolicy<'a> {
    /// Request-URI schemes handled (`sip`, `sips`, `tel`...).
    pub schemes: &'a [&'a str],
    /// Methods implemented; they form the Allow header of 405/501.
    pub methods: &'a [Method],
    /// Option tags supported (Require check).
    pub extensions: &'a [&'a str],
    /// Body media types understood; a request with another body type gets 415.
    pub body_types: &'a [&'a str],
    /// The media type an INVITE is answered with, checked against the request's Accept (406).
    pub answer_type: Option<&'a str>,
}

/// The stateless decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Accept,
    /// Answer with this status, reason and extra headers.
    Reject {
        status: u16,
        reason: Cow<'static, str>,
        headers: Vec<(HeaderName, String)>,
    },
}

impl Verdict {
    fn reject(status: u16) -> Verdict {
        Verdict::Reject {
            status,
            reason: Cow::Borrowed(crate::status::reason_phrase(status)),
            headers: Vec::new(),
        }
    }

    fn from_error(e: ParseError) -> Verdict {
        Verdict::Reject {
            status: e.status_code(),
            reason: Cow::Owned(e.to_string()),
            headers: Vec::new(),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Verdict::Accept => None,
            Verdict::Reject { status, .. } => Some(*status),
        }
    }

    /// The response to send for a rejection (`None` for `Accept`).
    pub fn response(&self, request: &Message, to_tag: &str) -> Option<Message> {
        let Verdict::Reject {
            status,
            reason,
            headers,
        } = self
        else {
            return None;
        };
        let mut resp = Message::response_to(request, *status, Some(reason), Some(to_tag));
        for (name, value) in headers {
            resp.push_header(*name, value);
        }
        Some(resp)
    }
}

fn media_type_matches(pattern: &str, media: &str) -> bool {
    let pattern = crate::scan::trim_lws(pattern.split(';').next().unwrap_or(""));
    if pattern == "*/*" {
        return true;
    }
    match pattern.strip_suffix("/*") {
        Some(top) => media.split('/').next().is_some_and(|t| t.eq_ignore_ascii_case(top)),
        None => pattern.eq_ignore_ascii_case(media),
    }
}

/// The stateless UAS verdict on a request addressed to this element. Includes
/// [`Message::check_essentials`].
pub fn inspect_request(msg: &Message, policy: &UasPolicy<'_>) -> Verdict {
    if let Err(e) = msg.check_essentials() {
        return Verdict::from_error(e);
    }
    inspect_checked_request(msg, policy)
}

/// [`inspect_request`] for a message that already passed [`Message::check_essentials`] (the
/// transport checks every message on arrival; the dispatcher need not parse the headers again).
pub fn inspect_checked_request(msg: &Message, policy: &UasPolicy<'_>) -> Verdict {
    let Some(method) = msg.method() else {
        return Verdict::reject(400);
    };
    let Some(uri) = msg.request_uri() else {
        return Verdict::reject(400);
    };
    let scheme_ok = match uri.scheme {
        Scheme::Other(s) => policy.schemes.iter().any(|p| p.eq_ignore_ascii_case(s)),
        s => policy.schemes.iter().any(|p| p.eq_ignore_ascii_case(s.as_str())),
    };
    if !scheme_ok {
        return Verdict::reject(416);
    }
    if !policy.methods.contains(method) {
        let allow = policy.methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        let status = if matches!(method, Method::Other(_)) { 501 } else { 405 };
        return Verdict::Reject {
            status,
            reason: Cow::Borrowed(crate::status::reason_phrase(status)),
            headers: vec![(HeaderName::Allow, allow)],
        };
    }
    if !matches!(method, Method::Ack | Method::Cancel) {
        let unsupported: Vec<&str> = msg
            .option_tags(HeaderName::Require)
            .filter(|t| !policy.extensions.iter().any(|e| e.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Verdict::Reject {
                status: 420,
                reason: Cow::Borrowed("Bad Extension"),
                headers: vec![(HeaderName::Unsupported, unsupported.join(", "))],
            };
        }
    }
    if !msg.body().is_empty() {
        let understood = msg
            .content_type()
            .is_some_and(|ct| policy.body_types.iter().any(|t| t.eq_ignore_ascii_case(ct)));
        let encoded = msg
            .list_values(HeaderName::ContentEncoding)
            .filter_map(Result::ok)
            .any(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
        if !understood || encoded {
            return Verdict::Reject {
                status: 415,
                reason: Cow::Borrowed("Unsupported Media Type"),
                headers: vec![(HeaderName::Accept, policy.body_types.join(", "))],
            };
        }
    }
    if *method == Method::Invite
        && let Some(answer) = policy.answer_type
    {
        let mut accepts = msg
            .list_values(HeaderName::Accept)
            .filter_map(Result::ok)
            .filter(|a| !a.is_empty())
            .peekable();
        if accepts.peek().is_some() && !accepts.any(|a| media_type_matches(a, answer)) {
            return Verdict::Reject {
                status: 406,
                reason: Cow::Borrowed("Not Acceptable"),
                headers: vec![(HeaderName::Accept, answer.to_owned())],
            };
        }
    }
    Verdict::Accept
}

/// A response to a request that could not be parsed at all (RFC 3261 §8.2, §21.4.1): the status
/// and reason come from the error; Via, From, To, Call-ID and CSeq lines are copied verbatim from
/// the raw bytes when they can be found, so the sender can match the response. `None` when the
/// bytes are a response (never answered) or hold no Via (nowhere to send to).
pub fn reject_unparsed(raw: &[u8], err: &ParseError) -> Option<Vec<u8>> {
    let start = raw.iter().position(|&c| c != b'\r' && c != b'\n')?;
    let raw = &raw[start..];
    if raw.len() < 4 || raw[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let head_end = memchr::memmem::find(raw, b"\r\n\r\n").unwrap_or(raw.len());
    let mut out = format!("SIP/2.0 {} {}\r\n", err.status_code(), err).into_bytes();
    let mut has_via = false;
    let mut lines = raw[..head_end].split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = std::str::from_utf8(&line[..colon]).map(|n| n.trim_end_matches([' ', '\t']));
        let header = name.map(HeaderName::from_name);
        let keep = matches!(
            header,
            Ok(HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq)
        );
        // Only clean text is copied: a line with control or non-UTF-8 bytes would make our own
        // answer unparseable.
        let clean = |l: &[u8]| std::str::from_utf8(l).is_ok() && l.iter().all(|&b| b >= 0x20 || b == b'\t');
        if keep && !line.is_empty() && !matches!(line[0], b' ' | b'\t') && clean(line) {
            has_via |= header == Ok(HeaderName::Via);
            out.extend_from_slice(line);
            while let Some(fold) = lines.next_if(|l| {
                l.first().is_some_and(|&b| b == b' ' || b == b'\t') && clean(l.strip_suffix(b"\r").unwrap_or(l))
            }) {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(fold.strip_suffix(b"\r").unwrap_or(fold));
            }
            out.extend_from_slice(b"\r\n");
        }
    }
    if !has_via {
        return None;
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Some(out)
}

/// Whether a Contact list holds `*` (only legal alone, with Expires: 0, in REGISTER).
pub fn has_star_contact(msg: &Message) -> bool {
    msg.contacts().any(|c| matches!(c, Ok(Contact::Star)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_cannot_be_parsed_with_its_reason() {
        let raw = b"INVITE sip:user@example.com; lr SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nSubject: s\r\n\r\n";
        let err = Message::parse(&raw[..]).expect_err("malformed");
        let resp = reject_unparsed(raw, &err).expect("a request with a Via");
        let m = Message::parse(resp).expect("our 400 parses");
        assert_eq!(m.status_code(), Some(400));
        assert_eq!(m.reason_phrase(), Some("Bad Request-URI: whitespace inside URI"));
        assert_eq!(m.via().expect("via").branch(), Some("z9hG4bK1"));
        assert_eq!(m.call_id(), Ok("x"));
        assert!(m.header("Subject").is_none());
        assert!(reject_unparsed(b"SIP/2.0 200 OK\r\n\r\n", &err).is_none());
        assert!(reject_unparsed(b"OPTIONS x SIP/2.0\r\n\r\n", &err).is_none());
    }

    #[test]
    fn media_ranges() {
        assert!(media_type_matches("application/*", "application/sdp"));
        assert!(media_type_matches("*/*", "application/sdp"));
        assert!(media_type_matches("Application/SDP;level=1", "application/sdp"));
        assert!(!media_type_matches("text/nobodyKnowsThis", "application/sdp"));
    }
}
