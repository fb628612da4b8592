//! HTTPS transport tests with real TLS clients (openssl s_client, curl) against the server
//! running in-process on 127.0.0.1:0 with a temporary data directory.
//!
//! Each test prints what the client saw (`--nocapture` shows it).

// Test helpers outside #[test] fns are not covered by clippy.toml's test allowances.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use upsguard::web::{self, ServeOptions, TlsManager, cert};

struct Server {
    addr: SocketAddr,
    tls: Arc<TlsManager>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(dir: &Path, opts: ServeOptions) -> Self {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let dir = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tls = Arc::new(TlsManager::load_or_generate(&dir).unwrap());
                let listener = web::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
                ready_tx
                    .send((listener.local_addr().unwrap(), Arc::clone(&tls)))
                    .unwrap();
                web::serve(listener, tls, web::demo_routes(), opts, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let (addr, tls) = ready_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        Self {
            addr,
            tls,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fast_opts() -> ServeOptions {
    ServeOptions {
        handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        shutdown_grace: Duration::from_millis(200),
        ..ServeOptions::default()
    }
}

/// Run `openssl s_client` with stdin closed; returns (exit ok, stdout+stderr).
fn s_client(addr: SocketAddr, extra: &[&str]) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["20", "openssl", "s_client", "-connect"])
        .arg(addr.to_string())
        .args(["-servername", "localhost"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The "New, TLSv1.3, Cipher is X" line of s_client, as (protocol, cipher).
fn negotiated(text: &str) -> Option<(String, String)> {
    let line = text.lines().find(|l| l.starts_with("New, "))?;
    let rest = line.strip_prefix("New, ")?;
    let (proto, cipher) = rest.split_once(", Cipher is ")?;
    if cipher.trim() == "(NONE)" {
        return None;
    }
    Some((proto.trim().to_owned(), cipher.trim().to_owned()))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// curl -k, returning (status line, lower-cased header lines, body).
fn curl(args: &[&str], url: &str) -> (String, Vec<String>, String) {
    let out = Command::new("curl")
        .args(["-sk", "-i", "--max-time", "20"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response from curl {args:?} {url}: {text}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().trim().to_owned();
    let headers = lines.map(|l| l.trim().to_ascii_lowercase()).collect();
    (status, headers, body.to_owned())
}

fn served_cert_pem(addr: SocketAddr) -> String {
    let (ok, text) = s_client(addr, &["-showcerts"]);
    assert!(ok, "{text}");
    let start = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    format!("{}\n", &text[start..end])
}

fn x509(pem: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.pem");
    std::fs::write(&p, pem).unwrap();
    run(Command::new("openssl")
        .args(["x509", "-noout", "-in"])
        .arg(&p)
        .args(args))
}

fn sha256_of(pem: &str) -> String {
    x509(pem, &["-fingerprint", "-sha256"])
        .trim()
        .rsplit_once('=')
        .unwrap()
        .1
        .to_owned()
}

#[test]
fn tls_versions_and_aead_ciphers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), fast_opts());
    // SECLEVEL=0 so openssl really offers the old protocol instead of refusing locally.
    for v in ["-tls1", "-tls1_1"] {
        let (ok, text) = s_client(srv.addr, &[v, "-cipher", "DEFAULT:@SECLEVEL=0"]);
        let neg = negotiated(&text);
        eprintln!(
            "{v}: exit ok={ok}, negotiated={neg:?}, alert: {}",
            text.lines().find(|l| l.contains("alert")).unwrap_or("-")
        );
        assert!(!ok && neg.is_none(), "{v} must be refused:\n{text}");
    }
    for (v, proto) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, text) = s_client(srv.addr, &[v]);
        let (p, c) = negotiated(&text).unwrap_or_else(|| panic!("{v} refused:\n{text}"));
        eprintln!("{v}: exit ok={ok}, protocol={p}, cipher={c}");
        assert_eq!(p, proto);
        assert!(
            c.contains("GCM") || c.contains("CHACHA20"),
            "non-AEAD cipher {c}"
        );
    }
    // Each TLS 1.2 suite on its own: the AEAD ones work, CBC and static-RSA ones do not.
    for c in [
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ] {
        let (_, text) = s_client(srv.addr, &["-tls1_2", "-cipher", c]);
        let neg = negotiated(&text);
        eprintln!("-tls1_2 -cipher {c}: {neg:?}");
        assert_eq!(neg.map(|n| n.1), Some(c.to_owned()));
    }
    for c in [
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-RSA-AES256-SHA384",
        "AES128-GCM-SHA256",
        "AES256-SHA",
    ] {
        let (ok, text) = s_client(srv.addr, &["-tls1_2", "-cipher", c]);
        let neg = negotiated(&text);
        eprintln!("-tls1_2 -cipher {c}: refused={}", neg.is_none());
        assert!(!ok && neg.is_none(), "{c} must be refused:\n{text}");
    }
    for c in ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"] {
        let (_, text) = s_client(srv.addr, &["-tls1_3", "-ciphersuites", c]);
        let neg = negotiated(&text);
        eprintln!("-tls1_3 -ciphersuites {c}: {neg:?}");
        assert_eq!(neg.map(|n| n.1), Some(c.to_owned()));
    }
}

#[test]
fn alpn_h2_and_http11() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), fast_opts());
    let (_, text) = s_client(srv.addr, &["-alpn", "h2,http/1.1"]);
    let alpn = text
        .lines()
        .find(|l| l.starts_with("ALPN protocol"))
        .unwrap_or("none");
    eprintln!("s_client -alpn h2,http/1.1: {alpn}");
    assert_eq!(alpn, "ALPN protocol: h2");

    let (status, _, body) = curl(&["--http2"], &srv.url("/api/v1/health"));
    eprintln!("curl --http2 /api/v1/health: {status} {body}");
    assert!(status.starts_with("HTTP/2 200"), "{status}");
    assert_eq!(body, r#"{"ok":true}"#);

    let (status, _, body) = curl(&["--http1.1"], &srv.url("/api/v1/health"));
    eprintln!("curl --http1.1 /api/v1/health: {status} {body}");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, r#"{"ok":true}"#);
}

