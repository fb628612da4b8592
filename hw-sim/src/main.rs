//! `upsguard-sim` command-line front end.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use upsguard_sim::{Scenario, SimOptions, Transport, answer_line, spawn};

/// APC Smart-UPS 1000 emulator (Smart/UPS-Link protocol, 2400 8N1).
///
/// Control commands are read from stdin and, with --control, from a TCP
/// port (one command per line, answered with "OK …" or "ERR reason").
#[derive(Debug, Parser)]
#[command(name = "upsguard-sim", version, after_help = upsguard_sim::HELP)]
struct Cli {
    /// Serve the UPS on a pty reachable through this symlink.
    #[arg(long, value_name = "PATH", group = "transport")]
    link: Option<PathBuf>,
    /// Serve the UPS on a real serial device (2400 8N1).
    #[arg(long, value_name = "DEVICE", group = "transport")]
    serial: Option<String>,
    /// Serve the UPS on a TCP listener (ADDR:PORT).
    #[arg(long, value_name = "ADDR", group = "transport")]
    tcp: Option<String>,
    /// TCP address for the control port, e.g. 127.0.0.1:7000.
    #[arg(long, value_name = "ADDR")]
    control: Option<String>,
    /// Scenario file (TOML) to run.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Run physics and grace timers N times faster than real time.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Pace output bytes at this line speed (e.g. 2400); default: unpaced.
    #[arg(long)]
    baud: Option<u32>,
    /// Persistent EEPROM image (JSON); created if missing.
    #[arg(long, value_name = "FILE")]
    eeprom: Option<PathBuf>,
    /// Seed for line noise and garbage.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Initial load in % of rated power.
    #[arg(long, default_value_t = 23.5)]
    load: f64,
    /// Do not print simulator events to stderr.
    #[arg(long)]
    quiet: bool,
    /// Exit when the scenario has run its last step.
    #[arg(long, requires = "scenario")]
    exit_after_scenario: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let transport = if let Some(p) = cli.link {
        Transport::Pty(p)
    } else if let Some(d) = cli.serial {
        Transport::Serial(d)
    } else if let Some(a) = cli.tcp {
        Transport::Tcp(a)
    } else {
        eprintln!("upsguard-sim: choose a transport: --link PATH, --serial DEVICE or --tcp ADDR");
        return ExitCode::from(2);
    };
    let scenario = match cli.scenario.as_deref().map(Scenario::load).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("upsguard-sim: {e}");
            return ExitCode::from(2);
        }
    };
    if !(0.0..=200.0).contains(&cli.load) {
        eprintln!("upsguard-sim: --load must be between 0 and 200");
        return ExitCode::from(2);
    }
    let opts = SimOptions {
        transport,
        seed: cli.seed,
        speed: cli.speed,
        baud: cli.baud,
        eeprom_path: cli.eeprom,
        scenario,
        load_pct: cli.load,
        control_addr: cli.control,
        log_events: !cli.quiet,
    };
    let sim = match spawn(opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("upsguard-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(p) = sim.link_path() {
        eprintln!("upsguard-sim: UPS on {}", p.display());
    }
    if let Some(a) = sim.control_addr() {
        eprintln!("upsguard-sim: control on {a}");
    }
    // Both daemons and tests may kill us; SIGTERM's default action is fine
    // since the symlink is the only thing left behind and is replaced on start.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let t = line.trim();
                if t.is_empty() {
                    continue;
                }
                if t == "quit" || t == "exit" {
                    break;
                }
                println!("{}", answer_line(sim.control(t)));
            }
            // stdin closed (e.g. run in the background): keep serving.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if cli.exit_after_scenario && sim.status_json().contains("\"scenario_done\":true") {
            break;
        }
        if !sim.is_running() {
            eprintln!("upsguard-sim: simulator stopped");
            return ExitCode::FAILURE;
        }
    }
    sim.stop();
    ExitCode::SUCCESS
}
