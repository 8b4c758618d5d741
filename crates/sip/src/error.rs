//! Typed parse errors.
//!
//! Every malformed input yields a [`ParseError`] that names what is wrong. Its `Display` text is
//! short, ASCII, and fit to be used verbatim as the reason phrase of a `400 Bad Request`
//! (RFC 3261 §21.4.1); [`ParseError::status_code`] says which status a server should answer with
//! (400, 505 for an unsupported SIP version, 513 for an oversized message).
//!
//! The type is `Copy` and allocation-free: header names in errors are the canonical names of the
//! headers the server decides on, which are `'static`.

use std::fmt;

/// What is wrong inside one value (a URI, a header value, a parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    Empty,
    UnterminatedQuote,
    UnterminatedAngle,
    BadEscape,
    BadScheme,
    BadHost,
    BadPort,
    BadUser,
    WhitespaceInUri,
    UriHeadersNotAllowed,
    UriNeedsAngleBrackets,
    EmptyParameter,
    BadParameter,
    BadDisplayName,
    BadNumber,
    NumberTooLarge,
    BadToken,
    BadProtocol,
    MissingSentBy,
    TrailingGarbage,
    BadMethod,
    NotUtf8,
}

impl Problem {
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Empty => "empty value",
            Problem::UnterminatedQuote => "unterminated quoted string",
            Problem::UnterminatedAngle => "unterminated <",
            Problem::BadEscape => "bad %-escape",
            Problem::BadScheme => "bad URI scheme",
            Problem::BadHost => "bad host",
            Problem::BadPort => "bad port",
            Problem::BadUser => "bad user part",
            Problem::WhitespaceInUri => "whitespace inside URI",
            Problem::UriHeadersNotAllowed => "URI headers not allowed here",
            Problem::UriNeedsAngleBrackets => "URI with ?, ; or , must be in <>",
            Problem::EmptyParameter => "empty parameter",
            Problem::BadParameter => "bad parameter",
            Problem::BadDisplayName => "bad display name",
            Problem::BadNumber => "not a number",
            Problem::NumberTooLarge => "number out of range",
            Problem::BadToken => "bad token",
            Problem::BadProtocol => "bad sent-protocol",
            Problem::MissingSentBy => "missing sent-by",
            Problem::TrailingGarbage => "unexpected trailing characters",
            Problem::BadMethod => "bad method",
            Problem::NotUtf8 => "not UTF-8",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that cannot be parsed or framed, or that breaks a rule of RFC 3261 §7/§8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but whitespace.
    Empty,
    /// The message (or its header section, while still incomplete) exceeds the configured limit.
    TooLarge { limit: usize },
    /// The header section has no terminating empty line.
    Incomplete,
    /// The first line is neither a Request-Line nor a Status-Line.
    BadStartLine(&'static str),
    /// `SIP/x.y` other than `SIP/2.0`.
    UnsupportedVersion,
    /// The Request-URI is malformed.
    BadRequestUri(Problem),
    /// A status code outside 100..=699 or not three digits.
    BadStatusCode,
    /// A header line without a colon, or with a name that is not a token.
    BadHeaderLine,
    /// The header section is not valid UTF-8.
    HeaderNotUtf8,
    /// A header the message must carry is absent (RFC 3261 §8.1.1).
    MissingHeader(&'static str),
    /// A header that may appear once appears with different values.
    DuplicateHeader(&'static str),
    /// A header's value is malformed.
    BadHeader { header: &'static str, problem: Problem },
    /// Content-Length is missing where framing needs it (stream transports).
    MissingContentLength,
    /// Content-Length is negative, not a number, or too large to be a length.
    BadContentLength,
    /// Content-Length announces more bytes than the datagram holds.
    BodyTruncated,
    /// The CSeq method differs from the Request-Line method (RFC 3261 §8.1.1.5).
    CSeqMethodMismatch,
}

impl ParseError {
    /// The status a UAS or proxy answers with when it can answer at all.
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::UnsupportedVersion => 505,
            ParseError::TooLarge { .. } => 513,
            _ => 400,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("Empty message"),
            ParseError::TooLarge { limit } => write!(f, "Message larger than {limit} bytes"),
            ParseError::Incomplete => f.write_str("Header section not terminated"),
            ParseError::BadStartLine(what) => write!(f, "Bad start line: {what}"),
            ParseError::UnsupportedVersion => f.write_str("Version Not Supported"),
            ParseError::BadRequestUri(p) => write!(f, "Bad Request-URI: {p}"),
            ParseError::BadStatusCode => f.write_str("Bad status code"),
            ParseError::BadHeaderLine => f.write_str("Malformed header line"),
            ParseError::HeaderNotUtf8 => f.write_str("Header section is not UTF-8"),
            ParseError::MissingHeader(h) => write!(f, "Missing {h} header"),
            ParseError::DuplicateHeader(h) => write!(f, "More than one {h} header"),
            ParseError::BadHeader { header, problem } => write!(f, "Bad {header} header: {problem}"),
            ParseError::MissingContentLength => f.write_str("Missing Content-Length"),
            ParseError::BadContentLength => f.write_str("Bad Content-Length"),
            ParseError::BodyTruncated => f.write_str("Body shorter than Content-Length"),
            ParseError::CSeqMethodMismatch => f.write_str("CSeq method does not match request method"),
        }
    }
}

impl std::error::Error for ParseError {}
impl std::error::Error for Problem {}
