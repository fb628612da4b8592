//! The webhook channel: one HTTPS `POST` of a JSON body per message, HTTP/1.1 through hyper's
//! connection-level client over tokio-rustls. Redirects are never followed (a 3xx is a
//! failure): the body must not be re-sent to wherever a compromised receiver points.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Failure, tls};
use crate::config::WebhookUrl;

/// Longest response body read (only a snippet of it is reported).
const MAX_RESPONSE: usize = 4096;

/// POST `body` to `url`. The caller bounds the whole call with its timeout; `connect` bounds
/// the TCP connect and TLS handshake.
pub async fn post(
    url: &WebhookUrl,
    pin: Option<&str>,
    body: Vec<u8>,
    connect: Duration,
) -> Result<u16, Failure> {
    let config = tls::client_config(pin, &[b"http/1.1"]).map_err(Failure::permanent)?;
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| Failure::permanent(format!("host {}: {e}", url.host)))?;
    let stream = tokio::time::timeout(connect, async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| {
                Failure::transient(format!("connect to {}:{}: {e}", url.host, url.port))
            })?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| tls_failure(&url.host, &e))
    })
    .await
    .map_err(|_| {
        Failure::transient(format!(
            "connect to {}:{}: timed out after {} s",
            url.host,
            url.port,
            connect.as_secs()
        ))
    })??;

    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Failure::transient(format!("HTTP: {e}")))?;
    // Aborted on drop: when the caller's timeout cancels this future mid-request, the
    // connection task must not live on holding a socket to a receiver that never answers.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let host_header = if url.port == 443 {
        url.host.clone()
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let req = Request::post(url.path.as_str())
        .header(hyper::header::HOST, host_header)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("upsguard/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::CONNECTION, "close")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::permanent(format!("request: {e}")))?;
    async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Failure::transient(format!("HTTP: {e}")))?;
        let status = resp.status();
        // Read a little of the answer for the log; the receiver's text is escaped there.
        let mut snippet = Vec::new();
        let mut body = resp.into_body();
        while snippet.len() < MAX_RESPONSE {
            match body.frame().await {
                Some(Ok(f)) => {
                    if let Some(d) = f.data_ref() {
                        snippet.extend_from_slice(d);
                    }
                }
                _ => break,
            }
        }
        snippet.truncate(200);
        let raw = String::from_utf8_lossy(&snippet).into_owned();
        let text = crate::eventlog::display_escape(&raw);
        if status.is_success() {
            Ok(status.as_u16())
        } else if status.is_redirection() {
            Err(Failure::permanent(format!(
                "HTTP {status}: redirects are not followed; configure the final URL"
            )))
        } else if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
            Err(Failure::permanent(format!("HTTP {status}: {text}")))
        } else {
            Err(Failure::transient(format!("HTTP {status}: {text}")))
        }
    }
    .await
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn tls_failure(host: &str, e: &std::io::Error) -> Failure {
    let text = e.to_string();
    // A certificate that fails verification will fail the same way next time.
    let permanent = text.contains("certificate") || text.contains("pin mismatch");
    let f = format!("TLS with {host}: {text}");
    if permanent {
        Failure::permanent(f)
    } else {
        Failure::transient(f)
    }
}
