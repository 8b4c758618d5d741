//! Peer input never panics the parser: clear errors for garbage, and the fuzz target's
//! invariants (`support/checks.rs`) over random bytes, random line soups, every truncation and
//! single-byte mutation of the sample descriptions, and the inputs of `tests/data/fuzz/` (edge
//! cases written by hand; any input the fuzzer finds goes there too).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/checks.rs"]
mod checks;

use std::path::PathBuf;

use proptest::prelude::*;
use sdp::{Problem, Sdp};

fn files(dir: &[&str]) -> Vec<PathBuf> {
    let mut path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "data"].iter().collect();
    path.extend(dir);
    let mut v: Vec<_> = std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()).collect();
    v.retain(|p| p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')));
    v.retain(|p| p.is_file());
    v.sort();
    v
}

fn error(input: &str) -> (usize, Problem, String) {
    let e = Sdp::parse(input.as_bytes()).expect_err(input);
    (e.line(), e.problem(), e.to_string())
}

#[test]
fn garbage_is_refused_with_a_clear_error() {
    let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n";
    let m = "m=audio 4000 RTP/AVP 0\r\n";
    let cases: Vec<(String, usize, Problem)> = vec![
        (String::new(), 0, Problem::Empty),
        ("\r\n\r\n".into(), 0, Problem::Empty),
        ("hello world".into(), 1, Problem::NotTypeValue),
        (
            "INVITE sip:bob@example.com SIP/2.0\r\n".into(),
            1,
            Problem::NotTypeValue,
        ),
        ("<html>\n".into(), 1, Problem::NotTypeValue),
        (
            "o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n".into(),
            1,
            Problem::VersionNotFirst,
        ),
        ("v=1\r\n".into(), 1, Problem::UnsupportedVersion),
        ("v=0\r\ns=-\r\n".into(), 0, Problem::Missing('o')),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n".into(), 0, Problem::Missing('s')),
        ("v=0\r\no=x\r\n".into(), 2, Problem::BadOrigin),
        (format!("{head}v=0\r\n"), 4, Problem::Duplicate('v')),
        (format!("{head}s=again\r\n"), 4, Problem::Duplicate('s')),
        (
            format!("{head}c=IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\n"),
            5,
            Problem::Duplicate('c'),
        ),
        (format!("{head}c=IN IP4\r\n"), 4, Problem::BadConnection),
        (format!("{head}\r\nt=0 0\r\n"), 4, Problem::BlankLine),
        (format!("{head}i=caf\u{e9}\r\ns\0=x\r\n"), 5, Problem::ControlCharacter),
        (format!("{head}{m}t=0 0\r\n"), 5, Problem::NotAllowedInMedia('t')),
        (format!("{head}m=audio\r\n"), 4, Problem::BadMedia),
        (format!("{head}m=audio 99999 RTP/AVP 0\r\n"), 4, Problem::BadPort),
        (
            format!("{head}m=audio 4000 RTP/AVP PCMU\r\n"),
            4,
            Problem::BadPayloadType,
        ),
        (format!("{head}{m}a=rtpmap:96 opus\r\n"), 5, Problem::BadRtpmap),
        (
            format!("{head}{m}a=rtpmap:0 PCMU/8000\r\na=rtpmap:0 PCMA/8000\r\n"),
            6,
            Problem::DuplicateRtpmap,
        ),
        (format!("{head}{m}a=fmtp:\r\n"), 5, Problem::BadFmtp),
        (format!("{head}{m}a=rtcp:x\r\n"), 5, Problem::BadRtcp),
        (format!("{head}{m}a=ptime:20ms\r\n"), 5, Problem::BadPtime),
        (
            format!("{head}{m}a=sendonly\r\na=recvonly\r\n"),
            6,
            Problem::ConflictingDirection,
        ),
        (format!("{head}{m}a=sendonly:1\r\n"), 5, Problem::UnexpectedValue),
        (format!("{head}{m}a=:x\r\n"), 5, Problem::BadAttributeName),
    ];
    for (input, line, problem) in cases {
        let (l, p, _) = error(&input);
        assert_eq!((l, p), (line, problem), "{input:?}");
    }
    let mut not_utf8 = head.as_bytes().to_vec();
    not_utf8.extend_from_slice(b"i=\xe9t\xe9\r\n");
    assert_eq!(Sdp::parse(&not_utf8).unwrap_err().to_string(), "SDP line 4: not UTF-8");
    assert_eq!(error("v=0\r\ns=-\r\n").2, "SDP: missing o= line");
    assert_eq!(
        error(&format!("{head}{m}a=rtpmap:96 opus\r\n")).2,
        "SDP line 5: bad a=rtpmap"
    );
}

