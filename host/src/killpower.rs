//! `upsguard killpower`: the last thing upsguard does in a power-fail shutdown.
//!
//! Run by the systemd shutdown hook late in the halt (the service is already stopped), it
//! opens the port itself and runs the core driver's KillPower sequence: `S` when on battery,
//! else `@000`, falling back to `K`…`K`, paced as NUT and apcupsd pace them. It refuses to act
//! unless the service left the flag file (written when the shutdown began), so an ordinary
//! halt never cuts the power of a UPS that also feeds other machines.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use upsguard_core::link::{
    KillMethod, LinkConfig, LinkDriver, LinkEvent, RequestResult, UpsRequest,
};

use crate::clock::Clock;
use crate::serial::SerialLink;

/// Name of the flag file in the data directory.
pub const FLAG_FILE: &str = "killpower.flag";

#[derive(Debug, Args)]
pub struct KillpowerArgs {
    /// Configuration file (for the serial device).
    #[arg(long, default_value = "/etc/upsguard/upsguard.ini")]
    pub config: PathBuf,
    /// Data directory (holds the flag file).
    #[arg(long, default_value = "/var/lib/upsguard")]
    pub data_dir: PathBuf,
    /// Serial device; overrides the configuration.
    #[arg(long)]
    pub device: Option<PathBuf>,
    /// Act even without the flag file (manual use).
    #[arg(long)]
    pub force: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 45)]
    pub timeout_s: u64,
}

pub fn flag_path(data_dir: &Path) -> PathBuf {
    data_dir.join(FLAG_FILE)
}

pub fn main(args: KillpowerArgs) -> ExitCode {
    let flag = flag_path(&args.data_dir);
    if !args.force && !flag.exists() {
        eprintln!(
            "upsguard killpower: no power-fail flag at {}; not turning the UPS off (use --force to override)",
            flag.display()
        );
        return ExitCode::from(2);
    }
    let device = match &args.device {
        Some(d) => d.clone(),
        None => {
            let backup = args.config.with_file_name(crate::config::BACKUP_FILE);
            let loaded = crate::config::load(&args.config, &backup);
            PathBuf::from(loaded.config.communication.device)
        }
    };
    match kill_power(&device, Duration::from_secs(args.timeout_s)) {
        Ok(method) => {
            let what = match method {
                KillMethod::SoftShutdown => "S (soft shutdown: returns when mains returns)",
                KillMethod::ShutdownReturn => "@000 (shutdown and return)",
                KillMethod::StayOff => "K..K (shutdown, stay off)",
            };
            println!(
                "upsguard killpower: UPS accepted {what}; it turns its output off after its shutdown delay"
            );
            // The flag did its job; a later ordinary halt must not cut power again.
            let _ = std::fs::remove_file(&flag);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("upsguard killpower: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the KillPower sequence on `device`; returns the method the UPS accepted.
pub fn kill_power(device: &Path, timeout: Duration) -> Result<KillMethod, String> {
    let mut port = SerialLink::open(device).map_err(|e| e.to_string())?;
    let clock = Clock::new();
    let mut drv = LinkDriver::new(LinkConfig::default());
    drv.reset(clock.now());
    let id = drv
        .request(clock.now(), UpsRequest::KillPower)
        .map_err(|e| format!("cannot queue the kill-power request: {e:?}"))?;
    let start = std::time::Instant::now();
    let mut buf = [0u8; 128];
    while start.elapsed() < timeout {
        let now = clock.now();
        drv.handle_timeout(now);
        while let Some(tx) = drv.poll_transmit(now) {
            port.write_all(tx.as_bytes())
                .map_err(|e| format!("write failed: {e}"))?;
        }
        while let Some(ev) = drv.poll_event() {
            if let LinkEvent::RequestDone { id: done, result } = ev
                && done == id
            {
                return match result {
                    RequestResult::KillPower(m) => Ok(m),
                    other => Err(format!("the UPS did not accept a shutdown: {other:?}")),
                };
            }
        }
        let wait = drv
            .poll_timeout()
            .map(|d| clock.until(d))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        let n = port
            .read(&mut buf, wait)
            .map_err(|e| format!("serial read failed: {e}"))?;
        if n > 0 {
            drv.handle_input(clock.now(), buf.get(..n).unwrap_or(&[]));
        }
    }
    Err(format!(
        "no answer from the UPS within {} s",
        timeout.as_secs()
    ))
}
