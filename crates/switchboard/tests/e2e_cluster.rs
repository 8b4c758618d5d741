//! Two switchboard nodes as one platform (issue #9): both share the subscribers and call records
//! in PostgreSQL and the registrations in Redis, on loopback. Real baresip phones register and
//! call, each through its own node:
//!
//! - 1001 registers on node A, 1002 on node B; 1001 calls 1002 and 1002 calls 1001. Each call is
//!   answered and carries RTP both ways through the relay of the node the caller used, which
//!   writes the one call record (the node that only delivers the call over its phone's flow
//!   writes none).
//! - A user added through node B's admin API registers on node A.
//! - Node A is killed (SIGKILL). Node B still serves 1002's binding, sees A go, and reaches
//!   1001 (registered through A, UDP, a public contact) directly: 1002 calls 1001 again.
//!
//! The test makes its own database and key prefix and removes them. Without baresip, Redis or
//! PostgreSQL it prints SKIP, except in CI (`CI=true`) where it fails.

#[path = "../../store/tests/redis_support/mod.rs"]
mod redis_support;
#[path = "../../store/tests/services/mod.rs"]
mod services;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use store::{CallRecord, Disposition, RecordStore};
use support::baresip::{Phone, json_str};
use support::{Server, require_tool};

const DOMAIN: &str = "test.invalid";

