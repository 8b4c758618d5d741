//! Redis backend for location bindings and the cluster state the nodes share ([`Cluster`]), on
//! the synchronous `redis` client (no async runtime in the store).
//!
//! ## Keys (every one starts with the prefix, `switchboard:` unless the URL says `prefix=`)
//!
//! - `{prefix}loc:{aor}`: the AOR's whole binding set, a JSON array of objects (`contact`,
//!   `expires_at`, `q`, `call_id`, `cseq`, `source`, `conn`, `user_agent`, `behind_nat`, `node`;
//!   the AOR is the key), written with `SET … EXAT <latest expires_at>`, so Redis deletes the key
//!   once its last binding has expired. Readers drop the bindings of a set whose own `expires_at`
//!   has passed; `purge_expired` has nothing to do. An empty set, or one whose every binding has
//!   already expired, is a `DEL`. Expiry times are Unix seconds compared with Redis's clock and
//!   each node's: keep the clocks synchronised (NTP).
//! - `{prefix}loc-changes`: pub/sub channel; every write publishes, in the same `MULTI`/`EXEC` as
//!   the write, one message per AOR: `{"node": <writer's node id>, "aor": <aor>}`.
//! - `{prefix}node:{id}`: a node's announcement, JSON `{"id", "sip"}`, with a `PX` time-to-live.
//! - `{prefix}secret`: the shared secret, 64 hex digits, set once (`SET NX`: the first node wins).
//!
//! ## Connections
//!
//! One client; the calls of [`RedisLocations`] share one connection (under a lock), each batch
//! writer and each `watch` has its own. Every connection has 2 s connect, read and write
//! timeouts and TCP keepalive, so a dead Redis makes a call fail instead of hanging it; a
//! connection that failed is dropped and the next call opens a new one (a call that finds its
//! idle connection closed, e.g. by Redis's `timeout` or a restart, retries once on a new one:
//! every call here can be repeated, a repeated write at worst publishing its change twice).
//!
//! ## Sentinel
//!
//! `redis+sentinel://[user:password@]host1[:port],host2[:port],…/MASTER_NAME[/DB][?prefix=P]`
//! names the sentinels (port 26379 when none is given) and the name they monitor the master
//! under. Every connection, the first one and each reconnection (the shared one, each batch
//! writer's, each `watch`'s), asks the sentinels in turn `SENTINEL get-master-addr-by-name`,
//! connects to the address the first one that knows the name gives, and checks with `ROLE` that
//! it is a master (a sentinel that has not yet seen a failover names the demoted one: the next
//! sentinel is asked). A connection that fails is dropped, as above, and so is one whose write
//! the old master refuses once demoted (`READONLY`): the next call reconnects, through the
//! sentinels, to the new master. The user and password (and the database) are the
//! master's; the sentinels are asked without credentials. The sentinel connections have the same
//! 2 s timeouts; the `redis` crate's own sentinel client is not used because it connects
//! without any.
//!
//! ## Durability
//!
//! Redis acknowledges a write once it is in memory: "the 200 is sent only once the binding is
//! durable" holds only as far as the server's persistence is configured. For no acknowledged
//! binding lost to a crash of Redis, run it with `appendonly yes` and `appendfsync always`
//! (an fsync per `EXEC`, which group commit shares between the REGISTERs of a batch);
//! `appendfsync everysec` loses up to about a second of registrations; RDB snapshots alone lose
//! everything since the last snapshot. (`WAITAOF`, which would let a client wait for the fsync,
//! needs Redis 7.2.) A replica promoted by failover may miss the last writes of its master.
//!
//! ## Not supported
//!
//! Redis Cluster: the key scans (`SCAN` is per shard), the multi-key `MGET` and the transaction
//! across several AORs would need per-slot routing that the synchronous cluster client does not
//! do for us; use a single primary (with replicas), directly or through Sentinel. Sentinels that
//! themselves require a password (`requirepass` in the sentinel configuration). TLS
//! (`rediss://`) is refused with an error: the `redis` crate's `tls-rustls` feature needs rustls
//! with a crypto provider chosen, and without one in this crate's dependencies it panics on
//! connect.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{Client, Connection, ConnectionInfo, IntoConnectionInfo, RedisError, RedisResult, Role};
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, LocationChange, NodeInfo};
use crate::location::{BatchWriter, Binding, LocationStore};
use crate::open::redact;
use crate::subscribers::StoreError;

