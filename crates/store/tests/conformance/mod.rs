//! What every subscriber and call-record backend must do, written once against the traits: each
//! backend's tests call these on a fresh, empty store, so SQLite and PostgreSQL are held to the
//! same behaviour.

#![allow(dead_code)]

use std::sync::Arc;

use store::{
    CallRecord, Disposition, LegMedia, Put, RecordKey, RecordStore, RecordWriter, StoreError, Subscriber,
    SubscriberStore,
};

fn sub(user: &str, password: &str) -> Subscriber {
    Subscriber::new(user, "example.com", password).expect("valid")
}

fn get(store: &dyn SubscriberStore, user: &str) -> Subscriber {
    store.get(user, "example.com").expect("get").expect("there")
}

/// Add, get (any case of domain), update, list order (domain, then user, byte-wise), remove.
pub fn crud_list_order_and_domain_case(store: &dyn SubscriberStore) {
    let a = Subscriber::new("1000", "Example.COM", "pw1000").expect("valid");
    store.add(&a).expect("add");
    assert_eq!(store.get("1000", "EXAMPLE.com").expect("get"), Some(a.clone()));
    assert_eq!(
        store.get("1000", "example.com").expect("get").map(|s| s.domain),
        Some("example.com".into())
    );
    assert_eq!(store.get("1001", "example.com").expect("get"), None);
    let changed = sub("1000", "new");
    store.update(&changed).expect("update");
    assert_eq!(get(store, "1000"), changed);
    store.add(&sub("1001", "pw")).expect("add");
    store
        .add(&Subscriber::new("1000", "other.org", "pw").expect("valid"))
        .expect("same user, other domain");
    // Byte order, not a locale's: '+' and upper case sort before digits and lower case.
    store.add(&sub("+4930123", "pw")).expect("add");
    store.add(&sub("Bob", "pw")).expect("add");
    store.add(&sub("alice", "pw")).expect("add");
    store
        .add(&Subscriber::new("9", "a.example", "pw").expect("valid"))
        .expect("add");
    let all: Vec<_> = store
        .list(None)
        .expect("list")
        .into_iter()
        .map(|s| format!("{}@{}", s.user, s.domain))
        .collect();
    assert_eq!(
        all,
        [
            "9@a.example",
            "+4930123@example.com",
            "1000@example.com",
            "1001@example.com",
            "Bob@example.com",
            "alice@example.com",
            "1000@other.org"
        ]
    );
    assert_eq!(store.list(Some("OTHER.org")).expect("list").len(), 1);
    assert_eq!(store.list(Some("nowhere.example")).expect("list"), []);
    store.remove("1000", "Example.com").expect("remove");
    assert_eq!(store.get("1000", "example.com").expect("get"), None);
    assert_eq!(store.list(Some("example.com")).expect("list").len(), 4);
}

/// `Exists` for a second add, `NotFound` for changes to nobody; a failed change changes nothing,
/// not even the generation.
pub fn exists_and_not_found(store: &dyn SubscriberStore) {
    let a = sub("1000", "pw");
    store.add(&a).expect("add");
    let g = store.generation().expect("generation");
    assert_eq!(store.add(&sub("1000", "other")), Err(StoreError::Exists));
    assert_eq!(get(store, "1000"), a, "the first one stays");
    let nobody = sub("9", "x");
    assert_eq!(store.update(&nobody), Err(StoreError::NotFound));
    assert_eq!(store.set_tls_only("9", "example.com", true), Err(StoreError::NotFound));
    assert_eq!(
        store.set_allowed_networks("9", "example.com", &["192.0.2.0/24".into()]),
        Err(StoreError::NotFound)
    );
    assert_eq!(store.remove("9", "example.com"), Err(StoreError::NotFound));
    assert_eq!(store.remove("1000", "other.org"), Err(StoreError::NotFound));
    assert_eq!(store.get("9", "example.com").expect("get"), None);
    assert_eq!(store.generation().expect("generation"), g, "nothing changed");
    store.remove("1000", "example.com").expect("remove");
    assert_eq!(store.remove("1000", "example.com"), Err(StoreError::NotFound));
}

