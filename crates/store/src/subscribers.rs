//! Subscribers: a user (extension) in a domain, kept as digest HA1 values only, with the flags
//! that govern how the user may reach the server (`tls_only`, `allowed_networks`).

use std::fmt;

use sip::digest::{Algorithm, ha1};

/// A subscriber as stored: no password, only `H(user:realm:password)` per algorithm, with the
/// domain as realm.
#[derive(Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub user: String,
    pub domain: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
    /// The user registers and is reached over TLS only: a REGISTER or call from this user over
    /// UDP/TCP is refused (403 after authentication), and calls to the user go to TLS bindings
    /// only.
    pub tls_only: bool,
    /// Where the user may register and call from, as CIDRs or addresses (`203.0.113.0/24`);
    /// empty: anywhere. A request from elsewhere gets 403 after authentication.
    pub allowed_networks: Vec<String>,
}

impl fmt::Debug for Subscriber {
    /// HA1 values are password equivalents: they never go to logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("tls_only", &self.tls_only)
            .field("allowed_networks", &self.allowed_networks)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Checks the names and computes the HA1 values; the password is not kept.
    pub fn new(user: &str, domain: &str, password: &str) -> Result<Subscriber, StoreError> {
        validate_user(user)?;
        validate_domain(domain)?;
        if password.is_empty() {
            return Err(StoreError::Invalid("the password is empty".into()));
        }
        Ok(Subscriber {
            user: user.to_owned(),
            domain: domain.to_ascii_lowercase(),
            ha1_md5: ha1(Algorithm::Md5, user, &domain.to_ascii_lowercase(), password),
            ha1_sha256: ha1(Algorithm::Sha256, user, &domain.to_ascii_lowercase(), password),
            tls_only: false,
            allowed_networks: Vec::new(),
        })
    }

    /// The same subscriber allowed only from `networks` (empty: anywhere).
    pub fn with_allowed_networks(mut self, networks: Vec<String>) -> Subscriber {
        self.allowed_networks = networks;
        self
    }

    /// The same subscriber with the `tls_only` flag set to `on`.
    pub fn with_tls_only(mut self, on: bool) -> Subscriber {
        self.tls_only = on;
        self
    }

    /// Whether the two have the same name and HA1 values (flags aside): what a password change
    /// or an import compares.
    pub fn same_credentials(&self, other: &Subscriber) -> bool {
        self.user == other.user
            && self.domain == other.domain
            && self.ha1_md5 == other.ha1_md5
            && self.ha1_sha256 == other.ha1_sha256
    }

    /// The HA1 for a digest algorithm (the `-sess` variants use the same HA1).
    pub fn ha1(&self, alg: Algorithm) -> Option<&str> {
        match alg.base() {
            Algorithm::Md5 => Some(&self.ha1_md5),
            Algorithm::Sha256 => Some(&self.ha1_sha256),
            _ => None,
        }
    }
}

/// A user part that needs no escaping in a SIP URI: letters, digits and `-_.!~*'()+`,
/// at most 64 characters (extensions, names, E.164 numbers with `+`).
pub fn validate_user(user: &str) -> Result<(), StoreError> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{user:?} is not a valid extension (1 to 64 of: letters, digits, - _ . ! ~ * ' ( ) +)"
        )))
    }
}