/// Connect, read and write timeout of every connection.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How long `watch` waits for a message before it looks at `stop` again.
const WATCH_POLL: Duration = Duration::from_millis(400);
/// Keys asked per `SCAN` step (and so, about, per `MGET`).
const SCAN_COUNT: usize = 1000;
/// A sentinel's port when its address has none.
const SENTINEL_PORT: u16 = 26379;

/// The location store and cluster state on one Redis server.
pub struct RedisLocations {
    link: Mutex<Link>,
    names: Names,
}

/// Where the connections go.
#[derive(Clone)]
enum Target {
    /// One server.
    Server(Client),
    /// The master the sentinels name at the time.
    Sentinel(Arc<Sentinels>),
}

/// What every connection needs to know: where, and the key names.
#[derive(Clone)]
struct Names {
    target: Target,
    /// The URL with its password hidden, for messages.
    url: String,
    prefix: String,
    node: String,
}

impl Names {
    fn loc_key(&self, aor: &str) -> String {
        format!("{}loc:{aor}", self.prefix)
    }
    fn node_key(&self, id: &str) -> String {
        format!("{}node:{id}", self.prefix)
    }
    fn secret_key(&self) -> String {
        format!("{}secret", self.prefix)
    }
    fn channel(&self) -> String {
        format!("{}loc-changes", self.prefix)
    }
    /// A `SCAN MATCH` pattern for the keys that start with `{prefix}{what}`.
    fn pattern(&self, what: &str) -> String {
        let mut p = String::with_capacity(self.prefix.len() + what.len() + 2);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push_str(what);
        p.push('*');
        p
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend(format!("redis {}: {e}", self.url))
    }

    /// A new connection with the timeouts set (through the sentinels: to the current master).
    fn open(&self) -> Result<Connection, StoreError> {
        match &self.target {
            Target::Server(client) => timed(client).map_err(|e| self.error(e)),
            Target::Sentinel(sentinels) => sentinels.open_master().map_err(|e| self.error(e)),
        }
    }
}

/// A new connection to `client`'s server with the connect, read and write timeouts.
fn timed(client: &Client) -> RedisResult<Connection> {
    let conn = client.get_connection_with_timeout(TIMEOUT)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.set_write_timeout(Some(TIMEOUT))?;
    Ok(conn)
}

/// The sentinels of a `redis+sentinel://` URL and how to reach the master they name.
struct Sentinels {
    /// Each sentinel's `host:port`, for messages, and its client.
    sentinels: Vec<(String, Client)>,
    /// The name the sentinels monitor the master under.
    master: String,
    /// The URL's `user:password@` as written (percent-encoded), or empty.
    userinfo: String,
    db: i64,
    tcp: TcpSettings,
}

