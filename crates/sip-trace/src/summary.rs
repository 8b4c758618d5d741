//! The cheap header scan behind [`Summary`]: the start line, Call-ID, CSeq, and the user parts of
//! From and To. No full parse, no allocation: [`scan`] returns byte ranges of the payload
//! ([`Compact`]), which the ring stores next to the payload it already keeps; [`Summary`] strings
//! are only built when someone reads the trace.

use serde::{Deserialize, Serialize};

/// What the trace shows about one message without parsing it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `INVITE sip:1002@example.com SIP/2.0` or `SIP/2.0 407 Proxy Authentication Required`.
    pub first_line: String,
    /// The method of a request.
    pub method: Option<String>,
    /// The status code of a response.
    pub status: Option<u16>,
    /// The method named by CSeq (what a response answers).
    pub cseq_method: Option<String>,
    /// `""` when the message has no Call-ID.
    pub call_id: String,
    /// The user part of the From URI (`sip:`/`sips:` user, or the number of a `tel:` URI).
    pub from_user: Option<String>,
    /// The user part of the To URI.
    pub to_user: Option<String>,
}

/// Summarizes a SIP message: compact header forms (`i`, `f`, `t`), any letter case in header
/// names and folded header lines are understood; garbage gives empty fields, never a panic. Only
/// the first 64 KiB are looked at.
pub fn summarize(payload: &[u8]) -> Summary {
    scan(payload).materialize(payload)
}

/// A range of the payload; `len == 0` means absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u16,
    len: u16,
}

impl Span {
    /// `start..end`, or absent when empty or when it does not fit in 16 bits.
    fn new(start: usize, end: usize) -> Span {
        match (u16::try_from(start), u16::try_from(end)) {
            (Ok(s), Ok(e)) if e > s => Span { start: s, len: e - s },
            _ => Span::default(),
        }
    }

    pub(crate) fn get(self, payload: &[u8]) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let start = usize::from(self.start);
        payload.get(start..start + usize::from(self.len))
    }

    pub(crate) fn range(self) -> Option<std::ops::Range<usize>> {
        (self.len > 0).then(|| usize::from(self.start)..usize::from(self.start) + usize::from(self.len))
    }
}

/// [`Summary`] as ranges of the payload: 26 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Compact {
    pub(crate) first_line: Span,
    pub(crate) method: Span,
    pub(crate) cseq_method: Span,
    pub(crate) call_id: Span,
    pub(crate) from_user: Span,
    pub(crate) to_user: Span,
    /// 0: not a response.
    pub(crate) status: u16,
}

impl Compact {
    pub(crate) fn materialize(&self, payload: &[u8]) -> Summary {
        Summary {
            first_line: text(self.first_line, payload).unwrap_or_default(),
            method: text(self.method, payload),
            status: (self.status != 0).then_some(self.status),
            cseq_method: text(self.cseq_method, payload),
            call_id: text(self.call_id, payload).unwrap_or_default(),
            from_user: text(self.from_user, payload),
            to_user: text(self.to_user, payload),
        }
    }
}

pub(crate) fn text(span: Span, payload: &[u8]) -> Option<String> {
    span.get(payload).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Only this much of a message is scanned (offsets are 16-bit).
const SCAN_LIMIT: usize = u16::MAX as usize;

#[inline]
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}

/// White space inside a header value; CR and LF there can only be part of a fold.
#[inline]
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn line_end(p: &[u8], from: usize) -> usize {
    memchr::memchr(b'\n', &p[from..]).map_or(p.len(), |i| from + i)
}

