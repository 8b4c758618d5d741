//! Several switchboard nodes as one platform (the multi-node issue), over a shared location
//! store that provides [`store::Cluster`] (Redis).
//!
//! - **Who holds a phone.** Each binding names the node whose socket or connection the
//!   REGISTER came in on ([`store::Binding::node`]): only that node can reach a phone behind NAT
//!   (the NAT mapping is to that node's address) or over TCP/TLS (the connection ends there).
//! - **Internal hop.** A request for a phone held by another live node is sent to that node's
//!   SIP address over UDP, with the phone's contact as Request-URI and an
//!   `X-Switchboard-Hop` header: the node, the AOR, the time, and an HMAC-SHA256 over them, the
//!   Call-ID, the CSeq and the Request-URI with the secret the nodes share. The holding node
//!   checks the HMAC (and that the hop is under 60 s old), then delivers the request over the
//!   phone's own flow without asking for credentials again, and Record-Routes, so the dialog's
//!   later requests take the same two hops. The first node anchors the media and writes the
//!   call record; the holding node does neither.
//! - **Trust between nodes.** The other live nodes' addresses pass the per-source flood limit
//!   and the ban list (`crate::guard`): all their phones' calls to this node's phones come from
//!   that one address.
//! - **A node gone.** Nodes announce themselves every second with a 3 s time-to-live. A binding
//!   held by a node that is not announced any more is reached directly when it is UDP (its
//!   Contact, or its source address behind NAT), and not at all when it is TCP/TLS (the
//!   connection died with the node): 480 until the phone registers again, which it does on
//!   another node when its connection fails.
//! - **The location index is a cache.** Every node keeps the bindings in memory for lookups.
//!   A write publishes the AOR and its new binding set on the store's change feed; the other
//!   nodes replace their copy, in milliseconds. If the feed is lost, the node
//!   resubscribes and reloads every AOR; it also reloads every [`RESYNC`]. Staleness bound: the
//!   feed's delay while it is up, otherwise at most [`RESYNC`] plus the reconnect delay.
//! - **Nonces.** Every node signs nonces with the shared secret and tags them with its own node
//!   tag: a nonce issued by another node is answered `stale=true` (the phone retries with a
//!   fresh nonce, without a new password), so each node's nonce-count replay table only ever
//!   sees its own nonces and needs no shared state per REGISTER.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sip::Message;
use store::{Cluster, NodeInfo};

use crate::transport::Shared;

/// The header that carries an internal hop.
pub const HOP_HEADER: &str = "X-Switchboard-Hop";

/// How often a node announces itself, and how long an announcement lasts.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
pub const ANNOUNCE_TTL: Duration = Duration::from_secs(3);
/// How often every node reloads the whole location store into its cache.
pub const RESYNC: Duration = Duration::from_secs(30);
/// Hops older than this (or from further in the future) are refused: a captured one cannot be
/// replayed later.
const HOP_MAX_AGE: u64 = 60;

/// A node's nonce tag: a 32-bit hash of its id, never 0 (0 is a single server).
pub fn node_tag(node_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in node_id.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

type HmacSha256 = Hmac<Sha256>;

/// What the proxy knows of the platform: sans-IO, updated by [`run`].
pub struct ClusterView {
    pub node_id: String,
    keyed: Option<HmacSha256>,
    /// The live nodes (this one included) and their internal hop addresses.
    nodes: HashMap<String, SocketAddr>,
}

/// A verified internal hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The node that sent it.
    pub node: String,
    /// The address-of-record it is for.
    pub aor: String,
}

impl ClusterView {
    pub fn new(node_id: &str, secret: &[u8; 32]) -> ClusterView {
        ClusterView {
            node_id: node_id.to_owned(),
            keyed: HmacSha256::new_from_slice(secret).ok(),
            nodes: HashMap::new(),
        }
    }

    /// Replaces the list of live nodes.
    pub fn set_nodes(&mut self, nodes: HashMap<String, SocketAddr>) {
        self.nodes = nodes;
    }

    /// The hop address of a live node other than this one.
    pub fn peer(&self, node: &str) -> Option<SocketAddr> {
        (node != self.node_id).then(|| self.nodes.get(node).copied()).flatten()
    }