fn validate_domain(domain: &str) -> Result<(), StoreError> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("{domain:?} is not a valid domain")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The subscriber exists already.
    Exists,
    /// No such subscriber.
    NotFound,
    /// A name or value is not acceptable; the text says why.
    Invalid(String),
    /// The backend failed; the text says how.
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Exists => f.write_str("the user exists already"),
            StoreError::NotFound => f.write_str("no such user"),
            StoreError::Invalid(why) => f.write_str(why),
            StoreError::Backend(why) => write!(f, "storage error: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Where subscribers live. Implementations are safe to share between threads.
pub trait SubscriberStore: Send + Sync {
    /// Adds a subscriber with its HA1 values and flags.
    fn add(&self, subscriber: &Subscriber) -> Result<(), StoreError>;
    /// Replaces the HA1 values of an existing subscriber; its flags stay as they are.
    fn update(&self, subscriber: &Subscriber) -> Result<(), StoreError>;
    /// Sets or clears the `tls_only` flag of an existing subscriber.
    fn set_tls_only(&self, user: &str, domain: &str, tls_only: bool) -> Result<(), StoreError>;
    /// Replaces the networks an existing subscriber may use (empty: anywhere).
    fn set_allowed_networks(&self, user: &str, domain: &str, networks: &[String]) -> Result<(), StoreError>;
    fn remove(&self, user: &str, domain: &str) -> Result<(), StoreError>;
    fn get(&self, user: &str, domain: &str) -> Result<Option<Subscriber>, StoreError>;
    /// Every subscriber, or those of one domain, ordered by domain and user.
    fn list(&self, domain: Option<&str>) -> Result<Vec<Subscriber>, StoreError>;
    /// A number that changes whenever a subscriber may have changed, by any process: what
    /// [`SubscriberCache`] checks before trusting what it holds.
    fn generation(&self) -> Result<u64, StoreError>;

    /// Adds each subscriber that is new and replaces the HA1 values of those that differ (their
    /// flags stay), in one durable write where the backend allows (a bulk import pays one commit,
    /// not one per user). Returns what happened to each, in order.
    fn put_many(&self, subscribers: &[Subscriber]) -> Result<Vec<Put>, StoreError> {
        subscribers
            .iter()
            .map(|s| match self.get(&s.user, &s.domain)? {
                Some(existing) if existing.same_credentials(s) => Ok(Put::Unchanged),
                Some(_) => self.update(s).map(|()| Put::Updated),
                None => match self.add(s) {
                    Ok(()) => Ok(Put::Added),
                    Err(StoreError::Exists) => self.update(s).map(|()| Put::Updated),
                    Err(e) => Err(e),
                },
            })
            .collect()
    }
}

impl<T: SubscriberStore + ?Sized> SubscriberStore for std::sync::Arc<T> {
    fn add(&self, subscriber: &Subscriber) -> Result<(), StoreError> {
        (**self).add(subscriber)
    }
    fn update(&self, subscriber: &Subscriber) -> Result<(), StoreError> {
        (**self).update(subscriber)
    }
    fn set_tls_only(&self, user: &str, domain: &str, tls_only: bool) -> Result<(), StoreError> {
        (**self).set_tls_only(user, domain, tls_only)
    }
    fn set_allowed_networks(&self, user: &str, domain: &str, networks: &[String]) -> Result<(), StoreError> {
        (**self).set_allowed_networks(user, domain, networks)
    }
    fn remove(&self, user: &str, domain: &str) -> Result<(), StoreError> {
        (**self).remove(user, domain)
    }
    fn get(&self, user: &str, domain: &str) -> Result<Option<Subscriber>, StoreError> {
        (**self).get(user, domain)
    }
    fn list(&self, domain: Option<&str>) -> Result<Vec<Subscriber>, StoreError> {
        (**self).list(domain)
    }
    fn generation(&self) -> Result<u64, StoreError> {
        (**self).generation()
    }
    fn put_many(&self, subscribers: &[Subscriber]) -> Result<Vec<Put>, StoreError> {
        (**self).put_many(subscribers)
    }
}

/// What [`SubscriberStore::put_many`] did with one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Added,
    Updated,
    Unchanged,
}

/// Subscribers in memory in front of a store: lookups on the authentication path cost a hash
/// probe instead of a query. Misses are cached too, so a scanner trying user names does not
/// reach the store for each guess.
///
/// With the embedded store, changes made by any process (the CLI, the admin API) are noticed in
/// two ways: the store's generation is checked at most once a second, and the caller calls
/// [`SubscriberCache::revalidate`] when credentials fail, so a password changed or a user added a
/// moment ago works on the first try. Checking the generation on every lookup would cost a read
/// transaction (file locks) per REGISTER, about 5 % of the server's CPU under load.
///
/// With a store behind a network round trip the cache is *complete* instead
/// ([`SubscriberCache::load_all`]): the server reads all of its domain's subscribers off the SIP
/// path and swaps them in whenever the generation moves (checked every second), so lookups never
/// wait on the database.
pub struct SubscriberCache<S: SubscriberStore> {
    store: S,
    generation: Option<u64>,
    checked_at: Option<std::time::Instant>,
    entries: std::collections::HashMap<(String, String), Option<Subscriber>>,
    /// Every subscriber of the served domain is in `entries`, put there by
    /// [`SubscriberCache::load_all`]: a miss is an answer, and lookups never reach the store.
    complete: bool,
}

/// Bound on cached entries; past it the cache starts over (misses are cheap to refill).
const CACHE_LIMIT: usize = 1 << 20;

