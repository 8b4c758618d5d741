//! RFC 4475 torture tests: every message of the RFC, with the outcome its index
//! (`data/rfc4475/INDEX.md`) requires of a compliant element, and the tricky field read right.
//!
//! Requests are judged as by a UAS that they are addressed to (`inspect_request` with the policy
//! below); responses are accepted when they parse and pass `check_essentials`, dropped otherwise.
//! Outcomes that belong to a later layer (a registrar's 400 for a non-SIP To, its 401 for an
//! unknown auth scheme, a proxy's 483) are checked here on the facts that layer decides on.

#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::path::PathBuf;

use sip::headers::Contact;
use sip::{
    HeaderName, KNOWN_METHODS, Message, Method, ParseError, Problem, Scheme, UasPolicy, Verdict, inspect_request,
};

fn load(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data", "rfc4475", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn policy() -> UasPolicy<'static> {
    UasPolicy {
        schemes: &["sip", "sips", "tel"],
        methods: KNOWN_METHODS,
        extensions: &["path", "outbound", "gruu", "100rel", "timer", "replaces"],
        body_types: &["application/sdp", "multipart/mixed"],
        answer_type: Some("application/sdp"),
    }
}

/// What happens to one message.
enum Outcome {
    /// A request processed normally; the closure checks the tricky part.
    Accept(fn(&Message)),
    /// A response accepted.
    AcceptResponse(fn(&Message)),
    /// A request rejected with this status; the closure checks the reason and extra headers.
    Reject(u16, fn(&Message, &str, &[(HeaderName, String)])),
    /// A response silently discarded.
    Drop,
}

fn any_reason(_: &Message, _: &str, _: &[(HeaderName, String)]) {}

fn judge(bytes: Vec<u8>) -> (Result<Message, ParseError>, Option<Verdict>) {
    let parsed = Message::parse(bytes);
    let verdict = match &parsed {
        Ok(m) if m.is_request() => Some(inspect_request(m, &policy())),
        Ok(_) => None,
        Err(e) => Some(Verdict::Reject {
            status: e.status_code(),
            reason: Cow::Owned(e.to_string()),
            headers: vec![],
        }),
    };
    (parsed, verdict)
}

