//! The PostgreSQL backend for subscribers and call records: the store several nodes share, so a
//! subscriber added on one node is known to all, and call records from all nodes land in one
//! place. Same semantics as the embedded store ([`crate::SqliteStore`]); locations live in Redis
//! instead (see [`crate::open_locations`]).
//!
//! Design:
//!
//! - The traits are sync and their callers may be on a tokio runtime thread (the server's TCP
//!   tasks call the subscriber store under a lock). The sync `postgres::Client` drives its own
//!   runtime and panics inside another one, so no client is ever used on a caller's thread: each
//!   connection lives on a thread of its own, owned by the [`PgStore`] (a fixed pool of
//!   [`PgStore::CONNECTIONS`]). A call sends a job over the channel all of them take from, and
//!   waits for the reply on a channel of its own. The threads end, closing their connections,
//!   when the store is dropped. TLS is not offered (`NoTls`).
//! - A connection that breaks is dropped and opened again for the next job. A read is retried
//!   once on a fresh connection; a write runs in a transaction and is retried only when its
//!   `BEGIN` failed, when nothing can have reached the server, never after (it may have
//!   committed).
//! - Statements are prepared once per connection and kept.
//! - Migrations run on connect, versioned in `schema_migrations`, in one transaction holding an
//!   advisory lock, so nodes starting at once do not race to create the schema.
//! - The subscriber generation is a row in `counters` that a trigger bumps in the transaction of
//!   every change to `subscribers`, whoever makes it (another node, `psql`).
//! - Messages never carry the password of the URL ([`crate::redact`]), nor a server error's
//!   DETAIL, which can quote a failing row and with it HA1 values.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row, Statement, Transaction};

use crate::open::redact;
use crate::records::{CallRecord, Disposition, LegMedia, RecordKey, RecordStore};
use crate::subscribers::{Put, StoreError, Subscriber, SubscriberStore};

/// Connections (and threads) per store: enough that a slow query (a bulk import, a page of
/// records) does not stall authentication lookups, few enough for many nodes on one server.
const POOL: usize = 2;

/// The key of the advisory lock migrations hold (`"sbmigr"`): any constant the nodes agree on.
const MIGRATION_LOCK: i64 = 0x7362_6d69_6772;

/// How long connecting may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema versions, applied in order; each runs once, inside the migration transaction.
/// `COLLATE "C"` makes `list` order byte-wise, as in SQLite, whatever the database's locale.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"CREATE TABLE subscribers (
               domain           TEXT COLLATE "C" NOT NULL,
               "user"           TEXT COLLATE "C" NOT NULL,
               ha1_md5          TEXT NOT NULL,
               ha1_sha256       TEXT NOT NULL,
               tls_only         BOOLEAN NOT NULL DEFAULT FALSE,
               allowed_networks TEXT NOT NULL DEFAULT '',
               created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
               updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
               PRIMARY KEY (domain, "user")
           );
           CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
           INSERT INTO counters VALUES ('subscribers', 0);
           CREATE FUNCTION subscribers_bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               UPDATE counters SET value = value + 1 WHERE name = 'subscribers';
               RETURN NULL;
           END $$;
           CREATE TRIGGER subscribers_changed AFTER INSERT OR UPDATE OR DELETE ON subscribers
               FOR EACH ROW EXECUTE FUNCTION subscribers_bump_generation();"#,
    ),
    (
        2,
        // The index carries id after ended_ms: page_records walks it backwards from its cursor.
        "CREATE TABLE call_records (
             id                   BIGSERIAL PRIMARY KEY,
             call_id              TEXT NOT NULL,
             caller               TEXT NOT NULL,
             callee               TEXT NOT NULL,
             started_ms           BIGINT NOT NULL,
             answered_ms          BIGINT,
             ended_ms             BIGINT NOT NULL,
             duration_s           BIGINT NOT NULL,
             disposition          TEXT NOT NULL,
             status               INTEGER NOT NULL,
             hangup               TEXT,
             answered_by          TEXT,
             caller_codec         TEXT,
             caller_packets       BIGINT NOT NULL DEFAULT 0,
             caller_bytes         BIGINT NOT NULL DEFAULT 0,
             caller_loss_permille BIGINT,
             caller_jitter_us     BIGINT,
             callee_codec         TEXT,
             callee_packets       BIGINT NOT NULL DEFAULT 0,
             callee_bytes         BIGINT NOT NULL DEFAULT 0,
             callee_loss_permille BIGINT,
             callee_jitter_us     BIGINT
         );
         CREATE INDEX call_records_ended ON call_records (ended_ms, id);",
    ),
];

