//! Interop with SIPp (Debian package `sip-tester`) for the registrar: digest registration, refresh,
//! removal with `Expires: 0` and `Contact: *`, wrong passwords, 423, nonce-count replay (SIPp's
//! own answer sent again) and someone else's address-of-record. Each scenario in `tests/scenarios/reg_*.xml` asserts the
//! responses it expects (an unexpected response, or a failed regexp check, fails SIPp's call and
//! its exit status); the test also reads SIPp's message log to check the sequence of responses.
//! Every run gets a fresh server. Without SIPp the tests print SKIP, except in CI (`CI=true`) where
//! they fail.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::{Server, TempDir, require_tool};

const DOMAIN: &str = "test.invalid";
const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");

/// A fresh server that knows alice and bob.
fn server() -> Server {
    let dir = TempDir::new("sippreg");
    support::add_user(dir.path(), ALICE.0, ALICE.1);
    support::add_user(dir.path(), BOB.0, BOB.1);
    Server::start_in(dir, &[])
}

/// The server's listener for a SIPp transport (`u1` or `t1`).
fn target(server: &Server, transport: &str) -> SocketAddr {
    if transport.starts_with('t') {
        server.tcp
    } else {
        server.udp
    }
}

/// A loopback port that was free a moment ago, for SIPp's `-p`. Left to itself SIPp tries 5060,
/// 5061, ... in turn, and two SIPps starting at once over TCP can both bind the same port (it sets
/// SO_REUSEADDR) and then one fails to listen.
fn free_port(transport: &str) -> u16 {
    if transport.starts_with('t') {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr())
    } else {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    }
    .expect("a free port")
    .port()
}

/// Runs one call of `scenario` with To/From user `aor`, answering challenges as `user`/`password`,
/// asserts SIPp exited 0, and returns its message log. A SIPp that could not take its local port
/// (someone else took it between [`free_port`] and SIPp's bind) is started again, up to 3 times.
fn sipp(target: SocketAddr, transport: &str, scenario: &str, aor: &str, (user, password): (&str, &str)) -> String {
    let path = format!("{}/tests/scenarios/{scenario}.xml", env!("CARGO_MANIFEST_DIR"));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let work = TempDir::new("sippreg-run");
        let out = Command::new("sipp")
            .current_dir(work.path())
            .arg(target.to_string())
            .args(["-sf", &path, "-t", transport, "-i", "127.0.0.1"])
            .args(["-p", &free_port(transport).to_string()])
            .args(["-key", "domain", DOMAIN, "-key", "aor", aor])
            .args(["-au", user, "-ap", password, "-auth_uri", DOMAIN])
            .args(["-m", "1", "-timeout", "30s", "-recv_timeout", "5000"])
            .args(["-trace_err", "-trace_msg", "-nostdin"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .expect("run sipp");
        let log = |kind: &str| support::sipp_log(work.path(), kind);
        let messages = log("messages");
        if out.status.success() {
            return messages;
        }
        let errors = format!("{}\n{}", log("errors"), String::from_utf8_lossy(&out.stderr));
        if attempt < 3 && errors.contains("Address already in use") {
            continue;
        }
        panic!(
            "sipp {scenario} over {transport} failed ({}):\n{errors}\n--- messages ---\n{messages}",
            out.status
        );
    }
}

/// The status codes of the responses SIPp received, in order.
fn statuses(messages: &str) -> Vec<u16> {
    messages
        .lines()
        .filter_map(|l| l.strip_prefix("SIP/2.0 "))
        .map(|rest| rest[..3].parse().expect("status code"))
        .collect()
}

/// A parameter of a header line like `Authorization: Digest a="b",c=d` (no commas in values).
fn param<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let (_, params) = header.split_once("Digest ")?;
    params
        .split(',')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

#[test]
fn register_with_digest_lists_the_contact() {
    if !require_tool("sipp", "-v") {
        return;
    }
    for transport in ["u1", "t1"] {
        let server = server();
        let log = sipp(target(&server, transport), transport, "reg_auth", ALICE.0, ALICE);
        assert_eq!(statuses(&log), [401, 200], "{transport}");
        // SIPp answers only MD5: the challenge it read first must have been MD5.
        let auth = log
            .lines()
            .find(|l| l.starts_with("Authorization:"))
            .expect("an answer");
        assert_eq!(param(auth, "algorithm"), Some("MD5"), "{auth}");
        assert_eq!(param(auth, "username"), Some(ALICE.0), "{auth}");
    }
}

#[test]
fn refresh_with_the_same_call_id_and_higher_cseq() {
    if !require_tool("sipp", "-v") {
        return;
    }
    for transport in ["u1", "t1"] {
        let server = server();
        let log = sipp(target(&server, transport), transport, "reg_refresh", ALICE.0, ALICE);
        assert_eq!(statuses(&log), [401, 200, 200, 200], "{transport}");
    }
}

#[test]
fn unregister_with_expires_zero() {
    if !require_tool("sipp", "-v") {
        return;
    }
    for transport in ["u1", "t1"] {
        let server = server();
        let log = sipp(target(&server, transport), transport, "reg_unregister", ALICE.0, ALICE);
        assert_eq!(statuses(&log), [401, 200, 200, 200, 200], "{transport}");
    }
}

#[test]
fn wildcard_contact_needs_expires_zero() {
    if !require_tool("sipp", "-v") {
        return;
    }
    for transport in ["u1", "t1"] {
        let server = server();
        let log = sipp(target(&server, transport), transport, "reg_wildcard", ALICE.0, ALICE);
        assert_eq!(statuses(&log), [401, 200, 400, 200, 200, 200], "{transport}");
    }
}

#[test]
fn wrong_password_never_registers() {
    if !require_tool("sipp", "-v") {
        return;
    }
    for transport in ["u1", "t1"] {
        let server = server();
        let to = target(&server, transport);
        let log = sipp(
            to,
            transport,
            "reg_wrong_password",
            ALICE.0,
            (ALICE.0, "not-her-password"),
        );
        assert_eq!(statuses(&log), [401, 401, 401], "{transport}");
        // With the right password: nothing was bound by the refused attempts.
        let log = sipp(to, transport, "reg_query_empty", ALICE.0, ALICE);
        assert_eq!(statuses(&log), [401, 200], "{transport}");
    }
}

#[test]
fn interval_below_the_minimum_gets_423_with_min_expires() {
    if !require_tool("sipp", "-v") {
        return;
    }
    for transport in ["u1", "t1"] {
        let server = server();
        let log = sipp(target(&server, transport), transport, "reg_min_expires", ALICE.0, ALICE);
        assert_eq!(statuses(&log), [401, 423, 423, 200], "{transport}");
    }
}

/// The authenticated REGISTER SIPp sent, as it went on the wire, from its message log.
fn sent_register_with_credentials(log: &str) -> String {
    let lines: Vec<&str> = log.lines().map(|l| l.trim_end_matches('\r')).collect();
    let start = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("REGISTER "))
        .map(|(i, _)| i)
        .find(|&i| {
            lines[i..]
                .iter()
                .take_while(|l| !l.is_empty())
                .any(|l| l.starts_with("Authorization:"))
        })
        .expect("SIPp sent an authenticated REGISTER");
    let head: Vec<&str> = lines[start..].iter().take_while(|l| !l.is_empty()).copied().collect();
    format!("{}\r\n\r\n", head.join("\r\n"))
}

