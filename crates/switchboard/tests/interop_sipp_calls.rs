//! Interop with SIPp for the authenticating stateful proxy: calls between two SIPps through
//! switchboard over UDP on loopback. The caller (`scenarios/call_uac*.xml`) is challenged with
//! 407 and answers with Proxy-Authorization; the callee (`scenarios/call_uas*.xml`) runs in the
//! background on a port registered for bob (`scenarios/call_register.xml`). Each scenario asserts
//! the messages it expects (an unexpected one, or a failed regexp check, fails SIPp's call and
//! its exit status); the tests also read SIPp's message logs and the call record the server
//! wrote. Every test gets a fresh server. Without SIPp the tests print SKIP, except in CI
//! (`CI=true`) where they fail.

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use store::{CallRecord, Disposition, RecordStore};
use support::sipp::Uas;
use support::{Server, TempDir, require_tool};

const DOMAIN: &str = "test.invalid";
const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");

/// A fresh server that knows alice and bob.
fn server(extra: &[&str]) -> Server {
    let dir = TempDir::new("sippcall");
    support::add_user(dir.path(), ALICE.0, ALICE.1);
    support::add_user(dir.path(), BOB.0, BOB.1);
    Server::start_in(dir, extra)
}

/// The bounds every SIPp run gets.
const BOUNDS: [&str; 6] = ["-m", "1", "-timeout", "30s", "-recv_timeout", "5000"];

/// Runs one call of `scenario` against `target` with `args` (keys, credentials), asserts SIPp
/// exited 0, and returns its message log. A SIPp that could not take its local port (someone
/// else took it between [`free_port`] and SIPp's bind) is started again, up to 3 times.
fn sipp(target: SocketAddr, scenario: &str, args: &[&str]) -> String {
    let path = support::scenario_path(scenario);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let work = TempDir::new("sippcall-uac");
        let out = Command::new("sipp")
            .current_dir(work.path())
            .arg(target.to_string())
            .args(["-sf", &path, "-t", "u1", "-i", "127.0.0.1"])
            .args(["-p", &support::free_port().to_string()])
            .args(["-key", "domain", DOMAIN])
            .args(args)
            .args(BOUNDS)
            .args(["-trace_err", "-trace_msg", "-nostdin"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
            .expect("run sipp");
        let messages = support::sipp_log(work.path(), "messages");
        if out.status.success() {
            return messages;
        }
        let errors = format!(
            "{}\n{}",
            support::sipp_log(work.path(), "errors"),
            String::from_utf8_lossy(&out.stderr)
        );
        if attempt < 3 && errors.contains("Address already in use") {
            continue;
        }
        panic!(
            "sipp {scenario} failed ({}):\n{errors}\n--- messages ---\n{messages}",
            out.status
        );
    }
}

/// Registers `127.0.0.1:contact_port` as a contact of bob.
fn register_bob(server: &Server, contact_port: u16) {
    let port = contact_port.to_string();
    let log = sipp(
        server.udp,
        "call_register",
        &[
            "-key",
            "aor",
            BOB.0,
            "-key",
            "contact_port",
            &port,
            "-au",
            BOB.0,
            "-ap",
            BOB.1,
            "-auth_uri",
            DOMAIN,
        ],
    );
    assert_eq!(statuses(&log), [401, 200]);
    let contact = format!("<sip:bob@127.0.0.1:{port}>;expires=600");
    assert!(
        log.lines().any(|l| l.contains(&contact)),
        "{contact} not listed:\n{log}"
    );
}

/// Runs the caller `scenario` as alice, calling `callee`, and returns its message log.
fn call(server: &Server, scenario: &str, callee: &str) -> String {
    // SIPp puts "sip:" + -auth_uri in the digest uri, which must be the Request-URI.
    let request_uri = format!("{callee}@{DOMAIN}");
    sipp(
        server.udp,
        scenario,
        &[
            "-key",
            "caller",
            ALICE.0,
            "-key",
            "callee",
            callee,
            "-au",
            ALICE.0,
            "-ap",
            ALICE.1,
            "-auth_uri",
            &request_uri,
        ],
    )
}

/// One message in a SIPp message log: whether SIPp sent it, and its start line and headers.
struct Logged<'a> {
    sent: bool,
    head: Vec<&'a str>,
}

