//! What a server does to the top Via of a received request (RFC 3261 §18.2.1, RFC 3581 §4) and
//! where the responses go (§18.2.2, RFC 3581 §4).
//!
//! `received` is added when the sent-by host is not the packet's source address; a `rport` without
//! value is filled with the source port (and then `received` is always added). Responses over UDP
//! go to the source address and, with `rport` (or `force_rport`), the source port; otherwise to
//! the sent-by port.

use std::net::{IpAddr, SocketAddr};

use sip::headers::Via;
use sip::{HeaderName, Message, ParseError};

/// The rewritten top Via value, or `None` when it needs no change.
pub fn stamped_via(via: &Via<'_>, source: SocketAddr) -> Option<String> {
    let sent_by_ip: Option<IpAddr> = via.host.trim_start_matches('[').trim_end_matches(']').parse().ok();
    let wants_rport = via.rport() == Some(None);
    let needs_received = wants_rport || sent_by_ip != Some(source.ip());
    if !needs_received {
        return None;
    }
    let mut out = format!("{}/{}/{} {}", via.protocol, via.version, via.transport, via.host);
    if let Some(port) = via.port {
        out.push_str(&format!(":{port}"));
    }
    for p in via.params.iter().filter_map(Result::ok) {
        if p.name.eq_ignore_ascii_case("received") || p.name.eq_ignore_ascii_case("rport") {
            continue;
        }
        out.push(';');
        out.push_str(p.name);
        if let Some(v) = p.value {
            out.push('=');
            out.push_str(v);
        }
    }
    out.push_str(";received=");
    out.push_str(&source.ip().to_string());
    if via.rport().is_some() {
        out.push_str(&format!(";rport={}", source.port()));
    }
    Some(out)
}

/// Applies [`stamped_via`] to a request. Returns where its UDP responses go.
pub fn stamp_request(msg: &mut Message, source: SocketAddr, force_rport: bool) -> Result<SocketAddr, ParseError> {
    let via = msg.via()?;
    let rport = via.rport().is_some();
    let sent_by_port = via.port.unwrap_or(5060);
    if let Some(value) = stamped_via(&via, source) {
        msg.replace_first_value(HeaderName::Via, &value);
    }
    Ok(if rport || force_rport {
        source
    } else {
        SocketAddr::new(source.ip(), sent_by_port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(s: &str) -> Via<'_> {
        Via::parse(s).expect("valid via")
    }

    #[test]
    fn received_and_rport() {
        let src: SocketAddr = "198.51.100.7:34567".parse().expect("addr");
        assert_eq!(
            stamped_via(&via("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa;rport"), src).as_deref(),
            Some("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa;received=198.51.100.7;rport=34567")
        );
        assert_eq!(
            stamped_via(&via("SIP/2.0/UDP phone.example.com;branch=z9hG4bKa"), src).as_deref(),
            Some("SIP/2.0/UDP phone.example.com;branch=z9hG4bKa;received=198.51.100.7")
        );
        assert_eq!(
            stamped_via(&via("SIP/2.0/UDP 198.51.100.7:34567;branch=z9hG4bKa"), src),
            None
        );
        let v6: SocketAddr = "[2001:db8::1]:5062".parse().expect("addr");
        assert_eq!(
            stamped_via(&via("SIP/2.0/TCP [2001:db8::1]:5062;branch=z9hG4bKa"), v6),
            None
        );
    }

    #[test]
    fn response_destination() {
        let raw = "OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKa, SIP/2.0/UDP x;branch=z9hG4bKb\r\n\r\n";
        let src: SocketAddr = "198.51.100.7:34567".parse().expect("addr");
        let mut m = Message::parse(raw.as_bytes().to_vec()).expect("valid");
        assert_eq!(
            stamp_request(&mut m, src, false).expect("via"),
            "198.51.100.7:5070".parse().expect("addr")
        );
        assert_eq!(m.via().expect("via").received(), Some("198.51.100.7"));
        assert_eq!(m.vias().count(), 2, "the second Via of the line is kept");
        let mut m = Message::parse(raw.as_bytes().to_vec()).expect("valid");
        assert_eq!(stamp_request(&mut m, src, true).expect("via"), src);
    }
}