fn expectations() -> Vec<(&'static str, Outcome)> {
    use Outcome::*;
    vec![
        (
            "wsinv.dat",
            Accept(|m| {
                assert_eq!(m.method(), Some(&Method::Invite));
                assert_eq!(m.max_forwards(), Ok(Some(68)));
                assert_eq!(m.cseq().unwrap().seq, 9);
                let vias: Vec<_> = m.vias().map(|v| v.unwrap()).collect();
                assert_eq!(vias.len(), 3);
                assert_eq!(
                    (vias[0].transport, vias[0].host, vias[0].branch()),
                    ("UDP", "192.0.2.2", Some("390skdjuw"))
                );
                assert_eq!((vias[1].transport, vias[1].host), ("TCP", "spindle.example.com"));
                assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
                assert_eq!(m.to_header().unwrap().tag(), Some("1918181833n"));
                let from = m.from_header().unwrap();
                assert_eq!(from.display_name().as_deref(), Some("J Rosenberg \\\""));
                assert_eq!(from.tag(), Some("98asjd8"));
                assert_eq!(m.header("Subject"), Some(""));
                assert_eq!(m.header("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
                assert_eq!(
                    m.header("NewFangledHeader"),
                    Some("newfangled value\r\n continued newfangled value")
                );
                let contact = m.contacts().next().unwrap().unwrap();
                assert_eq!(
                    contact.addr().unwrap().display_name().as_deref(),
                    Some("Quoted string \"\"")
                );
                assert_eq!(contact.q_millis(), Some(Ok(330)));
                assert_eq!(contact.addr().unwrap().params.value("newparam"), Some("newvalue"));
                let route = m.routes().next().unwrap().unwrap();
                assert!(route.uri.is_loose_route());
                assert_eq!(m.body().len(), 150);
            }),
        ),
        (
            "intmeth.dat",
            Reject(501, |m, _, headers| {
                assert_eq!(
                    m.method().unwrap().as_str(),
                    "!interesting-Method0123456789_*+`.%indeed'~"
                );
                let uri = m.request_uri().unwrap();
                assert_eq!(uri.user, Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"));
                assert_eq!(uri.password, Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"));
                assert_eq!(uri.host, "example.com");
                assert_eq!(m.call_id(), Ok("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"));
                assert_eq!(m.cseq().unwrap().method.as_str(), m.method().unwrap().as_str());
                let from = m.from_header().unwrap();
                assert_eq!(from.display_raw, Some("token1~` token2'+_ token3*%!.-"));
                assert_eq!(from.params.value("fromParam''~+*_!.-%"), Some("\"работающий\""));
                assert!(m.header("extensionHeader-!.%*+_`'~").is_some());
                assert!(
                    headers
                        .iter()
                        .any(|(n, v)| *n == HeaderName::Allow && v.contains("INVITE"))
                );
            }),
        ),
        (
            "esc01.dat",
            Accept(|m| {
                let uri = m.request_uri().unwrap();
                assert_eq!(uri.user_str().as_deref(), Some("sips:user@example.com"));
                assert_eq!(uri.host, "example.net");
                assert_eq!(m.to_header().unwrap().uri.user_str().as_deref(), Some("user"));
                assert_eq!(
                    m.from_header().unwrap().uri.user_str().as_deref(),
                    Some("I have spaces")
                );
                let contact = m.contacts().next().unwrap().unwrap();
                let curi = contact.addr().unwrap().uri;
                assert_eq!(curi.user_str().as_deref(), Some("caller"));
                assert!(curi.equivalent(&sip::Uri::parse("sip:caller@host5.example.net;lr;name=value%2541").unwrap()));
            }),
        ),
        (
            "escnull.dat",
            Accept(|m| {
                assert_eq!(m.to_header().unwrap().uri.user_str().as_deref(), Some("null-\0-null"));
                let users: Vec<_> = m
                    .contacts()
                    .map(|c| c.unwrap().addr().unwrap().uri.user_str().unwrap().into_owned())
                    .collect();
                assert_eq!(users, ["\0", "\0\0"]);
            }),
        ),
        (
            "esc02.dat",
            Reject(501, |m, _, _| {
                assert_eq!(m.method().unwrap().as_str(), "RE%47IST%45R");
                assert_ne!(m.method(), Some(&Method::Register));
                assert_eq!(m.contacts().count(), 2, "C%6Fntact is not Contact");
                assert_eq!(m.header("C%6Fntact"), Some("<sip:alias2@host2.example.com>"));
            }),
        ),
        (
            "lwsdisp.dat",
            Accept(|m| assert_eq!(m.from_header().unwrap().display_raw, Some("caller"))),
        ),
        (
            "longreq.dat",
            Accept(|m| {
                assert!(m.to_header().unwrap().display_name().unwrap().len() > 80);
                assert!(m.vias().count() > 30);
                assert!(m.call_id().unwrap().len() > 100);
                assert!(
                    m.from_header()
                        .unwrap()
                        .tag()
                        .unwrap()
                        .starts_with("12982982982982982982982")
                );
            }),
        ),
        (
            "dblreq.dat",
            Accept(|m| {
                assert_eq!(m.method(), Some(&Method::Register));
                assert!(m.body().is_empty());
                assert!(
                    !m.to_bytes().windows(6).any(|w| w == b"INVITE"),
                    "the trailing INVITE is never passed on"
                );
            }),
        ),
        (
            "semiuri.dat",
            Accept(|m| {
                let uri = m.request_uri().unwrap();
                assert_eq!(uri.user_str().as_deref(), Some("user;par=u@example.net"));
                assert_eq!(uri.host, "example.com");
                assert!(uri.params.is_empty());
                assert_eq!(m.list_values(HeaderName::Accept).count(), 6);
            }),
        ),
        (
            "transports.dat",
            Accept(|m| {
                let t: Vec<_> = m.vias().map(|v| v.unwrap().transport).collect();
                assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
            }),
        ),
        (
            "mpart01.dat",
            Accept(|m| {
                assert_eq!(m.content_type(), Some("multipart/mixed"));
                assert_eq!(
                    m.body().len(),
                    m.header("Content-Length").unwrap().parse::<usize>().unwrap()
                );
                assert!(m.body().iter().any(|&b| b >= 0x80), "binary body kept");
            }),
        ),
        (
            "unreason.dat",
            AcceptResponse(|m| {
                assert_eq!(m.status_code(), Some(200));
                assert!(m.reason_phrase().unwrap().starts_with("= 2**3 * 5**2 \u{043d}\u{043e}"));
            }),
        ),
        (
            "noreason.dat",
            AcceptResponse(|m| {
                assert_eq!(m.status_code(), Some(100));
                assert_eq!(m.reason_phrase(), Some(""));
            }),
        ),
        (
            "badinv01.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "Bad Via header: empty parameter")
            }),
        ),
        ("clerr.dat", Reject(400, |_, _, _| {})),
        (
            "ncl.dat",
            Reject(400, |_, reason, _| assert_eq!(reason, "Bad Content-Length")),
        ),
        (
            "scalar02.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "Bad CSeq header: number out of range")
            }),
        ),
        ("scalarlg.dat", Drop),
        (
            "quotbal.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "Bad To header: unterminated quoted string")
            }),
        ),
        (
            "ltgtruri.dat",
            Reject(400, |_, reason, _| assert!(reason.starts_with("Bad Request-URI"))),
        ),
        (
            "lwsruri.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "Bad Request-URI: whitespace inside URI")
            }),
        ),
        (
            "lwsstart.dat",
            Accept(|m| {
                assert_eq!(m.request_uri_str(), Some("sip:user@example.com"));
                assert!(
                    m.to_bytes().starts_with(b"INVITE sip:user@example.com SIP/2.0\r\n"),
                    "never forwarded as-is"
                );
            }),
        ),
        (
            "trws.dat",
            Accept(|m| {
                assert!(
                    m.to_bytes()
                        .starts_with(b"OPTIONS sip:remote-target@example.com SIP/2.0\r\n")
                );
            }),
        ),
        (
            "escruri.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "Bad Request-URI: URI headers not allowed here")
            }),
        ),
        (
            "baddate.dat",
            Accept(|m| assert!(m.header("Date").unwrap().ends_with("EST"))),
        ),
        (
            "regbadct.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "Bad Contact header: URI with ?, ; or , must be in <>")
            }),
        ),
        (
            "badaspec.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "Bad To header: whitespace inside URI")
            }),
        ),
        (
            "baddn.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "Bad From header: bad display name")
            }),
        ),
        ("badvers.dat", Reject(505, any_reason)),
        (
            "mismatch01.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "CSeq method does not match request method")
            }),
        ),
        ("mismatch02.dat", Reject(400, any_reason)),
        ("bigcode.dat", Drop),
        (
            "badbranch.dat",
            Accept(|m| {
                let via = m.via().unwrap();
                assert_eq!(via.branch(), Some("z9hG4bK"));
                assert!(
                    !via.has_rfc3261_branch(),
                    "a bare cookie falls back to RFC 2543 matching"
                );
            }),
        ),
        (
            "insuf.dat",
            Reject(400, |_, reason, _| assert!(reason.starts_with("Missing"), "{reason}")),
        ),
        (
            "unkscm.dat",
            Reject(416, |m, _, _| {
                assert_eq!(m.request_uri().unwrap().scheme, Scheme::Other("nobodyKnowsThisScheme"));
            }),
        ),
        (
            "novelsc.dat",
            Reject(416, |m, _, _| {
                assert_eq!(m.request_uri().unwrap().scheme, Scheme::Other("soap.beep"))
            }),
        ),
        (
            "unksm2.dat",
            Accept(|m| {
                // A registrar answers 400 because the To of a REGISTER is not a SIP AOR.
                assert_eq!(m.to_header().unwrap().uri.scheme, Scheme::Other("isbn"));
                assert_eq!(m.from_header().unwrap().uri.scheme, Scheme::Other("http"));
                let c = m.contacts().next().unwrap().unwrap();
                assert_eq!(c.addr().unwrap().uri.scheme, Scheme::Other("name"));
            }),
        ),
        (
            "bext01.dat",
            Reject(420, |_, _, headers| {
                assert_eq!(
                    headers,
                    [(
                        HeaderName::Unsupported,
                        "nothingSupportsThis, nothingSupportsThisEither".to_owned()
                    )]
                );
            }),
        ),
        (
            "invut.dat",
            Reject(415, |_, _, headers| {
                assert!(
                    headers
                        .iter()
                        .any(|(n, v)| *n == HeaderName::Accept && v.contains("application/sdp"))
                );
            }),
        ),
        (
            "regaut01.dat",
            Accept(|m| {
                // A registrar challenges with its own Digest: the offered scheme is unknown.
                let creds = m.credentials(HeaderName::Authorization).next().unwrap().unwrap();
                assert_eq!(creds.scheme, "NoOneKnowsThisScheme");
                assert!(!creds.is_digest());
            }),
        ),
        (
            "multi01.dat",
            Reject(400, |_, reason, _| {
                assert!(reason.starts_with("More than one"), "{reason}")
            }),
        ),
        (
            "mcl01.dat",
            Reject(400, |_, reason, _| {
                assert_eq!(reason, "More than one Content-Length header")
            }),
        ),
        (
            "bcast.dat",
            AcceptResponse(|m| {
                let hosts: Vec<_> = m.vias().map(|v| v.unwrap().host).collect();
                assert_eq!(hosts, ["192.0.2.198", "255.255.255.255"]);
            }),
        ),
        ("zeromf.dat", Accept(|m| assert_eq!(m.max_forwards(), Ok(Some(0))))),
        (
            "cparam01.dat",
            Accept(|m| {
                let c = m.contacts().next().unwrap().unwrap();
                let a = c.addr().unwrap();
                assert_eq!(a.uri.as_str(), "sip:+19725552222@gw1.example.net");
                assert!(a.params.contains("unknownparam"));
            }),
        ),
        (
            "cparam02.dat",
            Accept(|m| {
                let c = m.contacts().next().unwrap().unwrap();
                let a = c.addr().unwrap();
                assert_eq!(a.uri.as_str(), "sip:+19725552222@gw1.example.net;unknownparam");
                assert!(a.params.is_empty());
            }),
        ),
        (
            "regescrt.dat",
            Accept(|m| {
                let c = m.contacts().next().unwrap().unwrap();
                let a = c.addr().unwrap();
                assert_eq!(a.uri.as_str(), "sip:user@example.com?Route=%3Csip:sip.example.com%3E");
                assert_eq!(a.uri.headers, Some("Route=%3Csip:sip.example.com%3E"));
                assert_eq!(m.routes().count(), 0, "the escaped Route is never acted on");
            }),
        ),
        (
            "sdp01.dat",
            Reject(406, |_, _, headers| {
                assert_eq!(headers, [(HeaderName::Accept, "application/sdp".to_owned())]);
            }),
        ),
        (
            "inv2543.dat",
            Accept(|m| {
                assert_eq!(m.max_forwards(), Ok(None));
                let via = m.via().unwrap();
                assert_eq!(via.branch(), None);
                assert!(!via.has_rfc3261_branch());
                assert_eq!(m.to_header().unwrap().tag(), None);
            }),
        ),
    ]
}

