//! Acceptance of the web console (issue #8) in real headless Chromium, driven over WebDriver
//! (Debian `chromium` + `chromium-driver`) with fantoccini: after two SIPp registrations and a
//! call 1001 → 1002 through the server (`admin_flow`), the console at `/` lists both
//! registrations, and clicking the call in the recent calls draws its ladder diagram
//! (`svg.ladder`) with the INVITE, 407, ACK, INVITE, 180, 200, ACK, BYE arrows in order; clicking
//! an arrow shows the whole message. A screenshot of the page is kept as
//! `target/test-artifacts/console-ladder.png` (and `console-failure.png` when the test fails).
//! The browser only talks to the server on loopback, with Chromium's background networking off.
//! Without SIPp, Chromium or chromedriver the test prints SKIP, except in CI (`CI=true`) where it
//! fails. Relay ports: 7750-7799.

mod admin_flow;
mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use admin_flow::{CALLEE, CALLER, Flow};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::{TempDir, require_tool};

const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a loopback port, in its own process group with the browsers it starts; the
/// whole group is killed when dropped (also when the test panics).
struct Driver {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Driver {
    fn start(work: &TempDir) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = work.path().join("chromedriver.log");
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited ({status}): {}", driver.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not listening on {addr} after 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own group (process_group(0)), so the group's id is its pid; the
        // signal goes through libc, not /usr/bin/kill: procps-ng 4.0.2 reads `kill -KILL -19300`
        // as `kill(-1, SIGKILL)`, which kills every process the user owns.
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id())
            && pgid > 1
        {
            // SAFETY: killpg only sends a signal; the group is the one chromedriver leads.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The WebDriver capabilities: headless Chromium with a fresh profile and nothing that reaches
/// past loopback.
fn capabilities(profile: &TempDir) -> serde_json::Map<String, Value> {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                format!("--user-data-dir={}", profile.path().display()),
                "--window-size=1400,1000",
            ],
        },
    });
    match caps {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A CSS attribute value in double quotes.
fn css_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\a "),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

type Step<T> = Result<T, String>;

/// Runs `f` every 200 ms until it gives `Some` (errors such as a stale element after the
/// console's refresh count as not yet), for up to `limit`; `what` names it in the error.
async fn until<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Step<Option<T>>) -> Step<T> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("nothing yet");
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e,
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: not after {limit:?} (last: {last})"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cmd<T>(r: Result<T, fantoccini::error::CmdError>) -> Step<T> {
    r.map_err(|e| e.to_string())
}

