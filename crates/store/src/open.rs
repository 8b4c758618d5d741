//! Choosing a backend by URL (`--store-subscribers`, `--store-locations`, `--store-records`):
//! `sqlite://PATH` (a file, or a directory holding `switchboard.db`), `postgres://…` for
//! subscribers and call records, `redis://…` (`rediss://`, `redis+unix://`) for locations, with
//! an optional `prefix=` query parameter naming the key prefix (default `switchboard:`). Without
//! a URL each kind lives in the embedded store in the data directory.
//!
//! Locations behind Redis Sentinel:
//! `redis+sentinel://[user:password@]host1[:port],host2[:port],…/MASTER_NAME[/DB][?prefix=P]`:
//! the sentinels (port 26379 when none is given), the name they monitor the master under, the
//! database (0 when none is given). The user and password are the master's; the sentinels are
//! asked without credentials.
//!
//! The rest of the program holds the stores as trait objects, so nothing else changes with the
//! backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cluster::Cluster;
use crate::location::LocationStore;
use crate::records::RecordStore;
use crate::sqlite::SqliteStore;
use crate::subscribers::{StoreError, SubscriberStore};

/// The URLs given for each kind of data (`None`: the embedded store in the data directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreUrls {
    pub subscribers: Option<String>,
    pub locations: Option<String>,
    pub records: Option<String>,
}

/// Every store a server uses, opened.
#[derive(Clone)]
pub struct Stores {
    pub subscribers: Arc<dyn SubscriberStore>,
    pub locations: Arc<dyn LocationStore>,
    pub records: Arc<dyn RecordStore>,
    /// Shared platform state, when the locations are in a shared store.
    pub cluster: Option<Arc<dyn Cluster>>,
    /// The subscribers are behind a network round trip (PostgreSQL): the server then keeps all
    /// of its domain's subscribers in memory, reloaded in the background, and never asks the
    /// store on the SIP path (see [`crate::SubscriberCache::load_all`]).
    pub subscribers_remote: bool,
}

/// The key prefix when a Redis URL names none.
pub const DEFAULT_PREFIX: &str = "switchboard:";

/// What a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
    /// The URL without its `prefix` parameter, and the prefix.
    Redis {
        url: String,
        prefix: String,
    },
}

impl Backend {
    /// Parses a store URL; `None` is the embedded store in `data_dir`.
    pub fn parse(url: Option<&str>, data_dir: &Path) -> Result<Backend, StoreError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Backend::Sqlite(data_dir.join(crate::DB_FILE)));
        };
        let scheme = url.split_once(':').map_or("", |(s, _)| s).to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => {
                let path = url["sqlite:".len()..].trim_start_matches("//");
                if path.is_empty() {
                    return Err(StoreError::Invalid(format!("{url}: sqlite:// needs a path")));
                }
                let path = PathBuf::from(path);
                Ok(Backend::Sqlite(if path.is_dir() || path.extension().is_none() {
                    path.join(crate::DB_FILE)
                } else {
                    path
                }))
            }
            "postgres" | "postgresql" => Ok(Backend::Postgres(url.to_owned())),
            "redis" | "rediss" | "redis+unix" | "unix" | "redis+sentinel" => {
                let (url, prefix) = split_prefix(url);
                Ok(Backend::Redis { url, prefix })
            }
            _ => Err(StoreError::Invalid(format!(
                "{}: unknown store (expected sqlite://, postgres:// or redis://)",
                redact(url)
            ))),
        }
    }
}

/// Takes the `prefix=` query parameter off a Redis URL.
fn split_prefix(url: &str) -> (String, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), DEFAULT_PREFIX.to_owned());
    };
    let mut prefix = DEFAULT_PREFIX.to_owned();
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("prefix=") {
            Some(p) => {
                prefix = p.to_owned();
                false
            }
            None => !kv.is_empty(),
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, prefix)
}

/// A URL with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn unsupported(kind: &str, url: &str, expected: &str) -> StoreError {
    StoreError::Invalid(format!("{}: not a store for {kind} (use {expected})", redact(url)))
}