/// How often the store's generation is checked on the lookup path.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl<S: SubscriberStore> SubscriberCache<S> {
    pub fn new(store: S) -> Self {
        SubscriberCache {
            store,
            generation: None,
            checked_at: None,
            entries: std::collections::HashMap::new(),
            complete: false,
        }
    }

    /// Holds exactly `all` (the served domain's subscribers, read at `generation` by someone
    /// off the lookup path) from now on: lookups never query the store again, and
    /// [`SubscriberCache::revalidate`] does nothing; whoever loaded them loads them again when
    /// the generation moves. For a store behind a network round trip (PostgreSQL), whose
    /// latency must not stall the SIP engine, nor a scanner's made-up user names cost a query
    /// each.
    pub fn load_all(&mut self, generation: u64, all: Vec<Subscriber>) {
        self.entries = all
            .into_iter()
            .map(|s| ((s.user.clone(), s.domain.clone()), Some(s)))
            .collect();
        self.generation = Some(generation);
        self.complete = true;
    }

    /// The generation of what the cache holds, if it has checked one.
    pub fn generation(&self) -> Option<u64> {
        self.generation
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Checks the store's generation now and empties the cache if it changed; returns whether
    /// it did.
    pub fn revalidate(&mut self) -> Result<bool, StoreError> {
        if self.complete {
            return Ok(false);
        }
        let generation = self.store.generation()?;
        self.checked_at = Some(std::time::Instant::now());
        if self.generation == Some(generation) {
            return Ok(false);
        }
        self.entries.clear();
        self.generation = Some(generation);
        Ok(true)
    }

    /// The subscriber `user` of `domain` (lower-case).
    pub fn get(&mut self, user: &str, domain: &str) -> Result<Option<&Subscriber>, StoreError> {
        if self.complete {
            return Ok(self
                .entries
                .get(&(user.to_owned(), domain.to_owned()))
                .and_then(Option::as_ref));
        }
        let due = self.checked_at.is_none_or(|t| t.elapsed() >= RECHECK);
        if due {
            self.revalidate()?;
        }
        if self.entries.len() >= CACHE_LIMIT {
            self.entries.clear();
        }
        let key = (user.to_owned(), domain.to_owned());
        if !self.entries.contains_key(&key) {
            let found = self.store.get(user, domain)?;
            self.entries.insert(key.clone(), found);
        }
        Ok(self.entries.get(&key).and_then(Option::as_ref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_ha1() {
        let s = Subscriber::new("1000", "Example.COM", "pw1000").expect("valid");
        assert_eq!(s.domain, "example.com");
        assert_eq!(s.ha1_md5, ha1(Algorithm::Md5, "1000", "example.com", "pw1000"));
        assert_eq!(s.ha1(Algorithm::Sha256Sess), Some(s.ha1_sha256.as_str()));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains(&s.ha1_md5) && !shown.contains("pw1000"),
            "no secrets in Debug"
        );
        assert!(!s.tls_only, "new subscribers may use any transport");
        let tls = s.clone().with_tls_only(true);
        assert!(tls.tls_only && tls.same_credentials(&s) && tls != s);
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "a b", "a@b", "a:b", "x".repeat(65).as_str(), "semi;colon"] {
            assert!(Subscriber::new(bad, "example.com", "pw").is_err(), "{bad:?}");
        }
        assert!(Subscriber::new("1000", "exa mple.com", "pw").is_err());
        assert!(Subscriber::new("1000", "example.com", "").is_err());
        assert!(Subscriber::new("+4930123", "example.com", "pw").is_ok());
    }

    /// A store that must not be asked anything.
    struct Unreachable;

    impl SubscriberStore for Unreachable {
        fn add(&self, _: &Subscriber) -> Result<(), StoreError> {
            unreachable!("add")
        }
        fn update(&self, _: &Subscriber) -> Result<(), StoreError> {
            unreachable!("update")
        }
        fn set_tls_only(&self, _: &str, _: &str, _: bool) -> Result<(), StoreError> {
            unreachable!("set_tls_only")
        }
        fn set_allowed_networks(&self, _: &str, _: &str, _: &[String]) -> Result<(), StoreError> {
            unreachable!("set_allowed_networks")
        }
        fn remove(&self, _: &str, _: &str) -> Result<(), StoreError> {
            unreachable!("remove")
        }
        fn get(&self, _: &str, _: &str) -> Result<Option<Subscriber>, StoreError> {
            unreachable!("get: a complete cache never asks")
        }
        fn list(&self, _: Option<&str>) -> Result<Vec<Subscriber>, StoreError> {
            unreachable!("list")
        }
        fn generation(&self) -> Result<u64, StoreError> {
            unreachable!("generation: a complete cache never asks")
        }
    }

    #[test]
    fn a_complete_cache_answers_hits_and_misses_without_the_store() {
        let mut cache = SubscriberCache::new(Unreachable);
        let alice = Subscriber::new("alice", "example.com", "pw").expect("valid");
        cache.load_all(7, vec![alice.clone()]);
        assert_eq!(cache.get("alice", "example.com"), Ok(Some(&alice)));
        assert_eq!(cache.get("mallory", "example.com"), Ok(None));
        assert_eq!(cache.revalidate(), Ok(false));
        assert_eq!(cache.generation(), Some(7));
        cache.load_all(8, Vec::new());
        assert_eq!(cache.get("alice", "example.com"), Ok(None), "a removed user is gone");
    }
}
