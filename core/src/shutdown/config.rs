//! Shutdown policy configuration.

use crate::time::Duration;

/// The one chosen shutdown policy (spec §4). Low Runtime is armed on top of every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ShutdownPolicy {
    /// Shut down as soon as the UPS is on battery.
    Immediately,
    /// Shut down once the UPS has been on battery for `seconds` without a break.
    AfterOnBattery { seconds: u32 },
    /// Shut down at Low Battery (the UPS's LB flag, or runtime below
    /// [`ShutdownConfig::low_battery_runtime_s`]).
    LowBattery,
    /// apcupsd style: shut down when, on battery, charge ≤ `charge_pct` % **or** runtime ≤
    /// `runtime_s`, whichever comes first (and at Low Battery, like apcupsd).
    Threshold { charge_pct: u8, runtime_s: u32 },
    /// Only the always-armed Low Runtime trigger.
    LowRuntimeOnly,
}

/// What the UPS is told to do late in the OS halt (`upsguard killpower`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UpsOffMode {
    /// Turn the output off and bring it back when mains returns (`S` on battery, else
    /// `@000`, falling back to `K`…`K`; the choice is made by killpower, which knows the
    /// power state at that moment).
    ShutdownReturn,
    /// Turn the output off and keep it off (`K`…`K`).
    StayOff,
    /// Sleep: output off, back on after `duration` (`@nnn`, see
    /// [`UpsOffMode::sleep_tenths_of_hour`]).
    Sleep { duration: Duration },
}

/// Longest sleep `@nnn` can express: 999 tenths of an hour.
pub const MAX_SLEEP: Duration = Duration::from_secs(999 * 360);

impl UpsOffMode {
    /// Sleep for whole hours.
    pub const fn sleep_hours(hours: u16) -> Self {
        UpsOffMode::Sleep {
            duration: Duration::from_secs(hours as u64 * 3600),
        }
    }

    /// For [`UpsOffMode::Sleep`]: the `nnn` of `@nnn` (tenths of an hour, rounded up so the
    /// UPS never wakes early, clamped to 1..=999). `None` for the other modes.
    pub const fn sleep_tenths_of_hour(self) -> Option<u16> {
        match self {
            UpsOffMode::Sleep { duration } => {
                let tenths = duration.as_millis().div_ceil(360_000);
                let clamped = if tenths < 1 {
                    1
                } else if tenths > 999 {
                    999
                } else {
                    tenths
                };
                Some(clamped as u16)
            }
            _ => None,
        }
    }
}

/// Shutdown configuration. Every number is accepted (the machine saturates and never
/// panics); [`ShutdownConfig::validate`] tells the UI/config loader what to reject.
///
/// Per-event shutdown options are `Option<u32>`: `None` = the event never shuts down,
/// `Some(s)` = it shuts down once its condition has persisted for `s` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ShutdownConfig {
    pub policy: ShutdownPolicy,
    /// A: how long the shutdown command file runs (0 = no command file).
    pub command_file_s: u32,
    /// B: how long the OS needs to shut down.
    pub os_shutdown_s: u32,
    /// Added to A + B for the Low Runtime threshold. Default 60 s: the Smart protocol
    /// reports runtime in whole minutes (`j`), so a reading can be up to a minute
    /// optimistic, and runtime estimates sag near the end of a discharge; polling latency
    /// (seconds) is absorbed by the same minute.
    pub safety_margin_s: u32,
    /// Persistence delay before Low Battery shuts down (policies other than LowRuntimeOnly).
    pub low_battery_delay_s: u32,
    /// Also treat runtime below this as Low Battery (0 = only the UPS's LB flag). Normally
    /// the UPS's own low-battery warning time (`q`).
    pub low_battery_runtime_s: u32,
    /// On line with runtime below this → Battery Discharged (warning). `None` = off.
    pub battery_discharged_runtime_s: Option<u32>,
    /// On battery for this long → Time On Battery Exceeded. `None` = off.
    pub time_on_battery_limit_s: Option<u32>,
    /// Time On Battery Exceeded shuts down after this persistence delay.
    pub time_on_battery_shutdown_s: Option<u32>,
    /// Overload shuts down after this persistence delay (happens on line too).
    pub overload_shutdown_s: Option<u32>,
    /// Internal temperature threshold in tenths of °C. `None` = off.
    pub temperature_limit_dc: Option<i16>,
    /// Temperature Exceeded shuts down after this persistence delay.
    pub temperature_shutdown_s: Option<u32>,
    /// Communication Lost While On Battery shuts down after this delay. Default 30 s: long
    /// enough to ride out a USB-serial re-enumeration, short next to any real runtime; the
    /// extrapolated runtime keeps Low Runtime armed meanwhile regardless.
    pub comm_lost_on_battery_shutdown_s: Option<u32>,
    /// Tell the UPS to turn its output off late in the halt.
    pub turn_off_ups: bool,
    /// How, when `turn_off_ups`.
    pub ups_off_mode: UpsOffMode,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            policy: ShutdownPolicy::LowBattery,
            command_file_s: 0,
            os_shutdown_s: 120,
            safety_margin_s: 60,
            low_battery_delay_s: 0,
            low_battery_runtime_s: 0,
            battery_discharged_runtime_s: None,
            time_on_battery_limit_s: None,
            time_on_battery_shutdown_s: None,
            overload_shutdown_s: None,
            temperature_limit_dc: None,
            temperature_shutdown_s: None,
            comm_lost_on_battery_shutdown_s: Some(30),
            turn_off_ups: true,
            ups_off_mode: UpsOffMode::ShutdownReturn,
        }
    }
}