#[test]
fn generated_certificate_facts_files_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(dir.path(), fast_opts());
    assert!(srv.tls.generated_at_start());
    let pem = served_cert_pem(srv.addr);
    let text = x509(&pem, &["-text"]);
    let sig = text
        .lines()
        .find(|l| l.contains("Signature Algorithm"))
        .unwrap()
        .trim()
        .to_owned();
    let bits = text
        .lines()
        .find(|l| l.contains("Public-Key:"))
        .unwrap()
        .trim()
        .to_owned();
    let sans_idx = text
        .lines()
        .position(|l| l.contains("Subject Alternative Name"))
        .unwrap();
    let sans = text.lines().nth(sans_idx + 1).unwrap().trim().to_owned();
    eprintln!("served cert: {sig}; {bits}; SANs: {sans}");
    eprintln!("{}", srv.tls.cert_info());
    assert!(text.contains("Signature Algorithm: sha512WithRSAEncryption"));
    assert!(text.contains("Public-Key: (2048 bit)"));
    assert!(text.contains("rsaEncryption"));
    assert!(sans.contains("DNS:localhost"));
    assert!(sans.contains("IP Address:127.0.0.1"));
    assert!(sans.contains("IP Address:0:0:0:0:0:0:0:1"));
    if let Some(h) = cert::host_name() {
        assert!(
            sans.contains(&format!("DNS:{h}")),
            "host name {h} missing: {sans}"
        );
    }
    let info = srv.tls.cert_info();
    assert_eq!(info.key_bits, 2048);
    assert_eq!(info.signature_algorithm, "sha512WithRSAEncryption");
    // Valid exactly SELF_SIGNED_VALIDITY_DAYS (≤ 397) from a backdated not_before.
    const { assert!(cert::SELF_SIGNED_VALIDITY_DAYS <= 397) };
    assert_eq!(
        info.not_after - info.not_before,
        time::Duration::days(cert::SELF_SIGNED_VALIDITY_DAYS)
    );
    let days = srv.tls.days_until_expiry();
    assert!(
        (cert::SELF_SIGNED_VALIDITY_DAYS - 2..cert::SELF_SIGNED_VALIDITY_DAYS).contains(&days),
        "{days}"
    );
    assert!(!srv.tls.expiry_warning_due());

    let fp1 = sha256_of(&pem);
    assert_eq!(
        fp1, info.sha256_fingerprint,
        "served cert is the one we describe"
    );

    let tls_dir = dir.path().join("tls");
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    eprintln!(
        "modes: tls/ {:o}, key.pem {:o}, cert.pem {:o}",
        mode(tls_dir.clone()),
        mode(tls_dir.join("key.pem")),
        mode(tls_dir.join("cert.pem"))
    );
    assert_eq!(mode(tls_dir.clone()), 0o700);
    assert_eq!(mode(tls_dir.join("key.pem")), 0o600);

    // Restart: same files, same certificate.
    srv.stop();
    let srv2 = Server::start(dir.path(), fast_opts());
    assert!(!srv2.tls.generated_at_start());
    let fp2 = sha256_of(&served_cert_pem(srv2.addr));
    eprintln!("fingerprint before restart {fp1}\nfingerprint after restart  {fp2}");
    assert_eq!(fp1, fp2);
}