#[test]
fn replayed_nonce_count_is_refused() {
    if !require_tool("sipp", "-v") {
        return;
    }
    // SIPp registers (401, then its answer with nonce N and nc=00000001: 200). An eavesdropper
    // then sends SIPp's answer again as a new request (a new branch, so not a retransmission):
    // same nonce, same nc, same cnonce, a digest that was right a moment ago. It must not
    // register: 401 with a fresh challenge, and not stale (the nonce is young; the nc is the
    // fault). Challenges are stateless (RFC 3261 §8.2.7), so a phone cannot be made to replay by
    // getting the same 401 twice; the replay has to be a copy, as an attacker's would be.
    let server = server();
    let log = sipp(server.udp, "u1", "reg_auth", ALICE.0, ALICE);
    assert_eq!(statuses(&log), [401, 200]);
    let answer = sent_register_with_credentials(&log);
    let auth = answer
        .lines()
        .find(|l| l.starts_with("Authorization:"))
        .expect("credentials");
    assert_eq!(param(auth, "nc"), Some("00000001"), "{auth}");
    let branch = answer
        .split("branch=")
        .nth(1)
        .and_then(|b| b.split([';', '\r']).next())
        .expect("a branch")
        .to_owned();
    let replay = answer.replacen(&branch, "z9hG4bKreplayed-nc", 1);
    let socket = support::udp_client();
    let refused = support::udp_transaction(&socket, server.udp, &replay);
    assert_eq!(
        refused.status_code(),
        Some(401),
        "a replayed nc must not register: {refused:?}"
    );
    let challenge = refused.header("WWW-Authenticate").expect("a fresh challenge");
    assert!(!challenge.contains("stale=true"), "{challenge}");
    assert_ne!(
        param(challenge, "nonce"),
        param(auth, "nonce"),
        "a fresh nonce, not the replayed one"
    );
}

#[test]
fn registering_someone_elses_aor_is_forbidden() {
    if !require_tool("sipp", "-v") {
        return;
    }
    for transport in ["u1", "t1"] {
        let server = server();
        let to = target(&server, transport);
        // bob's right credentials, alice's address-of-record.
        let log = sipp(to, transport, "reg_foreign_aor", ALICE.0, BOB);
        assert_eq!(statuses(&log), [401, 403], "{transport}");
        let auth = log
            .lines()
            .find(|l| l.starts_with("Authorization:"))
            .expect("an answer");
        assert_eq!(param(auth, "username"), Some(BOB.0), "{auth}");
        // alice has no binding from it.
        let log = sipp(to, transport, "reg_query_empty", ALICE.0, ALICE);
        assert_eq!(statuses(&log), [401, 200], "{transport}");
    }
}
