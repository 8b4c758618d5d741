//! The ban list in the admin API and the metrics: a source that keeps guessing a password is
//! listed by `GET /api/bans` and counted in `/metrics`, its packets go unanswered, and
//! `DELETE /api/bans/{ip}` lets it in again.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Phone, Rig};

/// The value of a metric without labels.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_guessing_source_is_listed_dropped_and_lifted() {
    let rig = Rig::start_with(None, |c| {
        c.guard.trusted_networks.clear();
        c.guard.ban_after_ip_failures = 3;
        c.guard.ban_time = Duration::from_secs(600);
    });
    rig.add_user("1000", "right-secret");
    assert_eq!(rig.json("/api/bans")["bans"], Value::Array(Vec::new()));

    for _ in 0..3 {
        assert_eq!(Phone::new(rig.sip, "1000", "wrong-guess").register(), 401);
    }
    let bans = rig.json("/api/bans");
    let list = bans["bans"].as_array().expect("a list");
    assert_eq!(list.len(), 1, "{bans}");
    let ban = &list[0];
    assert_eq!(ban["ip"], "127.0.0.1");
    assert_eq!(ban["prefix_len"], 32);
    assert_eq!(ban["reason"], "source-failures");
    assert_eq!(ban["user"], Value::Null);
    assert_eq!(ban["failures"], 3);
    let (since, until) = (
        ban["since"].as_u64().expect("since"),
        ban["until"].as_u64().expect("until"),
    );
    assert_eq!(until - since, 600, "{ban}");

    // Nothing from that address is answered now.
    let probe = Phone::new(rig.sip, "1000", "right-secret");
    probe.send(&format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-probe;rport\r\nMax-Forwards: 70\r\n\
         From: <sip:probe@{DOMAIN}>;tag=p\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: probe@test\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        DOMAIN = support::DOMAIN,
        me = probe.addr()
    ));
    let mut buf = [0u8; 2048];
    probe
        .sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    assert!(probe.sock.recv(&mut buf).is_err(), "a banned source gets no answer");

    let (_, metrics) = rig.get("/metrics");
    assert_eq!(metric(&metrics, "switchboard_bans"), Some(1.0));
    assert_eq!(metric(&metrics, "switchboard_bans_total"), Some(1.0));
    assert!(metric(&metrics, "switchboard_banned_packets_total").is_some_and(|n| n >= 1.0));
    assert_eq!(metric(&metrics, "switchboard_auth_failures_total"), Some(3.0));
    assert_eq!(metric(&metrics, "switchboard_scanner_drops_total"), Some(0.0));

    let (status, v) = rig.request("DELETE", "/api/bans/not-an-address", None);
    assert_eq!((status, v["error"].is_string()), (400, true), "{v}");
    let (status, _) = rig.request("DELETE", "/api/bans/192.0.2.1", None);
    assert_eq!(status, 404);
    let (status, _) = rig.request("DELETE", "/api/bans/127.0.0.1", None);
    assert_eq!(status, 204);
    let (status, _) = rig.request("DELETE", "/api/bans/127.0.0.1", None);
    assert_eq!(status, 404, "already lifted");
    assert_eq!(rig.json("/api/bans")["bans"], Value::Array(Vec::new()));
    let (_, metrics) = rig.get("/metrics");
    assert_eq!(metric(&metrics, "switchboard_bans"), Some(0.0));

    // Answered again, and the count started over: the right password works, and one more
    // wrong guess does not ban again.
    assert_eq!(Phone::new(rig.sip, "1000", "right-secret").register(), 200);
    assert_eq!(Phone::new(rig.sip, "1000", "wrong-guess").register(), 401);
    assert_eq!(rig.json("/api/bans")["bans"], Value::Array(Vec::new()));
}

#[test]
fn scanner_user_agents_are_dropped_and_counted() {
    let rig = Rig::start(None);
    let phone = Phone::new(rig.sip, "1000", "x");
    let options = |ua: &str, branch: &str| {
        format!(
            "OPTIONS sip:{d} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{branch};rport\r\nMax-Forwards: 70\r\n\
             From: <sip:probe@{d}>;tag=p\r\nTo: <sip:{d}>\r\nCall-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\n\
             User-Agent: {ua}\r\nContent-Length: 0\r\n\r\n",
            d = support::DOMAIN,
            me = phone.addr()
        )
    };
    phone
        .sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    phone.send(&options("friendly-scanner", "scan1"));
    assert!(
        phone.sock.recv(&mut buf).is_err(),
        "sipvicious's default User-Agent gets nothing"
    );
    phone.send(&options("Some Phone/1.0", "ok1"));
    let n = phone.sock.recv(&mut buf).expect("a real phone gets an answer");
    assert!(buf[..n].starts_with(b"SIP/2.0 200"));
    let (_, metrics) = rig.get("/metrics");
    assert_eq!(metric(&metrics, "switchboard_scanner_drops_total"), Some(1.0));
}