/// The columns [`row_to_subscriber`] reads, in its order.
macro_rules! subscriber_columns {
    () => {
        r#"domain, "user", ha1_md5, ha1_sha256, tls_only, allowed_networks"#
    };
}

/// The columns [`row_to_record`] reads, in its order.
macro_rules! record_columns {
    () => {
        "call_id, caller, callee, started_ms, answered_ms, ended_ms, disposition, status,
         hangup, answered_by,
         caller_codec, caller_packets, caller_bytes, caller_loss_permille, caller_jitter_us,
         callee_codec, callee_packets, callee_bytes, callee_loss_permille, callee_jitter_us, id"
    };
}

const GET_SUBSCRIBER: &str = concat!(
    "SELECT ",
    subscriber_columns!(),
    r#" FROM subscribers WHERE domain = $1 AND "user" = $2"#
);
const LIST_SUBSCRIBERS: &str = concat!(
    "SELECT ",
    subscriber_columns!(),
    r#" FROM subscribers WHERE $1::text IS NULL OR domain = $1 ORDER BY domain, "user""#
);
const INSERT_SUBSCRIBER: &str = r#"INSERT INTO subscribers (domain, "user", ha1_md5, ha1_sha256, tls_only, allowed_networks)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"#;
const UPDATE_HA1: &str =
    r#"UPDATE subscribers SET ha1_md5 = $3, ha1_sha256 = $4, updated_at = now() WHERE domain = $1 AND "user" = $2"#;
const SET_TLS_ONLY: &str =
    r#"UPDATE subscribers SET tls_only = $3, updated_at = now() WHERE domain = $1 AND "user" = $2"#;
const SET_NETWORKS: &str =
    r#"UPDATE subscribers SET allowed_networks = $3, updated_at = now() WHERE domain = $1 AND "user" = $2"#;
const REMOVE_SUBSCRIBER: &str = r#"DELETE FROM subscribers WHERE domain = $1 AND "user" = $2"#;
const GENERATION: &str = "SELECT value FROM counters WHERE name = 'subscribers'";

/// One statement for a whole batch: a column per array, rows stored (and numbered) in order.
const INSERT_RECORDS: &str = "INSERT INTO call_records (call_id, caller, callee, started_ms, answered_ms, ended_ms,
         duration_s, disposition, status, hangup, answered_by,
         caller_codec, caller_packets, caller_bytes, caller_loss_permille, caller_jitter_us,
         callee_codec, callee_packets, callee_bytes, callee_loss_permille, callee_jitter_us)
     SELECT call_id, caller, callee, started_ms, answered_ms, ended_ms,
         duration_s, disposition, status, hangup, answered_by,
         caller_codec, caller_packets, caller_bytes, caller_loss_permille, caller_jitter_us,
         callee_codec, callee_packets, callee_bytes, callee_loss_permille, callee_jitter_us
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[],
         $7::int8[], $8::text[], $9::int4[], $10::text[], $11::text[],
         $12::text[], $13::int8[], $14::int8[], $15::int8[], $16::int8[],
         $17::text[], $18::int8[], $19::int8[], $20::int8[], $21::int8[])
     WITH ORDINALITY AS r(call_id, caller, callee, started_ms, answered_ms, ended_ms,
         duration_s, disposition, status, hangup, answered_by,
         caller_codec, caller_packets, caller_bytes, caller_loss_permille, caller_jitter_us,
         callee_codec, callee_packets, callee_bytes, callee_loss_permille, callee_jitter_us, ord)
     ORDER BY ord";
const LIST_RECORDS: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM call_records WHERE ended_ms >= $1 AND ended_ms < $2 ORDER BY ended_ms, id LIMIT $3"
);
const PAGE_RECORDS: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM call_records WHERE ended_ms >= $1 AND ended_ms < $2 AND (ended_ms, id) < ($3, $4)
      ORDER BY ended_ms DESC, id DESC LIMIT $5"
);

