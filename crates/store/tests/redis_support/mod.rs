//! What the Redis tests share: a key prefix of a test's own (its keys deleted when it goes), a
//! plain connection to look at what the store wrote, a binding to write, and a wait for the
//! change feed's subscribers.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use store::{Binding, RedisLocations};

/// A prefix of the test's own; its keys are deleted when it goes.
pub struct Keys {
    pub url: String,
    pub prefix: String,
}

impl Keys {
    pub fn new(url: &str) -> Keys {
        Keys::with_tail(url, "")
    }

    pub fn with_tail(url: &str, tail: &str) -> Keys {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Keys {
            url: url.to_owned(),
            prefix: format!("sbtest:{}:{n}:{tail}", std::process::id()),
        }
    }

    pub fn connect(&self, node: &str) -> RedisLocations {
        RedisLocations::connect(&self.url, &self.prefix, node).expect("connect")
    }

    /// The prefix as a `SCAN MATCH` pattern for every key under it.
    pub fn pattern(&self) -> String {
        let mut p: String = self
            .prefix
            .chars()
            .flat_map(|c| {
                let escape = matches!(c, '*' | '?' | '[' | ']' | '\\').then_some('\\');
                escape.into_iter().chain([c])
            })
            .collect();
        p.push('*');
        p
    }

    pub fn keys(&self) -> Vec<String> {
        let mut conn = raw(&self.url);
        let mut keys: Vec<String> = redis::cmd("KEYS").arg(self.pattern()).query(&mut conn).expect("KEYS");
        keys.sort();
        keys
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys).exec(&mut raw(&self.url));
        }
    }
}

/// A plain connection, to look at what the store wrote.
pub fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .expect("raw connection")
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn binding(aor: &str, contact: &str, expires_at: u64) -> Binding {
    Binding {
        aor: aor.into(),
        contact: contact.into(),
        expires_at,
        q: 1000,
        call_id: "c1".into(),
        cseq: 1,
        source: "udp:198.51.100.7:5060".into(),
        conn: 0,
        user_agent: None,
        behind_nat: false,
        node: String::new(),
    }
}

/// Waits until `watchers` connections listen on the prefix's change channel.
pub fn wait_subscribed(keys: &Keys, watchers: i64) {
    let channel = format!("{}loc-changes", keys.prefix);
    let mut conn = raw(&keys.url);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query(&mut conn)
            .expect("NUMSUB");
        if count == watchers {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} watchers on {channel}, expected {watchers}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