const HEADERS: [(&str, &str); 6] = [
    ("strict-transport-security", "max-age=31536000"),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-frame-options", "deny"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", ""),
];

fn assert_security_headers(what: &str, headers: &[String]) {
    for (name, value) in HEADERS {
        let line = headers
            .iter()
            .find(|h| h.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{what}: no {name} header in {headers:#?}"));
        if !value.is_empty() {
            assert_eq!(
                line.split_once(':').unwrap().1.trim(),
                value.to_ascii_lowercase(),
                "{what}: {name}"
            );
        }
    }
}

fn header<'a>(headers: &'a [String], name: &str) -> &'a str {
    headers
        .iter()
        .find_map(|h| h.strip_prefix(&format!("{name}:")))
        .map(str::trim)
        .unwrap_or("")
}

#[test]
fn security_headers_on_every_response() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), fast_opts());
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 2 * 1024 * 1024]).unwrap();
    let big_arg = format!("@{}", big.display());
    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        ("index", vec![], "/", "200"),
        ("index by name", vec![], "/index.html", "200"),
        ("health", vec![], "/api/v1/health", "200"),
        ("unknown", vec![], "/nope", "404"),
        (
            "traversal",
            vec!["--path-as-is"],
            "/../../etc/passwd",
            "404",
        ),
        (
            "encoded traversal",
            vec!["--path-as-is"],
            "/%2e%2e/%2e%2e/etc/passwd",
            "404",
        ),
        (
            "too large",
            vec!["-X", "POST", "--data-binary", big_arg.as_str()],
            "/api/v1/health",
            "413",
        ),
        (
            "wrong method",
            vec!["-X", "DELETE"],
            "/api/v1/health",
            "405",
        ),
    ];
    for proto in ["--http1.1", "--http2"] {
        for (what, args, path, code) in &cases {
            if proto == "--http2" && *code == "413" {
                // The server answers 413 and resets the stream (RFC 9113 §8.1, NO_ERROR), but
                // curl 7.88 drops a response that arrives while it is still uploading.
                continue;
            }
            let mut a = vec![proto];
            a.extend(args.iter().copied());
            let (status, headers, _) = curl(&a, &srv.url(path));
            eprintln!(
                "{proto} {what} {path}: {status}; content-type={}; cache-control={}",
                header(&headers, "content-type"),
                header(&headers, "cache-control")
            );
            assert!(status.contains(&format!(" {code}")), "{what}: {status}");
            assert_security_headers(what, &headers);
        }
    }
    let (_, h, body) = curl(&[], &srv.url("/"));
    assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&h, "cache-control"), "no-cache");
    assert!(body.contains("<html"));
    let (_, h, _) = curl(&[], &srv.url("/api/v1/health"));
    assert_eq!(header(&h, "cache-control"), "no-store");
    assert_eq!(header(&h, "content-type"), "application/json");
}