#[test]
fn tolerated_oddities() {
    // Session lines out of RFC order, no t=, an unknown line type, trailing spaces, an m= line
    // without formats, a multicast c= with TTL, media-level c= repeated (layered multicast).
    let input = "v=0\r\ns=-\r\na=x\r\no=- 1 1 IN IP4 192.0.2.1 \r\nc=IN IP4 224.2.1.1/127\r\ny=unknown\r\n\
                 m=audio 4000 RTP/AVP 0 \r\nc=IN IP4 224.2.1.1/127\r\nc=IN IP4 224.2.1.2/127\r\nq=x\r\n\
                 m=application 0 TCP/MSRP\r\n";
    let sdp = Sdp::parse(input.as_bytes()).unwrap();
    assert_eq!(sdp.to_bytes(), input.as_bytes());
    assert_eq!(sdp.connection_addr(), Some("224.2.1.1".parse().unwrap()));
    checks::check_sdp(input.as_bytes());
}

#[test]
fn truncated_and_mutated_samples_hold_the_invariants() {
    for path in files(&[]) {
        let data = std::fs::read(&path).unwrap();
        for end in 0..=data.len() {
            checks::check_sdp(&data[..end]);
        }
        // Two replacement bytes per position, taken in turn from the list: every value lands
        // on every kind of line across the samples, at a fraction of the cost.
        let bytes = [0u8, b'\n', b'\r', b' ', b':', b'/', b'=', b'0', b'9', b'x', 0xff];
        for i in 0..data.len() {
            for k in 0..2 {
                let mut d = data.clone();
                d[i] = bytes[(2 * i + k) % bytes.len()];
                checks::check_sdp(&d);
            }
            let mut d = data.clone();
            d.remove(i);
            checks::check_sdp(&d);
        }
    }
}

#[test]
fn fuzz_findings_stay_fixed() {
    let found = files(&["fuzz"]);
    assert!(!found.is_empty());
    for path in found {
        checks::check_sdp(&std::fs::read(&path).unwrap());
    }
}

/// A line from a vocabulary of well-formed, odd and malformed lines.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("o=- 1 1 IN IP4 192.0.2.1".to_owned()),
        Just("s=-".to_owned()),
        Just("t=0 0".to_owned()),
        prop_oneof![
            Just("IP4 0.0.0.0"),
            Just("IP4 192.0.2.7"),
            Just("IP6 ::"),
            Just("IP6 2001:db8::1"),
            Just("IP4 h.example")
        ]
        .prop_map(|a| format!("c=IN {a}")),
        (
            prop_oneof![Just("audio"), Just("video"), Just("image")],
            prop_oneof![Just(0u16), 1u16..],
            prop_oneof![Just("RTP/AVP"), Just("udptl"), Just("UDP/TLS/RTP/SAVPF")],
            prop::collection::vec(prop_oneof![0u8..20, 96u8..128].prop_map(|p| p.to_string()), 0..6),
        )
            .prop_map(|(k, p, proto, f)| format!("m={k} {p} {proto} {}", f.join(" "))),
        (
            96u8..=127,
            prop_oneof![
                Just("opus/48000/2"),
                Just("telephone-event/8000"),
                Just("H264/90000"),
                Just("x")
            ]
        )
            .prop_map(|(pt, e)| format!("a=rtpmap:{pt} {e}")),
        (0u8..=127).prop_map(|pt| format!("a=fmtp:{pt} 0-16")),
        prop_oneof![Just("sendonly"), Just("recvonly"), Just("inactive"), Just("sendrecv")]
            .prop_map(|d| format!("a={d}")),
        (any::<u16>(), prop::option::of(Just(" IN IP4 192.0.2.9")))
            .prop_map(|(p, a)| format!("a=rtcp:{p}{}", a.unwrap_or(""))),
        "a=ptime:[0-9.]{0,4}",
        "[a-z]=[ -~]{0,20}",
        "[ -~]{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes(data in prop::collection::vec(any::<u8>(), 0..400)) {
        checks::check_sdp(&data);
    }

    #[test]
    fn line_soup(lines in prop::collection::vec(line(), 0..16), lf in any::<bool>()) {
        let mut text = String::from("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n");
        for l in lines {
            text.push_str(&l);
            text.push_str(if lf { "\n" } else { "\r\n" });
        }
        checks::check_sdp(text.as_bytes());
    }
}
