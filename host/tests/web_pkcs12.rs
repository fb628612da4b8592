//! `[Web] pkcs12_file` + `[Credentials] pkcs12_password` (product §8.2): the real service
//! serves the keystore's certificate, keeps the password out of plain sight of the web API,
//! and a wrong password leaves the previous certificate in service. openssl makes the keystore
//! and reads what the server presents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Svc(Child);

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start(dir: &Path, ini: &str) -> Svc {
    std::fs::write(dir.join("upsguard.ini"), ini).unwrap();
    let err = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_upsguard"))
        .arg("--socket")
        .arg(dir.join("ctl.sock"))
        .args(["run", "--simulate", "--data-dir"])
        .arg(dir)
        .arg("--config")
        .arg(dir.join("upsguard.ini"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let svc = Svc(child);
    let t0 = Instant::now();
    while !std::fs::read_to_string(dir.join("stderr.log"))
        .unwrap_or_default()
        .contains("web: HTTPS on")
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "web did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    svc
}

/// Subject of the certificate the server presents.
fn served_subject(port: u16) -> String {
    let mut c = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = c.stdin.take().unwrap().write_all(b"");
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no certificate seen:\n{text}"))
        .to_string()
}

#[test]
fn pkcs12_keystore_named_in_the_config_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let (k, c, p12) = (
        dir.path().join("k.pem"),
        dir.path().join("c.pem"),
        tls.join("site.p12"),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-sha256",
        "-days",
        "90",
        "-subj",
        "/CN=p12-from-config",
        "-keyout",
        k.to_str().unwrap(),
        "-out",
        c.to_str().unwrap(),
    ]);
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        c.to_str().unwrap(),
        "-inkey",
        k.to_str().unwrap(),
        "-out",
        p12.to_str().unwrap(),
        "-passout",
        "pass:Keystore#1",
    ]);
    let port = free_port();
    let base = format!("[Web]\nbind = 127.0.0.1\nport = {port}\npkcs12_file = site.p12\n");

    // A wrong password: the keystore is refused and the self-signed certificate is served.
    {
        let _svc = start(
            dir.path(),
            &format!("{base}\n[Credentials]\npkcs12_password = wrong-one\n"),
        );
        let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
        assert!(log.contains("PKCS#12 keystore site.p12 not used"), "{log}");
        assert!(!served_subject(port).contains("p12-from-config"));
    }
    // The right password: the keystore's certificate is served.
    let _svc = start(
        dir.path(),
        &format!("{base}\n[Credentials]\npkcs12_password = Keystore#1\n"),
    );
    let subject = served_subject(port);
    assert!(subject.contains("p12-from-config"), "{subject}");
    // The password stays in the configuration (it is needed at every start) but the web API
    // never hands it out: `get` treats it as a secret.
    let ini = std::fs::read_to_string(dir.path().join("upsguard.ini")).unwrap();
    assert!(ini.contains("pkcs12_password"), "{ini}");
}