impl Sentinels {
    /// Parses `redis+sentinel://[user:password@]host[:port],…/MASTER_NAME[/DB]` (the `prefix=`
    /// parameter already taken off). The message of an error holds no password.
    fn parse(url: &str, tcp: &TcpSettings) -> Result<Sentinels, String> {
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !query.is_empty() {
            return Err("a sentinel URL takes no query parameter but prefix=".into());
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (format!("{user}@"), hosts),
            None => (String::new(), authority),
        };
        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim) {
            if host.is_empty() {
                return Err(
                    "expected redis+sentinel://host[:port],…/MASTER_NAME[/DB]: a sentinel address is empty".into(),
                );
            }
            let has_port = match host.strip_prefix('[') {
                Some(v6) => v6.contains("]:"),
                None => host.contains(':'),
            };
            let addr = if has_port {
                host.to_owned()
            } else {
                format!("{host}:{SENTINEL_PORT}")
            };
            let info = format!("redis://{addr}/")
                .into_connection_info()
                .map_err(|e| format!("sentinel {addr}: {e}"))?;
            let client =
                Client::open(info.set_tcp_settings(tcp.clone())).map_err(|e| format!("sentinel {addr}: {e}"))?;
            sentinels.push((addr, client));
        }
        let mut segments = path.split('/');
        let master = segments.next().unwrap_or_default();
        if master.is_empty() {
            return Err("expected redis+sentinel://host[:port],…/MASTER_NAME[/DB]: no master name".into());
        }
        let db = match segments.next() {
            None | Some("") => 0,
            Some(db) => db.parse::<i64>().map_err(|_| format!("{db}: not a database number"))?,
        };
        if segments.any(|s| !s.is_empty()) {
            return Err("expected redis+sentinel://host[:port],…/MASTER_NAME[/DB]: too many path segments".into());
        }
        let sentinels = Sentinels {
            sentinels,
            master: master.to_owned(),
            userinfo,
            db,
            tcp: tcp.clone(),
        };
        // The credentials and database, checked now rather than at the first connection.
        sentinels.master_info("127.0.0.1", SENTINEL_PORT)?;
        Ok(sentinels)
    }

    /// How to connect to the master at `host:port`.
    fn master_info(&self, host: &str, port: u16) -> Result<ConnectionInfo, String> {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let info = format!("redis://{}{host}:{port}/{}", self.userinfo, self.db)
            .into_connection_info()
            .map_err(|e| format!("master {host}:{port}: {e}"))?;
        Ok(info.set_tcp_settings(self.tcp.clone()))
    }

    /// A connection to the current master: the first sentinel that names one that answers as
    /// a master wins; otherwise every sentinel's failure, in the error.
    fn open_master(&self) -> Result<Connection, String> {
        let mut failures = Vec::with_capacity(self.sentinels.len());
        for (addr, sentinel) in &self.sentinels {
            match self.ask(sentinel) {
                Ok(conn) => return Ok(conn),
                Err(e) => failures.push(format!("sentinel {addr}: {e}")),
            }
        }
        Err(format!(
            "no sentinel gave a master named {}: {}",
            self.master,
            failures.join("; ")
        ))
    }

    /// Asks one sentinel for the master's address and connects to it.
    fn ask(&self, sentinel: &Client) -> Result<Connection, String> {
        let mut conn = timed(sentinel).map_err(|e| e.to_string())?;
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master)
            .query(&mut conn)
            .map_err(|e| e.to_string())?;
        drop(conn);
        let Some((host, port)) = addr else {
            return Err(format!("monitors no master named {}", self.master));
        };
        let info = self.master_info(&host, port)?;
        let mut conn = Client::open(info)
            .and_then(|c| timed(&c))
            .map_err(|e| format!("master {host}:{port}: {e}"))?;
        let role: Role = redis::cmd("ROLE")
            .query(&mut conn)
            .map_err(|e| format!("master {host}:{port}: {e}"))?;
        if !matches!(role, Role::Primary { .. }) {
            return Err(format!("master {host}:{port} is not a master (a failover under way?)"));
        }
        Ok(conn)
    }
}

/// A connection opened on demand and dropped after an error.
struct Link {
    names: Names,
    conn: Option<Connection>,
}

impl Link {
    fn new(names: Names) -> Link {
        Link { names, conn: None }
    }

    /// Runs `f` on the connection, opening it first if needed. When a connection that was
    /// already open fails on I/O (closed while idle), `f` runs once more on a new one; `f` must
    /// therefore be safe to repeat.
    fn run<T>(&mut self, mut f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T, StoreError> {
        let reused = self.conn.is_some();
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.names.open()?,
        };
        match f(&mut conn) {
            Ok(v) => {
                self.conn = Some(conn);
                Ok(v)
            }
            Err(e) if reused && e.is_connection_dropped() && !e.is_timeout() => {
                drop(conn);
                let mut conn = self.names.open()?;
                let v = f(&mut conn).map_err(|e| self.names.error(e))?;
                self.conn = Some(conn);
                Ok(v)
            }
            Err(e) => Err(self.names.error(e)),
        }
    }
}

/// A binding as stored in the JSON array of its AOR's key.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    contact: Cow<'a, str>,
    expires_at: u64,
    q: u16,
    call_id: Cow<'a, str>,
    cseq: u32,
    source: Cow<'a, str>,
    conn: u64,
    #[serde(default)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(default)]
    behind_nat: bool,
    #[serde(default)]
    node: Cow<'a, str>,
}

