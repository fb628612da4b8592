//! Small enumerated replies: transfer cause (`G`), self-test result (`X`), and the EEPROM
//! settings that have symbolic values (`s`, `k`, `E`), plus the list of cyclable settings.

use super::{ParseError, reply_body, trim};

/// Cause of the last transfer to battery (`G`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TransferCause {
    /// `R`: unacceptable rate of voltage change.
    RateOfChange,
    /// `H`: high line voltage.
    HighLineVoltage,
    /// `L`: low line voltage.
    LowLineVoltage,
    /// `T`: notch or spike.
    NotchOrSpike,
    /// `O`: no transfer since power-on.
    NoTransfer,
    /// `S`: self-test, `U` command or front-panel test.
    SelfTest,
    /// `K`: forced by software (apcupsd).
    Software,
    /// `NA`: not yet known (read again later). Not an "unsupported" answer for `G`.
    NotAvailable,
}

impl TransferCause {
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        Ok(match reply_body(line) {
            Err(ParseError::NotAvailable) => TransferCause::NotAvailable,
            Err(e) => return Err(e),
            Ok(b"R") => TransferCause::RateOfChange,
            Ok(b"H") => TransferCause::HighLineVoltage,
            Ok(b"L") => TransferCause::LowLineVoltage,
            Ok(b"T") => TransferCause::NotchOrSpike,
            Ok(b"O") => TransferCause::NoTransfer,
            Ok(b"S") => TransferCause::SelfTest,
            Ok(b"K") => TransferCause::Software,
            Ok(_) => return Err(ParseError::Invalid),
        })
    }
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            TransferCause::RateOfChange => b"R",
            TransferCause::HighLineVoltage => b"H",
            TransferCause::LowLineVoltage => b"L",
            TransferCause::NotchOrSpike => b"T",
            TransferCause::NoTransfer => b"O",
            TransferCause::SelfTest => b"S",
            TransferCause::Software => b"K",
            TransferCause::NotAvailable => b"NA",
        }
    }
}

/// Last self-test result (`X`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SelfTestResult {
    /// `OK`: passed.
    Passed,
    /// `BT`: failed, battery capacity.
    BatteryFailed,
    /// `NG`: failed, overload.
    OverloadFailed,
    /// `NO`: no result (no test in the last 5 minutes).
    NoResult,
}

impl SelfTestResult {
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        Ok(match reply_body(line)? {
            b"OK" => SelfTestResult::Passed,
            b"BT" => SelfTestResult::BatteryFailed,
            b"NG" => SelfTestResult::OverloadFailed,
            b"NO" => SelfTestResult::NoResult,
            _ => return Err(ParseError::Invalid),
        })
    }
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            SelfTestResult::Passed => b"OK",
            SelfTestResult::BatteryFailed => b"BT",
            SelfTestResult::OverloadFailed => b"NG",
            SelfTestResult::NoResult => b"NO",
        }
    }
}

/// Input sensitivity (`s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Sensitivity {
    High,
    Medium,
    Low,
    /// `A` (Matrix).
    Auto,
}

impl Sensitivity {
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        Ok(match reply_body(line)? {
            b"H" => Sensitivity::High,
            b"M" => Sensitivity::Medium,
            b"L" => Sensitivity::Low,
            b"A" => Sensitivity::Auto,
            _ => return Err(ParseError::Invalid),
        })
    }
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            Sensitivity::High => b"H",
            Sensitivity::Medium => b"M",
            Sensitivity::Low => b"L",
            Sensitivity::Auto => b"A",
        }
    }
}

/// Alarm (beeper) delay (`k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AlarmDelay {
    /// `0`: 5 s after power fail.
    FiveSeconds,
    /// `T`: 30 s.
    ThirtySeconds,
    /// `L`: only at low battery.
    LowBattery,
    /// `N`: never.
    Never,
}

impl AlarmDelay {
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        Ok(match reply_body(line)? {
            b"0" => AlarmDelay::FiveSeconds,
            b"T" => AlarmDelay::ThirtySeconds,
            b"L" => AlarmDelay::LowBattery,
            b"N" => AlarmDelay::Never,
            _ => return Err(ParseError::Invalid),
        })
    }
    pub const fn as_bytes(self) -> &'static [u8] {
        match self {
            AlarmDelay::FiveSeconds => b"0",
            AlarmDelay::ThirtySeconds => b"T",
            AlarmDelay::LowBattery => b"L",
            AlarmDelay::Never => b"N",
        }
    }
}

/// Automatic self-test interval (`E`: `336`, `168`, `ON `, `OFF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SelfTestInterval {
    /// Every N hours (`336` = 14 days, `168` = 7 days).
    Hours(u16),
    /// `ON `: at power-on only.
    OnPowerOn,
    /// `OFF`: never.
    Off,
}

impl SelfTestInterval {
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        let body = reply_body(line)?;
        Ok(match trim(body) {
            b"ON" => SelfTestInterval::OnPowerOn,
            b"OFF" => SelfTestInterval::Off,
            digits => {
                let h = super::parse_uint(digits)?;
                SelfTestInterval::Hours(u16::try_from(h).map_err(|_| ParseError::Overflow)?)
            }
        })
    }
}

/// The EEPROM settings that are changed by cycling with `-` (§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum SettingVar {
    /// `u`: upper transfer voltage (V).
    TransferHigh = b'u',
    /// `l`: lower transfer voltage (V).
    TransferLow = b'l',
    /// `e`: minimum battery charge before restarting (%).
    MinReturnCharge = b'e',
    /// `o`: output voltage on battery (V).
    OutputVoltage = b'o',
    /// `s`: input sensitivity.
    Sensitivity = b's',
    /// `q`: low-battery warning time (min).
    LowBatteryWarning = b'q',
    /// `p`: shutdown grace delay (s).
    ShutdownDelay = b'p',
    /// `k`: alarm delay.
    AlarmDelay = b'k',
    /// `r`: wake-up delay after power returns (s).
    ReturnDelay = b'r',
    /// `E`: automatic self-test interval.
    SelfTestInterval = b'E',
}

impl SettingVar {
    pub const ALL: [SettingVar; 10] = [
        SettingVar::TransferHigh,
        SettingVar::TransferLow,
        SettingVar::MinReturnCharge,
        SettingVar::OutputVoltage,
        SettingVar::Sensitivity,
        SettingVar::LowBatteryWarning,
        SettingVar::ShutdownDelay,
        SettingVar::AlarmDelay,
        SettingVar::ReturnDelay,
        SettingVar::SelfTestInterval,
    ];
    pub const fn byte(self) -> u8 {
        self as u8
    }
    pub fn from_byte(b: u8) -> Option<Self> {
        SettingVar::ALL.into_iter().find(|v| v.byte() == b)
    }
}
