//! The UPS status as the outside world sees it: a flat, serialisable view of the core
//! snapshot (for the CLI, and later the web API) and an apcaccess-like text rendering.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use upsguard_core::link::{CommState, Stamped, UpsSnapshot};
use upsguard_core::time::Instant;
use upsguard_core::wire::{Centi, SelfTestResult, StatusFlags, TransferCause};

/// Everything a status reader needs, in plain units.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StatusView {
    /// `connecting`, `online` (link up), `lost`, `closed`.
    pub comm: String,
    /// NUT-style tokens, e.g. `OL`, `OB LB`, `OFF`; empty when unknown.
    pub status: String,
    /// apcupsd-style word: ONLINE, ONBATT, … or COMMLOST.
    pub status_text: String,
    pub status_byte: Option<u8>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub manufacture_date: Option<String>,
    pub battery_date: Option<String>,
    pub ups_id: Option<String>,
    pub input_voltage: Option<f64>,
    pub output_voltage: Option<f64>,
    pub max_line_voltage: Option<f64>,
    pub min_line_voltage: Option<f64>,
    pub frequency_hz: Option<f64>,
    pub load_pct: Option<f64>,
    pub charge_pct: Option<f64>,
    pub battery_voltage: Option<f64>,
    pub nominal_battery_voltage: Option<u16>,
    pub nominal_output_voltage: Option<u16>,
    pub runtime_s: Option<u32>,
    pub temperature_c: Option<f64>,
    pub line_quality_ok: Option<bool>,
    pub last_transfer: Option<String>,
    pub self_test: Option<String>,
    pub transfer_high_v: Option<u16>,
    pub transfer_low_v: Option<u16>,
    pub sensitivity: Option<String>,
    pub shutdown_delay_s: Option<u16>,
    pub return_delay_s: Option<u16>,
    pub low_battery_warning_min: Option<u8>,
    pub min_return_charge_pct: Option<u8>,
    /// Age of the status register reading, in ms.
    pub status_age_ms: Option<u64>,
    /// Shutdown engine phase (filled by the service).
    #[serde(default)]
    pub shutdown_phase: String,
    /// Seconds since the service started.
    #[serde(default)]
    pub service_uptime_s: u64,
    /// When the shutdown starts, and where it stands (filled by the service).
    #[serde(default)]
    pub shutdown: Option<crate::service::plan::ShutdownView>,
    /// `G` has not yet said whether a transfer to battery is an outage or a self-test.
    #[serde(default)]
    pub power_cause_pending: bool,
    /// The UPS is running a battery self-test (on battery on purpose).
    #[serde(default)]
    pub self_test_running: bool,
    /// Alerts the next status reading contradicted (line noise that looked like an alert).
    #[serde(default)]
    pub refuted_alerts: u32,
    /// upsguard's version.
    #[serde(default)]
    pub version: String,
    /// What the administrator should fix (filled by the service); empty when all is well.
    #[serde(default)]
    pub problems: Vec<Problem>,
}

/// Something wrong that the service works around (on safe defaults) but cannot fix itself.
/// Serialised as `{"kind":"event_log","key":"events.jsonl","message":"…"}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// What it is about: a file name or path, or `[Section] key`.
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(kind: ProblemKind, key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            kind,
            key: key.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Events cannot be written (disk full, I/O error).
    EventLog,
    /// A configuration entry was refused (unknown key or section, invalid value).
    Config,
    /// A file or folder was refused for its owner or mode.
    FilePermissions,
    /// The configuration enables something this build does not have.
    NotImplemented,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::EventLog => "event_log",
            ProblemKind::Config => "config",
            ProblemKind::FilePermissions => "file_permissions",
            ProblemKind::NotImplemented => "not_implemented",
        }
    }
}

fn centi(v: &Option<Stamped<Centi>>) -> Option<f64> {
    v.as_ref().map(|s| f64::from(s.value.hundredths()) / 100.0)
}

fn text<const N: usize>(v: &Option<Stamped<upsguard_core::heapless::String<N>>>) -> Option<String> {
    v.as_ref().map(|s| s.value.as_str().trim().to_string())
}

