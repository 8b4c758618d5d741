//! The Redis location backend and cluster state against a real server (`services::redis_url`):
//! round trips, expiry as key TTL, group commit, the change feed between two nodes, node
//! announcements, the shared secret, and connections that fail or are cut. Every test works
//! under a prefix of its own and deletes its keys at the end.

mod redis_support;
mod services;

use std::io::{Read, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use redis_support::{Keys, binding, now, raw, wait_subscribed};
use store::{Binding, Cluster, GroupCommitter, LocationChange, LocationStore, NodeInfo, RedisLocations, Write};

#[test]
fn replace_and_load_round_trip_every_field() {
    let Some(url) = services::redis_url("replace_and_load_round_trip_every_field") else {
        return;
    };
    let keys = Keys::new(&url);
    let s = keys.connect("n1");
    let t = now();
    let a1 = Binding {
        aor: "1000@example.com".into(),
        contact: "<sip:1000@10.0.0.1:5060;transport=tcp>;+sip.instance=\"<urn:uuid:1>\"".into(),
        expires_at: t + 3600,
        q: 500,
        call_id: "a84b4c76e66710@pc33".into(),
        cseq: 314_159,
        source: "tcp:198.51.100.7:49152".into(),
        conn: 42,
        user_agent: Some("Zoiper \"5\" é".into()),
        behind_nat: true,
        node: "n1".into(),
    };
    let a2 = Binding {
        contact: "sip:1000@10.0.0.2".into(),
        q: 1000,
        node: "n2".into(),
        ..binding("1000@example.com", "", t + 60)
    };
    let b1 = binding("1001@example.com", "sip:1001@10.0.0.3", t + 120);
    s.replace("1000@example.com", &[a1.clone(), a2.clone()])
        .expect("replace");
    s.replace("1001@example.com", std::slice::from_ref(&b1))
        .expect("replace");

    // As the embedded store: by AOR, best q first.
    assert_eq!(s.load(t).expect("load"), [a2.clone(), a1.clone(), b1.clone()]);
    assert_eq!(s.bindings_of("1000@example.com", t).expect("bindings_of"), [a2, a1]);
    assert!(s.bindings_of("nobody@example.com", t).expect("bindings_of").is_empty());

    // Another instance (another node) reads the same.
    let other = keys.connect("n2");
    assert_eq!(other.load(t).expect("load").len(), 3);

    // Replace drops the old set.
    let a3 = binding("1000@example.com", "sip:1000@10.0.0.9", t + 300);
    s.replace("1000@example.com", std::slice::from_ref(&a3))
        .expect("replace");
    assert_eq!(s.load(t).expect("load"), [a3, b1]);
    assert_eq!(
        s.purge_expired(t + 10_000).expect("purge"),
        0,
        "Redis expires keys itself"
    );
}

#[test]
fn an_empty_set_removes_the_key() {
    let Some(url) = services::redis_url("an_empty_set_removes_the_key") else {
        return;
    };
    let keys = Keys::new(&url);
    let s = keys.connect("n1");
    let t = now();
    s.replace(
        "1000@example.com",
        &[binding("1000@example.com", "sip:1000@10.0.0.1", t + 60)],
    )
    .expect("replace");
    s.replace(
        "1001@example.com",
        &[binding("1001@example.com", "sip:1001@10.0.0.1", t + 60)],
    )
    .expect("replace");
    assert_eq!(
        keys.keys(),
        [
            format!("{}loc:1000@example.com", keys.prefix),
            format!("{}loc:1001@example.com", keys.prefix)
        ]
    );
    s.replace("1000@example.com", &[]).expect("remove");
    // A set whose every binding has expired is removed as well.
    s.replace(
        "1001@example.com",
        &[binding("1001@example.com", "sip:1001@10.0.0.1", t - 1)],
    )
    .expect("remove expired");
    assert!(keys.keys().is_empty(), "left: {:?}", keys.keys());
    assert!(s.load(0).expect("load").is_empty());
}

#[test]
fn the_key_expires_with_its_latest_binding() {
    let Some(url) = services::redis_url("the_key_expires_with_its_latest_binding") else {
        return;
    };
    let keys = Keys::new(&url);
    let s = keys.connect("n1");
    let t = now();
    let aor = "1000@example.com";
    s.replace(
        aor,
        &[
            binding(aor, "sip:1000@10.0.0.1", t + 100),
            binding(aor, "sip:1000@10.0.0.2", t + 300),
            binding(aor, "sip:1000@10.0.0.3", t + 200),
        ],
    )
    .expect("replace");
    let key = format!("{}loc:{aor}", keys.prefix);
    let mut conn = raw(&url);
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).expect("TTL");
    assert!((298..=300).contains(&ttl), "TTL {ttl}, expected about 300");
    let expire_at: i64 = redis::cmd("EXPIRETIME").arg(&key).query(&mut conn).expect("EXPIRETIME");
    assert_eq!(expire_at, (t + 300) as i64, "EXAT the latest expires_at");
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).expect("PTTL");
    assert!(pttl > 297_000 && pttl <= 300_000, "PTTL {pttl}");

    // A key that expires is gone for the readers.
    s.replace(aor, &[binding(aor, "sip:1000@10.0.0.1", now() + 1)])
        .expect("replace");
    std::thread::sleep(Duration::from_millis(2_100));
    assert!(keys.keys().is_empty(), "Redis expired the key");
    assert!(s.load(0).expect("load").is_empty());
}

