//! PostgreSQL backend for subscribers and call records (multi-node issue): to be written.

use crate::subscribers::StoreError;

pub struct PgStore {}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and migrates.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let _ = url;
        Err(StoreError::Backend("the PostgreSQL backend is not built yet".into()))
    }
}

fn unbuilt<T>() -> Result<T, StoreError> {
    Err(StoreError::Backend("the PostgreSQL backend is not built yet".into()))
}

impl crate::SubscriberStore for PgStore {
    fn add(&self, _: &crate::Subscriber) -> Result<(), StoreError> {
        unbuilt()
    }
    fn update(&self, _: &crate::Subscriber) -> Result<(), StoreError> {
        unbuilt()
    }
    fn set_tls_only(&self, _: &str, _: &str, _: bool) -> Result<(), StoreError> {
        unbuilt()
    }
    fn set_allowed_networks(&self, _: &str, _: &str, _: &[String]) -> Result<(), StoreError> {
        unbuilt()
    }
    fn remove(&self, _: &str, _: &str) -> Result<(), StoreError> {
        unbuilt()
    }
    fn get(&self, _: &str, _: &str) -> Result<Option<crate::Subscriber>, StoreError> {
        unbuilt()
    }
    fn list(&self, _: Option<&str>) -> Result<Vec<crate::Subscriber>, StoreError> {
        unbuilt()
    }
    fn generation(&self) -> Result<u64, StoreError> {
        unbuilt()
    }
}

impl crate::RecordStore for PgStore {
    fn insert(&self, _: &[crate::CallRecord]) -> Result<(), StoreError> {
        unbuilt()
    }
    fn list_records(&self, _: u64, _: u64, _: usize) -> Result<Vec<crate::CallRecord>, StoreError> {
        unbuilt()
    }
    fn page_records(
        &self,
        _: u64,
        _: u64,
        _: Option<crate::RecordKey>,
        _: usize,
    ) -> Result<Vec<(crate::RecordKey, crate::CallRecord)>, StoreError> {
        unbuilt()
    }
}
