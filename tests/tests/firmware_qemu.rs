//! The appliance firmware (firmware/) on an emulated Cortex-M4: QEMU's `mps2-an386` boots the
//! real ELF, its UART0 is the cable to `upsguard-sim` (over TCP), and a power failure must
//! end with the firmware switching its load off and turning the UPS off itself.
//!
//! Needs `qemu-system-arm` and the firmware ELF built by `ci/firmware.sh`
//! (`UPSGUARD_FIRMWARE_ELF`, default `target/firmware/upsguard-fw.elf`); ci/test.sh provides
//! both. It never skips: either missing is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use upsguard_tests::{ChildGuard, Control, TempDir, bin_path, free_port, wait_for};

/// Where the firmware keeps its config record (`CONFIG` in firmware/memory.x).
const CONFIG_PAGE: u32 = 0x0003_F000;
/// The FPGA IO LED register: bit 0 = the load is powered, bit 1 = shutting down.
const LEDS: u32 = 0x4002_8000;

fn qemu() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-arm"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "qemu-system-arm is required but not on PATH. Install it with ci/test.sh \
                 (apt-get install qemu-system-arm) and re-run."
            )
        })
}

fn firmware_elf() -> PathBuf {
    let elf = std::env::var_os("UPSGUARD_FIRMWARE_ELF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/firmware/upsguard-fw.elf")
        });
    assert!(
        elf.exists(),
        "the firmware ELF {} does not exist: build it with ci/firmware.sh (or set \
         UPSGUARD_FIRMWARE_ELF) and re-run",
        elf.display()
    );
    elf
}

/// An `ApplianceConfig` record as the firmware's flash page holds it: magic `UGAC`, version
/// 1, then postcard (every field a varint, the enum by its index).
fn config_record(os_shutdown_s: u8, safety_margin_s: u16, poll_ms: u16) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u32) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut rec = b"UGAC\x01".to_vec();
    varint(&mut rec, os_shutdown_s.into());
    varint(&mut rec, safety_margin_s.into());
    varint(&mut rec, 0); // on_battery_delay_s: shut down at low battery / runtime only
    varint(&mut rec, 0); // off_mode: ShutdownReturn
    varint(&mut rec, poll_ms.into());
    rec
}

/// QEMU running the firmware, with its human monitor on a unix socket (to read the board's
/// memory and registers).
struct Board {
    qemu: ChildGuard,
    monitor: PathBuf,
    started: Instant,
}

impl Board {
    fn boot(dir: &TempDir, serial: &str, extra: &[String]) -> Board {
        let monitor = dir.join("monitor.sock");
        let started = Instant::now();
        let qemu = ChildGuard::spawn(
            "qemu-system-arm",
            Command::new(qemu())
                .args(["-M", "mps2-an386", "-nographic"])
                .arg("-monitor")
                .arg(format!("unix:{},server,nowait", monitor.display()))
                .args(["-semihosting-config", "enable=on,target=native"])
                .arg("-kernel")
                .arg(firmware_elf())
                .args(["-serial", serial])
                .args(extra),
            &dir.join("qemu.log"),
        );
        Board {
            qemu,
            monitor,
            started,
        }
    }

    fn log(&self) -> String {
        self.qemu.log_text()
    }

    /// Waits for a semihosting line containing `text`; returns when it was seen.
    fn wait_line(&mut self, text: &str, timeout: Duration, ctx: &str) -> Duration {
        let seen = wait_for(timeout, Duration::from_millis(50), || {
            self.log().contains(text).then(Instant::now)
        });
        match seen {
            Some(t) => t - self.started,
            None => {
                let exited = self.qemu.exited();
                panic!(
                    "QEMU did not print {text:?} within {timeout:?} (exited: {exited:?})\n\
                     --- qemu log ---\n{}\n{ctx}",
                    self.log()
                )
            }
        }
    }