impl<'a> Stored<'a> {
    fn of(b: &'a Binding) -> Stored<'a> {
        Stored {
            contact: Cow::Borrowed(&b.contact),
            expires_at: b.expires_at,
            q: b.q,
            call_id: Cow::Borrowed(&b.call_id),
            cseq: b.cseq,
            source: Cow::Borrowed(&b.source),
            conn: b.conn,
            user_agent: b.user_agent.as_deref().map(Cow::Borrowed),
            behind_nat: b.behind_nat,
            node: Cow::Borrowed(&b.node),
        }
    }

    fn into_binding(self, aor: &str) -> Binding {
        Binding {
            aor: aor.to_owned(),
            contact: self.contact.into_owned(),
            expires_at: self.expires_at,
            q: self.q,
            call_id: self.call_id.into_owned(),
            cseq: self.cseq,
            source: self.source.into_owned(),
            conn: self.conn,
            user_agent: self.user_agent.map(Cow::into_owned),
            behind_nat: self.behind_nat,
            node: self.node.into_owned(),
        }
    }
}

/// A node's announcement.
#[derive(Serialize, Deserialize)]
struct StoredNode<'a> {
    id: Cow<'a, str>,
    sip: Cow<'a, str>,
}

/// A message on the change channel.
#[derive(Serialize, Deserialize)]
struct Change<'a> {
    node: Cow<'a, str>,
    aor: Cow<'a, str>,
    /// The set as written (empty when the AOR was removed), so the other nodes need not read
    /// the key back: at 20,000 REGISTERs a second on two nodes that read-back was a third of a
    /// core of Redis. Absent in messages of older versions.
    #[serde(default, borrow)]
    bindings: Option<Vec<Stored<'a>>>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The bindings of one AOR's stored set that have not expired at `now`; a value that is not a
/// binding set is reported and skipped.
fn parse_set(aor: &str, json: &str, now: u64, out: &mut Vec<Binding>) {
    match serde_json::from_str::<Vec<Stored<'_>>>(json) {
        Ok(set) => out.extend(
            set.into_iter()
                .filter(|b| b.expires_at > now)
                .map(|b| b.into_binding(aor)),
        ),
        Err(e) => tracing::warn!(aor, error = %e, "redis: skipping a location key that is not a binding set"),
    }
}

/// Sorts bindings as the embedded store returns them: by AOR, best q first, then contact.
fn sort_bindings(bindings: &mut [Binding]) {
    bindings.sort_by(|a, b| {
        (a.aor.as_str(), std::cmp::Reverse(a.q), a.contact.as_str()).cmp(&(
            b.aor.as_str(),
            std::cmp::Reverse(b.q),
            b.contact.as_str(),
        ))
    });
}

/// The transaction that writes `batch` (a later entry for the same AOR wins) and publishes one
/// change per AOR.
fn write_pipeline(names: &Names, batch: &[(&str, &[Binding])], now: u64) -> Result<redis::Pipeline, StoreError> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut written: HashSet<&str> = HashSet::with_capacity(batch.len());
    let mut aors: Vec<(&str, Vec<Stored<'_>>)> = Vec::with_capacity(batch.len());
    for &(aor, bindings) in batch.iter().rev() {
        if !written.insert(aor) {
            continue;
        }
        // One binding per contact, the last one given (the embedded store's primary key).
        let mut contacts = HashSet::with_capacity(bindings.len());
        let mut set: Vec<Stored<'_>> = bindings
            .iter()
            .rev()
            .filter(|b| contacts.insert(b.contact.as_str()))
            .map(Stored::of)
            .collect();
        set.reverse();
        let key = names.loc_key(aor);
        match set.iter().map(|b| b.expires_at).max() {
            Some(latest) if latest > now => {
                let json = serde_json::to_string(&set).map_err(|e| names.error(e))?;
                pipe.cmd("SET").arg(&key).arg(json).arg("EXAT").arg(latest).ignore();
            }
            _ => {
                pipe.cmd("DEL").arg(&key).ignore();
                set.clear();
            }
        }
        aors.push((aor, set));
    }
    let channel = names.channel();
    for (aor, set) in aors.into_iter().rev() {
        let change = Change {
            node: Cow::Borrowed(&names.node),
            aor: Cow::Borrowed(aor),
            bindings: Some(set),
        };
        let json = serde_json::to_string(&change).map_err(|e| names.error(e))?;
        pipe.cmd("PUBLISH").arg(&channel).arg(json).ignore();
    }
    Ok(pipe)
}

