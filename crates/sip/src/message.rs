//! The SIP message (RFC 3261 §7): start line, headers in order, body.
//!
//! A parsed [`Message`] owns the received buffer (`bytes::Bytes`) and refers into it by offsets:
//! header names and values are never copied, and a header nobody asks about is never parsed past
//! its name. Typed accessors ([`Message::via`], [`Message::from_header`], [`Message::cseq`], ...)
//! parse on demand and borrow from the message.
//!
//! Changes (adding a Via, replacing the body) store only the new text. Serialization writes each
//! untouched header line byte for byte, so an unchanged message re-serializes to exactly the bytes
//! it was parsed from, and `parse(serialize(m)) == m` for every message.

use std::fmt;

use bytes::Bytes;

use crate::error::{ParseError, Problem};
use crate::headers::{
    CSeq, Challenge, Contact, Credentials, NameAddr, Via, parse_call_id, parse_delta_seconds, parse_max_forwards,
};
use crate::method::Method;
use crate::name::HeaderName;
use crate::scan::split_outside;
use crate::uri::Uri;

/// Text that lives either in the message's buffer or on its own.
#[derive(Clone, Debug)]
pub(crate) enum Text {
    /// Byte offsets into the buffer; always on ASCII boundaries inside the header section, which
    /// the parser has checked to be UTF-8.
    Span(u32, u32),
    Static(&'static str),
    Owned(Box<str>),
}

#[derive(Clone, Debug)]
pub(crate) enum StartLine {
    Request { method: Method, uri: Text },
    Response { code: u16, reason: Text },
}

#[derive(Clone, Debug)]
pub(crate) struct HeaderEntry {
    pub(crate) name: HeaderName,
    pub(crate) name_text: Text,
    pub(crate) value: Text,
    /// The whole original line (name, colon, value, folds; no final CRLF) while unchanged.
    pub(crate) raw_line: Option<(u32, u32)>,
}

#[derive(Clone, Debug)]
pub(crate) enum Body {
    Span(u32, u32),
    Owned(Bytes),
}

/// One header as seen from outside: its name, the name as written, and its raw value (trimmed,
/// folds kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: HeaderName,
    pub name_str: &'a str,
    pub value: &'a str,
}

/// A SIP request or response.
#[derive(Clone)]
pub struct Message {
    pub(crate) buf: Bytes,
    pub(crate) start: StartLine,
    pub(crate) headers: Vec<HeaderEntry>,
    pub(crate) body: Body,
    /// The bytes of the whole message in `buf` while nothing has been changed.
    pub(crate) pristine: Option<(u32, u32)>,
}

impl Message {
    /// A new request with no headers.
    pub fn request(method: Method, uri: &str) -> Message {
        Message {
            buf: Bytes::new(),
            start: StartLine::Request {
                method,
                uri: Text::Owned(uri.into()),
            },
            headers: Vec::new(),
            body: Body::Owned(Bytes::new()),
            pristine: None,
        }
    }

    /// A new response with no headers; `reason` defaults to the standard phrase.
    pub fn response(code: u16, reason: Option<&str>) -> Message {
        let reason = match reason {
            Some(r) => Text::Owned(r.into()),
            None => Text::Static(crate::status::reason_phrase(code)),
        };
        Message {
            buf: Bytes::new(),
            start: StartLine::Response { code, reason },
            headers: Vec::new(),
            body: Body::Owned(Bytes::new()),
            pristine: None,
        }
    }

