//! Acceptance test: the real apcupsd 3.14.14 (`UPSTYPE apcsmart`, `UPSCABLE
//! smart`) monitors `upsguard-sim` on a pty, and what it reports through its
//! network information server (`apcaccess`) matches the emulator: identity,
//! charge, runtime, line voltage and EEPROM settings; ONLINE → ONBATT →
//! ONLINE with the matching `apccontrol` events; a low battery leads to
//! `doshutdown`; and `apcupsd --killpower` makes the emulator turn its output
//! off (and back on when mains returns).
//!
//! Safety: apcupsd never halts a machine itself. It only runs
//! `$SCRIPTDIR/apccontrol <event> <upsname> <connected> <powered>`, and
//! SCRIPTDIR here is a temp dir whose `apccontrol` only appends its arguments to
//! a marker file. Every other path apcupsd writes (pid, lock, events, status,
//! powerfail and nologin files) is inside the same temp dir.
//!
//! Needs Debian's apcupsd package unpacked (CI: `ci/test.sh` does it; it conflicts with NUT,
//! so it is not installed) and root (apcupsd refuses to run otherwise). It never skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use upsguard_tests::{ChildGuard, Control, TempDir, bin_path, find_program, free_port, wait_for};

const UPSNAME: &str = "emu";

fn need(what: &str, candidates: &[&str]) -> PathBuf {
    find_program(candidates).unwrap_or_else(|| {
        panic!(
            "apcupsd 3.14.14 is required but {what} was not found (looked in {candidates:?}). \
             Run ci/test.sh, which unpacks Debian's apcupsd package into $UPSGUARD_APCUPSD_ROOT \
             (default /opt/upsguard-peers/apcupsd), and re-run."
        )
    })
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `apcaccess -h HOST:PORT status` as key → value, or None while the NIS
/// server is not answering.
fn apcaccess(apcaccess: &Path, nis: &str) -> Option<HashMap<String, String>> {
    let out = Command::new(apcaccess)
        .args(["-h", nis, "status"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", apcaccess.display()));
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let vars: HashMap<String, String> = text
        .lines()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    vars.contains_key("STATUS").then_some(vars)
}

fn get<'a>(vars: &'a HashMap<String, String>, key: &str) -> &'a str {
    vars.get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("apcaccess did not report {key}: {vars:?}"))
}

/// The leading number of an apcaccess value such as "118.2 Volts".
fn num(vars: &HashMap<String, String>, key: &str) -> f64 {
    let v = get(vars, key);
    v.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key} is not a number: {v:?}"))
}

fn jnum(s: &Value, key: &str) -> f64 {
    s[key]
        .as_f64()
        .unwrap_or_else(|| panic!("emulator status has no number {key}: {s}"))
}

fn jstr<'a>(s: &'a Value, key: &str) -> &'a str {
    s[key]
        .as_str()
        .unwrap_or_else(|| panic!("emulator status has no string {key}: {s}"))
}

