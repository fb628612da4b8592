//! End-to-end tests of `upsguard run`: the real service binary against `upsguard-sim` on a
//! real pty, with the emulator's physics accelerated. Each test reads the service's event
//! log (`events.jsonl`) and drives the emulator through its control port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use upsguard_tests::{ChildGuard, Control, ServiceDir, TempDir, bin_path, wait_for};

struct Rig {
    dir: TempDir,
    ctl: Control,
    sim: ChildGuard,
    svc: Option<ChildGuard>,
    link: PathBuf,
    data: PathBuf,
    config: PathBuf,
}

impl Rig {
    /// Starts the emulator (at `speed`) and writes `ini` as the service's configuration.
    fn new(tag: &str, speed: u32, ini: &str) -> Rig {
        let sd = ServiceDir::new(tag, ini);
        let (sim, ctl) = sd.start_emulator(speed);
        let ServiceDir {
            dir,
            data,
            config,
            link,
        } = sd;
        Rig {
            dir,
            ctl,
            sim,
            svc: None,
            link,
            data,
            config,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("upsguard.sock")
    }

    fn start_service(&mut self) {
        self.start_service_with(&[]);
    }

    fn start_service_with(&mut self, env: &[(&str, &str)]) {
        let svc = ChildGuard::spawn(
            "upsguard",
            Command::new(bin_path("upsguard"))
                .envs(env.iter().copied())
                .arg("--socket")
                .arg(self.socket())
                .arg("run")
                .arg("--config")
                .arg(&self.config)
                .arg("--data-dir")
                .arg(&self.data)
                .arg("--device")
                .arg(&self.link)
                .arg("--log")
                .arg("debug")
                // The web UI has its own tests; here it would only contend for port 6547.
                .arg("--no-web"),
            &self.dir.join("service.log"),
        );
        self.svc = Some(svc);
        self.wait_event("comm_established", Duration::from_secs(30));
    }

    fn stop_service(&mut self) -> String {
        self.svc
            .take()
            .map(|mut s| s.stop(Duration::from_secs(5)))
            .unwrap_or_default()
    }

    fn logs(&mut self) -> String {
        let svc = self.svc.as_ref().map(|s| s.log_text()).unwrap_or_default();
        format!(
            "--- service log ---\n{svc}\n--- events ---\n{}\n--- sim log ---\n{}",
            std::fs::read_to_string(self.data.join("events.jsonl")).unwrap_or_default(),
            self.sim.log_text()
        )
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.data.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn has_event(&self, id: &str, state: Option<&str>) -> Option<Value> {
        self.events()
            .into_iter()
            .find(|e| e["id"] == id && state.is_none_or(|s| e["state"] == s))
    }

    fn count(&self, id: &str) -> usize {
        self.events().iter().filter(|e| e["id"] == id).count()
    }

    fn wait_event(&mut self, id: &str, timeout: Duration) -> Value {
        match wait_for(timeout, Duration::from_millis(50), || {
            self.has_event(id, None)
        }) {
            Some(v) => v,
            None => panic!("no {id} event within {timeout:?}\n{}", self.logs()),
        }
    }

    fn wait_event_state(&mut self, id: &str, state: &str, timeout: Duration) -> Value {
        match wait_for(timeout, Duration::from_millis(50), || {
            self.has_event(id, Some(state))
        }) {
            Some(v) => v,
            None => panic!("no {id}/{state} event within {timeout:?}\n{}", self.logs()),
        }
    }

    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(bin_path("upsguard"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn status_json(&self) -> Value {
        let (ok, text) = self.cli(&["status", "--json"]);
        assert!(ok, "status failed: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// A root-only executable script in `<data>/cmdfiles/`.
    fn cmdfile(&self, name: &str, body: &str) -> PathBuf {
        let p = self.data.join("cmdfiles").join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        p
    }
}

/// The test configuration. Unless a test names its own, the OS shutdown command is
/// `/bin/true`: a test must never be able to shut the machine down.
fn ini(extra: &str) -> String {
    let safe = if extra.contains("os_shutdown_command") {
        ""
    } else {
        "\n[Shutdown]\nos_shutdown_command = /bin/true\n"
    };
    format!("[Communication]\npoll_interval_ms = 500\nreply_timeout_ms = 500\n\n{extra}\n{safe}")
}

/// A stand-in OS shutdown command: a script that appends a line to a marker file.
/// Returns the folder (removed on drop), the marker and the script.
fn fake_os_shutdown() -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new("fake-shutdown");
    let marker = dir.join("os-shutdown-ran");
    let script = dir.join("fake-shutdown.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho ran >> {}\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    (dir, marker, script)
}

fn parse_ts(v: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        v["ts"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

/// Scenario 1: A short outage: On Battery, then Input Power Restored; no shutdown; the command file
/// configured for On Battery ran with the event in its environment.
#[test]
fn short_outage_runs_command_file_and_no_shutdown() {
    let mut rig = Rig::new(
        "short",
        1,
        &ini(
            "[Shutdown]\npolicy = low_battery\nos_shutdown_command = /bin/false\n\n[Events]\non_battery = log, command_file:onbatt.sh:10\n",
        ),
    );
    let envfile = rig.dir.join("onbatt.env");
    rig.cmdfile(
        "onbatt.sh",
        &format!("env | grep '^UPSGUARD_' | sort > {}", envfile.display()),
    );
    rig.start_service();

    rig.ctl.ok("mains off");
    let ob = rig.wait_event_state("on_battery", "active", Duration::from_secs(15));
    assert_eq!(ob["severity"], "warning");
    let env = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        std::fs::read_to_string(&envfile)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .unwrap_or_else(|| panic!("command file did not run\n{}", rig.logs()));
    assert!(env.contains("UPSGUARD_EVENT=on_battery"), "{env}");
    assert!(env.contains("UPSGUARD_SEVERITY=warning"), "{env}");
    assert!(env.contains("UPSGUARD_STATUS=OB"), "{env}");
    assert!(
        env.contains(&format!("UPSGUARD_MODEL={}", upsguard_sim::MODEL_NAME)),
        "{env}"
    );
    assert!(
        env.contains(&format!("UPSGUARD_SERIAL={}", upsguard_sim::SERIAL)),
        "{env}"
    );
    assert!(env.contains("UPSGUARD_DURATION_S=10"), "{env}");
    assert!(
        env.lines().any(|l| l.starts_with("UPSGUARD_CHARGE=")),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l.starts_with("UPSGUARD_RUNTIME_S=")),
        "{env}"
    );

    let (ok, text) = rig.cli(&["status"]);
    assert!(ok && text.contains("ONBATT"), "{text}");

    rig.ctl.ok("mains on");
    rig.wait_event("power_restored", Duration::from_secs(15));
    // The command file's result is logged too.
    rig.wait_event("command_file", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rig.count("shutdown_started"), 0, "{}", rig.logs());
    let (ok, text) = rig.cli(&["events"]);
    assert!(
        ok && text.contains("on_battery") && text.contains("power_restored"),
        "{text}"
    );
    let (ok, csv) = rig.cli(&["events", "--csv"]);
    assert!(ok && csv.starts_with("ts,id,severity"), "{csv}");
    let out = rig.stop_service();
    assert!(rig.has_event("monitoring_stopped", None).is_some(), "{out}");
}

/// Scenario 2: A long outage under load: Low Runtime fires, the shutdown command file runs for its
/// duration, the OS shutdown command runs once, `upsguard killpower` makes the emulator cut
/// its output after its delay, and the output returns with mains.
#[test]
fn long_outage_shuts_down_and_kills_power() {
    let (_dir_marker, marker, os_script) = fake_os_shutdown();
    // A + B + margin = 2 + 300 + 60 s: Low Runtime fires once the UPS reports ≤ 6 minutes
    // (at 80 % load a full battery lasts about 9 minutes of emulator time, 10x faster here).
    let mut rig = Rig::new(
        "long",
        10,
        &ini(&format!(
            "[Shutdown]\npolicy = low_runtime\ncommand_file = shutdown.sh\ncommand_file_duration_s = 2\n\
             os_shutdown_command = {}\nos_shutdown_duration_s = 300\nturn_off_ups = true\nups_off_mode = return\n",
            os_script.display()
        )),
    );
    let cf_marker = rig.dir.join("cmdfile-ran");
    rig.cmdfile(
        "shutdown.sh",
        &format!(
            "echo \"$UPSGUARD_EVENT\" > {}; sleep 30",
            cf_marker.display()
        ),
    );
    rig.start_service();
    rig.ctl.ok("load 80");
    rig.ctl.ok("mains off");
    rig.wait_event_state("on_battery", "active", Duration::from_secs(15));
    let lr = rig.wait_event("low_runtime", Duration::from_secs(90));
    assert_eq!(lr["severity"], "critical");
    let started = rig.wait_event("shutdown_started", Duration::from_secs(15));
    // The command file is started when the event is logged; its first line lands a moment later.
    wait_for(Duration::from_secs(15), Duration::from_millis(20), || {
        std::fs::read_to_string(&cf_marker)
            .ok()
            .filter(|s| s.contains("shutdown_started"))
    })
    .unwrap_or_else(|| panic!("shutdown command file did not run\n{}", rig.logs()));
    // The OS shutdown waits for the command file's duration (2 s), not for the script (30 s).
    let ran = wait_for(Duration::from_secs(15), Duration::from_millis(50), || {
        std::fs::read_to_string(&marker).ok()
    })
    .unwrap_or_else(|| panic!("OS shutdown command did not run\n{}", rig.logs()));
    let ran_at = time::OffsetDateTime::now_utc();
    let waited = ran_at - parse_ts(&started);
    assert!(
        waited >= time::Duration::milliseconds(1900) && waited < time::Duration::seconds(10),
        "OS shutdown ran {waited} after Graceful Shutdown Started"
    );
    let flag = rig.data.join("killpower.flag");
    assert!(flag.exists(), "killpower flag missing\n{}", rig.logs());
    // Power returning after the OS shutdown started must not cancel it.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        ran.lines().count(),
        1,
        "OS shutdown command ran more than once"
    );

    // The halt: the service stops, then the shutdown hook runs killpower.
    rig.stop_service();
    let out = Command::new(bin_path("upsguard"))
        .arg("killpower")
        .arg("--data-dir")
        .arg(&rig.data)
        .arg("--device")
        .arg(&rig.link)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "killpower failed: {text}");
    assert!(text.contains("accepted"), "{text}");
    assert!(!flag.exists(), "flag should be consumed");
    // Grace delay p = 20 s of emulator time (2 s at 10x).
    let off = rig.ctl.wait_output(false, Duration::from_secs(10));
    assert!(
        off.is_some(),
        "emulator output still on: {}",
        rig.ctl.status()
    );
    // Mains returns: the UPS comes back by itself.
    rig.ctl.ok("mains on");
    let on = rig.ctl.wait_output(true, Duration::from_secs(15));
    assert!(on.is_some(), "output did not return: {}", rig.ctl.status());
}

/// Scenario 3: The link: the UPS stops answering → Communication Lost within two poll periods of
/// the first unanswered poll; the pty disappears and comes back → re-established; no power
/// events.
#[test]
fn link_loss_and_replug() {
    let mut rig = Rig::new("link", 1, &ini("[Shutdown]\npolicy = low_battery\n"));
    rig.start_service();
    std::thread::sleep(Duration::from_secs(2));
    rig.ctl.ok("mute on");
    let muted_at = time::OffsetDateTime::now_utc();
    let lost = rig.wait_event_state("comm_lost", "active", Duration::from_secs(15));
    let after = parse_ts(&lost) - muted_at;
    // Poll period 0.5 s, reply timeout 0.5 s, one retry: lost two poll periods after the
    // first unanswered poll, which comes at most one period after the mute (1.5 s in all);
    // the rest is slack for a loaded machine.
    eprintln!("comm lost {after} after the UPS went silent");
    assert!(
        after < time::Duration::milliseconds(2000),
        "comm lost after {after}"
    );
    rig.ctl.ok("mute off");
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        (rig.count("comm_established") >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("not re-established after unmute\n{}", rig.logs()));

    // Now the device itself disappears (USB adapter pulled) and returns.
    rig.ctl.ok("unplug");
    wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        (rig.count("comm_lost") >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no comm lost after unplug\n{}", rig.logs()));
    std::thread::sleep(Duration::from_secs(2));
    rig.ctl.ok("replug");
    wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        (rig.count("comm_established") >= 3).then_some(())
    })
    .unwrap_or_else(|| panic!("not re-established after replug\n{}", rig.logs()));
    let s = rig.status_json();
    assert_eq!(s["status"], "OL", "{s}");
    for id in [
        "on_battery",
        "power_restored",
        "low_battery",
        "shutdown_started",
    ] {
        assert_eq!(rig.count(id), 0, "false {id} event\n{}", rig.logs());
    }
}

/// Scenario 4: Noise and garbage on the line: no false events, no crash, status still right.
#[test]
fn garbage_on_the_line_causes_no_false_events() {
    let mut rig = Rig::new("noise", 1, &ini("[Shutdown]\npolicy = immediately\n"));
    rig.start_service();
    rig.ctl.ok("noise on");
    for _ in 0..10 {
        rig.ctl.ok("garbage 200");
        std::thread::sleep(Duration::from_millis(300));
    }
    rig.ctl.ok("noise off");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        rig.svc.as_mut().unwrap().exited().is_none(),
        "service died\n{}",
        rig.logs()
    );
    let s = rig.status_json();
    assert_eq!(s["status"], "OL", "{s}");
    for id in ["on_battery", "low_battery", "shutdown_started", "overload"] {
        assert_eq!(rig.count(id), 0, "false {id} event\n{}", rig.logs());
    }
}

/// Scenario 5: A corrupt configuration: the service starts from the backup and says so; a value with
/// an injected newline cannot create a section.
#[test]
fn corrupt_config_falls_back_to_backup() {
    let mut rig = Rig::new(
        "config",
        1,
        &ini("[Shutdown]\npolicy = on_battery_delay\non_battery_delay_s = 42\n"),
    );
    rig.start_service();
    rig.stop_service();
    let backup = rig.config.with_file_name("upsguard_backup.ini");
    let good = std::fs::read_to_string(&backup).expect("backup written on first good load");
    assert!(good.contains("on_battery_delay_s = 42"), "{good}");
    std::fs::write(&rig.config, b"[Shutdown\npolicy = \xff\xfe garbage \x00\n").unwrap();
    rig.start_service();
    let ev = rig.wait_event("config_backup_used", Duration::from_secs(15));
    assert_eq!(ev["severity"], "warning");
    // `upsguard config check` names the problem.
    let out = Command::new(bin_path("upsguard"))
        .args(["config", "check"])
        .arg(&rig.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Injection: a CR/LF-laden value given to the typed writer must not smuggle a section.
    std::fs::write(&rig.config, ini("[Shutdown]\npolicy = low_battery\n")).unwrap();
    let before = std::fs::read_to_string(&rig.config).unwrap();
    for evil in [
        "/bin/true\r\n[Credentials]\r\nusername = evil",
        "/bin/true\n[Credentials]",
        "/bin/true [Credentials]",
    ] {
        let out = Command::new(bin_path("upsguard"))
            .args(["config", "set", "--config"])
            .arg(&rig.config)
            .args(["Shutdown", "os_shutdown_command", evil])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{evil:?} was accepted");
        assert!(
            err.contains("os_shutdown_command"),
            "error must name the key: {err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&rig.config).unwrap(), before);
    // A clean value goes through and keeps the file loadable.
    let out = Command::new(bin_path("upsguard"))
        .args(["config", "set", "--config"])
        .arg(&rig.config)
        .args(["Shutdown", "on_battery_delay_s", "90"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = std::fs::read_to_string(&rig.config).unwrap();
    assert!(
        after.contains("on_battery_delay_s = 90") && !after.contains("[Credentials]"),
        "{after}"
    );
}

/// Scenario 6: A world-writable command file is refused, with an event.
#[test]
fn world_writable_command_file_is_refused() {
    let mut rig = Rig::new(
        "wwcmd",
        1,
        &ini(
            "[Shutdown]\npolicy = low_battery\n\n[Events]\non_battery = log, command_file:evil.sh:5\n",
        ),
    );
    let ran = rig.dir.join("evil-ran");
    let p = rig.cmdfile("evil.sh", &format!("touch {}", ran.display()));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
    rig.start_service();
    rig.ctl.ok("mains off");
    let ev = rig.wait_event("command_file_refused", Duration::from_secs(15));
    assert_eq!(ev["severity"], "warning");
    assert!(ev["message"].as_str().unwrap().contains("evil.sh"), "{ev}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!ran.exists(), "a world-writable command file ran");
    rig.ctl.ok("mains on");
}

/// First start on a fresh server: no configuration file and no backup. The service runs on
/// its defaults and writes them out (0600, backup beside it), and `upsguard config defaults`
/// prints the same complete file, which `config check` accepts. (The emulator stays on line,
/// so the default OS shutdown command is never reached.)
#[test]
fn first_start_writes_the_default_configuration() {
    let mut rig = Rig::new("first-start", 1, "");
    std::fs::remove_file(&rig.config).unwrap();
    let backup = rig.config.with_file_name("upsguard_backup.ini");
    assert!(!backup.exists());
    rig.start_service();
    let meta = std::fs::metadata(&rig.config)
        .unwrap_or_else(|e| panic!("no configuration written ({e})\n{}", rig.logs()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(backup.exists(), "no backup written");
    let written = std::fs::read_to_string(&rig.config).unwrap();
    for section in [
        "[Communication]",
        "[Shutdown]",
        "[Events]",
        "[Web]",
        "[Notifications]",
    ] {
        assert!(written.contains(section), "{section} missing:\n{written}");
    }
    let out = Command::new(bin_path("upsguard"))
        .args(["config", "defaults"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let defaults = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        defaults, written,
        "config defaults prints what a first start writes"
    );
    let check = Command::new(bin_path("upsguard"))
        .args(["config", "check"])
        .arg(&rig.config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    rig.stop_service();
}

/// A second agent on the same port is refused with a clear error.
#[test]
fn second_agent_is_refused() {
    let mut rig = Rig::new("excl", 1, &ini(""));
    rig.start_service();
    let out = Command::new(bin_path("upsguard"))
        .arg("killpower")
        .arg("--force")
        .arg("--timeout-s")
        .arg("2")
        .arg("--device")
        .arg(&rig.link)
        .arg("--data-dir")
        .arg(rig.dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("in use by another process"), "{text}");
}

/// The operator's CLI: UPS settings (only permitted values reach the EEPROM), self-test,
/// UPS sleep (`@nnn`), Shutdown Now, and a SIGHUP reload.
#[test]
fn cli_controls_reach_the_ups() {
    let (_dir_marker, marker, os_script) = fake_os_shutdown();
    let mut rig = Rig::new(
        "cli",
        1,
        &ini(&format!(
            "[Shutdown]\npolicy = low_battery\nos_shutdown_command = {}\nturn_off_ups = true\n",
            os_script.display()
        )),
    );
    rig.start_service();
    wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        rig.status_json()["transfer_high_v"].as_u64()
    })
    .expect("settings discovered");

    let (ok, text) = rig.cli(&["settings", "get"]);
    assert!(
        ok && text.contains("transfer_high") && text.contains("127 130 133 136"),
        "{text}"
    );
    let (ok, text) = rig.cli(&["settings", "set", "transfer_high", "129"]);
    assert!(
        !ok && text.contains("permitted"),
        "a value the UPS does not permit: {text}"
    );
    let (ok, text) = rig.cli(&["settings", "set", "transfer_high", "133"]);
    assert!(ok, "{text}");
    assert_eq!(rig.ctl.eeprom()["u"], "133");

    let (ok, text) = rig.cli(&["self-test"]);
    assert!(ok, "{text}");
    wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        (rig.ctl.status()["self_test"]["count"].as_u64() >= Some(1)).then_some(())
    })
    .expect("emulator ran a self-test");

    // Sleep without an OS shutdown (asked for explicitly): the UPS is told `@010` (one hour).
    let (ok, text) = rig.cli(&["sleep", "--hours", "1", "--no-graceful"]);
    assert!(ok, "{text}");
    let pending = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        let s = rig.ctl.status();
        (!s["pending_shutdown"].is_null()).then_some(s)
    })
    .unwrap_or_else(|| panic!("no pending UPS sleep\n{}", rig.logs()));
    assert_eq!(pending["pending_shutdown"]["kind"], "@", "{pending}");
    rig.ctl.ok("power-cycle");

    // SIGHUP reloads the configuration and says so.
    let pid = rig.svc.as_ref().and_then(ChildGuard::id).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    rig.wait_event("configuration_changed", Duration::from_secs(15));

    // Shutdown Now, on line: the sequence runs and the OS shutdown command runs once.
    let (ok, text) = rig.cli(&["shutdown-now"]);
    assert!(ok, "{text}");
    rig.wait_event("shutdown_started", Duration::from_secs(15));
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        std::fs::read_to_string(&marker).ok()
    })
    .unwrap_or_else(|| panic!("OS shutdown command did not run\n{}", rig.logs()));
    assert!(rig.data.join("killpower.flag").exists());
}

/// A damaged credential store is restored from its backup, and the event log says so.
#[test]
fn damaged_credential_store_is_restored_from_backup() {
    let mut rig = Rig::new(
        "creds",
        1,
        &ini("[Credentials]\nusername = admin1\npassword = Secret#123\n"),
    );
    rig.start_service();
    rig.wait_event("credentials_changed", Duration::from_secs(10));
    rig.stop_service();
    let ini_now = std::fs::read_to_string(&rig.config).unwrap();
    assert!(
        !ini_now.contains("Secret#123"),
        "password left in the INI: {ini_now}"
    );
    let enc = rig.data.join("credentials.enc");
    let mut bytes = std::fs::read(&enc).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&enc, bytes).unwrap();
    rig.start_service();
    let ev = rig.wait_event("credentials_backup_used", Duration::from_secs(10));
    assert_eq!(ev["severity"], "warning");
}

// ------------------------------------------------------------------ issue 7: safety

/// A battery self-test, ordered through upsguard or started on the UPS's front panel, is
/// not a power failure: with `policy = immediately` nothing shuts down, no On Battery event
/// (so no notification or command file), and Self-Test Started / Passed are logged instead.
#[test]
fn self_test_never_shuts_down() {
    let (_d, marker, os_script) = fake_os_shutdown();
    let mut rig = Rig::new(
        "selftest",
        1,
        &ini(&format!(
            "[Shutdown]\npolicy = immediately\nos_shutdown_command = {}\n",
            os_script.display()
        )),
    );
    rig.start_service();
    wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        rig.status_json()["self_test"].as_str().map(|_| ())
    })
    .expect("X read");
    let (ok, text) = rig.cli(&["self-test"]);
    assert!(ok, "{text}");
    rig.wait_event("self_test_started", Duration::from_secs(15));
    rig.wait_event("self_test_passed", Duration::from_secs(30));
    // The UPS's own test (front panel or schedule): G says `S`.
    rig.ctl.ok("self-test");
    wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        (rig.count("self_test_started") >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("front-panel self-test not seen\n{}", rig.logs()));
    wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        (rig.count("self_test_passed") >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("no second result\n{}", rig.logs()));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(rig.count("on_battery"), 0, "{}", rig.logs());
    assert_eq!(rig.count("shutdown_started"), 0, "{}", rig.logs());
    assert!(!marker.exists(), "the OS shutdown command ran");
    // A real outage still shuts down at once under this policy.
    rig.ctl.ok("mains off");
    rig.wait_event("on_battery", Duration::from_secs(15));
    rig.wait_event("shutdown_started", Duration::from_secs(15));
}

/// Single bytes that look like alerts (line noise) never act: not on mains with
/// `policy = immediately`, and a late `$` during an outage is not Input Power Restored.
#[test]
fn lone_alert_bytes_never_act() {
    let (_d, marker, os_script) = fake_os_shutdown();
    let mut rig = Rig::new(
        "lonealert",
        1,
        &ini(&format!(
            "[Shutdown]\npolicy = immediately\nos_shutdown_command = {}\n",
            os_script.display()
        )),
    );
    rig.start_service();
    for b in ["!", "%", "#", "?", "!", "!"] {
        rig.ctl.ok(&format!("inject {b}"));
        std::thread::sleep(Duration::from_millis(400));
    }
    std::thread::sleep(Duration::from_secs(1));
    for id in [
        "on_battery",
        "low_battery",
        "replace_battery",
        "overload",
        "shutdown_started",
    ] {
        assert_eq!(rig.count(id), 0, "{id} from a noise byte\n{}", rig.logs());
    }
    assert!(!marker.exists(), "the OS shutdown command ran");
    let st = rig.status_json();
    assert_eq!(st["status"], "OL", "{st}");
    let seen = st["refuted_alerts"].as_u64().unwrap_or(0);
    assert!(seen >= 1, "alerts were refuted by Q, not acted on: {st}");

    // During a real outage a late `$` (Q still says on battery) is not a restore.
    rig.ctl.ok("mains off");
    rig.wait_event("on_battery", Duration::from_secs(15));
    rig.ctl.ok("inject $");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rig.count("power_restored"), 0, "{}", rig.logs());
    rig.ctl.ok("mains on");
    rig.wait_event("power_restored", Duration::from_secs(15));
}

/// `upsguard sleep` shuts the OS down first unless told `--no-graceful`.
#[test]
fn sleep_is_graceful_by_default() {
    let (_d, marker, os_script) = fake_os_shutdown();
    let mut rig = Rig::new(
        "sleepgraceful",
        1,
        &ini(&format!(
            "[Shutdown]\nos_shutdown_command = {}\n",
            os_script.display()
        )),
    );
    rig.start_service();
    let (ok, text) = rig.cli(&["sleep", "--hours", "2"]);
    assert!(ok, "{text}");
    rig.wait_event("shutdown_started", Duration::from_secs(15));
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        std::fs::read_to_string(&marker).ok()
    })
    .unwrap_or_else(|| panic!("the OS was not shut down first\n{}", rig.logs()));
    let flag = std::fs::read(rig.data.join("killpower.flag")).unwrap();
    let rec: upsguard_core::records::KillpowerFlag =
        upsguard_core::records::decode(&flag).expect("a killpower record");
    assert_eq!(
        rec.mode,
        upsguard_core::records::OffMode::Sleep { tenths_of_hour: 20 },
        "{rec:?}"
    );
    assert!(rec.armed_at_unix_s > 1_700_000_000, "{rec:?}");
    // The UPS itself was not told anything yet: that is the shutdown hook's job.
    assert!(rig.ctl.status()["pending_shutdown"].is_null());
}

