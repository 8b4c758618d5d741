//! A hash map split into shards, so that growing it never moves more than a small part of the
//! entries at once. A UDP server holds every non-INVITE transaction for 64*T1 (32 s): at 40 000
//! requests per second that is over a million entries, and one plain map doubling at that size
//! stalls the receive path long enough for socket buffers to overflow.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// foldhash with a per-process random seed: about a third of SipHash's cost on these short keys
/// (branch, sent-by), and still seeded, so a peer choosing branch values cannot aim them at one
/// bucket without knowing the seed.
type RandomState = foldhash::quality::RandomState;

const SHARDS: usize = 64;

#[derive(Debug)]
pub struct ShardedMap<K, V> {
    shards: Vec<HashMap<K, V, RandomState>>,
    hasher: RandomState,
    len: usize,
}

impl<K: Hash + Eq, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: (0..SHARDS)
                .map(|_| HashMap::with_hasher(RandomState::default()))
                .collect(),
            hasher: RandomState::default(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    fn shard(&self, k: &K) -> usize {
        (self.hasher.hash_one(k) as usize) % SHARDS
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.shards[self.shard(k)].get(k)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let s = self.shard(k);
        self.shards[s].get_mut(k)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let s = self.shard(&k);
        let old = self.shards[s].insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let s = self.shard(k);
        let old = self.shards[s].remove(k);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|s| s.values())
    }
}

#[cfg(test)]
mod tests {
    use super::ShardedMap;

    #[test]
    fn behaves_like_a_map() {
        let mut m = ShardedMap::default();
        for i in 0..1000u32 {
            assert!(m.insert(i, i * 2).is_none());
        }
        assert_eq!(m.insert(7, 0), Some(14));
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get(&8), Some(&16));
        *m.get_mut(&8).expect("present") = 1;
        assert_eq!(m.remove(&8), Some(1));
        assert!(!m.contains_key(&8));
        assert_eq!(m.len(), 999);
        assert_eq!(m.values().count(), 999);
        assert!(m.remove(&8).is_none());
    }
}