    /// Runs one monitor command and returns its output.
    fn monitor(&self, cmd: &str) -> String {
        let mut s = wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
            UnixStream::connect(&self.monitor).ok()
        })
        .unwrap_or_else(|| panic!("QEMU monitor {} did not open", self.monitor.display()));
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let read_prompt = |s: &mut UnixStream| {
            let mut out = Vec::new();
            let end = Instant::now() + Duration::from_secs(5);
            let mut buf = [0u8; 4096];
            while Instant::now() < end && !out.ends_with(b"(qemu) ") {
                if let Ok(n) = s.read(&mut buf) {
                    out.extend_from_slice(&buf[..n]);
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        };
        read_prompt(&mut s);
        s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
        read_prompt(&mut s)
    }

    /// `n` bytes of guest physical memory (or device registers) at `addr`.
    fn read_bytes(&self, addr: u32, n: usize) -> Vec<u8> {
        self.read(&format!("xp /{n}bx {addr:#x}"))
    }

    fn read_word(&self, addr: u32) -> u32 {
        let w = self.read(&format!("xp /1wx {addr:#x}"));
        assert_eq!(w.len(), 1, "xp {addr:#x}");
        w[0]
    }

    /// Values of `xp` output lines (`0000000040028000: 0x00000001 …`).
    fn read<T: TryFrom<u64>>(&self, cmd: &str) -> Vec<T> {
        let out = self.monitor(cmd);
        let mut vals = Vec::new();
        for line in out.split(['\r', '\n']) {
            let Some((addr, rest)) = line.split_once(": ") else {
                continue;
            };
            if addr.len() != 16 || !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            for tok in rest.split_whitespace() {
                let v = u64::from_str_radix(tok.trim_start_matches("0x"), 16)
                    .unwrap_or_else(|e| panic!("monitor output {line:?}: {e}"));
                vals.push(T::try_from(v).ok().expect("value fits"));
            }
        }
        vals
    }
}

