//! The ACK an INVITE client transaction sends for a non-2xx final response (RFC 3261 §17.1.1.3):
//! same Request-URI, Call-ID, From and CSeq number as the INVITE, the INVITE's top Via only, the
//! To of the response (with its tag), the INVITE's Route headers, Max-Forwards 70, no body.

use sip::{HeaderName, Message, Method};

pub fn ack_for(invite: &Message, response: &Message) -> Option<Message> {
    let uri = invite.request_uri_str()?;
    let mut ack = Message::request(Method::Ack, uri);
    let top_via = invite.list_values(HeaderName::Via).next()?.ok()?;
    ack.push_header(HeaderName::Via, top_via);
    for route in invite.header_values("Route") {
        ack.push_header(HeaderName::Route, route);
    }
    ack.push_header(HeaderName::MaxForwards, "70");
    ack.push_header(HeaderName::From, invite.header("From")?);
    ack.push_header(HeaderName::To, response.header("To")?);
    ack.push_header(HeaderName::CallId, invite.header("Call-ID")?);
    let seq = invite.cseq().ok()?.seq;
    ack.push_header(HeaderName::CSeq, &format!("{seq} ACK"));
    ack.push_header(HeaderName::ContentLength, "0");
    Some(ack)
}
