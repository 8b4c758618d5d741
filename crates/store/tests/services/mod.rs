//! The database servers the shared-store tests need: PostgreSQL and Redis on loopback, found at
//! `SWITCHBOARD_TEST_POSTGRES` / `SWITCHBOARD_TEST_REDIS` (defaults below, which `.ci/run`
//! sets up). When one is not reachable a test prints a visible SKIP line and returns, except in
//! CI (`CI=true`), where it fails.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

pub const DEFAULT_POSTGRES: &str = "postgres://switchboard:switchboard@127.0.0.1:5432/postgres";
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379/";

/// The PostgreSQL server URL (a database to connect to for creating test databases), or
/// `None` after printing SKIP.
pub fn postgres_url(test: &str) -> Option<String> {
    service(test, "SWITCHBOARD_TEST_POSTGRES", DEFAULT_POSTGRES, "PostgreSQL")
}

/// The Redis server URL, or `None` after printing SKIP.
pub fn redis_url(test: &str) -> Option<String> {
    service(test, "SWITCHBOARD_TEST_REDIS", DEFAULT_REDIS, "Redis")
}

fn service(test: &str, var: &str, default: &str, name: &str) -> Option<String> {
    let url = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    if reachable(&url) {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "{test}: {name} is not reachable at {var}={url} (CI=true: a missing service fails)"
    );
    eprintln!("SKIP: {test}: {name} not reachable at {url}; set {var} or start it to run this test");
    None
}

/// Whether the host:port of a URL accepts a TCP connection.
fn reachable(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let addrs: Vec<SocketAddr> = host_port.to_socket_addrs().map(Iterator::collect).unwrap_or_default();
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok())
}