/// Subscribers and call records in a PostgreSQL database, shared by every node that connects.
pub struct PgStore {
    /// Jobs for the connection threads; `None` once dropping.
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    /// The URL with its password hidden.
    shown: String,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.shown)
            .field("connections", &self.threads.len())
            .finish()
    }
}

impl PgStore {
    /// The schema version this build migrates to.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

    /// The connections a store keeps open, each on a thread of its own.
    pub const CONNECTIONS: usize = POOL;

    /// Connects to `url` (`postgres://user:password@host:port/database`) and migrates. Safe to
    /// call from a tokio runtime thread: nothing here touches the database on the caller's
    /// thread.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let shown = hide_query_password(&redact(url));
        let mut secrets: Vec<String> = url_password(url).into_iter().collect();
        let mut config: Config = url
            .parse()
            .map_err(|e: postgres::Error| StoreError::Invalid(scrub(format!("{shown}: {}", describe(&e)), &secrets)))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("switchboard");
        }
        config.notice_callback(|notice| tracing::debug!(notice = %notice.message(), "PostgreSQL notice"));
        secrets.extend(config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()));
        secrets.retain(|s| !s.is_empty());

        let (tx, rx) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(rx));
        let mut store = PgStore {
            jobs: Some(tx),
            threads: Vec::with_capacity(POOL),
            shown: shown.clone(),
        };
        for i in 0..POOL {
            let worker = Worker {
                config: config.clone(),
                shown: shown.clone(),
                secrets: secrets.clone(),
                session: None,
            };
            let queue = Arc::clone(&queue);
            let thread = std::thread::Builder::new()
                .name(format!("postgres-{i}"))
                .spawn(move || worker.serve(&queue))
                .map_err(|e| StoreError::Backend(format!("PostgreSQL connection thread: {e}")))?;
            store.threads.push(thread);
        }
        store.write(migrate)?;
        Ok(store)
    }

    /// The schema version in the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|cx| {
            Ok(cx
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])?
                .try_get(0)?)
        })
    }

    /// Runs `job` on a connection thread outside any transaction; retried once on a fresh
    /// connection when the connection broke.
    fn read<T: Send + 'static>(
        &self,
        job: impl FnMut(&mut Cx<'_, '_>) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit(Mode::Read, job)
    }

    /// Runs `job` on a connection thread in a transaction, committed when it succeeds.
    fn write<T: Send + 'static>(
        &self,
        job: impl FnMut(&mut Cx<'_, '_>) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.submit(Mode::Write, job)
    }

    fn submit<T: Send + 'static>(
        &self,
        mode: Mode,
        mut job: impl FnMut(&mut Cx<'_, '_>) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StoreError> {
        let gone = || StoreError::Backend(format!("PostgreSQL at {}: the connection thread ended", self.shown));
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |worker: &mut Worker| {
            let _ = reply.send(worker.run(mode, &mut job));
        });
        self.jobs.as_ref().ok_or_else(gone)?.send(job).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl Drop for PgStore {
    /// Closes the queue; each thread finishes the job it holds, closes its connection and ends.
    fn drop(&mut self) {
        self.jobs.take();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

#[derive(Clone, Copy)]
enum Mode {
    Read,
    Write,
}

/// Why a job failed: the database (which may mean the connection broke), or an answer for the
/// caller (`Exists`, `NotFound`).
enum Fail {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Fail {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        Fail::Store(e)
    }
}

/// A connection and the statements prepared on it.
struct Session {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// What a job runs its statements on: the connection, or the transaction of a write.
enum Conn<'a, 'c> {
    Plain(&'a mut Client),
    Tx(&'a mut Transaction<'c>),
}

/// A job's handle on the database: statements by their text, prepared on first use.
struct Cx<'a, 'c> {
    conn: Conn<'a, 'c>,
    statements: &'a mut HashMap<&'static str, Statement>,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Cx<'_, '_> {
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = match &mut self.conn {
            Conn::Plain(c) => c.prepare(sql)?,
            Conn::Tx(t) => t.prepare(sql)?,
        };
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        match &mut self.conn {
            Conn::Plain(c) => c.query(&statement, params),
            Conn::Tx(t) => t.query(&statement, params),
        }
    }

    fn query_opt(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Option<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        match &mut self.conn {
            Conn::Plain(c) => c.query_opt(&statement, params),
            Conn::Tx(t) => t.query_opt(&statement, params),
        }
    }

    fn query_one(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Row, postgres::Error> {
        let statement = self.prepared(sql)?;
        match &mut self.conn {
            Conn::Plain(c) => c.query_one(&statement, params),
            Conn::Tx(t) => t.query_one(&statement, params),
        }
    }

    fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.prepared(sql)?;
        match &mut self.conn {
            Conn::Plain(c) => c.execute(&statement, params),
            Conn::Tx(t) => t.execute(&statement, params),
        }
    }

    /// Runs SQL text as it is (several statements, no parameters, nothing prepared).
    fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        match &mut self.conn {
            Conn::Plain(c) => c.batch_execute(sql),
            Conn::Tx(t) => t.batch_execute(sql),
        }
    }
}

/// A connection thread's state: how to connect, and the connection while it works.
struct Worker {
    config: Config,
    shown: String,
    /// The password, as written in the URL and decoded: never in a message.
    secrets: Vec<String>,
    session: Option<Session>,
}

impl Worker {
    /// Takes jobs until the store is dropped.
    fn serve(mut self, queue: &Mutex<mpsc::Receiver<Job>>) {
        loop {
            let next = match queue.lock() {
                Ok(jobs) => jobs.recv(),
                Err(_) => return,
            };
            let Ok(job) = next else {
                return;
            };
            // A job that panics loses its reply (the caller gets an error), not the thread; the
            // connection may be mid-conversation, so it goes.
            if catch_unwind(AssertUnwindSafe(|| job(&mut self))).is_err() {
                self.session = None;
            }
        }
    }

    /// The connection, opened if there is none or it broke.
    fn session(&mut self) -> Result<&mut Session, StoreError> {
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            self.session = None;
        }
        if self.session.is_none() {
            let client = self.config.connect(NoTls).map_err(|e| {
                let why = scrub(format!("PostgreSQL at {}: {}", self.shown, describe(&e)), &self.secrets);
                tracing::warn!(error = %why, "cannot connect");
                StoreError::Backend(why)
            })?;
            self.session = Some(Session {
                client,
                statements: HashMap::new(),
            });
        }
        self.session
            .as_mut()
            .ok_or_else(|| StoreError::Backend("PostgreSQL: no connection".into()))
    }

    fn run<T>(
        &mut self,
        mode: Mode,
        job: &mut impl FnMut(&mut Cx<'_, '_>) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        let mut retried = false;
        loop {
            let Session { client, statements } = self.session()?;
            // The error, and whether nothing of the job can have been done (so it may run again).
            let outcome: Result<T, (Fail, bool)> = match mode {
                Mode::Read => job(&mut Cx {
                    conn: Conn::Plain(client),
                    statements,
                })
                .map_err(|f| (f, true)),
                Mode::Write => match client.transaction() {
                    Err(e) => Err((Fail::Pg(e), true)),
                    Ok(mut tx) => {
                        let done = job(&mut Cx {
                            conn: Conn::Tx(&mut tx),
                            statements,
                        });
                        match done {
                            Ok(v) => tx.commit().map(|()| v).map_err(|e| (Fail::Pg(e), false)),
                            Err(f) => Err((f, false)),
                        }
                    }
                },
            };
            let (e, repeatable) = match outcome {
                Ok(v) => return Ok(v),
                Err((Fail::Store(e), _)) => return Err(e),
                Err((Fail::Pg(e), repeatable)) => (e, repeatable),
            };
            let why = scrub(format!("PostgreSQL: {}", describe(&e)), &self.secrets);
            let broken = connection_lost(&e) || self.session.as_ref().is_none_or(|s| s.client.is_closed());
            if !broken {
                return Err(StoreError::Backend(why));
            }
            self.session = None;
            if !repeatable || retried {
                return Err(StoreError::Backend(why));
            }
            tracing::warn!(url = %self.shown, error = %why, "PostgreSQL connection lost; reconnecting");
            retried = true;
        }
    }
}

/// Whether an error means the connection is no good any more.
fn connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Connection exceptions (08…), and the server shutting down or ending the session
        // (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, …).
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
        // Not an answer from the server: I/O failed, or the stream made no sense.
        None => {
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                if s.is::<std::io::Error>() {
                    return true;
                }
                source = s.source();
            }
            false
        }
    }
}