fn write(link: &mut Link, batch: &[(&str, &[Binding])]) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let pipe = write_pipeline(&link.names, batch, unix_now())?;
    link.run(|c| pipe.exec(c))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim().as_bytes();
    if s.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

impl RedisLocations {
    /// Connects to `url` (`redis://[user:password@]host:port/db`, `redis+unix:///path`,
    /// `redis+sentinel://[user:password@]host:port,…/MASTER_NAME[/DB]`) and checks that the
    /// server answers; every key starts with `prefix`; changes are published as written by
    /// `node_id`.
    pub fn connect(url: &str, prefix: &str, node_id: &str) -> Result<RedisLocations, StoreError> {
        let shown = redact(url);
        let tcp = TcpSettings::default()
            .set_nodelay(true)
            .set_keepalive(
                TcpKeepalive::new()
                    .with_time(Duration::from_secs(5))
                    .with_interval(Duration::from_secs(2))
                    .with_retries(3),
            )
            .set_user_timeout(Duration::from_secs(10));
        let invalid = |e: &dyn std::fmt::Display| StoreError::Invalid(format!("{shown}: {e}"));
        let sentinel = url
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("redis+sentinel"));
        let target = if sentinel {
            Target::Sentinel(Arc::new(Sentinels::parse(url, &tcp).map_err(|e| invalid(&e))?))
        } else {
            let info = url.into_connection_info().map_err(|e| invalid(&e))?;
            Target::Server(Client::open(info.set_tcp_settings(tcp)).map_err(|e| invalid(&e))?)
        };
        let names = Names {
            target,
            url: shown,
            prefix: prefix.to_owned(),
            node: node_id.to_owned(),
        };
        let mut link = Link::new(names.clone());
        link.run(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(RedisLocations {
            link: Mutex::new(link),
            names,
        })
    }