/// A database of its own on the test's PostgreSQL server, dropped at the end.
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin_url: &str) -> Database {
        let name = format!("sb_cluster_{}", std::process::id());
        let mut admin = postgres::Client::connect(admin_url, postgres::NoTls).expect("connect to PostgreSQL");
        // One statement per call: a multi-statement batch runs as one transaction, which
        // CREATE/DROP DATABASE refuse.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop a leftover test database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Database {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// Starts a baresip phone for `user` that answers calls itself, registered through `node`.
fn phone(user: &str, password: &str, node: &Server, tone_hz: u32) -> Phone {
    let mut p = Phone::start(user, tone_hz, "");
    let account = format!(
        "<sip:{user}@{DOMAIN};transport=udp>;auth_pass={password};outbound=\"sip:{};transport=udp\";regint=600;answermode=auto",
        node.udp
    );
    if let Err(why) = p.register(&account) {
        p.fail(&format!("{user} could not register through {}: {why}", node.udp), &[]);
    }
    p
}

/// `caller` dials `callee`'s number; both see the call established, it lasts `talk`, and the
/// caller hangs up.
fn call(caller: &mut Phone, callee: &mut Phone, talk: Duration) {
    if let Err(e) = caller.ctrl.command("dial", &format!("sip:{}@{DOMAIN}", callee.name)) {
        caller.fail(&format!("dial failed: {e}"), &[callee]);
    }
    let (event, msg) = caller.call_event(&["CALL_ESTABLISHED", "CALL_CLOSED"], Duration::from_secs(10), callee);
    if event != "CALL_ESTABLISHED" {
        let why = json_str(&msg, "param").unwrap_or_default();
        caller.fail(
            &format!("{} → {}: not answered: {why}", caller.name, callee.name),
            &[callee],
        );
    }
    let (event, _) = callee.call_event(&["CALL_ESTABLISHED", "CALL_CLOSED"], Duration::from_secs(5), caller);
    assert_eq!(event, "CALL_ESTABLISHED", "{}", callee.diagnostics());
    std::thread::sleep(talk);
    if let Some((_, msg)) = caller.ctrl.event(&["CALL_CLOSED"], Duration::ZERO) {
        let why = json_str(&msg, "param").unwrap_or_default();
        caller.fail(&format!("the call ended before the caller hung up: {why}"), &[callee]);
    }
    if let Err(e) = caller.ctrl.command("hangup", "") {
        caller.fail(&format!("hangup failed: {e}"), &[callee]);
    }
    caller.call_event(&["CALL_CLOSED"], Duration::from_secs(5), callee);
    callee.call_event(&["CALL_CLOSED"], Duration::from_secs(5), caller);
}

/// Waits until `node`'s API lists a registration of every one of `users`.
fn wait_for_registrations(node: &Server, users: &[&str]) -> String {
    let http = node.http.expect("http");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = support::http_get(http, "/api/registrations");
        let all = status == 200 && users.iter().all(|u| body.contains(&format!("\"user\":\"{u}\"")));
        if all {
            return body;
        }
        assert!(Instant::now() < deadline, "{} never listed {users:?}: {body}", node.udp);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The answered records between `caller` and `callee` in the shared store, waiting up to 3 s for
/// `count` of them.
fn records(db: &Database, caller: &str, callee: &str, count: usize) -> Vec<CallRecord> {
    let store = store::PgStore::connect(&db.url).expect("open the records");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let found: Vec<CallRecord> = store
            .list_records(0, u64::MAX, 100)
            .expect("list records")
            .into_iter()
            .filter(|r| r.caller == caller && r.callee == callee)
            .collect();
        if found.len() >= count || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_media_both_ways(r: &CallRecord) {
    assert_eq!(r.disposition, Disposition::Answered, "{r:#?}");
    for (leg, media) in [("caller", &r.caller_media), ("callee", &r.callee_media)] {
        // 50 packets a second (20 ms PCMU); at least a second's worth each way.
        assert!(media.packets >= 50, "{leg} sent {} packets: {r:#?}", media.packets);
    }
}

#[test]
fn two_nodes_share_users_registrations_and_records() {
    if !require_tool("baresip", "-h") {
        return;
    }
    let (Some(pg), Some(redis_url)) = (
        services::postgres_url("e2e_cluster"),
        services::redis_url("e2e_cluster"),
    ) else {
        return;
    };
    let db = Database::create(&pg);
    let keys = redis_support::Keys::with_tail(&redis_url, "cluster:");
    let locations = format!("{redis_url}?prefix={}", keys.prefix);

    for (user, password) in [("1001", "pw-1001"), ("1002", "pw-1002")] {
        let out = Command::new(support::bin())
            .args(["user", "add", user, "--password", password, "--domain", DOMAIN])
            .args(["--store-subscribers", &db.url])
            .output()
            .expect("run user add");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let node = |id: &str, ports: &str| {
        Server::start(&[
            "--store-subscribers",
            &db.url,
            "--store-records",
            &db.url,
            "--store-locations",
            &locations,
            "--node-id",
            id,
            "--rtp-ports",
            ports,
            // Debian 12's baresip (libre 1.1.0) abandons a 401 that also offers SHA-256.
            "--digest-algorithms",
            "MD5",
        ])
    };
    let mut a = node("a", "7800-7849");
    let b = node("b", "7850-7899");

    let mut p1001 = phone("1001", "pw-1001", &a, 1_000);
    let mut p1002 = phone("1002", "pw-1002", &b, 440);
    // Each node sees the other's registration (the change feed).
    wait_for_registrations(&a, &["1001", "1002"]);
    wait_for_registrations(&b, &["1001", "1002"]);

    call(&mut p1001, &mut p1002, Duration::from_secs(2));
    call(&mut p1002, &mut p1001, Duration::from_secs(2));
    let a_to_b = records(&db, "1001", "1002", 1);
    assert_eq!(
        a_to_b.len(),
        1,
        "one record per call, from the caller's node: {a_to_b:#?}"
    );
    assert_media_both_ways(&a_to_b[0]);
    let b_to_a = records(&db, "1002", "1001", 1);
    assert_eq!(b_to_a.len(), 1, "{b_to_a:#?}");
    assert_media_both_ways(&b_to_a[0]);
    // Each call went through the node holding the callee's flow: node B saw 1001's INVITE
    // arrive from node A as a signed internal hop, and node A saw 1002's.
    for (holder, call_id) in [(&b, &a_to_b[0].call_id), (&a, &b_to_a[0].call_id)] {
        let (status, trace) = support::http_get(holder.http.expect("http"), &format!("/api/trace/{call_id}"));
        if status != 200 {
            let other = if std::ptr::eq(holder, &b) { &a } else { &b };
            let (_, t) = support::http_get(other.http.expect("http"), &format!("/api/trace/{call_id}"));
            panic!("{} has no trace of {call_id}; the caller's node has: {t}", holder.udp);
        }
        assert!(
            trace.contains("X-Switchboard-Hop: node="),
            "{} did not get call {call_id} over an internal hop: {trace}",
            holder.udp
        );
    }

    // A user added through node B's API registers on node A.
    let (status, body) = support::http_request(
        b.http.expect("http"),
        "POST",
        "/api/users",
        Some(r#"{"ext":"1003","password":"pw-1003"}"#),
        None,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    // Each node reloads the subscribers within a second of a change (off the SIP path).
    std::thread::sleep(Duration::from_millis(1_500));
    let p1003 = phone("1003", "pw-1003", &a, 600);
    wait_for_registrations(&b, &["1003"]);

    // Node A dies. B keeps serving 1002's binding, and after A's announcement lapses it reaches
    // 1001 (UDP, a public contact) directly instead of through A.
    a.child.kill().expect("SIGKILL node A");
    let _ = a.child.wait();
    std::thread::sleep(server::cluster::ANNOUNCE_TTL + Duration::from_millis(1_500));
    let listed = wait_for_registrations(&b, &["1001", "1002", "1003"]);
    assert!(listed.contains("\"user\":\"1002\""), "{listed}");
    call(&mut p1002, &mut p1001, Duration::from_secs(2));
    let after = records(&db, "1002", "1001", 2);
    assert_eq!(after.len(), 2, "{after:#?}");
    after.iter().for_each(assert_media_both_ways);

    // Still one record for each of the first two calls: the delivering node wrote none.
    assert_eq!(records(&db, "1001", "1002", 1).len(), 1);

    drop(p1003);
    p1001.stop();
    p1002.stop();
    drop(keys);
}
