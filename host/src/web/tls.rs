//! rustls configuration for the web UI, with a certificate that can be swapped at run time.
//!
//! Product §8.1: TLS 1.2 and 1.3 only, which rustls guarantees (it has no older versions); we
//! also pin the ring provider's cipher suites to the AEAD list so a future provider default
//! cannot widen it. The certificate is served by [`SwappableCert`], a resolver behind a lock,
//! so `reload()` after `cert import`/`cert generate` takes effect on the next handshake without
//! a restart and without dropping the session cache.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite as cs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use super::cert::{self, CertError, CertInfo, CertPaths};

/// ALPN protocols in preference order.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The ring provider restricted to AEAD suites (TLS 1.3: AES-GCM, ChaCha20-Poly1305; TLS 1.2:
/// ECDHE with AES-GCM or ChaCha20-Poly1305). No CBC, no static RSA key exchange.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    }
}

/// Serves whatever certificate was installed last.
#[derive(Debug)]
pub struct SwappableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl SwappableCert {
    fn new(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new(key),
        }
    }

    fn get(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a valid Arc (the writer only assigns); keep serving.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// Owns the certificate files and the rustls config built on them.
#[derive(Debug)]
pub struct TlsManager {
    paths: CertPaths,
    provider: Arc<CryptoProvider>,
    resolver: Arc<SwappableCert>,
    config: Arc<ServerConfig>,
    info: RwLock<CertInfo>,
    generated: bool,
}

impl TlsManager {
    /// Load `<data-dir>/tls/{cert,key}.pem`, generating a self-signed pair on first start.
    pub fn load_or_generate(data_dir: &Path) -> Result<Self, CertError> {
        let provider = Arc::new(provider());
        let paths = CertPaths::new(data_dir);
        let (pair, generated) = cert::load_or_generate(&paths, &provider)?;
        let resolver = Arc::new(SwappableCert::new(pair.certified));
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(CertError::Tls)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            paths,
            provider,
            resolver,
            config: Arc::new(config),
            info: RwLock::new(pair.info),
            generated,
        })
    }

    /// Re-read the files (after `cert import` / `cert generate`) and serve them from the next
    /// handshake on. On error the current certificate stays in service.
    pub fn reload(&self) -> Result<CertInfo, CertError> {
        let pair = cert::load(&self.paths, &self.provider)?;
        self.resolver.set(pair.certified);
        *self.info.write().unwrap_or_else(PoisonError::into_inner) = pair.info.clone();
        Ok(pair.info)
    }

    /// Renew our own self-signed certificate when it is within 30 days of expiry and serve the
    /// new one from the next handshake; an imported certificate is never touched
    /// ([`cert::renew_if_due`]). `Ok(Some(info))` when it renewed. Generating the RSA key takes
    /// a fraction of a second, once a year.
    pub fn renew_if_due(&self) -> Result<Option<CertInfo>, CertError> {
        let Some(pair) =
            cert::renew_if_due(&self.paths, &self.provider, OffsetDateTime::now_utc())?
        else {
            return Ok(None);
        };
        self.resolver.set(pair.certified);
        *self.info.write().unwrap_or_else(PoisonError::into_inner) = pair.info.clone();
        Ok(Some(pair.info))
    }

    /// The rustls config (shared; its certificate follows [`reload`](Self::reload)).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// Facts about the certificate in service.
    pub fn cert_info(&self) -> CertInfo {
        self.info
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whole days until the certificate in service expires (negative once expired).
    pub fn days_until_expiry(&self) -> i64 {
        self.cert_info()
            .days_until_expiry(OffsetDateTime::now_utc())
    }

    /// True when the "Certificate Expiring" event is due (≤ 30 days left).
    pub fn expiry_warning_due(&self) -> bool {
        self.cert_info()
            .expiry_warning_due(OffsetDateTime::now_utc())
    }

    /// Whether this start generated the self-signed pair (worth an event/log line).
    pub fn generated_at_start(&self) -> bool {
        self.generated
    }

    /// Where the files are.
    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }
}
