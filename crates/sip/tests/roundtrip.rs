//! Property tests: generated valid messages survive serialize → parse unchanged, and what the
//! parser reads back is what was generated (start line, every header in order, the body, the
//! typed values of Via, From/To tags, CSeq, Contact expires).

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;
use sip::{Framing, HeaderName, Limits, Message, Method, StreamFramer};

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,15}"
}

/// A URI parameter name or value: `paramchar` without escapes.
fn uri_token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!*_~'-]{0,15}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        (any::<u8>(), any::<u8>(), any::<u8>(), 1u8..255).prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", std::net::Ipv6Addr::from(s))),
    ]
}

fn user() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.!~*'()&=+$,;?/-]{1,12}(%[0-9A-F]{2})?"
}

fn sip_uri() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        prop::option::of(user()),
        host(),
        prop::option::of(1u16..),
        prop::collection::vec((uri_token(), prop::option::of(uri_token())), 0..3),
    )
        .prop_map(|(secure, user, host, port, params)| {
            let mut s = String::from(if secure { "sips:" } else { "sip:" });
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in params {
                s.push(';');
                s.push_str(&n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("INVITE".to_owned()),
        Just("REGISTER".to_owned()),
        Just("OPTIONS".to_owned()),
        Just("BYE".to_owned()),
        "[A-Z]{3,10}",
    ]
}

/// Free text for an unknown header: printable, UTF-8 allowed, no leading/trailing white space.
fn free_text() -> impl Strategy<Value = String> {
    "[!-~\u{a0}-\u{2fff}]([ !-~\u{a0}-\u{2fff}]{0,40}[!-~\u{a0}-\u{2fff}])?"
}

#[derive(Debug, Clone)]
struct Generated {
    method: String,
    uri: String,
    via_host: String,
    via_port: Option<u16>,
    branch: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    contact: String,
    expires: u32,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
    compact: bool,
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        (
            method(),
            sip_uri(),
            host(),
            prop::option::of(1u16..),
            token(),
            token(),
            prop::option::of(token()),
        ),
        (any::<u32>(), sip_uri(), any::<u32>()),
        prop::collection::vec(("X-[A-Za-z0-9-]{1,12}", free_text()), 0..6),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::bool::ANY,
    )
        .prop_map(
            |(
                (method, uri, via_host, via_port, branch, from_tag, to_tag),
                (cseq, contact, expires),
                extra,
                body,
                compact,
            )| {
                Generated {
                    method,
                    uri,
                    via_host,
                    via_port,
                    branch: format!("z9hG4bK{branch}"),
                    from_tag,
                    to_tag,
                    cseq,
                    contact,
                    expires,
                    extra,
                    body,
                    compact,
                }
            },
        )
}

fn wire(g: &Generated) -> Vec<u8> {
    let n = |long: &'static str, short: &'static str| if g.compact { short } else { long };
    let mut s = format!("{} {} SIP/2.0\r\n", g.method, g.uri);
    let port = g.via_port.map(|p| format!(":{p}")).unwrap_or_default();
    s += &format!(
        "{}: SIP/2.0/UDP {}{port};branch={};rport\r\n",
        n("Via", "v"),
        g.via_host,
        g.branch
    );
    s += &format!("{}: <sip:alice@example.com>;tag={}\r\n", n("From", "f"), g.from_tag);
    match &g.to_tag {
        Some(t) => s += &format!("{}: <sip:bob@example.com>;tag={t}\r\n", n("To", "t")),
        None => s += &format!("{}: <sip:bob@example.com>\r\n", n("To", "t")),
    }
    s += &format!("{}: gen-{}@example.com\r\n", n("Call-ID", "i"), g.cseq);
    s += &format!("CSeq: {} {}\r\n", g.cseq, g.method);
    s += &format!("{}: <{}>;expires={}\r\n", n("Contact", "m"), g.contact, g.expires);
    s += "Max-Forwards: 70\r\n";
    for (name, value) in &g.extra {
        s += &format!("{name}: {value}\r\n");
    }
    s += &format!("{}: {}\r\n\r\n", n("Content-Length", "l"), g.body.len());
    let mut out = s.into_bytes();
    out.extend_from_slice(&g.body);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_messages_parse_and_round_trip(g in generated()) {
        let bytes = wire(&g);
        let m = Message::parse(bytes.clone()).unwrap();
        prop_assert_eq!(&m.to_bytes()[..], &bytes[..], "unchanged message re-serializes byte for byte");
        m.check_essentials().unwrap();

        prop_assert_eq!(m.method().unwrap().as_str(), g.method.as_str());
        prop_assert_eq!(m.request_uri_str(), Some(g.uri.as_str()));
        let via = m.via().unwrap();
        prop_assert_eq!(via.host, g.via_host.as_str());
        prop_assert_eq!(via.port, g.via_port);
        prop_assert_eq!(via.branch(), Some(g.branch.as_str()));
        prop_assert_eq!(via.rport(), Some(None));
        prop_assert_eq!(m.from_header().unwrap().tag(), Some(g.from_tag.as_str()));
        prop_assert_eq!(m.to_header().unwrap().tag(), g.to_tag.as_deref());
        let cseq = m.cseq().unwrap();
        prop_assert_eq!(cseq.seq, g.cseq);
        prop_assert_eq!(cseq.method, Method::parse(&g.method).unwrap());
        let contact = m.contacts().next().unwrap().unwrap();
        prop_assert_eq!(contact.expires(), Some(Ok(g.expires)));
        prop_assert_eq!(contact.addr().unwrap().uri.as_str(), g.contact.as_str());
        for (name, value) in &g.extra {
            prop_assert!(m.header_values(name).any(|v| v == value));
        }
        prop_assert_eq!(m.body(), &g.body[..]);

        // Edited: the new header is there, everything else reads back the same.
        let mut edited = m.clone();
        edited.prepend_header(HeaderName::Via, "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKproxy");
        edited.set_header(HeaderName::MaxForwards, "69");
        let again = Message::parse(edited.to_bytes()).unwrap();
        prop_assert_eq!(&again, &edited);
        prop_assert_eq!(again.via().unwrap().host, "proxy.example.com");
        prop_assert_eq!(again.vias().nth(1).unwrap().unwrap().host, g.via_host.as_str());
        prop_assert_eq!(again.max_forwards(), Ok(Some(69)));
        prop_assert_eq!(again.body(), &g.body[..]);
        edited.remove_first_value(HeaderName::Via);
        let popped = Message::parse(edited.to_bytes()).unwrap();
        prop_assert_eq!(popped.via().unwrap().host, g.via_host.as_str());
    }

    #[test]
    fn stream_framing_is_independent_of_segmentation(gs in prop::collection::vec(generated(), 1..4), cuts in prop::collection::vec(1usize..200, 0..20)) {
        let mut stream = Vec::new();
        for g in &gs {
            stream.extend_from_slice(&wire(g));
        }
        let mut framer = StreamFramer::new(Limits::default());
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut cuts = cuts.into_iter();
        while !rest.is_empty() {
            let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
            framer.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(frame) = framer.next_frame().unwrap() {
                match frame {
                    sip::Frame::Message(m) => got.push(m),
                    other => prop_assert!(false, "unexpected frame {:?}", other),
                }
            }
        }
        prop_assert_eq!(got.len(), gs.len());
        for (m, g) in got.iter().zip(&gs) {
            let direct = Message::parse_with(Bytes::from(wire(g)), Framing::Stream, &Limits::default()).unwrap();
            prop_assert_eq!(m, &direct);
        }
    }
}
