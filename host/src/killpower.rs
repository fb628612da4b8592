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
    // The service wrote the wanted mode into the flag; a forced run uses the default sequence.
    let request = std::fs::read_to_string(&flag)
        .ok()
        .and_then(|body| request_from_flag(&body))
        .unwrap_or(UpsRequest::KillPower);
    match kill_power(&device, request, Duration::from_secs(args.timeout_s)) {
        Ok(what) => {
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

/// Parses the flag file body (`mode=return`, `mode=stay_off`, `mode=sleep:TENTHS`).
pub fn request_from_flag(body: &str) -> Option<UpsRequest> {
    let mode = body.lines().find_map(|l| l.trim().strip_prefix("mode="))?;
    match mode {
        "return" => Some(UpsRequest::KillPower),
        "stay_off" => Some(UpsRequest::ShutdownStayOff),
        m => {
            let tenths: u16 = m.strip_prefix("sleep:")?.parse().ok()?;
            (1..=999)
                .contains(&tenths)
                .then_some(UpsRequest::ShutdownReturn {
                    tenths_of_hour: tenths,
                })
        }
    }
}

fn describe(result: RequestResult) -> Result<&'static str, String> {
    match result {
        RequestResult::KillPower(KillMethod::SoftShutdown) => {
            Ok("S (soft shutdown: returns when mains returns)")
        }
        RequestResult::KillPower(KillMethod::ShutdownReturn) => Ok("@000 (shutdown and return)"),
        RequestResult::KillPower(KillMethod::StayOff) => Ok("K..K (shutdown, stay off)"),
        RequestResult::Done => Ok("the requested shutdown"),
        other => Err(format!("the UPS did not accept a shutdown: {other:?}")),
    }
}

/// Runs the turn-off `request` on `device`; returns what the UPS accepted.
pub fn kill_power(
    device: &Path,
    request: UpsRequest,
    timeout: Duration,
) -> Result<&'static str, String> {
    let mut port = SerialLink::open(device).map_err(|e| e.to_string())?;
    let clock = Clock::new();
    let mut drv = LinkDriver::new(LinkConfig::default());
    drv.reset(clock.now());
    let id = drv
        .request(clock.now(), request)
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
                return describe(result);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_modes() {
        assert_eq!(
            request_from_flag("mode=return\n"),
            Some(UpsRequest::KillPower)
        );
        assert_eq!(
            request_from_flag("mode=stay_off"),
            Some(UpsRequest::ShutdownStayOff)
        );
        assert_eq!(
            request_from_flag("mode=sleep:15"),
            Some(UpsRequest::ShutdownReturn { tenths_of_hour: 15 })
        );
        assert_eq!(request_from_flag("mode=sleep:0"), None);
        assert_eq!(request_from_flag("garbage"), None);
    }
}