#[test]
fn idle_connection_without_client_hello_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), fast_opts());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    let took = t0.elapsed();
    eprintln!("idle TCP (no ClientHello): read -> {r:?} after {took:?} (handshake timeout 1 s)");
    assert!(
        matches!(r, Ok(0)) || r.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn idle_after_handshake_is_dropped_by_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), fast_opts());
    for alpn in ["http/1.1", "none"] {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-quiet", "-connect"])
            .arg(srv.addr.to_string());
        if alpn != "none" {
            cmd.args(["-alpn", alpn]);
        }
        // stdin stays open (we hold the pipe), so only the server can end this.
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                child.kill().unwrap();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = t0.elapsed();
        eprintln!("TLS up, no request (alpn {alpn}): server closed after {took:?}");
        assert!(status.is_some(), "server kept an idle connection open");
        drop(child.stdin.take());
    }
}

#[test]
fn per_address_connection_cap() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ServeOptions {
        max_connections_per_ip: 2,
        handshake_timeout: Duration::from_secs(5),
        ..fast_opts()
    };
    let srv = Server::start(dir.path(), opts);
    let _a = TcpStream::connect(srv.addr).unwrap();
    let _b = TcpStream::connect(srv.addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(srv.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t0 = Instant::now();
    let r = c.read(&mut [0u8; 8]);
    eprintln!(
        "third connection from one address: {r:?} after {:?}",
        t0.elapsed()
    );
    assert!(
        matches!(r, Ok(0)) || r.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset)
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
}

fn openssl_self_signed(dir: &Path, name: &str, key_alg: &[&str]) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "90",
            "-subj",
            "/CN=ups.example.test",
        ])
        .args(["-addext", "subjectAltName=DNS:ups.example.test"])
        .args(key_alg)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (cert, key)
}