/// The status says when the shutdown will start, and follows what happened: after a
/// sequence whose OS shutdown did not take this machine down, "completed" until the UPS is
/// back on line, then idle again (and the killpower flag is gone).
#[test]
fn shutdown_plan_and_phase_follow_what_happened() {
    let (_d, marker, os_script) = fake_os_shutdown();
    // The stand-in OS shutdown also copies the event log as it finds it: the shutdown record
    // must already be on disk when the command runs.
    let seen = _d.join("events-at-shutdown");
    let mut rig = Rig::new(
        "phase",
        1,
        &ini(&format!(
            "[Shutdown]\npolicy = on_battery_delay\non_battery_delay_s = 3\nos_shutdown_duration_s = 10\nos_shutdown_command = {}\n",
            os_script.display()
        )),
    );
    std::fs::write(
        &os_script,
        format!(
            "#!/bin/sh\ncat {} > {}\necho ran >> {}\n",
            rig.data.join("events.jsonl").display(),
            seen.display(),
            marker.display()
        ),
    )
    .unwrap();
    rig.start_service();
    let st = rig.status_json();
    let sd = &st["shutdown"];
    assert_eq!(sd["phase"], "idle", "{st}");
    assert_eq!(sd["policy"], "on_battery_delay", "{st}");
    assert_eq!(sd["low_runtime_s"], 70, "A 0 + B 10 + margin 60: {st}");
    let plan = sd["plan"].as_str().unwrap();
    assert!(
        plan.contains("after 3 s on battery") && plan.contains("below 1 min 10 s"),
        "{plan}"
    );
    assert!(sd["starts_in_s"].is_null(), "{st}");

    rig.ctl.ok("mains off");
    rig.wait_event("on_battery", Duration::from_secs(15));
    let st = rig.status_json();
    let left = st["shutdown"]["starts_in_s"].as_u64().unwrap_or(99);
    assert!(left <= 3, "pending countdown: {st}");
    rig.wait_event("shutdown_started", Duration::from_secs(15));
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        std::fs::read_to_string(&marker).ok()
    })
    .expect("OS shutdown command ran");
    let at_shutdown = std::fs::read_to_string(&seen).unwrap();
    assert!(
        at_shutdown.contains("\"shutdown_started\""),
        "the shutdown record was not on disk when the OS shutdown ran: {at_shutdown}"
    );
    assert_eq!(rig.status_json()["shutdown"]["phase"], "os_shutdown");
    assert!(rig.data.join("killpower.flag").exists());
    // Still here B (10 s) later: the sequence is over.
    let done = wait_for(Duration::from_secs(20), Duration::from_millis(250), || {
        let st = rig.status_json();
        (st["shutdown"]["phase"] == "completed").then_some(st)
    })
    .unwrap_or_else(|| panic!("never completed\n{}", rig.logs()));
    assert_eq!(done["shutdown"]["reason"], "on_battery", "{done}");
    rig.ctl.ok("mains on");
    wait_for(Duration::from_secs(15), Duration::from_millis(200), || {
        (rig.status_json()["shutdown"]["phase"] == "idle").then_some(())
    })
    .unwrap_or_else(|| panic!("not idle after mains returned\n{}", rig.logs()));
    assert!(
        !rig.data.join("killpower.flag").exists(),
        "stale killpower flag left behind"
    );
    // The text status says it too.
    let (ok, text) = rig.cli(&["status"]);
    assert!(ok && text.contains("SHUTPLAN"), "{text}");
}

