//! The Authorization / Proxy-Authorization / WWW-Authenticate / Proxy-Authenticate parsers
//! (`sip::headers::{Credentials, Challenge}`), on a bare header value and inside a whole message,
//! and the server's Digest check (`server::auth::DigestAuth::verify`) on what they read.
//!
//! Input: one byte of flags, then the header value (lossy UTF-8 for the bare parsers, raw bytes
//! in the message). In the value, a nonce `@N@` is replaced by a nonce the server issued and a
//! response `@R@` by the right response for user `1001` (password `secret`), so the fuzzer gets
//! past the HMAC and the hash to the qop, nc, replay and staleness rules.
//!
//! Properties: nothing panics; `digest()` succeeding implies `validate()` does, and the five
//! required fields agree with `AuthParams::get`; every name `iter()` yields is found by `get`;
//! Digest fields written back as quoted strings parse to the same values; a value that parses
//! bare reads the same from the message; a verified credential replayed with the same nc is
//! refused.
#![no_main]

use std::borrow::Cow;

use server::auth::{AuthOutcome, DigestAuth};
use sip::digest::{self, Algorithm};
use sip::headers::{Challenge, Credentials, DigestCredentials};
use sip::{HeaderName, Message};

const REALM: &str = "example.com";
const NOW: u64 = 1_700_000_000;

fn check_params(params: &sip::headers::AuthParams<'_>) {
    let _ = params.validate();
    for (name, _) in params.iter() {
        assert!(params.get(name).is_some(), "iter() yields {name:?} but get() misses it");
    }
}

