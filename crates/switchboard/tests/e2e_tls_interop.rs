//! TLS with real clients (#10 acceptance: "a SIPp or baresip TLS client registers and calls; a
//! TLS 1.0 client is refused").
//!
//! - baresip (Debian's `baresip-core`; Debian's SIPp is built without TLS) is given a certificate
//!   made by `switchboard cert self-signed` as its CA (`sip_cafile`). Debian 12's baresip 1.0
//!   (libre 1.1.0) does not verify the server's certificate at all, so the verification is shown
//!   by `openssl s_client` below and by rustls in `e2e_tls.rs`. bob is a `tls_only` user: his
//!   REGISTER over UDP gets 403, over TLS 200; alice registers over TLS too and calls bob, who
//!   answers; RTP flows both ways through the relay (the call record counts the packets), and
//!   the registrations list shows both phones on TLS.
//! - `openssl s_client -tls1` (and `-tls1_1`) gets a fatal alert and no cipher, while `-tls1_2`
//!   completes a handshake with the same server and verifies its certificate (the `cert
//!   self-signed` output as CA file, the IP address checked). The hand-made TLS 1.0 ClientHello in
//!   `e2e_tls.rs` is the check that runs everywhere; this one shows a real TLS stack's view.
//!
//! Without baresip or openssl the test prints SKIP, except in CI (`CI=true`) where it fails.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use store::{CallRecord, Disposition, RecordStore};
use support::baresip::{Phone, json_str};
use support::{Server, TempDir, require_tool};

const DOMAIN: &str = "test.invalid";
const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");

/// A baresip account for `user` through the server at `proxy` over `transport`.
fn account(user: (&str, &str), proxy: std::net::SocketAddr, transport: &str, extra: &str) -> String {
    format!(
        "<sip:{name}@{DOMAIN};transport={transport}>;auth_pass={pw};outbound=\"sip:{proxy};transport={transport}\";regint=600{extra}",
        name = user.0,
        pw = user.1,
    )
}