/// Readers never wait for the monitor: while it is stalled (as a reload's Argon2 would stall
/// it, here for 4 s through a test hook), `status` over the control socket answers within
/// 50 ms, and a power failure is still decided and reported on time.
#[test]
fn status_does_not_wait_for_a_blocked_monitor() {
    use std::io::{BufRead, Write};
    let (_d, _marker, os_script) = fake_os_shutdown();
    let mut rig = Rig::new(
        "stall",
        1,
        &ini(&format!(
            "[Shutdown]\npolicy = immediately\nos_shutdown_command = {}\n",
            os_script.display()
        )),
    );
    rig.start_service_with(&[("UPSGUARD_TEST_MONITOR_STALL_MS", "4000")]);
    let ask = |sock: &std::path::Path| {
        let t0 = std::time::Instant::now();
        let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(s).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        (t0.elapsed(), v)
    };
    let pid = rig.svc.as_ref().and_then(ChildGuard::id).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let (took, v) = ask(&rig.socket());
        assert_eq!(v["ok"], true, "{v}");
        worst = worst.max(took);
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("status during a stalled monitor: worst {worst:?}");
    assert!(
        worst < Duration::from_millis(50),
        "status waited: {worst:?}"
    );
    // The shutdown decision is the driver's: made while the monitor still sleeps.
    rig.ctl.ok("mains off");
    let decided = wait_for(Duration::from_secs(3), Duration::from_millis(20), || {
        let (_, v) = ask(&rig.socket());
        (v["data"]["shutdown"]["phase"] != "idle").then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "no shutdown decision while the monitor stalled\n{}",
            rig.logs()
        )
    });
    assert_ne!(decided["data"]["shutdown"]["phase"], "pending", "{decided}");
    // Once the monitor is back it logs and acts on what was decided.
    rig.wait_event("shutdown_started", Duration::from_secs(15));
}

