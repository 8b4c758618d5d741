//! The admin API against a real server in process: users, registrations (durable removal),
//! a ringing call hung up from the API, call records paged with a cursor, the SIP trace as JSON
//! and pcap, the bearer token, metrics, the OpenAPI document covering every route, the console.

mod support;

use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};
use store::{CallRecord, Disposition, LegMedia, LocationStore, RecordStore};
use support::{DOMAIN, Phone, Rig, eventually, header, http_request, http_request_full, is_final, is_request, reply};

#[test]
fn users_are_added_changed_and_removed() {
    let rig = Rig::start(None);
    assert_eq!(rig.json("/api/users"), json!({ "users": [] }));

    rig.add_user("1000", "first-secret");
    let (status, v) = rig.request("POST", "/api/users", Some(r#"{"ext":"1000","password":"x"}"#));
    assert_eq!((status, v["error"].is_string()), (409, true), "{v}");
    let (status, v) = rig.request("POST", "/api/users", Some(r#"{"ext":"bad ext","password":"x"}"#));
    assert_eq!((status, v["error"].is_string()), (400, true), "{v}");
    let (status, v) = rig.request("POST", "/api/users", Some(r#"{"ext":"1001","password":""}"#));
    assert_eq!(status, 400, "{v}");
    let (status, v) = rig.request("POST", "/api/users", Some("not json"));
    assert_eq!((status, v["error"].is_string()), (400, true), "{v}");
    let (status, v) = rig.request("POST", "/api/users", Some(r#"{"ext":"1001"}"#));
    assert_eq!(status, 400, "a missing password: {v}");
    assert_eq!(
        rig.json("/api/users"),
        json!({ "users": [{ "ext": "1000", "domain": DOMAIN, "tls_only": false, "allowed_networks": [] }] })
    );

    // The running server notices the new user by itself.
    let mut phone = Phone::new(rig.sip, "1000", "first-secret");
    assert_eq!(phone.register(), 200);

    let (status, v) = rig.request("PUT", "/api/users/1000", Some(r#"{"password":"second-secret"}"#));
    assert_eq!(
        (status, &v),
        (
            200,
            &json!({ "ext": "1000", "domain": DOMAIN, "tls_only": false, "allowed_networks": [] })
        )
    );
    let mut phone = Phone::new(rig.sip, "1000", "second-secret");
    assert_eq!(phone.register(), 200, "the new password works at once");
    let (status, _) = rig.request("PUT", "/api/users/1999", Some(r#"{"password":"x"}"#));
    assert_eq!(status, 404);
    let (status, _) = rig.request("PUT", "/api/users/1000", Some(r#"{"pass":"x"}"#));
    assert_eq!(status, 400);
    let (status, _) = rig.request("PUT", "/api/users/1000", Some("{}"));
    assert_eq!(status, 400, "nothing to change");

    // The TLS-only flag: set at creation or later, kept by a password change.
    let (status, v) = rig.request(
        "POST",
        "/api/users",
        Some(r#"{"ext":"1002","password":"pw","tls_only":true}"#),
    );
    assert_eq!(
        (status, &v),
        (
            201,
            &json!({ "ext": "1002", "domain": DOMAIN, "tls_only": true, "allowed_networks": [] })
        )
    );
    let (status, v) = rig.request("PUT", "/api/users/1002", Some(r#"{"password":"pw2"}"#));
    assert_eq!((status, v["tls_only"].as_bool()), (200, Some(true)), "{v}");
    let (status, v) = rig.request("PUT", "/api/users/1002", Some(r#"{"tls_only":false}"#));
    assert_eq!((status, v["tls_only"].as_bool()), (200, Some(false)), "{v}");
    let (status, v) = rig.request("PUT", "/api/users/1000", Some(r#"{"tls_only":true}"#));
    assert_eq!((status, v["tls_only"].as_bool()), (200, Some(true)), "{v}");
    let (status, _) = rig.request("PUT", "/api/users/1999", Some(r#"{"tls_only":true}"#));
    assert_eq!(status, 404);
    let (status, _) = rig.request("PUT", "/api/users/1000", Some(r#"{"tls_only":"yes"}"#));
    assert_eq!(status, 400);
    // A tls_only user's REGISTER over UDP is refused after authentication (the running server
    // checks the store for changes at most once a second).
    let mut phone = Phone::new(rig.sip, "1000", "second-secret");
    eventually("tls_only to be enforced", || (phone.register() == 403).then_some(()));
    let (status, _) = rig.request("PUT", "/api/users/1000", Some(r#"{"tls_only":false}"#));
    assert_eq!(status, 200);

    // Allowed networks: checked, stored, enforced after authentication, cleared.
    let (status, v) = rig.request(
        "PUT",
        "/api/users/1000",
        Some(r#"{"allowed_networks":["10.0.0.0/33"]}"#),
    );
    assert_eq!(
        (status, v["error"].as_str().is_some_and(|e| e.contains("10.0.0.0/33"))),
        (400, true),
        "{v}"
    );
    let (status, v) = rig.request(
        "PUT",
        "/api/users/1000",
        Some(r#"{"allowed_networks":["198.51.100.0/24"]}"#),
    );
    assert_eq!(
        (status, &v["allowed_networks"]),
        (200, &json!(["198.51.100.0/24"])),
        "{v}"
    );
    let mut phone = Phone::new(rig.sip, "1000", "second-secret");
    eventually("the network list to be enforced", || {
        (phone.register() == 403).then_some(())
    });
    let (status, v) = rig.request("PUT", "/api/users/1000", Some(r#"{"allowed_networks":[]}"#));
    assert_eq!((status, &v["allowed_networks"]), (200, &json!([])), "{v}");
    eventually("anywhere again", || (phone.register() == 200).then_some(()));
    let (status, _) = rig.request("DELETE", "/api/users/1002", None);
    assert_eq!(status, 204);

    let (status, v) = rig.request("DELETE", "/api/users/1000", None);
    assert_eq!((status, v), (204, Value::Null));
    let (status, v) = rig.request("DELETE", "/api/users/1000", None);
    assert_eq!((status, v["error"].is_string()), (404, true));
    assert_eq!(rig.json("/api/users"), json!({ "users": [] }));
    // Nothing the API said contained a password.
    let stored = store::SubscriberStore::list(&rig.store(), None).expect("list");
    assert!(stored.is_empty());
}

#[test]
fn registrations_are_listed_filtered_and_removed_durably() {
    let rig = Rig::start(None);
    rig.add_user("1000", "pw-1000");
    rig.add_user("1001", "pw-1001");
    let mut a = Phone::new(rig.sip, "1000", "pw-1000");
    let mut b = Phone::new(rig.sip, "1001", "pw-1001");
    assert_eq!(a.register(), 200);
    assert_eq!(b.register(), 200);

    let all = rig.json("/api/registrations");
    let list = all["registrations"].as_array().expect("a list");
    assert_eq!(list.len(), 2, "{all}");
    let r = &list[0];
    assert_eq!(r["user"], "1000");
    assert_eq!(r["aor"], format!("1000@{DOMAIN}"));
    assert_eq!(r["source"], a.addr().to_string());
    assert_eq!(r["transport"], "UDP");
    assert_eq!(r["user_agent"], "admin-test-phone");
    assert_eq!(r["call_id"], a.reg_call_id);
    assert!(
        r["contact"].as_str().is_some_and(|c| c.contains(&a.addr().to_string())),
        "{r}"
    );
    let expires_in = r["expires_in"].as_u64().expect("expires_in");
    assert!((590..=600).contains(&expires_in), "{r}");

    let only = rig.json("/api/registrations?user=1001");
    let only = only["registrations"].as_array().expect("a list");
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["user"], "1001");
    assert_eq!(rig.json("/api/registrations?user=nobody")["registrations"], json!([]));

    let id = r["id"].as_str().expect("id").to_owned();
    let (status, _) = rig.request("DELETE", &format!("/api/registrations/{id}"), None);
    assert_eq!(status, 204);
    let (status, v) = rig.request("DELETE", &format!("/api/registrations/{id}"), None);
    assert_eq!((status, v["error"].is_string()), (404, true));
    let left = rig.json("/api/registrations");
    let left = left["registrations"].as_array().expect("a list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["user"], "1001");

    // Durable: the store, opened afresh, no longer has the binding.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let bindings = rig.store().load(now).expect("load");
    let aors: Vec<&str> = bindings.iter().map(|b| b.aor.as_str()).collect();
    assert_eq!(aors, [format!("1001@{DOMAIN}")], "{bindings:?}");
}

#[test]
fn the_trace_of_a_register_dialog_as_json_and_pcap() {
    let rig = Rig::start(None);
    rig.add_user("1000", "pw");
    let mut phone = Phone::new(rig.sip, "1000", "pw");
    assert_eq!(phone.register(), 200);
    let call_id = phone.reg_call_id.clone();
    let encoded = call_id.replace('@', "%40");

    let trace = rig.json(&format!("/api/trace/{encoded}"));
    assert_eq!(trace["call_id"], call_id);
    let messages = trace["messages"].as_array().expect("messages");
    let flow: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap_or_default().to_owned(),
                m["first_line"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        flow.iter()
            .map(|(d, l)| format!("{d} {}", l.split(' ').take(2).collect::<Vec<_>>().join(" ")))
            .collect::<Vec<_>>(),
        [
            "in REGISTER sip:test.invalid",
            "out SIP/2.0 401",
            "in REGISTER sip:test.invalid",
            "out SIP/2.0 200"
        ],
        "{trace}"
    );
    let first = &messages[0];
    assert_eq!(first["method"], "REGISTER");
    assert_eq!(first["proto"], "udp");
    assert_eq!(first["remote"], phone.addr().to_string());
    assert_eq!(first["local"], rig.sip.to_string());
    assert!(
        first["text"]
            .as_str()
            .is_some_and(|t| t.contains("User-Agent: admin-test-phone"))
    );
    assert_eq!(messages[1]["status"], 401);
    assert!(messages.windows(2).all(|w| w[0]["seq"].as_u64() < w[1]["seq"].as_u64()));
    assert!(
        messages
            .windows(2)
            .all(|w| w[0]["at_us"].as_u64() <= w[1]["at_us"].as_u64())
    );

    let (status, headers, pcap) = http_request_full(rig.http, "GET", &format!("/api/trace/{encoded}.pcap"), None, None);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/vnd.tcpdump.pcap"));
    let disposition = header(&headers, "content-disposition").expect("Content-Disposition");
    assert!(disposition.starts_with("attachment; filename=\""), "{disposition}");
    assert_eq!(pcap[..4], 0xa1b2_c3d4u32.to_le_bytes(), "the pcap magic");
    assert!(pcap.len() > 24 + 4 * 16, "four frames");

    // Dialog lists: recent, and of a user.
    let recent = rig.json("/api/trace");
    assert_eq!(recent["enabled"], true);
    assert!(
        recent["dialogs"]
            .as_array()
            .expect("dialogs")
            .iter()
            .any(|d| d["call_id"] == call_id)
    );
    let mine = rig.json("/api/trace?user=1000&limit=5");
    let mine = mine["dialogs"].as_array().expect("dialogs");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["method"], "REGISTER");
    assert_eq!(mine[0]["messages"], 4);
    assert_eq!(rig.json("/api/trace?user=nobody")["dialogs"], json!([]));

    let (status, _) = rig.get("/api/trace/unknown%40nowhere");
    assert_eq!(status, 404);
    let (status, _) = rig.get("/api/trace/unknown%40nowhere.pcap");
    assert_eq!(status, 404);
}

#[test]
fn trace_off_answers_not_found() {
    let rig = Rig::start_with(None, |c| c.trace.enabled = false);
    assert_eq!(rig.json("/api/trace"), json!({ "enabled": false, "dialogs": [] }));
    let (status, body) = rig.get("/api/trace/x.pcap");
    assert_eq!(status, 404, "{body}");
}

/// alice calls bob; bob rings; the API lists the call and hangs it up; a record follows.
#[test]
fn a_ringing_call_is_listed_and_hung_up() {
    let rig = Rig::start(None);
    rig.add_user("alice", "alice-pw");
    rig.add_user("bob", "bob-pw");
    let mut bob = Phone::new(rig.sip, "bob", "bob-pw");
    assert_eq!(bob.register(), 200);
    let alice = Phone::new(rig.sip, "alice", "alice-pw");
    assert_eq!(rig.json("/api/calls"), json!({ "calls": [] }));

    let call_id = "call-1@admin-test";
    let invite = |cseq: u32, auth: Option<&str>| {
        let me = alice.addr();
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "INVITE sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-inv{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=a1\r\nTo: <sip:bob@{DOMAIN}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:alice@{me}>\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    let ack = |cseq: u32, to: &str| {
        let me = alice.addr();
        format!(
            "ACK sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-inv{cseq};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@{DOMAIN}>;tag=a1\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n"
        )
    };
    alice.send(&invite(1, None));
    let challenge = alice.recv("the 407", |m| is_final(m, "INVITE"));
    assert_eq!(challenge.status_code(), Some(407));
    alice.send(&ack(1, challenge.header("To").expect("To")));
    let auth = support::digest(
        &challenge,
        sip::HeaderName::ProxyAuthenticate,
        ("alice", "alice-pw"),
        "INVITE",
        &format!("sip:bob@{DOMAIN}"),
    );
    alice.send(&invite(2, Some(&auth)));
    let inv = bob.recv("the INVITE", |m| is_request(m, "INVITE"));
    bob.send(&reply(
        &inv,
        "180 Ringing",
        Some("b1"),
        &format!("Contact: <sip:bob@{}>\r\n", bob.addr()),
    ));
    alice.recv("the 180", |m| m.status_code() == Some(180));

    let calls = rig.json("/api/calls");
    let calls = calls["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["id"], call_id);
    assert_eq!(calls[0]["caller"], "alice");
    assert_eq!(calls[0]["callee"], "bob");
    assert_eq!(calls[0]["state"], "ringing");

    let (status, v) = rig.request("DELETE", "/api/calls/nope%40nowhere", None);
    assert_eq!((status, v["error"].is_string()), (404, true));
    let (status, _) = rig.request("DELETE", "/api/calls/call-1%40admin-test", None);
    assert_eq!(status, 204);

    // bob is cancelled; alice gets a final answer.
    let cancel = bob.recv("the CANCEL", |m| is_request(m, "CANCEL"));
    bob.send(&reply(&cancel, "200 OK", None, ""));
    bob.send(&reply(&inv, "487 Request Terminated", Some("b1"), ""));
    let last = alice.recv("the final answer", |m| is_final(m, "INVITE"));
    assert!(last.status_code().is_some_and(|c| c >= 400), "{last:?}");
    alice.send(&ack(2, last.header("To").expect("To")));

    eventually("the call to end", || {
        rig.json("/api/calls")["calls"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });
    let record = eventually("the call record", || {
        let page = rig.json("/api/records");
        page["records"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["call_id"] == call_id).cloned())
    });
    assert_eq!(record["caller"], "alice");
    assert_eq!(record["callee"], "bob");
    assert_eq!(record["answered_ms"], Value::Null);
    assert_eq!(record["duration_s"], 0);
    assert!(record["status"].as_u64().is_some_and(|s| s >= 400), "{record}");

    // The call's ladder: alice's INVITEs and the 407 are in the trace.
    let trace = rig.json("/api/trace/call-1%40admin-test");
    let labels: Vec<String> = trace["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| match m["method"].as_str() {
            Some(method) => method.to_owned(),
            None => m["status"].to_string(),
        })
        .collect();
    for wanted in ["INVITE", "407", "ACK", "180", "CANCEL", "487"] {
        assert!(labels.iter().any(|l| l == wanted), "{wanted} missing from {labels:?}");
    }
}

fn record(call_id: &str, ended_ms: u64) -> CallRecord {
    CallRecord {
        call_id: call_id.into(),
        caller: "1000".into(),
        callee: "1001".into(),
        started_ms: ended_ms - 10_000,
        answered_ms: Some(ended_ms - 8_000),
        ended_ms,
        disposition: Disposition::Answered,
        status: 200,
        hangup: Some("caller".into()),
        answered_by: Some("sip:1001@192.0.2.2".into()),
        caller_media: LegMedia {
            codec: Some("PCMU".into()),
            packets: 400,
            bytes: 68_800,
            loss_permille: Some(0),
            jitter_us: Some(900),
        },
        callee_media: LegMedia::default(),
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["call_id"].as_str().expect("call_id").to_owned())
        .collect()
}

#[test]
fn records_page_with_a_cursor_while_records_arrive() {
    let rig = Rig::start(None);
    let store = rig.store();
    let base = 1_735_689_600_000u64; // 2025-01-01T00:00:00Z
    let first: Vec<CallRecord> = (0..7).map(|i| record(&format!("r{i}"), base + i * 1000)).collect();
    store.insert(&first).expect("insert");

    let p1 = rig.json("/api/records?limit=3");
    assert_eq!(ids(&p1), ["r6", "r5", "r4"], "newest first");
    let r6 = &p1["records"][0];
    assert_eq!(r6["duration_s"], 8);
    assert_eq!(r6["disposition"], "answered");
    assert_eq!(r6["caller_media"]["codec"], "PCMU");
    assert_eq!(r6["caller_media"]["jitter_us"], 900);
    assert_eq!(r6["callee_media"]["codec"], Value::Null);
    let c1 = p1["next_cursor"].as_str().expect("a next page").to_owned();

    // Calls finish while the client pages: one newer than the cursor is not in the next pages;
    // one that (oddly) ended before it joins them; nothing repeats, nothing is skipped.
    store
        .insert(&[record("late-1", base + 60_000), record("late-2", base + 3_000)])
        .expect("insert more");
    let p2 = rig.json(&format!("/api/records?limit=3&cursor={c1}"));
    assert_eq!(ids(&p2), ["late-2", "r3", "r2"], "{p2}");
    let c2 = p2["next_cursor"].as_str().expect("a next page").to_owned();
    let p3 = rig.json(&format!("/api/records?limit=3&cursor={c2}"));
    assert_eq!(ids(&p3), ["r1", "r0"]);
    assert_eq!(p3["next_cursor"], Value::Null, "the last page");

    let mut seen = HashSet::new();
    for id in [ids(&p1), ids(&p2), ids(&p3)].concat() {
        assert!(seen.insert(id.clone()), "{id} twice");
    }
    // An exact last page has no next cursor either.
    let all = rig.json("/api/records?limit=9");
    assert_eq!(all["records"].as_array().map(Vec::len), Some(9));
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(rig.json("/api/records")["records"].as_array().map(Vec::len), Some(9));
}

#[test]
fn records_filter_by_time_and_refuse_bad_parameters() {
    let rig = Rig::start(None);
    let base = 1_735_689_600_000u64; // 2025-01-01T00:00:00Z
    rig.store()
        .insert(&[
            record("old", base - 1),
            record("at", base),
            record("later", base + 3_600_000),
            record("end", base + 7_200_000),
        ])
        .expect("insert");
    let page = rig.json(&format!("/api/records?since={base}&until={}", base + 7_200_000));
    assert_eq!(ids(&page), ["later", "at"]);
    let page = rig.json("/api/records?since=2025-01-01T00:00:00Z&until=2025-01-01T02:00:00%2B01:00");
    assert_eq!(ids(&page), ["at"], "until is 01:00 UTC, exclusive");
    let page = rig.json("/api/records?since=2025-01-01T01:00:00.000Z");
    assert_eq!(ids(&page), ["end", "later"]);

    for bad in [
        "since=yesterday",
        "until=2025-13-01T00:00:00Z",
        "limit=0",
        "limit=many",
        "cursor=garbage",
    ] {
        let (status, v) = rig.request("GET", &format!("/api/records?{bad}"), None);
        let name = bad.split('=').next().unwrap_or_default();
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.starts_with(name)),
            "{bad}: the error names the parameter: {v}"
        );
    }
    let capped = rig.json("/api/records?limit=100000");
    assert_eq!(capped["records"].as_array().map(Vec::len), Some(4));
}

#[test]
fn a_configured_token_is_required() {
    let rig = Rig::start(Some("s3cret-token"));
    for path in [
        "/api/health",
        "/api/users",
        "/api/registrations",
        "/api/records",
        "/metrics",
        "/api/openapi.json",
    ] {
        let (status, headers, body) = http_request_full(rig.http, "GET", path, None, None);
        assert_eq!(status, 401, "{path}");
        assert!(
            header(&headers, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
            "{path}: {headers:?}"
        );
        let v: Value = serde_json::from_slice(&body).expect("a JSON error");
        assert!(v["error"].is_string());
        let (status, _) = http_request(rig.http, "GET", path, None, Some("wrong-token"));
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, _) = http_request(rig.http, "GET", path, None, Some("s3cret-token"));
        assert_eq!(status, 200, "{path} with the token");
    }
    let (status, _) = http_request(
        rig.http,
        "POST",
        "/api/users",
        Some(r#"{"ext":"1000","password":"pw"}"#),
        None,
    );
    assert_eq!(status, 401, "no change without the token");
    assert!(
        store::SubscriberStore::list(&rig.store(), None)
            .expect("list")
            .is_empty()
    );

    // The console itself loads without the token; its script asks for it.
    for path in ["/", "/console.js", "/console.css"] {
        let (status, _) = rig.get(path);
        assert_eq!(status, 200, "{path}");
    }
}

#[test]
fn metrics_are_prometheus_text() {
    let rig = Rig::start(None);
    rig.add_user("1000", "pw");
    assert_eq!(Phone::new(rig.sip, "1000", "pw").register(), 200);
    let (status, headers, body) = http_request_full(rig.http, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(body).expect("UTF-8");
    assert!(text.contains("# TYPE switchboard_registrations"), "{text}");
    let value = text
        .lines()
        .find(|l| l.starts_with("switchboard_registrations "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(value, Some(1.0), "{text}");
}

#[test]
fn health_reports_the_server() {
    let rig = Rig::start(None);
    let h = rig.json("/api/health");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["domain"], DOMAIN);
    assert_eq!(h["sip_udp"], json!([rig.sip.to_string()]));
    let (status, v) = rig.request("GET", "/api/nothing-here", None);
    assert_eq!((status, v["error"].is_string()), (404, true));
}

/// The OpenAPI path of a route: `.pcap` exports are documented apart from their JSON route.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn openapi_describes_every_route() {
    let doc: Value = serde_json::from_str(admin::OPENAPI).expect("openapi.json is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.0")));
    let documented = documented(&doc);
    let routes: BTreeSet<(String, String)> = admin::route_list()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    for r in &routes {
        assert!(documented.contains(r), "{r:?} is served but not documented");
    }
    for d in &documented {
        let served = (d.0.clone(), d.1.trim_end_matches(".pcap").to_owned());
        assert!(routes.contains(&served), "{d:?} is documented but not served");
    }
    // Every $ref resolves.
    let text = admin::OPENAPI;
    for part in text.split("\"$ref\": \"#/").skip(1) {
        let pointer = part.split('"').next().expect("a ref");
        assert!(doc.pointer(&format!("/{pointer}")).is_some(), "dangling $ref {pointer}");
    }
    // Every path parameter is declared.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for name in path.split('{').skip(1).filter_map(|p| p.split('}').next()) {
            let declared = item["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
            assert!(declared, "{path}: parameter {name} not declared");
        }
    }

    // And the live router serves each documented route (no 405, not the fallback).
    let rig = Rig::start(None);
    let (status, body) = rig.get("/api/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON"), doc);
    for (method, path) in &documented {
        let concrete = path
            .replace("{ext}", "nobody")
            .replace("{id}", "nothing")
            .replace("{call_id}", "none");
        let body = match method.as_str() {
            "POST" => Some(r#"{"ext":"x1","password":"pw"}"#),
            "PUT" => Some(r#"{"password":"pw"}"#),
            _ => None,
        };
        let (status, bytes) = http_request(rig.http, method, &concrete, body, None);
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            status != 405 && !text.contains("no such route"),
            "{method} {concrete}: {status} {text}"
        );
    }
}

#[test]
fn the_console_is_served_from_the_binary() {
    let rig = Rig::start(None);
    let (status, headers, body) = http_request_full(rig.http, "GET", "/", None, None);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/html; charset=utf-8"));
    let csp = header(&headers, "content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = String::from_utf8(body).expect("UTF-8");
    assert!(html.contains("<script src=\"/console.js\""));
    assert!(html.contains("/console.css"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    let (status, headers, js) = http_request_full(rig.http, "GET", "/console.js", None, None);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/javascript; charset=utf-8"));
    let js = String::from_utf8(js).expect("UTF-8");
    assert!(!js.contains("innerHTML"), "network text never goes in as markup");
    assert!(js.contains("data-label") && js.contains("sip-message") && js.contains("registrationId"));
    let (status, headers, _) = http_request_full(rig.http, "GET", "/console.css", None, None);
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/css; charset=utf-8"));
}
