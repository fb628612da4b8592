//! The HTTPS certificate and key on disk: first-start generation, inspection, CSR, import.
//!
//! Files live in `<data-dir>/tls/` (directory 0700): `cert.pem` (chain, leaf first) and
//! `key.pem` (0600). Product §8.2: the default certificate is self-signed with an RSA 2048-bit
//! key and a SHA-512 signature; the administrator may replace it with a PEM chain + key or a
//! PKCS#12 keystore. Every replacement is validated (parses, key matches the leaf, not expired,
//! rustls can sign with it) before a byte is written.
//!
//! Installing a pair is two files, so it cannot be one atomic rename. We stage both as `*.new`
//! (each written atomically), then rename the key, then the cert. [`recover_interrupted`] runs
//! before every load: both `*.new` present means we crashed before the first rename (discard
//! them, the old pair is intact); only `cert.pem.new` present means we crashed between the
//! renames (finish the install). So a power cut never leaves a mismatched pair.
//!
//! These functions take file paths only from their caller (the local root CLI); nothing here is
//! reachable with a path chosen by a web client.

use std::fmt;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::atomic::{self, AtomicWriteError};

/// Sub-directory of the data dir that holds the pair.
pub const TLS_DIR: &str = "tls";
/// Certificate chain file name.
pub const CERT_FILE: &str = "cert.pem";
/// Private key file name.
pub const KEY_FILE: &str = "key.pem";
/// Mode of the tls directory (product §8.13: root only).
pub const DIR_MODE: u32 = 0o700;
/// The certificate is public; the directory already keeps others out.
pub const CERT_MODE: u32 = 0o644;
/// RSA modulus size of the generated key (product §8.2).
pub const RSA_BITS: usize = 2048;
/// Validity of a generated certificate. 825 days is the longest Apple platforms accept for a
/// TLS server certificate even when the user trusts it by hand.
pub const SELF_SIGNED_VALIDITY_DAYS: i64 = 825;
/// Days before expiry at which the service raises "Certificate Expiring".
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// Import files larger than this are refused before parsing (a chain is a few KiB).
pub const MAX_IMPORT_BYTES: u64 = 1024 * 1024;

/// Where the pair lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// `<data-dir>/tls`
    pub dir: PathBuf,
    /// `<data-dir>/tls/cert.pem`
    pub cert: PathBuf,
    /// `<data-dir>/tls/key.pem`
    pub key: PathBuf,
}

impl CertPaths {
    /// Paths under the service data directory.
    pub fn new(data_dir: &Path) -> Self {
        let dir = data_dir.join(TLS_DIR);
        Self {
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
            dir,
        }
    }

    fn staged_cert(&self) -> PathBuf {
        self.dir.join(format!("{CERT_FILE}.new"))
    }

    fn staged_key(&self) -> PathBuf {
        self.dir.join(format!("{KEY_FILE}.new"))
    }
}

