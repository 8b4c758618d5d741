//! Real-world descriptions (Linphone, baresip, Polycom, Yealink, audio+video, IPv6, RFC 3605
//! `a=rtcp` with an address, WebRTC, hold, T.38): they round-trip byte for byte, read back the
//! expected model, and LF-only input reads the same as CRLF input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/checks.rs"]
mod checks;

use std::net::IpAddr;

use sdp::{Codec, Direction, Sdp};

fn sample(name: &str) -> Vec<u8> {
    let path = [env!("CARGO_MANIFEST_DIR"), "tests", "data", name]
        .iter()
        .collect::<std::path::PathBuf>();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(name: &str) -> Sdp {
    Sdp::parse(&sample(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn names(codecs: &[Codec]) -> Vec<String> {
    codecs
        .iter()
        .map(|c| format!("{}:{}/{}", c.pt, c.name, c.clock))
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("IP literal")
}

const SAMPLES: [&str; 10] = [
    "linphone_offer.sdp",
    "baresip_offer.sdp",
    "polycom_offer.sdp",
    "yealink_offer.sdp",
    "audio_video_offer.sdp",
    "ipv6_offer.sdp",
    "rtcp_address_offer.sdp",
    "webrtc_offer.sdp",
    "hold_offer.sdp",
    "t38_reinvite.sdp",
];

#[test]
fn samples_round_trip_byte_for_byte() {
    for name in SAMPLES {
        let data = sample(name);
        assert!(data.windows(2).any(|w| w == b"\r\n"), "{name} must be stored with CRLF");
        let sdp = parse(name);
        assert_eq!(
            String::from_utf8_lossy(&sdp.to_bytes()),
            String::from_utf8_lossy(&data),
            "{name}"
        );
        checks::check_sdp(&data);
    }
}

#[test]
fn lf_input_and_trailing_empty_line() {
    for name in SAMPLES {
        let crlf = sample(name);
        let lf: Vec<u8> = String::from_utf8(crlf.clone())
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes();
        let from_lf = Sdp::parse(&lf).unwrap();
        assert_eq!(from_lf, parse(name), "{name}");
        assert_eq!(from_lf.to_bytes(), crlf, "{name}: LF input is written with CRLF");
        let mut padded = crlf.clone();
        padded.extend_from_slice(b"\r\n");
        assert_eq!(Sdp::parse(&padded).unwrap().to_bytes(), crlf, "{name}");
        let unterminated = &crlf[..crlf.len() - 2];
        assert_eq!(Sdp::parse(unterminated).unwrap().to_bytes(), crlf, "{name}");
    }
}

#[test]
fn linphone_offer() {
    let sdp = parse("linphone_offer.sdp");
    assert_eq!(sdp.connection_addr(), Some(ip("192.168.1.20")));
    assert_eq!(sdp.attribute("record"), Some("off"));
    let audio = sdp.media().next().unwrap();
    assert_eq!((audio.kind(), audio.port(), audio.proto()), ("audio", 7078, "RTP/AVP"));
    assert_eq!(audio.formats(), ["96", "97", "98", "0", "8", "18", "101", "99", "100"]);
    assert_eq!(
        names(&audio.codecs()),
        [
            "96:opus/48000",
            "97:speex/16000",
            "98:speex/8000",
            "0:PCMU/8000",
            "8:PCMA/8000",
            "18:G729/8000",
            "101:telephone-event/48000",
            "99:telephone-event/16000",
            "100:telephone-event/8000"
        ]
    );
    let opus = &audio.codecs()[0];
    assert_eq!(opus.channels, Some(2));
    assert_eq!(opus.fmtp.as_deref(), Some("useinbandfec=1"));
    assert_eq!(audio.codecs()[5].fmtp.as_deref(), Some("annexb=yes"));
    assert_eq!(audio.rtcp(), Some((7079, None)));
    assert_eq!(audio.direction(), Direction::SendRecv);
    assert_eq!(audio.ptime(), None);
    assert!(!sdp.is_on_hold());
}

#[test]
fn baresip_offer() {
    let sdp = parse("baresip_offer.sdp");
    let audio = sdp.media().next().unwrap();
    assert_eq!(
        names(&audio.codecs()),
        [
            "96:opus/48000",
            "0:PCMU/8000",
            "8:PCMA/8000",
            "101:telephone-event/8000"
        ]
    );
    assert_eq!(audio.codecs()[3].fmtp.as_deref(), Some("0-15"));
    assert_eq!(audio.ptime(), Some(20));
    assert_eq!(audio.attribute("rtcp-rsize"), Some(""));
    assert_eq!(audio.attribute("label"), Some("1"));
    assert_eq!(sdp.attribute("tool"), Some("baresip 3.10.1"));
}

#[test]
fn desk_phone_offers() {
    let polycom = parse("polycom_offer.sdp");
    assert_eq!(polycom.session_direction(), Some(Direction::SendRecv));
    let audio = polycom.media().next().unwrap();
    assert_eq!(
        names(&audio.codecs()),
        [
            "9:G722/8000",
            "8:PCMA/8000",
            "0:PCMU/8000",
            "18:G729/8000",
            "127:telephone-event/8000"
        ]
    );
    let yealink = parse("yealink_offer.sdp");
    let audio = yealink.media().next().unwrap();
    assert_eq!(audio.formats(), ["9", "8", "0", "18", "101"]);
    assert_eq!(audio.codecs()[3].fmtp.as_deref(), Some("annexb=no"));
    assert_eq!(audio.ptime(), Some(20));
}

#[test]
fn audio_and_video() {
    let sdp = parse("audio_video_offer.sdp");
    let kinds: Vec<_> = sdp.media().map(|m| (m.kind(), m.port())).collect();
    assert_eq!(kinds, [("audio", 50000), ("video", 50002)]);
    let video = sdp.media().nth(1).unwrap();
    assert_eq!(names(&video.codecs()), ["96:H264/90000", "97:VP8/90000"]);
    assert_eq!(video.connection_addr(), Some(ip("203.0.113.7")));
    // Static payload types without a=rtpmap resolve from RFC 3551.
    let audio = sdp.media().next().unwrap();
    assert_eq!(names(&audio.codecs())[..2], ["0:PCMU/8000", "8:PCMA/8000"]);
}

#[test]
fn ipv6_and_rtcp_address() {
    let v6 = parse("ipv6_offer.sdp");
    assert_eq!(v6.connection_addr(), Some(ip("2001:db8::2")));
    assert_eq!(v6.media().next().unwrap().connection_addr(), Some(ip("2001:db8::2")));
    assert!(
        v6.to_bytes()
            .starts_with(b"v=0\r\no=bob 2890844730 2890844731 IN IP6 2001:db8::2\r\ns= \r\n")
    );

    let rtcp = parse("rtcp_address_offer.sdp");
    let audio = rtcp.media().next().unwrap();
    assert_eq!(audio.rtcp(), Some((53020, Some(ip("126.16.64.4")))));
}

#[test]
fn webrtc_unknown_attributes_survive_edits() {
    let mut sdp = parse("webrtc_offer.sdp");
    let before = sdp.to_bytes();
    sdp.media_mut().next().unwrap().set_port(9);
    // Re-rendering the m= line only: every other line is untouched.
    assert_eq!(sdp.to_bytes(), before);
    let audio = sdp.media().next().unwrap();
    assert!(audio.is_rtp());
    assert!(audio.has_null_connection());
    assert!(!audio.is_on_hold(), "with ICE, c=0.0.0.0 is no hold (RFC 8840)");
    assert_eq!(audio.attribute("ice-ufrag"), Some("EsAw"));
    assert_eq!(audio.attributes().filter(|(n, _)| *n == "rtcp-fb").count(), 1);
    assert_eq!(sdp.attribute("msid-semantic"), Some(" WMS stream1"));
}

#[test]
fn t38() {
    let sdp = parse("t38_reinvite.sdp");
    let image = sdp.media().next().unwrap();
    assert_eq!(
        (image.kind(), image.proto(), image.formats()),
        ("image", "udptl", &["t38".to_owned()][..])
    );
    assert!(image.codecs().is_empty());
    assert_eq!(image.attribute("t38faxversion"), Some("0"));
}

#[test]
fn set_connection_rewrites_every_address() {
    let mut sdp = parse("audio_video_offer.sdp");
    let relay = ip("198.51.100.20");
    sdp.set_connection(relay);
    let text = String::from_utf8(sdp.to_bytes()).unwrap();
    assert!(text.contains("o=- 3848921 3848921 IN IP4 198.51.100.20\r\n"), "{text}");
    assert!(text.contains("c=IN IP4 198.51.100.20\r\n"));
    assert!(!text.contains("203.0.113.7"));
    assert!(sdp.media().all(|m| m.connection_addr() == Some(relay)));

    // IPv4 to IPv6, media-level c= lines included.
    let mut sdp = Sdp::parse(
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\n\
          m=video 4002 RTP/AVP 31\r\nc=IN IP4 10.0.0.2\r\n",
    )
    .unwrap();
    sdp.set_connection(ip("2001:db8::20"));
    assert_eq!(
        String::from_utf8(sdp.to_bytes()).unwrap(),
        "v=0\r\no=- 1 1 IN IP6 2001:db8::20\r\ns=-\r\nc=IN IP6 2001:db8::20\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0\r\nc=IN IP6 2001:db8::20\r\nm=video 4002 RTP/AVP 31\r\nc=IN IP6 2001:db8::20\r\n"
    );
}

#[test]
fn set_connection_rewrites_an_ice_null_address() {
    let mut sdp = parse("webrtc_offer.sdp");
    sdp.set_connection(ip("198.51.100.20"));
    let audio = sdp.media().next().unwrap();
    assert_eq!(audio.connection_addr(), Some(ip("198.51.100.20")));
    assert_eq!(
        sdp.connection_addr(),
        Some(ip("198.51.100.20")),
        "added at session level"
    );
    let text = String::from_utf8(sdp.to_bytes()).unwrap();
    assert!(text.starts_with(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\n"
    ));
    // a=rtcp is left to MediaMut::set_rtcp.
    assert!(text.contains("a=rtcp:9 IN IP4 0.0.0.0\r\n"));
}

#[test]
fn set_connection_keeps_hold() {
    let mut sdp = parse("hold_offer.sdp");
    sdp.set_connection(ip("198.51.100.20"));
    assert_eq!(sdp.connection_addr(), Some(ip("0.0.0.0")));
    assert!(sdp.is_on_hold());
    assert!(
        String::from_utf8(sdp.to_bytes())
            .unwrap()
            .contains("o=- 20022 20023 IN IP4 198.51.100.20\r\n")
    );
}

#[test]
fn media_edits() {
    let mut sdp = parse("rtcp_address_offer.sdp");
    {
        let mut audio = sdp.media_mut().next().unwrap();
        audio.set_port(30000);
        audio.set_rtcp(30001, Some(ip("198.51.100.20")));
        audio.set_direction(Direction::SendOnly);
        audio.set_direction(Direction::Inactive);
        audio.push_attribute("x-relay", Some("sb")).unwrap();
        assert_eq!(
            audio.push_attribute("recvonly", None),
            Err(sdp::Problem::ConflictingDirection)
        );
        assert_eq!(audio.push_attribute("rtpmap", Some("0 PCMA/8000")), Ok(()));
        assert_eq!(
            audio.push_attribute("rtpmap", Some("0 PCMU/8000")),
            Err(sdp::Problem::DuplicateRtpmap)
        );
        assert_eq!(
            audio.codecs()[0].name,
            "PCMA",
            "a=rtpmap overrides the static assignment"
        );
        assert_eq!(
            audio.push_attribute("bad\r\nline", None),
            Err(sdp::Problem::ControlCharacter)
        );
        assert_eq!(audio.push_attribute("a:b", None), Err(sdp::Problem::BadAttributeName));
        assert_eq!(audio.push_attribute("ptime", Some("x")), Err(sdp::Problem::BadPtime));
    }
    let text = String::from_utf8(sdp.to_bytes()).unwrap();
    let want = "m=audio 30000 RTP/AVP 0\r\na=rtcp:30001 IN IP4 198.51.100.20\r\na=inactive\r\n\
                a=x-relay:sb\r\na=rtpmap:0 PCMA/8000\r\n";
    assert!(text.ends_with(want), "{text}");
    let mut audio = sdp.media_mut().next().unwrap();
    assert!(audio.remove_rtcp());
    assert!(!audio.remove_rtcp());
    assert_eq!(audio.rtcp(), None);
    checks::assert_reparses(&sdp);
}