/// What the administrator must fix is visible in the status (CLI and API share it): a
/// mistyped key, an enabled server that does not exist yet.
#[test]
fn problems_are_visible_in_the_status() {
    let mut rig = Rig::new(
        "problems",
        1,
        &ini("[Shutdown]\npolcy = immediately\n\n[SNMP]\nenabled = true\n"),
    );
    rig.start_service();
    let st = rig.status_json();
    let problems = st["problems"].as_array().cloned().unwrap_or_default();
    let has = |kind: &str, needle: &str| {
        problems
            .iter()
            .any(|p| p["kind"] == kind && p.to_string().contains(needle))
    };
    assert!(has("config", "polcy"), "{st}");
    assert!(has("not_implemented", "SNMP"), "{st}");
    let (ok, text) = rig.cli(&["status"]);
    assert!(
        ok && text.contains("PROBLEM") && text.contains("polcy"),
        "{text}"
    );
    let ev = rig.wait_event("config_value_refused", Duration::from_secs(5));
    assert!(ev.to_string().contains("polcy"), "{ev}");
}

/// A credential store that existed and was deleted is an event before a new setup token
/// is issued.
#[test]
fn deleted_credential_store_is_an_event() {
    let mut rig = Rig::new("credsgone", 1, &ini(""));
    rig.start_service();
    rig.stop_service();
    assert_eq!(rig.count("credentials_missing"), 0);
    for f in ["credentials.enc", "credentials.bak"] {
        let _ = std::fs::remove_file(rig.data.join(f));
    }
    rig.start_service();
    let ev = rig.wait_event("credentials_missing", Duration::from_secs(10));
    assert_eq!(ev["severity"], "warning", "{ev}");
}