/// The generation moves with every change to a subscriber, as another handle (another process,
/// another node) sees at once, and only then.
pub fn generation_moves_with_every_change(store: &dyn SubscriberStore, other: &dyn SubscriberStore) {
    let mut last = other.generation().expect("generation");
    let mut changed = |what: &str| {
        let now = other.generation().expect("generation");
        assert!(now > last, "{what}: generation {now} after {last}");
        last = now;
    };
    store.add(&sub("1000", "pw")).expect("add");
    changed("add");
    store.update(&sub("1000", "pw2")).expect("update");
    changed("update");
    store.set_tls_only("1000", "example.com", true).expect("tls");
    changed("set_tls_only");
    store
        .set_allowed_networks("1000", "example.com", &["192.0.2.0/24".into()])
        .expect("acl");
    changed("set_allowed_networks");
    store.put_many(&[sub("1000", "pw3"), sub("1001", "pw")]).expect("put");
    changed("put_many");
    store.remove("1001", "example.com").expect("remove");
    changed("remove");
    let g = other.generation().expect("generation");
    assert_eq!(store.put_many(&[sub("1000", "pw3")]).expect("put"), [Put::Unchanged]);
    assert_eq!(
        store.generation().expect("generation"),
        g,
        "nothing to write, nothing moves"
    );
    // And the other handle reads what changed, not a cached copy.
    assert!(get(other, "1000").same_credentials(&sub("1000", "pw3")));
    assert_eq!(other.get("1001", "example.com").expect("get"), None);
}

/// A second handle on the same store (the CLI beside a running server) sees changes at once
/// (to user 7000, which must not exist yet).
pub fn a_second_handle_sees_changes_at_once(server: &dyn SubscriberStore, cli: &dyn SubscriberStore) {
    cli.add(&sub("7000", "pw")).expect("add");
    assert!(server.get("7000", "example.com").expect("get").is_some());
    cli.update(&sub("7000", "new")).expect("update");
    assert!(get(server, "7000").same_credentials(&sub("7000", "new")));
    cli.remove("7000", "example.com").expect("remove");
    assert!(server.get("7000", "example.com").expect("get").is_none());
}

/// `put_many` adds the new, replaces the HA1 of the changed and reports each.
pub fn put_many_adds_updates_and_leaves_unchanged(store: &dyn SubscriberStore) {
    store.add(&sub("1001", "old")).expect("add");
    store.add(&sub("1002", "same")).expect("add");
    let before = store.generation().expect("generation");
    let done = store
        .put_many(&[sub("1001", "new"), sub("1002", "same"), sub("1003", "fresh")])
        .expect("put");
    assert_eq!(done, [Put::Updated, Put::Unchanged, Put::Added]);
    assert_eq!(get(store, "1001"), sub("1001", "new"));
    assert_eq!(get(store, "1002"), sub("1002", "same"));
    assert_eq!(get(store, "1003"), sub("1003", "fresh"));
    assert!(
        store.generation().expect("generation") > before,
        "a running server notices"
    );
    assert_eq!(store.put_many(&[]).expect("nothing"), []);
    // The same user twice in one slice: added, then updated.
    let done = store
        .put_many(&[sub("1004", "a"), sub("1004", "b"), sub("1004", "b")])
        .expect("put");
    assert_eq!(done, [Put::Added, Put::Updated, Put::Unchanged]);
    assert_eq!(get(store, "1004"), sub("1004", "b"));
    assert_eq!(store.list(None).expect("list").len(), 4);
}

