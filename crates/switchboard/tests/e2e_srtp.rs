//! SRTP through the relay (#10 acceptance: "two baresip phones with SRTP (mandatory) call through
//! the relay; audio arrives").
//!
//! Two baresip phones (Debian's `baresip-core` with its `srtp` module, SDES keys, RFC 4568)
//! register over TLS with `mediaenc=srtp-mand`, so neither accepts or sends plain RTP. alice
//! calls bob through switchboard, which anchors the media in its relay and terminates SRTP on
//! each leg: it decrypts what a phone sends with the phone's key and encrypts toward the other
//! phone with a key of its own. What the test checks:
//!
//! - the keys: the `a=crypto` keys alice's SIP trace shows (hers, and the relay's in the answer)
//!   and those bob's shows (the relay's in the offer, and his) have nothing in common: neither
//!   phone learns the other's key, so the relay must decrypt and re-encrypt;
//! - the audio: the call record counts, per phone, the RTP packets that passed SRTP
//!   authentication with that phone's key (a packet that fails is dropped, not counted): at least
//!   50 each way (a second of 20 ms G.711);
//! - the other end decrypts the relay's packets: baresip's `rtcpsummary` module logs at least 50
//!   packets received on each phone (with a wrong relay key it has no statistics at all), and each
//!   phone's RTCP (SRTCP, decrypted by the relay) carries a report block on the relay's stream
//!   with little loss.
//!
//! Without baresip (or its `srtp` module) the test prints SKIP, except in CI (`CI=true`) where it
//! fails.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use store::{CallRecord, Disposition, RecordStore};
use support::baresip::{MODULE_PATH, Phone, json_str};
use support::{Server, TempDir, require_tool};

const DOMAIN: &str = "test.invalid";
const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");

fn account(user: (&str, &str), proxy: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "<sip:{name}@{DOMAIN};transport=tls>;auth_pass={pw};outbound=\"sip:{proxy};transport=tls\";regint=600;mediaenc=srtp-mand{extra}",
        name = user.0,
        pw = user.1,
    )
}

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

