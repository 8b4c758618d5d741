//! `switchboard ban list|remove`: the ban list of a running server, through its admin API
//! (`GET /api/bans`, `DELETE /api/bans/{ip}` on `--http`, with `--token` or
//! `SWITCHBOARD_HTTP_TOKEN` when the server wants one). One blocking HTTP/1.1 request over a
//! plain `TcpStream`: the admin API listens on loopback or a trusted network, and a client
//! library would be a large dependency for two requests.
//!
//! Exit status: 0 done, 1 the server refused or could not be reached (a `remove` of an address
//! that is not banned included), 2 bad arguments (clap).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::cli::{ApiArgs, BanCommand};

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(cmd: BanCommand) -> ExitCode {
    let result = match cmd {
        BanCommand::List { api, json } => list(&api, json),
        BanCommand::Remove { ip, api } => remove(&api, ip),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: ban: {e}");
            ExitCode::FAILURE
        }
    }
}

fn list(api: &ApiArgs, json: bool) -> Result<(), String> {
    let (status, body) = request(api, "GET", "/api/bans")?;
    if status != 200 {
        return Err(refusal(api, status, &body));
    }
    if json {
        println!("{body}");
        return Ok(());
    }
    let doc: Value = serde_json::from_str(&body).map_err(|e| format!("the server's answer is not JSON: {e}"))?;
    let bans = doc["bans"].as_array().ok_or("the server's answer has no ban list")?;
    print!("{}", table(bans, unix_now()));
    Ok(())
}

fn remove(api: &ApiArgs, ip: std::net::IpAddr) -> Result<(), String> {
    let (status, body) = request(api, "DELETE", &format!("/api/bans/{ip}"))?;
    match status {
        204 | 200 => {
            println!("ban on {ip} lifted");
            Ok(())
        }
        404 => Err(format!("no ban on {ip}")),
        _ => Err(refusal(api, status, &body)),
    }
}

/// Why the API said no, in words.
fn refusal(api: &ApiArgs, status: u16, body: &str) -> String {
    let why = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().chars().take(200).collect());
    match status {
        401 if api.token.is_none() => format!(
            "{}: the admin API wants a token: give --token or set SWITCHBOARD_HTTP_TOKEN ({why})",
            api.http
        ),
        401 => format!("{}: the token was refused ({why})", api.http),
        _ => format!("{}: HTTP {status}: {why}", api.http),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The ban list as a table, or a line saying there is none.
fn table(bans: &[Value], now: u64) -> String {
    if bans.is_empty() {
        return "no bans\n".into();
    }
    let rows: Vec<[String; 5]> = bans
        .iter()
        .map(|b| {
            let ip = b["ip"].as_str().unwrap_or("?");
            let address = match b["prefix_len"].as_u64() {
                Some(64) => format!("{ip}/64"),
                _ => ip.to_owned(),
            };
            let until = b["until"].as_u64().unwrap_or(0);
            [
                address,
                b["reason"].as_str().unwrap_or("?").to_owned(),
                b["user"].as_str().unwrap_or("-").to_owned(),
                b["failures"].as_u64().map_or_else(|| "?".into(), |n| n.to_string()),
                format!("{} ({} left)", utc(until), left(until.saturating_sub(now))),
            ]
        })
        .collect();
    let header = ["ADDRESS", "REASON", "USER", "FAILURES", "UNTIL"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}

/// `1h 02m`, `4m 10s`, `12s`.
fn left(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// `2026-11-25 18:40:00 UTC` (civil-from-days, Howard Hinnant's algorithm).
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// One HTTP/1.1 request without a body on a fresh connection: the status and the body.
fn request(api: &ApiArgs, method: &str, path: &str) -> Result<(u16, String), String> {
    let addrs: Vec<_> = api
        .http
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e} (expected HOST:PORT)", api.http))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = stream.ok_or_else(|| {
        let why = last.map_or_else(|| "no address".to_owned(), |e| e.to_string());
        format!(
            "cannot reach the admin API at {}: {why} (is the server running? see --http)",
            api.http
        )
    })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n\
         User-Agent: switchboard-cli\r\nContent-Length: 0\r\n",
        api.http
    );
    if let Some(t) = &api.token {
        head.push_str(&format!("Authorization: Bearer {}\r\n", t.expose()));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .map_err(|e| format!("{}: {e}", api.http))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("{}: {e}", api.http))?;
    parse_response(&raw).ok_or_else(|| format!("{}: not an HTTP response", api.http))
}

/// Status and body of an HTTP/1.1 response (`Content-Length`, chunked, or up to the close).
fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let (k, v) = l.split_once(':')?;
        if k.trim().eq_ignore_ascii_case("content-length") {
            length = v.trim().parse::<usize>().ok();
        } else if k.trim().eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut out = Vec::new();
        let mut rest = rest;
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n")?;
            let size = std::str::from_utf8(&rest[..eol]).ok()?;
            let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(eol + 2..eol + 2 + size)?);
            rest = rest.get(eol + 4 + size..)?;
        }
        out
    } else {
        match length {
            Some(n) => rest.get(..n)?.to_vec(),
            None => rest.to_vec(),
        }
    };
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_with_a_length_or_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"bans\":[]}";
        assert_eq!(parse_response(plain), Some((200, "{\"bans\":[]}".into())));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((404, "hello world".into())));
        assert_eq!(
            parse_response(b"HTTP/1.1 204 No Content\r\n\r\n"),
            Some((204, String::new()))
        );
        assert_eq!(parse_response(b"SIP/2.0 200 OK\r\n\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), None, "no end of headers");
    }

    #[test]
    fn the_table() {
        assert_eq!(table(&[], 0), "no bans\n");
        let bans: Vec<Value> = serde_json::from_str(
            r#"[{"ip":"203.0.113.7","prefix_len":32,"reason":"source-failures","user":null,"since":1700000000,"until":1700003600,"failures":20},
                {"ip":"2001:db8:1:2::","prefix_len":64,"reason":"user-failures","user":"1001","since":1700000000,"until":1700000100,"failures":3}]"#,
        )
        .expect("json");
        let text = table(&bans, 1_700_000_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ADDRESS"), "{text}");
        assert!(
            lines[1].starts_with("203.0.113.7 ")
                && lines[1].contains("source-failures")
                && lines[1].contains(" 20 ")
                && lines[1].contains("2023-11-14 23:13:20 UTC (1h 00m left)"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("2001:db8:1:2::/64")
                && lines[2].contains("1001")
                && lines[2].contains("(1m 40s left)"),
            "{text}"
        );
        // Columns line up.
        let col = |l: &str| l.find("REASON").or_else(|| l.find("-failures").map(|i| i - 6));
        assert_eq!(col(lines[0]), col(lines[1]));
    }

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(left(5), "5s");
        assert_eq!(left(250), "4m 10s");
        assert_eq!(left(3720), "1h 02m");
    }
}
