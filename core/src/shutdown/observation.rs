//! What the link driver knows about the UPS, as input to the shutdown machine.
//!
//! Every field is an `Option`: `None` means "not known from this poll" and leaves the
//! machine's last known value in place. When `comm_ok` is `Some(false)` all other fields
//! are ignored (they could only be stale).

/// Result of the UPS self-test as last read from the UPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SelfTestResult {
    /// No result (never run, or not reported).
    NoResult,
    /// A self-test is running (the driver started one and has no result yet).
    InProgress,
    Passed,
    Failed,
}

/// Runtime calibration state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CalibrationState {
    Idle,
    /// Calibrating (Smart status bit 0x01). The UPS runs on battery on purpose, so the
    /// on-battery policies stand down; Low Runtime stays armed.
    Running,
    /// The driver knows the calibration ran to its end.
    Finished,
    /// The driver knows the calibration was aborted (by command or by a power failure).
    Aborted,
}

/// One snapshot of UPS state. Build with `Observation { field: Some(..), ..Default::default() }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Observation {
    /// The link is alive (`Some(false)`: the driver declared the link dead).
    pub comm_ok: Option<bool>,
    pub on_battery: Option<bool>,
    /// The UPS's own low-battery (LB) flag.
    pub low_battery: Option<bool>,
    /// Estimated runtime in seconds.
    pub runtime_s: Option<u32>,
    /// Battery charge in tenths of a percent (1000 = 100.0 %). Integer-only UPSes ×10.
    pub charge_tenths: Option<u16>,
    pub overload: Option<bool>,
    pub replace_battery: Option<bool>,
    pub battery_disconnected: Option<bool>,
    /// The UPS output is off (e.g. after a turn-off command).
    pub output_off: Option<bool>,
    /// The UPS is asleep (after `@nnn`/`S`, waiting to return).
    pub sleeping: Option<bool>,
    /// SmartBoost (raising low input voltage).
    pub boost: Option<bool>,
    /// SmartTrim (lowering high input voltage).
    pub trim: Option<bool>,
    /// Internal temperature in tenths of °C.
    pub temperature_dc: Option<i16>,
    pub self_test: Option<SelfTestResult>,
    pub calibration: Option<CalibrationState>,
}

impl Observation {
    /// The driver declared the link dead.
    pub fn comm_lost() -> Self {
        Observation {
            comm_ok: Some(false),
            ..Default::default()
        }
    }

    /// A healthy UPS on line with `runtime_s` of runtime and full charge: handy in tests
    /// and as the all-clear baseline.
    pub fn on_line(runtime_s: u32) -> Self {
        Observation {
            comm_ok: Some(true),
            on_battery: Some(false),
            low_battery: Some(false),
            runtime_s: Some(runtime_s),
            charge_tenths: Some(1000),
            overload: Some(false),
            replace_battery: Some(false),
            battery_disconnected: Some(false),
            output_off: Some(false),
            sleeping: Some(false),
            boost: Some(false),
            trim: Some(false),
            temperature_dc: None,
            self_test: None,
            calibration: Some(CalibrationState::Idle),
        }
    }

    /// Same as [`Observation::on_line`] but on battery with the given runtime and charge.
    pub fn on_battery(runtime_s: u32, charge_tenths: u16) -> Self {
        Observation {
            on_battery: Some(true),
            charge_tenths: Some(charge_tenths),
            ..Observation::on_line(runtime_s)
        }
    }
}