/// Whether `s` can be written as the inside of a quoted string.
fn quotable(s: &str) -> bool {
    !s.chars().any(|c| c.is_control())
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

fn check_roundtrip(d: &DigestCredentials<'_>) {
    let fields = [
        ("username", &d.username),
        ("realm", &d.realm),
        ("nonce", &d.nonce),
        ("uri", &d.uri),
        ("response", &d.response),
    ];
    if !fields.iter().all(|(_, v)| quotable(v)) {
        return;
    }
    let text = format!(
        "Digest {}",
        fields
            .iter()
            .map(|(n, v)| format!("{n}={}", quote(v)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let c = Credentials::parse(&text).expect("written credentials parse");
    let back = c.digest().expect("written credentials are complete");
    assert_eq!(
        (&back.username, &back.realm, &back.nonce, &back.uri, &back.response),
        (&d.username, &d.realm, &d.nonce, &d.uri, &d.response),
        "quoted fields do not read back: {text:?}"
    );
}

fn check_credentials(value: &str) -> Option<DigestCredentials<'_>> {
    let c = Credentials::parse(value).ok()?;
    let _ = c.is_digest();
    check_params(&c.params);
    let d = c.digest().ok()?;
    assert!(c.params.validate().is_ok(), "digest() accepted what validate() refuses");
    for (name, field) in [
        ("username", &d.username),
        ("realm", &d.realm),
        ("nonce", &d.nonce),
        ("uri", &d.uri),
        ("response", &d.response),
    ] {
        assert_eq!(
            c.params.get(name).as_ref(),
            Some(field),
            "digest() and get() disagree on {name}"
        );
    }
    check_roundtrip(&d);
    Some(d)
}

fn check_challenge(value: &str) {
    if let Ok(c) = Challenge::parse(value) {
        check_params(&c.params);
        for name in ["realm", "nonce", "qop", "algorithm", "stale", "opaque", "domain"] {
            let _ = c.params.get(name);
        }
        if let Some(a) = c.params.get("algorithm") {
            if let Some(alg) = Algorithm::parse(&a) {
                let _ = (alg.as_str(), alg.is_session(), alg.base(), alg.hex_len());
            }
        }
    }
}

fn verify(auth: &mut DigestAuth, mut d: DigestCredentials<'_>, method: &str, ruri: &str) {
    if d.nonce == "@N@" {
        d.nonce = Cow::Owned(auth.nonce(REALM, NOW - 10));
    }
    let alg = match d.algorithm.as_deref().map(Algorithm::parse) {
        None => Some(Algorithm::Md5),
        Some(a) => a,
    };
    if d.response == "@R@" {
        if let Some(alg) = alg {
            let ha1 = digest::ha1(alg, &d.username, REALM, "secret");
            let ha1 = if alg.is_session() {
                digest::session_ha1(alg, &ha1, &d.nonce, d.cnonce.as_deref().unwrap_or(""))
            } else {
                ha1
            };
            d.response = Cow::Owned(digest::response(
                alg,
                &ha1,
                &d.nonce,
                d.nc.as_deref().unwrap_or(""),
                d.cnonce.as_deref().unwrap_or(""),
                d.qop.as_deref(),
                &digest::ha2(alg, method, &d.uri),
            ));
        }
    }
    let lookup = |user: &str, alg: Algorithm| (user == "1001").then(|| digest::ha1(alg, user, REALM, "secret"));
    let first = auth.verify(&d, method, ruri, REALM, NOW, lookup);
    let _ = auth.take_guess();
    if let AuthOutcome::Authenticated { username } = &first {
        assert_eq!(username, "1001", "authenticated someone without a password");
        let again = auth.verify(&d, method, ruri, REALM, NOW, lookup);
        assert!(
            !matches!(again, AuthOutcome::Authenticated { .. }),
            "a replayed nc was accepted"
        );
    }
    let _ = auth.tracked_nonces();
}

fn check_message(flags: u8, value: &[u8]) {
    let mut raw: Vec<u8> = Vec::with_capacity(value.len() * 2 + 300);
    let request = flags & 4 == 0;
    let (first, second) = if request {
        raw.extend_from_slice(b"REGISTER sip:example.com SIP/2.0\r\n");
        (HeaderName::Authorization, HeaderName::ProxyAuthorization)
    } else {
        raw.extend_from_slice(b"SIP/2.0 401 Unauthorized\r\n");
        (HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate)
    };
    raw.extend_from_slice(
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\n\
          From: <sip:1001@example.com>;tag=a\r\nTo: <sip:1001@example.com>\r\n\
          Call-ID: c1\r\nCSeq: 1 REGISTER\r\n",
    );
    for name in [first, second] {
        raw.extend_from_slice(name.as_str().as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value);
        raw.extend_from_slice(b"\r\n");
    }
    if flags & 8 != 0 {
        // A second header of the same name: the parsers see two values.
        raw.extend_from_slice(first.as_str().as_bytes());
        raw.extend_from_slice(b": Digest username=\"1001\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", response=\"00\"\r\n");
    }
    raw.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let Ok(m) = Message::parse(raw) else { return };
    let _ = m.check_essentials();
    let bare = std::str::from_utf8(value).ok();
    for name in [first, second] {
        for (i, c) in m.credentials(name).enumerate() {
            if let Ok(c) = c {
                check_params(&c.params);
                let d = c.digest();
                // The first value is ours: if the bare parser reads it as complete Digest
                // credentials, the message reads the same fields.
                if i == 0
                    && let Some(bare) = bare
                    && !bare.bytes().any(|b| b == b'\r' || b == b'\n')
                    && let Ok(bd) = Credentials::parse(bare).and_then(|c| c.digest())
                {
                    assert_eq!(d.as_ref().ok(), Some(&bd), "bare and in-message parses differ");
                }
            }
        }
        for c in m.challenges(name).flatten() {
            check_params(&c.params);
        }
    }
    let _ = m.to_bytes();
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&flags, value)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(value);
    check_challenge(&text);
    if let Some(d) = check_credentials(&text) {
        let mut auth = DigestAuth::new([7; 32], 300).prefer_sha256(flags & 1 != 0);
        let (method, ruri) = if flags & 2 == 0 {
            ("REGISTER", "sip:example.com")
        } else {
            ("INVITE", "sip:1002@example.com")
        };
        verify(&mut auth, d, method, ruri);
    }
    check_message(flags, value);
});
