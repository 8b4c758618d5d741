//! Typed views of the headers the server decides on (RFC 3261 §20). Each type borrows from the
//! header value it was parsed from; nothing is parsed until it is asked for.

mod auth;
mod cseq;
mod name_addr;
mod via;

pub use auth::{AuthParams, Challenge, Credentials, DigestCredentials};
pub use cseq::{CSeq, parse_call_id, parse_delta_seconds, parse_max_forwards};
pub use name_addr::{Contact, NameAddr};
pub use via::Via;