/// `tls_only` round-trips, survives password changes and imports, and changes only on purpose.
pub fn tls_only_is_kept_and_changed_only_on_purpose(store: &dyn SubscriberStore) {
    store.add(&sub("1000", "pw").with_tls_only(true)).expect("add");
    store.add(&sub("1001", "pw")).expect("add");
    assert!(get(store, "1000").tls_only && !get(store, "1001").tls_only);
    // A password change or an import leaves the flag alone.
    store.update(&sub("1000", "new")).expect("passwd");
    assert!(get(store, "1000").tls_only && get(store, "1000").same_credentials(&sub("1000", "new")));
    let done = store
        .put_many(&[sub("1000", "new"), sub("1001", "other")])
        .expect("import");
    assert_eq!(done, [Put::Unchanged, Put::Updated]);
    assert!(get(store, "1000").tls_only && !get(store, "1001").tls_only);
    // Only set_tls_only changes it, and a running server notices.
    let before = store.generation().expect("generation");
    store.set_tls_only("1001", "EXAMPLE.com", true).expect("set");
    store.set_tls_only("1000", "example.com", false).expect("clear");
    assert!(!get(store, "1000").tls_only && get(store, "1001").tls_only);
    assert!(store.generation().expect("generation") > before);
    assert_eq!(store.set_tls_only("9", "example.com", true), Err(StoreError::NotFound));
    let listed: Vec<(String, bool)> = store
        .list(None)
        .expect("list")
        .into_iter()
        .map(|s| (s.user, s.tls_only))
        .collect();
    assert_eq!(listed, [("1000".to_owned(), false), ("1001".to_owned(), true)]);
}

/// `allowed_networks` round-trips in order, survives a password change and an import, clears.
pub fn allowed_networks_round_trip(store: &dyn SubscriberStore) {
    let nets = vec![
        "198.51.100.0/24".to_owned(),
        "2001:db8::/32".to_owned(),
        "203.0.113.7".to_owned(),
    ];
    store
        .add(&sub("1001", "pw").with_allowed_networks(nets.clone()))
        .expect("add");
    assert_eq!(get(store, "1001").allowed_networks, nets);
    store.update(&sub("1001", "new")).expect("password");
    assert_eq!(get(store, "1001").allowed_networks, nets);
    assert_eq!(store.put_many(&[sub("1001", "newer")]).expect("import"), [Put::Updated]);
    assert_eq!(get(store, "1001").allowed_networks, nets);
    store
        .set_allowed_networks("1001", "EXAMPLE.com", &nets[..1])
        .expect("narrow");
    assert_eq!(get(store, "1001").allowed_networks, &nets[..1]);
    store.set_allowed_networks("1001", "example.com", &[]).expect("clear");
    assert!(get(store, "1001").allowed_networks.is_empty());
    assert_eq!(
        store.set_allowed_networks("nobody", "example.com", &[]),
        Err(StoreError::NotFound)
    );
    // A new subscriber's networks are stored as given, also through put_many.
    let done = store
        .put_many(&[sub("1002", "pw").with_allowed_networks(nets[1..].to_vec())])
        .expect("import");
    assert_eq!(done, [Put::Added]);
    assert_eq!(get(store, "1002").allowed_networks, &nets[1..]);
}

pub fn record(call_id: &str, ended_ms: u64, disposition: Disposition) -> CallRecord {
    let answered = disposition == Disposition::Answered;
    CallRecord {
        call_id: call_id.into(),
        caller: "1000".into(),
        callee: "1001".into(),
        started_ms: ended_ms - 5_000,
        answered_ms: answered.then_some(ended_ms - 4_000),
        ended_ms,
        disposition,
        status: if answered { 200 } else { 486 },
        hangup: answered.then(|| "callee".into()),
        answered_by: None,
        caller_media: LegMedia {
            codec: Some("PCMU".into()),
            packets: 200,
            bytes: 34_400,
            loss_permille: Some(3),
            jitter_us: Some(1_250),
        },
        callee_media: LegMedia::default(),
    }
}