/// A mistyped `--log` is refused before anything starts (it used to silence every line,
/// the setup token included).
#[test]
fn invalid_log_filter_is_refused() {
    let out = Command::new(bin_path("upsguard"))
        .args(["run", "--simulate", "--no-web", "--log", "verbose"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("invalid --log filter `verbose`"), "{err}");
    assert_eq!(
        err.matches("invalid --log filter").count(),
        1,
        "printed once: {err}"
    );
}

/// `run --simulate`: the web UI on loopback only, and one banner with the address, the setup
/// token and the data dir; no colour codes when stderr is not a terminal.
#[test]
fn simulate_prints_one_banner_and_binds_loopback() {
    let dir = TempDir::new("simbanner");
    let data = dir.join("data");
    let port = upsguard_tests::free_port();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(data.join("upsguard.ini"), format!("[Web]\nport = {port}\n")).unwrap();
    std::fs::set_permissions(
        data.join("upsguard.ini"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let log = dir.join("svc.log");
    let mut svc = ChildGuard::spawn(
        "upsguard",
        Command::new(bin_path("upsguard"))
            .args(["run", "--simulate", "--data-dir"])
            .arg(&data),
        &log,
    );
    let text = wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        t.contains("Reset demo").then_some(t)
    })
    .unwrap_or_else(|| panic!("no banner:\n{}", svc.log_text()));
    assert!(
        text.contains(&format!("Web UI:      https://localhost:{port}/")),
        "{text}"
    );
    assert!(text.contains("Setup token: "), "{text}");
    assert!(
        text.contains(&format!("Data dir:    {}", data.display())),
        "{text}"
    );
    assert_eq!(
        text.matches("upsguard is running against").count(),
        1,
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text}"
    );
    // Loopback only: the port answers on 127.0.0.1, and nothing listens on the wildcard.
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    let locals: Vec<&str> = listening
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|a| a.ends_with(&local))
        .collect();
    assert_eq!(
        locals,
        [format!("0100007F{local}")],
        "not on 127.0.0.1 only"
    );
    svc.stop(Duration::from_secs(5));
}