impl<'a> Logged<'a> {
    fn start_line(&self) -> &'a str {
        self.head.first().copied().unwrap_or_default()
    }

    /// The first value of header `name`.
    fn header(&self, name: &str) -> Option<&'a str> {
        self.head.iter().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    fn status(&self) -> Option<u16> {
        self.start_line().strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    /// The method of a request.
    fn method(&self) -> Option<&'a str> {
        let line = self.start_line();
        line.ends_with(" SIP/2.0").then(|| line.split(' ').next()).flatten()
    }
}

/// The messages of a SIPp message log (`-trace_msg`), in order. Each entry is a line of dashes,
/// `UDP message sent (N bytes):` or `UDP message received [N] bytes :`, a blank line, the message.
fn logged(log: &str) -> Vec<Logged<'_>> {
    let mut out: Vec<Logged<'_>> = Vec::new();
    let mut in_head = false;
    for line in log.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("-----") {
            in_head = false;
        } else if line.contains(" message sent ") || line.contains(" message received ") {
            out.push(Logged {
                sent: line.contains(" message sent "),
                head: Vec::new(),
            });
            in_head = true;
        } else if in_head && let Some(m) = out.last_mut() {
            if line.is_empty() {
                in_head = m.head.is_empty();
            } else {
                m.head.push(line);
            }
        }
    }
    out
}

/// The status codes of the responses SIPp received, in order.
fn statuses(log: &str) -> Vec<u16> {
    logged(log)
        .iter()
        .filter(|m| !m.sent)
        .filter_map(Logged::status)
        .collect()
}

/// The same without 100 Trying (which a proxy may or may not send).
fn statuses_after_trying(log: &str) -> Vec<u16> {
    statuses(log).into_iter().filter(|&c| c != 100).collect()
}

/// The methods of the requests SIPp sent (`sent`) or received, in order.
fn requests(log: &str, sent: bool) -> Vec<&str> {
    logged(log)
        .iter()
        .filter(|m| m.sent == sent)
        .filter_map(Logged::method)
        .collect()
}

/// The messages SIPp received whose start line begins with `start`.
fn received<'a>(log: &'a str, start: &str) -> Vec<Logged<'a>> {
    logged(log)
        .into_iter()
        .filter(|m| !m.sent && m.start_line().starts_with(start))
        .collect()
}

/// The messages SIPp sent whose start line begins with `start`.
fn sent<'a>(log: &'a str, start: &str) -> Vec<Logged<'a>> {
    logged(log)
        .into_iter()
        .filter(|m| m.sent && m.start_line().starts_with(start))
        .collect()
}