/// Everything that can go wrong with the certificate files. Messages are meant for the
/// administrator at the `upsguard cert` prompt.
#[derive(Debug)]
pub enum CertError {
    /// Reading or creating a file or directory failed.
    Io { path: PathBuf, source: io::Error },
    /// Writing a file atomically failed.
    Write(AtomicWriteError),
    /// An import file is larger than [`MAX_IMPORT_BYTES`].
    TooLarge { path: PathBuf },
    /// No `CERTIFICATE` block in the PEM input.
    NoCertificate { what: String },
    /// No private key block in the PEM input.
    NoKey { what: String },
    /// The PEM or DER input does not parse.
    Parse { what: String, detail: String },
    /// The private key does not belong to the leaf certificate.
    KeyMismatch,
    /// The key type is not usable for TLS with our provider (e.g. RSA < 2048, DSA).
    UnsupportedKey { detail: String },
    /// The leaf certificate has already expired.
    Expired { not_after: OffsetDateTime },
    /// The PKCS#12 keystore could not be opened (wrong password or malformed).
    Pkcs12 { detail: String },
    /// The PKCS#12 keystore has no key+certificate entry, or more than one.
    Pkcs12Entries { found: usize },
    /// Generating the key or certificate failed.
    Generate { detail: String },
    /// rustls refused the pair.
    Tls(rustls::Error),
    /// `tls/` or the key file is open to others (or owned by another user): not served.
    Insecure(crate::files::Refusal),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Write(e) => write!(f, "{e}"),
            Self::TooLarge { path } => write!(
                f,
                "{}: larger than {MAX_IMPORT_BYTES} bytes, not a certificate file",
                path.display()
            ),
            Self::NoCertificate { what } => {
                write!(f, "{what}: no PEM \"CERTIFICATE\" block found")
            }
            Self::NoKey { what } => write!(
                f,
                "{what}: no PEM private key block found (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY; encrypted keys are not supported)"
            ),
            Self::Parse { what, detail } => write!(f, "{what}: {detail}"),
            Self::KeyMismatch => write!(
                f,
                "the private key does not match the certificate (the first certificate in the chain must be the server's own)"
            ),
            Self::UnsupportedKey { detail } => write!(
                f,
                "unsupported private key ({detail}); use RSA 2048+ bits, ECDSA P-256/P-384 or Ed25519"
            ),
            Self::Expired { not_after } => {
                write!(f, "the certificate expired on {}", fmt_time(*not_after))
            }
            Self::Pkcs12 { detail } => write!(
                f,
                "cannot open the PKCS#12 keystore (wrong password or damaged file): {detail}"
            ),
            Self::Pkcs12Entries { found } => write!(
                f,
                "the PKCS#12 keystore must hold exactly one private key with its certificate; found {found}"
            ),
            Self::Generate { detail } => write!(f, "cannot generate the certificate: {detail}"),
            Self::Tls(e) => write!(f, "TLS rejected the certificate or key: {e}"),
            Self::Insecure(r) => write!(f, "{r}"),
        }
    }
}

impl std::error::Error for CertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Write(e) => Some(e),
            Self::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<AtomicWriteError> for CertError {
    fn from(e: AtomicWriteError) -> Self {
        Self::Write(e)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn gen_err(e: impl fmt::Display) -> CertError {
    CertError::Generate {
        detail: e.to_string(),
    }
}

/// What `cert show` prints and the web UI's security page displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject DN of the leaf, RFC 4514 style.
    pub subject: String,
    /// Issuer DN of the leaf.
    pub issuer: String,
    /// Subject alternative names: `DNS:name` / `IP:addr` / other kinds as `KIND:value`.
    pub sans: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// "RSA", "EC P-256", "EC P-384", "Ed25519", or the algorithm OID's name.
    pub key_type: String,
    /// Key size in bits (modulus for RSA, field size for EC).
    pub key_bits: usize,
    /// Signature algorithm of the certificate, e.g. `sha512WithRSAEncryption`.
    pub signature_algorithm: String,
    /// SHA-256 of the leaf DER, upper-case hex pairs joined with `:` (as browsers show it).
    pub sha256_fingerprint: String,
    /// Issuer equals subject (our generated certificate, or an admin's own self-signed one).
    pub self_signed: bool,
    /// Number of certificates in the chain file (leaf included).
    pub chain_len: usize,
}

impl CertInfo {
    /// Whole days until `not_after`, rounded down; negative once expired.
    pub fn days_until_expiry(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_days()
    }

    /// True when the "Certificate Expiring" event is due (≤ [`EXPIRY_WARNING_DAYS`] left).
    pub fn expiry_warning_due(&self, now: OffsetDateTime) -> bool {
        self.days_until_expiry(now) <= EXPIRY_WARNING_DAYS
    }

    /// JSON form for the API (times as RFC 3339).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": self.sans,
            "not_before": fmt_time(self.not_before),
            "not_after": fmt_time(self.not_after),
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "signature_algorithm": self.signature_algorithm,
            "sha256_fingerprint": self.sha256_fingerprint,
            "self_signed": self.self_signed,
            "chain_len": self.chain_len,
        })
    }
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Subject:             {}", self.subject)?;
        writeln!(f, "Issuer:              {}", self.issuer)?;
        writeln!(f, "Self-signed:         {}", yes_no(self.self_signed))?;
        writeln!(f, "Subject alt names:   {}", self.sans.join(", "))?;
        writeln!(f, "Valid from:          {}", fmt_time(self.not_before))?;
        writeln!(f, "Valid until:         {}", fmt_time(self.not_after))?;
        writeln!(
            f,
            "Key:                 {} {} bit",
            self.key_type, self.key_bits
        )?;
        writeln!(f, "Signature algorithm: {}", self.signature_algorithm)?;
        writeln!(f, "SHA-256 fingerprint: {}", self.sha256_fingerprint)?;
        write!(f, "Chain length:        {}", self.chain_len)
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A validated pair, ready to install or hand to rustls.
#[derive(Debug)]
pub struct CertPair {
    /// PEM text of the chain, leaf first, as it will be written.
    pub cert_pem: String,
    /// PEM text of the key (PKCS#8 where we could convert it), as it will be written.
    pub key_pem: String,
    /// DER chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// The signing key rustls will use, already checked against the leaf.
    pub certified: Arc<CertifiedKey>,
    /// Facts about the leaf.
    pub info: CertInfo,
}

