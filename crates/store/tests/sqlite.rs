//! The embedded subscriber store on a real file: CRUD, persistence across reopen, migrations run
//! once, a second handle (the CLI beside a running server) sees changes at once, and no password
//! ever reaches the file.

use std::path::PathBuf;

use store::{SqliteStore, StoreError, Subscriber, SubscriberStore};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("switchboard-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn add_get_update_remove_list() {
    let dir = Dir::new("crud");
    let store = SqliteStore::open_in(&dir.0.join("nested")).expect("created with its directory");
    let a = Subscriber::new("1000", "example.com", "pw1000").expect("valid");
    store.add(&a).expect("add");
    assert_eq!(store.add(&a), Err(StoreError::Exists));
    assert_eq!(store.get("1000", "EXAMPLE.com").expect("get"), Some(a.clone()));
    assert_eq!(store.get("1001", "example.com").expect("get"), None);
    let changed = Subscriber::new("1000", "example.com", "new").expect("valid");
    store.update(&changed).expect("update");
    assert_eq!(
        store.get("1000", "example.com").expect("get").map(|s| s.ha1_md5),
        Some(changed.ha1_md5.clone())
    );
    assert_eq!(
        store.update(&Subscriber::new("9", "example.com", "x").expect("valid")),
        Err(StoreError::NotFound)
    );
    store
        .add(&Subscriber::new("1001", "example.com", "pw").expect("valid"))
        .expect("add");
    store
        .add(&Subscriber::new("1000", "other.org", "pw").expect("valid"))
        .expect("same user, other domain");
    let all: Vec<_> = store
        .list(None)
        .expect("list")
        .into_iter()
        .map(|s| format!("{}@{}", s.user, s.domain))
        .collect();
    assert_eq!(all, ["1000@example.com", "1001@example.com", "1000@other.org"]);
    assert_eq!(store.list(Some("other.org")).expect("list").len(), 1);
    store.remove("1000", "example.com").expect("remove");
    assert_eq!(store.remove("1000", "example.com"), Err(StoreError::NotFound));
    assert_eq!(store.list(Some("example.com")).expect("list").len(), 1);
}

#[test]
fn survives_reopen_and_migrates_once() {
    let dir = Dir::new("reopen");
    {
        let store = SqliteStore::open_in(&dir.0).expect("open");
        store
            .add(&Subscriber::new("1000", "example.com", "pw").expect("valid"))
            .expect("add");
        assert_eq!(store.schema_version().expect("version"), SqliteStore::SCHEMA_VERSION);
    }
    let store = SqliteStore::open_in(&dir.0).expect("reopen");
    assert_eq!(store.schema_version().expect("version"), SqliteStore::SCHEMA_VERSION);
    assert!(store.get("1000", "example.com").expect("get").is_some());
}

#[test]
fn a_second_handle_sees_changes_at_once() {
    let dir = Dir::new("two");
    let server = SqliteStore::open_in(&dir.0).expect("open");
    let cli = SqliteStore::open_in(&dir.0).expect("open again");
    cli.add(&Subscriber::new("1000", "example.com", "pw").expect("valid"))
        .expect("add");
    assert!(server.get("1000", "example.com").expect("get").is_some());
    cli.remove("1000", "example.com").expect("remove");
    assert!(server.get("1000", "example.com").expect("get").is_none());
}

#[test]
fn no_password_in_the_file() {
    let dir = Dir::new("secret");
    let store = SqliteStore::open_in(&dir.0).expect("open");
    let password = "correct-horse-battery-staple";
    store
        .add(&Subscriber::new("1000", "example.com", password).expect("valid"))
        .expect("add");
    drop(store);
    for entry in std::fs::read_dir(&dir.0).expect("dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(
            !bytes.windows(password.len()).any(|w| w == password.as_bytes()),
            "password found on disk"
        );
    }
}

