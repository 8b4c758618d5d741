//! # store — what switchboard keeps across restarts
//!
//! Traits for each kind of data, so the backend can change without the rest of the code
//! changing, and the embedded SQLite backend that makes `switchboard serve` work on a bare
//! machine. Today: subscribers, location bindings (with group commit) and call records; Redis and PostgreSQL backends with the multi-node issue.
//!
//! Passwords are never stored: a subscriber is kept as its digest HA1 values for its realm (the
//! domain), MD5 and SHA-256 (RFC 7616, RFC 8760).

mod location;
mod records;
mod sqlite;
mod subscribers;

pub use location::{BatchWriter, Binding, GroupCommitter, LocationStore, Write};
pub use records::{CallRecord, Disposition, LegMedia, RecordKey, RecordStore, RecordWriter};
pub use sqlite::{SqliteBatchWriter, SqliteStore};
pub use subscribers::{Put, StoreError, Subscriber, SubscriberCache, SubscriberStore};

/// The file of the embedded store inside a data directory.
pub const DB_FILE: &str = "switchboard.db";
