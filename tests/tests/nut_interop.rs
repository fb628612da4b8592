//! Acceptance test: the real NUT 2.8.0 `apcsmart` driver + `upsd` talk to
//! `upsguard-sim` on a pty, and what NUT reports matches the emulator.
//!
//! Needs NUT installed (CI: `ci/test.sh` installs nut-server/nut-client) and
//! root (the driver and upsd are started with `-u root`). It never skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use upsguard_tests::{ChildGuard, Control, TempDir, bin_path, find_program, free_port, wait_for};

struct Nut {
    driver: PathBuf,
    upsd: PathBuf,
    upsc: PathBuf,
    upscmd: PathBuf,
    upsrw: PathBuf,
}

fn find_nut() -> Nut {
    let need = |what: &str, c: &[&str]| {
        find_program(c).unwrap_or_else(|| {
            panic!(
                "NUT 2.8.0 is required but {what} was not found (looked in {c:?}). \
                 Install it with ci/test.sh (apt-get install nut-server nut-client) and re-run."
            )
        })
    };
    Nut {
        driver: need(
            "the apcsmart driver",
            &["/lib/nut/apcsmart", "/usr/lib/nut/apcsmart"],
        ),
        // /sbin/upsd is a wrapper that exits unless /etc/nut/nut.conf enables it.
        upsd: need(
            "upsd",
            &[
                "/lib/nut/upsd",
                "/usr/lib/nut/upsd",
                "/usr/sbin/upsd",
                "/sbin/upsd",
            ],
        ),
        upsc: need("upsc", &["/usr/bin/upsc", "/bin/upsc"]),
        upscmd: need("upscmd", &["/usr/bin/upscmd", "/bin/upscmd"]),
        upsrw: need("upsrw", &["/usr/bin/upsrw", "/bin/upsrw"]),
    }
}

/// Private NUT configuration/state directories.
struct NutEnv {
    conf: PathBuf,
    state: PathBuf,
    pid: PathBuf,
}

impl NutEnv {
    fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("NUT_CONFPATH", &self.conf)
            .env("NUT_STATEPATH", &self.state)
            .env("NUT_ALTPIDPATH", &self.pid)
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Run to completion; returns (success, stdout + stderr).
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Run to completion; returns stdout only if it succeeded (upsc prints
/// "Init SSL without certificate database" on stderr).
fn run_stdout(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// All of `upsc ups@…` as (name, value) pairs, or None while upsd has no data.
fn upsc_all(nut: &Nut, target: &str) -> Option<Vec<(String, String)>> {
    let text = run_stdout(Command::new(&nut.upsc).arg(target))?;
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    (!vars.is_empty()).then_some(vars)
}

fn upsc_var(nut: &Nut, target: &str, var: &str) -> Option<String> {
    run_stdout(Command::new(&nut.upsc).arg(target).arg(var)).map(|t| t.trim().to_string())
}

fn get<'a>(vars: &'a [(String, String)], key: &str) -> &'a str {
    vars.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("upsc did not report {key}"))
}

fn num(v: &str) -> f64 {
    v.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {v:?}"))
}

fn jnum(s: &Value, key: &str) -> f64 {
    s[key]
        .as_f64()
        .unwrap_or_else(|| panic!("status has no number {key}: {s}"))
}

fn jstr<'a>(s: &'a Value, key: &str) -> &'a str {
    s[key]
        .as_str()
        .unwrap_or_else(|| panic!("status has no string {key}: {s}"))
}

