//! The web API end to end: the real `upsguard run --simulate` binary (emulated UPS), a temp
//! data directory and config with `[Web] bind = 127.0.0.1`, and `curl -k` as the client.
//!
//! Time-dependent rules (2-minute lock, idle timeout, per-source refill) use the hidden
//! `--web-test-clock-file`: the file holds seconds added to the web clock, so a test jumps
//! past a lock instead of sleeping for it. Only the web API's clock moves; the flag is hidden
//! and taken from the command line only (root's), so it adds nothing a remote client can use.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin1";
const PASSWORD: &str = "Secret#123";

struct Svc {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Svc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Svc {
    /// Start with `extra_ini` appended to the `[Web]` section's file.
    fn start(extra_ini: &str) -> Svc {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let ini = format!("[Web]\nbind = 127.0.0.1\nport = {port}\n{extra_ini}");
        std::fs::write(dir.path().join("upsguard.ini"), ini).unwrap();
        std::fs::write(dir.path().join("clock"), "0").unwrap();
        let err = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_upsguard"))
            .arg("--socket")
            .arg(dir.path().join("ctl.sock"))
            .args(["run", "--simulate", "--data-dir"])
            .arg(dir.path())
            .arg("--config")
            .arg(dir.path().join("upsguard.ini"))
            .arg("--web-test-clock-file")
            .arg(dir.path().join("clock"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let svc = Svc { child, dir, port };
        let t0 = Instant::now();
        while !svc.log().contains("web: HTTPS on") {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "web did not start:\n{}",
                svc.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        svc
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.path("stderr.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn advance(&self, secs: u64) {
        std::fs::write(self.path("clock"), secs.to_string()).unwrap();
    }

    /// `curl -sk -i` → (status, headers lower-cased, body).
    fn curl(&self, method: &str, path: &str, args: &[&str]) -> (u16, String, String) {
        let out = Command::new("curl")
            .args(["-sk", "-i", "--max-time", "30", "-X", method])
            .args(args)
            .arg(format!("https://127.0.0.1:{}{path}", self.port))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    fn json(&self, method: &str, path: &str, body: &str, s: Option<&Sess>) -> (u16, String) {
        let mut args: Vec<String> = vec![
            "-H".into(),
            "content-type: application/json".into(),
            "--data-binary".into(),
            body.into(),
        ];
        if let Some(s) = s {
            args.extend(s.headers());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (st, _, b) = self.curl(method, path, &a);
        (st, b)
    }

    fn get(&self, path: &str, s: Option<&Sess>) -> (u16, String, String) {
        let args = s.map(Sess::headers).unwrap_or_default();
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.curl("GET", path, &a)
    }

    fn login(&self, user: &str, pw: &str, takeover: bool) -> (u16, String, Option<Sess>) {
        let body =
            serde_json::json!({"username": user, "password": pw, "takeover": takeover}).to_string();
        let (st, head, b) = self.curl(
            "POST",
            "/api/v1/login",
            &[
                "-H",
                "content-type: application/json",
                "--data-binary",
                &body,
            ],
        );
        let sess = (st == 200).then(|| {
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            let cookie = head
                .lines()
                .find_map(|l| l.strip_prefix("set-cookie: ug_session="))
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string();
            Sess {
                id: cookie,
                csrf: v["csrf"].as_str().unwrap().to_string(),
            }
        });
        (st, head, sess)
    }

    fn events(&self) -> String {
        let mut s = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events")
            {
                s += &std::fs::read_to_string(&p).unwrap_or_default();
            }
        }
        s
    }

    /// Events are written by the monitor after the answer; give it a moment.
    fn wait_event(&self, needle: &str) -> String {
        let t0 = Instant::now();
        loop {
            let ev = self.events();
            if ev.contains(needle) || t0.elapsed() > Duration::from_secs(10) {
                return ev;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

struct Sess {
    id: String,
    csrf: String,
}

impl Sess {
    fn headers(&self) -> Vec<String> {
        vec![
            "-H".into(),
            format!("cookie: ug_session={}", self.id),
            "-H".into(),
            format!("x-csrf-token: {}", self.csrf),
        ]
    }
    fn cookie_only(&self) -> Vec<String> {
        vec!["-H".into(), format!("cookie: ug_session={}", self.id)]
    }
}

fn with_admin() -> Svc {
    Svc::start(&format!(
        "\n[Credentials]\nusername = {ADMIN}\npassword = {PASSWORD}\n"
    ))
}

fn token_from_log(log: &str) -> String {
    log.lines()
        .find_map(|l| l.split("One-time setup token: ").nth(1))
        .expect("setup token in the log")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn first_run_setup_login_cookie_flags_csrf_logout() {
    let svc = Svc::start("");
    let (st, _, b) = svc.get("/api/v1/setup", None);
    assert_eq!((st, b.as_str()), (200, r#"{"needed":true}"#));
    let token = token_from_log(&svc.log());
    // Policy errors name the rule and do not burn the token.
    let (st, b) = svc.json(
        "POST",
        "/api/v1/setup",
        &serde_json::json!({"token": token, "username": ADMIN, "password": "short"}).to_string(),
        None,
    );
    assert_eq!(st, 400, "{b}");
    assert!(b.contains("\"rule\""), "{b}");
    let (st, _) = svc.json(
        "POST",
        "/api/v1/setup",
        &serde_json::json!({"token": "00000000-00000000", "username": ADMIN, "password": PASSWORD})
            .to_string(),
        None,
    );
    assert_eq!(st, 401);
    let (st, b) = svc.json(
        "POST",
        "/api/v1/setup",
        &serde_json::json!({"token": token, "username": ADMIN, "password": PASSWORD}).to_string(),
        None,
    );
    assert_eq!(st, 200, "{b}");
    let (st, _) = svc.json(
        "POST",
        "/api/v1/setup",
        &serde_json::json!({"token": token, "username": "admin2", "password": PASSWORD})
            .to_string(),
        None,
    );
    assert_eq!(st, 409, "setup closes once an administrator exists");

    let (st, head, sess) = svc.login(ADMIN, PASSWORD, false);
    assert_eq!(st, 200);
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: ug_session="))
        .unwrap();
    for flag in ["httponly", "secure", "samesite=strict", "path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let sess = sess.unwrap();
    assert_eq!(sess.id.len(), 64, "256-bit session id");
    let (st, _, b) = svc.get("/api/v1/status", Some(&sess));
    assert_eq!(st, 200);
    assert!(b.contains("\"input_voltage\""), "{b}");

    // CSRF: missing or wrong token on a state change → 403, nothing done.
    let ck = sess.cookie_only();
    let ck: Vec<&str> = ck.iter().map(String::as_str).collect();
    let (st, _, _) = svc.curl("POST", "/api/v1/logout", &ck);
    assert_eq!(st, 403);
    let mut wrong = ck.clone();
    wrong.extend(["-H", "x-csrf-token: 0000"]);
    let (st, _, _) = svc.curl("POST", "/api/v1/shutdown/now", &wrong);
    assert_eq!(st, 403);
    let (st, _) = svc.json("POST", "/api/v1/ups/sleep", r#"{"hours":500}"#, Some(&sess));
    assert_eq!(st, 400, "hours range-checked");

    let (st, _) = svc.json("POST", "/api/v1/logout", "", Some(&sess));
    assert_eq!(st, 200);
    let (st, _, _) = svc.get("/api/v1/status", Some(&sess));
    assert_eq!(st, 401);
    let ev = svc.wait_event("\"logout\"");
    for id in ["\"credentials_changed\"", "\"login\"", "\"logout\""] {
        assert!(ev.contains(id), "{id} missing:\n{ev}");
    }
}

#[test]
fn ini_credentials_are_consumed_and_everything_is_gated() {
    let svc = with_admin();
    let ini = std::fs::read_to_string(svc.path("upsguard.ini")).unwrap();
    assert!(!ini.contains(PASSWORD) && !ini.to_ascii_lowercase().contains("[credentials]"));
    let (st, _, b) = svc.get("/api/v1/setup", None);
    assert_eq!((st, b.as_str()), (200, r#"{"needed":false}"#));
    assert!(!svc.log().contains("setup token:"));

    for (m, p) in [
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/session"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/events.csv"),
        ("GET", "/api/v1/datalog.csv"),
        ("GET", "/api/v1/config/web"),
        ("PUT", "/api/v1/config/web"),
        ("POST", "/api/v1/shutdown/now"),
        ("POST", "/api/v1/ups/selftest"),
        ("GET", "/api/v1/nonexistent"),
        ("GET", "/secret-page"),
    ] {
        let (st, head, b) = svc.curl(m, p, &[]);
        assert_eq!(st, 401, "{m} {p}");
        assert!(!head.contains("location:"), "never a redirect: {m} {p}");
        assert!(b.contains("\"error\""), "{m} {p}: {b}");
    }
    // Static pages are public (the login page needs them); every answer has the headers.
    let (st, head, _) = svc.get("/", None);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    let (_, head, _) = svc.get("/api/v1/status", None);
    for h in [
        "content-security-policy: default-src 'self'",
        "x-frame-options: deny",
        "x-content-type-options: nosniff",
        "strict-transport-security:",
        "referrer-policy:",
        "cache-control: no-store",
    ] {
        assert!(head.contains(h), "{h} missing:\n{head}");
    }
    let (st, _, b) = svc.get("/api/v1/openapi.json", None);
    assert_eq!(st, 200);
    let doc: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/login",
        "/status",
        "/config/{section}",
        "/events.csv",
        "/ups/sleep",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} documented");
    }
    // JSON endpoints need Content-Type: application/json (no cross-origin "simple" request),
    // and browsers' cross-site requests are refused outright.
    let body = serde_json::json!({"username": ADMIN, "password": PASSWORD}).to_string();
    let (st, _, _) = svc.curl(
        "POST",
        "/api/v1/login",
        &["-H", "content-type: text/plain", "--data-binary", &body],
    );
    assert_eq!(st, 415);
    let (st, _, _) = svc.curl(
        "POST",
        "/login",
        &[
            "-H",
            "sec-fetch-site: cross-site",
            "--data",
            "username=admin1&password=Secret%23123",
        ],
    );
    assert_eq!(st, 403);
    let (st, _, s) = svc.login(ADMIN, PASSWORD, false);
    assert_eq!(st, 200);
    let s = s.unwrap();
    // The security page's certificate facts, as the API reports them.
    let (st, _, b) = svc.get("/api/v1/security/certificate", Some(&s));
    assert_eq!(st, 200, "{b}");
    let c: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(c["key_bits"], 2048, "{b}");
    assert!(
        c["signature_algorithm"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("512"),
        "{b}"
    );
    assert!(c["days_until_expiry"].as_i64().unwrap() > 30);
    let (st, b) = svc.json("POST", "/api/v1/security/certificate/reload", "", Some(&s));
    assert_eq!(st, 200, "{b}");
}

#[test]
fn lockout_spread_over_endpoints_without_following_redirects_ends_on_time() {
    let svc = with_admin();
    let (_, _, sess) = svc.login(ADMIN, PASSWORD, false);
    let sess = sess.unwrap();
    // Failure 1: the password-change endpoint checks the current password.
    let (st, _) = svc.json(
        "PUT",
        "/api/v1/security/password",
        r#"{"current_password":"Wrong#1234","new_password":"Better#5678"}"#,
        Some(&sess),
    );
    assert_eq!(st, 401);
    let (st, _) = svc.json("POST", "/api/v1/logout", "", Some(&sess));
    assert_eq!(st, 200);
    // Failure 2: the form login answers 303; curl does not follow it, the failure counts.
    let (st, head, _) = svc.curl(
        "POST",
        "/login",
        &["--data", "username=admin1&password=Wrong%231234"],
    );
    assert_eq!(st, 303);
    assert!(head.contains("location: /?login=failed"), "{head}");
    // Failure 3, on the JSON API: the account locks.
    let (st, _, _) = svc.login(ADMIN, "Wrong#1234", false);
    assert_eq!(st, 423);
    // Even the right password is refused during the lock, with the time left.
    let (st, b) = svc.json(
        "POST",
        "/api/v1/login",
        &serde_json::json!({"username": ADMIN, "password": PASSWORD}).to_string(),
        None,
    );
    assert_eq!(st, 423);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    let left = v["retry_after_s"].as_u64().unwrap();
    assert!((1..=120).contains(&left), "{b}");
    // The form login is locked too (the lock is per account, not per endpoint).
    let (st, head, _) = svc.curl(
        "POST",
        "/login",
        &["--data", "username=admin1&password=Secret%23123"],
    );
    assert_eq!(st, 303);
    assert!(head.contains("location: /?login=locked"), "{head}");

    // Flood from one source during the lock: refused (423 or 429), and it does not extend it.
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..25 {
        let (st, _, _) = svc.login(ADMIN, "Wrong#1234", false);
        codes.insert(st);
    }
    assert!(codes.is_subset(&[423, 429].into()), "{codes:?}");
    assert!(
        codes.contains(&429),
        "the flooding source is throttled: {codes:?}"
    );

    // 121 s later (test clock) the lock has ended on time: the administrator gets in.
    svc.advance(121);
    let (st, _, sess) = svc.login(ADMIN, PASSWORD, false);
    assert_eq!(st, 200);
    let sess = sess.unwrap();
    let ev = svc.wait_event("\"account_locked\"");
    assert!(ev.contains("\"login_failed\"") && ev.contains("\"account_locked\""));

    // Idle timeout: 15 minutes without a request ends the session.
    svc.advance(121 + 15 * 60 + 1);
    let (st, _, b) = svc.get("/api/v1/session", Some(&sess));
    assert_eq!(st, 401, "{b}");
}

#[test]
fn one_session_at_a_time_and_explicit_takeover() {
    let svc = with_admin();
    let (_, _, a) = svc.login(ADMIN, PASSWORD, false);
    let a = a.unwrap();
    let (st, _, _) = svc.login(ADMIN, PASSWORD, false);
    assert_eq!(st, 409, "second login refused while one session is active");
    let (st, _, b) = svc.login(ADMIN, PASSWORD, true);
    assert_eq!(st, 200);
    let b = b.unwrap();
    assert_ne!(a.id, b.id, "rotated at login");
    let (st, _, _) = svc.get("/api/v1/session", Some(&a));
    assert_eq!(st, 401, "the old session is gone");
    let (st, _, body) = svc.get("/api/v1/session", Some(&b));
    assert_eq!(st, 200);
    assert!(body.contains(&b.csrf));
    let ev = svc.wait_event("taking over");
    assert!(ev.contains("taking over the active session"));
}

#[test]
fn a_username_with_crlf_cannot_forge_a_log_line() {
    let svc = with_admin();
    let evil = "bob\r\nFORGED 2026-01-01T00:00:00Z INFO event: Login — login by admin1\n{\"id\":\"login\"}";
    let (st, _, _) = svc.login(evil, "Wrong#1234", false);
    assert_eq!(st, 401);
    let ev = svc.wait_event("login_failed");
    for line in ev.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("event line is not one JSON record ({e}): {line}"));
        assert!(v.is_object());
    }
    assert!(ev.contains("login_failed"));
    // The service log line is written beside the event; give a loaded machine time to flush it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut log = svc.log();
    while !log.contains(r"bob\x0d\x0aFORGED") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        log = svc.log();
    }
    assert!(
        log.contains(r"bob\x0d\x0aFORGED"),
        "escaped in the service log:\n{log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with("FORGED") && !line.starts_with("{\"id\""),
            "forged line in the service log: {line}"
        );
    }
}

#[test]
fn config_injection_ranges_and_file_names_are_rejected() {
    let svc = with_admin();
    let (_, _, s) = svc.login(ADMIN, PASSWORD, false);
    let s = s.unwrap();
    let before = std::fs::read_to_string(svc.path("upsguard.ini")).unwrap();
    for (section, body) in [
        // CR/LF smuggling a [Credentials] section, in a value and in a key.
        (
            "schedule",
            r#"{"nightly":"daily 01:00 wake 06:00\r\n[Credentials]\r\nusername=evil1234\r\npassword=Evil#12345"}"#,
        ),
        (
            "snmp",
            r#"{"communities":"public\n[Credentials]\nusername=evil1234"}"#,
        ),
        (
            "schedule",
            r#"{"x\r\n[Credentials]":"daily 01:00 wake 06:00"}"#,
        ),
        // The reset channel is not reachable through the API at all.
        (
            "credentials",
            r#"{"username":"evil1234","password":"Evil#12345"}"#,
        ),
        // Out-of-range log settings (anti-forensics floors) and other numbers.
        ("logging", r#"{"event_log_max_kb":1}"#),
        ("logging", r#"{"event_log_files":1}"#),
        ("logging", r#"{"datalog_interval_s":5}"#),
        ("logging", r#"{"datalog_max_kb":99999999999}"#),
        ("web", r#"{"idle_timeout_min":600}"#),
        // A malformed command file in an event value.
        (
            "events",
            r#"{"on_battery":"log, command_file:../../../tmp/x.sh"}"#,
        ),
    ] {
        let (st, b) = svc.json("PUT", &format!("/api/v1/config/{section}"), body, Some(&s));
        assert_eq!(st, 400, "{section} {body}: {b}");
        assert!(b.contains("\"error\""), "{b}");
    }
    // Path traversal in every field that names a file: refused before the value is even
    // looked at, since these keys change in the INI file only (403; see
    // program_and_file_settings_change_in_the_ini_only).
    for (section, body) in [
        ("web", r#"{"cert_file":"../../etc/passwd"}"#),
        ("web", r#"{"key_file":"/etc/shadow"}"#),
        ("web", r#"{"pkcs12_file":"..\\..\\x.p12"}"#),
        ("shutdown", r#"{"command_file":"../../bin/sh"}"#),
        ("communication", r#"{"device":"/etc/passwd"}"#),
    ] {
        let (st, b) = svc.json("PUT", &format!("/api/v1/config/{section}"), body, Some(&s));
        assert_eq!(st, 403, "{section} {body}: {b}");
        assert!(b.contains("\"error\""), "{b}");
    }
    // A refused value names its key, so the form can mark the field.
    let (st, b) = svc.json(
        "PUT",
        "/api/v1/config/shutdown",
        r#"{"on_battery_delay_s":30,"threshold_charge_pct":500}"#,
        Some(&s),
    );
    assert_eq!(st, 400, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["key"], "threshold_charge_pct", "{b}");
    let (st, _, _) = svc.get("/api/v1/config/..%2f..%2fetc%2fpasswd", Some(&s));
    assert!(st == 400 || st == 404, "{st}");
    let after = std::fs::read_to_string(svc.path("upsguard.ini")).unwrap();
    assert_eq!(before, after, "nothing written");
    assert!(!after.to_ascii_lowercase().contains("credentials"));
    let (st, _, _) = svc.login("evil1234", "Evil#12345", true);
    assert_eq!(st, 401);

    // A valid change is saved, reloaded and logged.
    let (_, _, s) = svc.login(ADMIN, PASSWORD, true);
    let s = s.unwrap();
    let (st, b) = svc.json(
        "PUT",
        "/api/v1/config/logging",
        r#"{"datalog_interval_s":120}"#,
        Some(&s),
    );
    assert_eq!(st, 200, "{b}");
    assert!(b.contains("\"datalog_interval_s\":\"120\""), "{b}");
    let saved = std::fs::read_to_string(svc.path("upsguard.ini")).unwrap();
    assert!(saved.contains("datalog_interval_s = 120"), "{saved}");
    let ev = svc.wait_event("configuration changed from the web UI");
    assert!(ev.contains("configuration_changed"));

    // A shorter idle timeout applies at once, to the live session too.
    let (st, b) = svc.json(
        "PUT",
        "/api/v1/config/web",
        r#"{"idle_timeout_min":1}"#,
        Some(&s),
    );
    assert_eq!(st, 200, "{b}");
    svc.advance(30);
    let (st, _, _) = svc.get("/api/v1/session", Some(&s));
    assert_eq!(st, 200);
    svc.advance(30 + 61);
    let (st, _, _) = svc.get("/api/v1/session", Some(&s));
    assert_eq!(st, 401);
}

/// Issue 7: `PUT /config/Shutdown {"os_shutdown_command": "/bin/sh -c …"}` was accepted and
/// Shutdown Now ran it as root. Every key naming a program, a command file or a file is now
/// refused (403, naming the key) by the monitor's ConfigSet — from the web API and from the
/// control socket alike — and the file is left as it was; GET still shows the values.
#[test]
fn program_and_file_settings_change_in_the_ini_only() {
    let svc = Svc::start(&format!(
        "\n[Shutdown]\nos_shutdown_command = /bin/true\ncommand_file = shut.sh\n\n\
         [Events]\non_battery = log, command_file:onbatt.sh:30\n\n\
         [Credentials]\nusername = {ADMIN}\npassword = {PASSWORD}\n"
    ));
    let (_, _, s) = svc.login(ADMIN, PASSWORD, false);
    let s = s.unwrap();
    let ini = svc.path("upsguard.ini");
    let before = std::fs::read_to_string(&ini).unwrap();
    assert!(
        before.contains("os_shutdown_command = /bin/true"),
        "{before}"
    );
    for (section, body, key) in [
        (
            "Shutdown",
            r#"{"os_shutdown_command":"/bin/sh -c 'touch /tmp/upsguard-pwned'"}"#,
            "os_shutdown_command",
        ),
        // Any spelling of the key, and even a valid-looking program.
        (
            "shutdown",
            r#"{"OS_Shutdown_Command":"/sbin/poweroff"}"#,
            "OS_Shutdown_Command",
        ),
        // All or nothing: an allowed key beside it is not applied either.
        (
            "Shutdown",
            r#"{"on_battery_delay_s":90,"os_shutdown_command":"/usr/bin/id"}"#,
            "os_shutdown_command",
        ),
        ("Shutdown", r#"{"command_file":"evil.sh"}"#, "command_file"),
        ("Shutdown", r#"{"command_file":""}"#, "command_file"),
        (
            "Events",
            r#"{"on_battery":"log, command_file:evil.sh:30"}"#,
            "on_battery",
        ),
        (
            "Events",
            r#"{"low_battery":"log, command_file:onbatt.sh"}"#,
            "low_battery",
        ),
        ("Web", r#"{"cert_file":"other.pem"}"#, "cert_file"),
        ("Web", r#"{"key_file":"other.pem"}"#, "key_file"),
        ("Web", r#"{"pkcs12_file":"store.p12"}"#, "pkcs12_file"),
        ("Communication", r#"{"device":"/dev/ttyUSB0"}"#, "device"),
    ] {
        let (st, b) = svc.json("PUT", &format!("/api/v1/config/{section}"), body, Some(&s));
        assert_eq!(st, 403, "{section} {body}: {b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["key"], key, "{b}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(key) && e.contains("configuration file"), "{e}");
    }
    // The control socket's ConfigSet (what the API uses) refuses them too.
    let r = upsguard::ipc::call(
        &svc.path("ctl.sock"),
        &upsguard::ipc::Request::ConfigSet {
            section: "Shutdown".into(),
            values: [("os_shutdown_command".to_string(), "/bin/sh".to_string())].into(),
            username: None,
            source: None,
        },
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(!r.ok, "{r:?}");
    assert_eq!(r.data["file_only"], true, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(&ini).unwrap(),
        before,
        "file unchanged"
    );
    // GET still shows them.
    let (st, _, b) = svc.get("/api/v1/config/Shutdown", Some(&s));
    assert_eq!(st, 200, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["values"]["os_shutdown_command"], "/bin/true", "{b}");
    assert_eq!(v["values"]["command_file"], "shut.sh", "{b}");

    // An event's other actions may change as long as its command file stays the file's.
    let (st, b) = svc.json(
        "PUT",
        "/api/v1/config/Events",
        r#"{"on_battery":"log, notify, command_file:onbatt.sh:60"}"#,
        Some(&s),
    );
    assert_eq!(st, 200, "{b}");
    let saved = std::fs::read_to_string(&ini).unwrap();
    assert!(
        saved.contains("on_battery = log, notify, command_file:onbatt.sh:60"),
        "{saved}"
    );
    assert!(saved.contains("os_shutdown_command = /bin/true"), "{saved}");
    // The change is an event naming the user, the source address and the key.
    let (st, b) = svc.json(
        "PUT",
        "/api/v1/config/Shutdown",
        r#"{"on_battery_delay_s":90,"threshold_charge_pct":10}"#,
        Some(&s),
    );
    assert_eq!(st, 200, "{b}");
    svc.wait_event("threshold_charge_pct");
    let changes: Vec<serde_json::Value> = svc
        .events()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["id"] == "configuration_changed")
        .collect();
    for keys in ["on_battery", "on_battery_delay_s, threshold_charge_pct"] {
        let ev = changes
            .iter()
            .find(|v| v["fields"]["keys"] == keys)
            .unwrap_or_else(|| panic!("no configuration_changed for {keys}: {changes:?}"));
        assert_eq!(ev["fields"]["username"], ADMIN, "{ev}");
        assert_eq!(ev["source"], "127.0.0.1", "{ev}");
        let m = ev["message"].as_str().unwrap();
        assert!(
            m.contains(ADMIN) && m.contains("127.0.0.1") && m.contains(keys),
            "{m}"
        );
    }
}

#[test]
fn expensive_endpoints_are_single_flight_and_rate_limited() {
    let svc = with_admin();
    let (_, _, s) = svc.login(ADMIN, PASSWORD, false);
    let s = s.unwrap();
    let (st, head, body) = svc.get("/api/v1/events.csv", Some(&s));
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/csv"), "{head}");
    assert!(
        head.contains("attachment; filename=\"events.csv\""),
        "{head}"
    );
    assert!(!body.is_empty());
    let mut throttled = 0;
    for _ in 0..10 {
        let (st, head, _) = svc.get("/api/v1/events.csv", Some(&s));
        if st == 429 {
            throttled += 1;
            assert!(head.contains("retry-after:"), "{head}");
        }
    }
    assert!(throttled >= 5, "flood of exports throttled: {throttled}/10");
    let (a, _) = svc.json("POST", "/api/v1/ups/selftest", "", Some(&s));
    let (b, _) = svc.json("POST", "/api/v1/ups/selftest", "", Some(&s));
    assert_ne!(a, 429);
    assert_eq!(b, 429, "a second self-test moments later is refused");
    let (a, _) = svc.json("POST", "/api/v1/ups/calibrate", "{}", Some(&s));
    let (b, _) = svc.json("POST", "/api/v1/ups/calibrate", "{}", Some(&s));
    assert_ne!(a, 429);
    assert_eq!(b, 429, "calibration is single-flight too");
    // Bad limits are rejected, not clamped into a file read.
    let (st, _, _) = svc.get("/api/v1/events?limit=../../etc", Some(&s));
    assert_eq!(st, 400);
    let (st, _, b) = svc.get("/api/v1/datalog?limit=5", Some(&s));
    assert_eq!(st, 200, "{b}");
    assert!(b.contains("\"columns\""));
}

#[test]
fn ini_credentials_are_consumed_even_without_the_web_ui() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("upsguard.ini");
    std::fs::write(
        &ini,
        format!("[Credentials]\nusername = {ADMIN}\npassword = {PASSWORD}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_upsguard"))
        .arg("--socket")
        .arg(dir.path().join("ctl.sock"))
        .args(["run", "--no-web", "--simulate", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&ini)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::fs::read_to_string(&ini).unwrap().contains(PASSWORD)
        && t0.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!std::fs::read_to_string(&ini).unwrap().contains(PASSWORD));
    assert!(dir.path().join("credentials.enc").exists());
    assert!(!dir.path().join("tls").exists(), "no web, no certificate");
}

/// The dashboard's automatic refreshes (marked `X-Upsguard-Background: 1`) keep working but do
/// not count as activity: a browser left open on the dashboard is logged out on time by the
/// server, while a real request does extend the session.
#[test]
fn dashboard_polling_does_not_defeat_the_idle_timeout() {
    let svc = with_admin();
    let (_, _, s) = svc.login(ADMIN, PASSWORD, false);
    let s = s.unwrap();
    let poll = |at: u64| {
        svc.advance(at);
        let mut args = s.headers();
        args.extend(["-H".to_string(), "X-Upsguard-Background: 1".to_string()]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        svc.curl("GET", "/api/v1/status", &a).0
    };
    // A real request at 10 min resets the idle clock…
    assert_eq!(poll(5 * 60), 200);
    svc.advance(10 * 60);
    assert_eq!(svc.get("/api/v1/session", Some(&s)).0, 200);
    // …background polls after it do not: 14 min later they still work, at 15 min the
    // session has ended.
    assert_eq!(poll(10 * 60 + 14 * 60), 200);
    assert_eq!(poll(10 * 60 + 14 * 60 + 50), 200);
    assert_eq!(poll(10 * 60 + 15 * 60 + 1), 401);
    assert_eq!(svc.get("/api/v1/session", Some(&s)).0, 401);
}

/// The reset channel also works without a restart: `[Credentials]` written into the INI of a
/// running service is consumed on SIGHUP (stored, scrubbed from the file), and the new
/// password works at once.
#[test]
fn ini_credentials_are_consumed_on_reload() {
    let svc = with_admin();
    let new_pw = "Reset#Pass-2026";
    let ini = svc.path("upsguard.ini");
    let mut text = std::fs::read_to_string(&ini).unwrap();
    text.push_str(&format!(
        "\n[Credentials]\nusername = {ADMIN}\npassword = {new_pw}\n"
    ));
    std::fs::write(&ini, text).unwrap();
    let pid = svc.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t0 = Instant::now();
    while std::fs::read_to_string(&ini).unwrap().contains(new_pw)
        && t0.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !std::fs::read_to_string(&ini).unwrap().contains(new_pw),
        "password still in the INI after SIGHUP\n{}",
        svc.log()
    );
    let (st, _, _) = svc.login(ADMIN, new_pw, true);
    assert_eq!(st, 200, "the reset password works\n{}", svc.log());
    let (st, _, _) = svc.login(ADMIN, PASSWORD, true);
    assert_eq!(st, 401, "the old password no longer works");
    svc.wait_event("set from the [Credentials] section");
}
