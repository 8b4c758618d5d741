//! The PostgreSQL backend on a real server: the shared conformance checks (the same the embedded
//! store passes), plus what only a shared, networked store has to get right: several nodes on
//! one database, migrations racing, connections dropped by the server, secrets in messages.
//!
//! Each test creates a database of its own on the server `services::postgres_url` finds and
//! drops it when done, so tests run in parallel and leave nothing behind.

mod conformance;
mod services;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use store::{PgStore, RecordStore, StoreError, Subscriber, SubscriberStore};

/// A database for one test, dropped (connections and all) when the test ends, pass or fail.
struct TestDb {
    /// The server URL the test was given (its database is the one to create others from).
    server: String,
    name: String,
    url: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl TestDb {
    /// A fresh, empty database, or `None` (after a SKIP line) without a server.
    fn create(test: &str) -> Option<TestDb> {
        let server = services::postgres_url(test)?;
        let name = format!(
            "sb_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = Client::connect(&server, NoTls).expect("connect to the test server");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop a leftover");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        let url = with_database(&server, &name);
        Some(TestDb { server, name, url })
    }

    fn store(&self) -> PgStore {
        PgStore::connect(&self.url).expect("connect and migrate")
    }

    /// A plain connection to the test database, to look behind the store's back.
    fn psql(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("connect to the test database")
    }

    /// Server processes other than `psql`'s own connected to the test database.
    fn connections(&self, psql: &mut Client) -> i64 {
        psql.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&self.name],
        )
        .expect("pg_stat_activity")
        .get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&self.server, NoTls) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let query = rest[end..]
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{}/{name}{query}", &rest[..end])
}

macro_rules! db {
    ($test:literal) => {
        match TestDb::create($test) {
            Some(db) => db,
            None => return,
        }
    };
}

#[test]
fn subscribers_crud_list_order_and_domain_case() {
    let db = db!("subscribers_crud_list_order_and_domain_case");
    conformance::crud_list_order_and_domain_case(&db.store());
}

#[test]
fn exists_and_not_found() {
    let db = db!("exists_and_not_found");
    conformance::exists_and_not_found(&db.store());
}

#[test]
fn tls_only_round_trip() {
    let db = db!("tls_only_round_trip");
    conformance::tls_only_is_kept_and_changed_only_on_purpose(&db.store());
}

#[test]
fn allowed_networks_round_trip() {
    let db = db!("allowed_networks_round_trip");
    conformance::allowed_networks_round_trip(&db.store());
}

#[test]
fn put_many_adds_updates_and_leaves_unchanged() {
    let db = db!("put_many_adds_updates_and_leaves_unchanged");
    conformance::put_many_adds_updates_and_leaves_unchanged(&db.store());
}

