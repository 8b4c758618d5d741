//! The embedded store: one SQLite file in the data directory, created on first use, in WAL mode
//! so the CLI can write while a server reads, with `synchronous=FULL` (a write is on disk when
//! the call returns) and versioned schema migrations.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::location::{BatchWriter, Binding, LocationStore};
use crate::records::{CallRecord, Disposition, LegMedia, RecordKey, RecordStore};
use crate::subscribers::{Put, StoreError, Subscriber, SubscriberStore};

/// Schema versions, applied in order; each runs once, inside a transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE subscribers (
             domain      TEXT NOT NULL,
             user        TEXT NOT NULL,
             ha1_md5     TEXT NOT NULL,
             ha1_sha256  TEXT NOT NULL,
             created_at  INTEGER NOT NULL,
             updated_at  INTEGER NOT NULL,
             PRIMARY KEY (domain, user)
         ) WITHOUT ROWID;",
    ),
    (
        2,
        "CREATE TABLE bindings (
             aor         TEXT NOT NULL,
             contact     TEXT NOT NULL,
             expires_at  INTEGER NOT NULL,
             q           INTEGER NOT NULL,
             call_id     TEXT NOT NULL,
             cseq        INTEGER NOT NULL,
             source      TEXT NOT NULL,
             conn        INTEGER NOT NULL,
             user_agent  TEXT,
             PRIMARY KEY (aor, contact)
         ) WITHOUT ROWID;
         CREATE INDEX bindings_expiry ON bindings (expires_at);",
    ),
    (
        3,
        "CREATE TABLE call_records (
             id           INTEGER PRIMARY KEY,
             call_id      TEXT NOT NULL,
             caller       TEXT NOT NULL,
             callee       TEXT NOT NULL,
             started_ms   INTEGER NOT NULL,
             answered_ms  INTEGER,
             ended_ms     INTEGER NOT NULL,
             duration_s   INTEGER NOT NULL,
             disposition  TEXT NOT NULL,
             status       INTEGER NOT NULL,
             hangup       TEXT,
             answered_by  TEXT
         );
         CREATE INDEX call_records_ended ON call_records (ended_ms);",
    ),
    (
        4,
        "ALTER TABLE bindings ADD COLUMN behind_nat INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        5,
        "ALTER TABLE call_records ADD COLUMN caller_codec TEXT;
         ALTER TABLE call_records ADD COLUMN caller_packets INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE call_records ADD COLUMN caller_bytes INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE call_records ADD COLUMN caller_loss_permille INTEGER;
         ALTER TABLE call_records ADD COLUMN caller_jitter_us INTEGER;
         ALTER TABLE call_records ADD COLUMN callee_codec TEXT;
         ALTER TABLE call_records ADD COLUMN callee_packets INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE call_records ADD COLUMN callee_bytes INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE call_records ADD COLUMN callee_loss_permille INTEGER;
         ALTER TABLE call_records ADD COLUMN callee_jitter_us INTEGER;",
    ),
    (
        6,
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO counters VALUES ('subscribers', 0);
         CREATE TRIGGER subscribers_added AFTER INSERT ON subscribers
             BEGIN UPDATE counters SET value = value + 1 WHERE name = 'subscribers'; END;
         CREATE TRIGGER subscribers_changed AFTER UPDATE ON subscribers
             BEGIN UPDATE counters SET value = value + 1 WHERE name = 'subscribers'; END;
         CREATE TRIGGER subscribers_removed AFTER DELETE ON subscribers
             BEGIN UPDATE counters SET value = value + 1 WHERE name = 'subscribers'; END;",
    ),
    (
        7,
        "ALTER TABLE subscribers ADD COLUMN tls_only INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        8,
        "ALTER TABLE subscribers ADD COLUMN allowed_networks TEXT NOT NULL DEFAULT '';",
    ),
    (9, "ALTER TABLE bindings ADD COLUMN node TEXT NOT NULL DEFAULT '';"),
];

impl SqliteStore {
    /// The schema version this build migrates to.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;
}