/// The one call record the server wrote (waiting up to 3 s for the writer).
fn the_record(server: &Server) -> CallRecord {
    let store = store::SqliteStore::open_in(server.dir.path()).expect("open the store");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut records = RecordStore::list_records(&store, 0, u64::MAX, 100).expect("list records");
        if !records.is_empty() || Instant::now() > deadline {
            assert_eq!(records.len(), 1, "{records:#?}");
            return records.remove(0);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn baresip_registers_and_calls_over_tls_with_a_self_signed_certificate() {
    if !require_tool("baresip", "-h") {
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new("tls-baresip-srv");
    let (cert, key, _) = support::cert_self_signed(&dir.path().join("tls"), &[]);
    support::add_user(dir.path(), ALICE.0, ALICE.1);
    let out = Command::new(support::bin())
        .args([
            "user",
            "add",
            BOB.0,
            "--password",
            BOB.1,
            "--tls-only",
            "--domain",
            DOMAIN,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("user add");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (cert, key) = (
        cert.to_str().expect("utf8").to_owned(),
        key.to_str().expect("utf8").to_owned(),
    );
    // Debian 12's baresip (libre 1.1.0) abandons a 401 that also offers SHA-256.
    let server = Server::start_in(
        dir,
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--rtp-ports",
            "7700-7799",
            "--digest-algorithms",
            "MD5",
        ],
    );
    let tls = server.tls.expect("a TLS listener");
    let trust = format!("sip_cafile\t\t{cert}\n");

    // bob over UDP: authenticated, then refused.
    let mut bob_udp = Phone::start("bob-udp", 440, "");
    match bob_udp.register(&account(BOB, server.udp, "udp", "")) {
        Err(why) if why.starts_with("403") && why.contains("TLS required") => {}
        other => bob_udp.fail(&format!("bob over UDP: expected 403 TLS required, got {other:?}"), &[]),
    }
    bob_udp.stop();

    let mut bob = Phone::start("bob", 440, &trust);
    if let Err(why) = bob.register(&account(BOB, tls, "tls", ";answermode=auto")) {
        bob.fail(&format!("bob's REGISTER over TLS failed: {why}"), &[]);
    }
    let mut alice = Phone::start("alice", 1_000, &trust);
    if let Err(why) = alice.register(&account(ALICE, tls, "tls", "")) {
        alice.fail(&format!("alice's REGISTER over TLS failed: {why}"), &[]);
    }

    // The server holds both registrations on TLS.
    let http = server.http.expect("the admin API");
    let (status, body) = support::http_get(http, "/api/registrations");
    assert_eq!(status, 200, "{body}");
    let regs: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let regs = regs["registrations"].as_array().expect("a list").clone();
    assert_eq!(regs.len(), 2, "{regs:#?}");
    assert!(regs.iter().all(|r| r["transport"] == "TLS"), "{regs:#?}");

    if let Err(e) = alice.ctrl.command("dial", &format!("sip:{}@{DOMAIN}", BOB.0)) {
        alice.fail(&format!("dial failed: {e}"), &[&bob]);
    }
    let (event, msg) = alice.call_event(&["CALL_ESTABLISHED", "CALL_CLOSED"], Duration::from_secs(10), &bob);
    if event != "CALL_ESTABLISHED" {
        let why = json_str(&msg, "param").unwrap_or_default();
        alice.fail(&format!("the call over TLS was not answered: {why}"), &[&bob]);
    }
    let (event, _) = bob.call_event(&["CALL_ESTABLISHED", "CALL_CLOSED"], Duration::from_secs(5), &alice);
    assert_eq!(event, "CALL_ESTABLISHED", "{}", bob.diagnostics());
    std::thread::sleep(Duration::from_secs(2));
    if let Some((_, msg)) = alice.ctrl.event(&["CALL_CLOSED"], Duration::ZERO) {
        let why = json_str(&msg, "param").unwrap_or_default();
        alice.fail(&format!("the call ended before alice hung up: {why}"), &[&bob]);
    }
    if let Err(e) = alice.ctrl.command("hangup", "") {
        alice.fail(&format!("hangup failed: {e}"), &[&bob]);
    }
    alice.call_event(&["CALL_CLOSED"], Duration::from_secs(5), &bob);
    bob.call_event(&["CALL_CLOSED"], Duration::from_secs(5), &alice);
    // Every SIP message of the call went over TLS: the phones' traces say so.
    for phone in [&alice, &bob] {
        let log = std::fs::read_to_string(phone.dir.path().join("baresip.log")).unwrap_or_default();
        assert!(
            log.contains("INVITE sip:") && !log.contains("UDP 127.0.0.1"),
            "{} saw SIP outside TLS:\n{}",
            phone.name,
            phone.diagnostics()
        );
    }
    alice.stop();
    bob.stop();

    let record = the_record(&server);
    assert_eq!(
        (record.caller.as_str(), record.callee.as_str()),
        (ALICE.0, BOB.0),
        "{record:#?}"
    );
    assert_eq!(record.disposition, Disposition::Answered, "{record:#?}");
    assert_eq!(record.hangup.as_deref(), Some("caller"), "{record:#?}");
    for (leg, media) in [("caller", &record.caller_media), ("callee", &record.callee_media)] {
        // 50 packets a second (20 ms PCMU); at least a second's worth each way.
        assert!(media.packets >= 50, "{leg} sent {} packets: {record:#?}", media.packets);
    }
    eprintln!("baresip TLS interop took {:?}", started.elapsed());
}

/// `openssl s_client` against the TLS port with one protocol flag, verifying the server against
/// `ca`: (succeeded, all it printed).
fn s_client(addr: std::net::SocketAddr, flag: &str, ca: &str) -> (bool, String) {
    // SECLEVEL=0: the local OpenSSL would otherwise refuse to offer TLS 1.0/1.1 itself.
    let out = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect", &addr.to_string(), flag])
        .args(["-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", ca, "-verify_return_error"])
        .args(["-verify_ip", &addr.ip().to_string()])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn openssl_s_client_gets_tls_1_2_and_is_refused_tls_1_0_and_1_1() {
    if !require_tool("openssl", "version") {
        return;
    }
    let dir = TempDir::new("tls-openssl-srv");
    let (cert, key, _) = support::cert_self_signed(&dir.path().join("tls"), &[]);
    let (cert, key) = (
        cert.to_str().expect("utf8").to_owned(),
        key.to_str().expect("utf8").to_owned(),
    );
    let server = Server::start_in(
        dir,
        &["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key],
    );
    let tls = server.tls.expect("a TLS listener");

    let (ok, text) = s_client(tls, "-tls1_2", &cert);
    assert!(ok && text.contains("TLSv1.2"), "TLS 1.2 must work:\n{text}");
    assert!(!text.contains("Cipher is (NONE)"), "{text}");
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "the certificate verifies against itself as CA, for the IP address:\n{text}"
    );

    for flag in ["-tls1", "-tls1_1"] {
        let (ok, text) = s_client(tls, flag, &cert);
        if text.contains("no protocols available") {
            eprintln!("SKIP: this OpenSSL will not offer {flag} at all; the raw ClientHello test covers it");
            continue;
        }
        assert!(!ok, "{flag} must fail:\n{text}");
        assert!(
            text.contains("Cipher is (NONE)") || text.contains("no peer certificate available"),
            "{flag}: no cipher may be agreed:\n{text}"
        );
        assert!(
            text.contains("alert number 40")
                || text.contains("alert number 70")
                || text.contains("alert handshake failure")
                || text.contains("alert protocol version"),
            "{flag}: the server answers with a handshake_failure or protocol_version alert:\n{text}"
        );
        eprintln!("openssl s_client {flag}: refused with an alert, as it should be");
    }
}