/// The call records the server wrote, once there are `n` (waiting up to 2 s for the writer).
fn records(server: &Server, n: usize) -> Vec<CallRecord> {
    let store = store::SqliteStore::open_in(server.dir.path()).expect("open the store");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let records = RecordStore::list_records(&store, 0, u64::MAX, 100).expect("list records");
        if records.len() >= n || Instant::now() > deadline {
            assert_eq!(records.len(), n, "{records:#?}");
            return records;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The one call record, checked against the caller's Call-ID and the parties.
fn the_record(server: &Server, uac_log: &str, callee: &str) -> CallRecord {
    let record = records(server, 1).remove(0);
    let call_id = sent(uac_log, "INVITE ")[0].header("Call-ID").expect("Call-ID");
    assert_eq!(record.call_id, call_id, "{record:#?}");
    assert_eq!(record.caller, ALICE.0, "{record:#?}");
    assert_eq!(record.callee, callee, "{record:#?}");
    assert!(record.started_ms <= record.ended_ms, "{record:#?}");
    record
}

fn assert_answered(record: &CallRecord, hangup: &str, uas_port: u16) {
    assert_eq!(record.disposition, Disposition::Answered, "{record:#?}");
    assert_eq!(record.status, 200, "{record:#?}");
    assert_eq!(record.hangup.as_deref(), Some(hangup), "{record:#?}");
    let answered = record.answered_ms.expect("answered_ms");
    assert!(
        record.started_ms <= answered && answered <= record.ended_ms,
        "{record:#?}"
    );
    // The contact that answered, as registered.
    let contact = format!("sip:bob@127.0.0.1:{uas_port}");
    assert_eq!(record.answered_by.as_deref(), Some(contact.as_str()), "{record:#?}");
}

fn assert_unanswered(record: &CallRecord, disposition: Disposition, status: u16) {
    assert_eq!(record.disposition, disposition, "{record:#?}");
    assert_eq!(record.status, status, "{record:#?}");
    assert_eq!(record.hangup, None, "{record:#?}");
    assert_eq!(record.answered_ms, None, "{record:#?}");
    assert_eq!(record.answered_by, None, "{record:#?}");
}

/// A fresh server (with `extra` arguments) with bob registered at one callee running `uas`.
fn one_callee(extra: &[&str], uas: &str) -> (Server, Uas) {
    let server = server(extra);
    let uas = Uas::start(uas, "30s");
    register_bob(&server, uas.port);
    (server, uas)
}

/// A request as the proxy forwards it: its Via on top, our credentials removed (RFC 3261
/// §22.3), Max-Forwards decremented.
fn assert_forwarded(server: &Server, request: &Logged<'_>) {
    let via = request.header("Via").expect("Via");
    assert!(
        via.starts_with(&format!("SIP/2.0/UDP {}", server.udp)),
        "{:#?}",
        request.head
    );
    assert!(request.header("Proxy-Authorization").is_none(), "{:#?}", request.head);
    assert_eq!(request.header("Max-Forwards"), Some("69"), "{:#?}", request.head);
}

#[test]
fn basic_call_caller_hangs_up() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let (server, mut uas) = one_callee(&[], "call_uas");
    let log = call(&server, "call_uac", BOB.0);
    assert_eq!(requests(&log, true), ["INVITE", "ACK", "INVITE", "ACK", "BYE"]);
    // 100 Trying at once, then the callee's 180 and 200; the last 200 is for the BYE.
    assert_eq!(statuses(&log), [407, 100, 180, 200, 200], "{log}");
    let uas_log = uas.finish();
    assert_eq!(requests(&uas_log, false), ["INVITE", "ACK", "BYE"]);
    let invite = &received(&uas_log, "INVITE ")[0];
    assert_forwarded(&server, invite);
    let rr = format!("<sip:{};transport=udp;lr>", server.udp);
    assert_eq!(invite.header("Record-Route"), Some(rr.as_str()), "{:#?}", invite.head);
    // ACK and BYE were loose-routed: sent to the proxy, Route removed on the way.
    for method in ["ACK ", "BYE "] {
        let out = sent(&log, method).pop().expect("sent");
        assert_eq!(out.header("Route"), Some(rr.as_str()), "{:#?}", out.head);
        let got = &received(&uas_log, method)[0];
        assert!(got.header("Route").is_none(), "{:#?}", got.head);
    }
    assert_forwarded(&server, &received(&uas_log, "BYE ")[0]);
    let record = the_record(&server, &log, BOB.0);
    assert_answered(&record, "caller", uas.port);
}

#[test]
fn callee_hangs_up() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let (server, mut uas) = one_callee(&[], "call_uas_bye");
    let log = call(&server, "call_uac_callee_bye", BOB.0);
    assert_eq!(requests(&log, true), ["INVITE", "ACK", "INVITE", "ACK"]);
    assert_eq!(requests(&log, false), ["BYE"]);
    let uas_log = uas.finish();
    assert_eq!(statuses(&uas_log), [200], "{uas_log}");
    assert_forwarded(&server, &received(&log, "BYE ")[0]);
    let record = the_record(&server, &log, BOB.0);
    assert_answered(&record, "callee", uas.port);
}

#[test]
fn cancel_while_ringing() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let (server, mut uas) = one_callee(&[], "call_uas_ring_cancel");
    let log = call(&server, "call_uac_cancel", BOB.0);
    assert_eq!(statuses_after_trying(&log), [407, 180, 200, 487], "{log}");
    assert_eq!(requests(&log, true), ["INVITE", "ACK", "INVITE", "CANCEL", "ACK"]);
    let uas_log = uas.finish();
    assert_eq!(requests(&uas_log, false), ["INVITE", "CANCEL", "ACK"]);
    // The CANCEL matches the INVITE the callee got (RFC 3261 §9.1).
    let (invite, cancel) = (&received(&uas_log, "INVITE ")[0], &received(&uas_log, "CANCEL ")[0]);
    assert_eq!(invite.header("Via"), cancel.header("Via"));
    let invite_uri = invite.start_line().split(' ').nth(1);
    assert_eq!(invite_uri, cancel.start_line().split(' ').nth(1));
    let record = the_record(&server, &log, BOB.0);
    assert_unanswered(&record, Disposition::Cancelled, 487);
}

#[test]
fn busy_callee() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let (server, mut uas) = one_callee(&[], "call_uas_busy");
    let log = call(&server, "call_uac_refused", BOB.0);
    assert_eq!(statuses_after_trying(&log), [407, 486], "{log}");
    let uas_log = uas.finish();
    assert_eq!(requests(&uas_log, false), ["INVITE", "ACK"]);
    let record = the_record(&server, &log, BOB.0);
    assert_unanswered(&record, Disposition::Busy, 486);
}

