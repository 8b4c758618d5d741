//! # server — switchboard's runtime
//!
//! Binds the SIP transports, drives the sans-IO transaction layer (`sip-txn`) with real sockets
//! and a real clock, and answers what the server handles itself. Layout:
//!
//! - [`transport`]: UDP (SO_REUSEPORT socket groups), TCP and TLS listeners, the connection table,
//!   the receive path (parse → checks → Via stamping → engine) and the send path;
//! - [`engine`]: the transaction layer and the dispatcher behind one lock;
//! - [`dispatch`]: the transaction user: OPTIONS, CANCEL, and the hand-off to the registrar and
//!   the proxy;
//! - [`registrar`]: REGISTER and the location service;
//! - [`proxy`]: the authenticating stateful proxy and call tracking;
//! - [`via`]: `received`/`rport` (RFC 3261 §18.2.1, RFC 3581);
//! - [`auth`]: digest authentication (nonces, challenges, verification) for the registrar and
//!   the proxy, sans-IO;
//! - [`config`]: the settings.
//!
//! [`run`] serves until its shutdown future completes, then stops taking new requests and waits
//! (boundedly) for transactions in flight.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod control;
pub mod dispatch;
pub mod engine;
pub mod guard;
pub mod metrics;
pub mod proxy;
pub mod registrar;
pub mod transport;
pub mod via;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub use config::{GuardSettings, MediaSettings, ServerConfig, TraceSettings};

/// The subscriber store as the server holds it: any backend ([`store::Stores`]).
pub type Subscribers = Arc<dyn store::SubscriberStore>;
pub use control::Control;
use transport::{Shared, stream, tls, udp};

/// Where the server ended up listening (ports chosen by the OS when 0 was asked for).
#[derive(Debug, Clone, Default)]
pub struct Listening {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
}

/// One socket (a receive thread and a worker, `transport::udp`) per core but one: the engine
/// lock, the group committer and the timer task need a core too. On 2 cores a second socket
/// made REGISTER+auth slower (more lock-holder preemption): 25k/s offered gave 17.9k/s with two
/// and 19.2k/s with one, at less CPU (`bench/register.sh`, before the receive/worker split).
fn sockets_per_address(config: &ServerConfig) -> usize {
    match config.udp_sockets_per_address {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
        n => n,
    }
}

/// Binds UDP and TCP on the same port of `addr`; with port 0, retries until one port is free for
/// both.
fn bind_sip(addr: SocketAddr, udp_count: usize) -> io::Result<(Vec<std::net::UdpSocket>, tokio::net::TcpListener)> {
    let mut last_err = None;
    for _ in 0..20 {
        let group = udp::bind_group(addr, udp_count)?;
        let port = group
            .first()
            .and_then(|s| s.local_addr().ok())
            .map_or(addr.port(), |a| a.port());
        match stream::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(tcp) => return Ok((group, tcp)),
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no port free for both UDP and TCP")))
}

/// Serves SIP until `shutdown` completes. `on_ready` is called once every listener is bound.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(&Listening),
) -> io::Result<()> {
    serve(config, shutdown, |l, _| on_ready(l)).await
}

