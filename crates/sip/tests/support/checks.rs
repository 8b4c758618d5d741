#![allow(dead_code)]

//! The invariants the fuzz targets check, shared with the regression test that replays every
//! input the fuzzer ever found (`tests/data/fuzz/`), so a fixed crash stays fixed.

use sip::{Frame, HeaderName, Limits, Message, Method, StreamFramer, UasPolicy, inspect_request};

const POLICY: UasPolicy<'static> = UasPolicy {
    schemes: &["sip", "sips"],
    methods: &[
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Register,
        Method::Options,
    ],
    extensions: &["path"],
    body_types: &["application/sdp"],
    answer_type: Some("application/sdp"),
};

/// Any datagram: parsing never panics; every typed accessor and the UAS checks run without
/// panicking; a parsed message re-serializes to bytes that parse back to the same message, both
/// unchanged and after an edit.
pub fn check_datagram(data: &[u8]) {
    let m = match Message::parse(bytes::Bytes::copy_from_slice(data)) {
        Ok(m) => m,
        Err(e) => {
            // What cannot be parsed is answered from the raw bytes; that answer must parse.
            if let Some(resp) = sip::reject_unparsed(data, &e) {
                let r = Message::parse(resp).expect("our 400 for unparseable input parses");
                assert_eq!(r.status_code(), Some(e.status_code()));
            }
            return;
        }
    };
    let _ = m.check_essentials();
    if m.is_request() {
        let v = inspect_request(&m, &POLICY);
        if let Some(resp) = v.response(&m, "fuzz") {
            assert!(Message::parse(resp.to_bytes()).is_ok(), "our own rejection must parse");
        }
        if let Some(uri) = m.request_uri() {
            let _ = uri.user_str();
            assert!(uri.equivalent(&uri), "URI comparison is reflexive");
        }
    }
    for v in m.vias().flatten() {
        let _ = (v.branch(), v.rport(), v.received(), v.has_rfc3261_branch());
    }
    for c in m.contacts().flatten() {
        let _ = (c.expires(), c.q_millis());
        if let Some(a) = c.addr() {
            let _ = (a.display_name(), a.uri.user_str(), a.uri.host_ip());
            assert!(a.uri.equivalent(&a.uri), "URI comparison is reflexive");
        }
    }
    for r in m.routes().chain(m.record_routes()).flatten() {
        let _ = r.uri.is_loose_route();
    }
    for c in m.credentials(HeaderName::Authorization).flatten() {
        let _ = (c.params.get("username"), c.params.get("response"));
    }
    let _ = (
        m.from_header().map(|f| f.tag()),
        m.to_header(),
        m.cseq(),
        m.call_id(),
        m.max_forwards(),
        m.expires(),
    );

    let again = Message::parse(m.to_bytes()).expect("a parsed message re-parses");
    assert_eq!(again, m);
    let mut edited = m.clone();
    edited.push_other("X-Fuzz", "1");
    edited.remove_first_value(HeaderName::Via);
    let reparsed = Message::parse(edited.to_bytes()).expect("an edited message re-parses");
    assert_eq!(reparsed, edited);
}

fn frames(chunks: &[&[u8]]) -> (Vec<String>, bool) {
    let mut framer = StreamFramer::new(Limits {
        max_message_size: 4096,
        ..Limits::default()
    });
    let mut out = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => out.push(format!("M{}", m.to_bytes().len())),
                Ok(Some(Frame::Invalid { error, .. })) => out.push(format!("E{error}")),
                Ok(Some(Frame::KeepAlive)) => out.push("K".into()),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

/// A byte stream cut in two at a point the first byte chooses: the framer never panics or loops,
/// and yields the same messages whatever the cut point.
pub fn check_stream(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let cut = (first as usize).min(body.len());
    let whole = frames(&[body]);
    let split = frames(&[&body[..cut], &body[cut..]]);
    if !whole.1 && !split.1 {
        let strip = |v: &Vec<String>| v.iter().filter(|f| *f != "K").cloned().collect::<Vec<_>>();
        assert_eq!(strip(&whole.0), strip(&split.0));
    }
}