#[test]
fn firmware_on_cortex_m4_shuts_its_load_down_and_turns_the_ups_off() {
    let dir = TempDir::new("fw-qemu");
    let cable = free_port();
    let control = free_port();
    // 100 % load drains the emulated battery 20x faster than real time: the runtime falls
    // from ~8 min to the firmware's Low Runtime threshold (3 s + 240 s) in about 13 s.
    let mut sim = ChildGuard::spawn(
        "upsguard-sim",
        Command::new(bin_path("upsguard-sim"))
            .arg("--tcp")
            .arg(format!("127.0.0.1:{cable}"))
            .arg("--control")
            .arg(format!("127.0.0.1:{control}"))
            .args(["--speed", "20", "--load", "100"]),
        &dir.join("sim.log"),
    );
    // The control port opens after the cable's listener is bound.
    let mut ctl = Control::connect(control, Duration::from_secs(10));

    let cfg = dir.join("config-page.bin");
    std::fs::write(&cfg, config_record(3, 240, 500)).unwrap();
    let mut fw = Board::boot(
        &dir,
        &format!("tcp:127.0.0.1:{cable}"),
        &[
            "-device".into(),
            format!("loader,file={},addr={CONFIG_PAGE:#x}", cfg.display()),
        ],
    );
    let ctx = |sim: &ChildGuard| format!("--- sim log ---\n{}", sim.log_text());

    fw.wait_line(
        "upsguard-fw: config from flash page",
        Duration::from_secs(10),
        &ctx(&sim),
    );
    fw.wait_line(
        "config: os_shutdown_s=3 safety_margin_s=240 on_battery_delay_s=0 off_mode=shutdown_return poll_ms=500",
        Duration::from_secs(5),
        &ctx(&sim),
    );
    fw.wait_line(
        "upsguard-fw: event comm_established",
        Duration::from_secs(30),
        &ctx(&sim),
    );
    fw.wait_line(
        "upsguard-fw: ups identified: model SMART-UPS 1000",
        Duration::from_secs(30),
        &ctx(&sim),
    );
    assert_eq!(fw.read_word(LEDS) & 0b11, 0b01, "load powered at boot");

    // The SysTick clock runs in real time (QEMU without -icount): the firmware's 10 s
    // heartbeat comes neither early nor much late.
    let t = fw.wait_line(
        "upsguard-fw: uptime 10 s,",
        Duration::from_secs(30),
        &ctx(&sim),
    );
    assert!(
        t >= Duration::from_millis(9_500) && t <= Duration::from_secs(25),
        "firmware uptime 10 s printed {t:?} after QEMU started"
    );

    let st = ctl.status();
    assert_eq!(st["output_on"], true, "{st}");
    ctl.ok("mains off");
    fw.wait_line(
        "upsguard-fw: event on_battery",
        Duration::from_secs(15),
        &ctx(&sim),
    );
    fw.wait_line(
        "upsguard-fw: shutting down load (reason low_runtime)",
        Duration::from_secs(60),
        &ctx(&sim),
    );
    assert_eq!(
        fw.read_word(LEDS) & 0b11,
        0b10,
        "load switched off, shutdown LED lit"
    );
    fw.wait_line(
        "upsguard-fw: load is down; turning the UPS off (mode shutdown_return)",
        Duration::from_secs(15),
        &ctx(&sim),
    );
    // On battery the killpower is `S`: the UPS accepts and turns its output off after its
    // shutdown delay (20 s simulated, 1 s here), to return with mains.
    fw.wait_line(
        "upsguard-fw: ups turn-off sent: accepted S",
        Duration::from_secs(15),
        &ctx(&sim),
    );
    let Some(st) = ctl.wait_output(false, Duration::from_secs(20)) else {
        panic!(
            "the UPS output stayed on: {}\n--- qemu log ---\n{}\n{}",
            ctl.status(),
            fw.log(),
            ctx(&sim)
        )
    };
    assert_eq!(st["off_state"], "await_mains", "{st}");
    assert!(st["shutdowns"].as_u64().unwrap_or(0) >= 1, "{st}");

    let log = fw.log();
    let pos = |s: &str| log.find(s).unwrap_or_else(|| panic!("{s:?} not in\n{log}"));
    assert!(pos("event on_battery") < pos("event low_runtime"), "{log}");
    assert!(
        pos("event low_runtime") < pos("shutting down load"),
        "{log}"
    );
    assert!(
        pos("shutting down load") < pos("ups turn-off sent"),
        "{log}"
    );
    assert!(!log.contains("PANIC") && !log.contains("FATAL"), "{log}");
    assert!(
        log.lines()
            .filter(|l| l.contains("uptime"))
            .all(|l| l.ends_with("dropped 0")),
        "events were dropped:\n{log}"
    );

    let qemu_log = fw.qemu.stop(Duration::from_secs(2));
    let sim_log = sim.stop(Duration::from_secs(2));
    println!("{qemu_log}\n{sim_log}");
}

#[test]
fn firmware_writes_its_defaults_to_an_empty_config_page() {
    let dir = TempDir::new("fw-qemu-defaults");
    let mut fw = Board::boot(&dir, "null", &[]);
    fw.wait_line(
        "unusable (erased, or not a record of this kind or version): using defaults",
        Duration::from_secs(10),
        "",
    );
    fw.wait_line(
        "upsguard-fw: defaults written to the config page (11 bytes, read back ok)",
        Duration::from_secs(5),
        "",
    );
    fw.wait_line(
        "config: os_shutdown_s=30 safety_margin_s=60 on_battery_delay_s=0 off_mode=shutdown_return poll_ms=500",
        Duration::from_secs(5),
        "",
    );
    // The page now holds the record, byte for byte what a host would write.
    let rec = config_record(30, 60, 500);
    assert_eq!(fw.read_bytes(CONFIG_PAGE, rec.len()), rec, "{}", fw.log());
    println!("{}", fw.qemu.stop(Duration::from_secs(2)));
}
