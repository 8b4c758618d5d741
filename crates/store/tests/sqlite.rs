//! The embedded subscriber store on a real file: CRUD, persistence across reopen, migrations run
//! once, a second handle (the CLI beside a running server) sees changes at once, and no password
//! ever reaches the file. The checks every backend must pass are in `conformance` (PostgreSQL
//! runs the same ones).

mod conformance;

use std::path::PathBuf;
use std::sync::Arc;

use store::{RecordStore, SqliteStore, Subscriber, SubscriberStore};

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
    conformance::crud_list_order_and_domain_case(&store);
}

#[test]
fn exists_and_not_found() {
    let dir = Dir::new("exists");
    conformance::exists_and_not_found(&SqliteStore::open_in(&dir.0).expect("store"));
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
    conformance::a_second_handle_sees_changes_at_once(&server, &cli);
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
    let dir = Dir::new("records");
    let store = SqliteStore::open_in(&dir.0).expect("store");
    let second: Arc<dyn RecordStore> = Arc::new(SqliteStore::open_in(&dir.0).expect("second handle"));
    conformance::call_records_round_trip_in_time_order(&store, second);
}

#[test]
fn pages_newest_first_without_repeats_while_records_arrive() {
    let dir = Dir::new("pages");
    conformance::pages_newest_first_without_repeats_while_records_arrive(&SqliteStore::open_in(&dir.0).expect("store"));
}

#[test]
fn the_subscriber_generation_moves_only_with_subscribers() {
    use store::{Binding, LocationStore};
    let dir = Dir::new("generation");
    let store = SqliteStore::open_in(&dir.0).expect("store");
    let cli = SqliteStore::open_in(&dir.0).expect("a second process's handle");
    conformance::generation_moves_with_every_change(&cli, &store);
    let g = store.generation().expect("generation");
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
    assert_eq!(store.generation().expect("generation"), g, "registrations do not count");
}

#[test]
fn put_many_adds_updates_and_leaves_unchanged_in_one_go() {
    let dir = Dir::new("put-many");
    conformance::put_many_adds_updates_and_leaves_unchanged(&SqliteStore::open_in(&dir.0).expect("store"));
}

#[test]
fn tls_only_is_kept_and_changed_only_on_purpose() {
    let dir = Dir::new("tls-only");
    conformance::tls_only_is_kept_and_changed_only_on_purpose(&SqliteStore::open_in(&dir.0).expect("store"));
}

#[test]
fn allowed_networks_round_trip_and_survive_a_password_change() {
    let dir = Dir::new("acl");
    conformance::allowed_networks_round_trip(&SqliteStore::open_in(&dir.0).expect("store"));
}