/// Each `apccontrol` call recorded so far, as its argument list.
fn events(marker: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(marker)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn has_event(marker: &Path, name: &str) -> bool {
    events(marker)
        .iter()
        .any(|e| e.first().map(String::as_str) == Some(name))
}

/// Refuse to start apcupsd unless its event hook is `$SCRIPTDIR/apccontrol`
/// (so the stand-in script below is all it can run).
fn check_hook_name(apcupsd: &Path) {
    let bin = std::fs::read(apcupsd).unwrap_or_else(|e| panic!("{}: {e}", apcupsd.display()));
    let has = |needle: &[u8]| bin.windows(needle.len()).any(|w| w == needle);
    assert!(
        has(b"/apccontrol") && has(b"SCRIPTDIR"),
        "{} does not look like apcupsd 3.14 (no SCRIPTDIR/apccontrol hook); refusing to run it",
        apcupsd.display()
    );
}

#[test]
fn apcupsd_monitors_and_shuts_down_the_emulator() {
    // ci/test.sh unpacks Debian's apcupsd package there (it cannot be installed beside NUT).
    let root = std::env::var("UPSGUARD_APCUPSD_ROOT")
        .unwrap_or_else(|_| "/opt/upsguard-peers/apcupsd".to_string());
    let in_root = |name: &str| format!("{root}/sbin/{name}");
    let apcupsd = need(
        "apcupsd",
        &[&in_root("apcupsd"), "/sbin/apcupsd", "/usr/sbin/apcupsd"],
    );
    let apcaccess_bin = need(
        "apcaccess",
        &[
            &in_root("apcaccess"),
            "/sbin/apcaccess",
            "/usr/sbin/apcaccess",
        ],
    );
    assert!(
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0),
        "apcupsd needs root (\"Needs super user privileges to run\"); run this test as root (CI does)"
    );
    check_hook_name(&apcupsd);
    let t0 = Instant::now();

    let dir = TempDir::new("apcupsd");
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let marker = dir.join("apccontrol.calls");
    let link = dir.join("ups-tty");
    let conf = dir.join("apcupsd.conf");
    let powerfail = dir.join("powerfail");
    let ctl_port = free_port();
    let nis_port = free_port();
    let nis = format!("127.0.0.1:{nis_port}");

    // --- the stand-in event hook: record the call, never act on it ----------
    let hook = scripts.join("apccontrol");
    write(
        &hook,
        &format!(
            "#!/bin/sh\n# upsguard test stand-in: record the event, do nothing else.\n\
             printf '%s\\n' \"$*\" >> '{}'\nexit 0\n",
            marker.display()
        ),
    );
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

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
    let linked = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        link.exists().then_some(())
    });
    assert!(linked.is_some(), "pty symlink {} missing", link.display());

    // --- apcupsd configuration: everything inside the temp dir -------------
    let d = dir.path().display();
    write(
        &conf,
        &format!(
            "## apcupsd.conf v1.1 ##\n\
             UPSNAME {UPSNAME}\n\
             UPSCABLE smart\n\
             UPSTYPE apcsmart\n\
             DEVICE {link}\n\
             POLLTIME 2\n\
             LOCKFILE {d}\n\
             SCRIPTDIR {scripts}\n\
             PWRFAILDIR {d}\n\
             NOLOGINDIR {d}\n\
             ONBATTERYDELAY 1\n\
             BATTERYLEVEL 5\n\
             MINUTES 3\n\
             TIMEOUT 0\n\
             ANNOY 300\n\
             ANNOYDELAY 60\n\
             NOLOGON disable\n\
             KILLDELAY 0\n\
             NETSERVER on\n\
             NISIP 127.0.0.1\n\
             NISPORT {nis_port}\n\
             EVENTSFILE {d}/apcupsd.events\n\
             EVENTSFILEMAX 10\n\
             UPSCLASS standalone\n\
             UPSMODE disable\n\
             STATTIME 0\n\
             STATFILE {d}/apcupsd.status\n\
             LOGSTATS off\n\
             DATATIME 0\n",
            link = link.display(),
            scripts = scripts.display(),
        ),
    );
    // `-b`: stay in the foreground (under the guard). `--killpower` never
    // forks and refuses `-b` ("too many arguments").
    let apcupsd_cmd = |pid: &str, mode: &str| {
        let mut c = Command::new(&apcupsd);
        c.arg(mode)
            .arg("-f")
            .arg(&conf)
            .arg("-P")
            .arg(dir.join(pid));
        c
    };
    let mut daemon = ChildGuard::spawn(
        "apcupsd",
        &mut apcupsd_cmd("apcupsd.pid", "-b"),
        &dir.join("apcupsd.log"),
    );
    let events_file = dir.join("apcupsd.events");
    let dump = |sim: &ChildGuard, daemon: &ChildGuard| {
        format!(
            "{}\n{}\n----- apcupsd events -----\n{}\n----- apccontrol calls -----\n{}",
            sim.log_text(),
            daemon.log_text(),
            std::fs::read_to_string(&events_file).unwrap_or_default(),
            std::fs::read_to_string(&marker).unwrap_or_default()
        )
    };

    // --- 1. ONLINE, identity and values match the emulator ----------------
    let online = wait_for(Duration::from_secs(60), Duration::from_millis(250), || {
        apcaccess(&apcaccess_bin, &nis).filter(|v| get(v, "STATUS") == "ONLINE")
    });
    let vars = online.unwrap_or_else(|| {
        panic!(
            "apcupsd never reported STATUS ONLINE (last: {:?})\n{}",
            apcaccess(&apcaccess_bin, &nis),
            dump(&sim, &daemon)
        )
    });
    let st = ctl.status();
    let ee = ctl.eeprom();
    println!(
        "=== apcaccess -h {nis} status (on line, {:.1} s after start) ===",
        t0.elapsed().as_secs_f64()
    );
    let mut keys: Vec<_> = vars.iter().collect();
    keys.sort();
    for (k, v) in keys {
        println!("{k:<9}: {v}");
    }
    println!("=== emulator status ===\n{st}\n=== emulator eeprom ===\n{ee}");
    assert_eq!(get(&vars, "UPSNAME"), UPSNAME);
    assert_eq!(get(&vars, "MODEL"), jstr(&st, "model"));
    assert_eq!(get(&vars, "SERIALNO"), jstr(&st, "serial"));
    assert_eq!(get(&vars, "FIRMWARE"), jstr(&st, "firmware"));
    // On mains at 100 % the charge is steady.
    assert!(
        (num(&vars, "BCHARGE") - jnum(&st, "charge")).abs() <= 0.5,
        "BCHARGE {} vs emulator charge {}",
        get(&vars, "BCHARGE"),
        st["charge"]
    );
    // `j` is whole minutes; apcupsd's copy may be one poll older.
    assert!(
        (num(&vars, "TIMELEFT") - jnum(&st, "runtime_min")).abs() <= 1.0,
        "TIMELEFT {} vs emulator runtime_min {}",
        get(&vars, "TIMELEFT"),
        st["runtime_min"]
    );
    // The line reading carries ±0.3 V of jitter and apcupsd's copy is up to one poll old.
    assert!(
        (num(&vars, "LINEV") - jnum(&st, "input_voltage")).abs() <= 1.5,
        "LINEV {} vs emulator input_voltage {}",
        get(&vars, "LINEV"),
        st["input_voltage"]
    );
    assert!(
        (num(&vars, "LOADPCT") - jnum(&st, "load")).abs() <= 1.0,
        "LOADPCT {} vs emulator load {}",
        get(&vars, "LOADPCT"),
        st["load"]
    );
    // EEPROM values read once at start-up.
    let ee_num = |k: &str| -> f64 {
        ee[k]
            .as_str()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("emulator eeprom has no number {k}: {ee}"))
    };
    assert_eq!(num(&vars, "DSHUTD"), ee_num("p"), "DSHUTD vs EEPROM p");
    assert_eq!(num(&vars, "LOTRANS"), ee_num("l"), "LOTRANS vs EEPROM l");
    assert_eq!(num(&vars, "HITRANS"), ee_num("u"), "HITRANS vs EEPROM u");
    assert_eq!(num(&vars, "DLOWBATT"), ee_num("q"), "DLOWBATT vs EEPROM q");
    for ev in ["powerout", "onbattery", "doshutdown"] {
        assert!(
            !has_event(&marker, ev),
            "apccontrol got {ev} while on line: {:?}",
            events(&marker)
        );
    }

    // --- 2. mains off -> ONBATT, apccontrol powerout + onbattery -----------
    ctl.ok("mains off");
    let t_off = Instant::now();
    let onbatt = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        apcaccess(&apcaccess_bin, &nis).filter(|v| get(v, "STATUS").contains("ONBATT"))
    });
    assert!(
        onbatt.is_some(),
        "apcupsd did not report ONBATT\n{}",
        dump(&sim, &daemon)
    );
    println!(
        "apcaccess STATUS after mains off ({:.1} s): {}",
        t_off.elapsed().as_secs_f64(),
        get(onbatt.as_ref().unwrap(), "STATUS")
    );
    let called = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        (has_event(&marker, "powerout") && has_event(&marker, "onbattery")).then_some(())
    });
    assert!(
        called.is_some(),
        "apccontrol did not get powerout + onbattery\n{}",
        dump(&sim, &daemon)
    );
    for e in events(&marker) {
        assert_eq!(
            e.get(1).map(String::as_str),
            Some(UPSNAME),
            "apccontrol arguments {e:?} (want <event> <upsname> <connected> <powered>)"
        );
        assert_eq!(e.len(), 4, "apccontrol arguments {e:?}");
    }
    println!(
        "apccontrol calls after mains off ({:.1} s): {:?}",
        t_off.elapsed().as_secs_f64(),
        events(&marker)
    );

    // --- 3. mains on -> ONLINE, apccontrol offbattery + mainsback ----------
    ctl.ok("mains on");
    let t_on = Instant::now();
    let online = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        apcaccess(&apcaccess_bin, &nis).filter(|v| get(v, "STATUS") == "ONLINE")
    });
    assert!(
        online.is_some(),
        "apcupsd did not report ONLINE after mains on\n{}",
        dump(&sim, &daemon)
    );
    let called = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        (has_event(&marker, "offbattery") && has_event(&marker, "mainsback")).then_some(())
    });
    assert!(
        called.is_some(),
        "apccontrol did not get offbattery + mainsback\n{}",
        dump(&sim, &daemon)
    );
    let vars = online.unwrap();
    println!(
        "apcaccess after mains on ({:.1} s): STATUS {} LASTXFER {:?} NUMXFERS {:?}",
        t_on.elapsed().as_secs_f64(),
        get(&vars, "STATUS"),
        vars.get("LASTXFER"),
        vars.get("NUMXFERS")
    );
    println!("apccontrol calls: {:?}", events(&marker));
    assert!(
        !has_event(&marker, "doshutdown"),
        "doshutdown on a short outage\n{}",
        dump(&sim, &daemon)
    );

    // --- 4. outage until the battery is low -> doshutdown ------------------
    ctl.ok("mains off");
    ctl.ok("load 100");
    ctl.ok("speed 50");
    // Drain fast until the emulator itself is below apcupsd's MINUTES (3) and
    // at its own low-battery level (q = 2 min), then run in real time so
    // apcupsd's 1 s on-battery polls see it with about 2 minutes to spare.
    let low = wait_for(Duration::from_secs(60), Duration::from_millis(20), || {
        let st = ctl.status();
        st["status_flags"]
            .as_str()
            .is_some_and(|f| f.contains("LB"))
            .then_some(st)
    });
    ctl.ok("speed 1");
    let low = low.unwrap_or_else(|| panic!("emulator never reached LB\n{}", dump(&sim, &daemon)));
    println!(
        "emulator at LB: charge {} %, runtime {} s",
        low["charge"], low["runtime_exact_s"]
    );
    let t_low = Instant::now();
    // apcupsd starts each apccontrol call in its own process, so the reason
    // (runlimit: TIMELEFT < MINUTES; failing: LB) and doshutdown may be
    // recorded in either order.
    let reason = |m: &Path| {
        ["runlimit", "failing", "loadlimit"]
            .into_iter()
            .find(|r| has_event(m, r))
    };
    let shut = wait_for(Duration::from_secs(45), Duration::from_millis(100), || {
        has_event(&marker, "doshutdown")
            .then(|| reason(&marker))
            .flatten()
    });
    let why = shut.unwrap_or_else(|| {
        panic!(
            "apccontrol never got doshutdown with a runlimit/failing/loadlimit reason\n{}",
            dump(&sim, &daemon)
        )
    });
    println!(
        "apccontrol calls after the low battery ({:.1} s; reason {why}): {:?}",
        t_low.elapsed().as_secs_f64(),
        events(&marker)
    );
    let flagged = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        powerfail.exists().then_some(())
    });
    assert!(
        flagged.is_some(),
        "apcupsd did not create {}\n{}",
        powerfail.display(),
        dump(&sim, &daemon)
    );
    if let Some(v) = apcaccess(&apcaccess_bin, &nis) {
        println!(
            "apcaccess after doshutdown: STATUS {} BCHARGE {} TIMELEFT {}",
            get(&v, "STATUS"),
            get(&v, "BCHARGE"),
            get(&v, "TIMELEFT")
        );
    }

    // --- 5. the end of an OS shutdown: stop the daemon, `apcupsd --killpower`
    // A lighter load keeps the battery alive through the grace delay.
    ctl.ok("load 20");
    let daemon_log = daemon.stop(Duration::from_secs(10));
    assert!(
        powerfail.exists(),
        "the powerfail flag file went away when apcupsd stopped\n{daemon_log}"
    );
    // p = 20 s simulated; at speed 10 the output goes off ~2 s after `S`.
    ctl.ok("speed 10");
    let t_kill = Instant::now();
    let mut kill = ChildGuard::spawn(
        "apcupsd --killpower",
        &mut apcupsd_cmd("killpower.pid", "--killpower"),
        &dir.join("killpower.log"),
    );
    // S, 5 s wait, then (only if that failed) the slower @000 and K…K tries.
    let exit = wait_for(Duration::from_secs(90), Duration::from_millis(100), || {
        kill.exited()
    });
    let kill_log = kill.stop(Duration::from_secs(2));
    println!(
        "apcupsd --killpower exited {exit:?} after {:.1} s\n{kill_log}",
        t_kill.elapsed().as_secs_f64()
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "apcupsd --killpower failed or hung\n{}\n{daemon_log}",
        sim.log_text()
    );
    let off = ctl.wait_output(false, Duration::from_secs(30));
    let off = off.unwrap_or_else(|| {
        panic!(
            "emulator output never went off after --killpower\n{}",
            sim.log_text()
        )
    });
    println!(
        "emulator output off: status {} off_reason {} off_state {} reg3 {} ({:.1} s after --killpower)",
        off["status"],
        off["off_reason"],
        off["off_state"],
        off["reg3"],
        t_kill.elapsed().as_secs_f64()
    );
    // apcupsd tries `S` first (soft shutdown, back when mains returns).
    assert_eq!(off["off_reason"], "S");
    assert_eq!(off["off_state"], "await_mains");
    ctl.ok("mains on");
    let back = ctl.wait_output(true, Duration::from_secs(30));
    assert!(
        back.is_some(),
        "output did not return with mains\n{}",
        sim.log_text()
    );
    println!(
        "emulator output back on with mains; total {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    println!(
        "----- apcupsd events file -----\n{}",
        std::fs::read_to_string(&events_file).unwrap_or_default()
    );
    println!("{}", sim.stop(Duration::from_secs(3)));
}
