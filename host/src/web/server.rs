//! The HTTPS server shell: accept loop, TLS handshake, HTTP/1.1 + h2, limits, headers.
//!
//! warp 0.4 has no TLS, so a warp filter is turned into a service (`warp::service`) and served
//! by hyper-util over tokio-rustls (shared/docs/crates.md §3). Around that service this module
//! adds what every route needs and no route should have to remember:
//! - the peer address as a request extension ([`PeerAddr`], read with [`peer_addr`]), because
//!   `warp::addr::remote()` is always `None` in a custom accept loop;
//! - a request body cap (Content-Length checked up front, the stream itself capped too);
//! - the security headers of product §8 on every response, 404s and rejections included;
//! - slowloris and flood limits: a TLS handshake deadline, an HTTP/1 header-read deadline,
//!   a cap on concurrent connections overall and per client address.
//!
//! There is deliberately no plain-HTTP listener (product §8.1).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Limited;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower_service::Service as _;
use warp::http::header::{self, HeaderValue};
use warp::http::{Request, Response, StatusCode};
use warp::{Filter, Rejection, Reply};

use super::tls::TlsManager;

/// Default HTTPS port of the web UI (product §7).
pub const DEFAULT_PORT: u16 = 6547;

/// The Content-Security-Policy of product §8: no inline script or style, no plugins, no
/// framing, no base-URI tricks, forms post only to us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// HSTS for a year. No `includeSubDomains`: the UI often lives on a bare IP or a host whose
/// sibling names are not ours to pin.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Limits and timeouts of the server shell.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A client must finish the TLS handshake within this (slowloris on the handshake).
    pub handshake_timeout: Duration,
    /// HTTP/1 request headers must arrive within this.
    pub header_read_timeout: Duration,
    /// Concurrent connections overall; the accept loop waits when all are taken.
    pub max_connections: usize,
    /// Concurrent connections from one IP address; more are closed at once.
    pub max_connections_per_ip: usize,
    /// Largest request body accepted, in bytes (413 above it).
    pub max_body_bytes: u64,
    /// How long in-flight connections get to finish after shutdown is requested.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_connections_per_ip: 32,
            max_body_bytes: 1024 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The TCP peer of the connection a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Filter extracting the peer address set by [`serve`] (for throttling and event logs).
pub fn peer_addr() -> impl Filter<Extract = (SocketAddr,), Error = Rejection> + Clone {
    warp::ext::get::<PeerAddr>().map(|p: PeerAddr| p.0)
}

/// Add the product §8 security headers. `Cache-Control: no-store` is the default for any
/// response that did not choose its own caching (API answers carry session data).
pub fn add_security_headers<B>(resp: &mut Response<B>) {
    let h = resp.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Counts connections per client address.
#[derive(Debug, Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Releases a per-IP slot when the connection ends, however it ends.
struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn try_take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self
            .table
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Bind the HTTPS listener (`[Web] bind` / `port`; port 0 picks a free one, for tests).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve `routes` over HTTPS on `listener` until `shutdown` completes, then let in-flight
/// connections finish for up to `opts.shutdown_grace`.
///
/// `routes` sees [`PeerAddr`] in the request extensions. Rejections it does not recover
/// become warp's default error responses, still with the security headers.
pub async fn serve<F, S>(
    listener: TcpListener,
    tls: Arc<TlsManager>,
    routes: F,
    opts: ServeOptions,
    shutdown: S,
) -> io::Result<()>
where
    F: Filter<Error = Rejection> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
    S: Future<Output = ()>,
{
    let acceptor = TlsAcceptor::from(tls.server_config());
    // One builder per protocol, chosen by ALPN after the handshake. (hyper-util's `auto`
    // builder would first wait, with no deadline, for the opening bytes of a connection that
    // completed TLS and then went quiet.) No ALPN means HTTP/1.1.
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head, idle keep-alive too.
        .header_read_timeout(opts.header_read_timeout)
        .max_buf_size(64 * 1024);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    let (h1, h2) = (Arc::new(h1), Arc::new(h2));
    let permits = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let per_ip = Arc::new(PerIp::default());
    let graceful = GracefulShutdown::new();
    let warp_svc = warp::service(routes);
    let opts = Arc::new(opts);
    tokio::pin!(shutdown);

    loop {
        // Take a connection slot before accepting: when all are busy, new clients wait in the
        // kernel backlog instead of costing us memory.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "web: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(ip_slot) = per_ip.try_take(peer.ip(), opts.max_connections_per_ip) else {
            tracing::debug!(%peer, "web: too many connections from this address; closed");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let (h1, h2) = (Arc::clone(&h1), Arc::clone(&h2));
        let watcher = graceful.watcher();
        let warp_svc = warp_svc.clone();
        let opts = Arc::clone(&opts);
        tokio::spawn(async move {
            let _permit = permit;
            let _ip_slot = ip_slot;
            let tls_stream =
                match tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "web: TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "web: TLS handshake timed out");
                        return;
                    }
                };
            let max_body = opts.max_body_bytes;
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut inner = warp_svc.clone();
                async move {
                    let mut resp = if body_too_large(&req, max_body) {
                        warp::reply::with_status(
                            "request body too large\n",
                            StatusCode::PAYLOAD_TOO_LARGE,
                        )
                        .into_response()
                    } else {
                        let mut req = req.map(|b| Limited::new(b, cap_usize(max_body)));
                        req.extensions_mut().insert(PeerAddr(peer));
                        match inner.call(req).await {
                            Ok(r) => r,
                            Err(never) => match never {},
                        }
                    };
                    add_security_headers(&mut resp);
                    Ok::<_, Infallible>(resp)
                }
            });
            let is_h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let io = TokioIo::new(tls_stream);
            let result = if is_h2 {
                watcher.watch(h2.serve_connection(io, svc)).await
            } else {
                watcher.watch(h1.serve_connection(io, svc)).await
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "web: connection ended with error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(opts.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("web: connections still open after the grace period; dropped");
    }
    Ok(())
}

fn cap_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A declared Content-Length over the cap is refused before reading a byte.
fn body_too_large<B>(req: &Request<B>, max: u64) -> bool {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_added_and_cache_choice_kept() {
        let mut r = Response::new(());
        add_security_headers(&mut r);
        assert_eq!(
            r.headers()["strict-transport-security"],
            STRICT_TRANSPORT_SECURITY
        );
        assert_eq!(r.headers()["cache-control"], "no-store");
        let mut r = Response::builder()
            .header("cache-control", "no-cache")
            .body(())
            .unwrap();
        add_security_headers(&mut r);
        assert_eq!(r.headers()["cache-control"], "no-cache");
    }

    #[test]
    fn per_ip_slots_are_released() {
        let t = Arc::new(PerIp::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = t.try_take(ip, 2).unwrap();
        let _b = t.try_take(ip, 2).unwrap();
        assert!(t.try_take(ip, 2).is_none());
        drop(a);
        assert!(t.try_take(ip, 2).is_some());
    }
}
