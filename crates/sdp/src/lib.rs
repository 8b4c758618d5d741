//! # sdp — session descriptions for switchboard
//!
//! The SDP model, parser and serializer (RFC 8866), with what a SIP proxy anchoring media needs
//! from offer/answer (RFC 3264): several `m=` lines, rejected streams (port 0), direction
//! attributes and hold, `a=rtpmap`/`a=fmtp` with the RFC 3551 static payload types, `a=ptime`,
//! `a=rtcp` (RFC 3605) and `telephone-event` (RFC 4733); plus the codec policy that filters
//! offers ([`CodecPolicy`]) and the check of an answer against its offer ([`check_answer`]).
//!
//! Written by hand because the proxy forwards descriptions it has only partly rewritten: every
//! line it does not edit — unknown attributes (ICE, DTLS, SSRC, vendor extensions) and unknown
//! line types included — must go out exactly as it came in, in order. The published SDP crates
//! (`sdp`/`rtc-sdp`, `sdp-types`, `webrtc-sdp`) parse into typed structures and print those back
//! in a fixed order and spacing, so a description written in another order or spacing does not
//! come back byte for byte. Here the model is the list of lines, with typed accessors on top.
//! Like the `sip` crate, this one does no I/O and never panics on peer input (it is fuzzed:
//! `fuzz/fuzz_targets/parse_sdp.rs`).
//!
//! ```
//! use sdp::{CodecPolicy, Sdp};
//! let mut offer = Sdp::parse(b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
//!     t=0 0\r\nm=audio 4000 RTP/AVP 18 0 101\r\na=rtpmap:101 telephone-event/8000\r\n").unwrap();
//! CodecPolicy::default().filter_offer(&mut offer).unwrap();
//! offer.set_connection("203.0.113.9".parse().unwrap());
//! let audio = offer.media().next().unwrap();
//! assert_eq!(audio.formats(), ["0", "101"]);
//! assert_eq!(audio.connection_addr(), Some("203.0.113.9".parse().unwrap()));
//! ```

mod answer;
mod attr;
mod codec;
mod connection;
mod crypto;
mod error;
mod line;
mod media;
mod mline;
mod parse;
mod policy;
mod session;

pub use answer::{AnswerError, check_answer};
pub use attr::Direction;
pub use codec::{Codec, static_payload_type};
pub use crypto::{AES_CM_128_HMAC_SHA1_80, Crypto, KEY_SALT_LEN};
pub use error::{Problem, SdpError};
pub use media::{Media, MediaMut};
pub use policy::{CodecPolicy, NoAcceptableCodec};
pub use session::Sdp;