#[test]
fn import_pem_pkcs12_reload_and_csr() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), fast_opts());
    let work = tempfile::tempdir().unwrap();
    let original = sha256_of(&served_cert_pem(srv.addr));

    // An EC P-256 cert with its key, and an unrelated RSA key.
    let (ec_cert, ec_key) = openssl_self_signed(
        work.path(),
        "ec",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let other_key = work.path().join("other.key");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&other_key));

    // Mismatched key: refused, nothing changed on disk or on the wire.
    let key_before = std::fs::read(dir.path().join("tls/key.pem")).unwrap();
    let err = cert::import_pem(dir.path(), &ec_cert, &other_key).unwrap_err();
    eprintln!("import with a mismatched key: {err}");
    assert!(matches!(err, cert::CertError::KeyMismatch));
    assert_eq!(
        std::fs::read(dir.path().join("tls/key.pem")).unwrap(),
        key_before
    );
    // A key file given as the certificate, and garbage.
    let err = cert::import_pem(dir.path(), &ec_key, &ec_key).unwrap_err();
    eprintln!("import with no certificate: {err}");
    assert!(matches!(err, cert::CertError::NoCertificate { .. }));

    // Good PEM import, then hot reload: the new cert is served without a restart.
    let info = cert::import_pem(dir.path(), &ec_cert, &ec_key).unwrap();
    eprintln!("imported PEM:\n{info}");
    assert_eq!(info.key_type, "EC P-256");
    assert_eq!(
        sha256_of(&served_cert_pem(srv.addr)),
        original,
        "not before reload"
    );
    srv.tls.reload().unwrap();
    let served = sha256_of(&served_cert_pem(srv.addr));
    eprintln!("after reload the server presents {served}");
    assert_eq!(served, info.sha256_fingerprint);
    let (status, headers, _) = curl(&["--http2"], &srv.url("/api/v1/health"));
    assert!(status.starts_with("HTTP/2 200"));
    assert_security_headers("after reload", &headers);

    // PKCS#12 (OpenSSL 3 default PBES2/AES, and legacy 3DES/SHA-1) with a password.
    let (rsa_cert, rsa_key) =
        openssl_self_signed(work.path(), "rsa", &["-newkey", "rsa:3072", "-sha384"]);
    for (name, extra) in [
        ("aes", vec![]),
        (
            "3des",
            vec![
                "-keypbe",
                "PBE-SHA1-3DES",
                "-certpbe",
                "PBE-SHA1-3DES",
                "-macalg",
                "sha1",
            ],
        ),
    ] {
        let p12 = work.path().join(format!("{name}.p12"));
        run(Command::new("openssl")
            .args(["pkcs12", "-export", "-passout", "pass:Corr3ct-horse"])
            .args(&extra)
            .arg("-in")
            .arg(&rsa_cert)
            .arg("-inkey")
            .arg(&rsa_key)
            .arg("-out")
            .arg(&p12));
        let err = cert::import_pkcs12(dir.path(), &p12, "wrong").unwrap_err();
        eprintln!("PKCS#12 ({name}) wrong password: {err}");
        assert!(matches!(err, cert::CertError::Pkcs12 { .. }));
        let info = cert::import_pkcs12(dir.path(), &p12, "Corr3ct-horse").unwrap();
        eprintln!(
            "PKCS#12 ({name}) imported: {} {} bit, {}",
            info.key_type, info.key_bits, info.signature_algorithm
        );
        assert_eq!((info.key_type.as_str(), info.key_bits), ("RSA", 3072));
    }
    let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    srv.tls.reload().unwrap();
    assert_eq!(srv.tls.cert_info().key_bits, 3072);

    // CSR for the installed (imported RSA) key, same SANs.
    let csr = cert::csr_pem(dir.path()).unwrap();
    let csr_path = work.path().join("req.csr");
    std::fs::write(&csr_path, &csr).unwrap();
    let out = Command::new("openssl")
        .args(["req", "-verify", "-noout", "-text", "-in"])
        .arg(&csr_path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "openssl req -verify: {}; {}",
        text.lines().find(|l| l.contains("verify")).unwrap_or("?"),
        text.lines()
            .find(|l| l.contains("DNS:"))
            .unwrap_or("?")
            .trim()
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains("DNS:ups.example.test"));
    assert!(text.contains("sha512WithRSAEncryption"));

    // Back to a generated certificate; its CSR carries the default SANs.
    let info = cert::regenerate(dir.path()).unwrap();
    assert!(info.self_signed);
    std::fs::write(&csr_path, cert::csr_pem(dir.path()).unwrap()).unwrap();
    let text = run(Command::new("openssl")
        .args(["req", "-verify", "-noout", "-text", "-in"])
        .arg(&csr_path));
    assert!(
        text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );
    let shown = cert::show(dir.path()).unwrap();
    assert_eq!(shown.sha256_fingerprint, info.sha256_fingerprint);
}

#[test]
fn assets_table_is_sorted_and_holds_index() {
    let all = web::assets::all();
    assert!(all.windows(2).all(|w| w[0].name < w[1].name));
    let index = web::assets::get("").unwrap();
    assert_eq!(index.name, "index.html");
    assert!(web::assets::get("../index.html").is_none());
    assert!(web::assets::get("/index.html").is_none());
}

#[test]
fn raw_tcp_http_is_not_served() {
    // No plain-HTTP fallback: an HTTP request on the TLS port gets no HTTP response.
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path(), fast_opts());
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    eprintln!("plain HTTP on the TLS port: {} bytes back", buf.len());
    assert!(!String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"));
}