/// What the page showed.
#[derive(Debug, Default)]
struct Seen {
    registrations: Vec<String>,
    labels: Vec<String>,
    message: String,
    timings: Vec<(&'static str, Duration)>,
}

/// The console, step by step: registrations, the call's row, its ladder, one message.
async fn browse(client: &Client, flow: &Flow, seen: &mut Seen) -> Step<()> {
    let t = Instant::now();
    cmd(client.goto(&format!("http://{}/", flow.http)).await)?;
    seen.timings.push(("page loaded", t.elapsed()));

    // Both registrations, whose rows name the users.
    seen.registrations = until(
        "registration rows of 1001 and 1002",
        Duration::from_secs(10),
        async || {
            let mut texts = Vec::new();
            for row in cmd(client.find_all(Locator::Css("tr[data-registration-id]")).await)? {
                texts.push(cmd(row.text().await)?);
            }
            let has = |user: &str| texts.iter().any(|t| t.contains(user));
            Ok((has(CALLER.0) && has(CALLEE.0)).then_some(texts))
        },
    )
    .await?;
    seen.timings.push(("registrations shown", t.elapsed()));

    // The call's row (in the recent calls): click it.
    let row = format!("tr[data-call-id={}]", css_string(&flow.call_id));
    until(&format!("a clickable {row}"), Duration::from_secs(10), async || {
        let Some(r) = cmd(client.find_all(Locator::Css(&row)).await)?.into_iter().next() else {
            return Ok(None);
        };
        cmd(r.click().await)?;
        Ok(Some(()))
    })
    .await?;
    seen.timings.push(("call row clicked", t.elapsed()));

    // The ladder, complete up to the BYE.
    let arrows = "svg.ladder g.arrow";
    seen.labels = until(
        "the ladder's arrows up to the BYE",
        Duration::from_secs(10),
        async || {
            let mut labels = Vec::new();
            for arrow in cmd(client.find_all(Locator::Css(arrows)).await)? {
                let label = cmd(arrow.attr("data-label").await)?.unwrap_or_default();
                let text = cmd(arrow.find(Locator::Css("text")).await)?;
                if cmd(text.text().await)?.trim().is_empty() {
                    return Err(format!("the arrow {label:?} has an empty text"));
                }
                labels.push(label);
            }
            Ok(labels.iter().any(|l| l == "BYE").then_some(labels))
        },
    )
    .await?;
    seen.timings.push(("ladder drawn", t.elapsed()));

    // The first INVITE arrow (the caller's) opens the whole message.
    let invite = format!("{arrows}[data-label=\"INVITE\"]");
    until("a click on the INVITE arrow", Duration::from_secs(10), async || {
        let arrow = cmd(client.find(Locator::Css(&invite)).await)?;
        if arrow.click().await.is_err() {
            // A driver may refuse a click on an SVG group: the label inside it is the same target.
            cmd(cmd(arrow.find(Locator::Css("text")).await)?.click().await)?;
        }
        Ok(Some(()))
    })
    .await?;
    seen.message = until("pre.sip-message with the INVITE", Duration::from_secs(10), async || {
        for pre in cmd(client.find_all(Locator::Css("pre.sip-message")).await)? {
            let text = cmd(pre.text().await)?;
            if text.contains("INVITE sip:") {
                return Ok(Some(text));
            }
        }
        Ok(None)
    })
    .await?;
    seen.timings.push(("message shown", t.elapsed()));
    Ok(())
}

#[test]
fn console_lists_registrations_and_draws_the_call_ladder() {
    if !require_tool("sipp", "-v") || !require_tool("chromedriver", "--version") || !require_tool(CHROMIUM, "--version")
    {
        return;
    }
    let t0 = Instant::now();
    let flow = admin_flow::registered_call(&["--rtp-ports", "7750-7799"]);
    println!(
        "registered 2 users and made the call {} in {:?}",
        flow.call_id, flow.took
    );

    let work = TempDir::new("browser");
    let profile = TempDir::new("chromium-profile");
    let driver = Driver::start(&work);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let artifacts = admin_flow::artifacts_dir();
    let mut seen = Seen::default();
    let outcome: Step<()> = runtime.block_on(async {
        // rustls has both ring (ours) and aws-lc-rs (hyper-rustls's default) compiled in: name one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = ClientBuilder::rustls().map_err(|e| format!("rustls connector: {e}"))?;
        let client = tokio::time::timeout(
            Duration::from_secs(30),
            builder.capabilities(capabilities(&profile)).connect(&driver.url),
        )
        .await
        .map_err(|_| "no WebDriver session after 30 s".to_owned())?
        .map_err(|e| format!("WebDriver session: {e}"))?;
        let result = match tokio::time::timeout(Duration::from_secs(60), browse(&client, &flow, &mut seen)).await {
            Ok(r) => r,
            Err(_) => Err("the console steps took over 60 s".to_owned()),
        };
        // A picture of the page either way.
        let name = if result.is_ok() {
            "console-ladder.png"
        } else {
            "console-failure.png"
        };
        match client.screenshot().await {
            Ok(png) => {
                let path = artifacts.join(name);
                std::fs::write(&path, png).expect("write the screenshot");
                println!("screenshot: {}", path.display());
            }
            Err(e) => println!("no screenshot: {e}"),
        }
        let source = if result.is_err() {
            client.source().await.unwrap_or_default()
        } else {
            String::new()
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        result.map_err(|e| format!("{e}\n--- page ---\n{source}"))
    });
    for (step, at) in &seen.timings {
        println!("{step}: {at:?}");
    }
    if let Err(e) = outcome {
        panic!("{e}\n--- chromedriver log (tail) ---\n{}", tail(&driver.log_text(), 40));
    }
    drop(driver);

    println!("registration rows: {:?}", seen.registrations);
    println!("ladder: {:?}", seen.labels);
    // Each row: the user, its contact, where the REGISTER came from, over what.
    for (user, port) in [
        (CALLER.0, flow.caller_contact_port),
        (CALLEE.0, flow.callee_contact_port),
    ] {
        let row = seen
            .registrations
            .iter()
            .find(|t| t.contains(&format!("sip:{user}@127.0.0.1:{port}")))
            .unwrap_or_else(|| panic!("no row with the contact of {user}: {seen:?}"));
        assert!(row.contains("UDP") && row.matches("127.0.0.1:").count() >= 2, "{row}");
    }

    // The conversation in order, by first (and for the ACK of the 2xx, last) occurrence:
    // INVITE, 407, ACK of the 407, INVITE with credentials, 180, 200, ACK, BYE.
    let labels = &seen.labels;
    let first = |what: &str| {
        labels
            .iter()
            .position(|l| l == what)
            .unwrap_or_else(|| panic!("no arrow {what:?} in the ladder: {labels:?}"))
    };
    let last = |what: &str| labels.iter().rposition(|l| l == what).unwrap_or(0);
    let order = [
        first("INVITE"),
        first("407 Proxy Authentication Required"),
        first("ACK"),
        first("180 Ringing"),
        first("200 OK"),
        last("ACK"),
        first("BYE"),
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "out of order {order:?}: {labels:?}"
    );
    assert!(labels.iter().filter(|l| *l == "INVITE").count() >= 2, "{labels:?}");

    assert!(seen.message.contains("INVITE sip:"), "{}", seen.message);
    assert!(seen.message.contains(&flow.call_id), "{}", seen.message);
    println!("browser_console took {:?}", t0.elapsed());
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