#[test]
fn put_many_is_one_transaction() {
    let db = db!("put_many_is_one_transaction");
    let store = db.store();
    let sub = |u: &str| Subscriber::new(u, "example.com", "pw").expect("valid");
    // A row the database refuses in the middle of the slice: nothing of the slice stays.
    db.psql()
        .batch_execute(r#"ALTER TABLE subscribers ADD CONSTRAINT no_mallory CHECK ("user" <> 'mallory')"#)
        .expect("constraint");
    let before = store.generation().expect("generation");
    let err = store.put_many(&[sub("1000"), sub("mallory"), sub("1002")]);
    assert!(matches!(err, Err(StoreError::Backend(_))), "{err:?}");
    assert_eq!(store.list(None).expect("list"), []);
    assert_eq!(store.generation().expect("generation"), before);
    // The store is still usable after the failed transaction.
    assert_eq!(store.put_many(&[sub("1000")]).expect("put"), [store::Put::Added]);
}

#[test]
fn generation_changes_on_every_change_and_another_node_sees_it_at_once() {
    let db = db!("generation_changes_on_every_change_and_another_node_sees_it_at_once");
    let (node_a, node_b) = (db.store(), db.store());
    conformance::generation_moves_with_every_change(&node_a, &node_b);
    conformance::a_second_handle_sees_changes_at_once(&node_b, &node_a);
    // A change made outside switchboard (psql) counts too: the trigger is in the database.
    let before = node_a.generation().expect("generation");
    db.psql()
        .batch_execute(r#"UPDATE subscribers SET tls_only = NOT tls_only WHERE "user" = '1000'"#)
        .expect("psql");
    assert!(node_b.generation().expect("generation") > before);
}

#[test]
fn call_records_round_trip_in_time_order() {
    let db = db!("call_records_round_trip_in_time_order");
    let second: Arc<dyn RecordStore> = Arc::new(db.store());
    conformance::call_records_round_trip_in_time_order(&db.store(), second);
}

#[test]
fn pages_newest_first_without_repeats_while_records_arrive() {
    let db = db!("pages_newest_first_without_repeats_while_records_arrive");
    conformance::pages_newest_first_without_repeats_while_records_arrive(&db.store());
}

#[test]
fn nodes_migrating_a_fresh_database_at_once_all_succeed() {
    let db = db!("nodes_migrating_a_fresh_database_at_once_all_succeed");
    let nodes = 4;
    let start = Arc::new(Barrier::new(nodes));
    let connecting: Vec<_> = (0..nodes)
        .map(|_| {
            let (url, start) = (db.url.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                PgStore::connect(&url)
            })
        })
        .collect();
    let stores: Vec<PgStore> = connecting
        .into_iter()
        .map(|t| t.join().expect("thread").expect("every node connects and migrates"))
        .collect();
    for store in &stores {
        assert_eq!(store.schema_version().expect("version"), PgStore::SCHEMA_VERSION);
    }
    let mut psql = db.psql();
    let applied: Vec<i64> = psql
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(applied, (1..=PgStore::SCHEMA_VERSION).collect::<Vec<_>>(), "each once");
    stores[0]
        .add(&Subscriber::new("1000", "example.com", "pw").expect("valid"))
        .expect("add");
    assert!(stores[3].get("1000", "example.com").expect("get").is_some());
}

#[test]
fn data_survive_reconnecting_and_migrations_run_once() {
    let db = db!("data_survive_reconnecting_and_migrations_run_once");
    {
        let store = db.store();
        store
            .add(&Subscriber::new("1000", "example.com", "pw").expect("valid"))
            .expect("add");
    }
    let store = db.store();
    assert_eq!(store.schema_version().expect("version"), PgStore::SCHEMA_VERSION);
    assert!(store.get("1000", "example.com").expect("get").is_some());
    let rows: i64 = db
        .psql()
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .expect("count")
        .get(0);
    assert_eq!(rows, PgStore::SCHEMA_VERSION);
}

#[test]
fn reconnects_after_the_server_drops_its_connections() {
    let db = db!("reconnects_after_the_server_drops_its_connections");
    let store = db.store();
    let sub = |u: &str| Subscriber::new(u, "example.com", "pw").expect("valid");
    store.add(&sub("1000")).expect("add");
    let mut psql = db.psql();
    // Opens both pool connections (callers at once), then has the server end them, waiting
    // until their processes are gone.
    let kill_all = |psql: &mut Client| -> i64 {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| store.list(None).expect("list"));
            }
        });
        psql.query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 5000) AS gone FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()) AS k WHERE gone",
            &[&db.name],
        )
        .expect("terminate")
        .get(0)
    };
    for round in 0..3 {
        // A write finds its connection gone at BEGIN, so nothing was sent: it runs again on a
        // fresh connection.
        assert!(kill_all(&mut psql) >= 1, "round {round}: the store had connections");
        let user = format!("20{round}");
        store.add(&sub(&user)).expect("add after the kill");
        // A read is retried on a fresh connection.
        assert!(kill_all(&mut psql) >= 1, "round {round}: the store had connections");
        assert!(store.get(&user, "example.com").expect("get after the kill").is_some());
        assert!(store.get("1000", "example.com").expect("get").is_some());
        store.generation().expect("generation");
    }
    // The store's connections end with it.
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.connections(&mut psql) > 0 {
        assert!(
            Instant::now() < deadline,
            "connections still open after the store was dropped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_store_serves_many_threads() {
    let db = db!("a_store_serves_many_threads");
    let store = db.store();
    std::thread::scope(|s| {
        for t in 0..8 {
            let store = &store;
            s.spawn(move || {
                for i in 0..25 {
                    let user = format!("{t}{i:03}");
                    store
                        .add(&Subscriber::new(&user, "example.com", "pw").expect("valid"))
                        .expect("add");
                    assert!(store.get(&user, "example.com").expect("get").is_some());
                }
            });
        }
    });
    assert_eq!(store.list(None).expect("list").len(), 200);
    let mut psql = db.psql();
    assert!(
        db.connections(&mut psql) <= PgStore::CONNECTIONS as i64,
        "a small fixed pool"
    );
}

#[test]
fn no_password_or_ha1_in_debug_or_errors() {
    let db = db!("no_password_or_ha1_in_debug_or_errors");
    let password = "Tr0ub4dor-and-3";
    let role = format!("{}_role", db.name);
    let mut psql = db.psql();
    psql.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD '{password}';
         GRANT ALL ON SCHEMA public TO {role};"
    ))
    .expect("role");
    struct DropRole(String, String);
    impl Drop for DropRole {
        fn drop(&mut self) {
            if let Ok(mut c) = Client::connect(&self.0, NoTls) {
                let _ = c.batch_execute(&format!("DROP OWNED BY {0} CASCADE; DROP ROLE IF EXISTS {0}", self.1));
            }
        }
    }
    let _role = DropRole(db.url.clone(), role.clone());
    let (_, rest) = db.url.split_once('@').expect("user info in the URL");
    let url = format!("postgres://{role}:{password}@{rest}");

    let store = PgStore::connect(&url).expect("connect as the role");
    let shown = format!("{store:?}");
    assert!(!shown.contains(password) && shown.contains("***"), "{shown}");

    // The server refuses a row: its message may quote the row (HA1 values); ours does not.
    psql.batch_execute(r#"ALTER TABLE subscribers ADD CONSTRAINT no_mallory CHECK ("user" <> 'mallory')"#)
        .expect("constraint");
    let mallory = Subscriber::new("mallory", "example.com", "pw").expect("valid");
    let err = store.add(&mallory).expect_err("refused");
    let text = format!("{err} {err:?}");
    assert!(matches!(err, StoreError::Backend(_)), "{text}");
    assert!(text.contains("no_mallory"), "says what failed: {text}");
    assert!(
        !text.contains(&mallory.ha1_md5) && !text.contains(&mallory.ha1_sha256),
        "HA1 in an error: {text}"
    );
    let shown = format!("{mallory:?}");
    assert!(!shown.contains(&mallory.ha1_md5) && !shown.contains(&mallory.ha1_sha256));

    // Refused credentials, and a server that is not there: the URL is shown, the password not.
    let wrong = format!("postgres://{role}:{password}-wrong@{rest}");
    let err = PgStore::connect(&wrong).expect_err("wrong password");
    let text = format!("{err} {err:?}");
    assert!(matches!(err, StoreError::Backend(_)), "{text}");
    assert!(
        !text.contains(password) && text.contains(&format!("{role}:***@")),
        "{text}"
    );
    let err = PgStore::connect(&format!("postgres://{role}:{password}@127.0.0.1:1/x")).expect_err("no server");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(password) && text.contains("***"), "{text}");
    // A password given as a query parameter is hidden too.
    let err = PgStore::connect(&format!("postgres://{role}@{rest}?password={password}-wrong")).expect_err("refused");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(password), "{text}");
}
