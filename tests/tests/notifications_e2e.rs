//! Notifications end to end: the real `upsguard run` against `upsguard-sim` on a pty, with
//! peers nobody here wrote as receivers: aiosmtpd (Debian's python3-aiosmtpd) speaking SMTP
//! with STARTTLS and AUTH, and Python's `http.server` wrapped in `ssl` as the webhook. Both use
//! a throw-away self-signed certificate made by `openssl`, trusted through its SHA-256 pin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use upsguard_tests::{ChildGuard, Control, ServiceDir, TempDir, bin_path, free_port, wait_for};

const PYTHON: &str = "/usr/bin/python3";
const SMTP_USER: &str = "upsmail";
const SMTP_PASS: &str = "Mail#Pass-1";

const SMTP_SERVER: &str = r#"
import os, sys, json, ssl, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, out, user, pw = sys.argv[1:7]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(out) if f.endswith('.json')])
        rec = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
               "data": envelope.content.decode('utf-8', 'replace'),
               "tls": session.ssl is not None, "authenticated": bool(session.authenticated)}
        tmp = os.path.join(out, '.mail%d.tmp' % n)
        with open(tmp, 'w') as f:
            json.dump(rec, f)
        os.rename(tmp, os.path.join(out, 'mail%d.json' % n))
        return '250 OK queued'

def check(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() \
        and auth_data.password == pw.encode()
    return AuthResult(success=ok)

c = Controller(Handler(), hostname='127.0.0.1', port=int(port), tls_context=ctx,
               require_starttls=True, authenticator=check, auth_required=True,
               auth_require_tls=True)
c.start()
print('READY', flush=True)
while True:
    time.sleep(3600)
"#;

const WEBHOOK_SERVER: &str = r#"
import os, sys, json, ssl, http.server

port, cert, key, out = sys.argv[1:5]

class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
        n = len([f for f in os.listdir(out) if f.endswith('.json')])
        rec = {"path": self.path, "content_type": self.headers.get('Content-Type'),
               "body": body.decode('utf-8', 'replace')}
        tmp = os.path.join(out, '.hook%d.tmp' % n)
        with open(tmp, 'w') as f:
            json.dump(rec, f)
        os.rename(tmp, os.path.join(out, 'hook%d.json' % n))
        self.send_response(200)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')

    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer(('127.0.0.1', int(port)), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print('READY', flush=True)
srv.serve_forever()
"#;

/// A self-signed certificate for 127.0.0.1: (cert, key, SHA-256 fingerprint `AB:CD:…`).
fn make_cert(dir: &TempDir, name: &str) -> (PathBuf, PathBuf, String) {
    let cert = dir.join(&format!("{name}.pem"));
    let key = dir.join(&format!("{name}.key"));
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let fp = text.trim().rsplit('=').next().unwrap().to_string();
    assert_eq!(fp.len(), 95, "{text}");
    (cert, key, fp)
}

fn wait_port(port: u16, what: &str, log: &ChildGuard) {
    wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .unwrap_or_else(|| panic!("{what} did not listen on {port}:\n{}", log.log_text()));
}

struct Receivers {
    _smtp: ChildGuard,
    _hook: ChildGuard,
    smtp_port: u16,
    hook_port: u16,
    mail_dir: PathBuf,
    hook_dir: PathBuf,
}

fn start_receivers(dir: &TempDir, cert: &Path, key: &Path) -> Receivers {
    assert!(
        Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success()),
        "python3-aiosmtpd is needed (ci/test.sh installs it)"
    );
    let mail_dir = dir.join("mail");
    let hook_dir = dir.join("hook");
    std::fs::create_dir_all(&mail_dir).unwrap();
    std::fs::create_dir_all(&hook_dir).unwrap();
    std::fs::write(dir.join("smtpd.py"), SMTP_SERVER).unwrap();
    std::fs::write(dir.join("hookd.py"), WEBHOOK_SERVER).unwrap();
    let smtp_port = free_port();
    let smtp = ChildGuard::spawn(
        "aiosmtpd",
        Command::new(PYTHON)
            .arg(dir.join("smtpd.py"))
            .arg(smtp_port.to_string())
            .arg(cert)
            .arg(key)
            .arg(&mail_dir)
            .args([SMTP_USER, SMTP_PASS]),
        &dir.join("smtpd.log"),
    );
    let hook_port = free_port();
    let hook = ChildGuard::spawn(
        "webhook",
        Command::new(PYTHON)
            .arg(dir.join("hookd.py"))
            .arg(hook_port.to_string())
            .arg(cert)
            .arg(key)
            .arg(&hook_dir),
        &dir.join("hookd.log"),
    );
    wait_port(smtp_port, "aiosmtpd", &smtp);
    wait_port(hook_port, "webhook server", &hook);
    Receivers {
        _smtp: smtp,
        _hook: hook,
        smtp_port,
        hook_port,
        mail_dir,
        hook_dir,
    }
}

/// Received items (`mail*.json` / `hook*.json`) in a receiver's folder.
fn received(dir: &Path) -> Vec<Value> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "json"));
    names.sort();
    names
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect()
}

