//! Location bindings on the embedded store: replace semantics, expiry, persistence, and group
//! commit (many concurrent writes, few transactions, every caller told only once durable).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use store::{Binding, GroupCommitter, LocationStore, SqliteStore, Write};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("switchboard-loc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn binding(aor: &str, contact: &str, expires_at: u64) -> Binding {
    Binding {
        aor: aor.into(),
        contact: contact.into(),
        expires_at,
        q: 1000,
        call_id: "c1".into(),
        cseq: 1,
        source: "udp:198.51.100.7:5060".into(),
        conn: 0,
        user_agent: Some("test".into()),
        behind_nat: false,
        node: String::new(),
    }
}

#[test]
fn replace_load_and_purge() {
    let dir = Dir::new("basic");
    let s = SqliteStore::open_in(&dir.0).expect("open");
    s.replace(
        "1000@example.com",
        &[
            binding("1000@example.com", "sip:1000@10.0.0.1", 200),
            binding("1000@example.com", "sip:1000@10.0.0.2", 100),
        ],
    )
    .expect("replace");
    s.replace(
        "1001@example.com",
        &[binding("1001@example.com", "sip:1001@10.0.0.3", 50)],
    )
    .expect("replace");
    assert_eq!(s.load(0).expect("load").len(), 3);
    assert_eq!(s.load(99).expect("load").len(), 2, "expired bindings are not loaded");
    s.replace(
        "1000@example.com",
        &[binding("1000@example.com", "sip:1000@10.0.0.9", 300)],
    )
    .expect("replace");
    let contacts: Vec<_> = s.load(0).expect("load").into_iter().map(|b| b.contact).collect();
    assert_eq!(
        contacts,
        ["sip:1000@10.0.0.9", "sip:1001@10.0.0.3"],
        "replace drops the old set"
    );
    s.replace("1001@example.com", &[]).expect("remove all");
    assert_eq!(s.load(0).expect("load").len(), 1);
    assert_eq!(s.purge_expired(1000).expect("purge"), 1);
    assert!(s.load(0).expect("load").is_empty());
}

#[test]
fn group_commit_batches_and_everything_is_durable() {
    let dir = Dir::new("group");
    let s = SqliteStore::open_in(&dir.0).expect("open");
    let committer = GroupCommitter::start(s.batch_writer().expect("writer"), Duration::from_millis(2), 512);
    let (tx, rx) = mpsc::channel();
    let n = 2_000;
    std::thread::scope(|scope| {
        for t in 0..4 {
            let committer = &committer;
            let tx = tx.clone();
            scope.spawn(move || {
                for i in (t..n).step_by(4) {
                    let aor = format!("{i}@example.com");
                    let b = binding(&aor, &format!("sip:{i}@10.0.0.1"), 10_000);
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
    assert!(results.iter().all(Result::is_ok));
    let commits = committer.stop();
    eprintln!("group commit: {n} writes in {commits} transactions");
    assert!(
        commits < n as u64 / 4,
        "{commits} transactions for {n} writes: batching works"
    );
    drop(s);
    let reopened = SqliteStore::open_in(&dir.0).expect("reopen");
    assert_eq!(
        reopened.load(0).expect("load").len(),
        n,
        "every acknowledged write is on disk"
    );
}