/// The `inline:` keys of every `a=crypto` line in a phone's SIP trace.
fn crypto_keys(phone: &Phone) -> BTreeSet<String> {
    let log = std::fs::read_to_string(phone.dir.path().join("baresip.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("a=crypto:"))
        .filter_map(|v| v.split("inline:").nth(1))
        .map(|k| k.split(['|', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// `PR=` (packets received) of the `rtcpsummary` line baresip logs at the end of a call.
fn rtcp_summary_received(phone: &Phone) -> Option<u64> {
    let log = std::fs::read_to_string(phone.dir.path().join("baresip.log")).unwrap_or_default();
    let line = log.lines().find(|l| l.contains("EX=BareSip;"))?;
    line.split(';')
        .find_map(|f| f.strip_prefix("PR="))
        .and_then(|n| n.parse().ok())
}

#[test]
fn two_baresip_phones_with_mandatory_srtp_call_through_the_relay() {
    if !require_tool("baresip", "-h") {
        return;
    }
    if !std::path::Path::new(MODULE_PATH).join("srtp.so").exists() {
        // Same rule as require_tool: a skip outside CI, a failure in it.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "baresip's srtp module is missing ({MODULE_PATH}/srtp.so)"
        );
        eprintln!("SKIP: baresip's srtp module is missing");
        return;
    }
    let started = Instant::now();
    let dir = TempDir::new("srtp-srv");
    let (cert, key, _) = support::cert_self_signed(&dir.path().join("tls"), &[]);
    support::add_user(dir.path(), ALICE.0, ALICE.1);
    support::add_user(dir.path(), BOB.0, BOB.1);
    let (cert, key) = (
        cert.to_str().expect("utf8").to_owned(),
        key.to_str().expect("utf8").to_owned(),
    );
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
            "7800-7899",
            "--digest-algorithms",
            "MD5",
        ],
    );
    let tls = server.tls.expect("a TLS listener");
    let extra = format!("sip_cafile\t\t{cert}\nmodule\t\t\tsrtp.so\nmodule\t\t\trtcpsummary.so\n");

    let mut bob = Phone::start("bob", 440, &extra);
    if let Err(why) = bob.register(&account(BOB, tls, ";answermode=auto")) {
        bob.fail(&format!("bob's REGISTER failed: {why}"), &[]);
    }
    let mut alice = Phone::start("alice", 1_000, &extra);
    if let Err(why) = alice.register(&account(ALICE, tls, "")) {
        alice.fail(&format!("alice's REGISTER failed: {why}"), &[]);
    }

    if let Err(e) = alice.ctrl.command("dial", &format!("sip:{}@{DOMAIN}", BOB.0)) {
        alice.fail(&format!("dial failed: {e}"), &[&bob]);
    }
    let (event, msg) = alice.call_event(&["CALL_ESTABLISHED", "CALL_CLOSED"], Duration::from_secs(10), &bob);
    if event != "CALL_ESTABLISHED" {
        let why = json_str(&msg, "param").unwrap_or_default();
        alice.fail(&format!("the SRTP call was not answered: {why}"), &[&bob]);
    }
    let (event, _) = bob.call_event(&["CALL_ESTABLISHED", "CALL_CLOSED"], Duration::from_secs(5), &alice);
    assert_eq!(event, "CALL_ESTABLISHED", "{}", bob.diagnostics());
    // Long enough for an RTCP report or two (libre sends one every few seconds).
    std::thread::sleep(Duration::from_secs(7));
    if let Some((_, msg)) = alice.ctrl.event(&["CALL_CLOSED"], Duration::ZERO) {
        let why = json_str(&msg, "param").unwrap_or_default();
        alice.fail(&format!("the call ended before alice hung up: {why}"), &[&bob]);
    }
    if let Err(e) = alice.ctrl.command("hangup", "") {
        alice.fail(&format!("hangup failed: {e}"), &[&bob]);
    }
    alice.call_event(&["CALL_CLOSED"], Duration::from_secs(5), &bob);
    bob.call_event(&["CALL_CLOSED"], Duration::from_secs(5), &alice);

    // Each phone saw two keys (its own, the relay's for it), none of the other phone's.
    let (keys_a, keys_b) = (crypto_keys(&alice), crypto_keys(&bob));
    if keys_a.len() != 2 || keys_b.len() != 2 || !keys_a.is_disjoint(&keys_b) {
        alice.fail(
            &format!("expected two keys per phone, none shared: alice {keys_a:?}, bob {keys_b:?}"),
            &[&bob],
        );
    }
    alice.stop();
    bob.stop();
    // baresip's own view (rtcpsummary, logged when the call closes): RTP packets received, i.e.
    // that passed its SRTP check with the relay's key. A wrong relay key leaves it with no
    // statistics at all ("ERROR=No RTCP stats collected").
    let mut received = Vec::new();
    for phone in [&alice, &bob] {
        match rtcp_summary_received(phone) {
            Some(n) if n >= 50 => received.push(n),
            other => phone.fail(
                &format!("{}: packets received per rtcpsummary: {other:?}", phone.name),
                &[],
            ),
        }
    }

    let record = the_record(&server);
    assert_eq!(record.disposition, Disposition::Answered, "{record:#?}");
    assert_eq!(record.hangup.as_deref(), Some("caller"), "{record:#?}");
    for (leg, media) in [("caller", &record.caller_media), ("callee", &record.callee_media)] {
        assert!(
            media.packets >= 50,
            "{leg}: {} SRTP packets authenticated at the relay: {record:#?}",
            media.packets
        );
        // Its RTCP reached the relay as SRTCP, was decrypted and read: it reports on what the
        // relay sent it.
        let loss = media
            .loss_permille
            .unwrap_or_else(|| panic!("{leg}: no RTCP report read from its SRTCP: {record:#?}"));
        assert!(
            loss < 200,
            "{leg} reports {loss}‰ lost of what the relay sent it: {record:#?}"
        );
    }
    eprintln!(
        "SRTP call through the relay: relay authenticated {} packets from alice, {} from bob; \
         baresip decrypted {} at alice, {} at bob; RTCP loss {:?}‰ / {:?}‰; took {:?}",
        record.caller_media.packets,
        record.callee_media.packets,
        received[0],
        received[1],
        record.caller_media.loss_permille,
        record.callee_media.loss_permille,
        started.elapsed()
    );
}
