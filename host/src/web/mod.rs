//! The HTTPS web transport: TLS (rustls, ring), certificate management, the server shell and
//! the embedded static UI files.
//!
//! - [`cert`]: `<data-dir>/tls/{cert,key}.pem` — first-start self-signed RSA-2048/SHA-512,
//!   `show`, `generate`, `csr`, PEM and PKCS#12 import (validated before install).
//! - [`tls`]: the rustls `ServerConfig` (TLS 1.2/1.3, AEAD suites, ALPN h2 + http/1.1) and
//!   [`TlsManager`] with a hot-swappable certificate (`reload`, `days_until_expiry`).
//! - [`server`]: [`serve`] — accept loop, handshake/header timeouts, connection caps, body cap,
//!   security headers on every response, the peer address for filters.
//! - [`assets`]: `web-ui/` embedded at build time, served by name from a fixed table.
//! - [`cli`]: `upsguard cert …`.
//!
//! The real API routes and the authentication gate are built on top of [`serve`] elsewhere;
//! [`demo_routes`] is the minimal set the transport tests run against.

pub mod api;
pub mod assets;
pub mod auth;
pub mod cert;
pub mod cert_cli;
pub mod server;
pub mod tls;

pub use cert::{CertError, CertInfo, CertPaths};
pub use server::{
    DEFAULT_PORT, PeerAddr, ServeOptions, add_security_headers, bind, peer_addr, serve,
};
pub use tls::TlsManager;

use warp::{Filter, Rejection, Reply};

/// `GET /api/v1/health` → `{"ok":true}`, plus the static files. Unmatched requests fall
/// through to warp's 404 (still with the security headers, added by [`serve`]).
pub fn demo_routes() -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let health = warp::get()
        .and(warp::path!("api" / "v1" / "health"))
        .map(|| warp::reply::json(&serde_json::json!({ "ok": true })).into_response());
    health.or(assets::routes()).unify()
}
