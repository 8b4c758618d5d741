#![allow(dead_code)]

//! The invariants the fuzz target checks, shared with the tests that replay the sample
//! descriptions and every input the fuzzer ever found (`tests/data/fuzz/`), so a fixed crash
//! stays fixed.

use std::net::IpAddr;

use sdp::{CodecPolicy, Direction, Sdp, check_answer};

/// Serializing `sdp` gives bytes that parse back to the same description, and serialize to the
/// same bytes.
pub fn assert_reparses(sdp: &Sdp) {
    let bytes = sdp.to_bytes();
    let again = Sdp::parse(&bytes).expect("a serialized description re-parses");
    assert_eq!(&again, sdp);
    assert_eq!(again.to_bytes(), bytes);
}

/// Whether `data` is already in the form `to_bytes` writes: every line ends in CRLF, no empty
/// line at the end.
fn canonical(data: &[u8]) -> bool {
    data.ends_with(b"\r\n")
        && !data.ends_with(b"\r\n\r\n")
        && data
            .iter()
            .enumerate()
            .all(|(i, &b)| b != b'\n' || (i > 0 && data[i - 1] == b'\r'))
}

/// Any input: parsing never panics; a parsed description re-serializes faithfully (byte for byte
/// when the input was canonical), every accessor runs, and the edits a proxy makes (codec
/// filtering, address and port rewriting, direction, RTCP, attributes) leave a description that
/// re-parses to itself. A filtered offer is a valid answer to the original offer.
pub fn check_sdp(data: &[u8]) {
    let Ok(sdp) = Sdp::parse(data) else {
        return;
    };
    assert_reparses(&sdp);
    if canonical(data) {
        assert_eq!(
            sdp.to_bytes(),
            data,
            "an unedited canonical description round-trips byte for byte"
        );
    }
    let _ = (
        sdp.connection_addr(),
        sdp.session_direction(),
        sdp.is_on_hold(),
        sdp.attributes().count(),
    );
    for m in sdp.media() {
        let _ = (
            m.kind(),
            m.port(),
            m.port_count(),
            m.proto(),
            m.formats(),
            m.rtcp(),
            m.ptime(),
        );
        let _ = (
            m.direction(),
            m.connection_addr(),
            m.is_on_hold(),
            m.attributes().count(),
        );
        for c in m.codecs() {
            assert!(m.formats().iter().any(|f| f.parse::<u8>() == Ok(c.pt)));
        }
    }

    let mut filtered = sdp.clone();
    let verdict = CodecPolicy::default().filter_offer(&mut filtered);
    assert_reparses(&filtered);
    assert_eq!(filtered.media().len(), sdp.media().len());
    let active = filtered.media().filter(|m| !m.is_rejected()).count();
    assert_eq!(verdict.is_ok(), active > 0, "{verdict:?}");
    if let Err(e) = &verdict {
        assert!(e.warning("h").starts_with("30"));
    }
    check_answer(&sdp, &filtered).expect("a filtered offer answers the original");

    let mut edited = sdp.clone();
    let addr: IpAddr = if data.len().is_multiple_of(2) {
        IpAddr::from([203, 0, 113, 9])
    } else {
        "2001:db8::9".parse().expect("IPv6 literal")
    };
    edited.set_connection(addr);
    assert!(edited.connection_addr() == Some(addr) || sdp.connection_addr().is_some_and(|a| a.is_unspecified()));
    for m in edited.media() {
        assert!(m.has_null_connection() || m.connection_addr() == Some(addr));
    }
    for (i, mut m) in edited.media_mut().enumerate() {
        m.set_port(40000 + i as u16 * 2);
        m.set_direction(Direction::RecvOnly);
        m.set_rtcp(40001 + i as u16 * 2, Some(addr));
        assert_eq!(m.direction(), Direction::RecvOnly);
        assert_eq!(m.rtcp(), Some((40001 + i as u16 * 2, Some(addr))));
        let _ = m.push_attribute("x-fuzz", Some("1"));
        let _ = m.push_attribute("sendonly", None);
        m.remove_attribute("ice-ufrag");
    }
    let _ = edited.push_attribute("x-session", None);
    assert_reparses(&edited);
    let _ = check_answer(&sdp, &edited);
    let _ = check_answer(&edited, &sdp);
}