    /// A response to `request` per RFC 3261 §8.2.6.2: Via headers, From, To, Call-ID and CSeq
    /// copied; a To tag added when `to_tag` is given and the To has none; Content-Length 0.
    pub fn response_to(request: &Message, code: u16, reason: Option<&str>, to_tag: Option<&str>) -> Message {
        let mut resp = Message::response(code, reason);
        for h in &request.headers {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    resp.push_header(h.name, request.text(&h.value));
                }
                HeaderName::To => {
                    let value = request.text(&h.value);
                    let has_tag = NameAddr::parse(value).ok().and_then(|n| n.tag()).is_some();
                    match to_tag {
                        Some(tag) if !has_tag && code != 100 => {
                            resp.push_header(HeaderName::To, &format!("{value};tag={tag}"))
                        }
                        _ => resp.push_header(HeaderName::To, value),
                    }
                }
                _ => {}
            }
        }
        resp.push_header(HeaderName::ContentLength, "0");
        resp
    }

    #[inline]
    pub(crate) fn text<'a>(&'a self, t: &'a Text) -> &'a str {
        match t {
            Text::Span(s, e) => match self.buf.get(*s as usize..*e as usize) {
                // SAFETY: spans are only created by the parser, inside the header section it has
                // validated as UTF-8, and they start and end next to ASCII delimiters, which are
                // never inside a multi-byte sequence.
                Some(b) => unsafe { std::str::from_utf8_unchecked(b) },
                None => "",
            },
            Text::Static(s) => s,
            Text::Owned(s) => s,
        }
    }

    // ----- start line -----

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The request method; `None` for responses.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI as written; `None` for responses.
    pub fn request_uri_str(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(self.text(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI (checked by the parser, so `Some` for every parsed request).
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        self.request_uri_str().and_then(|u| Uri::parse(u).ok())
    }

    pub fn status_code(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason_phrase(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(self.text(reason)),
            StartLine::Request { .. } => None,
        }
    }

    pub fn set_request_uri(&mut self, uri: &str) {
        if let StartLine::Request { uri: u, .. } = &mut self.start {
            *u = Text::Owned(uri.into());
            self.pristine = None;
        }
    }

    // ----- generic header access -----

    /// Every header in order.
    pub fn headers(&self) -> impl Iterator<Item = Header<'_>> {
        self.headers.iter().map(|h| Header {
            name: h.name,
            name_str: self.text(&h.name_text),
            value: self.text(&h.value),
        })
    }

    fn matches(&self, h: &HeaderEntry, name: HeaderName, other: &str) -> bool {
        h.name == name && (name != HeaderName::Other || self.text(&h.name_text).eq_ignore_ascii_case(other))
    }

    /// Raw values of every header with this name (compact forms and case folded), in order.
    /// Accepts unknown names too.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let key = HeaderName::from_name(name);
        self.headers
            .iter()
            .filter(move |h| self.matches(h, key, name))
            .map(|h| self.text(&h.value))
    }

    /// The raw value of the first header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let key = HeaderName::from_name(name);
        self.headers
            .iter()
            .find(|h| self.matches(h, key, name))
            .map(|h| self.text(&h.value))
    }

    fn values_of(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.text(&h.value))
    }

    /// Every comma-separated value of a list header, across all its lines, in order.
    pub fn list_values(&self, name: HeaderName) -> impl Iterator<Item = Result<&str, Problem>> {
        self.values_of(name).flat_map(|v| split_outside(v, b','))
    }

    /// The single value of a header that may appear once. Repeats with an identical value are
    /// tolerated; different values are an error.
    fn single(&self, name: HeaderName) -> Result<Option<&str>, ParseError> {
        let mut it = self.values_of(name);
        let first = it.next();
        if let Some(f) = first
            && it.any(|other| other != f)
        {
            return Err(ParseError::DuplicateHeader(name.as_str()));
        }
        Ok(first)
    }

    fn required(&self, name: HeaderName) -> Result<&str, ParseError> {
        self.single(name)?.ok_or(ParseError::MissingHeader(name.as_str()))
    }

    // ----- typed access -----

    /// Every Via value, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> {
        self.list_values(HeaderName::Via)
            .map(|v| v.and_then(Via::parse).map_err(|p| bad(HeaderName::Via, p)))
    }

    /// The topmost Via.
    pub fn via(&self) -> Result<Via<'_>, ParseError> {
        self.vias().next().unwrap_or(Err(ParseError::MissingHeader("Via")))
    }

    /// The From header (`from` is taken by the `From` trait's vocabulary).
    pub fn from_header(&self) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(self.required(HeaderName::From)?).map_err(|p| bad(HeaderName::From, p))
    }

    pub fn to_header(&self) -> Result<NameAddr<'_>, ParseError> {
        NameAddr::parse(self.required(HeaderName::To)?).map_err(|p| bad(HeaderName::To, p))
    }

    pub fn call_id(&self) -> Result<&str, ParseError> {
        parse_call_id(self.required(HeaderName::CallId)?).map_err(|p| bad(HeaderName::CallId, p))
    }

    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(self.required(HeaderName::CSeq)?).map_err(|p| bad(HeaderName::CSeq, p))
    }

    /// `None` when absent (RFC 2543 peers omit it).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        self.single(HeaderName::MaxForwards)?
            .map(|v| parse_max_forwards(v).map_err(|p| bad(HeaderName::MaxForwards, p)))
            .transpose()
    }

    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.single(HeaderName::Expires)?
            .map(|v| parse_delta_seconds(v).map_err(|p| bad(HeaderName::Expires, p)))
            .transpose()
    }

    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, ParseError>> {
        self.list_values(HeaderName::Contact)
            .map(|v| v.and_then(Contact::parse).map_err(|p| bad(HeaderName::Contact, p)))
    }

    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.name_addrs(HeaderName::Route)
    }

    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.name_addrs(HeaderName::RecordRoute)
    }

    fn name_addrs(&self, name: HeaderName) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.list_values(name)
            .map(move |v| v.and_then(NameAddr::parse).map_err(|p| bad(name, p)))
    }

    /// Authorization (`HeaderName::Authorization`) or Proxy-Authorization values.
    pub fn credentials(&self, name: HeaderName) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> {
        self.values_of(name)
            .map(move |v| Credentials::parse(v).map_err(|p| bad(name, p)))
    }

    /// WWW-Authenticate (`HeaderName::WwwAuthenticate`) or Proxy-Authenticate values.
    pub fn challenges(&self, name: HeaderName) -> impl Iterator<Item = Result<Challenge<'_>, ParseError>> {
        self.values_of(name)
            .map(move |v| Challenge::parse(v).map_err(|p| bad(name, p)))
    }

    /// The media type of the body without parameters, e.g. `application/sdp`.
    pub fn content_type(&self) -> Option<&str> {
        self.values_of(HeaderName::ContentType)
            .next()
            .map(|v| crate::scan::trim_lws(v.split(';').next().unwrap_or("")))
    }

    /// Option tags of Require, Proxy-Require, Supported, Unsupported (empty items skipped).
    pub fn option_tags(&self, name: HeaderName) -> impl Iterator<Item = &str> {
        self.list_values(name).filter_map(Result::ok).filter(|t| !t.is_empty())
    }

    pub fn body(&self) -> &[u8] {
        match &self.body {
            Body::Span(s, e) => self.buf.get(*s as usize..*e as usize).unwrap_or(&[]),
            Body::Owned(b) => b,
        }
    }

    // ----- changes -----

    fn entry(name: HeaderName, value: &str) -> HeaderEntry {
        HeaderEntry {
            name,
            name_text: Text::Static(name.as_str()),
            value: Text::Owned(value.into()),
            raw_line: None,
        }
    }

    /// Appends a header. `name` must not be `Other`; use [`Message::push_other`] for those.
    pub fn push_header(&mut self, name: HeaderName, value: &str) {
        self.pristine = None;
        self.headers.push(Self::entry(name, value));
    }

    /// Appends a header this crate has no name for.
    pub fn push_other(&mut self, name: &str, value: &str) {
        self.pristine = None;
        self.headers.push(HeaderEntry {
            name: HeaderName::from_name(name),
            name_text: Text::Owned(name.into()),
            value: Text::Owned(value.into()),
            raw_line: None,
        });
    }

    /// Removes every header named `name` (any name, compared case-insensitively); returns how
    /// many.
    pub fn remove_other(&mut self, name: &str) -> usize {
        let before = self.headers.len();
        let keep: Vec<bool> = self
            .headers
            .iter()
            .map(|h| !self.text(&h.name_text).eq_ignore_ascii_case(name))
            .collect();
        let mut keep = keep.into_iter();
        self.headers.retain(|_| keep.next().unwrap_or(true));
        let removed = before - self.headers.len();
        if removed > 0 {
            self.pristine = None;
        }
        removed
    }

    /// Inserts a header above every other header of that name (a new top Via or Record-Route).
    pub fn prepend_header(&mut self, name: HeaderName, value: &str) {
        self.pristine = None;
        let at = self
            .headers
            .iter()
            .position(|h| h.name == name)
            .unwrap_or(self.headers.len());
        self.headers.insert(at, Self::entry(name, value));
    }

    /// Removes every header with this name; returns how many.
    pub fn remove_headers(&mut self, name: HeaderName) -> usize {
        let before = self.headers.len();
        self.headers.retain(|h| h.name != name);
        let removed = before - self.headers.len();
        if removed > 0 {
            self.pristine = None;
        }
        removed
    }

    /// Replaces every header with this name by one with `value`, where the first one stood.
    pub fn set_header(&mut self, name: HeaderName, value: &str) {
        self.pristine = None;
        match self.headers.iter().position(|h| h.name == name) {
            Some(at) => {
                self.headers[at] = Self::entry(name, value);
                let mut i = 0;
                self.headers.retain(|h| {
                    i += 1;
                    i - 1 == at || h.name != name
                });
            }
            None => self.headers.push(Self::entry(name, value)),
        }
    }

    /// Removes the first value of a list header (the top Via of a response), rewriting its line
    /// when it held several values. Returns whether a value was removed.
    pub fn remove_first_value(&mut self, name: HeaderName) -> bool {
        let Some(at) = self.headers.iter().position(|h| h.name == name) else {
            return false;
        };
        let rest = {
            let mut parts = split_outside(self.text(&self.headers[at].value), b',');
            parts.next();
            parts
                .filter_map(Result::ok)
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.pristine = None;
        if rest.is_empty() {
            self.headers.remove(at);
        } else {
            self.headers[at] = Self::entry(name, &rest);
        }
        true
    }

    /// Replaces the first value of a list header (the top Via after adding `received`/`rport`),
    /// keeping the other values of its line. Returns whether there was a value to replace.
    pub fn replace_first_value(&mut self, name: HeaderName, value: &str) -> bool {
        let Some(at) = self.headers.iter().position(|h| h.name == name) else {
            return false;
        };
        let line = {
            let mut parts = split_outside(self.text(&self.headers[at].value), b',');
            parts.next();
            let mut line = value.to_owned();
            for rest in parts.filter_map(Result::ok).filter(|p| !p.is_empty()) {
                line.push_str(", ");
                line.push_str(rest);
            }
            line
        };
        self.pristine = None;
        self.headers[at] = Self::entry(name, &line);
        true
    }

    /// Replaces the body and sets Content-Length (and Content-Type when given).
    pub fn set_body(&mut self, body: Bytes, content_type: Option<&str>) {
        self.pristine = None;
        let len = body.len();
        self.body = Body::Owned(body);
        self.set_header(HeaderName::ContentLength, &len.to_string());
        if let Some(ct) = content_type {
            self.set_header(HeaderName::ContentType, ct);
        }
    }

    // ----- output -----

    /// Writes the message in wire form.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if let Some((s, e)) = self.pristine
            && let Some(bytes) = self.buf.get(s as usize..e as usize)
        {
            out.extend_from_slice(bytes);
            return;
        }
        match &self.start {
            StartLine::Request { method, uri } => {
                out.extend_from_slice(method.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(self.text(uri).as_bytes());
                out.extend_from_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.extend_from_slice(b"SIP/2.0 ");
                out.extend_from_slice(code.to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(self.text(reason).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            match h.raw_line.and_then(|(s, e)| self.buf.get(s as usize..e as usize)) {
                Some(raw) => out.extend_from_slice(raw),
                None => {
                    out.extend_from_slice(self.text(&h.name_text).as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(self.text(&h.value).as_bytes());
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body());
    }

    pub fn to_bytes(&self) -> Bytes {
        if let Some((s, e)) = self.pristine {
            return self.buf.slice(s as usize..e as usize);
        }
        let mut out = Vec::with_capacity(self.buf.len().max(512));
        self.write_to(&mut out);
        // Exactly sized: a server transaction keeps its last response for 64*T1, and a `Bytes`
        // made from a `Vec` keeps the whole allocation.
        Bytes::from(out.into_boxed_slice())
    }

    /// Whether the message is byte-for-byte what was received.
    pub fn is_unchanged(&self) -> bool {
        self.pristine.is_some()
    }
}

pub(crate) fn bad(name: HeaderName, problem: Problem) -> ParseError {
    ParseError::BadHeader {
        header: name.as_str(),
        problem,
    }
}

/// Equality of content: start line, headers (names as written, values) in order, body.
impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        let start_eq = match (&self.start, &other.start) {
            (StartLine::Request { method: m1, uri: u1 }, StartLine::Request { method: m2, uri: u2 }) => {
                m1 == m2 && self.text(u1) == other.text(u2)
            }
            (StartLine::Response { code: c1, reason: r1 }, StartLine::Response { code: c2, reason: r2 }) => {
                c1 == c2 && self.text(r1) == other.text(r2)
            }
            _ => false,
        };
        start_eq && self.headers().eq(other.headers()) && self.body() == other.body()
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        match &self.start {
            StartLine::Request { method, uri } => d.field("method", method).field("uri", &self.text(uri)),
            StartLine::Response { code, reason } => d.field("status", code).field("reason", &self.text(reason)),
        };
        d.field(
            "headers",
            &self.headers().map(|h| (h.name_str, h.value)).collect::<Vec<_>>(),
        )
        .field("body_len", &self.body().len())
        .finish()
    }
}

impl fmt::Display for Message {
    /// The wire form, lossily decoded (for logs and traces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}