/// An error as text: for a server error its severity, message and SQLSTATE, but not its DETAIL
/// (a constraint violation quotes the failing row there, HA1 values and all).
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `text` with every secret replaced by `***`.
fn scrub(mut text: String, secrets: &[String]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

/// The password of a `scheme://user:password@host/…` URL, as written.
fn url_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password.to_owned())
}

/// A URL with the value of a `password=` query parameter hidden ([`redact`] hides the one in
/// the authority).
fn hide_query_password(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// Brings the schema up to date, under the advisory lock: a node that starts while another
/// migrates waits for it, then finds nothing left to do.
fn migrate(cx: &mut Cx<'_, '_>) -> Result<(), Fail> {
    cx.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    cx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let current: i64 = cx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])?
        .try_get(0)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        cx.batch_execute(sql)
            .map_err(|e| StoreError::Backend(format!("PostgreSQL migration {version}: {}", describe(&e))))?;
        cx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])?;
    }
    if current > PgStore::SCHEMA_VERSION {
        tracing::warn!(
            database = current,
            known = PgStore::SCHEMA_VERSION,
            "the PostgreSQL schema is newer than this build"
        );
    }
    Ok(())
}

/// `allowed_networks` as stored: comma-separated, `''` for anywhere.
fn networks_column(networks: &[String]) -> String {
    networks.join(",")
}