#[test]
fn no_answer_ends_with_480_at_the_ring_timeout() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let (server, mut uas) = one_callee(&["--ring-timeout", "2"], "call_uas_ring_cancel");
    let started = Instant::now();
    let log = call(&server, "call_uac_refused", BOB.0);
    let rang = started.elapsed();
    assert_eq!(statuses_after_trying(&log), [407, 180, 480], "{log}");
    assert!(rang >= Duration::from_millis(1900), "480 after {rang:?}");
    // The proxy CANCELled the ringing branch.
    let uas_log = uas.finish();
    assert_eq!(requests(&uas_log, false), ["INVITE", "CANCEL", "ACK"]);
    let record = the_record(&server, &log, BOB.0);
    assert_unanswered(&record, Disposition::NoAnswer, 480);
}

#[test]
fn unknown_user_gets_404() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let server = server(&[]);
    let log = call(&server, "call_uac_refused", "carol");
    assert_eq!(statuses_after_trying(&log), [407, 404], "{log}");
    let record = the_record(&server, &log, "carol");
    assert_unanswered(&record, Disposition::Failed, 404);
}

#[test]
fn unregistered_user_gets_480() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let server = server(&[]);
    let log = call(&server, "call_uac_refused", BOB.0);
    assert_eq!(statuses_after_trying(&log), [407, 480], "{log}");
    let record = the_record(&server, &log, BOB.0);
    assert_unanswered(&record, Disposition::Failed, 480);
}

#[test]
fn forked_call_answered_by_one_contact_cancels_the_other() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let server = server(&[]);
    let mut winner = Uas::start("call_uas", "30s");
    let mut loser = Uas::start("call_uas_ring_cancel", "30s");
    register_bob(&server, winner.port);
    register_bob(&server, loser.port);
    let log = call(&server, "call_uac", BOB.0);
    let finals: Vec<u16> = statuses(&log).into_iter().filter(|&c| c >= 200).collect();
    assert_eq!(
        finals,
        [407, 200, 200],
        "one 200 for the INVITE, one for the BYE:\n{log}"
    );
    let answer = &received(&log, "SIP/2.0 200")[0];
    assert_eq!(answer.header("CSeq"), Some("2 INVITE"), "{:#?}", answer.head);
    let winner_log = winner.finish();
    assert_eq!(requests(&winner_log, false), ["INVITE", "ACK", "BYE"]);
    let loser_log = loser.finish();
    assert_eq!(requests(&loser_log, false), ["INVITE", "CANCEL", "ACK"]);
    // The answer came from the winner (its To tag and Contact).
    let winner_200 = &sent(&winner_log, "SIP/2.0 200")[0];
    assert_eq!(answer.header("To"), winner_200.header("To"));
    assert_eq!(answer.header("Contact"), winner_200.header("Contact"));
    let record = the_record(&server, &log, BOB.0);
    assert_answered(&record, "caller", winner.port);
}

#[test]
fn reinvite_in_the_dialog() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let (server, mut uas) = one_callee(&[], "call_uas_reinvite");
    let log = call(&server, "call_uac_reinvite", BOB.0);
    assert_eq!(
        requests(&log, true),
        ["INVITE", "ACK", "INVITE", "ACK", "INVITE", "ACK", "BYE"]
    );
    let uas_log = uas.finish();
    assert_eq!(requests(&uas_log, false), ["INVITE", "ACK", "INVITE", "ACK", "BYE"]);
    let reinvite = &received(&uas_log, "INVITE ")[1];
    assert_eq!(reinvite.header("CSeq"), Some("3 INVITE"), "{:#?}", reinvite.head);
    assert_forwarded(&server, reinvite);
    let record = the_record(&server, &log, BOB.0);
    assert_answered(&record, "caller", uas.port);
}

#[test]
fn invite_without_credentials_is_challenged_and_not_routed() {
    if !require_tool("sipp", "-v") {
        return;
    }
    // This callee gives up after 2 s; it must not have got anything by then.
    let server = server(&[]);
    let mut uas = Uas::start("call_uas", "2s");
    register_bob(&server, uas.port);
    let log = call(&server, "call_uac_no_credentials", BOB.0);
    assert_eq!(statuses(&log), [407], "{log}");
    assert_eq!(requests(&log, true), ["INVITE", "ACK"]);
    let (_, uas_log) = uas.wait();
    assert!(logged(&uas_log).is_empty(), "the callee got:\n{uas_log}");
    assert!(records(&server, 0).is_empty());
}
