//! # sip — the SIP message core of switchboard
//!
//! Message model, zero-copy parser and serializer, URIs, typed headers, stream framing and
//! digest math for RFC 3261 (§7 messages, §19 URIs, §20 headers, §25 grammar), with the
//! robustness cases of RFC 4475.
//!
//! Written by hand because it is the core of the product and its hottest path: existing Rust SIP
//! parsers allocate a `String` per header and parse every header eagerly, and none gives both
//! byte-exact re-serialization and a typed error usable as a 400 reason phrase. This crate does no
//! I/O, reads no clock, and never panics on peer input.
//!
//! ```
//! use sip::{HeaderName, Message};
//! let m = Message::parse(&b"OPTIONS sip:example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;rport\r\n\
//!     From: <sip:a@example.com>;tag=1\r\nTo: <sip:example.com>\r\n\
//!     Call-ID: x@y\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"[..]).unwrap();
//! assert_eq!(m.via().unwrap().branch(), Some("z9hG4bK1"));
//! let reply = sip::Message::response_to(&m, 200, None, Some("srv1"));
//! assert_eq!(reply.to_header().unwrap().tag(), Some("srv1"));
//! ```

pub mod digest;
mod error;
mod framing;
pub mod headers;
mod message;
mod method;
mod name;
mod params;
mod parse;
pub mod scan;
mod status;
pub mod uri;
mod validate;

pub use error::{ParseError, Problem};
pub use framing::{Frame, StreamFramer};
pub use message::{Header, Message};
pub use method::{KNOWN_METHODS, Method};
pub use name::HeaderName;
pub use params::{Param, Params};
pub use parse::{Framing, Limits};
pub use status::reason_phrase;
pub use uri::{Scheme, Uri};
pub use validate::{UasPolicy, Verdict, has_star_contact, inspect_checked_request, inspect_request, reject_unparsed};