/// [`run`], handing `on_ready` a [`Control`] of the running server for the admin API.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(&Listening, Control),
) -> io::Result<()> {
    let mut listening = Listening::default();
    let mut udp_sockets = Vec::new();
    let mut tcp_listeners = Vec::new();
    let per_address = sockets_per_address(&config);
    for &addr in &config.sip_listen {
        let (group, tcp) = bind_sip(addr, per_address)?;
        listening.udp.push(group[0].local_addr()?);
        listening.tcp.push(tcp.local_addr()?);
        udp_sockets.extend(group.into_iter().map(Arc::new));
        tcp_listeners.push(tcp);
    }
    let mut tls_listeners = Vec::new();
    let mut cert = None;
    if !config.tls_listen.is_empty() {
        let (Some(c), Some(k)) = (&config.tls_cert, &config.tls_key) else {
            return Err(io::Error::other("TLS listeners need --tls-cert and --tls-key"));
        };
        let loaded = tls::ReloadableCert::open(c, k)?;
        for &addr in &config.tls_listen {
            let l = stream::bind(addr)?;
            listening.tls.push(l.local_addr()?);
            tls_listeners.push(l);
        }
        cert = Some(loaded);
    }

    let node_id = node_id(&config, &listening);
    let stores = match &config.data_dir {
        Some(dir) => {
            let stores = {
                let (urls, dir, node) = (config.stores.clone(), dir.clone(), node_id.clone());
                tokio::task::spawn_blocking(move || store::Stores::open(&urls, &dir, &node))
                    .await
                    .map_err(io::Error::other)?
            };
            Some(stores.map_err(|e| io::Error::other(format!("{}: {e}", dir.display())))?)
        }
        None => None,
    };
    // In a cluster every node signs nonces and internal hops with the secret they share.
    let secret = match stores.as_ref().and_then(|s| s.cluster.clone()) {
        Some(cluster) => {
            let candidate = auth::DigestAuth::random_secret()?;
            tokio::task::spawn_blocking(move || cluster.shared_secret(&candidate))
                .await
                .map_err(io::Error::other)?
                .map_err(|e| io::Error::other(format!("cluster secret: {e}")))?
        }
        None => auth::DigestAuth::random_secret()?,
    };
    let (registrar, committer, records) = match &stores {
        Some(stores) => {
            let err = |e: store::StoreError| io::Error::other(format!("location store: {e}"));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let bindings = {
                let locations = stores.locations.clone();
                tokio::task::spawn_blocking(move || locations.load(now))
                    .await
                    .map_err(io::Error::other)?
                    .map_err(err)?
            };
            tracing::info!(bindings = bindings.len(), "registrations loaded");
            let committer = store::GroupCommitter::start(
                stores.locations.batch_writer().map_err(err)?,
                std::time::Duration::from_millis(1),
                1024,
            );
            let mut subscribers = store::SubscriberCache::new(stores.subscribers.clone());
            if stores.subscribers_remote {
                let (store, domain) = (stores.subscribers.clone(), config.domain.to_ascii_lowercase());
                let (generation, all) = tokio::task::spawn_blocking(move || {
                    Ok::<_, store::StoreError>((store.generation()?, store.list(Some(&domain))?))
                })
                .await
                .map_err(io::Error::other)?
                .map_err(|e| io::Error::other(format!("subscriber store: {e}")))?;
                tracing::info!(subscribers = all.len(), "subscribers loaded");
                subscribers.load_all(generation, all);
            }
            let registrar = registrar::Registrar {
                domain: config.domain.to_ascii_lowercase(),
                intervals: config.registration,
                auth: auth::DigestAuth::new(secret, config.nonce_lifetime.as_secs())
                    .prefer_sha256(config.digest_sha256_first)
                    .with_algorithms(&config.digest_algorithms)
                    .with_node_tag(stores.cluster.as_ref().map_or(0, |_| cluster::node_tag(&node_id))),
                location: registrar::Location::from_bindings(bindings),
                subscribers,
                auth_failures: 0,
                node: if stores.cluster.is_some() {
                    node_id.clone()
                } else {
                    String::new()
                },
            };
            (
                Some(registrar),
                Some(committer),
                Some(store::RecordWriter::start(stores.records.clone())),
            )
        }
        None => (None, None, None),
    };
    let proxy = registrar.as_ref().map(|_| {
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let salt = u64::from_le_bytes(
            auth::DigestAuth::random_secret().map_or([7u8; 8], |s| s[..8].try_into().unwrap_or([7u8; 8])),
        );
        proxy::Proxy::new(
            proxy::ProxyConfig {
                max_calls_per_user: config.guard.max_calls_per_user,
                ..config.proxy
            },
            local_addrs(&listening, &config.domain),
            Instant::now(),
            wall_ms,
            salt,
        )
        .with_cluster(
            stores
                .as_ref()
                .and_then(|s| s.cluster.as_ref())
                .map(|_| cluster::ClusterView::new(&node_id, &secret)),
        )
    });
    let mut relay_handle = None;
    let proxy = match (proxy, &config.media) {
        (Some(p), Some(m)) => {
            let local = local_addrs(&listening, &config.domain);
            let address = m
                .address
                .or(local.udp.map(|a| a.ip()))
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
            let relay = media::MediaRelay::start(media::MediaConfig {
                address,
                ports: m.ports,
                media_timeout: m.timeout,
                threads: 0,
            })?;
            tracing::info!(%address, ports = ?m.ports, streams = relay.pool_size(), "media relay");
            relay_handle = Some(relay.clone());
            let policy = sdp::CodecPolicy::new(m.codecs.clone());
            Some(p.with_media(Box::new(proxy::media::RelayControl::new(relay)), policy))
        }
        (p, _) => p,
    };
    let (committed_tx, committed_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Shared::new(
        config,
        udp_sockets,
        registrar,
        committer,
        committed_tx,
        proxy,
        records,
        relay_handle.clone(),
        listening.clone(),
        stores.clone(),
    );
    let mut tasks = Vec::new();
    let mut udp_threads = Vec::new();
    for i in 0..shared.udp.len() {
        udp_threads.push(udp::spawn(shared.clone(), i)?);
    }
    let mut accept_tasks = Vec::new();
    for l in tcp_listeners {
        accept_tasks.push(tokio::spawn(stream::accept_loop(shared.clone(), l, None)));
    }
    if let Some(cert) = cert {
        let acceptor = tls::acceptor(cert.clone())?;
        for l in tls_listeners {
            accept_tasks.push(tokio::spawn(stream::accept_loop(
                shared.clone(),
                l,
                Some(acceptor.clone()),
            )));
        }
        tasks.push(tokio::spawn(tls::reload_on_sighup(cert)));
    }
    tasks.push(tokio::spawn(shared.clone().run_timers()));
    tasks.push(tokio::spawn(shared.clone().run_committed(committed_rx)));
    if let Some(stores) = &stores {
        tasks.push(tokio::spawn(sweep_registrations(
            shared.clone(),
            stores.locations.clone(),
        )));
        if stores.subscribers_remote {
            tasks.push(tokio::spawn(keep_subscribers_loaded(
                shared.clone(),
                stores.subscribers.clone(),
            )));
        }
    }
    let cluster_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut cluster_task = None;
    if let (Some(cluster), Some(udp)) = (
        stores.as_ref().and_then(|s| s.cluster.clone()),
        local_addrs(&listening, &shared.config.domain).udp,
    ) {
        let me = store::NodeInfo {
            id: node_id.clone(),
            sip: cluster::hop_address(udp),
        };
        tracing::info!(node = %me.id, hop = %me.sip, "cluster node");
        cluster_task = Some(tokio::spawn(cluster::run(
            shared.clone(),
            cluster,
            me,
            cluster_stop.clone(),
        )));
    }
    if relay_handle.is_some() {
        tasks.push(tokio::spawn(watch_media(shared.clone())));
    }
    on_ready(&listening, Control::new(shared.clone(), listening.clone()));

    shutdown.await;
    for t in &accept_tasks {
        t.abort();
    }
    shared.engine.lock().stop_accepting();
    let deadline = Instant::now() + shared.config.shutdown_grace;
    while shared.engine.lock().in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for t in tasks {
        t.abort();
    }
    cluster_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(t) = cluster_task {
        // Withdraws this node's announcement, so the others stop routing to it at once.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), t).await;
    }
    shared.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in udp_threads {
        let _ = t.join();
    }
    if let Some(relay) = relay_handle {
        relay.shutdown();
    }
    let st = &shared.stats;
    let locks = st.engine_locks.load(std::sync::atomic::Ordering::Relaxed).max(1);
    tracing::info!(
        locks,
        wait_ns_avg = st.engine_wait_ns.load(std::sync::atomic::Ordering::Relaxed) / locks,
        hold_ns_avg = st.engine_hold_ns.load(std::sync::atomic::Ordering::Relaxed) / locks,
        hold_ns_max = st.engine_hold_max_ns.load(std::sync::atomic::Ordering::Relaxed),
        "engine lock"
    );
    Ok(())
}

/// This node's id: `--node-id`, or `HOST-PORT` of the first SIP listener.
fn node_id(config: &ServerConfig, listening: &Listening) -> String {
    if !config.node_id.is_empty() {
        return config.node_id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".into());
    let port = listening.udp.first().map_or(0, SocketAddr::port);
    format!("{host}-{port}")
}

/// The addresses the proxy puts in Via and Record-Route: the first listener of each transport,
/// with a wildcard address replaced by the address this host reaches the outside with.
fn local_addrs(listening: &Listening, domain: &str) -> proxy::LocalAddrs {
    let concrete = |a: &SocketAddr| -> SocketAddr {
        if !a.ip().is_unspecified() {
            return *a;
        }
        // Connecting a UDP socket sends nothing; it only picks the route and source address.
        let probe = if a.is_ipv4() { "192.0.2.1:9" } else { "[2001:db8::1]:9" };
        let bind = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let ip = std::net::UdpSocket::bind(bind)
            .and_then(|s| s.connect(probe).and_then(|()| s.local_addr()))
            .map(|l| l.ip())
            .unwrap_or(if a.is_ipv4() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            });
        SocketAddr::new(ip, a.port())
    };
    proxy::LocalAddrs {
        udp: listening.udp.first().map(concrete),
        tcp: listening.tcp.first().map(concrete),
        tls: listening.tls.first().map(concrete),
        domain: domain.to_ascii_lowercase(),
    }
}

/// Every second: calls whose media stopped are ended (BYE both ways).
async fn watch_media(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        shared.with_engine(|e, now, out| e.check_media(now, out));
    }
}

