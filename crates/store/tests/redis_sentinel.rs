//! The Redis location backend through Redis Sentinel (`redis+sentinel://`): a sentinel started
//! here on loopback from the `redis-server` binary, monitoring the test Redis
//! (`services::redis_url`) as `sbtest`. Every test works under a prefix of its own and deletes
//! its keys at the end. Without `redis-server` on the path a test prints SKIP (fails in CI).

mod redis_support;
mod services;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use redis_support::{Keys, binding, now, raw, wait_subscribed};
use store::{Binding, Cluster, LocationChange, LocationStore, RedisLocations};

const MASTER: &str = "sbtest";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A sentinel process and its directory, both gone when it is dropped.
struct Sentinel {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `host:port` of a `redis://` URL.
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let hp = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = hp.rsplit_once(':').unwrap_or((hp, "6379"));
    (host.to_owned(), port.parse().expect("port"))
}

/// The `user:password@` of a `redis://` URL, or empty.
fn userinfo(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(String::new(), |(u, _)| format!("{u}@"))
}

/// Starts a sentinel monitoring the Redis of `redis_url` as [`MASTER`], and waits until it names
/// it; `None` (after SKIP) when there is no `redis-server` binary.
fn start_sentinel(test: &str, redis_url: &str) -> Option<Sentinel> {
    if Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "{test}: no redis-server binary to run a sentinel (CI=true: fails)");
        eprintln!("SKIP: {test}: no redis-server binary on the path to run a sentinel");
        return None;
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sbtest-sentinel-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("sentinel dir");
    let port = free_port();
    let (host, redis_port) = host_port(redis_url);
    let mut conf = format!(
        "port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER} {host} {redis_port} 1\ndir {}\n",
        dir.display()
    );
    if let Some((_, password)) = userinfo(redis_url).trim_end_matches('@').split_once(':') {
        conf.push_str(&format!("sentinel auth-pass {MASTER} {password}\n"));
    }
    let conf_path = dir.join("sentinel.conf");
    std::fs::write(&conf_path, conf).expect("sentinel.conf");
    let child = Command::new("redis-server")
        .arg(&conf_path)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server --sentinel");
    let sentinel = Sentinel { child, dir, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let named: Option<(String, u16)> = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
            .and_then(|mut c| {
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(MASTER)
                    .query(&mut c)
            })
            .ok()
            .flatten();
        if named.is_some() {
            return Some(sentinel);
        }
        assert!(Instant::now() < deadline, "the sentinel on port {port} did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn locations_through_a_sentinel_write_read_and_watch() {
    let test = "locations_through_a_sentinel_write_read_and_watch";
    let Some(redis_url) = services::redis_url(test) else {
        return;
    };
    let Some(sentinel) = start_sentinel(test, &redis_url) else {
        return;
    };
    let keys = Keys::with_tail(&redis_url, "sentinel:");
    // A sentinel that does not answer comes first: the next one is asked.
    let url = format!(
        "redis+sentinel://{}127.0.0.1:{},127.0.0.1:{}/{MASTER}",
        userinfo(&redis_url),
        free_port(),
        sentinel.port
    );
    let (locations, cluster) = store::open_locations(
        Some(&format!("{url}?prefix={}", keys.prefix)),
        std::path::Path::new("/nonexistent"),
        "node-a",
    )
    .expect("open through the sentinel");
    assert!(cluster.is_some(), "a shared store");
    let a = Arc::new(RedisLocations::connect(&url, &keys.prefix, "node-a").expect("connect"));
    let b = RedisLocations::connect(&url, &keys.prefix, "node-b").expect("connect");

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let watcher = {
        let (a, stop) = (a.clone(), stop.clone());
        std::thread::spawn(move || a.watch(&stop, &mut |c| tx.send(c).expect("report")))
    };
    wait_subscribed(&keys, 1);

    let t = now();
    let b1 = binding("1@x", "sip:1@h", t + 60);
    b.replace("1@x", std::slice::from_ref(&b1)).expect("replace");
    assert_eq!(locations.load(t).expect("load"), std::slice::from_ref(&b1));
    // The keys are on the master the sentinel names.
    let stored: Option<String> = redis::cmd("GET")
        .arg(format!("{}loc:1@x", keys.prefix))
        .query(&mut raw(&redis_url))
        .expect("GET");
    assert!(stored.is_some_and(|s| s.contains("sip:1@h")));

    let mut writer = b.batch_writer().expect("writer");
    writer
        .write_batch(&[
            ("2@x".into(), vec![binding("2@x", "sip:2@h", t + 60)]),
            ("1@x".into(), vec![]),
        ])
        .expect("batch");
    assert_eq!(
        a.load(t).expect("load"),
        [binding("2@x", "sip:2@h", t + 60)],
        "the batch replaced 1@x and added 2@x"
    );

    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(rx.recv_timeout(Duration::from_secs(3)).expect("change"));
    }
    let change = |aor: &str, bindings: Vec<Binding>| LocationChange {
        node: "node-b".into(),
        aor: aor.into(),
        bindings: Some(bindings),
    };
    assert_eq!(
        seen,
        [
            change("1@x", vec![b1]),
            change("2@x", vec![binding("2@x", "sip:2@h", t + 60)]),
            change("1@x", vec![]),
        ]
    );
    stop.store(true, Ordering::Relaxed);
    let result = watcher.join().expect("watch thread");
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn an_unknown_master_name_fails_clearly_without_the_password() {
    let test = "an_unknown_master_name_fails_clearly_without_the_password";
    let Some(redis_url) = services::redis_url(test) else {
        return;
    };
    let Some(sentinel) = start_sentinel(test, &redis_url) else {
        return;
    };
    let url = format!(
        "redis+sentinel://someone:s3cret-pw@127.0.0.1:{}/nosuchmaster/0",
        sentinel.port
    );
    let started = Instant::now();
    let err = RedisLocations::connect(&url, "sbtest:unused:", "a")
        .err()
        .expect("an unknown master fails")
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(!err.contains("s3cret-pw"), "{err}");
    assert!(err.contains("someone:***@"), "{err}");
    assert!(
        err.contains(&format!(
            "sentinel 127.0.0.1:{}: monitors no master named nosuchmaster",
            sentinel.port
        )),
        "{err}"
    );

    // A URL without a master name is refused before any connection.
    let err = RedisLocations::connect("redis+sentinel://127.0.0.1:1", "p:", "a")
        .err()
        .expect("no master name")
        .to_string();
    assert!(err.contains("no master name"), "{err}");
}