#[test]
fn expired_bindings_are_not_loaded() {
    let Some(url) = services::redis_url("expired_bindings_are_not_loaded") else {
        return;
    };
    let keys = Keys::new(&url);
    let s = keys.connect("n1");
    let t = now();
    let aor = "1000@example.com";
    let live = binding(aor, "sip:1000@10.0.0.1", t + 100);
    let dead = binding(aor, "sip:1000@10.0.0.2", t - 10);
    s.replace(aor, &[dead, live.clone()]).expect("replace");
    assert_eq!(s.load(t).expect("load"), std::slice::from_ref(&live));
    assert_eq!(s.bindings_of(aor, t).expect("bindings_of"), std::slice::from_ref(&live));
    assert!(
        s.load(t + 100).expect("load").is_empty(),
        "expired at its own expires_at"
    );
    assert!(s.bindings_of(aor, t + 100).expect("bindings_of").is_empty());
}

#[test]
fn a_glob_in_the_prefix_matches_only_itself() {
    let Some(url) = services::redis_url("a_glob_in_the_prefix_matches_only_itself") else {
        return;
    };
    // Unescaped, the pattern for `a*[b]?\:` would match the keys of `aZZbQ:` too.
    let tail = "a*[b]?\\:";
    let globby = Keys::with_tail(&url, tail);
    let plain = Keys {
        url: url.clone(),
        prefix: format!("{}aZZbQ:", globby.prefix.strip_suffix(tail).expect("tail")),
    };
    let t = now();
    globby
        .connect("n1")
        .replace("1@x", &[binding("1@x", "sip:1@h", t + 60)])
        .expect("replace");
    plain
        .connect("n1")
        .replace("2@x", &[binding("2@x", "sip:2@h", t + 60)])
        .expect("replace");
    let loaded = globby.connect("n1").load(t).expect("load");
    assert_eq!(loaded.iter().map(|b| b.aor.as_str()).collect::<Vec<_>>(), ["1@x"]);
}