/// Inspect a DER certificate chain (leaf first).
pub fn inspect(chain: &[CertificateDer<'_>]) -> Result<CertInfo, CertError> {
    let leaf = chain.first().ok_or_else(|| CertError::NoCertificate {
        what: "certificate chain".into(),
    })?;
    let (_, x) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| CertError::Parse {
        what: "certificate".into(),
        detail: e.to_string(),
    })?;
    let registry = x509_parser::objects::oid_registry();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = x.subject_alternative_name() {
        for name in &ext.value.general_names {
            sans.push(match name {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) => match ip_from_bytes(b) {
                    Some(ip) => format!("IP:{ip}"),
                    None => format!("IP:<{} bytes>", b.len()),
                },
                GeneralName::RFC822Name(m) => format!("email:{m}"),
                GeneralName::URI(u) => format!("URI:{u}"),
                other => format!("{other:?}"),
            });
        }
    }
    let spki = x.public_key();
    let alg_oid = &spki.algorithm.algorithm;
    let alg_name = x509_parser::objects::oid2sn(alg_oid, registry)
        .map(str::to_owned)
        .unwrap_or_else(|_| alg_oid.to_id_string());
    let (key_type, key_bits) = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => ("RSA".to_owned(), rsa.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(ec)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| match oid.to_id_string().as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_owned(),
                    "1.3.132.0.34" => "P-384".to_owned(),
                    "1.3.132.0.35" => "P-521".to_owned(),
                    s => s.to_owned(),
                })
                .unwrap_or_else(|| "?".into());
            (format!("EC {curve}"), ec.key_size())
        }
        _ if alg_oid.to_id_string() == "1.3.101.112" => ("Ed25519".to_owned(), 256),
        _ => (alg_name, spki.subject_public_key.data.len() * 8),
    };
    let sig_oid = &x.signature_algorithm.algorithm;
    let signature_algorithm = x509_parser::objects::oid2sn(sig_oid, registry)
        .map(str::to_owned)
        .unwrap_or_else(|_| sig_oid.to_id_string());
    let not_before = OffsetDateTime::from_unix_timestamp(x.validity().not_before.timestamp())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let not_after = OffsetDateTime::from_unix_timestamp(x.validity().not_after.timestamp())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let subject = x.subject().to_string();
    let issuer = x.issuer().to_string();
    Ok(CertInfo {
        self_signed: x.subject().as_raw() == x.issuer().as_raw(),
        subject,
        issuer,
        sans,
        not_before,
        not_after,
        key_type,
        key_bits,
        signature_algorithm,
        sha256_fingerprint: fingerprint(leaf.as_ref()),
        chain_len: chain.len(),
    })
}