#[test]
fn every_torture_message_gets_its_outcome() {
    let expectations = expectations();
    let index = String::from_utf8(load("INDEX.md")).unwrap();
    let listed: Vec<&str> = index
        .lines()
        .filter_map(|l| l.strip_prefix("| ").and_then(|r| r.split(' ').next()))
        .filter(|f| f.ends_with(".dat"))
        .collect();
    assert_eq!(listed.len(), 49);
    for file in &listed {
        assert!(expectations.iter().any(|(f, _)| f == file), "{file} has no expectation");
    }
    assert_eq!(expectations.len(), 49);

    for (file, outcome) in expectations {
        let bytes = load(file);
        let (parsed, verdict) = judge(bytes.clone());
        match outcome {
            Outcome::Accept(check) => {
                let m = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(verdict, Some(Verdict::Accept), "{file}");
                check(&m);
            }
            Outcome::AcceptResponse(check) => {
                let m = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(m.is_response(), "{file}");
                m.check_essentials().unwrap_or_else(|e| panic!("{file}: {e}"));
                check(&m);
            }
            Outcome::Drop => {
                let dropped = match &parsed {
                    Err(_) => true,
                    Ok(m) => m.is_response() && m.check_essentials().is_err(),
                };
                assert!(dropped, "{file} must be dropped");
            }
            Outcome::Reject(status, check) => match verdict {
                Some(Verdict::Reject {
                    status: got,
                    reason,
                    headers,
                }) => {
                    assert_eq!(got, status, "{file}: {reason}");
                    assert!(!reason.is_empty() && reason.is_ascii(), "{file}: reason {reason:?}");
                    if let Ok(m) = &parsed {
                        check(m, &reason, &headers);
                        let resp = Verdict::Reject {
                            status,
                            reason: reason.clone(),
                            headers: headers.clone(),
                        }
                        .response(m, "t1")
                        .unwrap();
                        let wire = resp.to_bytes();
                        assert!(
                            wire.starts_with(format!("SIP/2.0 {status} {reason}\r\n").as_bytes()),
                            "{file}"
                        );
                        assert!(Message::parse(wire).is_ok(), "{file}: our 4xx must itself parse");
                    } else {
                        check(&Message::response(200, None), &reason, &headers);
                    }
                }
                other => panic!("{file}: expected {status}, got {other:?} (parse: {parsed:?})"),
            },
        }
        // Whatever the outcome, a message that parses re-serializes to itself.
        if let Ok(m) = Message::parse(bytes) {
            let again = Message::parse(m.to_bytes()).unwrap_or_else(|e| panic!("{file} reparse: {e}"));
            assert_eq!(again, m, "{file} round trip");
        }
    }
}

#[test]
fn contact_star_and_expires_of_scalar02() {
    let m = Message::parse(load("scalar02.dat")).unwrap();
    assert_eq!(
        m.max_forwards().unwrap_err(),
        ParseError::BadHeader {
            header: "Max-Forwards",
            problem: Problem::NumberTooLarge
        }
    );
    assert!(m.expires().is_err());
    let c = m.contacts().next().unwrap().unwrap();
    assert_eq!(c.expires(), Some(Err(Problem::NumberTooLarge)));
    assert!(!matches!(c, Contact::Star));
}
