//! TLS client settings for the notification channels: TLS 1.2/1.3 on the ring provider, and
//! one of two trust models per channel:
//!
//! - no pin: the server's chain must verify against the system trust roots (Debian's
//!   `/etc/ssl/certs` through rustls-native-certs, so a site CA installed with
//!   `update-ca-certificates` works) and its name must match the host;
//! - a pin (`*_pin_sha256`): only the certificate whose DER SHA-256 equals the pin is
//!   accepted. For LAN receivers with self-signed certificates, which are often reached by an
//!   IP address their certificate does not name. The handshake signature is still verified
//!   against that certificate's key, so only the holder of the pinned key gets through.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system trust roots, read once (the file set only changes with a package update).
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                Err(
                    "no system trust roots found (install ca-certificates, or set a *_pin_sha256)"
                        .to_string(),
                )
            } else {
                Ok(Arc::new(store))
            }
        })
        .clone()
}

/// Parse `AB:CD:…` (as stored by the config) into bytes.
pub fn pin_bytes(pin: &str) -> Result<[u8; 32], String> {
    let hex: String = pin.chars().filter(|&c| c != ':').collect();
    let mut out = [0u8; 32];
    if hex.len() != 64 {
        return Err("the pin is not a SHA-256 fingerprint".into());
    }
    for (i, slot) in out.iter_mut().enumerate() {
        let byte = hex
            .get(i * 2..i * 2 + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or("the pin is not a SHA-256 fingerprint")?;
        *slot = byte;
    }
    Ok(out)
}

/// Whether `der`'s SHA-256 is `pin` (constant time; the pin is not secret, but it is cheap).
pub fn matches_pin(der: &[u8], pin: &[u8; 32]) -> bool {
    let digest: [u8; 32] = Sha256::digest(der).into();
    bool::from(digest.ct_eq(pin))
}

/// The SHA-256 fingerprint of a certificate, `AB:CD:…`, for messages.
pub fn fingerprint(der: &[u8]) -> String {
    crate::web::cert::fingerprint(der)
}

/// Accepts exactly the pinned leaf certificate; chain and name are not consulted.
#[derive(Debug)]
struct PinVerifier {
    pin: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if matches_pin(end_entity.as_ref(), &self.pin) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate pin mismatch: the server presented SHA-256 {}",
                fingerprint(end_entity.as_ref())
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A client configuration for one channel (see the module docs for `pin`).
pub fn client_config(pin: Option<&str>, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut cfg = match pin {
        Some(p) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: pin_bytes(p)?,
                algorithms,
            }))
            .with_no_client_auth(),
        None => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pin_round_trip() {
        let der = b"not really a certificate";
        let fp = fingerprint(der);
        let pin = pin_bytes(&fp).unwrap();
        assert!(matches_pin(der, &pin));
        assert!(!matches_pin(b"another", &pin));
        assert!(pin_bytes("AB:CD").is_err());
        assert!(pin_bytes(&"G".repeat(64)).is_err());
    }

    #[test]
    fn configs_build() {
        assert!(client_config(Some("AB:CD"), &[]).is_err());
        let pin = fingerprint(b"x");
        assert!(client_config(Some(&pin), &[b"http/1.1"]).is_ok());
    }
}