#[test]
fn group_commit_completes_every_write_once_stored() {
    let Some(url) = services::redis_url("group_commit_completes_every_write_once_stored") else {
        return;
    };
    let keys = Keys::new(&url);
    let s = keys.connect("n1");
    let t = now();
    let committer = GroupCommitter::start(s.batch_writer().expect("writer"), Duration::from_millis(2), 256);
    let (tx, rx) = mpsc::channel();
    let n = 1_000;
    std::thread::scope(|scope| {
        for th in 0..4 {
            let committer = &committer;
            let tx = tx.clone();
            scope.spawn(move || {
                for i in (th..n).step_by(4) {
                    let aor = format!("{i}@example.com");
                    let b = binding(&aor, &format!("sip:{i}@10.0.0.1"), t + 600);
                    let tx = tx.clone();
                    committer.submit(Write {
                        aor,
                        bindings: vec![b],
                        done: Box::new(move |r| tx.send(r).expect("report")),
                    });
                }
            });
        }
    });
    drop(tx);
    let results: Vec<_> = rx.iter().collect();
    assert_eq!(results.len(), n);
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let commits = committer.stop();
    eprintln!("redis group commit: {n} writes in {commits} transactions");
    assert!(commits < n as u64, "{commits} transactions for {n} writes");
    let loaded = keys.connect("n2").load(t).expect("load");
    assert_eq!(loaded.len(), n, "every acknowledged write is stored");
    assert!(
        loaded
            .iter()
            .any(|b| b.aor == "999@example.com" && b.contact == "sip:999@10.0.0.1")
    );
}

/// A change as the feed delivers it: the writer, the AOR and its set as written.
fn change(node: &str, aor: &str, bindings: Vec<Binding>) -> LocationChange {
    LocationChange {
        node: node.into(),
        aor: aor.into(),
        bindings: Some(bindings),
    }
}

#[test]
fn watch_sees_the_changes_of_every_node_and_stops_promptly() {
    let Some(url) = services::redis_url("watch_sees_the_changes_of_every_node_and_stops_promptly") else {
        return;
    };
    let keys = Keys::new(&url);
    let a = Arc::new(keys.connect("node-a"));
    let b = keys.connect("node-b");
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let watcher = {
        let (a, stop) = (a.clone(), stop.clone());
        std::thread::spawn(move || a.watch(&stop, &mut |c| tx.send(c).expect("report")))
    };
    wait_subscribed(&keys, 1);

    let t = now();
    b.replace("1@x", &[binding("1@x", "sip:1@h", t + 60)]).expect("replace");
    let mut writer = b.batch_writer().expect("writer");
    writer
        .write_batch(&[
            ("2@x".into(), vec![binding("2@x", "sip:2@h", t + 60)]),
            ("3@x".into(), vec![]),
            ("2@x".into(), vec![binding("2@x", "sip:2@h2", t + 60)]),
        ])
        .expect("batch");
    a.replace("4@x", &[]).expect("own change");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(rx.recv_timeout(Duration::from_secs(3)).expect("change"));
    }
    assert_eq!(
        seen,
        [
            change("node-b", "1@x", vec![binding("1@x", "sip:1@h", t + 60)]),
            change("node-b", "3@x", vec![]),
            change("node-b", "2@x", vec![binding("2@x", "sip:2@h2", t + 60)]),
            change("node-a", "4@x", vec![]),
        ],
        "one change per AOR of a batch, with the set as written"
    );
    assert_eq!(
        b.bindings_of("2@x", t).expect("bindings_of")[0].contact,
        "sip:2@h2",
        "the later write of an AOR in a batch wins"
    );

    let asked = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let result = watcher.join().expect("watch thread");
    assert!(result.is_ok(), "{result:?}");
    assert!(
        asked.elapsed() < Duration::from_millis(900),
        "stopped after {:?}",
        asked.elapsed()
    );
    assert!(rx.try_recv().is_err(), "nothing more");
}

#[test]
fn announcements_live_for_their_ttl_and_withdraw_removes() {
    let Some(url) = services::redis_url("announcements_live_for_their_ttl_and_withdraw_removes") else {
        return;
    };
    let keys = Keys::new(&url);
    let s = keys.connect("a");
    let a = NodeInfo {
        id: "a".into(),
        sip: "udp:10.0.0.1:5070".into(),
    };
    let b = NodeInfo {
        id: "b".into(),
        sip: "udp:10.0.0.2:5070".into(),
    };
    assert!(s.nodes().expect("nodes").is_empty());
    s.announce(&b, Duration::from_secs(60)).expect("announce b");
    s.announce(&a, Duration::from_secs(1)).expect("announce a");
    assert_eq!(s.nodes().expect("nodes"), [a.clone(), b.clone()]);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(
        s.nodes().expect("nodes"),
        std::slice::from_ref(&b),
        "a stopped refreshing"
    );
    s.announce(&a, Duration::from_secs(60)).expect("announce a again");
    assert_eq!(keys.connect("b").nodes().expect("nodes"), [a.clone(), b.clone()]);
    s.withdraw("a").expect("withdraw");
    assert_eq!(s.nodes().expect("nodes"), [b]);
}