/// Why a configuration is rejected by [`ShutdownConfig::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// Threshold charge above 100 %.
    ChargeOutOfRange,
    /// A duration above [`MAX_CONFIG_SECONDS`].
    DurationTooLong,
    /// Sleep duration zero or longer than `@999` can express.
    SleepOutOfRange,
    /// Temperature threshold outside −40.0 … 100.0 °C.
    TemperatureOutOfRange,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ConfigError::ChargeOutOfRange => "charge threshold must be 0..=100 %",
            ConfigError::DurationTooLong => "duration longer than 24 hours",
            ConfigError::SleepOutOfRange => "sleep must be longer than zero and at most 99.9 hours",
            ConfigError::TemperatureOutOfRange => "temperature threshold outside -40..100 °C",
        })
    }
}

impl core::error::Error for ConfigError {}

/// Longest delay/duration a config may hold (one day). Larger values are surely typos.
pub const MAX_CONFIG_SECONDS: u32 = 86_400;

impl ShutdownConfig {
    /// A + B: the time a shutdown needs from Graceful Shutdown Started to a halted OS.
    /// A scheduled shutdown window shorter than this is rejected (spec §4).
    pub const fn min_schedule_window(&self) -> Duration {
        Duration::from_secs(self.command_file_s as u64 + self.os_shutdown_s as u64)
    }

    /// The Low Runtime threshold: A + B + safety margin.
    pub const fn low_runtime_threshold(&self) -> Duration {
        Duration::from_secs(
            self.command_file_s as u64 + self.os_shutdown_s as u64 + self.safety_margin_s as u64,
        )
    }

    /// Range-check every field (server-side validation, spec §8).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut secs = [
            Some(self.command_file_s),
            Some(self.os_shutdown_s),
            Some(self.safety_margin_s),
            Some(self.low_battery_delay_s),
            Some(self.low_battery_runtime_s),
            self.battery_discharged_runtime_s,
            self.time_on_battery_limit_s,
            self.time_on_battery_shutdown_s,
            self.overload_shutdown_s,
            self.temperature_shutdown_s,
            self.comm_lost_on_battery_shutdown_s,
        ]
        .into_iter()
        .flatten();
        match self.policy {
            ShutdownPolicy::AfterOnBattery { seconds } if seconds > MAX_CONFIG_SECONDS => {
                return Err(ConfigError::DurationTooLong);
            }
            ShutdownPolicy::Threshold {
                charge_pct,
                runtime_s,
            } => {
                if charge_pct > 100 {
                    return Err(ConfigError::ChargeOutOfRange);
                }
                if runtime_s > MAX_CONFIG_SECONDS {
                    return Err(ConfigError::DurationTooLong);
                }
            }
            _ => {}
        }
        if secs.any(|s| s > MAX_CONFIG_SECONDS) {
            return Err(ConfigError::DurationTooLong);
        }
        if let UpsOffMode::Sleep { duration } = self.ups_off_mode {
            check_sleep(duration)?;
        }
        if let Some(t) = self.temperature_limit_dc
            && !(-400..=1000).contains(&t)
        {
            return Err(ConfigError::TemperatureOutOfRange);
        }
        Ok(())
    }
}

/// A sleep must be non-zero (it is rounded up to whole `@nnn` units) and at most `@999`.
pub fn check_sleep(duration: Duration) -> Result<(), ConfigError> {
    if duration.as_millis() == 0 || duration > MAX_SLEEP {
        Err(ConfigError::SleepOutOfRange)
    } else {
        Ok(())
    }
}
