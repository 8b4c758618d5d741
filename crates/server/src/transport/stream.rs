//! TCP and TLS connections (RFC 3261 §18.3 framing, RFC 5626 §3.5.1 CRLF keep-alive): the
//! accept loops, and one task per connection that frames incoming bytes, answers keep-alive pings,
//! closes idle connections and writes queued outgoing messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip::{Frame, StreamFramer};
use sip_txn::Transport;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::Shared;
use super::conn::QUEUE;

/// Binds a TCP listener on `addr` (IPv6 sockets are v6-only, so `[::]` and `0.0.0.0` coexist).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_tcp_nodelay(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// Accepts TCP (or, with `tls`, TLS) connections until the task is aborted.
pub async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (socket, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.guard.bans.is_banned(remote.ip(), std::time::Instant::now()) {
            continue; // closed at once, nothing said
        }
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        match tls.clone() {
            None => {
                tokio::spawn(serve(shared, socket, remote, Transport::Tcp));
            }
            Some(acceptor) => {
                // Half-open handshakes are capped per source: each costs a task and crypto.
                let Some(slot) = shared.guard.flood.handshake_slot(remote.ip()) else {
                    debug!(%remote, "too many TLS handshakes in progress from this address");
                    continue;
                };
                tokio::spawn(async move {
                    let timeout = shared.config.tls_handshake_timeout;
                    let handshake = tokio::time::timeout(timeout, acceptor.accept(socket)).await;
                    drop(slot);
                    match handshake {
                        Ok(Ok(stream)) => serve(shared, stream, remote, Transport::Tls).await,
                        Ok(Err(e)) => debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// Runs one connection until the peer closes it, it idles out, or its framing is lost.
pub async fn serve<S>(shared: Arc<Shared>, stream: S, remote: SocketAddr, transport: Transport)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(QUEUE);
    let Some(registration) = shared.conns.add(remote, transport, tx.clone()) else {
        debug!(%remote, "too many connections from this source");
        return;
    };
    let conn = registration.id;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });

    let mut framer = StreamFramer::new(shared.limits);
    let idle = shared.config.tcp_idle_timeout;
    'conn: loop {
        let read = tokio::time::timeout(idle, reader.read_buf(framer.buffer_mut())).await;
        match read {
            Err(_) => {
                debug!(%remote, "idle connection closed");
                break;
            }
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
        }
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::KeepAlive)) => {
                    let _ = tx.try_send(bytes::Bytes::from_static(b"\r\n"));
                }
                Ok(Some(Frame::Message(_) | Frame::Invalid { .. }))
                    if shared.guard.admit(remote.ip(), std::time::Instant::now()) == crate::guard::Admit::Drop => {}
                Ok(Some(Frame::Message(m))) => {
                    // Freshly parsed, the message is its own bytes: a slice, not a copy (for the trace).
                    let raw = m.to_bytes();
                    shared.on_received(Ok(m), &raw, transport, remote, conn);
                }
                Ok(Some(Frame::Invalid { error, bytes })) => {
                    shared.on_received(Err(error), &bytes, transport, remote, conn);
                }
                Err(e) => {
                    // The framing is lost: say why if we can, then close (RFC 4475 §3.1.2.3).
                    debug!(%remote, error = %e, "stream framing lost; closing");
                    shared
                        .stats
                        .parse_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let pending = framer.buffer_mut().split().freeze();
                    if let Some(resp) = sip::reject_unparsed(&pending, &e) {
                        let _ = tx.try_send(bytes::Bytes::from(resp));
                    }
                    break 'conn;
                }
            }
        }
    }
    drop(registration);
    drop(tx);
    let _ = write_task.await;
}