#[test]
fn the_first_secret_is_everyones() {
    let Some(url) = services::redis_url("the_first_secret_is_everyones") else {
        return;
    };
    let keys = Keys::new(&url);
    let first = [0xa5; 32];
    let second = std::array::from_fn(|i| i as u8);
    assert_eq!(keys.connect("a").shared_secret(&first).expect("secret"), first);
    assert_eq!(keys.connect("b").shared_secret(&second).expect("secret"), first);
    assert_eq!(
        keys.connect("a").shared_secret(&second).expect("secret"),
        first,
        "again"
    );
    let stored: String = redis::cmd("GET")
        .arg(format!("{}secret", keys.prefix))
        .query(&mut raw(&url))
        .expect("GET");
    assert_eq!(stored, "a5".repeat(32));
}

#[test]
fn connecting_to_a_closed_port_fails_quickly_without_the_password() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let started = Instant::now();
    let err = RedisLocations::connect(&format!("redis://sb:hunter2@127.0.0.1:{port}/0"), "sbtest:", "a")
        .err()
        .expect("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(matches!(err, store::StoreError::Backend(_)), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

/// A TCP relay to Redis whose connections the test can cut, as a network failure would.
struct Relay {
    port: u16,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(redis_url: &str) -> Relay {
        let authority = redis_url
            .split_once("://")
            .map_or("", |(_, r)| r.split(['/', '?']).next().unwrap_or_default());
        let upstream = authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let streams = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let mut list = streams.lock().expect("relay list");
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().expect("clone"), to.try_clone().expect("clone"));
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                list.extend([client, server]);
            }
        });
        Relay { port, open }
    }

    /// The URL of Redis through the relay.
    fn url(&self, redis_url: &str) -> String {
        let (scheme, rest) = redis_url.split_once("://").expect("a URL");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let userinfo = authority
            .rsplit_once('@')
            .map_or(String::new(), |(u, _)| format!("{u}@"));
        format!("{scheme}://{userinfo}127.0.0.1:{}{path}", self.port)
    }

    /// Closes every connection relayed so far.
    fn cut(&self) {
        for s in self.open.lock().expect("relay list").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn a_cut_connection_ends_watch_and_the_next_call_reconnects() {
    let Some(url) = services::redis_url("a_cut_connection_ends_watch_and_the_next_call_reconnects") else {
        return;
    };
    let keys = Keys::new(&url);
    let relay = Relay::start(&url);
    let s = Arc::new(RedisLocations::connect(&relay.url(&url), &keys.prefix, "n1").expect("connect through the relay"));
    let t = now();
    s.replace("1@x", &[binding("1@x", "sip:1@h", t + 60)]).expect("replace");
    let mut writer = s.batch_writer().expect("writer");
    writer
        .write_batch(&[("2@x".into(), vec![binding("2@x", "sip:2@h", t + 60)])])
        .expect("batch");

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || s.watch(&stop, &mut |_| {}))
    };
    wait_subscribed(&keys, 1);

    let cut = Instant::now();
    relay.cut();
    let result = watcher.join().expect("watch thread");
    assert!(result.is_err(), "watch reports the failure");
    assert!(cut.elapsed() < Duration::from_secs(2), "after {:?}", cut.elapsed());

    // The idle shared connection and the batch writer's are gone too: each call reconnects.
    assert_eq!(s.bindings_of("1@x", t).expect("bindings_of after the cut").len(), 1);
    writer
        .write_batch(&[("3@x".into(), vec![binding("3@x", "sip:3@h", t + 60)])])
        .expect("batch after the cut");
    assert_eq!(s.load(t).expect("load").len(), 3);
    stop.store(true, Ordering::Relaxed);
}