pub struct SqliteStore {
    /// One connection, used by one thread at a time.
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| backend(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(backend)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
    Ok(conn)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl SqliteStore {
    /// Opens (creating the directory and file if needed) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| backend(format!("{}: {e}", dir.display())))?;
        }
        let conn = connect(path)?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens the store in a data directory (`DIR/switchboard.db`).
    pub fn open_in(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        Self::open(&data_dir.join(crate::DB_FILE))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A writer on its own connection, for a [`crate::GroupCommitter`] thread.
    pub fn batch_writer(&self) -> Result<SqliteBatchWriter, StoreError> {
        let conn = connect(&self.path)?;
        Ok(SqliteBatchWriter { conn })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| backend("connection lock poisoned"))?;
        f(&mut conn)
    }

    /// The schema version in the file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .map_err(backend)
        })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(backend)?;
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
            )
            .map_err(backend)?;
            let current: i64 = tx
                .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))
                .map_err(backend)?;
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                tx.execute_batch(sql).map_err(|e| backend(format!("migration {version}: {e}")))?;
                tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)", params![version, now()])
                    .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
    }
}

/// The columns [`row_to_subscriber`] reads, in its order.
const SUBSCRIBER_COLUMNS: &str = "domain, user, ha1_md5, ha1_sha256, tls_only, allowed_networks";

/// `allowed_networks` as stored: comma-separated, `''` for anywhere.
fn networks_column(networks: &[String]) -> String {
    networks.join(",")
}

fn row_to_subscriber(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscriber> {
    Ok(Subscriber {
        domain: r.get(0)?,
        user: r.get(1)?,
        ha1_md5: r.get(2)?,
        ha1_sha256: r.get(3)?,
        tls_only: r.get(4)?,
        allowed_networks: r
            .get::<_, String>(5)?
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl SubscriberStore for SqliteStore {
    fn add(&self, s: &Subscriber) -> Result<(), StoreError> {
        self.with(|c| {
            let t = now();
            let n = c
                .execute(
                    "INSERT INTO subscribers (domain, user, ha1_md5, ha1_sha256, tls_only, allowed_networks, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT DO NOTHING",
                    params![s.domain, s.user, s.ha1_md5, s.ha1_sha256, s.tls_only, networks_column(&s.allowed_networks), t],
                )
                .map_err(backend)?;
            if n == 0 { Err(StoreError::Exists) } else { Ok(()) }
        })
    }

    fn update(&self, s: &Subscriber) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c
                .execute(
                    "UPDATE subscribers SET ha1_md5 = ?3, ha1_sha256 = ?4, updated_at = ?5 WHERE domain = ?1 AND user = ?2",
                    params![s.domain, s.user, s.ha1_md5, s.ha1_sha256, now()],
                )
                .map_err(backend)?;
            if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
    }

    fn set_tls_only(&self, user: &str, domain: &str, tls_only: bool) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c
                .execute(
                    "UPDATE subscribers SET tls_only = ?3, updated_at = ?4 WHERE domain = ?1 AND user = ?2",
                    params![domain.to_ascii_lowercase(), user, tls_only, now()],
                )
                .map_err(backend)?;
            if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
    }

    fn set_allowed_networks(&self, user: &str, domain: &str, networks: &[String]) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c
                .execute(
                    "UPDATE subscribers SET allowed_networks = ?3, updated_at = ?4 WHERE domain = ?1 AND user = ?2",
                    params![domain.to_ascii_lowercase(), user, networks_column(networks), now()],
                )
                .map_err(backend)?;
            if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
    }

    fn remove(&self, user: &str, domain: &str) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c
                .execute(
                    "DELETE FROM subscribers WHERE domain = ?1 AND user = ?2",
                    params![domain.to_ascii_lowercase(), user],
                )
                .map_err(backend)?;
            if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
    }

    fn get(&self, user: &str, domain: &str) -> Result<Option<Subscriber>, StoreError> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE domain = ?1 AND user = ?2"
            ))
            .map_err(backend)?
            .query_row(params![domain.to_ascii_lowercase(), user], row_to_subscriber)
            .optional()
            .map_err(backend)
        })
    }

    /// A counter the schema's triggers bump on every change to `subscribers`, by any process;
    /// registrations and call records written meanwhile do not move it.
    fn generation(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.prepare_cached("SELECT value FROM counters WHERE name = 'subscribers'")
                .map_err(backend)?
                .query_row([], |r| r.get::<_, i64>(0))
                .map(|v| v as u64)
                .map_err(backend)
        })
    }

    /// One transaction (one fsync) for the whole slice.
    fn put_many(&self, subscribers: &[Subscriber]) -> Result<Vec<Put>, StoreError> {
        self.with(|c| {
            let tx = c.transaction().map_err(backend)?;
            let t = now();
            let mut done = Vec::with_capacity(subscribers.len());
            {
                let mut get = tx
                    .prepare_cached(&format!(
                        "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE domain = ?1 AND user = ?2"
                    ))
                    .map_err(backend)?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO subscribers (domain, user, ha1_md5, ha1_sha256, tls_only, allowed_networks, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                    )
                    .map_err(backend)?;
                let mut update = tx
                    .prepare_cached(
                        "UPDATE subscribers SET ha1_md5 = ?3, ha1_sha256 = ?4, updated_at = ?5 WHERE domain = ?1 AND user = ?2",
                    )
                    .map_err(backend)?;
                for s in subscribers {
                    let existing = get
                        .query_row(params![s.domain, s.user], row_to_subscriber)
                        .optional()
                        .map_err(backend)?;
                    done.push(match existing {
                        Some(e) if e.same_credentials(s) => Put::Unchanged,
                        Some(_) => {
                            update
                                .execute(params![s.domain, s.user, s.ha1_md5, s.ha1_sha256, t])
                                .map_err(backend)?;
                            Put::Updated
                        }
                        None => {
                            insert
                                .execute(params![
                                    s.domain,
                                    s.user,
                                    s.ha1_md5,
                                    s.ha1_sha256,
                                    s.tls_only,
                                    networks_column(&s.allowed_networks),
                                    t
                                ])
                                .map_err(backend)?;
                            Put::Added
                        }
                    });
                }
            }
            tx.commit().map_err(backend)?;
            Ok(done)
        })
    }

    fn list(&self, domain: Option<&str>) -> Result<Vec<Subscriber>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers
                     WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, user"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![domain.map(str::to_ascii_lowercase)], row_to_subscriber)
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }
}