/// Without a trailing CR.
fn content_end(p: &[u8], start: usize, end: usize) -> usize {
    if end > start && p[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

pub(crate) fn scan(payload: &[u8]) -> Compact {
    let p = &payload[..payload.len().min(SCAN_LIMIT)];
    let mut c = Compact::default();
    // CRLFs before the start line are ignored (RFC 3261 §7.5).
    let start = p.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(p.len());
    let first_end = line_end(p, start);
    start_line(p, start, content_end(p, start, first_end), &mut c);

    let (mut have_call_id, mut have_from, mut have_to, mut have_cseq) = (false, false, false, false);
    let mut i = first_end + 1;
    while i < p.len() {
        let end = line_end(p, i);
        if content_end(p, i, end) == i {
            break; // the empty line before the body
        }
        // One logical header: this line and the folded lines after it.
        let mut logical_end = end;
        while logical_end + 1 < p.len() && matches!(p[logical_end + 1], b' ' | b'\t') {
            logical_end = line_end(p, logical_end + 1);
        }
        let value_end = content_end(p, i, logical_end);
        let next = logical_end + 1;
        // Only Call-ID, CSeq, From and To (i, f, t) matter; a line starting with white space
        // right after the start line has nothing to fold into.
        if !matches!(p[i] | 0x20, b'c' | b'i' | b'f' | b't') {
            i = next;
            continue;
        }
        let Some(colon) = p[i..value_end].iter().position(|&b| b == b':').map(|c| i + c) else {
            i = next;
            continue;
        };
        let mut name_end = colon;
        while name_end > i && matches!(p[name_end - 1], b' ' | b'\t') {
            name_end -= 1;
        }
        let name = &p[i..name_end];
        let (vs, ve) = (colon + 1, value_end);
        if !have_call_id && (name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i")) {
            have_call_id = true;
            c.call_id = word(p, vs, ve);
        } else if !have_from && (name.eq_ignore_ascii_case(b"from") || name.eq_ignore_ascii_case(b"f")) {
            have_from = true;
            c.from_user = uri_user(p, vs, ve);
        } else if !have_to && (name.eq_ignore_ascii_case(b"to") || name.eq_ignore_ascii_case(b"t")) {
            have_to = true;
            c.to_user = uri_user(p, vs, ve);
        } else if !have_cseq && name.eq_ignore_ascii_case(b"cseq") {
            have_cseq = true;
            c.cseq_method = cseq_method(p, vs, ve);
        }
        if have_call_id && have_from && have_to && have_cseq {
            break;
        }
        i = next;
    }
    c
}

fn start_line(p: &[u8], start: usize, end: usize, c: &mut Compact) {
    c.first_line = Span::new(start, end);
    let line = &p[start..end];
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return;
    };
    if a.len() > 4 && a[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line: SIP-Version SP Status-Code SP Reason-Phrase
        if b.len() == 3 && b.iter().all(u8::is_ascii_digit) && (b'1'..=b'6').contains(&b[0]) {
            c.status = b.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        }
    } else if let Some(rest) = parts.next() {
        // Request-Line: Method SP Request-URI SP SIP-Version
        let version_ok = rest.len() > 4 && rest[..4].eq_ignore_ascii_case(b"SIP/") && !rest.contains(&b' ');
        if version_ok && !a.is_empty() && a.iter().all(|&x| is_token_byte(x)) && !b.is_empty() {
            c.method = Span::new(start, start + a.len());
        }
    }
}

fn skip_lws(p: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && is_lws(p[i]) {
        i += 1;
    }
    i
}

/// The first run of non-white-space bytes (a Call-ID has no white space).
fn word(p: &[u8], vs: usize, ve: usize) -> Span {
    let s = skip_lws(p, vs, ve);
    let e = p[s..ve].iter().position(|&b| is_lws(b)).map_or(ve, |x| s + x);
    Span::new(s, e)
}

/// `CSeq: 1 INVITE` → `INVITE`.
fn cseq_method(p: &[u8], vs: usize, ve: usize) -> Span {
    let mut i = skip_lws(p, vs, ve);
    let digits = i;
    while i < ve && p[i].is_ascii_digit() {
        i += 1;
    }
    if i == digits {
        return Span::default();
    }
    let s = skip_lws(p, i, ve);
    if s == i {
        return Span::default();
    }
    let e = p[s..ve].iter().position(|&b| !is_token_byte(b)).map_or(ve, |x| s + x);
    Span::new(s, e)
}

/// The user part of the URI of a From/To value: `"Bob" <sip:bob@host>;tag=1`, `<tel:+1555>`,
/// `sip:bob@host;tag=1`.
fn uri_user(p: &[u8], vs: usize, ve: usize) -> Span {
    let (mut us, mut ue) = (None, ve);
    let mut i = vs;
    let mut quoted = false;
    while i < ve {
        match p[i] {
            b'"' => quoted = !quoted,
            b'\\' if quoted => i += 1,
            b'<' if !quoted => {
                us = Some(i + 1);
                ue = p[i + 1..ve].iter().position(|&b| b == b'>').map_or(ve, |x| i + 1 + x);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let us = match us {
        Some(s) => s,
        None => {
            // A bare addr-spec ends at the header parameters (RFC 3261 §20.10).
            let s = skip_lws(p, vs, ve);
            ue = p[s..ve]
                .iter()
                .position(|&b| matches!(b, b';' | b',' | b'?') || is_lws(b))
                .map_or(ve, |x| s + x);
            s
        }
    };
    let us = skip_lws(p, us, ue);
    let uri = &p[us..ue];
    let Some(colon) = uri.iter().position(|&b| b == b':') else {
        return Span::default();
    };
    let scheme = &uri[..colon];
    let rest = us + colon + 1;
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        let Some(at) = p[rest..ue].iter().position(|&b| b == b'@').map(|x| rest + x) else {
            return Span::default();
        };
        // user:password@host
        let end = p[rest..at].iter().position(|&b| b == b':').map_or(at, |x| rest + x);
        Span::new(rest, end)
    } else if scheme.eq_ignore_ascii_case(b"tel") {
        let end = p[rest..ue]
            .iter()
            .position(|&b| b == b';' || is_lws(b))
            .map_or(ue, |x| rest + x);
        Span::new(rest, end)
    } else {
        Span::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:1002@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
        From: \"Alice <a>\" <sip:1001@example.com>;tag=a1\r\n\
        To: <sip:1002@example.com>\r\n\
        Call-ID: abc123@192.0.2.1\r\n\
        CSeq: 1 INVITE\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn request() {
        let s = summarize(INVITE);
        assert_eq!(s.first_line, "INVITE sip:1002@example.com SIP/2.0");
        assert_eq!(s.method.as_deref(), Some("INVITE"));
        assert_eq!(s.status, None);
        assert_eq!(s.cseq_method.as_deref(), Some("INVITE"));
        assert_eq!(s.call_id, "abc123@192.0.2.1");
        assert_eq!(s.from_user.as_deref(), Some("1001"));
        assert_eq!(s.to_user.as_deref(), Some("1002"));
    }

    #[test]
    fn response() {
        let s = summarize(
            b"SIP/2.0 407 Proxy Authentication Required\r\nCall-ID: x\r\nCSeq: 7 REGISTER\r\n\
              From: sip:alice@h;tag=1\r\nTo: sip:alice@h\r\n\r\n",
        );
        assert_eq!(s.first_line, "SIP/2.0 407 Proxy Authentication Required");
        assert_eq!(s.status, Some(407));
        assert_eq!(s.method, None);
        assert_eq!(s.cseq_method.as_deref(), Some("REGISTER"));
        assert_eq!(s.from_user.as_deref(), Some("alice"));
        assert_eq!(s.to_user.as_deref(), Some("alice"));
    }

    #[test]
    fn compact_forms_case_and_folding() {
        let s = summarize(
            b"\r\nBYE sip:b@h SIP/2.0\nI :\r\n   folded-id@h\r\nf\t: Bob\r\n <sips:bob:secret@h>;tag=2\r\n\
              T: <tel:+15551234;phone-context=x>\r\ncseq:\r\n 2\r\n\tBYE\r\n\r\nCall-ID: body\r\n",
        );
        assert_eq!(s.first_line, "BYE sip:b@h SIP/2.0");
        assert_eq!(s.method.as_deref(), Some("BYE"));
        assert_eq!(s.call_id, "folded-id@h");
        assert_eq!(s.from_user.as_deref(), Some("bob"));
        assert_eq!(s.to_user.as_deref(), Some("+15551234"));
        assert_eq!(s.cseq_method.as_deref(), Some("BYE"));
    }

    #[test]
    fn first_header_wins_and_body_is_not_scanned() {
        let s = summarize(b"OPTIONS sip:h SIP/2.0\r\ni: one\r\nCall-ID: two\r\n\r\nf: sip:x@y\r\n");
        assert_eq!(s.call_id, "one");
        assert_eq!(s.from_user, None);
    }

    #[test]
    fn odd_uris() {
        for (from, user) in [
            ("From: <sip:example.com>", None),
            ("From: \"<sip:fake@x>\" <sip:real@x>", Some("real")),
            ("From: \"a \\\" <sip:fake@x>\" <sip:real@x>", Some("real")),
            ("From: mailto:a@b", None),
            ("From: <sip:unterminated@x", Some("unterminated")),
            ("From: sip:@x", None),
            ("From:", None),
            ("From: <", None),
        ] {
            let msg = format!("MESSAGE sip:h SIP/2.0\r\n{from}\r\n\r\n");
            assert_eq!(summarize(msg.as_bytes()).from_user.as_deref(), user, "{from}");
        }
    }

    #[test]
    fn garbage() {
        for g in [
            &b""[..],
            b"\r\n\r\n",
            b"\0\xff\xfe",
            b"SIP/2.0",
            b"SIP/2.0 99 x",
            b"SIP/2.0 7000 x",
            b"INVITE",
            b"INVITE sip:x",
            b"IN VITE sip:x SIP/2.0",
            b"INVITE sip:x SIP/2.0 x\r\n:\r\n \r\nCSeq: INVITE\r\nCSeq",
            b"x\n\n",
            b" \t\r\n i: x",
        ] {
            let s = summarize(g);
            assert_eq!(s.method, None, "{g:?}");
            assert_eq!(s.status, None, "{g:?}");
            assert_eq!(s.cseq_method, None, "{g:?}");
        }
        let s = summarize(b"\xffNV\xfe sip:x SIP/2.0\r\nCall-ID: \xff\xfe\r\n");
        assert_eq!(s.call_id, "\u{fffd}\u{fffd}");
        assert_eq!(s.method, None);
    }

    #[test]
    fn long_messages_are_scanned_up_to_64k() {
        let mut m = b"MESSAGE sip:h SIP/2.0\r\nX: ".to_vec();
        m.resize(70_000, b'a');
        m.extend_from_slice(b"\r\nCall-ID: far\r\n\r\n");
        let s = summarize(&m);
        assert_eq!(s.method.as_deref(), Some("MESSAGE"));
        assert_eq!(s.call_id, "");
    }
}