    /// Whether `node` is in the table of live nodes.
    pub fn knows(&self, node: &str) -> bool {
        self.nodes.contains_key(node)
    }

    /// Whether `node` names this node (or no node: a binding from a single server).
    pub fn is_local(&self, node: &str) -> bool {
        node.is_empty() || node == self.node_id
    }

    fn mac(&self, req: &Message, node: &str, aor: &str, unix: u64) -> String {
        let Some(mut m) = self.keyed.clone() else {
            return String::new();
        };
        let cseq = req.cseq().map(|c| c.seq).unwrap_or(0);
        for part in [
            node,
            aor,
            &unix.to_string(),
            req.call_id().unwrap_or_default(),
            &cseq.to_string(),
            req.request_uri_str().unwrap_or_default(),
        ] {
            m.update(part.as_bytes());
            m.update(b"\n");
        }
        m.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Adds the hop header to a request this node forwards to the node holding `aor`'s phone
    /// (after its Request-URI is set).
    pub fn sign_hop(&self, req: &mut Message, aor: &str, unix: u64) {
        let mac = self.mac(req, &self.node_id, aor, unix);
        let value = format!("node={};aor={aor};t={unix};mac={mac}", self.node_id);
        req.push_other(HOP_HEADER, &value);
    }

    /// Checks a request's hop header: `None` without one, `Some(Err)` for a bad one.
    pub fn verify_hop(&self, req: &Message, unix: u64) -> Option<Result<Hop, &'static str>> {
        let value = req.header(HOP_HEADER)?;
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for kv in value.split(';') {
            if let Some((k, v)) = kv.trim().split_once('=') {
                fields.insert(k, v);
            }
        }
        let (Some(node), Some(aor), Some(t), Some(mac)) = (
            fields.get("node"),
            fields.get("aor"),
            fields.get("t"),
            fields.get("mac"),
        ) else {
            return Some(Err("Forbidden (malformed internal hop)"));
        };
        let Ok(t) = t.parse::<u64>() else {
            return Some(Err("Forbidden (malformed internal hop)"));
        };
        let expected = self.mac(req, node, aor, t);
        if expected.is_empty() || !sip::digest::constant_time_eq(expected.as_bytes(), mac.as_bytes()) {
            return Some(Err("Forbidden (internal hop not signed by a node of this platform)"));
        }
        if unix.abs_diff(t) > HOP_MAX_AGE {
            return Some(Err("Forbidden (internal hop too old)"));
        }
        Some(Ok(Hop {
            node: (*node).to_owned(),
            aor: (*aor).to_owned(),
        }))
    }
}

/// This node's hop address as announced: `udp:IP:PORT`.
pub fn hop_address(addr: SocketAddr) -> String {
    format!("udp:{addr}")
}

fn parse_hop_address(s: &str) -> Option<SocketAddr> {
    s.strip_prefix("udp:")?.parse().ok()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Keeps this node announced, the proxy's node list current and the location cache in step
/// with the shared store, until `stopping` is set. Runs the change feed on a thread of its own
/// (the store's client blocks).
pub async fn run(shared: Arc<Shared>, cluster: Arc<dyn Cluster>, me: NodeInfo, stopping: Arc<AtomicBool>) {
    let watcher = {
        let (shared, cluster, stopping, me) = (shared.clone(), cluster.clone(), stopping.clone(), me.id.clone());
        std::thread::Builder::new()
            .name("cluster-watch".into())
            .spawn(move || watch(&shared, &*cluster, &me, &stopping))
            .ok()
    };
    let mut last_resync = std::time::Instant::now();
    while !stopping.load(Ordering::Relaxed) {
        let (c, node, s) = (cluster.clone(), me.clone(), shared.clone());
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = c.announce(&node, ANNOUNCE_TTL) {
                tracing::warn!(error = %e, "cluster: could not announce this node");
            }
            refresh_nodes(&s, &*c);
        })
        .await;
        if last_resync.elapsed() >= RESYNC {
            last_resync = std::time::Instant::now();
            let (shared, me) = (shared.clone(), me.id.clone());
            let _ = tokio::task::spawn_blocking(move || reload(&shared, &me)).await;
        }
        tokio::time::sleep(ANNOUNCE_EVERY).await;
    }
    let c = cluster.clone();
    let id = me.id.clone();
    let _ = tokio::task::spawn_blocking(move || c.withdraw(&id)).await;
    if let Some(w) = watcher {
        let _ = tokio::task::spawn_blocking(move || w.join()).await;
    }
}