#[test]
fn nut_apcsmart_and_upsd_drive_the_emulator() {
    let nut = find_nut();
    let t0 = Instant::now();
    let dir = TempDir::new("nut");
    let env = NutEnv {
        conf: dir.join("conf"),
        state: dir.join("state"),
        pid: dir.join("pid"),
    };
    for d in [&env.conf, &env.state, &env.pid] {
        std::fs::create_dir_all(d).unwrap();
    }
    let link = dir.join("ups-tty");
    let ctl_port = free_port();
    let upsd_port = free_port();

    // --- the emulator on a pty symlink, control on loopback ---------------
    let mut sim = ChildGuard::spawn(
        "upsguard-sim",
        Command::new(bin_path("upsguard-sim"))
            .arg("--link")
            .arg(&link)
            .arg("--control")
            .arg(format!("127.0.0.1:{ctl_port}"))
            .arg("--seed")
            .arg("7"),
        &dir.join("sim.log"),
    );
    let mut ctl = Control::connect(ctl_port, Duration::from_secs(10));
    assert!(link.exists(), "pty symlink {} missing", link.display());

    // --- NUT configuration: all driver defaults -----------------------------
    write(
        &env.conf.join("ups.conf"),
        &format!(
            "[ups]\n  driver = apcsmart\n  port = {}\n  desc = \"upsguard-sim\"\n",
            link.display()
        ),
    );
    write(
        &env.conf.join("upsd.conf"),
        &format!("LISTEN 127.0.0.1 {upsd_port}\n"),
    );
    write(
        &env.conf.join("upsd.users"),
        "[admin]\n  password = s3cret\n  instcmds = all\n  actions = SET\n",
    );
    write(&env.conf.join("nut.conf"), "MODE=standalone\n");

    let mut driver = ChildGuard::spawn(
        "apcsmart",
        env.apply(Command::new(&nut.driver).args(["-a", "ups", "-u", "root", "-F"])),
        &dir.join("driver.log"),
    );
    let mut upsd = ChildGuard::spawn(
        "upsd",
        env.apply(Command::new(&nut.upsd).args(["-u", "root", "-F"])),
        &dir.join("upsd.log"),
    );
    let target = format!("ups@127.0.0.1:{upsd_port}");
    let dump = |sim: &mut ChildGuard, driver: &mut ChildGuard, upsd: &mut ChildGuard| {
        format!(
            "{}\n{}\n{}",
            sim.log_text(),
            driver.log_text(),
            upsd.log_text()
        )
    };

    // --- 1. OL and identity/values match the emulator ---------------------
    let status = wait_for(Duration::from_secs(30), Duration::from_millis(250), || {
        upsc_var(&nut, &target, "ups.status").filter(|s| s == "OL")
    });
    assert!(
        status.is_some(),
        "NUT never reported OL\n{}",
        dump(&mut sim, &mut driver, &mut upsd)
    );
    let vars = upsc_all(&nut, &target).expect("upsc dump");
    println!("=== upsc {target} (on line) ===");
    for (k, v) in &vars {
        println!("{k}: {v}");
    }
    let st = ctl.status();
    println!("=== emulator status ===\n{st}");
    assert_eq!(get(&vars, "ups.status"), "OL");
    assert_eq!(get(&vars, "ups.model"), jstr(&st, "model"));
    assert_eq!(get(&vars, "ups.serial"), jstr(&st, "serial"));
    assert_eq!(get(&vars, "ups.firmware"), jstr(&st, "firmware"));
    assert!((num(get(&vars, "battery.charge")) - jnum(&st, "charge")).abs() <= 0.5);
    assert!((num(get(&vars, "battery.runtime")) - jnum(&st, "runtime_s")).abs() <= 60.0);
    // The line reading carries ±0.3 V of jitter and NUT's copy is up to one poll old.
    assert!((num(get(&vars, "input.voltage")) - jnum(&st, "input_voltage")).abs() <= 1.5);

    // --- 2. self-test via upscmd -------------------------------------------
    ctl.ok("speed 4");
    let (ok, out) = run(Command::new(&nut.upscmd).args([
        "-u",
        "admin",
        "-p",
        "s3cret",
        &target,
        "test.battery.start",
    ]));
    println!("upscmd test.battery.start: {}", out.trim());
    assert!(ok, "upscmd failed: {out}");
    let tested = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        let st = ctl.status();
        (st["self_test"]["count"].as_u64() == Some(1) && st["self_test"]["result"] == "OK")
            .then_some(st)
    });
    assert!(
        tested.is_some(),
        "emulator ran no self-test\n{}",
        dump(&mut sim, &mut driver, &mut upsd)
    );
    let result = wait_for(Duration::from_secs(10), Duration::from_millis(250), || {
        upsc_var(&nut, &target, "ups.test.result").filter(|r| r == "OK")
    });
    println!("ups.test.result after the test: {result:?}");
    ctl.ok("speed 1");

    // --- 3. upsrw changes an EEPROM enum -----------------------------------
    let before = ctl.eeprom()["u"].as_str().unwrap_or_default().to_string();
    let wanted = if before == "130" { "133" } else { "130" };
    let (ok, out) = run(Command::new(&nut.upsrw).args([
        "-s",
        &format!("input.transfer.high={wanted}"),
        "-u",
        "admin",
        "-p",
        "s3cret",
        &target,
    ]));
    println!("upsrw -s input.transfer.high={wanted}: {}", out.trim());
    assert!(ok, "upsrw failed: {out}");
    let changed = wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
        (ctl.eeprom()["u"] == wanted).then_some(())
    });
    assert!(
        changed.is_some(),
        "emulator EEPROM u stayed {before}\n{}",
        dump(&mut sim, &mut driver, &mut upsd)
    );
    let nut_view = wait_for(Duration::from_secs(10), Duration::from_millis(250), || {
        upsc_var(&nut, &target, "input.transfer.high").filter(|v| v == wanted)
    });
    println!("emulator eeprom: {}", ctl.ok("eeprom"));
    println!("upsc input.transfer.high: {nut_view:?}");

    // --- 4. mains off -> OB within 5 s ------------------------------------
    ctl.ok("mains off");
    let t_off = Instant::now();
    let ob = wait_for(Duration::from_secs(5), Duration::from_millis(100), || {
        upsc_var(&nut, &target, "ups.status").filter(|s| s.starts_with("OB"))
    });
    assert!(
        ob.is_some(),
        "NUT did not report OB within 5 s\n{}",
        dump(&mut sim, &mut driver, &mut upsd)
    );
    println!(
        "upsc ups.status after mains off ({:.1} s): {}",
        t_off.elapsed().as_secs_f64(),
        ob.unwrap_or_default()
    );

    // --- 5. drain fast until LB, then slow down so NUT sees OB LB ----------
    ctl.ok("load 100");
    ctl.ok("speed 100");
    let lb = wait_for(Duration::from_secs(30), Duration::from_millis(20), || {
        let st = ctl.status();
        st["status_flags"]
            .as_str()
            .is_some_and(|f| f.contains("LB"))
            .then_some(st)
    });
    ctl.ok("speed 1");
    let lb = lb.unwrap_or_else(|| {
        panic!(
            "emulator never reached LB\n{}",
            dump(&mut sim, &mut driver, &mut upsd)
        )
    });
    println!(
        "emulator at LB: charge {} %, runtime {} s",
        lb["charge"], lb["runtime_exact_s"]
    );
    let oblb = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        upsc_var(&nut, &target, "ups.status").filter(|s| s == "OB LB")
    });
    assert!(
        oblb.is_some(),
        "NUT did not report OB LB\n{}",
        dump(&mut sim, &mut driver, &mut upsd)
    );
    let vars = upsc_all(&nut, &target).expect("upsc dump");
    println!("=== upsc {target} (on battery, low) ===");
    for (k, v) in vars.iter().filter(|(k, _)| {
        k.starts_with("battery.") || k.starts_with("input.") || k == "ups.status" || k == "ups.load"
    }) {
        println!("{k}: {v}");
    }

    // --- 6. shutdown path: stop the driver, run `apcsmart -k` ---------------
    // A lighter load keeps the battery alive through the grace delay.
    ctl.ok("load 20");
    // p = 20 s simulated; at speed 10 the output goes off ~2 s after `S`.
    ctl.ok("speed 10");
    let driver_log = driver.stop(Duration::from_secs(5));
    let (ok, out) =
        run(env.apply(Command::new(&nut.driver).args(["-a", "ups", "-u", "root", "-k"])));
    println!("apcsmart -k (exit ok: {ok}):\n{}", out.trim());
    assert!(ok, "apcsmart -k failed: {out}\n{driver_log}");
    let pending = ctl.status();
    println!(
        "emulator after -k: pending {} reg3 {}",
        pending["pending_shutdown"], pending["reg3"]
    );
    let off = ctl.wait_output(false, Duration::from_secs(10));
    let off = off.unwrap_or_else(|| panic!("output never went off after -k\n{}", sim.log_text()));
    println!(
        "emulator output off: status {} off_state {} reg3 {} (after {:.1} s total)",
        off["status"],
        off["off_state"],
        off["reg3"],
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(off["status"], "00");
    assert_eq!(off["off_state"], "await_mains");
    // Mains back: an S-shutdown returns (r = 0 s, e = 0 %).
    ctl.ok("mains on");
    let back = ctl.wait_output(true, Duration::from_secs(10));
    assert!(
        back.is_some(),
        "output did not return with mains\n{}",
        sim.log_text()
    );
    println!(
        "emulator output back on with mains; total {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let _ = upsd.stop(Duration::from_secs(3));
    println!("{}", sim.stop(Duration::from_secs(3)));
}
