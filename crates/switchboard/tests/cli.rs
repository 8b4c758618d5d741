//! The command line as a user meets it: help, version, and honest "not implemented yet".

mod support;

use std::process::Command;

#[test]
fn help_lists_the_commands() {
    let out = Command::new(support::bin()).arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve") && text.contains("user"), "{text}");
    let out = Command::new(support::bin())
        .args(["serve", "--help"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--sip-listen",
        "--tls-listen",
        "--tls-cert",
        "--tls-key",
        "--domain",
        "--data-dir",
        "--http-listen",
        "--media-address",
        "--rtp-ports",
        "--store-subscribers",
        "--store-locations",
        "--store-records",
        "--config",
    ] {
        assert!(text.contains(flag), "serve --help lacks {flag}");
    }
    let out = Command::new(support::bin()).arg("--version").output().expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("switchboard "));
}

fn user(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(support::bin())
        .arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(["--domain", "example.com"])
        .output()
        .expect("run")
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn user_lifecycle_on_the_embedded_store() {
    let dir = support::TempDir::new("users");
    let add = user(dir.path(), &["add", "1000", "--password", "s3cret-pw-1000"]);
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    assert_eq!(stdout(&add).trim(), "added 1000@example.com");
    assert!(user(dir.path(), &["add", "1001", "--password", "pw"]).status.success());

    let again = user(dir.path(), &["add", "1000", "--password", "x"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let bad = user(dir.path(), &["add", "no spaces", "--password", "x"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid extension"));

    assert_eq!(
        stdout(&user(dir.path(), &["list"])).lines().collect::<Vec<_>>(),
        ["1000@example.com", "1001@example.com"]
    );
    let passwd = user(dir.path(), &["passwd", "1000", "--password", "changed"]);
    assert!(passwd.status.success());
    assert_eq!(
        user(dir.path(), &["passwd", "4242", "--password", "x"]).status.code(),
        Some(1)
    );
    assert!(user(dir.path(), &["remove", "1001"]).status.success());
    assert_eq!(user(dir.path(), &["remove", "1001"]).status.code(), Some(1));
    assert_eq!(stdout(&user(dir.path(), &["list"])).trim(), "1000@example.com");

    // Only HA1 values reach the disk.
    for entry in std::fs::read_dir(dir.path()).expect("data dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        assert!(!bytes.windows(14).any(|w| w == b"s3cret-pw-1000"), "password on disk");
    }
}

#[test]
fn tls_only_users_are_flagged_listed_and_unflagged() {
    let dir = support::TempDir::new("users-tls");
    let add = user(dir.path(), &["add", "1000", "--password", "pw", "--tls-only"]);
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    assert_eq!(stdout(&add).trim(), "added 1000@example.com tls-only");
    assert!(user(dir.path(), &["add", "1001", "--password", "pw"]).status.success());
    let list = || stdout(&user(dir.path(), &["list"]));
    assert_eq!(
        list().lines().collect::<Vec<_>>(),
        ["1000@example.com tls-only", "1001@example.com"]
    );
    // A password change keeps the flag; the flags change it, with or without a password.
    let passwd = user(dir.path(), &["passwd", "1000", "--password", "new"]);
    assert_eq!(stdout(&passwd).trim(), "password changed for 1000@example.com");
    assert!(list().starts_with("1000@example.com tls-only\n"));
    let off = user(dir.path(), &["passwd", "1000", "--no-tls-only"]);
    assert_eq!(stdout(&off).trim(), "tls-only off for 1000@example.com");
    let both = user(dir.path(), &["passwd", "1001", "--password", "x", "--tls-only"]);
    assert_eq!(
        stdout(&both).trim(),
        "password changed, tls-only on for 1001@example.com"
    );
    assert_eq!(
        list().lines().collect::<Vec<_>>(),
        ["1000@example.com", "1001@example.com tls-only"]
    );
    let unknown = user(dir.path(), &["passwd", "4242", "--tls-only"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no such user"));
    let nothing = user(dir.path(), &["passwd", "1000"]);
    assert_eq!(nothing.status.code(), Some(2), "nothing to change is a usage error");
}

#[test]
fn allowed_networks_are_set_listed_and_cleared() {
    let dir = support::TempDir::new("users-acl");
    let add = user(
        dir.path(),
        &[
            "add",
            "1000",
            "--password",
            "pw",
            "--allow-from",
            "198.51.100.0/24,2001:db8::/32",
        ],
    );
    assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stderr));
    assert_eq!(
        stdout(&add).trim(),
        "added 1000@example.com allow-from=198.51.100.0/24,2001:db8::/32"
    );
    let bad = user(
        dir.path(),
        &["add", "1001", "--password", "pw", "--allow-from", "10.0.0.0/33"],
    );
    assert_eq!(bad.status.code(), Some(2), "a bad network is a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("10.0.0.0/33"));
    let set = user(dir.path(), &["passwd", "1000", "--allow-from", "203.0.113.9"]);
    assert_eq!(stdout(&set).trim(), "allowed networks set for 1000@example.com");
    assert_eq!(
        stdout(&user(dir.path(), &["list"])).trim(),
        "1000@example.com allow-from=203.0.113.9"
    );
    let clear = user(dir.path(), &["passwd", "1000", "--allow-from", ""]);
    assert_eq!(stdout(&clear).trim(), "allowed from anywhere for 1000@example.com");
    assert_eq!(stdout(&user(dir.path(), &["list"])).trim(), "1000@example.com");
}

#[test]
fn bad_or_unreachable_store_urls_are_reported_without_their_password() {
    let dir = support::TempDir::new("pg");
    let run = |url: &str| {
        Command::new(support::bin())
            .args(["user", "list", "--store-subscribers", url])
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .expect("run")
    };
    let out = run("mysql://admin:hunter2@localhost/x");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown store") && !err.contains("hunter2"), "{err}");
    let out = run("redis://127.0.0.1:6379/");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a store for subscribers"), "{err}");
    // Port 1 on loopback: nothing listens there.
    let out = run("postgres://admin:hunter2@127.0.0.1:1/x");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("127.0.0.1:1") && !err.contains("hunter2"), "{err}");
}

#[test]
fn bad_flags_are_rejected_with_the_reason() {
    let out = Command::new(support::bin())
        .args(["serve", "--rtp-ports", "20000-10000"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LO must be below HI"));
    let out = Command::new(support::bin())
        .args(["serve", "--config", "/nonexistent.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}