/// Records written through a [`RecordWriter`] on a second handle come back whole, oldest first,
/// within `[since, until)` and the limit; every field, extremes included, round-trips.
pub fn call_records_round_trip_in_time_order(store: &dyn RecordStore, second: Arc<dyn RecordStore>) {
    let writer = RecordWriter::start(second);
    writer.submit(record("b", 2_000_000, Disposition::Busy));
    writer.submit(record("a", 1_000_000, Disposition::Answered));
    writer.stop();
    let all = store.list_records(0, u64::MAX, 10).expect("list");
    assert_eq!(all.iter().map(|r| r.call_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(all[0], record("a", 1_000_000, Disposition::Answered));
    assert_eq!(all[1], record("b", 2_000_000, Disposition::Busy));
    assert_eq!(all[0].duration_secs(), 4);
    assert_eq!(store.list_records(1_500_000, u64::MAX, 10).expect("since").len(), 1);
    assert_eq!(store.list_records(0, 2_000_000, 10).expect("until, exclusive").len(), 1);
    assert_eq!(store.list_records(0, u64::MAX, 1).expect("limit").len(), 1);
    assert_eq!(store.list_records(0, u64::MAX, 0).expect("limit 0"), []);

    let mut full = record("full", 3_000_000, Disposition::Answered);
    full.answered_by = Some("sip:1001@192.0.2.10:5060;transport=tls".into());
    full.hangup = Some("server".into());
    full.caller_media = LegMedia {
        codec: Some("opus".into()),
        packets: u64::MAX,
        bytes: u64::MAX - 1,
        loss_permille: Some(u32::MAX),
        jitter_us: Some(0),
    };
    full.callee_media = LegMedia {
        codec: None,
        packets: 1,
        bytes: 172,
        loss_permille: None,
        jitter_us: Some(u32::MAX),
    };
    let others = [Disposition::NoAnswer, Disposition::Cancelled, Disposition::Failed].map(|d| {
        let mut r = record(d.as_str(), 4_000_000, d);
        r.status = u16::MAX;
        r
    });
    store.insert(&[full.clone()]).expect("insert");
    store.insert(&others).expect("insert");
    store.insert(&[]).expect("nothing to insert");
    let back = store.list_records(3_000_000, u64::MAX, 10).expect("list");
    let mut expected = vec![full];
    expected.extend(others);
    assert_eq!(back, expected);
}

fn ids(page: &[(RecordKey, CallRecord)]) -> Vec<&str> {
    page.iter().map(|(_, r)| r.call_id.as_str()).collect()
}

/// `page_records`: newest first by (end, storage order); a record stored between pages sorts
/// before the cursor and neither repeats nor shifts what follows.
pub fn pages_newest_first_without_repeats_while_records_arrive(store: &dyn RecordStore) {
    let busy = |id: &str, ended| record(id, ended, Disposition::Busy);
    // Two records end in the same millisecond: the one stored later comes first.
    store
        .insert(&[
            busy("a", 10_000),
            busy("b", 20_000),
            busy("c", 20_000),
            busy("d", 30_000),
        ])
        .expect("insert");
    let p1 = store.page_records(0, u64::MAX, None, 2).expect("page 1");
    assert_eq!(ids(&p1), ["d", "c"]);
    assert!(p1[0].0 > p1[1].0, "keys in page order");
    // Records arrive between pages: they sort before the cursor and do not shift page 2.
    store
        .insert(&[busy("e", 40_000), busy("f", 20_000)])
        .expect("insert more");
    let p2 = store
        .page_records(0, u64::MAX, p1.last().map(|(k, _)| *k), 2)
        .expect("page 2");
    assert_eq!(ids(&p2), ["b", "a"]);
    let p3 = store
        .page_records(0, u64::MAX, p2.last().map(|(k, _)| *k), 2)
        .expect("page 3");
    assert!(p3.is_empty());
    // Time filters: [since, until).
    let window = store.page_records(20_000, 40_000, None, 10).expect("window");
    assert_eq!(ids(&window), ["d", "f", "c", "b"]);
    // Paging the whole window one by one yields it exactly once, in order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.page_records(20_000, 40_000, after, 1).expect("page");
        let Some((key, r)) = page.into_iter().next() else { break };
        seen.push(r.call_id);
        after = Some(key);
    }
    assert_eq!(seen, ["d", "f", "c", "b"]);
    assert_eq!(store.page_records(0, u64::MAX, None, 0).expect("limit 0"), []);
}