struct Rig {
    dir: TempDir,
    ctl: Control,
    _sim: ChildGuard,
    svc: Option<ChildGuard>,
    data: PathBuf,
    config: PathBuf,
}

impl Rig {
    fn new(tag: &str, ini: &str, web: bool) -> Rig {
        let sd = ServiceDir::new(tag, ini);
        let (sim, ctl) = sd.start_emulator(1);
        let ServiceDir {
            dir,
            data,
            config,
            link,
        } = sd;
        let mut cmd = Command::new(bin_path("upsguard"));
        cmd.arg("--socket")
            .arg(dir.join("upsguard.sock"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("--device")
            .arg(&link)
            .arg("--log")
            .arg("debug");
        if !web {
            cmd.arg("--no-web");
        }
        let svc = ChildGuard::spawn("upsguard", &mut cmd, &dir.join("service.log"));
        let mut rig = Rig {
            dir,
            ctl,
            _sim: sim,
            svc: Some(svc),
            data,
            config,
        };
        rig.wait_event("comm_established", Duration::from_secs(30));
        // Messages carry charge and runtime: wait until the first full poll has read them.
        let sock = rig.dir.join("upsguard.sock");
        let ready = wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
            let out = Command::new(bin_path("upsguard"))
                .arg("--socket")
                .arg(&sock)
                .args(["status", "--json"])
                .output()
                .ok()?;
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["charge_pct"].is_number() && v["runtime_s"].is_number()).then_some(())
        });
        assert!(
            ready.is_some(),
            "no charge/runtime in the status\n{}",
            rig.logs()
        );
        rig
    }

    fn service_log(&self) -> String {
        self.svc.as_ref().map(|s| s.log_text()).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- service log ---\n{}\n--- events ---\n{}\n--- smtpd ---\n{}\n--- hookd ---\n{}",
            self.service_log(),
            std::fs::read_to_string(self.data.join("events.jsonl")).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join("smtpd.log")).unwrap_or_default(),
            std::fs::read_to_string(self.dir.join("hookd.log")).unwrap_or_default(),
        )
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_event(&mut self, id: &str, timeout: Duration) -> Value {
        wait_for(timeout, Duration::from_millis(50), || {
            self.events().into_iter().find(|e| e["id"] == id)
        })
        .unwrap_or_else(|| panic!("no {id} event within {timeout:?}\n{}", self.logs()))
    }

    fn wait_received(&self, dir: &Path, n: usize, what: &str) -> Vec<Value> {
        wait_for(Duration::from_secs(60), Duration::from_millis(100), || {
            let r = received(dir);
            (r.len() >= n).then_some(r)
        })
        .unwrap_or_else(|| panic!("{what}: nothing received within 60 s\n{}", self.logs()))
    }
}