fn replace_in(tx: &rusqlite::Transaction<'_>, aor: &str, bindings: &[Binding]) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM bindings WHERE aor = ?1")
        .map_err(backend)?
        .execute(params![aor])
        .map_err(backend)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO bindings (aor, contact, expires_at, q, call_id, cseq, source, conn, user_agent, behind_nat, node)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(backend)?;
    for b in bindings {
        insert
            .execute(params![
                aor,
                b.contact,
                b.expires_at as i64,
                b.q,
                b.call_id,
                b.cseq,
                b.source,
                b.conn as i64,
                b.user_agent,
                b.behind_nat,
                b.node
            ])
            .map_err(backend)?;
    }
    Ok(())
}

impl LocationStore for SqliteStore {
    fn replace(&self, aor: &str, bindings: &[Binding]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction().map_err(backend)?;
            replace_in(&tx, aor, bindings)?;
            tx.commit().map_err(backend)
        })
    }

    fn load(&self, now: u64) -> Result<Vec<Binding>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT aor, contact, expires_at, q, call_id, cseq, source, conn, user_agent, behind_nat, node
                     FROM bindings WHERE expires_at > ?1 ORDER BY aor, q DESC, contact",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![now as i64], |r| {
                    Ok(Binding {
                        aor: r.get(0)?,
                        contact: r.get(1)?,
                        expires_at: r.get::<_, i64>(2)? as u64,
                        q: r.get(3)?,
                        call_id: r.get(4)?,
                        cseq: r.get(5)?,
                        source: r.get(6)?,
                        conn: r.get::<_, i64>(7)? as u64,
                        user_agent: r.get(8)?,
                        behind_nat: r.get(9)?,
                        node: r.get(10)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    fn purge_expired(&self, now: u64) -> Result<usize, StoreError> {
        self.with(|c| {
            c.execute("DELETE FROM bindings WHERE expires_at <= ?1", params![now as i64])
                .map_err(backend)
        })
    }

    fn batch_writer(&self) -> Result<Box<dyn BatchWriter>, StoreError> {
        Ok(Box::new(SqliteStore::batch_writer(self)?))
    }
}

/// Writes batches of AOR binding sets in one transaction (one fsync) on its own connection.
pub struct SqliteBatchWriter {
    conn: Connection,
}

impl BatchWriter for SqliteBatchWriter {
    fn write_batch(&mut self, batch: &[(String, Vec<Binding>)]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        for (aor, bindings) in batch {
            replace_in(&tx, aor, bindings)?;
        }
        tx.commit().map_err(backend)
    }
}

impl RecordStore for SqliteStore {
    fn insert(&self, records: &[CallRecord]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction().map_err(backend)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO call_records (call_id, caller, callee, started_ms, answered_ms, ended_ms,
                             duration_s, disposition, status, hangup, answered_by,
                             caller_codec, caller_packets, caller_bytes, caller_loss_permille, caller_jitter_us,
                             callee_codec, callee_packets, callee_bytes, callee_loss_permille, callee_jitter_us)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                                 ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
                    )
                    .map_err(backend)?;
                for r in records {
                    insert
                        .execute(params![
                            r.call_id,
                            r.caller,
                            r.callee,
                            r.started_ms as i64,
                            r.answered_ms.map(|v| v as i64),
                            r.ended_ms as i64,
                            r.duration_secs() as i64,
                            r.disposition.as_str(),
                            r.status,
                            r.hangup,
                            r.answered_by,
                            r.caller_media.codec,
                            r.caller_media.packets as i64,
                            r.caller_media.bytes as i64,
                            r.caller_media.loss_permille,
                            r.caller_media.jitter_us,
                            r.callee_media.codec,
                            r.callee_media.packets as i64,
                            r.callee_media.bytes as i64,
                            r.callee_media.loss_permille,
                            r.callee_media.jitter_us
                        ])
                        .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
    }

    fn list_records(&self, since_ms: u64, until_ms: u64, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM call_records
                     WHERE ended_ms >= ?1 AND ended_ms < ?2 ORDER BY ended_ms, id LIMIT ?3"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![sql_int(since_ms), sql_int(until_ms), sql_int(limit as u64)],
                    |r| row_to_record(r).map(|(_, rec)| rec),
                )
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    fn page_records(
        &self,
        since_ms: u64,
        until_ms: u64,
        after: Option<RecordKey>,
        limit: usize,
    ) -> Result<Vec<(RecordKey, CallRecord)>, StoreError> {
        // Newest first; `after` is the last record of the previous page. The index on ended_ms
        // carries the rowid, so this walks the index backwards from the cursor.
        let (before_ms, before_seq) = after.map_or((i64::MAX, i64::MAX), |k| (sql_int(k.ended_ms), k.seq));
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM call_records
                     WHERE ended_ms >= ?1 AND ended_ms < ?2 AND (ended_ms, id) < (?3, ?4)
                     ORDER BY ended_ms DESC, id DESC LIMIT ?5"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![
                        sql_int(since_ms),
                        sql_int(until_ms),
                        before_ms,
                        before_seq,
                        sql_int(limit as u64)
                    ],
                    row_to_record,
                )
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }
}