/// Reads the live nodes into the proxy's table.
fn refresh_nodes(shared: &Shared, cluster: &dyn Cluster) {
    match cluster.nodes() {
        Ok(nodes) => {
            let table: HashMap<String, SocketAddr> = nodes
                .into_iter()
                .filter_map(|n| Some((n.id, parse_hop_address(&n.sip)?)))
                .collect();
            shared.guard.set_peers(table.values().map(SocketAddr::ip).collect());
            shared.with_engine(|e, _, _| e.set_cluster_nodes(table));
        }
        Err(e) => tracing::warn!(error = %e, "cluster: could not list the nodes"),
    }
}

/// Reloads every AOR from the store into the cache (see [`crate::registrar::Location::merge_shared`]).
fn reload(shared: &Shared, me: &str) {
    let Some(stores) = shared.stores.as_ref() else {
        return;
    };
    match stores.locations.load(unix_now()) {
        Ok(bindings) => shared.with_engine(|e, _, _| {
            if let Some(l) = e.location_mut() {
                l.merge_shared(bindings, me);
            }
        }),
        Err(e) => tracing::warn!(error = %e, "cluster: could not reload the location store"),
    }
}

/// The change feed: every AOR written by another node is read back into the cache. After the
/// feed fails, waits a second, reloads everything, and subscribes again.
fn watch(shared: &Arc<Shared>, cluster: &dyn Cluster, me: &str, stopping: &AtomicBool) {
    let mut first = true;
    while !stopping.load(Ordering::Relaxed) {
        if !first {
            std::thread::sleep(Duration::from_secs(1));
            reload(shared, me);
        }
        first = false;
        let result = cluster.watch(stopping, &mut |change| {
            if change.node == me {
                return;
            }
            // A node that just started registers its first phones before this node's next
            // refresh of the table: learn of it now, or the phone would look held by a dead node.
            let mut known = true;
            shared.with_engine(|e, _, _| known = e.knows_cluster_node(&change.node));
            if !known {
                refresh_nodes(shared, cluster);
            }
            let bindings = match change.bindings {
                Some(set) => Ok(set),
                None => cluster.bindings_of(&change.aor, unix_now()),
            };
            match bindings {
                Ok(bindings) => shared.with_engine(|e, _, _| {
                    if let Some(l) = e.location_mut() {
                        l.set(&change.aor, bindings);
                    }
                }),
                Err(e) => tracing::warn!(error = %e, aor = %change.aor, "cluster: could not read a changed AOR"),
            }
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "cluster: the change feed failed; reconnecting");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(ruri: &str) -> Message {
        let mut m = Message::request(sip::Method::Invite, ruri);
        m.push_header(sip::HeaderName::CallId, "abc@1");
        m.push_header(sip::HeaderName::CSeq, "7 INVITE");
        m
    }

    #[test]
    fn hops_verify_only_with_the_shared_secret() {
        let a = ClusterView::new("a", &[1; 32]);
        let b = ClusterView::new("b", &[1; 32]);
        let outsider = ClusterView::new("x", &[2; 32]);
        let mut req = invite("sip:1002@10.0.0.2:5060");
        a.sign_hop(&mut req, "1002@example.com", 1000);
        assert_eq!(
            b.verify_hop(&req, 1010),
            Some(Ok(Hop {
                node: "a".into(),
                aor: "1002@example.com".into()
            }))
        );
        assert!(matches!(outsider.verify_hop(&req, 1010), Some(Err(_))));
        assert!(matches!(b.verify_hop(&req, 1100), Some(Err(_))), "too old");
        let mut moved = req.clone();
        moved.set_request_uri("sip:1002@203.0.113.9:5060");
        assert!(
            matches!(b.verify_hop(&moved, 1010), Some(Err(_))),
            "the Request-URI is signed"
        );
        assert_eq!(b.verify_hop(&invite("sip:x@y"), 1010), None);
    }

    #[test]
    fn node_tags_are_never_zero() {
        assert_ne!(node_tag(""), 0);
        assert_ne!(node_tag("a"), node_tag("b"));
    }
}