/// Opens the subscriber store `url` names (`None`: the embedded store in `data_dir`).
pub fn open_subscribers(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn SubscriberStore>, StoreError> {
    match Backend::parse(url, data_dir)? {
        Backend::Sqlite(path) => Ok(Arc::new(SqliteStore::open(&path)?)),
        Backend::Postgres(url) => Ok(Arc::new(crate::postgres::PgStore::connect(&url)?)),
        Backend::Redis { .. } => Err(unsupported(
            "subscribers",
            url.unwrap_or_default(),
            "sqlite:// or postgres://",
        )),
    }
}

/// Opens the call-record store `url` names.
pub fn open_records(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn RecordStore>, StoreError> {
    match Backend::parse(url, data_dir)? {
        Backend::Sqlite(path) => Ok(Arc::new(SqliteStore::open(&path)?)),
        Backend::Postgres(url) => Ok(Arc::new(crate::postgres::PgStore::connect(&url)?)),
        Backend::Redis { .. } => Err(unsupported(
            "call records",
            url.unwrap_or_default(),
            "sqlite:// or postgres://",
        )),
    }
}

/// A location store, and the cluster state that comes with a shared one.
pub type LocationBackend = (Arc<dyn LocationStore>, Option<Arc<dyn Cluster>>);

/// Opens the location store `url` names, with the cluster state when it is shared.
pub fn open_locations(url: Option<&str>, data_dir: &Path, node_id: &str) -> Result<LocationBackend, StoreError> {
    match Backend::parse(url, data_dir)? {
        Backend::Sqlite(path) => Ok((Arc::new(SqliteStore::open(&path)?), None)),
        Backend::Redis { url, prefix } => {
            let redis = Arc::new(crate::redis::RedisLocations::connect(&url, &prefix, node_id)?);
            Ok((redis.clone(), Some(redis)))
        }
        Backend::Postgres(_) => Err(unsupported(
            "locations",
            url.unwrap_or_default(),
            "sqlite:// or redis://",
        )),
    }
}

impl Stores {
    /// Opens every store; `node_id` names this node in a shared location store.
    pub fn open(urls: &StoreUrls, data_dir: &Path, node_id: &str) -> Result<Stores, StoreError> {
        let (locations, cluster) = open_locations(urls.locations.as_deref(), data_dir, node_id)?;
        let subscribers_remote = matches!(
            Backend::parse(urls.subscribers.as_deref(), data_dir)?,
            Backend::Postgres(_)
        );
        Ok(Stores {
            subscribers_remote,
            subscribers: open_subscribers(urls.subscribers.as_deref(), data_dir)?,
            locations,
            records: open_records(urls.records.as_deref(), data_dir)?,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let dir = Path::new("/var/lib/sb");
        assert_eq!(
            Backend::parse(None, dir).ok(),
            Some(Backend::Sqlite(dir.join("switchboard.db")))
        );
        assert_eq!(
            Backend::parse(Some("sqlite:///tmp/x.db"), dir).ok(),
            Some(Backend::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            Backend::parse(Some("redis://127.0.0.1:6379/2?prefix=t1:"), dir).ok(),
            Some(Backend::Redis {
                url: "redis://127.0.0.1:6379/2".into(),
                prefix: "t1:".into()
            })
        );
        assert_eq!(
            Backend::parse(Some("redis://h/0?protocol=resp3&prefix=a:"), dir).ok(),
            Some(Backend::Redis {
                url: "redis://h/0?protocol=resp3".into(),
                prefix: "a:".into()
            })
        );
        assert_eq!(
            Backend::parse(Some("redis+sentinel://u:pw@s1:26379,s2/mymaster/3?prefix=p:"), dir).ok(),
            Some(Backend::Redis {
                url: "redis+sentinel://u:pw@s1:26379,s2/mymaster/3".into(),
                prefix: "p:".into()
            })
        );
        assert_eq!(
            redact("redis+sentinel://u:pw@s1:26379,s2/mymaster/3"),
            "redis+sentinel://u:***@s1:26379,s2/mymaster/3"
        );
        assert_eq!(redact("redis+sentinel://:pw@s1,s2/m"), "redis+sentinel://:***@s1,s2/m");
        assert!(matches!(
            Backend::parse(Some("postgresql://u@h/db"), dir),
            Ok(Backend::Postgres(_))
        ));
        let err = Backend::parse(Some("mysql://u:secret@h/db"), dir)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("mysql://u:***@h/db: unknown store (expected sqlite://, postgres:// or redis://)")
        );
    }

    #[test]
    fn kinds_refuse_other_backends() {
        let dir = Path::new("/nonexistent");
        assert!(open_subscribers(Some("redis://127.0.0.1/"), dir).is_err());
        assert!(open_locations(Some("postgres://u:pw@h/db"), dir, "a").is_err_and(|e| !e.to_string().contains("pw")));
    }
}