/// Every second: when the subscriber store's generation moved (a user added or changed by any
/// node, the CLI or the API), reads the domain's subscribers again and swaps them into the
/// cache. The queries run on the blocking pool, never under the engine lock: a slow or
/// unreachable database delays user changes, not calls and registrations.
async fn keep_subscribers_loaded(shared: Arc<Shared>, store: Subscribers) {
    let domain = shared.config.domain.to_ascii_lowercase();
    let mut loaded = None;
    shared.with_engine(|e, _, _| loaded = e.subscriber_generation());
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let (store, domain, known) = (store.clone(), domain.clone(), loaded);
        let read = tokio::task::spawn_blocking(move || {
            let generation = store.generation()?;
            if Some(generation) == known {
                return Ok(None);
            }
            Ok::<_, store::StoreError>(Some((generation, store.list(Some(&domain))?)))
        })
        .await;
        match read {
            Ok(Ok(Some((generation, all)))) => {
                tracing::debug!(generation, subscribers = all.len(), "subscribers reloaded");
                shared.with_engine(|e, _, _| e.load_subscribers(generation, all));
                loaded = Some(generation);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "subscriber store: could not reload the subscribers"),
            Err(_) => {}
        }
    }
}

/// Every 10 s: drops expired registrations from memory and from the store.
async fn sweep_registrations(shared: Arc<Shared>, store: Arc<dyn store::LocationStore>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        shared.with_engine(|e, _, _| {
            e.sweep();
        });
        let store = store.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let _ = tokio::task::spawn_blocking(move || store::LocationStore::purge_expired(&*store, now)).await;
    }
}

/// A future that completes on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: a SIGTERM that arrives while the server is still
/// starting (before [`serve`] awaits it) then stops it gracefully instead of killing it. Call it
/// inside the tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