fn row_to_subscriber(r: &Row) -> Result<Subscriber, postgres::Error> {
    Ok(Subscriber {
        domain: r.try_get(0)?,
        user: r.try_get(1)?,
        ha1_md5: r.try_get(2)?,
        ha1_sha256: r.try_get(3)?,
        tls_only: r.try_get(4)?,
        allowed_networks: r
            .try_get::<_, &str>(5)?
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// A BIGINT for a u64: values past `i64::MAX` (an open-ended `until`) clamp to it.
fn sql_int(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn found(n: u64) -> Result<(), Fail> {
    if n == 0 {
        Err(Fail::Store(StoreError::NotFound))
    } else {
        Ok(())
    }
}

impl SubscriberStore for PgStore {
    fn add(&self, s: &Subscriber) -> Result<(), StoreError> {
        let s = s.clone();
        self.write(move |cx| {
            let networks = networks_column(&s.allowed_networks);
            let n = cx.execute(
                INSERT_SUBSCRIBER,
                &[&s.domain, &s.user, &s.ha1_md5, &s.ha1_sha256, &s.tls_only, &networks],
            )?;
            if n == 0 {
                Err(Fail::Store(StoreError::Exists))
            } else {
                Ok(())
            }
        })
    }

    fn update(&self, s: &Subscriber) -> Result<(), StoreError> {
        let s = s.clone();
        self.write(move |cx| found(cx.execute(UPDATE_HA1, &[&s.domain, &s.user, &s.ha1_md5, &s.ha1_sha256])?))
    }

    fn set_tls_only(&self, user: &str, domain: &str, tls_only: bool) -> Result<(), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_ascii_lowercase());
        self.write(move |cx| found(cx.execute(SET_TLS_ONLY, &[&domain, &user, &tls_only])?))
    }

    fn set_allowed_networks(&self, user: &str, domain: &str, networks: &[String]) -> Result<(), StoreError> {
        let (user, domain, networks) = (user.to_owned(), domain.to_ascii_lowercase(), networks_column(networks));
        self.write(move |cx| found(cx.execute(SET_NETWORKS, &[&domain, &user, &networks])?))
    }

    fn remove(&self, user: &str, domain: &str) -> Result<(), StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_ascii_lowercase());
        self.write(move |cx| found(cx.execute(REMOVE_SUBSCRIBER, &[&domain, &user])?))
    }

    fn get(&self, user: &str, domain: &str) -> Result<Option<Subscriber>, StoreError> {
        let (user, domain) = (user.to_owned(), domain.to_ascii_lowercase());
        self.read(move |cx| {
            Ok(cx
                .query_opt(GET_SUBSCRIBER, &[&domain, &user])?
                .map(|r| row_to_subscriber(&r))
                .transpose()?)
        })
    }

    fn list(&self, domain: Option<&str>) -> Result<Vec<Subscriber>, StoreError> {
        let domain = domain.map(str::to_ascii_lowercase);
        self.read(move |cx| {
            let rows = cx.query(LIST_SUBSCRIBERS, &[&domain])?;
            Ok(rows.iter().map(row_to_subscriber).collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// A counter the schema's trigger bumps in the transaction of every change to
    /// `subscribers`, by any node; registrations and call records do not move it.
    fn generation(&self) -> Result<u64, StoreError> {
        self.read(|cx| Ok(cx.query_one(GENERATION, &[])?.try_get::<_, i64>(0)? as u64))
    }

    /// One transaction for the whole slice.
    fn put_many(&self, subscribers: &[Subscriber]) -> Result<Vec<Put>, StoreError> {
        let subscribers = subscribers.to_vec();
        self.write(move |cx| {
            let mut done = Vec::with_capacity(subscribers.len());
            for s in &subscribers {
                let existing = cx
                    .query_opt(GET_SUBSCRIBER, &[&s.domain, &s.user])?
                    .map(|r| row_to_subscriber(&r))
                    .transpose()?;
                let ha1 = [&s.domain as &(dyn ToSql + Sync), &s.user, &s.ha1_md5, &s.ha1_sha256];
                done.push(match existing {
                    Some(e) if e.same_credentials(s) => Put::Unchanged,
                    Some(_) => {
                        cx.execute(UPDATE_HA1, &ha1)?;
                        Put::Updated
                    }
                    None => {
                        let networks = networks_column(&s.allowed_networks);
                        let n = cx.execute(
                            INSERT_SUBSCRIBER,
                            &[&s.domain, &s.user, &s.ha1_md5, &s.ha1_sha256, &s.tls_only, &networks],
                        )?;
                        if n == 0 {
                            // Another node added it since the look-up: as the default does.
                            cx.execute(UPDATE_HA1, &ha1)?;
                            Put::Updated
                        } else {
                            Put::Added
                        }
                    }
                });
            }
            Ok(done)
        })
    }
}

/// A batch of records as one array per column, for [`INSERT_RECORDS`].
#[derive(Default)]
struct RecordColumns {
    call_id: Vec<String>,
    caller: Vec<String>,
    callee: Vec<String>,
    started_ms: Vec<i64>,
    answered_ms: Vec<Option<i64>>,
    ended_ms: Vec<i64>,
    duration_s: Vec<i64>,
    disposition: Vec<&'static str>,
    status: Vec<i32>,
    hangup: Vec<Option<String>>,
    answered_by: Vec<Option<String>>,
    codec: [Vec<Option<String>>; 2],
    packets: [Vec<i64>; 2],
    bytes: [Vec<i64>; 2],
    loss_permille: [Vec<Option<i64>>; 2],
    jitter_us: [Vec<Option<i64>>; 2],
}

impl RecordColumns {
    fn of(records: &[CallRecord]) -> RecordColumns {
        let mut c = RecordColumns::default();
        for r in records {
            c.call_id.push(r.call_id.clone());
            c.caller.push(r.caller.clone());
            c.callee.push(r.callee.clone());
            c.started_ms.push(r.started_ms as i64);
            c.answered_ms.push(r.answered_ms.map(|v| v as i64));
            c.ended_ms.push(r.ended_ms as i64);
            c.duration_s.push(r.duration_secs() as i64);
            c.disposition.push(r.disposition.as_str());
            c.status.push(i32::from(r.status));
            c.hangup.push(r.hangup.clone());
            c.answered_by.push(r.answered_by.clone());
            for (leg, media) in [&r.caller_media, &r.callee_media].into_iter().enumerate() {
                c.codec[leg].push(media.codec.clone());
                c.packets[leg].push(media.packets as i64);
                c.bytes[leg].push(media.bytes as i64);
                c.loss_permille[leg].push(media.loss_permille.map(i64::from));
                c.jitter_us[leg].push(media.jitter_us.map(i64::from));
            }
        }
        c
    }
}

fn row_to_record(r: &Row) -> Result<(RecordKey, CallRecord), postgres::Error> {
    let leg = |at: usize| -> Result<LegMedia, postgres::Error> {
        Ok(LegMedia {
            codec: r.try_get(at)?,
            packets: r.try_get::<_, i64>(at + 1)? as u64,
            bytes: r.try_get::<_, i64>(at + 2)? as u64,
            loss_permille: r.try_get::<_, Option<i64>>(at + 3)?.map(|v| v as u32),
            jitter_us: r.try_get::<_, Option<i64>>(at + 4)?.map(|v| v as u32),
        })
    };
    let record = CallRecord {
        call_id: r.try_get(0)?,
        caller: r.try_get(1)?,
        callee: r.try_get(2)?,
        started_ms: r.try_get::<_, i64>(3)? as u64,
        answered_ms: r.try_get::<_, Option<i64>>(4)?.map(|v| v as u64),
        ended_ms: r.try_get::<_, i64>(5)? as u64,
        disposition: Disposition::parse(r.try_get(6)?).unwrap_or(Disposition::Failed),
        status: r.try_get::<_, i32>(7)? as u16,
        hangup: r.try_get(8)?,
        answered_by: r.try_get(9)?,
        caller_media: leg(10)?,
        callee_media: leg(15)?,
    };
    let key = RecordKey {
        ended_ms: record.ended_ms,
        seq: r.try_get(20)?,
    };
    Ok((key, record))
}

impl RecordStore for PgStore {
    /// One statement, one transaction for the batch; records are numbered in slice order.
    fn insert(&self, records: &[CallRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let c = RecordColumns::of(records);
        self.write(move |cx| {
            cx.execute(
                INSERT_RECORDS,
                &[
                    &c.call_id,
                    &c.caller,
                    &c.callee,
                    &c.started_ms,
                    &c.answered_ms,
                    &c.ended_ms,
                    &c.duration_s,
                    &c.disposition,
                    &c.status,
                    &c.hangup,
                    &c.answered_by,
                    &c.codec[0],
                    &c.packets[0],
                    &c.bytes[0],
                    &c.loss_permille[0],
                    &c.jitter_us[0],
                    &c.codec[1],
                    &c.packets[1],
                    &c.bytes[1],
                    &c.loss_permille[1],
                    &c.jitter_us[1],
                ],
            )?;
            Ok(())
        })
    }

    fn list_records(&self, since_ms: u64, until_ms: u64, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        let params = [sql_int(since_ms), sql_int(until_ms), sql_int(limit as u64)];
        self.read(move |cx| {
            let rows = cx.query(LIST_RECORDS, &[&params[0], &params[1], &params[2]])?;
            Ok(rows
                .iter()
                .map(|r| row_to_record(r).map(|(_, record)| record))
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn page_records(
        &self,
        since_ms: u64,
        until_ms: u64,
        after: Option<RecordKey>,
        limit: usize,
    ) -> Result<Vec<(RecordKey, CallRecord)>, StoreError> {
        // Newest first; `after` is the last record of the previous page.
        let (before_ms, before_seq) = after.map_or((i64::MAX, i64::MAX), |k| (sql_int(k.ended_ms), k.seq));
        let params = [
            sql_int(since_ms),
            sql_int(until_ms),
            before_ms,
            before_seq,
            sql_int(limit as u64),
        ];
        self.read(move |cx| {
            let rows = cx.query(
                PAGE_RECORDS,
                &[&params[0], &params[1], &params[2], &params[3], &params[4]],
            )?;
            Ok(rows.iter().map(row_to_record).collect::<Result<Vec<_>, _>>()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_hide_passwords() {
        let url = "postgres://sb:s3cr%21t@db.example:5432/sb?password=other&sslmode=disable";
        assert_eq!(url_password(url).as_deref(), Some("s3cr%21t"));
        assert_eq!(
            hide_query_password(&redact(url)),
            "postgres://sb:***@db.example:5432/sb?password=***&sslmode=disable"
        );
        assert_eq!(
            scrub("bad s3cr!t and s3cr%21t".into(), &["s3cr%21t".into(), "s3cr!t".into()]),
            "bad *** and ***"
        );
        let err = PgStore::connect("postgres://sb:hunter2@h:notaport/db")
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| !e.contains("hunter2") && e.contains("sb:***@")),
            "{err:?}"
        );
    }
}