/// A data directory others can write is refused: monitoring goes on (logs in a fresh private
/// directory), and the status says so.
#[test]
fn world_writable_data_dir_is_refused() {
    let mut rig = Rig::new("hostiledata", 1, &ini(""));
    std::fs::set_permissions(&rig.data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let svc = ChildGuard::spawn(
        "upsguard",
        Command::new(bin_path("upsguard"))
            .arg("--socket")
            .arg(rig.socket())
            .arg("run")
            .arg("--config")
            .arg(&rig.config)
            .arg("--data-dir")
            .arg(&rig.data)
            .arg("--device")
            .arg(&rig.link)
            .arg("--no-web"),
        &rig.dir.join("service.log"),
    );
    rig.svc = Some(svc);
    let st = wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        let (ok, text) = rig.cli(&["status", "--json"]);
        let v: Value = serde_json::from_str(&text).ok()?;
        (ok && v["comm"] == "online").then_some(v)
    })
    .unwrap_or_else(|| panic!("not monitoring\n{}", rig.logs()));
    let problems = st["problems"].to_string();
    assert!(
        problems.contains("file_permissions") && problems.contains(&rig.data.display().to_string()),
        "{st}"
    );
    assert!(
        !rig.data.join("events.jsonl").exists(),
        "the refused data dir was written to"
    );
}

