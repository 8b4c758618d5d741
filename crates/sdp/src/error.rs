//! Parse errors.
//!
//! Every description that cannot be read yields an [`SdpError`]: the 1-based number of the
//! offending line (0 when the problem is the description as a whole, such as a missing `o=`) and
//! a [`Problem`] saying what is wrong with it, checked against the grammar of RFC 8866 §9 and the
//! per-attribute syntax of the RFCs this crate implements. The `Display` text is short ASCII, fit
//! for a log line or the reason phrase of a `400 Bad Request`.

use std::fmt;

/// What is wrong with a line, or with the description as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// No line at all (empty input, or nothing but line breaks).
    Empty,
    /// The line is not UTF-8 (RFC 8866 §5.8: UTF-8 is the only character set accepted here).
    NotUtf8,
    /// A NUL byte or a CR that does not end the line.
    ControlCharacter,
    /// The line is not `<letter>=<value>` (RFC 8866 §5).
    NotTypeValue,
    /// An empty line before the end of the description.
    BlankLine,
    /// The first line is not `v=` (RFC 8866 §5.1).
    VersionNotFirst,
    /// `v=` other than `v=0`.
    UnsupportedVersion,
    /// A line the description must carry is absent (`o=`, `s=`).
    Missing(char),
    /// A line that may appear once per session appears again.
    Duplicate(char),
    /// A session-only line (`v= o= s= u= e= p= t= r= z=`) after the first `m=`.
    NotAllowedInMedia(char),
    /// `o=` without its six fields (RFC 8866 §5.2).
    BadOrigin,
    /// `c=` without its three fields (RFC 8866 §5.7).
    BadConnection,
    /// `m=` without media, port and proto (RFC 8866 §5.14).
    BadMedia,
    /// An `m=` port or port count that is not a 16-bit decimal number.
    BadPort,
    /// An RTP format that is not a payload type 0–127 (RFC 3551 §3).
    BadPayloadType,
    /// `a=` with an empty attribute name.
    BadAttributeName,
    /// A direction attribute (`a=sendrecv` ...) with a value (RFC 8866 §6.7).
    UnexpectedValue,
    /// More than one direction attribute at the same level.
    ConflictingDirection,
    /// `a=rtpmap` that is not `<pt> <name>/<clock>[/<channels>]` (RFC 8866 §6.6).
    BadRtpmap,
    /// Two `a=rtpmap` for the same payload type in one media section.
    DuplicateRtpmap,
    /// `a=fmtp` that is not `<format> <parameters>` (RFC 8866 §6.15).
    BadFmtp,
    /// `a=rtcp` that is not `<port> [<nettype> <addrtype> <address>]` (RFC 3605 §2.1).
    BadRtcp,
    /// `a=ptime` that is not a decimal number of milliseconds (RFC 8866 §6.4).
    BadPtime,
}

impl Problem {
    fn describe(self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Problem::Empty => "empty session description",
            Problem::NotUtf8 => "not UTF-8",
            Problem::ControlCharacter => "NUL or stray CR",
            Problem::NotTypeValue => "not a <type>=<value> line",
            Problem::BlankLine => "empty line",
            Problem::VersionNotFirst => "the first line is not v=",
            Problem::UnsupportedVersion => "unsupported version (only v=0)",
            Problem::Missing(c) => return write!(f, "missing {c}= line"),
            Problem::Duplicate(c) => return write!(f, "more than one {c}= line"),
            Problem::NotAllowedInMedia(c) => return write!(f, "{c}= line inside a media section"),
            Problem::BadOrigin => "bad o= line",
            Problem::BadConnection => "bad c= line",
            Problem::BadMedia => "bad m= line",
            Problem::BadPort => "bad port",
            Problem::BadPayloadType => "bad RTP payload type",
            Problem::BadAttributeName => "empty attribute name",
            Problem::UnexpectedValue => "direction attribute with a value",
            Problem::ConflictingDirection => "more than one direction attribute",
            Problem::BadRtpmap => "bad a=rtpmap",
            Problem::DuplicateRtpmap => "more than one a=rtpmap for a payload type",
            Problem::BadFmtp => "bad a=fmtp",
            Problem::BadRtcp => "bad a=rtcp",
            Problem::BadPtime => "bad a=ptime",
        };
        f.write_str(text)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(f)
    }
}

/// A session description that cannot be parsed: where, and what is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdpError {
    line: usize,
    problem: Problem,
}

impl SdpError {
    pub(crate) fn new(line: usize, problem: Problem) -> SdpError {
        SdpError { line, problem }
    }

    /// The 1-based number of the offending line; 0 when the description as a whole is at fault.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What is wrong.
    pub fn problem(&self) -> Problem {
        self.problem
    }
}

impl fmt::Display for SdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "SDP: {}", self.problem)
        } else {
            write!(f, "SDP line {}: {}", self.line, self.problem)
        }
    }
}

impl std::error::Error for SdpError {}
