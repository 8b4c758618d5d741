//! The embedded store: one SQLite file in the data directory, created on first use, in WAL mode
//! so the CLI can write while a server reads, with `synchronous=FULL` (a write is on disk when
//! the call returns) and versioned schema migrations.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::location::{BatchWriter, Binding, LocationStore};
use crate::subscribers::{StoreError, Subscriber, SubscriberStore};

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

fn row_to_subscriber(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscriber> {
    Ok(Subscriber {
        domain: r.get(0)?,
        user: r.get(1)?,
        ha1_md5: r.get(2)?,
        ha1_sha256: r.get(3)?,
    })
}

impl SubscriberStore for SqliteStore {
    fn add(&self, s: &Subscriber) -> Result<(), StoreError> {
        self.with(|c| {
            let t = now();
            let n = c
                .execute(
                    "INSERT INTO subscribers (domain, user, ha1_md5, ha1_sha256, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT DO NOTHING",
                    params![s.domain, s.user, s.ha1_md5, s.ha1_sha256, t],
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
            c.query_row(
                "SELECT domain, user, ha1_md5, ha1_sha256 FROM subscribers WHERE domain = ?1 AND user = ?2",
                params![domain.to_ascii_lowercase(), user],
                row_to_subscriber,
            )
            .optional()
            .map_err(backend)
        })
    }

    fn list(&self, domain: Option<&str>) -> Result<Vec<Subscriber>, StoreError> {
        self.with(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT domain, user, ha1_md5, ha1_sha256 FROM subscribers
                     WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, user",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![domain.map(str::to_ascii_lowercase)], row_to_subscriber)
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }
}

fn replace_in(tx: &rusqlite::Transaction<'_>, aor: &str, bindings: &[Binding]) -> Result<(), StoreError> {
    tx.execute("DELETE FROM bindings WHERE aor = ?1", params![aor])
        .map_err(backend)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO bindings (aor, contact, expires_at, q, call_id, cseq, source, conn, user_agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
                b.user_agent
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
                    "SELECT aor, contact, expires_at, q, call_id, cseq, source, conn, user_agent
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
