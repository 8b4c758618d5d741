//! # store — what switchboard keeps across restarts
//!
//! Traits for each kind of data, so the backend can change without the rest of the code
//! changing: subscribers, location bindings (with group commit) and call records. Backends,
//! chosen by URL ([`Stores::open`]):
//!
//! - SQLite, embedded: every kind, the default, so `switchboard serve` works on a bare machine;
//! - PostgreSQL: subscribers and call records, shared by several nodes;
//! - Redis: location bindings (expiry as key TTL) and the [`Cluster`] state the nodes share.
//!
//! Passwords are never stored: a subscriber is kept as its digest HA1 values for its realm (the
//! domain), MD5 and SHA-256 (RFC 7616, RFC 8760).

mod cluster;
mod location;
mod open;
mod postgres;
mod records;
mod redis;
mod sqlite;
mod subscribers;

pub use cluster::{Cluster, LocationChange, NodeInfo};
pub use location::{BatchWriter, Binding, GroupCommitter, LocationStore, Write};
pub use open::{Backend, DEFAULT_PREFIX, StoreUrls, Stores, open_locations, open_records, open_subscribers, redact};
pub use postgres::PgStore;
pub use records::{CallRecord, Disposition, LegMedia, RecordKey, RecordStore, RecordWriter};
pub use redis::RedisLocations;
pub use sqlite::{SqliteBatchWriter, SqliteStore};
pub use subscribers::{Put, StoreError, Subscriber, SubscriberCache, SubscriberStore};

/// The file of the embedded store inside a data directory.
pub const DB_FILE: &str = "switchboard.db";
