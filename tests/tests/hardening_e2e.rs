//! A full disk under the event log (issue 7), with the real `upsguard` and `upsguard-sim`
//! binaries and a real ENOSPC (a 512 KiB tmpfs over the data dir; needs root, as CI runs).
//! The other hardening cases live in `service_e2e.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use upsguard_tests::{ChildGuard, Control, ServiceDir, bin_path, wait_for};

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// The emulator, and the service on its pty with the files of a [`ServiceDir`].
struct Rig {
    sd: ServiceDir,
    ctl: Control,
    _sim: ChildGuard,
    svc: Option<ChildGuard>,
}

impl Rig {
    fn new(tag: &str, ini: &str) -> Rig {
        let sd = ServiceDir::new(tag, ini);
        let (sim, ctl) = sd.start_emulator(1);
        Rig {
            sd,
            ctl,
            _sim: sim,
            svc: None,
        }
    }

    fn socket(&self) -> PathBuf {
        self.sd.dir.join("upsguard.sock")
    }

    /// Starts the service; `web` false adds `--no-web`. Waits for its control socket.
    fn start(&mut self, web: bool) {
        let mut cmd = Command::new(bin_path("upsguard"));
        cmd.arg("--socket")
            .arg(self.socket())
            .arg("run")
            .arg("--config")
            .arg(&self.sd.config)
            .arg("--data-dir")
            .arg(&self.sd.data)
            .arg("--device")
            .arg(&self.sd.link);
        if !web {
            cmd.arg("--no-web");
        }
        self.svc = Some(ChildGuard::spawn(
            "upsguard",
            &mut cmd,
            &self.sd.dir.join("service.log"),
        ));
        let up = wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
            self.status_json()
                .filter(|s| s["comm"] == "online")
                .map(|_| ())
        });
        if up.is_none() {
            panic!("service did not come up\n{}", self.log());
        }
    }

    fn stop(&mut self) {
        if let Some(mut s) = self.svc.take() {
            s.stop(Duration::from_secs(5));
        }
    }

    fn log(&self) -> String {
        self.svc
            .as_ref()
            .map(ChildGuard::log_text)
            .unwrap_or_default()
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin_path("upsguard"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .unwrap()
    }

    fn status_json(&self) -> Option<Value> {
        let out = self.cli(&["status", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Events through the CLI's CSV (works wherever the service keeps its log): the id
    /// column, and the whole line for looking at the message.
    fn events(&self) -> Vec<Value> {
        let out = self.cli(&["events", "--csv", "--limit", "1000"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(|l| {
                let mut cols = l.splitn(3, ',');
                let _ts = cols.next();
                serde_json::json!({ "id": cols.next().unwrap_or(""), "line": l })
            })
            .collect()
    }

    fn wait_event(&self, id: &str) -> Value {
        wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            self.events().into_iter().find(|e| e["id"] == id)
        })
        .unwrap_or_else(|| panic!("no {id} event\n{}", self.log()))
    }

    /// The records of `events.jsonl` that parse (a torn one may sit at the end while the
    /// disk is full).
    fn file_events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.sd.data.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Every line of `events.jsonl`, which must all be whole records.
    fn strict_file_events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.sd.data.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
            .collect()
    }

    fn problems(&self) -> Vec<Value> {
        self.status_json()
            .and_then(|s| s["problems"].as_array().cloned())
            .unwrap_or_default()
    }
}

const SAFE: &str = "[Shutdown]\nos_shutdown_command = /bin/true\n";

/// A tmpfs that is unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size_kib: u32) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_kib}k,mode=0700"))
            .arg("tmpfs")
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    for chunk in [65536usize, 4096, 512, 1] {
        let buf = vec![b'x'; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    p
}

#[test]
fn a_full_disk_loses_no_event_after_space_returns() {
    let mut rig = Rig::new("enospc", SAFE);
    // Unmounted lazily on drop, so a failing assertion cannot leave it behind.
    let Some(_mnt) = Tmpfs::mount(&rig.sd.data, 512) else {
        panic!("cannot mount a tmpfs here: this test needs root (ci/test.sh runs as root)");
    };
    let cmdfiles = rig.sd.data.join("cmdfiles");
    std::fs::create_dir(&cmdfiles).unwrap();
    chmod(&cmdfiles, 0o700);
    rig.start(false);
    rig.wait_event("comm_established");

    let filler = fill(&rig.sd.data);
    // Events until one fails (the first may still fit in the file's last page).
    let mut mains_on = true;
    let failing = wait_for(Duration::from_secs(90), Duration::from_millis(500), || {
        mains_on = !mains_on;
        rig.ctl.ok(if mains_on { "mains on" } else { "mains off" });
        std::thread::sleep(Duration::from_millis(500));
        rig.problems()
            .into_iter()
            .find(|p| p["kind"] == "event_log")
    })
    .unwrap_or_else(|| panic!("no event_log problem while the disk is full\n{}", rig.log()));
    assert_eq!(failing["key"], "events.jsonl");
    assert!(
        failing["message"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{failing}"
    );
    let st = String::from_utf8_lossy(&rig.cli(&["status"]).stdout).to_string();
    assert!(
        st.contains("PROBLEM  : event_log events.jsonl: cannot write the event log since"),
        "{st}"
    );

    std::fs::remove_file(&filler).unwrap();
    mains_on = !mains_on;
    rig.ctl.ok(if mains_on { "mains on" } else { "mains off" });
    let after = if mains_on {
        "power_restored"
    } else {
        "on_battery"
    };
    wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        rig.file_events()
            .iter()
            .any(|e| e["id"] == "event_log_recovered")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no event_log_recovered\n{}", rig.log()));
    // Every line is a whole record again: the torn one was cut off, nothing glued to it.
    let evs = rig.strict_file_events();
    let at = evs
        .iter()
        .position(|e| e["id"] == "event_log_recovered")
        .unwrap();
    assert_eq!(evs[at - 1]["id"], "event_log_failed", "{evs:?}");
    let lost = evs[at]["fields"]["lost"].as_u64().unwrap();
    assert!(lost >= 1, "{:?}", evs[at]);
    assert!(
        evs[at]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{lost} event")),
        "{:?}",
        evs[at]
    );
    // The record that got through first follows them (a toggle from the full-disk phase may
    // land just after the space came back), and the one triggered now is there too.
    let next = evs.get(at + 1).map(|e| e["id"].clone()).unwrap_or_default();
    assert!(next == "on_battery" || next == "power_restored", "{evs:?}");
    let later = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        rig.file_events()
            .iter()
            .skip(at + 1)
            .any(|e| e["id"] == after)
            .then_some(())
    });
    assert!(later.is_some(), "{after} lost\n{}", rig.log());
    // And the CLI sees it too.
    let shown = String::from_utf8_lossy(&rig.cli(&["events", "--limit", "5"]).stdout).to_string();
    assert!(shown.contains(&format!(" {after} ")), "{shown}");
    assert!(
        rig.problems().iter().all(|p| p["kind"] != "event_log"),
        "{:?}",
        rig.problems()
    );
    if !mains_on {
        rig.ctl.ok("mains on");
    }
    rig.stop();
}