#[test]
fn call_records_round_trip_in_time_order() {
    use store::{CallRecord, Disposition, LegMedia, RecordStore, RecordWriter};
    let dir = Dir::new("records");
    let store = SqliteStore::open_in(&dir.0).expect("store");
    let record = |id: &str, ended: u64, disposition| CallRecord {
        call_id: id.into(),
        caller: "1000".into(),
        callee: "1001".into(),
        started_ms: ended - 5_000,
        answered_ms: (disposition == Disposition::Answered).then_some(ended - 4_000),
        ended_ms: ended,
        disposition,
        status: if disposition == Disposition::Answered { 200 } else { 486 },
        hangup: (disposition == Disposition::Answered).then(|| "callee".into()),
        answered_by: None,
        caller_media: LegMedia {
            codec: Some("PCMU".into()),
            packets: 200,
            bytes: 34_400,
            loss_permille: Some(3),
            jitter_us: Some(1_250),
        },
        callee_media: LegMedia::default(),
    };
    let writer = RecordWriter::start(SqliteStore::open_in(&dir.0).expect("second handle"));
    writer.submit(record("b", 2_000_000, Disposition::Busy));
    writer.submit(record("a", 1_000_000, Disposition::Answered));
    writer.stop();
    let all = store.list_records(0, u64::MAX, 10).expect("list");
    assert_eq!(all.iter().map(|r| r.call_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(all[0], record("a", 1_000_000, Disposition::Answered));
    assert_eq!(all[0].duration_secs(), 4);
    assert_eq!(store.list_records(1_500_000, u64::MAX, 10).expect("since").len(), 1);
    assert_eq!(store.list_records(0, u64::MAX, 1).expect("limit").len(), 1);
}

#[test]
fn the_subscriber_generation_moves_only_with_subscribers() {
    use store::{Binding, LocationStore};
    let dir = Dir::new("generation");
    let store = SqliteStore::open_in(&dir.0).expect("store");
    let cli = SqliteStore::open_in(&dir.0).expect("a second process's handle");
    let g0 = store.generation().expect("generation");
    cli.add(&Subscriber::new("1000", "example.com", "pw").expect("valid"))
        .expect("add");
    let g1 = store.generation().expect("generation");
    assert_ne!(g0, g1, "an add elsewhere is seen");
    let binding = Binding {
        aor: "1000@example.com".into(),
        contact: "sip:1000@192.0.2.1".into(),
        expires_at: u64::MAX / 2,
        q: 1000,
        call_id: "c".into(),
        cseq: 1,
        source: "udp:192.0.2.1:5060".into(),
        conn: 0,
        user_agent: None,
        behind_nat: false,
        node: String::new(),
    };
    cli.replace("1000@example.com", &[binding]).expect("binding");
    assert_eq!(
        store.generation().expect("generation"),
        g1,
        "registrations do not count"
    );
    cli.update(&Subscriber::new("1000", "example.com", "pw2").expect("valid"))
        .expect("passwd");
    let g2 = store.generation().expect("generation");
    cli.remove("1000", "example.com").expect("remove");
    assert!(g2 != g1 && store.generation().expect("generation") != g2);
}

#[test]
fn put_many_adds_updates_and_leaves_unchanged_in_one_go() {
    let dir = Dir::new("put-many");
    let store = SqliteStore::open_in(&dir.0).expect("store");
    let sub = |u: &str, pw: &str| Subscriber::new(u, "example.com", pw).expect("valid");
    store.add(&sub("1001", "old")).expect("add");
    store.add(&sub("1002", "same")).expect("add");
    let before = store.generation().expect("generation");
    let done = store
        .put_many(&[sub("1001", "new"), sub("1002", "same"), sub("1003", "fresh")])
        .expect("put");
    assert_eq!(done, [store::Put::Updated, store::Put::Unchanged, store::Put::Added]);
    assert_eq!(store.get("1001", "example.com").expect("get"), Some(sub("1001", "new")));
    assert_eq!(
        store.get("1003", "example.com").expect("get"),
        Some(sub("1003", "fresh"))
    );
    assert!(
        store.generation().expect("generation") > before,
        "a running server notices"
    );
}

#[test]
fn tls_only_is_kept_and_changed_only_on_purpose() {
    let dir = Dir::new("tls-only");
    let store = SqliteStore::open_in(&dir.0).expect("store");
    let sub = |u: &str, pw: &str| Subscriber::new(u, "example.com", pw).expect("valid");
    store.add(&sub("1000", "pw").with_tls_only(true)).expect("add");
    store.add(&sub("1001", "pw")).expect("add");
    let get = |u: &str| store.get(u, "example.com").expect("get").expect("there");
    assert!(get("1000").tls_only && !get("1001").tls_only);
    // A password change or an import leaves the flag alone.
    store.update(&sub("1000", "new")).expect("passwd");
    assert!(get("1000").tls_only && get("1000").same_credentials(&sub("1000", "new")));
    let done = store
        .put_many(&[sub("1000", "new"), sub("1001", "other")])
        .expect("import");
    assert_eq!(done, [store::Put::Unchanged, store::Put::Updated]);
    assert!(get("1000").tls_only && !get("1001").tls_only);
    // Only set_tls_only changes it, and a running server notices.
    let before = store.generation().expect("generation");
    store.set_tls_only("1001", "EXAMPLE.com", true).expect("set");
    store.set_tls_only("1000", "example.com", false).expect("clear");
    assert!(!get("1000").tls_only && get("1001").tls_only);
    assert!(store.generation().expect("generation") > before);
    assert_eq!(store.set_tls_only("9", "example.com", true), Err(StoreError::NotFound));
    let listed: Vec<(String, bool)> = store
        .list(None)
        .expect("list")
        .into_iter()
        .map(|s| (s.user, s.tls_only))
        .collect();
    assert_eq!(listed, [("1000".to_owned(), false), ("1001".to_owned(), true)]);
}

#[test]
fn allowed_networks_round_trip_and_survive_a_password_change() {
    let dir = Dir::new("acl");
    let store = SqliteStore::open_in(&dir.0).expect("store");
    let nets = vec!["198.51.100.0/24".to_owned(), "2001:db8::/32".to_owned()];
    let s = Subscriber::new("1001", "example.com", "pw")
        .expect("valid")
        .with_allowed_networks(nets.clone());
    store.add(&s).expect("add");
    assert_eq!(
        store
            .get("1001", "example.com")
            .expect("get")
            .expect("there")
            .allowed_networks,
        nets
    );
    store
        .update(&Subscriber::new("1001", "example.com", "new").expect("valid"))
        .expect("password");
    assert_eq!(
        store
            .get("1001", "example.com")
            .expect("get")
            .expect("there")
            .allowed_networks,
        nets
    );
    store.set_allowed_networks("1001", "example.com", &[]).expect("clear");
    assert!(
        store
            .get("1001", "example.com")
            .expect("get")
            .expect("there")
            .allowed_networks
            .is_empty()
    );
    assert!(store.set_allowed_networks("nobody", "example.com", &[]).is_err());
}
