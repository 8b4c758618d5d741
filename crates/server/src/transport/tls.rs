//! TLS for SIP (RFC 3261 §26.2.1, RFC 5630): certificate and key from PEM files, TLS 1.2 and 1.3
//! only (rustls with the ring provider), and a certificate resolver that can be swapped while the
//! server runs, so SIGHUP reloads the files without dropping a connection: handshakes after the
//! reload use the new certificate, established connections keep theirs.
//!
//! Protocol policy: [`PROTOCOL_VERSIONS`] is TLS 1.3 and TLS 1.2, set explicitly rather than
//! taken from rustls's defaults (which today are the same), so that no dependency update can widen
//! it. rustls has no TLS 1.0/1.1 (nor SSL) code at all: a client offering only those gets a fatal
//! alert in reply to its ClientHello, never a ServerHello (RFC 8996 deprecates TLS 1.0 and 1.1):
//! `handshake_failure` (40) from a genuine TLS 1.0 client, whose hello lacks the
//! signature_algorithms extension rustls checks first, `protocol_version` (70) from one that
//! sends it. The cipher suites are rustls's: AEAD only (AES-GCM,
//! ChaCha20-Poly1305) with forward secrecy (ECDHE); no CBC, RC4, 3DES or static RSA key exchange.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Serves whatever certificate was loaded last.
#[derive(Debug)]
pub struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

fn load(cert_path: &Path, key_path: &Path) -> io::Result<CertifiedKey> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| io::Error::other(format!("{}: {e}", cert_path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::other(format!("{}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(io::Error::other(format!(
            "{}: no certificate found",
            cert_path.display()
        )));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(|e| io::Error::other(format!("{}: {e}", key_path.display())))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| io::Error::other(format!("{}: {e}", key_path.display())))?;
    Ok(CertifiedKey::new(certs, signing))
}

impl ReloadableCert {
    pub fn open(cert_path: &Path, key_path: &Path) -> io::Result<Arc<Self>> {
        let ck = load(cert_path, key_path)?;
        Ok(Arc::new(ReloadableCert {
            current: RwLock::new(Arc::new(ck)),
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        }))
    }

    /// Re-reads the files; on error the old certificate stays in use.
    pub fn reload(&self) -> io::Result<()> {
        let ck = load(&self.cert_path, &self.key_path)?;
        *self.current.write() = Arc::new(ck);
        Ok(())
    }
}

/// The TLS versions the server speaks: 1.3 and 1.2, nothing older.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A TLS acceptor ([`PROTOCOL_VERSIONS`] only, no client certificates) serving `cert`.
pub fn acceptor(cert: Arc<ReloadableCert>) -> io::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Reloads the certificate on every SIGHUP.
pub async fn reload_on_sighup(cert: Arc<ReloadableCert>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match cert.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::warn!(error = %e, "TLS certificate reload failed; keeping the old one"),
        }
    }
}