/// The columns [`row_to_record`] reads, in its order.
const RECORD_COLUMNS: &str = "call_id, caller, callee, started_ms, answered_ms, ended_ms, disposition, status,
    hangup, answered_by,
    caller_codec, caller_packets, caller_bytes, caller_loss_permille, caller_jitter_us,
    callee_codec, callee_packets, callee_bytes, callee_loss_permille, callee_jitter_us, id";

/// SQLite integers are signed: values past `i64::MAX` (an open-ended `until`) clamp to it.
fn sql_int(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(RecordKey, CallRecord)> {
    let disposition: String = r.get(6)?;
    let record = CallRecord {
        call_id: r.get(0)?,
        caller: r.get(1)?,
        callee: r.get(2)?,
        started_ms: r.get::<_, i64>(3)? as u64,
        answered_ms: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
        ended_ms: r.get::<_, i64>(5)? as u64,
        disposition: Disposition::parse(&disposition).unwrap_or(Disposition::Failed),
        status: r.get(7)?,
        hangup: r.get(8)?,
        answered_by: r.get(9)?,
        caller_media: LegMedia {
            codec: r.get(10)?,
            packets: r.get::<_, i64>(11)? as u64,
            bytes: r.get::<_, i64>(12)? as u64,
            loss_permille: r.get(13)?,
            jitter_us: r.get(14)?,
        },
        callee_media: LegMedia {
            codec: r.get(15)?,
            packets: r.get::<_, i64>(16)? as u64,
            bytes: r.get::<_, i64>(17)? as u64,
            loss_permille: r.get(18)?,
            jitter_us: r.get(19)?,
        },
    };
    let key = RecordKey {
        ended_ms: record.ended_ms,
        seq: r.get(20)?,
    };
    Ok((key, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(call_id: &str, ended_ms: u64) -> CallRecord {
        CallRecord {
            call_id: call_id.into(),
            caller: "1000".into(),
            callee: "1001".into(),
            started_ms: ended_ms.saturating_sub(5_000),
            answered_ms: None,
            ended_ms,
            disposition: Disposition::Busy,
            status: 486,
            hangup: None,
            answered_by: None,
            caller_media: LegMedia::default(),
            callee_media: LegMedia::default(),
        }
    }

    fn ids(page: &[(RecordKey, CallRecord)]) -> Vec<&str> {
        page.iter().map(|(_, r)| r.call_id.as_str()).collect()
    }

    #[test]
    fn subscribers_of_schema_6_come_through_migration_7_as_not_tls_only() {
        let dir = std::env::temp_dir().join(format!("store-v6-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(crate::DB_FILE);
        {
            // A file as a build of schema 6 left it.
            let c = connect(&path).expect("connect");
            c.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
            )
            .expect("table");
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 6) {
                c.execute_batch(sql).expect("migration");
                c.execute("INSERT INTO schema_migrations VALUES (?1, 0)", params![version])
                    .expect("version");
            }
            let old = Subscriber::new("1000", "example.com", "pw").expect("valid");
            c.execute(
                "INSERT INTO subscribers VALUES (?1, ?2, ?3, ?4, 0, 0)",
                params![old.domain, old.user, old.ha1_md5, old.ha1_sha256],
            )
            .expect("old row");
        }
        let store = SqliteStore::open(&path).expect("open and migrate");
        assert_eq!(store.schema_version().expect("version"), SqliteStore::SCHEMA_VERSION);
        let s = store.get("1000", "example.com").expect("get").expect("kept");
        assert!(!s.tls_only);
        assert!(s.allowed_networks.is_empty(), "migration 8: allowed from anywhere");
        assert!(s.same_credentials(&Subscriber::new("1000", "example.com", "pw").expect("valid")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pages_newest_first_without_repeats_while_records_arrive() {
        let dir = std::env::temp_dir().join(format!("store-page-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open_in(&dir).expect("store");
        // Two records end in the same millisecond: the one stored later comes first.
        store
            .insert(&[
                record("a", 1_000),
                record("b", 2_000),
                record("c", 2_000),
                record("d", 3_000),
            ])
            .expect("insert");
        let p1 = store.page_records(0, u64::MAX, None, 2).expect("page 1");
        assert_eq!(ids(&p1), ["d", "c"]);
        // A record arrives between pages: it sorts before the cursor and does not shift page 2.
        store
            .insert(&[record("e", 4_000), record("f", 2_000)])
            .expect("insert more");
        let p2 = store
            .page_records(0, u64::MAX, p1.last().map(|(k, _)| *k), 2)
            .expect("page 2");
        assert_eq!(ids(&p2), ["b", "a"]);
        let p3 = store
            .page_records(0, u64::MAX, p2.last().map(|(k, _)| *k), 2)
            .expect("page 3");
        assert!(p3.is_empty());
        // Time filters: [since, until).
        let window = store.page_records(2_000, 4_000, None, 10).expect("window");
        assert_eq!(ids(&window), ["d", "f", "c", "b"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
