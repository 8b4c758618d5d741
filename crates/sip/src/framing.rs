//! Framing of SIP over stream transports (TCP, TLS): RFC 3261 §18.3 and the CRLF keep-alive of
//! RFC 5626 §3.5.1.
//!
//! Bytes arrive in arbitrary pieces; [`StreamFramer`] buffers them and cuts out one message at a
//! time using Content-Length, which is mandatory on streams. Partial messages wait for more bytes,
//! pipelined messages come out one by one. A double CRLF between messages is a keep-alive ping
//! (answer it with a single CRLF); a single CRLF is skipped (§7.5).
//!
//! A message that is framed correctly but malformed inside comes out as [`Frame::Invalid`]: the
//! stream stays usable and the caller can answer 400. When the framing itself is lost (no or a bad
//! Content-Length, an oversized message) [`StreamFramer::next_frame`] returns `Err` and the
//! connection must be closed.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;

use crate::error::ParseError;
use crate::message::Message;
use crate::name::HeaderName;
use crate::parse::{Framing, Limits, parse};
use crate::scan::{parse_decimal, trim_lws};

/// What the next bytes of a stream hold.
#[derive(Debug)]
pub enum Frame {
    Message(Message),
    /// A framed message that failed to parse; the stream continues after it. `bytes` are the
    /// framed bytes, for building a 400 ([`crate::reject_unparsed`]).
    Invalid {
        error: ParseError,
        bytes: Bytes,
    },
    /// A CRLFCRLF ping: answer with CRLF.
    KeepAlive,
}

/// Buffers a byte stream and cuts it into SIP messages.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    /// How far the search for the end of the header section has already looked.
    scanned: usize,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            limits,
            scanned: 0,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The internal buffer, to read into directly (e.g. with `read_buf`).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received but not yet framed.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next frame, `Ok(None)` when more bytes are needed, `Err` when the stream is unusable.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        loop {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.advance(4);
                self.scanned = 0;
                return Ok(Some(Frame::KeepAlive));
            }
            if self.buf.starts_with(b"\r\n") {
                if self.buf.len() < 4 && b"\r\n\r\n".starts_with(&self.buf[..]) {
                    return Ok(None);
                }
                self.buf.advance(2);
                self.scanned = 0;
                continue;
            }
            if self.buf.starts_with(b"\n") {
                self.buf.advance(1);
                self.scanned = 0;
                continue;
            }
            break;
        }
        let from = self.scanned.saturating_sub(3);
        let head_end = match memmem::find(&self.buf[from..], b"\r\n\r\n") {
            Some(i) => from + i + 4,
            None => {
                if self.buf.len() > self.limits.max_message_size {
                    return Err(ParseError::TooLarge {
                        limit: self.limits.max_message_size,
                    });
                }
                self.scanned = self.buf.len();
                return Ok(None);
            }
        };
        let content_length = find_content_length(&self.buf[..head_end])?;
        let total = head_end
            .checked_add(content_length)
            .ok_or(ParseError::BadContentLength)?;
        if total > self.limits.max_message_size {
            return Err(ParseError::TooLarge {
                limit: self.limits.max_message_size,
            });
        }
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        // Copied out rather than split off: a message may live long in a transaction, and a split
        // would keep the whole read buffer alive with it.
        let frame = Bytes::copy_from_slice(&self.buf[..total]);
        self.buf.advance(total);
        self.scanned = 0;
        Ok(Some(match parse(frame.clone(), Framing::Stream, &self.limits) {
            Ok(m) => Frame::Message(m),
            Err(error) => Frame::Invalid { error, bytes: frame },
        }))
    }
}

/// Reads Content-Length from a raw header section without parsing anything else.
fn find_content_length(head: &[u8]) -> Result<usize, ParseError> {
    let mut found: Option<usize> = None;
    let mut lines = head.split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        if HeaderName::from_name(name.trim_end_matches([' ', '\t'])) != HeaderName::ContentLength {
            continue;
        }
        let mut value = String::from_utf8_lossy(&line[colon + 1..]).into_owned();
        while let Some(next) = lines
            .peek()
            .filter(|l| l.first().is_some_and(|&b| b == b' ' || b == b'\t'))
        {
            value.push_str(&String::from_utf8_lossy(next));
            lines.next();
        }
        let n = parse_decimal(trim_lws(&value), u32::MAX as u64).map_err(|_| ParseError::BadContentLength)? as usize;
        match found {
            Some(prev) if prev != n => return Err(ParseError::DuplicateHeader("Content-Length")),
            _ => found = Some(n),
        }
    }
    found.ok_or(ParseError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";

    fn framer() -> StreamFramer {
        StreamFramer::new(Limits::default())
    }

    fn expect_message(f: &mut StreamFramer) -> Message {
        match f.next_frame() {
            Ok(Some(Frame::Message(m))) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut f = framer();
        for (i, b) in MSG.iter().enumerate() {
            assert!(matches!(f.next_frame(), Ok(None)), "early frame at {i}");
            f.push(&[*b]);
        }
        assert_eq!(expect_message(&mut f).body(), b"hello");
        assert!(matches!(f.next_frame(), Ok(None)));
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn pipelined_with_keepalives() {
        let mut f = framer();
        let mut data = Vec::new();
        data.extend_from_slice(b"\r\n\r\n");
        data.extend_from_slice(MSG);
        data.extend_from_slice(MSG);
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(MSG);
        f.push(&data);
        assert!(matches!(f.next_frame(), Ok(Some(Frame::KeepAlive))));
        for _ in 0..3 {
            assert_eq!(expect_message(&mut f).body(), b"hello");
        }
        assert!(matches!(f.next_frame(), Ok(None)));
    }

    #[test]
    fn lost_framing_is_fatal() {
        let mut f = framer();
        f.push(b"MESSAGE sip:a@b SIP/2.0\r\nVia: x\r\n\r\nbody");
        assert_eq!(f.next_frame().err(), Some(ParseError::MissingContentLength));
        let mut f = framer();
        f.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n");
        assert_eq!(f.next_frame().err(), Some(ParseError::BadContentLength));
        let mut f = StreamFramer::new(Limits {
            max_message_size: 64,
            ..Limits::default()
        });
        f.push(&[b'A'; 100]);
        assert_eq!(f.next_frame().err(), Some(ParseError::TooLarge { limit: 64 }));
    }

    #[test]
    fn malformed_but_framed_continues() {
        let mut f = framer();
        f.push(b"BAD LINE HERE\r\nContent-Length: 0\r\n\r\n");
        f.push(MSG);
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Invalid { .. }))));
        assert_eq!(expect_message(&mut f).body(), b"hello");
    }
}
