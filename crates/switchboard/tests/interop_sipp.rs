//! Interop with SIPp (Debian package `sip-tester`): its OPTIONS scenario passes over UDP and TCP.
//! Without SIPp the test prints SKIP, except in CI (`CI=true`) where it fails.

mod support;

use std::process::Command;

use support::{Server, TempDir, require_tool};

fn run_sipp(server: std::net::SocketAddr, transport: &str) {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/options.xml");
    let work = TempDir::new("sipp");
    let status = Command::new("sipp")
        .current_dir(work.path())
        .arg(server.to_string())
        .args(["-sf", scenario, "-t", transport, "-i", "127.0.0.1"])
        .args([
            "-m",
            "200",
            "-r",
            "100",
            "-timeout",
            "30s",
            "-recv_timeout",
            "5000",
            "-trace_err",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output()
        .expect("run sipp");
    let errors = std::fs::read_dir(work.path())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("errors"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        status.status.success(),
        "sipp over {transport} failed ({}): {errors}\n{}",
        status.status,
        String::from_utf8_lossy(&status.stderr)
    );
}

#[test]
fn sipp_options_over_udp_and_tcp() {
    if !require_tool("sipp", "-v") {
        return;
    }
    let server = Server::start(&[]);
    run_sipp(server.udp, "u1");
    run_sipp(server.tcp, "t1");
}