/// apcupsd's STATUS words for a status byte (and link state).
pub fn status_words(comm: CommState, flags: Option<StatusFlags>) -> String {
    if comm == CommState::Lost {
        return "COMMLOST".into();
    }
    let Some(f) = flags else {
        return String::new();
    };
    if f.is_empty() {
        return "OFF".into();
    }
    let mut words = Vec::new();
    if f.contains(StatusFlags::CAL) {
        words.push("CAL");
    }
    if f.contains(StatusFlags::TRIM) {
        words.push("TRIM");
    }
    if f.contains(StatusFlags::BOOST) {
        words.push("BOOST");
    }
    if f.contains(StatusFlags::OL) {
        words.push("ONLINE");
    }
    if f.contains(StatusFlags::OB) {
        words.push("ONBATT");
    }
    if f.contains(StatusFlags::OVER) {
        words.push("OVERLOAD");
    }
    if f.contains(StatusFlags::LB) {
        words.push("LOWBATT");
    }
    if f.contains(StatusFlags::RB) {
        words.push("REPLACEBATT");
    }
    words.join(" ")
}

pub fn transfer_text(c: TransferCause) -> &'static str {
    match c {
        TransferCause::RateOfChange => "Unacceptable line voltage rate of change",
        TransferCause::HighLineVoltage => "High line voltage",
        TransferCause::LowLineVoltage => "Low line voltage",
        TransferCause::NotchOrSpike => "Line voltage notch or spike",
        TransferCause::NoTransfer => "No transfers since turnon",
        TransferCause::SelfTest => "Automatic or explicit self test",
        TransferCause::Software => "Forced by software",
        TransferCause::NotAvailable => "Not available",
    }
}

pub fn self_test_text(r: SelfTestResult) -> &'static str {
    match r {
        SelfTestResult::Passed => "OK",
        SelfTestResult::BatteryFailed => "BT (failed: battery capacity)",
        SelfTestResult::OverloadFailed => "NG (failed: overload)",
        SelfTestResult::NoResult => "NO (no recent test)",
    }
}

impl StatusView {
    pub fn from_snapshot(s: &UpsSnapshot, now: Instant) -> Self {
        let flags = s.status.as_ref().map(|st| st.value);
        let m = &s.measurements;
        let id = &s.identity;
        let st = &s.settings;
        StatusView {
            comm: match s.comm {
                CommState::Connecting => "connecting",
                CommState::Established => "online",
                CommState::Lost => "lost",
                CommState::Closed => "closed",
            }
            .into(),
            status: match flags {
                Some(f) if s.comm != CommState::Lost => f.to_string(),
                _ => String::new(),
            },
            status_text: status_words(s.comm, flags),
            status_byte: flags.map(|f| f.bits()),
            model: text(&id.model),
            serial: text(&id.serial),
            firmware: id.firmware.as_ref().map(|f| f.value.text.to_string()),
            manufacture_date: text(&id.manufacture_date),
            battery_date: text(&id.battery_date),
            ups_id: text(&id.ups_id),
            input_voltage: centi(&m.input_voltage),
            output_voltage: centi(&m.output_voltage),
            max_line_voltage: centi(&m.max_line_voltage),
            min_line_voltage: centi(&m.min_line_voltage),
            frequency_hz: centi(&m.frequency),
            load_pct: centi(&m.load_percent),
            charge_pct: centi(&m.charge_percent),
            battery_voltage: centi(&m.battery_voltage),
            nominal_battery_voltage: id.nominal_battery_voltage.map(|v| v.value),
            nominal_output_voltage: id.nominal_output_voltage.map(|v| v.value),
            runtime_s: m.runtime_seconds.map(|v| v.value),
            temperature_c: centi(&m.temperature),
            line_quality_ok: m.line_quality.map(|q| q.value != 0),
            last_transfer: s.last_transfer.map(|t| transfer_text(t.value).to_string()),
            self_test: s.self_test.map(|t| self_test_text(t.value).to_string()),
            transfer_high_v: st.transfer_high.map(|v| v.value),
            transfer_low_v: st.transfer_low.map(|v| v.value),
            sensitivity: st.sensitivity.map(|v| format!("{:?}", v.value)),
            shutdown_delay_s: st.shutdown_delay_s.map(|v| v.value),
            return_delay_s: st.return_delay_s.map(|v| v.value),
            low_battery_warning_min: st.low_battery_warning_min.map(|v| v.value),
            min_return_charge_pct: st.min_return_charge_pct.map(|v| v.value),
            status_age_ms: s.status.map(|v| now.saturating_since(v.at).as_millis()),
            shutdown_phase: String::new(),
            service_uptime_s: now.as_millis() / 1000,
            shutdown: None,
            power_cause_pending: s.power_cause_pending,
            self_test_running: s.self_test_running,
            refuted_alerts: s.refuted_alerts,
            version: env!("CARGO_PKG_VERSION").to_string(),
            problems: Vec::new(),
        }
    }

