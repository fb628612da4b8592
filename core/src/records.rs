//! Records the product persists, as postcard bytes behind a 4-byte magic and a version: the
//! same bytes in a host's file and in an appliance's flash page. No allocation: encode into a
//! caller's slice, decode from a borrowed one; a damaged or foreign record is an error, never
//! a panic.

use serde::{Deserialize, Serialize};

use crate::shutdown::UpsOffMode;
use crate::time::Duration;

/// Why a record could not be written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RecordError {
    /// The output slice is too small.
    TooSmall,
    /// Not a record of this kind (wrong magic), or of a newer version.
    Foreign,
    /// The payload does not decode.
    Corrupt,
}

impl core::fmt::Display for RecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RecordError::TooSmall => "record buffer too small",
            RecordError::Foreign => "not a record of this kind or version",
            RecordError::Corrupt => "damaged record",
        })
    }
}

/// A persisted record type: its magic and version.
pub trait Record: Serialize + for<'de> Deserialize<'de> {
    const MAGIC: [u8; 4];
    const VERSION: u8;
}

const HEADER: usize = 5;

/// Writes `rec` into `out`; returns the bytes used.
pub fn encode<'a, R: Record>(rec: &R, out: &'a mut [u8]) -> Result<&'a [u8], RecordError> {
    let (head, body) = out
        .split_at_mut_checked(HEADER)
        .ok_or(RecordError::TooSmall)?;
    head.get_mut(..4)
        .ok_or(RecordError::TooSmall)?
        .copy_from_slice(&R::MAGIC);
    if let Some(v) = head.get_mut(4) {
        *v = R::VERSION;
    }
    let n = postcard::to_slice(rec, body)
        .map_err(|_| RecordError::TooSmall)?
        .len();
    out.get(..HEADER + n).ok_or(RecordError::TooSmall)
}

/// Reads a record written by [`encode`].
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R, RecordError> {
    let magic = bytes.get(..4).ok_or(RecordError::Foreign)?;
    if magic != R::MAGIC.as_slice() || bytes.get(4) != Some(&R::VERSION) {
        return Err(RecordError::Foreign);
    }
    let body = bytes.get(HEADER..).ok_or(RecordError::Corrupt)?;
    postcard::from_bytes(body).map_err(|_| RecordError::Corrupt)
}

/// The UPS turn-off mode as persisted (the sleep as `@nnn` tenths of an hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OffMode {
    ShutdownReturn,
    StayOff,
    Sleep { tenths_of_hour: u16 },
}

impl From<UpsOffMode> for OffMode {
    fn from(m: UpsOffMode) -> Self {
        match m {
            UpsOffMode::ShutdownReturn => OffMode::ShutdownReturn,
            UpsOffMode::StayOff => OffMode::StayOff,
            UpsOffMode::Sleep { .. } => OffMode::Sleep {
                tenths_of_hour: m.sleep_tenths_of_hour().unwrap_or(1),
            },
        }
    }
}

impl From<OffMode> for UpsOffMode {
    fn from(m: OffMode) -> Self {
        match m {
            OffMode::ShutdownReturn => UpsOffMode::ShutdownReturn,
            OffMode::StayOff => UpsOffMode::StayOff,
            OffMode::Sleep { tenths_of_hour } => UpsOffMode::Sleep {
                duration: Duration::from_secs(u64::from(tenths_of_hour.clamp(1, 999)) * 360),
            },
        }
    }
}

/// Written when a shutdown sequence reaches the OS shutdown; the killpower hook late in the
/// halt reads it to know whether, and how, to turn the UPS off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct KillpowerFlag {
    pub mode: OffMode,
    /// When the flag was written, seconds since the Unix epoch (0: unknown, e.g. firmware
    /// without a calendar clock).
    pub armed_at_unix_s: u64,
}

impl Record for KillpowerFlag {
    const MAGIC: [u8; 4] = *b"UGKP";
    const VERSION: u8 = 1;
}

/// A small appliance's persisted configuration (one flash page): what the firmware needs to
/// run the [`crate::agent::Agent`] without a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ApplianceConfig {
    /// How long the appliance's own load needs to shut down (B), seconds.
    pub os_shutdown_s: u32,
    /// Added to B for Low Runtime, seconds.
    pub safety_margin_s: u32,
    /// Shut down this long after the UPS went on battery (0: only at low battery / runtime).
    pub on_battery_delay_s: u32,
    /// How the UPS is turned off at the end.
    pub off_mode: OffMode,
    /// Status poll period, ms.
    pub poll_ms: u32,
}

impl Default for ApplianceConfig {
    fn default() -> Self {
        ApplianceConfig {
            os_shutdown_s: 30,
            safety_margin_s: 60,
            on_battery_delay_s: 0,
            off_mode: OffMode::ShutdownReturn,
            poll_ms: 500,
        }
    }
}

impl Record for ApplianceConfig {
    const MAGIC: [u8; 4] = *b"UGAC";
    const VERSION: u8 = 1;
}

/// SNMP engine state that must survive restarts (RFC 3414: engineBoots grows every start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SnmpEngineState {
    pub engine_boots: u32,
}

impl Record for SnmpEngineState {
    const MAGIC: [u8; 4] = *b"UGSE";
    const VERSION: u8 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let rec = KillpowerFlag {
            mode: OffMode::Sleep { tenths_of_hour: 20 },
            armed_at_unix_s: 1_800_000_000,
        };
        let mut buf = [0u8; 32];
        let bytes = encode(&rec, &mut buf).unwrap();
        assert_eq!(&bytes[..4], b"UGKP");
        let n = bytes.len();
        assert_eq!(decode::<KillpowerFlag>(&buf[..n]), Ok(rec));
        // Another record's bytes, a newer version, a truncated body, too small a buffer.
        assert_eq!(
            decode::<ApplianceConfig>(&buf[..n]),
            Err(RecordError::Foreign)
        );
        let mut newer = buf;
        newer[4] = 2;
        assert_eq!(
            decode::<KillpowerFlag>(&newer[..n]),
            Err(RecordError::Foreign)
        );
        assert_eq!(
            decode::<KillpowerFlag>(&buf[..6]),
            Err(RecordError::Corrupt)
        );
        assert_eq!(
            encode(&rec, &mut [0u8; 6]).map(|b| b.len()),
            Err(RecordError::TooSmall)
        );
    }

    #[test]
    fn decode_never_panics_on_any_prefix() {
        let mut buf = [0u8; 64];
        let n = encode(&ApplianceConfig::default(), &mut buf).unwrap().len();
        for i in 0..=n {
            let _ = decode::<ApplianceConfig>(&buf[..i]);
        }
        for b in 0..=255u8 {
            let mut x = buf;
            x[7] = b;
            let _ = decode::<ApplianceConfig>(&x[..n]);
        }
    }

    #[test]
    fn off_mode_maps_both_ways() {
        for m in [
            UpsOffMode::ShutdownReturn,
            UpsOffMode::StayOff,
            UpsOffMode::sleep_hours(2),
        ] {
            assert_eq!(UpsOffMode::from(OffMode::from(m)), m);
        }
    }
}