/// A runtime calibration runs on battery on purpose: with `policy = immediately` it is
/// Calibration Started / Aborted, never On Battery or a shutdown.
#[test]
fn calibration_never_shuts_down() {
    let (_d, marker, os_script) = fake_os_shutdown();
    let mut rig = Rig::new(
        "calibration",
        1,
        &ini(&format!(
            "[Shutdown]\npolicy = immediately\nos_shutdown_command = {}\n",
            os_script.display()
        )),
    );
    rig.start_service();
    let (ok, text) = rig.cli(&["calibrate"]);
    assert!(ok, "{text}");
    rig.wait_event("calibration_started", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(3));
    let (ok, text) = rig.cli(&["calibrate", "--abort"]);
    assert!(ok, "{text}");
    // Back on line with the calibration bit gone: the machine logs its end (it cannot tell
    // an abort by command from the UPS ending it, so either form is right here).
    wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        (rig.count("calibration_aborted") + rig.count("calibration_finished") > 0).then_some(())
    })
    .unwrap_or_else(|| panic!("calibration end not logged\n{}", rig.logs()));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(rig.count("on_battery"), 0, "{}", rig.logs());
    assert_eq!(rig.count("shutdown_started"), 0, "{}", rig.logs());
    assert!(!marker.exists(), "the OS shutdown command ran");
}
