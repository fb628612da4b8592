//! `upsguard-bench`: the numbers behind upsguard's speed and footprint claims.
//!
//! It runs the real `upsguard run` binary against the emulator paced at real 2400-baud line
//! timing, with this program sitting on the wire (a pty it owns, relayed to an in-process
//! emulator) so it knows the exact instant each alert byte is written. It prints:
//! * alert byte → logged event latency (the event's own timestamp in `events.jsonl`),
//! * alert byte → new status visible to a server (the control socket's `status`),
//! * how busy the UPS→host line is while idle polling, and how old the status is,
//! * the service's resident memory and CPU use while idle.
//!
//! Usage: `cargo run --release -p upsguard-tests --bin upsguard-bench -- [--cycles N] [--idle-secs S]`
//! (build the workspace binaries first; it uses the `upsguard` next to itself).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use upsguard_tests::{ChildGuard, TempDir, bin_path, wait_for};

#[derive(Default)]
struct Wire {
    /// Wall-clock instants at which `!` / `$` bytes were written towards the host.
    line_fail_at: Vec<SystemTime>,
    restore_at: Vec<SystemTime>,
}

fn main() {
    let mut cycles = 40usize;
    let mut idle_secs = 30u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cycles" => cycles = args.next().and_then(|v| v.parse().ok()).unwrap_or(cycles),
            "--idle-secs" => {
                idle_secs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(idle_secs)
            }
            _ => {
                eprintln!("usage: upsguard-bench [--cycles N] [--idle-secs S]");
                std::process::exit(2);
            }
        }
    }

    let dir = TempDir::new("bench");
    let (sim, mut duplex) = upsguard_sim::spawn_in_process(upsguard_sim::SimOptions {
        baud: Some(2400),
        ..upsguard_sim::SimOptions::default()
    })
    .expect("emulator");
    duplex.set_read_timeout(Duration::from_micros(500));

    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave_name = nix::unistd::ttyname(&pty.slave).expect("ttyname");
    let link = dir.join("ups-tty");
    std::os::unix::fs::symlink(&slave_name, &link).unwrap();
    let mut master = File::from(pty.master);
    fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
    // Keep the slave open so the master never sees a hang-up between host opens.
    let _slave = pty.slave;

    let wire = Arc::new(Mutex::new(Wire::default()));
    let up_bytes = Arc::new(AtomicU64::new(0));
    let down_bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let relay = {
        let (wire, up, down, stop) = (
            wire.clone(),
            up_bytes.clone(),
            down_bytes.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                // UPS → host, timestamped at the write.
                if let Ok(n) = duplex.read(&mut buf)
                    && n > 0
                {
                    let chunk = &buf[..n];
                    let _ = master.write_all(chunk);
                    let now = SystemTime::now();
                    up.fetch_add(n as u64, Ordering::Relaxed);
                    let mut w = wire.lock().unwrap();
                    for b in chunk {
                        match b {
                            b'!' => w.line_fail_at.push(now),
                            b'$' => w.restore_at.push(now),
                            _ => {}
                        }
                    }
                }
                // Host → UPS.
                let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) > 0
                    && let Ok(n) = master.read(&mut buf)
                    && n > 0
                {
                    down.fetch_add(n as u64, Ordering::Relaxed);
                    let _ = duplex.write_all(&buf[..n]);
                }
            }
        })
    };

    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = dir.join("upsguard.ini");
    // The HTTPS server stays on: the footprint is measured with it running.
    std::fs::write(
        &config,
        format!(
            "[Shutdown]\npolicy = low_runtime\nos_shutdown_command = /bin/true\n\n[Web]\nbind = 127.0.0.1\nport = {}\n",
            upsguard_tests::free_port()
        ),
    )
    .unwrap();
    let socket = dir.join("upsguard.sock");
    let mut svc = ChildGuard::spawn(
        "upsguard",
        Command::new(bin_path("upsguard"))
            .arg("--socket")
            .arg(&socket)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .arg("--device")
            .arg(&link),
        &dir.join("service.log"),
    );
    let pid = svc.id().unwrap();
    wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        status(&socket).filter(|s| s["comm"] == "online" && s["runtime_s"].is_number())
    })
    .unwrap_or_else(|| panic!("service did not come up\n{}", svc.log_text()));
    println!("upsguard-bench: service up (pid {pid}); emulator paced at 2400 baud");

    // --- Idle: line use, data age, memory, CPU --------------------------------------------
    std::thread::sleep(Duration::from_secs(3));
    let cpu0 = cpu_ticks(pid);
    let up0 = up_bytes.load(Ordering::Relaxed);
    let down0 = down_bytes.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut ages = Vec::new();
    while t0.elapsed() < Duration::from_secs(idle_secs) {
        if let Some(a) = status(&socket).and_then(|s| s["status_age_ms"].as_u64()) {
            ages.push(a);
        }
        std::thread::sleep(Duration::from_millis(97));
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / clk_tck() / secs * 100.0;
    let up_rate = (up_bytes.load(Ordering::Relaxed) - up0) as f64 / secs;
    let down_rate = (down_bytes.load(Ordering::Relaxed) - down0) as f64 / secs;
    let rss_idle = rss_kib(pid);
    ages.sort_unstable();
    println!("idle polling over {secs:.0} s:");
    println!(
        "  UPS->host line busy : {:.1} % ({up_rate:.1} B/s of 240 B/s at 2400 baud)",
        up_rate / 240.0 * 100.0
    );
    println!(
        "  host->UPS line busy : {:.1} % ({down_rate:.1} B/s)",
        down_rate / 240.0 * 100.0
    );
    println!(
        "  status age          : p50 {} ms, p99 {} ms, max {} ms ({} samples; includes status-request sampling)",
        pct(&ages, 50.0),
        pct(&ages, 99.0),
        ages.last().copied().unwrap_or(0),
        ages.len()
    );
    println!(
        "  service RSS         : {:.1} MiB",
        rss_idle as f64 / 1024.0
    );
    println!("  service CPU (idle)  : {cpu:.2} % of one core");

    // --- Power-fail alerts ------------------------------------------------------------------
    let mut to_event = Vec::new();
    let mut to_status = Vec::new();
    for i in 0..cycles {
        let n_before = wire.lock().unwrap().line_fail_at.len();
        sim.control("mains off").unwrap();
        // Watch the status server from the moment the byte is on the wire.
        let alert_at = wait_for(Duration::from_secs(5), Duration::from_micros(200), || {
            wire.lock().unwrap().line_fail_at.get(n_before).copied()
        })
        .unwrap_or_else(|| panic!("no ! alert on the wire (cycle {i})"));
        let seen = wait_for(Duration::from_secs(5), Duration::from_micros(300), || {
            status(&socket)
                .filter(|s| s["status"].as_str().is_some_and(|t| t.contains("OB")))
                .map(|_| SystemTime::now())
        })
        .unwrap_or_else(|| panic!("status never showed OB (cycle {i})"));
        to_status.push(ms_between(alert_at, seen));
        let ev = wait_for(Duration::from_secs(5), Duration::from_millis(5), || {
            nth_event_ts(&data, "on_battery", i)
        })
        .unwrap_or_else(|| panic!("no on_battery event (cycle {i})\n{}", svc.log_text()));
        to_event.push(ms_between(alert_at, ev));
        sim.control("mains on").unwrap();
        wait_for(Duration::from_secs(5), Duration::from_millis(5), || {
            nth_event_ts(&data, "power_restored", i)
        })
        .unwrap_or_else(|| panic!("no power_restored event (cycle {i})"));
        std::thread::sleep(Duration::from_millis(700));
    }
    to_event.sort_by(f64::total_cmp);
    to_status.sort_by(f64::total_cmp);
    println!("power-fail alert byte on the wire → … over {cycles} outages:");
    println!(
        "  logged event        : p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (event timestamps have 1 ms resolution)",
        pctf(&to_event, 50.0),
        pctf(&to_event, 99.0),
        to_event.last().copied().unwrap_or(0.0)
    );
    println!(
        "  status on the server: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pctf(&to_status, 50.0),
        pctf(&to_status, 99.0),
        to_status.last().copied().unwrap_or(0.0)
    );
    println!(
        "  service RSS after   : {:.1} MiB",
        rss_kib(pid) as f64 / 1024.0
    );

    svc.stop(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let _ = relay.join();
}

fn status(socket: &Path) -> Option<serde_json::Value> {
    use std::io::{BufRead, BufReader};
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"{\"cmd\":\"status\"}\n").ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    let v: serde_json::Value = serde_json::from_str(&line).ok()?;
    v.get("data").cloned()
}

/// Timestamp of the `n`-th (0-based) event with this id.
fn nth_event_ts(data: &Path, id: &str, n: usize) -> Option<SystemTime> {
    let text = std::fs::read_to_string(data.join("events.jsonl")).ok()?;
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["id"] == id)
        .nth(n)?;
    let ts = time::OffsetDateTime::parse(
        line["ts"].as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    let nanos = u64::try_from(ts.unix_timestamp_nanos()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

fn ms_between(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        // The event's timestamp is truncated to the millisecond, so it can read as slightly
        // before the byte's exact instant.
        Err(e) => -(e.duration().as_secs_f64() * 1000.0),
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn pctf(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; here 0-based 11 and 12.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn clk_tck() -> f64 {
    // Linux reports USER_HZ = 100 on every architecture we run on.
    100.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
