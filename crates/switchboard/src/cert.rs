//! `switchboard cert self-signed`: a development certificate and key for `serve --tls-cert
//! --tls-key`, made with rcgen (ECDSA P-256, SHA-256; the names as subject alternative names, IP
//! addresses as IP entries; extended key usage serverAuth; valid from yesterday for `--days`).
//!
//! `cert.pem` is written with mode 0644, `key.pem` with mode 0600; both go to a temporary file
//! in the directory first and are renamed into place, so a reader never sees half a file and the
//! key is never readable by others, not even for a moment. Existing files are kept unless
//! `--force` is given.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};

use crate::cli::CertCommand;

pub fn run(cmd: CertCommand) -> ExitCode {
    match cmd {
        CertCommand::SelfSigned {
            out_dir,
            names,
            days,
            force,
        } => {
            let names = if names.is_empty() {
                default_names()
            } else {
                dedup(names)
            };
            match self_signed(&out_dir, &names, days, force) {
                Ok(written) => {
                    print_written(&written, &names);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("switchboard: cert self-signed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The machine's host name, `localhost`, `127.0.0.1` and `::1`.
fn default_names() -> Vec<String> {
    let host = crate::serve::host_name().to_ascii_lowercase();
    let mut names = Vec::new();
    if crate::cli::parse_cert_name(&host).is_ok() {
        names.push(host);
    }
    names.extend(["localhost", "127.0.0.1", "::1"].map(str::to_owned));
    dedup(names)
}

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// What `self_signed` wrote.
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `YYYY-MM-DD`, the last day the certificate is valid.
    pub valid_until: String,
}

/// The calendar date `days` days after 1970-01-01 (Howard Hinnant's civil-from-days).
fn civil(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// Writes `cert.pem` and `key.pem` into `dir` for `names`, valid for `days` days from today.
pub fn self_signed(dir: &Path, names: &[String], days: u32, force: bool) -> Result<Written, String> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if !force {
        for p in [&cert_path, &key_path] {
            if p.exists() {
                return Err(format!("{} exists already (--force replaces it)", p.display()));
            }
        }
    }
    let mut params = CertificateParams::new(names.to_vec()).map_err(|e| format!("bad name: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.first().map_or("switchboard", String::as_str));
    dn.push(DnType::OrganizationName, "switchboard development certificate");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // From yesterday: a phone whose clock is a little behind still accepts it.
    let (y, m, d) = civil(today - 1);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil(today + i64::from(days));
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let key = KeyPair::generate().map_err(|e| format!("key generation failed: {e}"))?;
    let cert = params.self_signed(&key).map_err(|e| format!("signing failed: {e}"))?;

    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(Written {
        cert: cert_path,
        key: key_path,
        valid_until: format!("{y:04}-{m:02}-{d:02}"),
    })
}

/// Writes `path` through a temporary file created with `mode`, then renames it into place.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", path.display())
    })
}

fn print_written(w: &Written, names: &[String]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "certificate: {} (self-signed for {}; valid until {})",
        w.cert.display(),
        names.join(", "),
        w.valid_until
    );
    let _ = writeln!(out, "private key: {} (mode 0600)", w.key.display());
    let _ = writeln!(
        out,
        "serve with:  switchboard serve --tls-cert {} --tls-key {}",
        shell_word(&w.cert),
        shell_word(&w.key)
    );
    let _ = writeln!(
        out,
        "phones must trust {} (or not verify the server): it is for development only",
        w.cert.display()
    );
}

/// A path as one shell word (quoted when it holds anything but safe characters).
fn shell_word(p: &Path) -> String {
    let s = p.display().to_string();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(19_675), (2023, 11, 14));
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word(Path::new("./tls/cert.pem")), "./tls/cert.pem");
        assert_eq!(shell_word(Path::new("/a b/it's.pem")), r"'/a b/it'\''s.pem'");
    }

    #[test]
    fn default_names_cover_loopback() {
        let names = default_names();
        for n in ["localhost", "127.0.0.1", "::1"] {
            assert!(names.iter().any(|x| x == n), "{names:?}");
        }
        assert_eq!(dedup(vec!["a".into(), "b".into(), "a".into()]), ["a", "b"]);
    }
}
