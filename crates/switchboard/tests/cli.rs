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

#[test]
fn user_commands_say_they_are_not_implemented_yet() {
    let dir = support::TempDir::new("cli");
    for args in [
        vec!["user", "add", "1000", "--password", "pw"],
        vec!["user", "passwd", "1000", "--password", "pw"],
        vec!["user", "remove", "1000"],
        vec!["user", "list"],
    ] {
        let out = Command::new(support::bin())
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not implemented yet"),
            "{args:?}"
        );
    }
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