    /// apcaccess-style `KEY      : value` lines.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                let _ = writeln!(out, "{k:<9}: {v}");
            }
        };
        line(
            "STATUS",
            Some(self.status_text.clone())
                .filter(|s| !s.is_empty())
                .or(Some(self.comm.to_uppercase())),
        );
        line(
            "NUTSTAT",
            Some(self.status.clone()).filter(|s| !s.is_empty()),
        );
        line("LINK", Some(self.comm.clone()));
        line("MODEL", self.model.clone());
        line("SERIALNO", self.serial.clone());
        line("FIRMWARE", self.firmware.clone());
        line("UPSNAME", self.ups_id.clone());
        line("MANDATE", self.manufacture_date.clone());
        line("BATTDATE", self.battery_date.clone());
        line("LINEV", self.input_voltage.map(|v| format!("{v:.1} Volts")));
        line(
            "MAXLINEV",
            self.max_line_voltage.map(|v| format!("{v:.1} Volts")),
        );
        line(
            "MINLINEV",
            self.min_line_voltage.map(|v| format!("{v:.1} Volts")),
        );
        line(
            "OUTPUTV",
            self.output_voltage.map(|v| format!("{v:.1} Volts")),
        );
        line("LINEFREQ", self.frequency_hz.map(|v| format!("{v:.1} Hz")));
        line("LOADPCT", self.load_pct.map(|v| format!("{v:.1} Percent")));
        line(
            "BCHARGE",
            self.charge_pct.map(|v| format!("{v:.1} Percent")),
        );
        line(
            "TIMELEFT",
            self.runtime_s
                .map(|v| format!("{:.1} Minutes", f64::from(v) / 60.0)),
        );
        line(
            "BATTV",
            self.battery_voltage.map(|v| format!("{v:.2} Volts")),
        );
        line(
            "NOMBATTV",
            self.nominal_battery_voltage.map(|v| format!("{v}.0 Volts")),
        );
        line(
            "NOMOUTV",
            self.nominal_output_voltage.map(|v| format!("{v} Volts")),
        );
        line("ITEMP", self.temperature_c.map(|v| format!("{v:.1} C")));
        line("LASTXFER", self.last_transfer.clone());
        line("SELFTEST", self.self_test.clone());
        line(
            "HITRANS",
            self.transfer_high_v.map(|v| format!("{v}.0 Volts")),
        );
        line(
            "LOTRANS",
            self.transfer_low_v.map(|v| format!("{v}.0 Volts")),
        );
        line("SENSE", self.sensitivity.clone());
        line(
            "DSHUTD",
            self.shutdown_delay_s.map(|v| format!("{v} Seconds")),
        );
        line("DWAKE", self.return_delay_s.map(|v| format!("{v} Seconds")));
        line(
            "DLOWBATT",
            self.low_battery_warning_min.map(|v| format!("{v} Minutes")),
        );
        line(
            "RETPCT",
            self.min_return_charge_pct.map(|v| format!("{v}.0 Percent")),
        );
        line(
            "SHUTDOWN",
            Some(self.shutdown_phase.clone()).filter(|s| !s.is_empty()),
        );
        if self.self_test_running {
            line(
                "TESTING",
                Some("Self-test in progress (on battery on purpose)".into()),
            );
        }
        if let Some(sd) = &self.shutdown {
            line("SHUTPLAN", Some(sd.plan.clone()));
            line(
                "SHUTIN",
                sd.starts_in_s.map(|s| match s {
                    0 => "started".to_string(),
                    s => format!("about {}", crate::service::plan::human_secs(s)),
                }),
            );
        }
        line("DATAAGE", self.status_age_ms.map(|v| format!("{v} ms")));
        // Problem texts can quote file contents: escaped, one line each.
        for p in &self.problems {
            line(
                "PROBLEM",
                Some(format!(
                    "{} {}: {}",
                    p.kind.as_str(),
                    crate::eventlog::display_escape(&p.key),
                    crate::eventlog::display_escape(&p.message)
                )),
            );
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn problems_serialise_flat_and_render_one_line_each() {
        let mut v = StatusView {
            comm: "online".into(),
            ..StatusView::default()
        };
        v.problems.push(Problem::new(
            ProblemKind::EventLog,
            "events.jsonl",
            "no space\nleft",
        ));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json["problems"][0],
            serde_json::json!({"kind":"event_log","key":"events.jsonl","message":"no space\nleft"})
        );
        let text = v.render_text();
        assert!(
            text.contains("PROBLEM  : event_log events.jsonl: no space\\x0aleft\n"),
            "{text}"
        );
        // A status without the field (older service) still reads.
        let mut old = json;
        old.as_object_mut().unwrap().remove("problems");
        let back: StatusView = serde_json::from_value(old).unwrap();
        assert!(back.problems.is_empty());
    }
}
