//! `upsguard run`: the monitoring service.
//!
//! Start-up order matters: configuration (with its backup fallback), data directory and logs,
//! then the link thread (the "driver"), then the control socket, then readiness. The main
//! loop is the "monitor": it owns the core shutdown machine, the logs and every action, and is
//! woken by link events, the machine's own deadlines, the data-log tick, CLI requests and
//! signals. Nothing in it blocks: command files and the OS shutdown run in the blocking pool.

mod monitor;
pub mod plan;
pub mod requests;
mod schedule;
mod systemd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use tracing_subscriber::EnvFilter;

/// Command-line options of `upsguard run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Configuration file [default: /etc/upsguard/upsguard.ini; with --simulate: <data-dir>/upsguard.ini].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory for logs, command files and state [default: /var/lib/upsguard; with --simulate: $XDG_RUNTIME_DIR/upsguard-sim, else a fresh private directory in the temp dir].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Serial device of the UPS; overrides `[Communication] device`.
    #[arg(long, conflicts_with = "simulate")]
    pub device: Option<PathBuf>,
    /// Run against the built-in emulated UPS (optionally playing a scenario file) instead of
    /// a real one. The OS is never really shut down in this mode.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "SCENARIO")]
    pub simulate: Option<String>,
    /// With --simulate: run the emulator's physics N times faster.
    #[arg(long, default_value_t = 1.0)]
    pub sim_speed: f64,
    /// With --simulate: also accept emulator control lines on this TCP address.
    #[arg(long)]
    pub sim_control: Option<String>,
    /// Do not start the HTTPS web UI / API (for tests and headless installs).
    #[arg(long)]
    pub no_web: bool,
    /// Test only: a file holding whole seconds added to the web API's clock (lockout, idle
    /// timeout and throttling), so tests need not wait minutes. Hidden: never for production.
    #[arg(long, hide = true)]
    pub web_test_clock_file: Option<PathBuf>,
    /// Log filter (tracing syntax), e.g. `info`, `debug`, `upsguard=trace`.
    #[arg(long, default_value = "info", env = "UPSGUARD_LOG")]
    pub log: String,
}

/// Where everything lives for this run.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config: PathBuf,
    pub backup: PathBuf,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
}

impl Paths {
    fn resolve(args: &RunArgs, socket: PathBuf) -> Result<Self, String> {
        let sim = args.simulate.is_some();
        let data_dir = match &args.data_dir {
            Some(d) => d.clone(),
            // Never a fixed name under /tmp, which any local user could create first.
            None if sim => crate::files::sim_data_dir()?,
            None => PathBuf::from("/var/lib/upsguard"),
        };
        let config = args.config.clone().unwrap_or_else(|| {
            if sim {
                data_dir.join(crate::config::MAIN_FILE)
            } else {
                PathBuf::from("/etc/upsguard").join(crate::config::MAIN_FILE)
            }
        });
        let backup = config.with_file_name(crate::config::BACKUP_FILE);
        // In simulation the default socket would collide with a real service.
        let socket = if sim && socket == Path::new(crate::ipc::DEFAULT_SOCKET) {
            data_dir.join("upsguard.sock")
        } else {
            socket
        };
        Ok(Paths {
            config,
            backup,
            data_dir,
            socket,
        })
    }
}

pub fn main(args: RunArgs, socket: PathBuf) -> ExitCode {
    let filter = match log_filter(&args.log) {
        Ok(f) => f,
        Err(e) => {
            // Before anything else: a filter that silences everything would hide the setup
            // token and every warning.
            eprintln!("upsguard: {e}");
            return ExitCode::from(2);
        }
    };
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        // Colour codes only for a person at a terminal, never into journald or a file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Read the local UTC offset while still single-threaded (the `time` crate refuses to
    // afterwards); schedules are in host local time.
    let local_offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let paths = match Paths::resolve(&args, socket) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("upsguard: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The roles get threads of their own: the driver (port + shutdown decision) its own OS
    // thread; the monitor loop runs here, on the thread that calls block_on; the servers
    // (control socket, web) on the one worker. So a monitor busy with Argon2 or a slow disk
    // delays no reader, and a flood of clients delays no shutdown decision. Command files run
    // on the blocking pool.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("upsguard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(monitor::run(args, paths, local_offset)) {
        Ok(()) => ExitCode::SUCCESS,
        // Printed once: the log and this line both go to stderr.
        Err(e) => {
            eprintln!("upsguard: {e}");
            ExitCode::FAILURE
        }
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `--log`: a level (`info`) or tracing directives (`info,upsguard=debug`). EnvFilter takes a
/// bare word as a target name, so a typo such as `verbose` would silently log nothing.
fn log_filter(spec: &str) -> Result<EnvFilter, String> {
    let bad = |why: &str| {
        format!(
            "invalid --log filter `{}`: {why}; use a level ({}) or directives such as `info,upsguard=debug`",
            crate::eventlog::display_escape(spec),
            LEVELS.join(", ")
        )
    };
    if spec.trim().is_empty() {
        return Err(bad("it is empty"));
    }
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let level = match part.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => level,
            Some(_) => return Err(bad("a directive has no target before `=`")),
            None => part,
        };
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(bad(&format!("`{level}` is not a level")));
        }
    }
    EnvFilter::try_new(spec).map_err(|e| bad(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_filters() {
        for ok in [
            "info",
            "debug",
            "WARN",
            "info,upsguard=trace",
            "upsguard=debug",
        ] {
            assert!(log_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["verbose", "", "info,verbose", "=debug", "upsguard=loud"] {
            let e = log_filter(bad).map(|_| ()).unwrap_err();
            assert!(e.contains("invalid --log filter"), "{e}");
        }
    }
}
