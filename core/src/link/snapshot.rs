//! What the driver knows about the UPS. Every value carries the instant it was last read.

use heapless::String;

use crate::time::Instant;
use crate::wire::{
    AlarmDelay, CapabilityTable, Centi, Firmware, Locale, ProtocolInfo, Register1, Register2,
    Register3, SelfTestInterval, SelfTestResult, Sensitivity, StatusFlags, TransferCause,
};

/// A value and when it was last read (or changed by an alert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stamped<T> {
    pub value: T,
    pub at: Instant,
}

/// Stores `value`, stamping it with `now`; true if it differs from before.
pub(crate) fn store<T: PartialEq>(slot: &mut Option<Stamped<T>>, value: T, now: Instant) -> bool {
    let changed = slot.as_ref().is_none_or(|s| s.value != value);
    *slot = Some(Stamped { value, at: now });
    changed
}

/// Link state as seen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CommState {
    /// Handshake not (yet) successful, never lost so far.
    #[default]
    Connecting,
    /// Smart mode established and replies coming back.
    Established,
    /// Communication Lost has been reported; the driver keeps retrying.
    Lost,
    /// `shutdown_link` finished.
    Closed,
}

/// Polled measurements (fixed-point).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Measurements {
    /// `L`, V.
    pub input_voltage: Option<Stamped<Centi>>,
    /// `O`, V.
    pub output_voltage: Option<Stamped<Centi>>,
    /// `M`, V (max since the previous read).
    pub max_line_voltage: Option<Stamped<Centi>>,
    /// `N`, V (min since the previous read).
    pub min_line_voltage: Option<Stamped<Centi>>,
    /// `F`, Hz.
    pub frequency: Option<Stamped<Centi>>,
    /// `P`, % of rating.
    pub load_percent: Option<Stamped<Centi>>,
    /// `f`, %.
    pub charge_percent: Option<Stamped<Centi>>,
    /// `B`, V DC.
    pub battery_voltage: Option<Stamped<Centi>>,
    /// `j`, seconds.
    pub runtime_seconds: Option<Stamped<u32>>,
    /// `C`, °C.
    pub temperature: Option<Stamped<Centi>>,
    /// `9`, raw (`0xFF` acceptable, `0x00` not).
    pub line_quality: Option<Stamped<u8>>,
}

/// Static identification, read during discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Identity {
    /// `^A`.
    pub model: Option<Stamped<String<32>>>,
    /// `n`.
    pub serial: Option<Stamped<String<16>>>,
    /// `b` (or `V`).
    pub firmware: Option<Stamped<Firmware>>,
    /// From the firmware's last character.
    pub locale: Option<Locale>,
    /// `m`.
    pub manufacture_date: Option<Stamped<String<8>>>,
    /// `x`.
    pub battery_date: Option<Stamped<String<8>>>,
    /// `c`.
    pub ups_id: Option<Stamped<String<8>>>,
    /// `g`, V.
    pub nominal_battery_voltage: Option<Stamped<u16>>,
    /// `o`, V.
    pub nominal_output_voltage: Option<Stamped<u16>>,
}

/// EEPROM settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Settings {
    /// `u`, V.
    pub transfer_high: Option<Stamped<u16>>,
    /// `l`, V.
    pub transfer_low: Option<Stamped<u16>>,
    /// `s`.
    pub sensitivity: Option<Stamped<Sensitivity>>,
    /// `k`.
    pub alarm_delay: Option<Stamped<AlarmDelay>>,
    /// `p`, s.
    pub shutdown_delay_s: Option<Stamped<u16>>,
    /// `r`, s.
    pub return_delay_s: Option<Stamped<u16>>,
    /// `q`, min.
    pub low_battery_warning_min: Option<Stamped<u8>>,
    /// `e`, %.
    pub min_return_charge_pct: Option<Stamped<u8>>,
    /// `E`.
    pub self_test_interval: Option<Stamped<SelfTestInterval>>,
}

/// Registers 1–3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Registers {
    pub reg1: Option<Stamped<Register1>>,
    pub reg2: Option<Stamped<Register2>>,
    pub reg3: Option<Stamped<Register3>>,
}

/// Everything the driver knows; see [`super::LinkDriver::snapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UpsSnapshot {
    pub comm: CommState,
    /// When `comm` last changed.
    pub comm_since: Option<Instant>,
    /// `Q`. Alerts never change it: they only make the driver read `Q` at once.
    pub status: Option<Stamped<StatusFlags>>,
    pub measurements: Measurements,
    pub identity: Identity,
    pub settings: Settings,
    /// `^Z`, filtered to the UPS's locale.
    pub capabilities: Option<CapabilityTable>,
    /// `a`: version, alerts and command set as declared by the UPS.
    pub protocol: Option<ProtocolInfo>,
    /// `G`.
    pub last_transfer: Option<Stamped<TransferCause>>,
    /// `X`.
    pub self_test: Option<Stamped<SelfTestResult>>,
    pub registers: Registers,
    /// Events that could not be queued because the caller did not drain them.
    pub events_dropped: u32,
    /// Alert bytes discarded as line noise (see [`super::LinkConfig::alert_quiet`]).
    pub noise_alerts: u32,
    /// Non-alert bytes that arrived while no reply was expected (line noise, late replies).
    pub garbage_bytes: u32,
    /// Alerts that passed the line-noise check but the next `Q` contradicted.
    pub refuted_alerts: u32,
    /// `Q` went on battery and `G` (the transfer's cause) has not answered yet: whether this
    /// is an outage or a self-test is not known. Bounded (2 s); nothing should act on the
    /// transfer meanwhile.
    pub power_cause_pending: bool,
    /// The UPS is running a battery self-test (on battery on purpose; `G` said so, or our
    /// own `W` preceded the transfer), from the transfer until its `X` result is read.
    pub self_test_running: bool,
}