/// SHA-256 fingerprint as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::from(a))
    } else if let Ok(a) = <[u8; 16]>::try_from(b) {
        Some(IpAddr::from(a))
    } else {
        None
    }
}

/// Build a validated pair from PEM text. `what` names the source in error messages.
///
/// Checks: at least one certificate, exactly one usable key, rustls can load the key, the key's
/// public half equals the leaf's SubjectPublicKeyInfo, and the leaf has not expired.
pub fn pair_from_pem(
    cert_pem: &str,
    key_pem: &str,
    what_cert: &str,
    what_key: &str,
    provider: &CryptoProvider,
) -> Result<CertPair, CertError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Parse {
            what: what_cert.into(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            what: what_cert.into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => CertError::NoKey {
            what: what_key.into(),
        },
        e => CertError::Parse {
            what: what_key.into(),
            detail: e.to_string(),
        },
    })?;
    let key = normalize_key(key);
    let key_pem_out = key_to_pem(&key);
    let certified = certified_key(chain.clone(), key, provider)?;
    let info = inspect(&chain)?;
    let cert_pem_out = chain_to_pem(&chain);
    Ok(CertPair {
        cert_pem: cert_pem_out,
        key_pem: key_pem_out,
        chain,
        certified: Arc::new(certified),
        info,
    })
}

/// Load the key with the provider and insist that it matches the leaf. rustls's own
/// `with_single_cert` lets an "unknown" match through; we do not.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertError> {
    let signing =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertError::UnsupportedKey {
                detail: e.to_string(),
            })?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertError::KeyMismatch)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Err(CertError::UnsupportedKey {
                detail: "cannot derive its public key to compare with the certificate".into(),
            })
        }
        Err(e) => Err(CertError::Tls(e)),
    }
}

/// PKCS#1 RSA keys are rewritten as PKCS#8 so rcgen (ring) can use them for a CSR later.
/// SEC1 EC keys stay as they are (TLS works; `cert csr` will say how to convert).
fn normalize_key(key: PrivateKeyDer<'static>) -> PrivateKeyDer<'static> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    if let PrivateKeyDer::Pkcs1(k) = &key
        && let Ok(sk) = rsa::PrivateKey::from_pkcs1_der(k.secret_pkcs1_der())
        && let Ok(doc) = sk.to_pkcs8_der()
    {
        return PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec()));
    }
    key
}

