//! Redis backend for location bindings and the cluster state (multi-node issue): to be written.

use crate::subscribers::StoreError;

pub struct RedisLocations {}

impl RedisLocations {
    /// Connects to `url` (`redis://host:port/db`); every key starts with `prefix`; changes are
    /// published as written by `node_id`.
    pub fn connect(url: &str, prefix: &str, node_id: &str) -> Result<RedisLocations, StoreError> {
        let _ = (url, prefix, node_id);
        Err(StoreError::Backend("the Redis backend is not built yet".into()))
    }
}

fn unbuilt<T>() -> Result<T, StoreError> {
    Err(StoreError::Backend("the Redis backend is not built yet".into()))
}

impl crate::LocationStore for RedisLocations {
    fn replace(&self, _: &str, _: &[crate::Binding]) -> Result<(), StoreError> {
        unbuilt()
    }
    fn load(&self, _: u64) -> Result<Vec<crate::Binding>, StoreError> {
        unbuilt()
    }
    fn purge_expired(&self, _: u64) -> Result<usize, StoreError> {
        unbuilt()
    }
    fn batch_writer(&self) -> Result<Box<dyn crate::BatchWriter>, StoreError> {
        unbuilt()
    }
}

impl crate::Cluster for RedisLocations {
    fn announce(&self, _: &crate::NodeInfo, _: std::time::Duration) -> Result<(), StoreError> {
        unbuilt()
    }
    fn withdraw(&self, _: &str) -> Result<(), StoreError> {
        unbuilt()
    }
    fn nodes(&self) -> Result<Vec<crate::NodeInfo>, StoreError> {
        unbuilt()
    }
    fn shared_secret(&self, _: &[u8; 32]) -> Result<[u8; 32], StoreError> {
        unbuilt()
    }
    fn bindings_of(&self, _: &str, _: u64) -> Result<Vec<crate::Binding>, StoreError> {
        unbuilt()
    }
    fn watch(
        &self,
        _: &std::sync::atomic::AtomicBool,
        _: &mut dyn FnMut(crate::LocationChange),
    ) -> Result<(), StoreError> {
        unbuilt()
    }
}
