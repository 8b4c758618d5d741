//! Acceptance of the operator surface (issue #8), end to end: start the server, register two SIPp
//! users (1001, 1002), make a call 1001 → 1002 through the authenticating proxy
//! (`admin_flow`); then the admin API lists both registrations (with source, transport and
//! expiry) and the call record (answered), `/metrics` counts them, and the call's SIP trace
//! exported as pcap opens with `tshark -r` and holds the conversation (INVITE, 407, 180, 200, ACK,
//! BYE). The pcap is kept as `target/test-artifacts/e2e-admin-call.pcap`. Without SIPp or tshark
//! the test prints SKIP, except in CI (`CI=true`) where it fails. Relay ports: 7700-7749 (apart
//! from the other tests' ranges, see `interop_sipp_media.rs`).

mod admin_flow;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use admin_flow::{CALLEE, CALLER, encode_segment, get, get_ok, items, poll, sample};
use serde_json::Value;
use support::require_tool;

/// A string member of a JSON object.
fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

/// Seconds left on a registration: `expires_in`, else `expires`.
fn expires_in(v: &Value) -> u64 {
    ["expires_in", "expires"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_u64))
        .unwrap_or_else(|| panic!("no expires_in/expires in {v}"))
}

#[test]
fn api_metrics_and_pcap_after_two_registrations_and_a_call() {
    if !require_tool("sipp", "-v") || !require_tool("tshark", "--version") {
        return;
    }
    let t0 = Instant::now();
    let flow = admin_flow::registered_call(&["--rtp-ports", "7700-7749"]);
    let http = flow.http;
    println!("registered 2 users and made the call in {:?}", flow.took);

    let health = get_ok(http, "/api/health").json();
    assert_eq!(health["status"], "ok", "{health}");

    // Registrations: both users, each with where its REGISTER came from, over what, and how long
    // it has left of its 600 s.
    let all = items(&get_ok(http, "/api/registrations").json());
    assert_eq!(all.len(), 2, "{all:#?}");
    for (user, port) in [
        (CALLER.0, flow.caller_contact_port),
        (CALLEE.0, flow.callee_contact_port),
    ] {
        let reg = all
            .iter()
            .find(|r| r.get("user").and_then(Value::as_str) == Some(user))
            .unwrap_or_else(|| panic!("no registration of {user}: {all:#?}"));
        let contact = format!("sip:{user}@127.0.0.1:{port}");
        assert!(str_of(reg, "contact").contains(&contact), "{reg}");
        assert!(str_of(reg, "source").starts_with("127.0.0.1:"), "{reg}");
        assert!(str_of(reg, "transport").eq_ignore_ascii_case("udp"), "{reg}");
        let left = expires_in(reg);
        assert!((500..=600).contains(&left), "expires in {left} s: {reg}");
        assert!(!str_of(reg, "id").is_empty(), "{reg}");
    }
    let only = items(&get_ok(http, &format!("/api/registrations?user={}", CALLEE.0)).json());
    assert_eq!(only.len(), 1, "{only:#?}");
    assert_eq!(str_of(&only[0], "user"), CALLEE.0, "{only:#?}");

    // The call record (written when the call ends, maybe a moment after the BYE's 200).
    let record = poll(Duration::from_secs(5), || {
        items(&get_ok(http, "/api/records").json())
            .into_iter()
            .find(|r| r.get("call_id").and_then(Value::as_str) == Some(flow.call_id.as_str()))
    })
    .unwrap_or_else(|| {
        panic!(
            "no record of {} in /api/records: {}",
            flow.call_id,
            get(http, "/api/records").text()
        )
    });
    assert_eq!(str_of(&record, "caller"), CALLER.0, "{record}");
    assert_eq!(str_of(&record, "callee"), CALLEE.0, "{record}");
    assert_eq!(str_of(&record, "disposition"), "answered", "{record}");
    assert_eq!(record["status"], 200, "{record}");
    // Nothing is in progress any more.
    let active = items(&get_ok(http, "/api/calls").json());
    assert!(active.is_empty(), "{active:#?}");

    // Metrics.
    let metrics = get_ok(http, "/metrics").text();
    let value =
        |series: &str| sample(&metrics, series).unwrap_or_else(|| panic!("no sample {series} in /metrics:\n{metrics}"));
    assert!(value("switchboard_registrations") >= 2.0, "{metrics}");
    assert!(
        value("switchboard_calls_total{disposition=\"answered\"}") >= 1.0,
        "{metrics}"
    );
    // The caller's INVITE without and with credentials.
    assert!(
        value("switchboard_sip_requests_received_total{method=\"INVITE\"}") >= 2.0,
        "{metrics}"
    );
    assert!(
        value("switchboard_sip_requests_received_total{method=\"REGISTER\"}") >= 4.0,
        "{metrics}"
    );
    assert!(
        value("switchboard_sip_responses_sent_total{status=\"407\"}") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("switchboard_sip_responses_sent_total{status=\"401\"}") >= 2.0,
        "{metrics}"
    );
    assert_eq!(value("switchboard_active_calls"), 0.0, "{metrics}");

    // The call's SIP trace as JSON.
    let call = encode_segment(&flow.call_id);
    let trace = get_ok(http, &format!("/api/trace/{call}")).text();
    for needle in ["INVITE", "407", "180", "BYE"] {
        assert!(trace.contains(needle), "{needle} not in the trace: {trace}");
    }

    // The same as pcap, read back by tshark.
    let pcap = get_ok(http, &format!("/api/trace/{call}.pcap"));
    let magic = pcap.body.get(..4).unwrap_or_default();
    assert!(
        [
            [0xd4, 0xc3, 0xb2, 0xa1],
            [0xa1, 0xb2, 0xc3, 0xd4],
            [0x4d, 0x3c, 0xb2, 0xa1],
            [0xa1, 0xb2, 0x3c, 0x4d],
            [0x0a, 0x0d, 0x0d, 0x0a],
        ]
        .iter()
        .any(|m| m == magic),
        "not a pcap: {magic:02x?}"
    );
    let file = admin_flow::artifacts_dir().join("e2e-admin-call.pcap");
    std::fs::write(&file, &pcap.body).expect("write the pcap");
    println!("pcap of the call ({} bytes): {}", pcap.body.len(), file.display());
    // The server's SIP port is ephemeral: tell tshark it carries SIP.
    let decode_as = format!("udp.port=={},sip", flow.server.udp.port());
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-d", &decode_as, "-Y", "sip", "-T", "fields"])
        .args(["-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.Call-ID"])
        .output()
        .expect("run tshark");
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tshark -r failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // One entry per message: the method of a request, the status code of a response.
    let mut flow_seen = Vec::new();
    for line in table.lines() {
        let mut fields = line.split('\t');
        let (method, status, call_id) = (
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
        );
        assert_eq!(call_id, flow.call_id, "another call in the pcap:\n{table}");
        flow_seen.push(if method.is_empty() { status } else { method }.to_owned());
    }
    println!("tshark: {}", flow_seen.join(" "));
    let first = |what: &str| {
        flow_seen
            .iter()
            .position(|m| m == what)
            .unwrap_or_else(|| panic!("no {what} in the pcap:\n{table}"))
    };
    let last = |what: &str| flow_seen.iter().rposition(|m| m == what).unwrap_or(0);
    // INVITE, 407, ACK (of the 407), INVITE with credentials, 180, 200, ACK (of the 200), BYE.
    assert!(first("INVITE") < first("407"), "{table}");
    assert!(first("407") < first("ACK"), "{table}");
    assert!(first("ACK") < first("180"), "{table}");
    assert!(first("180") < first("200"), "{table}");
    assert!(first("200") < last("ACK"), "{table}");
    assert!(last("ACK") < first("BYE"), "{table}");
    assert!(first("BYE") < last("200"), "{table}");
    assert!(flow_seen.iter().filter(|m| *m == "INVITE").count() >= 3, "{table}");
    println!("e2e_admin took {:?}", t0.elapsed());
}