fn pem_block(label: &str, der: &[u8]) -> String {
    // Tiny base64 encoder: the PEM writers in our deps are either private or want their own
    // types; this keeps output byte-for-byte standard (64-column lines).
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let idx = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, v) in idx.iter().enumerate() {
            if i <= chunk.len() {
                b64.push(char::from(
                    ALPHABET.get(*v as usize).copied().unwrap_or(b'A'),
                ));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn chain_to_pem(chain: &[CertificateDer<'_>]) -> String {
    chain
        .iter()
        .map(|c| pem_block("CERTIFICATE", c.as_ref()))
        .collect()
}

fn key_to_pem(key: &PrivateKeyDer<'_>) -> String {
    match key {
        PrivateKeyDer::Pkcs1(k) => pem_block("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => pem_block("EC PRIVATE KEY", k.secret_sec1_der()),
        PrivateKeyDer::Pkcs8(k) => pem_block("PRIVATE KEY", k.secret_pkcs8_der()),
        // Non-exhaustive upstream; any future variant is stored as PKCS#8-labelled DER.
        other => pem_block("PRIVATE KEY", other.secret_der()),
    }
}

/// The machine's host name, if it is a usable DNS name.
pub fn host_name() -> Option<String> {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = raw.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name != "localhost"
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(name)
}

/// The SANs of a generated certificate: host name (when usable), localhost, 127.0.0.1, ::1.
pub fn default_sans() -> Vec<String> {
    let mut sans = Vec::with_capacity(4);
    if let Some(h) = host_name() {
        sans.push(h);
    }
    sans.push("localhost".into());
    sans.push(IpAddr::V4(Ipv4Addr::LOCALHOST).to_string());
    sans.push(IpAddr::V6(Ipv6Addr::LOCALHOST).to_string());
    sans
}

/// Generate a fresh self-signed RSA-2048 / SHA-512 pair (in memory).
pub fn generate_self_signed(provider: &CryptoProvider) -> Result<CertPair, CertError> {
    use rsa::pkcs8::EncodePrivateKey;
    let sk = rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS).map_err(gen_err)?;
    let pkcs8 = sk.to_pkcs8_der().map_err(gen_err)?;
    let der = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
    let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA512)
        .map_err(gen_err)?;
    let sans = default_sans();
    let cn = sans.first().cloned().unwrap_or_else(|| "localhost".into());
    let mut params = rcgen::CertificateParams::new(sans).map_err(gen_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "upsguard self-signed");
    let now = OffsetDateTime::now_utc();
    // A day of slack for clients whose clocks run behind.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SELF_SIGNED_VALIDITY_DAYS);
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(gen_err)?;
    // Positive INTEGER: clear the top bit.
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&kp).map_err(gen_err)?;
    let key_pem = kp.serialize_pem();
    pair_from_pem(
        &cert.pem(),
        &key_pem,
        "generated certificate",
        "generated key",
        provider,
    )
}

fn ensure_dir(paths: &CertPaths) -> Result<(), CertError> {
    fs::create_dir_all(&paths.dir).map_err(io_err(&paths.dir))?;
    // Tighten an existing directory too: an installer or admin may have created it 0755.
    fs::set_permissions(&paths.dir, fs::Permissions::from_mode(DIR_MODE))
        .map_err(io_err(&paths.dir))
}

fn sync_dir(dir: &Path) -> Result<(), CertError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Write a validated pair to disk (staged, then renamed key-first; see the module doc).
pub fn install(paths: &CertPaths, pair: &CertPair) -> Result<(), CertError> {
    ensure_dir(paths)?;
    let (sc, sk) = (paths.staged_cert(), paths.staged_key());
    atomic::write_atomic(&sc, pair.cert_pem.as_bytes(), CERT_MODE)?;
    atomic::write_atomic(&sk, pair.key_pem.as_bytes(), atomic::MODE_PRIVATE)?;
    fs::rename(&sk, &paths.key).map_err(io_err(&paths.key))?;
    fs::rename(&sc, &paths.cert).map_err(io_err(&paths.cert))?;
    sync_dir(&paths.dir)
}

/// Finish or undo an install that a crash interrupted (see the module doc).
pub fn recover_interrupted(paths: &CertPaths) -> Result<(), CertError> {
    let (sc, sk) = (paths.staged_cert(), paths.staged_key());
    match (sc.exists(), sk.exists()) {
        (true, true) => {
            fs::remove_file(&sk).map_err(io_err(&sk))?;
            fs::remove_file(&sc).map_err(io_err(&sc))?;
            sync_dir(&paths.dir)
        }
        (true, false) => {
            fs::rename(&sc, &paths.cert).map_err(io_err(&paths.cert))?;
            sync_dir(&paths.dir)
        }
        (false, true) => {
            // Cannot happen with our order (key is renamed first); a stray staged key is junk.
            fs::remove_file(&sk).map_err(io_err(&sk))
        }
        (false, false) => Ok(()),
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, CertError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.len() > MAX_IMPORT_BYTES {
        return Err(CertError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    fs::read(path).map_err(io_err(path))
}

fn read_text(path: &Path) -> Result<String, CertError> {
    let bytes = read_limited(path)?;
    String::from_utf8(bytes).map_err(|_| CertError::Parse {
        what: path.display().to_string(),
        detail: "not a PEM text file".into(),
    })
}

/// Whoever can write `tls/` or read the key can impersonate the web UI: refuse such files
/// before anything in them is used (product §8.13).
fn check_permissions(paths: &CertPaths) -> Result<(), CertError> {
    crate::files::check_trusted_dir(&paths.dir).map_err(CertError::Insecure)?;
    match fs::symlink_metadata(&paths.key) {
        Ok(md) => crate::files::check_secret_file(&paths.key, &md).map_err(CertError::Insecure),
        // A missing key is reported by the read below, with its path.
        Err(_) => Ok(()),
    }
}

/// Load the installed pair, validating it as strictly as an import.
pub fn load(paths: &CertPaths, provider: &CryptoProvider) -> Result<CertPair, CertError> {
    check_permissions(paths)?;
    recover_interrupted(paths)?;
    let cert = read_text(&paths.cert)?;
    let key = read_text(&paths.key)?;
    pair_from_pem(
        &cert,
        &key,
        &paths.cert.display().to_string(),
        &paths.key.display().to_string(),
        provider,
    )
}

/// First start: load the pair, or generate and install a self-signed one when there is no
/// certificate yet. Returns the pair and whether it was generated now. An existing but broken
/// pair is an error, never silently replaced (it may be the administrator's CA certificate).
pub fn load_or_generate(
    paths: &CertPaths,
    provider: &CryptoProvider,
) -> Result<(CertPair, bool), CertError> {
    // Before `ensure_dir` tightens the mode: a folder others could write is refused, not fixed.
    if paths.dir.exists() {
        check_permissions(paths)?;
    }
    ensure_dir(paths)?;
    recover_interrupted(paths)?;
    if !paths.cert.exists() {
        let pair = generate_self_signed(provider)?;
        install(paths, &pair)?;
        return Ok((pair, true));
    }
    load(paths, provider).map(|p| (p, false))
}

/// `cert show`.
pub fn show(data_dir: &Path) -> Result<CertInfo, CertError> {
    load(&CertPaths::new(data_dir), &super::tls::provider()).map(|p| p.info)
}

/// `cert generate`: replace whatever is installed with a new self-signed pair.
pub fn regenerate(data_dir: &Path) -> Result<CertInfo, CertError> {
    let paths = CertPaths::new(data_dir);
    let pair = generate_self_signed(&super::tls::provider())?;
    install(&paths, &pair)?;
    Ok(pair.info)
}

/// `cert import --cert FILE --key FILE`.
pub fn import_pem(
    data_dir: &Path,
    cert_file: &Path,
    key_file: &Path,
) -> Result<CertInfo, CertError> {
    let cert = read_text(cert_file)?;
    let key = read_text(key_file)?;
    let pair = pair_from_pem(
        &cert,
        &key,
        &cert_file.display().to_string(),
        &key_file.display().to_string(),
        &super::tls::provider(),
    )?;
    check_not_expired(&pair.info)?;
    install(&CertPaths::new(data_dir), &pair)?;
    Ok(pair.info)
}

/// `cert import --pkcs12 FILE` with the keystore password from the credential store.
pub fn import_pkcs12(
    data_dir: &Path,
    p12_file: &Path,
    password: &str,
) -> Result<CertInfo, CertError> {
    let data = read_limited(p12_file)?;
    let pair = pair_from_pkcs12(&data, password, &super::tls::provider())?;
    check_not_expired(&pair.info)?;
    install(&CertPaths::new(data_dir), &pair)?;
    Ok(pair.info)
}

/// Validate a PKCS#12 keystore in memory: exactly one key with its chain.
pub fn pair_from_pkcs12(
    data: &[u8],
    password: &str,
    provider: &CryptoProvider,
) -> Result<CertPair, CertError> {
    use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
    let ks = KeyStore::from_pkcs12(data, password, Pkcs12ImportPolicy::Strict).map_err(|e| {
        CertError::Pkcs12 {
            detail: e.to_string(),
        }
    })?;
    let chains: Vec<_> = ks
        .entries()
        .filter_map(|(_, e)| match e {
            KeyStoreEntry::PrivateKeyChain(c) if !c.certs().is_empty() => Some(c),
            _ => None,
        })
        .collect();
    let [chain] = chains.as_slice() else {
        return Err(CertError::Pkcs12Entries {
            found: chains.len(),
        });
    };
    let ders: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let cert_pem = chain_to_pem(&ders);
    let key_pem = pem_block("PRIVATE KEY", chain.key().as_der());
    pair_from_pem(
        &cert_pem,
        &key_pem,
        "PKCS#12 certificate",
        "PKCS#12 key",
        provider,
    )
}

fn check_not_expired(info: &CertInfo) -> Result<(), CertError> {
    if info.not_after <= OffsetDateTime::now_utc() {
        return Err(CertError::Expired {
            not_after: info.not_after,
        });
    }
    Ok(())
}

/// `cert csr`: a PEM CSR signed with the installed key, with the installed certificate's
/// SANs (the default set when it has none) and its subject CN.
pub fn csr_pem(data_dir: &Path) -> Result<String, CertError> {
    let paths = CertPaths::new(data_dir);
    let pair = load(&paths, &super::tls::provider())?;
    let key_der =
        PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).map_err(|e| CertError::Parse {
            what: paths.key.display().to_string(),
            detail: e.to_string(),
        })?;
    let PrivateKeyDer::Pkcs8(pkcs8) = key_der else {
        return Err(CertError::UnsupportedKey {
            detail: "the installed key is not PKCS#8; convert it with `openssl pkcs8 -topk8 -nocrypt` and import again before making a CSR".into(),
        });
    };
    // RSA keys sign the CSR with SHA-512 like our certificate; others use their natural hash.
    let kp = match rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA512) {
        Ok(kp) => kp,
        Err(_) => rcgen::KeyPair::try_from(pkcs8.secret_pkcs8_der()).map_err(gen_err)?,
    };
    let mut sans: Vec<String> = pair
        .info
        .sans
        .iter()
        .filter_map(|s| {
            s.strip_prefix("DNS:")
                .or_else(|| s.strip_prefix("IP:"))
                .map(str::to_owned)
        })
        .collect();
    if sans.is_empty() {
        sans = default_sans();
    }
    let cn =
        leaf_common_name(&pair.chain).unwrap_or_else(|| sans.first().cloned().unwrap_or_default());
    let mut params = rcgen::CertificateParams::new(sans).map_err(gen_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&kp).map_err(gen_err)?;
    csr.pem().map_err(gen_err)
}

fn leaf_common_name(chain: &[CertificateDer<'_>]) -> Option<String> {
    let leaf = chain.first()?;
    let (_, x) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let cn = x
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_base64_matches_known_vectors() {
        assert_eq!(pem_block("X", b""), "-----BEGIN X-----\n-----END X-----\n");
        assert_eq!(
            pem_block("X", b"f"),
            "-----BEGIN X-----\nZg==\n-----END X-----\n"
        );
        assert_eq!(
            pem_block("X", b"fo"),
            "-----BEGIN X-----\nZm8=\n-----END X-----\n"
        );
        assert_eq!(
            pem_block("X", b"foobar"),
            "-----BEGIN X-----\nZm9vYmFy\n-----END X-----\n"
        );
        let long = pem_block("X", &[0u8; 60]);
        let lines: Vec<_> = long.lines().collect();
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 16);
    }

    #[test]
    fn fingerprint_format() {
        let f = fingerprint(b"abc");
        assert!(f.starts_with("BA:78:16:BF"));
        assert_eq!(f.len(), 32 * 3 - 1);
    }

    #[test]
    fn generated_pair_facts() {
        let p = crate::web::tls::provider();
        let pair = generate_self_signed(&p).unwrap();
        assert_eq!(pair.info.key_type, "RSA");
        assert_eq!(pair.info.key_bits, 2048);
        assert_eq!(pair.info.signature_algorithm, "sha512WithRSAEncryption");
        assert!(pair.info.self_signed);
        assert!(pair.info.sans.contains(&"DNS:localhost".to_owned()));
        assert!(pair.info.sans.contains(&"IP:127.0.0.1".to_owned()));
        assert!(pair.info.sans.contains(&"IP:::1".to_owned()));
        let now = OffsetDateTime::now_utc();
        assert!(pair.info.days_until_expiry(now) >= SELF_SIGNED_VALIDITY_DAYS - 1);
        assert!(!pair.info.expiry_warning_due(now));
        assert!(
            pair.info
                .expiry_warning_due(now + time::Duration::days(SELF_SIGNED_VALIDITY_DAYS - 20))
        );
    }

    #[test]
    fn mismatched_key_is_refused() {
        let p = crate::web::tls::provider();
        let a = generate_self_signed(&p).unwrap();
        let b = generate_self_signed(&p).unwrap();
        let err = pair_from_pem(&a.cert_pem, &b.key_pem, "a", "b", &p).unwrap_err();
        assert!(matches!(err, CertError::KeyMismatch), "{err}");
    }

    #[test]
    fn loose_key_or_tls_folder_is_refused_not_fixed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::new(dir.path());
        let p = crate::web::tls::provider();
        load_or_generate(&paths, &p).unwrap();
        let chmod = |path: &Path, m: u32| {
            fs::set_permissions(path, fs::Permissions::from_mode(m)).unwrap();
        };
        chmod(&paths.key, 0o644);
        let err = load(&paths, &p).unwrap_err();
        assert!(matches!(err, CertError::Insecure(_)), "{err}");
        assert!(err.to_string().contains("key.pem refused"), "{err}");
        let err = load_or_generate(&paths, &p).unwrap_err();
        assert!(matches!(err, CertError::Insecure(_)), "{err}");
        chmod(&paths.key, 0o400);
        load(&paths, &p).unwrap();
        chmod(&paths.dir, 0o777);
        let err = load_or_generate(&paths, &p).unwrap_err();
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        // Refused, not silently tightened.
        assert_eq!(
            fs::metadata(&paths.dir).unwrap().permissions().mode() & 0o777,
            0o777
        );
        chmod(&paths.dir, 0o700);
        // A symlinked key is refused too.
        let real = dir.path().join("elsewhere.pem");
        fs::rename(&paths.key, &real).unwrap();
        std::os::unix::fs::symlink(&real, &paths.key).unwrap();
        let err = load(&paths, &p).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn interrupted_install_rolls_forward_or_back() {
        let dir = tempfile::tempdir().unwrap();
        let paths = CertPaths::new(dir.path());
        let p = crate::web::tls::provider();
        let (first, generated) = load_or_generate(&paths, &p).unwrap();
        assert!(generated);
        let second = generate_self_signed(&p).unwrap();

        // Crash after staging both: roll back to the first pair.
        fs::write(paths.staged_cert(), &second.cert_pem).unwrap();
        fs::write(paths.staged_key(), &second.key_pem).unwrap();
        let got = load(&paths, &p).unwrap();
        assert_eq!(got.info.sha256_fingerprint, first.info.sha256_fingerprint);

        // Crash between the renames: key is new, cert staged; roll forward.
        fs::write(&paths.key, &second.key_pem).unwrap();
        fs::write(paths.staged_cert(), &second.cert_pem).unwrap();
        let got = load(&paths, &p).unwrap();
        assert_eq!(got.info.sha256_fingerprint, second.info.sha256_fingerprint);
        assert!(!paths.staged_cert().exists());
    }
}
