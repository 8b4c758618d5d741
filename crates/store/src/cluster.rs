//! What the nodes of a multi-node platform share beside the stores proper: who is up (each node
//! announces itself with a time-to-live), a secret for nonces and internal hops, and a feed of
//! location changes, so that each node's in-memory location index stays a cache of the shared
//! store. The Redis location backend provides it ([`crate::RedisLocations`]).

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::location::Binding;
use crate::subscribers::StoreError;

/// A node as it announces itself to the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Its `--node-id`, unique in the platform.
    pub id: String,
    /// Where the other nodes send it SIP for the phones whose flows it holds:
    /// `udp:IP:PORT` (the internal hop).
    pub sip: String,
}

/// One AOR's bindings changed: which node wrote them, the AOR, and (when the feed carries it)
/// the AOR's whole binding set as written, unexpired ones only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationChange {
    pub node: String,
    pub aor: String,
    /// `None`: read the AOR back ([`Cluster::bindings_of`]).
    pub bindings: Option<Vec<Binding>>,
}

/// Shared platform state. Implementations are safe to share between threads; every call may
/// block on the network, so none is made under the engine lock.
pub trait Cluster: Send + Sync {
    /// Announces this node, or refreshes its announcement, for `ttl`: a node that stops
    /// refreshing is gone for the others once `ttl` has passed.
    fn announce(&self, node: &NodeInfo, ttl: Duration) -> Result<(), StoreError>;
    /// Withdraws this node's announcement (a graceful stop).
    fn withdraw(&self, id: &str) -> Result<(), StoreError>;
    /// The nodes announced and not gone (this one included).
    fn nodes(&self) -> Result<Vec<NodeInfo>, StoreError>;
    /// The secret every node shares: the first node's `candidate` is kept and every later node
    /// gets that one.
    fn shared_secret(&self, candidate: &[u8; 32]) -> Result<[u8; 32], StoreError>;
    /// The unexpired bindings of one AOR as stored now.
    fn bindings_of(&self, aor: &str, now: u64) -> Result<Vec<Binding>, StoreError>;
    /// Calls `on_change` for every binding change written by any node (this one included),
    /// until `stop` is set (checked at least twice a second) or the connection fails.
    fn watch(&self, stop: &AtomicBool, on_change: &mut dyn FnMut(LocationChange)) -> Result<(), StoreError>;
}