fn notifications_ini(r_smtp: u16, r_hook: u16, smtp_pin: &str, hook_pin: &str) -> String {
    format!(
        "[Notifications]\n\
         email_enabled = true\n\
         smtp_host = 127.0.0.1\n\
         smtp_port = {r_smtp}\n\
         smtp_security = starttls\n\
         smtp_username = {SMTP_USER}\n\
         smtp_pin_sha256 = {smtp_pin}\n\
         mail_from = ups@example.net\n\
         mail_to = ops@example.net, oncall@example.org\n\
         webhook_enabled = true\n\
         webhook_url = https://127.0.0.1:{r_hook}/hooks/ups?token=t1\n\
         webhook_pin_sha256 = {hook_pin}\n"
    )
}

fn base_ini(policy: &str, extra: &str) -> String {
    format!(
        "[Communication]\npoll_interval_ms = 500\nreply_timeout_ms = 500\n\n\
         [Shutdown]\npolicy = {policy}\nos_shutdown_command = /bin/true\n\n\
         [Events]\non_battery = log, notify\n\n{extra}"
    )
}

fn curl(port: u16, method: &str, path: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sk", "-i", "--max-time", "60", "-X", method])
        .args(args)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// `mains off` → an e-mail through STARTTLS + AUTH (the password came from `[Credentials]`
/// and left the INI) and a webhook POST, both naming the event and the UPS; then the web
/// API's test endpoint reports both channels, and a second test at once is refused (429).
#[test]
fn on_battery_reaches_email_and_webhook() {
    let dir = TempDir::new("notify-recv");
    let (cert, key, fp) = make_cert(&dir, "receiver");
    let recv = start_receivers(&dir, &cert, &key);
    let web = free_port();
    let ini = base_ini(
        "low_battery",
        &format!(
            "[Web]\nbind = 127.0.0.1\nport = {web}\n\n{}\n\
             [Credentials]\nusername = admin1\npassword = Secret#123\nsmtp_password = {SMTP_PASS}\n",
            notifications_ini(recv.smtp_port, recv.hook_port, &fp, &fp)
        ),
    );
    let mut rig = Rig::new("notify-ok", &ini, true);

    // The secret left the file (and its backup); the rest of the section stayed.
    let text = std::fs::read_to_string(&rig.config).unwrap();
    assert!(!text.contains(SMTP_PASS), "{text}");
    assert!(!text.contains("[Credentials]"), "{text}");
    assert!(text.contains("smtp_username = upsmail"), "{text}");
    let bak = std::fs::read_to_string(rig.config.with_file_name("upsguard_backup.ini"))
        .unwrap_or_default();
    assert!(!bak.contains(SMTP_PASS), "{bak}");

    rig.ctl.ok("mains off");
    let ob = rig.wait_event("on_battery", Duration::from_secs(10));
    assert_eq!(ob["state"], "active");

    let mails = rig.wait_received(&recv.mail_dir, 1, "e-mail");
    let m = &mails[0];
    assert_eq!(m["tls"], true, "{m}");
    assert_eq!(m["authenticated"], true, "{m}");
    assert_eq!(m["mail_from"], "ups@example.net");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ops@example.net", "oncall@example.org"])
    );
    let data = m["data"].as_str().unwrap();
    // Long headers are folded onto continuation lines; unfold before reading them.
    let head = data
        .split("\r\n\r\n")
        .next()
        .unwrap_or(data)
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    let header = |name: &str| {
        head.split("\r\n")
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .unwrap_or("")
            .to_string()
    };
    assert!(header("from").contains("ups@example.net"), "{data}");
    assert!(header("to").contains("ops@example.net"), "{data}");
    assert!(header("to").contains("oncall@example.org"), "{data}");
    let subject = header("subject");
    assert!(subject.contains("on_battery"), "{data}");
    assert!(subject.contains(upsguard_sim::MODEL_NAME), "{data}");
    assert!(subject.contains(upsguard_sim::SERIAL), "{data}");
    assert!(!header("date").is_empty(), "{data}");
    assert!(!header("message-id").is_empty(), "{data}");
    assert!(data.contains("Status:    OB"), "{data}");
    assert!(!data.contains("Charge:    unknown"), "{data}");

    let hooks = rig.wait_received(&recv.hook_dir, 1, "webhook");
    let h = &hooks[0];
    assert_eq!(h["path"], "/hooks/ups?token=t1");
    assert_eq!(h["content_type"], "application/json");
    let body: Value = serde_json::from_str(h["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["event"], "on_battery", "{body}");
    assert_eq!(body["severity"], "warning", "{body}");
    assert_eq!(body["state"], "active", "{body}");
    assert_eq!(body["test"], false, "{body}");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    assert!(!body["host"].as_str().unwrap().is_empty(), "{body}");
    assert_eq!(body["ups"]["model"], upsguard_sim::MODEL_NAME, "{body}");
    assert_eq!(body["ups"]["serial"], upsguard_sim::SERIAL, "{body}");
    assert!(
        body["ups"]["status"].as_str().unwrap().contains("OB"),
        "{body}"
    );
    assert!(body["ups"]["charge_pct"].is_number(), "{body}");
    assert!(body["ups"]["runtime_s"].is_number(), "{body}");

    // The web API: settings through the config section (no secret in them), the password
    // state, and the test endpoint.
    let log = wait_for(Duration::from_secs(60), Duration::from_millis(100), || {
        let l = rig.service_log();
        l.contains("web: HTTPS on").then_some(l)
    });
    assert!(log.is_some(), "web did not start\n{}", rig.logs());
    let (st, body) = curl(
        web,
        "POST",
        "/api/v1/login",
        &[
            "-H",
            "content-type: application/json",
            "--data-binary",
            r#"{"username":"admin1","password":"Secret#123"}"#,
            "-c",
            rig.dir.join("cookies").to_str().unwrap(),
        ],
    );
    assert_eq!(st, 200, "{body}");
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let cookies = rig.dir.join("cookies");
    let auth = [
        "-b",
        cookies.to_str().unwrap(),
        "-H",
        &format!("x-csrf-token: {csrf}"),
        "-H",
        "content-type: application/json",
    ];
    let (st, body) = curl(web, "GET", "/api/v1/config/Notifications", &auth);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"smtp_username\":\"upsmail\""), "{body}");
    assert!(!body.contains(SMTP_PASS), "{body}");
    let (st, body) = curl(web, "GET", "/api/v1/notifications/smtp-password", &auth);
    assert_eq!((st, body.as_str()), (200, r#"{"set":true}"#));

    let mut a = auth.to_vec();
    a.extend(["--data-binary", "{}"]);
    let t0 = Instant::now();
    let (st, body) = curl(web, "POST", "/api/v1/notifications/test", &a);
    assert_eq!(st, 200, "{body}\n{}", rig.logs());
    let v: Value = serde_json::from_str(&body).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{body}");
    for r in results {
        assert_eq!(r["ok"], true, "{body}");
    }
    // Single-flight and rate-limited like the other expensive operations.
    if t0.elapsed() < Duration::from_secs(1) {
        let (st, body) = curl(web, "POST", "/api/v1/notifications/test", &a);
        assert_eq!(st, 429, "{body}");
    }
    let hooks = rig.wait_received(&recv.hook_dir, 2, "test webhook");
    let test_body: Value =
        serde_json::from_str(hooks.last().unwrap()["body"].as_str().unwrap()).unwrap();
    assert_eq!(test_body["test"], true, "{test_body}");
    rig.wait_received(&recv.mail_dir, 2, "test e-mail");

    // A channel that cannot deliver is refused at save time, naming the key.
    let mut a = auth.to_vec();
    a.extend(["--data-binary", r#"{"webhook_url":""}"#]);
    let (st, body) = curl(web, "PUT", "/api/v1/config/Notifications", &a);
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("webhook_url"), "{body}");
}

/// A receiver whose certificate does not match the pin gets nothing: both channels refuse
/// the handshake (no retries for a certificate problem), and each failure is a
/// `notification_failed` event naming the mismatch.
#[test]
fn wrong_pin_is_refused_and_logged() {
    let dir = TempDir::new("notify-recv");
    let (cert, key, _fp) = make_cert(&dir, "receiver");
    let (_other, _other_key, other_fp) = make_cert(&dir, "other");
    let recv = start_receivers(&dir, &cert, &key);
    let ini = base_ini(
        "low_battery",
        &format!(
            "{}\n[Credentials]\nsmtp_password = {SMTP_PASS}\n",
            notifications_ini(recv.smtp_port, recv.hook_port, &other_fp, &other_fp)
        ),
    );
    let mut rig = Rig::new("notify-pin", &ini, false);
    rig.ctl.ok("mains off");
    rig.wait_event("on_battery", Duration::from_secs(10));
    let failures = wait_for(Duration::from_secs(60), Duration::from_millis(100), || {
        let f: Vec<Value> = rig
            .events()
            .into_iter()
            .filter(|e| e["id"] == "notification_failed")
            .collect();
        (f.len() >= 2).then_some(f)
    })
    .unwrap_or_else(|| panic!("no notification_failed events\n{}", rig.logs()));
    let text = serde_json::to_string(&failures).unwrap();
    for channel in ["email", "webhook"] {
        let f = failures
            .iter()
            .find(|e| e["fields"]["channel"] == channel)
            .unwrap_or_else(|| panic!("no failure for {channel}: {text}"));
        let msg = f["message"].as_str().unwrap();
        assert!(msg.contains("pin mismatch"), "{msg}");
        assert!(msg.contains("on_battery"), "{msg}");
        assert!(msg.contains("after 1 attempt"), "{msg}");
        assert_eq!(f["severity"], "warning");
    }
    let log = rig.service_log();
    assert!(
        log.contains("WARN") && log.contains("pin mismatch"),
        "no warning in the service log:\n{log}"
    );
    assert!(received(&recv.mail_dir).is_empty());
    assert!(received(&recv.hook_dir).is_empty());
}

/// An SMTP server that accepts the connection and then never says a word: the shutdown path
/// goes on regardless. on_battery and shutdown_started are logged while the delivery task is
/// still stuck on that server (the held connection is open and no failure is reported yet).
#[test]
fn dead_smtp_server_does_not_delay_the_shutdown_path() {
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    {
        let held = Arc::clone(&held);
        std::thread::spawn(move || {
            for s in blackhole.incoming().flatten() {
                held.lock().unwrap().push(s);
            }
        });
    }
    let ini = base_ini(
        "immediately",
        &format!(
            "[Notifications]\nemail_enabled = true\nsmtp_host = 127.0.0.1\nsmtp_port = {port}\n\
             mail_from = ups@example.net\nmail_to = ops@example.net\n"
        ),
    );
    let mut rig = Rig::new("notify-dead", &ini, false);
    let t0 = Instant::now();
    rig.ctl.ok("mains off");
    // Generous waits for a loaded CI machine; the proof is the order below, not the clock.
    rig.wait_event("on_battery", Duration::from_secs(30));
    rig.wait_event("shutdown_started", Duration::from_secs(30));
    let took = t0.elapsed();
    // Had the monitor waited for the mail, shutdown_started would come after the three tries
    // (3 × 10 s + backoff = 37 s), and their failure would already be in the log.
    let failed_yet = rig
        .events()
        .iter()
        .any(|e| e["id"] == "notification_failed");
    assert!(
        !failed_yet && took < Duration::from_secs(37),
        "the shutdown path waited for the dead SMTP server ({took:?})\n{}",
        rig.logs()
    );
    // The notification was attempted: the server holds its connection.
    let connected = wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        (!held.lock().unwrap().is_empty()).then_some(())
    });
    assert!(connected.is_some(), "no SMTP connection\n{}", rig.logs());
    // The stuck delivery ends in a logged failure, in bounded time (3 tries of 10 s + backoff).
    let f = wait_for(Duration::from_secs(120), Duration::from_millis(200), || {
        rig.events()
            .into_iter()
            .find(|e| e["id"] == "notification_failed")
    })
    .unwrap_or_else(|| panic!("no notification_failed\n{}", rig.logs()));
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("email") && msg.contains("after 3 attempt"),
        "{msg}"
    );
}
