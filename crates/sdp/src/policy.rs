//! The codec policy: which codecs the platform lets through, applied to offers (RFC 3264 §5)
//! and answers (§6) the proxy forwards.
//!
//! Each active stream keeps only its allowed formats, in the order the caller wrote them (its
//! preference, RFC 3264 §5.1), and loses the `a=rtpmap`/`a=fmtp`/`a=rtcp-fb` lines of the others.
//! A stream left with nothing but auxiliary payloads (`telephone-event`, `CN`, ... — see
//! [`Codec::is_auxiliary`]) is rejected the RFC 3264 way: port 0, `m=` line kept (§6, §8.2).
//! When no stream is left, the proxy answers `488 Not Acceptable Here` with the Warning of
//! [`NoAcceptableCodec::warning`] (RFC 3261 §21.4.26, §20.43).

use std::fmt;

use crate::attr::decimal;
use crate::codec::Codec;
use crate::session::Sdp;

/// The codecs allowed through, by encoding name (ASCII case-insensitive), optionally with a clock
/// rate (`"G722"`, `"opus/48000"`). For a non-RTP stream (`m=image 6000 udptl t38`), an entry
/// allows a format of the same name (`"t38"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecPolicy {
    /// Allowed codecs. Their order does not reorder offers: the caller's order is kept.
    pub allowed: Vec<String>,
}

impl Default for CodecPolicy {
    /// `opus`, `G722`, `PCMU`, `PCMA`, `telephone-event`.
    fn default() -> Self {
        CodecPolicy::new(["opus", "G722", "PCMU", "PCMA", "telephone-event"])
    }
}

/// No stream of the description is left with a usable codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAcceptableCodec {
    offered: Vec<String>,
}

impl CodecPolicy {
    /// A policy allowing `allowed`.
    pub fn new<S: Into<String>>(allowed: impl IntoIterator<Item = S>) -> CodecPolicy {
        CodecPolicy {
            allowed: allowed.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `codec` is allowed.
    pub fn allows(&self, codec: &Codec) -> bool {
        self.allowed
            .iter()
            .any(|e| entry_matches(e, &codec.name, Some(codec.clock)))
    }

    /// Filters an offer before it is forwarded: see the module documentation. On `Err` the
    /// description has had every stream rejected and is not meant to be forwarded.
    pub fn filter_offer(&self, sdp: &mut Sdp) -> Result<(), NoAcceptableCodec> {
        let mut offered: Vec<String> = Vec::new();
        let mut usable = false;
        for mut media in sdp.media_mut() {
            if media.is_rejected() {
                continue;
            }
            let m = media.as_media();
            let mut kept: Vec<String> = Vec::new();
            let mut has_media = false;
            for format in m.formats() {
                let (label, allowed, auxiliary) = if m.is_rtp() {
                    match m.codec_of(format) {
                        Some(c) => (format!("{}/{}", c.name, c.clock), self.allows(&c), c.is_auxiliary()),
                        None => (format.clone(), false, false),
                    }
                } else {
                    let allowed = self.allowed.iter().any(|e| entry_matches(e, format, None));
                    (format.clone(), allowed, false)
                };
                if !offered.contains(&label) {
                    offered.push(label);
                }
                if allowed {
                    kept.push(format.clone());
                    has_media |= !auxiliary;
                }
            }
            if has_media {
                usable = true;
                media.retain_formats(|f| kept.iter().any(|k| k == f));
            } else {
                media.set_port(0);
            }
        }
        if usable {
            Ok(())
        } else {
            Err(NoAcceptableCodec { offered })
        }
    }

    /// Filters an answer the same way. An `Err` here means the answer leaves no usable stream;
    /// as the answer usually came in a 2xx, the proxy cannot refuse it with a 488 and has to end
    /// the session instead (ACK, then BYE).
    pub fn filter_answer(&self, sdp: &mut Sdp) -> Result<(), NoAcceptableCodec> {
        self.filter_offer(sdp)
    }
}

/// Whether a policy entry (`name` or `name/clock`) matches a codec name and clock rate.
fn entry_matches(entry: &str, name: &str, clock: Option<u32>) -> bool {
    match entry.trim().split_once('/') {
        Some((n, c)) => n.eq_ignore_ascii_case(name) && clock.is_some_and(|k| decimal::<u32>(c) == Some(k)),
        None => entry.trim().eq_ignore_ascii_case(name),
    }
}

impl NoAcceptableCodec {
    /// What the active streams offered, in order, without repeats: `name/clock` for resolved
    /// payload types, the format itself otherwise. Empty when no stream was active.
    pub fn offered(&self) -> &[String] {
        &self.offered
    }

    /// The warn-code: 305 "Incompatible media format" when formats were offered, 304 "Media type
    /// not available" when no stream was active (RFC 3261 §20.43).
    pub fn warn_code(&self) -> u16 {
        if self.offered.is_empty() { 304 } else { 305 }
    }

    /// A ready Warning header value, `<code> <host> "<text>"` (RFC 3261 §20.43), for the 488.
    /// `host` is the warn-agent: this server's host name or `host:port` (an IPv6 address in
    /// brackets).
    pub fn warning(&self, host: &str) -> String {
        let text = match self.warn_code() {
            304 => "Media type not available",
            _ => "Incompatible media format",
        };
        format!("{} {host} \"{text}\"", self.warn_code())
    }
}

impl fmt::Display for NoAcceptableCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.offered.is_empty() {
            f.write_str("no active media stream")
        } else {
            write!(f, "no acceptable codec among {}", self.offered.join(", "))
        }
    }
}

impl std::error::Error for NoAcceptableCodec {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        assert!(entry_matches("opus", "OPUS", Some(48000)));
        assert!(entry_matches(" G722/8000 ", "g722", Some(8000)));
        assert!(!entry_matches("G722/16000", "G722", Some(8000)));
        assert!(!entry_matches("G722/x", "G722", Some(8000)));
        assert!(entry_matches("t38", "t38", None));
        assert!(!entry_matches("t38/0", "t38", None));
    }

    #[test]
    fn warnings() {
        let none = NoAcceptableCodec { offered: vec![] };
        assert_eq!(
            none.warning("sb.example.com"),
            "304 sb.example.com \"Media type not available\""
        );
        let some = NoAcceptableCodec {
            offered: vec!["G729/8000".into()],
        };
        assert_eq!(
            some.warning("[2001:db8::1]:5060"),
            "305 [2001:db8::1]:5060 \"Incompatible media format\""
        );
        assert_eq!(some.to_string(), "no acceptable codec among G729/8000");
    }
}