    fn with<T>(&self, f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T, StoreError> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner).run(f)
    }

    /// Every key that starts with `{prefix}{what}` and its value (keys gone between the scan
    /// and the read are left out), one `SCAN` step and one `MGET` at a time.
    fn scan(&self, what: &str, mut each: impl FnMut(&str, &str)) -> Result<(), StoreError> {
        let pattern = self.names.pattern(what);
        let mut seen: HashSet<String> = HashSet::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys, values) = self.with(|c| {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .cursor_arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query(c)?;
                // SCAN may return a key more than once.
                let keys: Vec<String> = keys.into_iter().filter(|k| !seen.contains(k)).collect();
                let values: Vec<Option<String>> = if keys.is_empty() {
                    Vec::new()
                } else {
                    redis::cmd("MGET").arg(&keys).query(c)?
                };
                Ok((next, keys, values))
            })?;
            for (key, value) in keys.into_iter().zip(values) {
                let name = key
                    .strip_prefix(self.names.prefix.as_str())
                    .and_then(|k| k.strip_prefix(what));
                if let (Some(name), Some(value)) = (name, value) {
                    each(name, &value);
                }
                seen.insert(key);
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl LocationStore for RedisLocations {
    fn replace(&self, aor: &str, bindings: &[Binding]) -> Result<(), StoreError> {
        write(
            &mut self.link.lock().unwrap_or_else(PoisonError::into_inner),
            &[(aor, bindings)],
        )
    }

    fn load(&self, now: u64) -> Result<Vec<Binding>, StoreError> {
        let mut out = Vec::new();
        self.scan("loc:", |aor, json| parse_set(aor, json, now, &mut out))?;
        sort_bindings(&mut out);
        Ok(out)
    }

    /// Redis deletes a binding set once its latest binding has expired; the readers skip the
    /// expired bindings of a live set.
    fn purge_expired(&self, _now: u64) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn batch_writer(&self) -> Result<Box<dyn BatchWriter>, StoreError> {
        let mut link = Link::new(self.names.clone());
        link.run(|c| redis::cmd("PING").query::<String>(c))?;
        Ok(Box::new(RedisBatchWriter { link }))
    }
}

/// Writes batches of AOR binding sets in one `MULTI`/`EXEC` on its own connection.
struct RedisBatchWriter {
    link: Link,
}

impl BatchWriter for RedisBatchWriter {
    fn write_batch(&mut self, batch: &[(String, Vec<Binding>)]) -> Result<(), StoreError> {
        let batch: Vec<(&str, &[Binding])> = batch.iter().map(|(a, b)| (a.as_str(), b.as_slice())).collect();
        write(&mut self.link, &batch)
    }
}

impl Cluster for RedisLocations {
    fn announce(&self, node: &NodeInfo, ttl: Duration) -> Result<(), StoreError> {
        let json = serde_json::to_string(&StoredNode {
            id: Cow::Borrowed(&node.id),
            sip: Cow::Borrowed(&node.sip),
        })
        .map_err(|e| self.names.error(e))?;
        let key = self.names.node_key(&node.id);
        let ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        self.with(|c| redis::cmd("SET").arg(&key).arg(&json).arg("PX").arg(ms).exec(c))
    }

    fn withdraw(&self, id: &str) -> Result<(), StoreError> {
        let key = self.names.node_key(id);
        self.with(|c| redis::cmd("DEL").arg(&key).exec(c))
    }

    fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let mut nodes = Vec::new();
        self.scan("node:", |id, json| match serde_json::from_str::<StoredNode<'_>>(json) {
            Ok(n) => nodes.push(NodeInfo {
                id: n.id.into_owned(),
                sip: n.sip.into_owned(),
            }),
            Err(e) => tracing::warn!(id, error = %e, "redis: skipping a node key that is not an announcement"),
        })?;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    fn shared_secret(&self, candidate: &[u8; 32]) -> Result<[u8; 32], StoreError> {
        let key = self.names.secret_key();
        let mine = hex(candidate);
        let kept: Option<String> = self.with(|c| {
            redis::cmd("SET").arg(&key).arg(&mine).arg("NX").exec(c)?;
            redis::cmd("GET").arg(&key).query(c)
        })?;
        let kept = kept.ok_or_else(|| self.names.error(format!("{key} vanished after it was set")))?;
        unhex32(&kept).ok_or_else(|| self.names.error(format!("{key} is not 64 hex digits")))
    }

    fn bindings_of(&self, aor: &str, now: u64) -> Result<Vec<Binding>, StoreError> {
        let key = self.names.loc_key(aor);
        let json: Option<String> = self.with(|c| redis::cmd("GET").arg(&key).query(c))?;
        let mut out = Vec::new();
        if let Some(json) = json {
            parse_set(aor, &json, now, &mut out);
        }
        sort_bindings(&mut out);
        Ok(out)
    }

    fn watch(&self, stop: &AtomicBool, on_change: &mut dyn FnMut(LocationChange)) -> Result<(), StoreError> {
        let names = &self.names;
        let mut conn = names.open()?;
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(names.channel()).map_err(|e| names.error(e))?;
        pubsub.set_read_timeout(Some(WATCH_POLL)).map_err(|e| names.error(e))?;
        while !stop.load(Ordering::Relaxed) {
            let msg = match pubsub.get_message() {
                Ok(msg) => msg,
                Err(e) if e.is_timeout() => continue,
                Err(e) => return Err(watch_error(names, e)),
            };
            match serde_json::from_slice::<Change<'_>>(msg.get_payload_bytes()) {
                Ok(c) => {
                    let now = unix_now();
                    let bindings = c.bindings.map(|set| {
                        set.into_iter()
                            .filter(|b| b.expires_at > now)
                            .map(|b| b.into_binding(&c.aor))
                            .collect()
                    });
                    on_change(LocationChange {
                        node: c.node.into_owned(),
                        aor: c.aor.into_owned(),
                        bindings,
                    });
                }
                Err(e) => tracing::warn!(error = %e, "redis: skipping a location change that is not one"),
            }
        }
        Ok(())
    }
}

fn watch_error(names: &Names, e: RedisError) -> StoreError {
    names.error(format_args!("watching {}: {e}", names.channel()))
}
