//! Offer/answer (RFC 3264): the codec policy on offers (order kept, dropped payload types
//! cleaned up, streams rejected with port 0, 488 when nothing is left), hold detection, and the
//! check of answers against offers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/checks.rs"]
mod checks;

use sdp::{AnswerError, CodecPolicy, Direction, Sdp, check_answer};

fn sample(name: &str) -> Sdp {
    let path = [env!("CARGO_MANIFEST_DIR"), "tests", "data", name]
        .iter()
        .collect::<std::path::PathBuf>();
    Sdp::parse(&std::fs::read(path).unwrap()).unwrap()
}

/// A description from LF-separated lines.
fn sdp(text: &str) -> Sdp {
    Sdp::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn text(sdp: &Sdp) -> String {
    String::from_utf8(sdp.to_bytes()).unwrap()
}

const HEAD: &str = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n";

fn with_head(media: &str) -> Sdp {
    sdp(&format!("{HEAD}{media}"))
}

#[test]
fn filtering_keeps_the_callers_order_and_cleans_up() {
    let mut offer = sample("linphone_offer.sdp");
    CodecPolicy::default().filter_offer(&mut offer).unwrap();
    let audio = offer.media().next().unwrap();
    assert_eq!(audio.formats(), ["96", "0", "8", "101", "99", "100"]);
    assert_eq!(
        text(&offer).split_once("m=audio").unwrap().1,
        " 7078 RTP/AVP 96 0 8 101 99 100\r\n\
         a=rtpmap:96 opus/48000/2\r\n\
         a=fmtp:96 useinbandfec=1\r\n\
         a=rtpmap:101 telephone-event/48000\r\n\
         a=rtpmap:99 telephone-event/16000\r\n\
         a=rtpmap:100 telephone-event/8000\r\n\
         a=rtcp:7079\r\n\
         a=rtcp-fb:* trr-int 1000\r\n\
         a=rtcp-fb:* ccm tmmbr\r\n"
    );
    checks::assert_reparses(&offer);

    let mut polycom = sample("polycom_offer.sdp");
    CodecPolicy::default().filter_offer(&mut polycom).unwrap();
    assert_eq!(polycom.media().next().unwrap().formats(), ["9", "8", "0", "127"]);
    assert!(!text(&polycom).contains("G729"));
    assert!(!text(&polycom).contains("annexb"));

    // The policy's own order does not reorder the offer.
    for allowed in [["PCMA", "PCMU"], ["pcmu", "pcma"]] {
        let mut yealink = sample("yealink_offer.sdp");
        CodecPolicy::new(allowed).filter_offer(&mut yealink).unwrap();
        assert_eq!(yealink.media().next().unwrap().formats(), ["8", "0"]);
        assert!(!text(&yealink).contains("telephone-event"));
    }
}

#[test]
fn policy_entries_with_a_clock_rate() {
    let mut offer = sample("linphone_offer.sdp");
    CodecPolicy::new(["OPUS", "telephone-event/8000"])
        .filter_offer(&mut offer)
        .unwrap();
    assert_eq!(offer.media().next().unwrap().formats(), ["96", "100"]);
}

#[test]
fn streams_without_an_allowed_codec_are_rejected() {
    let mut offer = sample("audio_video_offer.sdp");
    CodecPolicy::default().filter_offer(&mut offer).unwrap();
    let streams: Vec<_> = offer.media().map(|m| (m.kind(), m.port(), m.formats().len())).collect();
    assert_eq!(streams, [("audio", 50000, 3), ("video", 0, 2)]);
    assert!(text(&offer).contains("m=video 0 RTP/AVP 96 97\r\n"));

    let mut fax = sample("t38_reinvite.sdp");
    assert!(CodecPolicy::default().filter_offer(&mut fax).is_err());
    let mut fax = sample("t38_reinvite.sdp");
    CodecPolicy::new(["PCMA", "T38"]).filter_offer(&mut fax).unwrap();
    assert_eq!(fax.media().next().unwrap().port(), 6000);
}

#[test]
fn nothing_allowed_is_a_488() {
    let mut offer = with_head("m=audio 4000 RTP/AVP 18 3 101\na=rtpmap:101 telephone-event/8000\n");
    let err = CodecPolicy::default().filter_offer(&mut offer).unwrap_err();
    assert_eq!(err.offered(), ["G729/8000", "GSM/8000", "telephone-event/8000"]);
    assert_eq!(
        err.warning("sb.example.com"),
        "305 sb.example.com \"Incompatible media format\""
    );
    assert_eq!(
        err.to_string(),
        "no acceptable codec among G729/8000, GSM/8000, telephone-event/8000"
    );
    assert!(offer.media().next().unwrap().is_rejected());

    // telephone-event alone is no usable audio codec.
    let mut offer = with_head("m=audio 4000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n");
    let err = CodecPolicy::new(["G729", "telephone-event"])
        .filter_offer(&mut offer)
        .unwrap_err();
    assert_eq!(err.warn_code(), 305);
    assert_eq!(offer.media().next().unwrap().port(), 0);
    assert_eq!(
        offer.media().next().unwrap().formats(),
        ["0", "101"],
        "a rejected m= line is kept whole"
    );

    // A dynamic payload type without a=rtpmap is unknown, so not allowed.
    let mut offer = with_head("m=audio 4000 RTP/AVP 96\n");
    assert!(CodecPolicy::default().filter_offer(&mut offer).is_err());

    // Only rejected streams, or none at all: 304.
    for media in ["m=audio 0 RTP/AVP 0\n", ""] {
        let mut offer = with_head(media);
        let err = CodecPolicy::default().filter_offer(&mut offer).unwrap_err();
        assert_eq!(err.warning("h"), "304 h \"Media type not available\"");
    }
}

#[test]
fn one_usable_stream_is_enough() {
    let mut offer = with_head(
        "m=audio 4000 RTP/AVP 18\nm=audio 4002 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\n\
         m=video 4004 RTP/AVP 31\n",
    );
    CodecPolicy::default().filter_offer(&mut offer).unwrap();
    let ports: Vec<u16> = offer.media().map(|m| m.port()).collect();
    assert_eq!(ports, [0, 4002, 0]);
}

#[test]
fn filter_answer_applies_the_same_policy() {
    let mut answer = with_head("m=audio 5000 RTP/AVP 18 0\n");
    CodecPolicy::default().filter_answer(&mut answer).unwrap();
    assert_eq!(answer.media().next().unwrap().formats(), ["0"]);
}

#[test]
fn hold_detection() {
    let hold = sample("hold_offer.sdp");
    assert!(hold.is_on_hold());
    let audio = hold.media().next().unwrap();
    assert!(audio.has_null_connection());
    assert_eq!(audio.direction(), Direction::SendOnly);

    let cases = [
        ("a=sendonly\n", "m=audio 4000 RTP/AVP 0\n", true),
        ("", "m=audio 4000 RTP/AVP 0\na=inactive\n", true),
        ("", "m=audio 4000 RTP/AVP 0\na=recvonly\n", false),
        ("", "m=audio 4000 RTP/AVP 0\na=sendrecv\n", false),
        ("a=sendonly\n", "m=audio 4000 RTP/AVP 0\na=sendrecv\n", false),
        ("", "m=audio 4000 RTP/AVP 0\nc=IN IP4 0.0.0.0\n", true),
        ("", "m=audio 4000 RTP/AVP 0\nc=IN IP6 ::\n", true),
        ("", "m=audio 4000 RTP/AVP 0\na=sendonly\nm=video 0 RTP/AVP 31\n", true),
        (
            "",
            "m=audio 4000 RTP/AVP 0\na=sendonly\nm=video 4002 RTP/AVP 31\n",
            false,
        ),
        ("", "m=audio 0 RTP/AVP 0\na=sendonly\n", false),
    ];
    for (session, media, held) in cases {
        let sdp = sdp(&format!("{HEAD}{session}{media}"));
        assert_eq!(sdp.is_on_hold(), held, "{session}{media}");
    }
    let sdp = sdp(&format!(
        "{HEAD}a=sendonly\nm=audio 4000 RTP/AVP 0\nm=audio 4002 RTP/AVP 0\na=recvonly\n"
    ));
    let dirs: Vec<_> = sdp.media().map(|m| m.direction()).collect();
    assert_eq!(dirs, [Direction::SendOnly, Direction::RecvOnly]);
    assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
}

#[test]
fn good_answers() {
    let offer = sample("linphone_offer.sdp");
    let answers = [
        "m=audio 20000 RTP/AVP 96 101\na=rtpmap:96 opus/48000/2\na=rtpmap:101 telephone-event/48000\n",
        // Dynamic payload types renumbered by the answerer, matched by name and clock rate.
        "m=audio 20000 RTP/AVP 111 100\na=rtpmap:111 OPUS/48000/2\na=rtpmap:100 telephone-event/8000\n",
        // Static payload types, with or without a=rtpmap.
        "m=audio 20000 RTP/AVP 0\n",
        "m=audio 20000 RTP/AVP 8\na=rtpmap:8 PCMA/8000\na=sendonly\n",
        // Rejecting is always allowed.
        "m=audio 0 RTP/AVP 0\n",
    ];
    for media in answers {
        let answer = with_head(media);
        assert_eq!(check_answer(&offer, &answer), Ok(()), "{media}");
    }

    let offer = sample("audio_video_offer.sdp");
    let answer = with_head("m=audio 3000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\nm=video 0 RTP/AVP 96\n");
    assert_eq!(check_answer(&offer, &answer), Ok(()));

    let offer = sample("t38_reinvite.sdp");
    assert_eq!(check_answer(&offer, &with_head("m=image 7000 udptl t38\n")), Ok(()));
}

#[test]
fn bad_answers() {
    let mut offer = sample("linphone_offer.sdp");
    CodecPolicy::default().filter_offer(&mut offer).unwrap();
    let cases: [(&str, AnswerError); 6] = [
        (
            "m=audio 20000 RTP/AVP 18\n",
            AnswerError::FormatNotOffered {
                index: 0,
                format: "18".into(),
            },
        ),
        (
            "m=audio 20000 RTP/AVP 0 97\na=rtpmap:97 iLBC/8000\n",
            AnswerError::FormatNotOffered {
                index: 0,
                format: "97".into(),
            },
        ),
        (
            "m=audio 20000 RTP/AVP 96\na=rtpmap:96 opus/16000\n",
            AnswerError::FormatNotOffered {
                index: 0,
                format: "96".into(),
            },
        ),
        (
            "m=audio 20000 RTP/AVP 97\n",
            AnswerError::FormatNotOffered {
                index: 0,
                format: "97".into(),
            },
        ),
        ("m=audio 20000 RTP/AVP\n", AnswerError::NoFormat { index: 0 }),
        (
            "m=video 20000 RTP/AVP 31\n",
            AnswerError::KindMismatch {
                index: 0,
                offered: "audio".into(),
                answered: "video".into(),
            },
        ),
    ];
    for (media, want) in cases {
        assert_eq!(check_answer(&offer, &with_head(media)), Err(want), "{media}");
    }
    assert_eq!(
        check_answer(&offer, &with_head("m=audio 1 RTP/AVP 0\nm=audio 2 RTP/AVP 0\n")),
        Err(AnswerError::MediaCount {
            offered: 1,
            answered: 2
        })
    );

    let offer = with_head("m=audio 4000 RTP/AVP 0\nm=video 0 RTP/AVP 31\n");
    let answer = with_head("m=audio 5000 RTP/AVP 0\nm=video 5002 RTP/AVP 31\n");
    let err = check_answer(&offer, &answer).unwrap_err();
    assert_eq!(err, AnswerError::RejectedStreamAccepted { index: 1 });
    assert_eq!(err.to_string(), "answer accepts stream 1, which the offer rejected");
}
