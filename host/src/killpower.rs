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
use upsguard_core::agent::{Agent, AgentEvent};
use upsguard_core::link::{KillMethod, LinkConfig, RequestResult, UpsRequest};
use upsguard_core::pump;
use upsguard_core::records::{self, KillpowerFlag, OffMode};
use upsguard_core::shutdown::{ShutdownConfig, ShutdownPolicy, UpsOffMode};

use crate::clock::Clock;
use crate::driver::{CoreClock, HostPort};
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
    let request = std::fs::read(&flag)
        .ok()
        .and_then(|body| read_flag(&body))
        .map_or(UpsRequest::KillPower, UpsOffMode::request);
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

/// The flag file's bytes: a postcard [`KillpowerFlag`] record (the same bytes an appliance
/// keeps in flash).
pub fn flag_bytes(mode: UpsOffMode, armed_at_unix_s: u64) -> Vec<u8> {
    let rec = KillpowerFlag {
        mode: OffMode::from(mode),
        armed_at_unix_s,
    };
    let mut buf = [0u8; 32];
    records::encode(&rec, &mut buf)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// Reads a flag file: the postcard record, or the text form (`mode=return`,
/// `mode=stay_off`, `mode=sleep:TENTHS`) that earlier versions wrote, so a flag left by
/// an older service before an upgrade still works in the halt.
pub fn read_flag(body: &[u8]) -> Option<UpsOffMode> {
    if let Ok(rec) = records::decode::<KillpowerFlag>(body) {
        return Some(UpsOffMode::from(rec.mode));
    }
    let text = std::str::from_utf8(body).ok()?;
    let mode = text.lines().find_map(|l| l.trim().strip_prefix("mode="))?;
    match mode {
        "return" => Some(UpsOffMode::ShutdownReturn),
        "stay_off" => Some(UpsOffMode::StayOff),
        m => {
            let tenths: u16 = m.strip_prefix("sleep:")?.parse().ok()?;
            (1..=999)
                .contains(&tenths)
                .then_some(UpsOffMode::from(OffMode::Sleep {
                    tenths_of_hour: tenths,
                }))
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

/// Runs the turn-off `request` on `device` through the same core pump as the service;
/// returns what the UPS accepted.
pub fn kill_power(
    device: &Path,
    request: UpsRequest,
    timeout: Duration,
) -> Result<&'static str, String> {
    let serial = SerialLink::open(device).map_err(|e| e.to_string())?;
    let clock = Clock::new();
    let mut port = HostPort::new(Some(serial), None, clock);
    // The agent's shutdown machine has nothing to decide here (the OS is already halting):
    // Low Runtime only, and its events and actions are dropped.
    let shutdown = ShutdownConfig {
        policy: ShutdownPolicy::LowRuntimeOnly,
        turn_off_ups: false,
        ..ShutdownConfig::default()
    };
    let mut agent = Agent::new(LinkConfig::default(), shutdown);
    agent.reset(clock.now());
    let id = agent
        .request(clock.now(), request)
        .map_err(|e| format!("cannot queue the kill-power request: {e:?}"))?;
    let until = clock.now()
        + upsguard_core::time::Duration::from_millis(
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        );
    let mut core_clock = CoreClock(clock);
    let mut buf = [0u8; 128];
    while clock.now() < until {
        pump::turn(
            &mut agent,
            &mut port,
            &mut core_clock,
            &mut buf,
            Some(until),
        )
        .map_err(|e| format!("serial port failed: {e}"))?;
        while agent.poll_action().is_some() {}
        while let Some(ev) = agent.poll_event() {
            if let AgentEvent::RequestDone { id: done, result } = ev
                && done == id
            {
                return describe(result);
            }
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
        for m in [
            UpsOffMode::ShutdownReturn,
            UpsOffMode::StayOff,
            UpsOffMode::sleep_hours(2),
        ] {
            assert_eq!(read_flag(&flag_bytes(m, 1_700_000_000)), Some(m));
        }
        assert_eq!(read_flag(b"garbage"), None);
        assert_eq!(read_flag(b""), None);
    }

    #[test]
    fn old_text_flags_still_read() {
        assert_eq!(
            read_flag(b"mode=return\n"),
            Some(UpsOffMode::ShutdownReturn)
        );
        assert_eq!(read_flag(b"mode=stay_off"), Some(UpsOffMode::StayOff));
        assert_eq!(
            read_flag(b"mode=sleep:15").map(UpsOffMode::request),
            Some(UpsRequest::ShutdownReturn { tenths_of_hour: 15 })
        );
        assert_eq!(read_flag(b"mode=sleep:0"), None);
    }
}
