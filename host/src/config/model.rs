//! The typed configuration: sections, defaults, ranges, and the one place where a
//! `(section, key, value)` triple becomes a typed field ([`Config::set`]). Loading, the web UI
//! and the CLI all go through it, so a value accepted anywhere is accepted everywhere.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::events::Events;
use super::ini::{self, Document, Writer};
use super::notifications::Notifications;
use super::schedule::{self, MAX_SCHEDULES, Schedule};
use super::values::{
    Argv, FileName, fmt_bool, fmt_opt_file, parse_bool, parse_ip, parse_opt_file, parse_port,
    parse_range,
};
use super::{ConfigError, ConfigWarning, WarningKind};

/// The APC Smart protocol runs at 2400 8N1, full stop.
pub const BAUD: u32 = 2400;

/// Anti-forensics floors (product §6): retention settings cannot go below these.
pub const EVENT_LOG_MIN_KB: u32 = 256;
pub const EVENT_LOG_MIN_FILES: u32 = 2;
pub const DATALOG_MIN_KB: u32 = 1024;
pub const DATALOG_MIN_FILES: u32 = 2;

/// Most items in a comma-separated list value.
const MAX_LIST: usize = 32;

/// Result of setting one key inside a section.
pub(crate) enum SetError {
    UnknownKey,
    Invalid(String),
}

impl From<String> for SetError {
    fn from(s: String) -> Self {
        Self::Invalid(s)
    }
}

type SetResult = Result<(), SetError>;

fn put<T>(slot: &mut T, parsed: Result<T, String>) -> SetResult {
    *slot = parsed?;
    Ok(())
}

/// The sections, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionId {
    Communication,
    Shutdown,
    Events,
    Schedule,
    Logging,
    Web,
    Snmp,
    Nut,
    Nis,
    Notifications,
    Credentials,
}

impl SectionId {
    pub const ALL: [SectionId; 11] = [
        Self::Communication,
        Self::Shutdown,
        Self::Events,
        Self::Schedule,
        Self::Logging,
        Self::Web,
        Self::Snmp,
        Self::Nut,
        Self::Nis,
        Self::Notifications,
        Self::Credentials,
    ];

    /// Schedules are checked against the shutdown durations, so they are applied last.
    pub(crate) const LOAD_ORDER: [SectionId; 11] = [
        Self::Communication,
        Self::Shutdown,
        Self::Events,
        Self::Logging,
        Self::Web,
        Self::Snmp,
        Self::Nut,
        Self::Nis,
        Self::Notifications,
        Self::Credentials,
        Self::Schedule,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Communication => "Communication",
            Self::Shutdown => "Shutdown",
            Self::Events => "Events",
            Self::Schedule => "Schedule",
            Self::Logging => "Logging",
            Self::Web => "Web",
            Self::Snmp => "SNMP",
            Self::Nut => "NUT",
            Self::Nis => "NIS",
            Self::Notifications => "Notifications",
            Self::Credentials => "Credentials",
        }
    }

    /// Section names match ASCII case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

// ---------------------------------------------------------------------------------------------
// [Communication]

/// `[Communication]`: the serial link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Communication {
    /// Serial device, under `/dev/`.
    pub device: String,
    /// Time between status (`Q`) reads, ms (200..=60000). 500 keeps the status under 1 s old
    /// for about 8 B/s of the 24 B/s that 10 % of a 2400-baud line allows.
    pub poll_interval_ms: u32,
    /// Per-command reply timeout, ms (250..=10000). Real units answer a query in tens of ms
    /// (a `Q` reply is 4 bytes, 17 ms at 2400 baud), so 500 is a wide margin, and with one
    /// retry a dead link is reported within two poll periods of the first unanswered poll.
    pub reply_timeout_ms: u32,
    /// Unanswered queries retried before *Communication Lost* (0..=10): lost after
    /// `retries + 1` consecutive timeouts.
    pub retries: u32,
}

impl Default for Communication {
    fn default() -> Self {
        Self {
            device: "/dev/ttyS0".into(),
            poll_interval_ms: 500,
            reply_timeout_ms: 500,
            retries: 1,
        }
    }
}

/// A serial device path: under `/dev/`, no `..`, conservative characters. It can be set from
/// the web UI, so it is held to the "no arbitrary path from a client" rule.
fn parse_device(v: &str) -> Result<String, String> {
    let rule = "must be a serial device path under /dev/ (e.g. /dev/ttyS0, /dev/ttyUSB0)";
    if !v.starts_with("/dev/") || v.len() <= 5 || v.len() > 128 {
        return Err(rule.into());
    }
    if v.split('/').any(|c| c == "..") {
        return Err("device path must not contain '..'".into());
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':' | '+'))
    {
        return Err(format!(
            "{rule}; only letters, digits and / . _ - : + are allowed"
        ));
    }
    Ok(v.to_string())
}

impl Communication {
    fn set(&mut self, key: &str, v: &str) -> SetResult {
        match key {
            "device" => put(&mut self.device, parse_device(v)),
            "baud" => match v {
                "2400" => Ok(()),
                _ => Err(SetError::Invalid(format!(
                    "must be {BAUD}: the APC Smart protocol runs at a fixed 2400 baud, 8N1"
                ))),
            },
            "poll_interval_ms" => put(&mut self.poll_interval_ms, parse_range(v, 200, 60_000)),
            "reply_timeout_ms" => put(&mut self.reply_timeout_ms, parse_range(v, 250, 10_000)),
            "retries" => put(&mut self.retries, parse_range(v, 0, 10)),
            _ => Err(SetError::UnknownKey),
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        vec![
            ("device".into(), self.device.clone()),
            ("baud".into(), BAUD.to_string()),
            ("poll_interval_ms".into(), self.poll_interval_ms.to_string()),
            ("reply_timeout_ms".into(), self.reply_timeout_ms.to_string()),
            ("retries".into(), self.retries.to_string()),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// [Shutdown]

/// What starts a graceful shutdown (Low Runtime is always armed on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownPolicy {
    Immediately,
    OnBatteryDelay,
    LowBattery,
    Threshold,
    LowRuntime,
}

impl ShutdownPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Immediately => "immediately",
            Self::OnBatteryDelay => "on_battery_delay",
            Self::LowBattery => "low_battery",
            Self::Threshold => "threshold",
            Self::LowRuntime => "low_runtime",
        }
    }

    fn parse(v: &str) -> Result<Self, String> {
        [
            Self::Immediately,
            Self::OnBatteryDelay,
            Self::LowBattery,
            Self::Threshold,
            Self::LowRuntime,
        ]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(v))
        .ok_or_else(|| {
            "must be one of immediately, on_battery_delay, low_battery, threshold, low_runtime"
                .into()
        })
    }
}

/// What the UPS does after the OS is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsOffMode {
    /// Turn off, come back when mains returns.
    Return,
    /// Turn off and stay off until switched on by hand.
    StayOff,
    /// Sleep `sleep_hours`, then return.
    Sleep,
}

impl UpsOffMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Return => "return",
            Self::StayOff => "stay_off",
            Self::Sleep => "sleep",
        }
    }

    fn parse(v: &str) -> Result<Self, String> {
        [Self::Return, Self::StayOff, Self::Sleep]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(v))
            .ok_or_else(|| "must be one of return, stay_off, sleep".into())
    }
}

/// `[Shutdown]`: policy and timeline (product §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shutdown {
    pub policy: ShutdownPolicy,
    /// `on_battery_delay` policy: seconds on battery before shutting down (1..=86400).
    pub on_battery_delay_s: u32,
    /// Runtime (s) below which Low Battery fires besides the UPS's own flag (0..=7200).
    pub low_battery_runtime_s: u32,
    /// `threshold` policy: charge at or below this % (0..=100).
    pub threshold_charge_pct: u32,
    /// `threshold` policy: runtime at or below this many minutes (0..=1440).
    pub threshold_runtime_min: u32,
    /// The shutdown command file: a name in `<data-dir>/cmdfiles/`, never a path.
    pub command_file: Option<FileName>,
    /// A: how long the shutdown waits for the command file, s (0..=3600).
    pub command_file_duration_s: u32,
    /// The OS shutdown command, run without a shell.
    pub os_shutdown_command: Argv,
    /// B: how long the OS needs to halt, s (10..=3600).
    pub os_shutdown_duration_s: u32,
    /// Tell the UPS to turn its output off late in the OS halt.
    pub turn_off_ups: bool,
    pub ups_off_mode: UpsOffMode,
    /// `sleep` mode: hours (1..=99; the UPS counts tenths of an hour up to 99.9).
    pub sleep_hours: u32,
    /// Shut down when communication is lost while on battery.
    pub comm_lost_on_battery_shutdown: bool,
    /// ... after the loss has lasted this many seconds (0..=3600).
    pub comm_lost_on_battery_delay_s: u32,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            policy: ShutdownPolicy::LowBattery,
            on_battery_delay_s: 300,
            low_battery_runtime_s: 120,
            threshold_charge_pct: 5,
            threshold_runtime_min: 3,
            command_file: None,
            command_file_duration_s: 0,
            os_shutdown_command: default_os_shutdown_command(),
            os_shutdown_duration_s: 120,
            turn_off_ups: true,
            ups_off_mode: UpsOffMode::Return,
            sleep_hours: 1,
            comm_lost_on_battery_shutdown: true,
            comm_lost_on_battery_delay_s: 60,
        }
    }
}

fn default_os_shutdown_command() -> Argv {
    Argv::from_static(&["/sbin/shutdown", "-h", "+0"])
}

impl Shutdown {
    /// A + B: the shortest window a scheduled shutdown may have, and the runtime below which
    /// Low Runtime fires.
    pub fn min_window_s(&self) -> u64 {
        u64::from(self.command_file_duration_s) + u64::from(self.os_shutdown_duration_s)
    }

    fn set(&mut self, key: &str, v: &str) -> SetResult {
        match key {
            "policy" => put(&mut self.policy, ShutdownPolicy::parse(v)),
            "on_battery_delay_s" => put(&mut self.on_battery_delay_s, parse_range(v, 1, 86_400)),
            "low_battery_runtime_s" => {
                put(&mut self.low_battery_runtime_s, parse_range(v, 0, 7200))
            }
            "threshold_charge_pct" => put(&mut self.threshold_charge_pct, parse_range(v, 0, 100)),
            "threshold_runtime_min" => {
                put(&mut self.threshold_runtime_min, parse_range(v, 0, 1440))
            }
            "command_file" => put(&mut self.command_file, parse_opt_file(v)),
            "command_file_duration_s" => {
                put(&mut self.command_file_duration_s, parse_range(v, 0, 3600))
            }
            "os_shutdown_command" => put(&mut self.os_shutdown_command, Argv::parse(v)),
            "os_shutdown_duration_s" => {
                put(&mut self.os_shutdown_duration_s, parse_range(v, 10, 3600))
            }
            "turn_off_ups" => put(&mut self.turn_off_ups, parse_bool(v)),
            "ups_off_mode" => put(&mut self.ups_off_mode, UpsOffMode::parse(v)),
            "sleep_hours" => put(&mut self.sleep_hours, parse_range(v, 1, 99)),
            "comm_lost_on_battery_shutdown" => {
                put(&mut self.comm_lost_on_battery_shutdown, parse_bool(v))
            }
            "comm_lost_on_battery_delay_s" => put(
                &mut self.comm_lost_on_battery_delay_s,
                parse_range(v, 0, 3600),
            ),
            _ => Err(SetError::UnknownKey),
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        vec![
            ("policy".into(), self.policy.as_str().into()),
            (
                "on_battery_delay_s".into(),
                self.on_battery_delay_s.to_string(),
            ),
            (
                "low_battery_runtime_s".into(),
                self.low_battery_runtime_s.to_string(),
            ),
            (
                "threshold_charge_pct".into(),
                self.threshold_charge_pct.to_string(),
            ),
            (
                "threshold_runtime_min".into(),
                self.threshold_runtime_min.to_string(),
            ),
            ("command_file".into(), fmt_opt_file(&self.command_file)),
            (
                "command_file_duration_s".into(),
                self.command_file_duration_s.to_string(),
            ),
            (
                "os_shutdown_command".into(),
                self.os_shutdown_command.to_string(),
            ),
            (
                "os_shutdown_duration_s".into(),
                self.os_shutdown_duration_s.to_string(),
            ),
            ("turn_off_ups".into(), fmt_bool(self.turn_off_ups)),
            ("ups_off_mode".into(), self.ups_off_mode.as_str().into()),
            ("sleep_hours".into(), self.sleep_hours.to_string()),
            (
                "comm_lost_on_battery_shutdown".into(),
                fmt_bool(self.comm_lost_on_battery_shutdown),
            ),
            (
                "comm_lost_on_battery_delay_s".into(),
                self.comm_lost_on_battery_delay_s.to_string(),
            ),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// [Logging]

/// `[Logging]`: retention. Lower bounds are anti-forensics floors (product §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// Event log size before rotation, KiB (256..=1048576).
    pub event_log_max_kb: u32,
    /// Event log files kept, including the current one (2..=100).
    pub event_log_files: u32,
    /// Seconds between data-log samples (10..=3600).
    pub datalog_interval_s: u32,
    /// Data log size before rotation, KiB (1024..=4194304).
    pub datalog_max_kb: u32,
    /// Data log files kept (2..=100).
    pub datalog_files: u32,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            event_log_max_kb: 1024,
            event_log_files: 5,
            datalog_interval_s: 60,
            datalog_max_kb: 4096,
            datalog_files: 5,
        }
    }
}

fn floor_range(v: &str, floor: u32, max: u32) -> Result<u32, String> {
    parse_range(v, floor, max)
        .map_err(|e| format!("{e}; the minimum is a retention floor that cannot be lowered"))
}

impl Logging {
    fn set(&mut self, key: &str, v: &str) -> SetResult {
        match key {
            "event_log_max_kb" => put(
                &mut self.event_log_max_kb,
                floor_range(v, EVENT_LOG_MIN_KB, 1_048_576),
            ),
            "event_log_files" => put(
                &mut self.event_log_files,
                floor_range(v, EVENT_LOG_MIN_FILES, 100),
            ),
            "datalog_interval_s" => put(&mut self.datalog_interval_s, parse_range(v, 10, 3600)),
            "datalog_max_kb" => put(
                &mut self.datalog_max_kb,
                floor_range(v, DATALOG_MIN_KB, 4_194_304),
            ),
            "datalog_files" => put(
                &mut self.datalog_files,
                floor_range(v, DATALOG_MIN_FILES, 100),
            ),
            _ => Err(SetError::UnknownKey),
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        vec![
            ("event_log_max_kb".into(), self.event_log_max_kb.to_string()),
            ("event_log_files".into(), self.event_log_files.to_string()),
            (
                "datalog_interval_s".into(),
                self.datalog_interval_s.to_string(),
            ),
            ("datalog_max_kb".into(), self.datalog_max_kb.to_string()),
            ("datalog_files".into(), self.datalog_files.to_string()),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// [Web]

/// `[Web]`: the HTTPS UI.
///
/// `bind` defaults to `0.0.0.0`: product §8.15 presents listening on localhost as an opt-in
/// hardening ("`bind` option to listen on localhost only", next to "firewall the UI port"),
/// whereas NUT and NIS are explicitly "localhost by default" (§7). The UI is the primary way to
/// manage a headless server, it is HTTPS-only and authenticated, and `::` would fail outright
/// on hosts with IPv6 disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Web {
    pub bind: IpAddr,
    pub port: u16,
    /// Session idle timeout, minutes (1..=15: product §8.8 promises at most 15).
    pub idle_timeout_min: u32,
    /// Certificate chain file name in `<data-dir>/tls/`.
    pub cert_file: FileName,
    /// Private key file name in `<data-dir>/tls/`.
    pub key_file: FileName,
    /// PKCS#12 keystore name in `<data-dir>/tls/`, used instead of cert/key when set; its
    /// password belongs in `[Credentials] pkcs12_password`.
    pub pkcs12_file: Option<FileName>,
}

impl Default for Web {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 6547,
            idle_timeout_min: 15,
            cert_file: FileName::from_static("cert.pem"),
            key_file: FileName::from_static("key.pem"),
            pkcs12_file: None,
        }
    }
}

impl Web {
    fn set(&mut self, key: &str, v: &str) -> SetResult {
        match key {
            "bind" => put(&mut self.bind, parse_ip(v)),
            "port" => put(&mut self.port, parse_port(v)),
            "idle_timeout_min" => put(
                &mut self.idle_timeout_min,
                parse_range(v, 1, 15)
                    .map_err(|e| format!("{e} (sessions end after at most 15 idle minutes)")),
            ),
            "cert_file" => put(&mut self.cert_file, FileName::parse(v)),
            "key_file" => put(&mut self.key_file, FileName::parse(v)),
            "pkcs12_file" => put(&mut self.pkcs12_file, parse_opt_file(v)),
            _ => Err(SetError::UnknownKey),
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        vec![
            ("bind".into(), self.bind.to_string()),
            ("port".into(), self.port.to_string()),
            ("idle_timeout_min".into(), self.idle_timeout_min.to_string()),
            ("cert_file".into(), self.cert_file.to_string()),
            ("key_file".into(), self.key_file.to_string()),
            ("pkcs12_file".into(), fmt_opt_file(&self.pkcs12_file)),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// [SNMP]

/// Access granted to a v1/v2c community.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// A v1/v2c community (`name:ro` or `name:rw`).
#[derive(Clone, PartialEq, Eq)]
pub struct Community {
    pub name: String,
    pub access: Access,
}

impl fmt::Debug for Community {
    // A community string is a clear-text password; keep it out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Community")
            .field("name", &"<redacted>")
            .field("access", &self.access)
            .finish()
    }
}

impl Community {
    fn parse(v: &str) -> Result<Self, String> {
        let (name, access) = match v.rsplit_once(':') {
            Some((n, "ro")) => (n, Access::ReadOnly),
            Some((n, "rw")) => (n, Access::ReadWrite),
            None => (v, Access::ReadOnly),
            Some(_) => return Err("community access must be ':ro' or ':rw'".into()),
        };
        if name.is_empty()
            || name.len() > 32
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(
                "community names are 1 to 32 characters from letters, digits, '.', '_', '-'".into(),
            );
        }
        Ok(Self {
            name: name.into(),
            access,
        })
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = match self.access {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
        };
        write!(f, "{}:{a}", self.name)
    }
}

/// An address or network (`10.0.0.0/24`, `2001:db8::/32`, `192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    fn parse(v: &str) -> Result<Self, String> {
        let (a, l) = match v.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (v, None),
        };
        let addr = parse_ip(a)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => parse_range(l, 0, max).map_err(|e| format!("prefix length {e}"))?,
            None => max,
        };
        let len = u8::try_from(len).map_err(|_| "prefix length is out of range".to_string())?;
        Ok(Self { addr, len })
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn parse_list<T>(
    v: &str,
    what: &str,
    item: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = v.split(',').map(str::trim).collect();
    if items.len() > MAX_LIST {
        return Err(format!("at most {MAX_LIST} {what} are allowed"));
    }
    items
        .into_iter()
        .map(|i| item(i).map_err(|e| format!("{what}: {e}")))
        .collect()
}

fn fmt_list<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[SNMP]`: reserved for the SNMP agent; parsed and validated now so files stay portable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snmp {
    /// Off by default (product §8.11).
    pub enabled: bool,
    pub bind: IpAddr,
    pub port: u16,
    /// v1/v2c send the community in clear text: separately opt-in.
    pub v1_v2c_enabled: bool,
    pub communities: Vec<Community>,
    /// Managers allowed to query; empty means none.
    pub managers: Vec<IpPrefix>,
    pub trap_receivers: Vec<IpAddr>,
    pub trap_port: u16,
}

impl Default for Snmp {
    fn default() -> Self {
        Self {
            enabled: false,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 161,
            v1_v2c_enabled: false,
            communities: Vec::new(),
            managers: Vec::new(),
            trap_receivers: Vec::new(),
            trap_port: 162,
        }
    }
}

impl Snmp {
    fn set(&mut self, key: &str, v: &str) -> SetResult {
        match key {
            "enabled" => put(&mut self.enabled, parse_bool(v)),
            "bind" => put(&mut self.bind, parse_ip(v)),
            "port" => put(&mut self.port, parse_port(v)),
            "v1_v2c_enabled" => put(&mut self.v1_v2c_enabled, parse_bool(v)),
            "communities" => put(
                &mut self.communities,
                parse_list(v, "communities", Community::parse),
            ),
            "managers" => put(
                &mut self.managers,
                parse_list(v, "managers", IpPrefix::parse),
            ),
            "trap_receivers" => put(
                &mut self.trap_receivers,
                parse_list(v, "trap receivers", parse_ip),
            ),
            "trap_port" => put(&mut self.trap_port, parse_port(v)),
            _ => Err(SetError::UnknownKey),
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        vec![
            ("enabled".into(), fmt_bool(self.enabled)),
            ("bind".into(), self.bind.to_string()),
            ("port".into(), self.port.to_string()),
            ("v1_v2c_enabled".into(), fmt_bool(self.v1_v2c_enabled)),
            ("communities".into(), fmt_list(&self.communities)),
            ("managers".into(), fmt_list(&self.managers)),
            ("trap_receivers".into(), fmt_list(&self.trap_receivers)),
            ("trap_port".into(), self.trap_port.to_string()),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// [NUT] and [NIS]

/// `[NUT]` / `[NIS]`: a TCP server, off by default and bound to localhost (product §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetService {
    pub enabled: bool,
    pub bind: IpAddr,
    pub port: u16,
}

impl NetService {
    pub fn nut_default() -> Self {
        Self {
            enabled: false,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 3493,
        }
    }

    pub fn nis_default() -> Self {
        Self {
            enabled: false,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 3551,
        }
    }

    fn set(&mut self, key: &str, v: &str) -> SetResult {
        match key {
            "enabled" => put(&mut self.enabled, parse_bool(v)),
            "bind" => put(&mut self.bind, parse_ip(v)),
            "port" => put(&mut self.port, parse_port(v)),
            _ => Err(SetError::UnknownKey),
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        vec![
            ("enabled".into(), fmt_bool(self.enabled)),
            ("bind".into(), self.bind.to_string()),
            ("port".into(), self.port.to_string()),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// [Credentials]

/// `[Credentials]`: a one-shot reset channel (product §8.5). The service validates and stores
/// these in the encrypted credential store, then rewrites the INI without them
/// ([`Config::take_credentials`], [`super::scrub_credentials`]). Never written to the backup.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Password of the `[Web] pkcs12_file` keystore.
    pub pkcs12_password: Option<String>,
    /// `[Notifications]` SMTP AUTH password: moved into the encrypted credential store, then
    /// scrubbed from the file.
    pub smtp_password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = |o: &Option<String>| if o.is_some() { "<redacted>" } else { "<none>" };
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &r(&self.password))
            .field("pkcs12_password", &r(&self.pkcs12_password))
            .field("smtp_password", &r(&self.smtp_password))
            .finish()
    }
}

fn parse_secret(v: &str, max: usize) -> Result<Option<String>, String> {
    // Policy (length, classes) is the credential store's job; here only what keeps the file sane.
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > max {
        return Err(format!("must be at most {max} bytes"));
    }
    Ok(Some(v.to_string()))
}

impl Credentials {
    /// Keys whose values [`Config::get`] refuses to return.
    pub const SECRET_KEYS: [&'static str; 3] = ["password", "pkcs12_password", "smtp_password"];

    fn set(&mut self, key: &str, v: &str) -> SetResult {
        match key {
            "username" => put(&mut self.username, parse_secret(v, 128)),
            "password" => put(&mut self.password, parse_secret(v, 128)),
            "pkcs12_password" => put(&mut self.pkcs12_password, parse_secret(v, 1024)),
            "smtp_password" => put(&mut self.smtp_password, parse_secret(v, 256)),
            _ => Err(SetError::UnknownKey),
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in [
            ("username", &self.username),
            ("password", &self.password),
            ("pkcs12_password", &self.pkcs12_password),
            ("smtp_password", &self.smtp_password),
        ] {
            if let Some(v) = v {
                out.push((k.to_string(), v.clone()));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Config

/// The whole `upsguard.ini`. `Default` is what a fresh install runs with: no credentials,
/// network services other than the UI off, localhost binds for NUT and NIS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub communication: Communication,
    pub shutdown: Shutdown,
    pub events: Events,
    /// Scheduled shutdowns by (lowercase) name.
    pub schedule: BTreeMap<String, Schedule>,
    pub logging: Logging,
    pub web: Web,
    pub snmp: Snmp,
    pub nut: NetService,
    pub nis: NetService,
    pub notifications: Notifications,
    /// Private so it can only leave through [`Config::take_credentials`].
    credentials: Option<Credentials>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            communication: Communication::default(),
            shutdown: Shutdown::default(),
            events: Events::default(),
            schedule: BTreeMap::new(),
            logging: Logging::default(),
            web: Web::default(),
            snmp: Snmp::default(),
            nut: NetService::nut_default(),
            nis: NetService::nis_default(),
            notifications: Notifications::default(),
            credentials: None,
        }
    }
}

impl Config {
    /// Whether a `[Credentials]` section was present.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// Take the `[Credentials]` section out; a later [`Config::save`] writes the file without it.
    pub fn take_credentials(&mut self) -> Option<Credentials> {
        self.credentials.take()
    }

    /// Whether the file had a `[Credentials]` section with anything in it.
    pub fn credentials_present(&self) -> bool {
        self.credentials.as_ref().is_some_and(|c| {
            c.username.is_some()
                || c.password.is_some()
                || c.smtp_password.is_some()
                || c.pkcs12_password.is_some()
        })
    }

    /// Set one value with full validation. Section and key names match ASCII
    /// case-insensitively. In `[Schedule]` an empty value removes the schedule.
    ///
    /// Errors name the section, the key and the rule that was broken; on error nothing changes.
    pub fn set(&mut self, section: &str, key: &str, value: &str) -> Result<(), ConfigError> {
        let sid = SectionId::from_name(section).ok_or_else(|| ConfigError::UnknownSection {
            section: section.to_string(),
        })?;
        let sname = sid.name();
        ini::check_key(key).map_err(|rule| ConfigError::InvalidKey {
            section: sname.into(),
            key: key.into(),
            rule,
        })?;
        ini::check_value(value).map_err(|rule| ConfigError::InvalidValue {
            section: sname.into(),
            key: key.into(),
            rule,
        })?;
        let k = key.to_ascii_lowercase();
        let r = match sid {
            SectionId::Communication => self.communication.set(&k, value),
            SectionId::Shutdown => self.set_shutdown(&k, value),
            SectionId::Events => match self.events.set(&k, value) {
                Ok(true) => Ok(()),
                Ok(false) => Err(SetError::UnknownKey),
                Err(e) => Err(SetError::Invalid(e)),
            },
            SectionId::Schedule => self.set_schedule(&k, value),
            SectionId::Logging => self.logging.set(&k, value),
            SectionId::Web => self.web.set(&k, value),
            SectionId::Snmp => self.snmp.set(&k, value),
            SectionId::Nut => self.nut.set(&k, value),
            SectionId::Nis => self.nis.set(&k, value),
            SectionId::Notifications => match self.notifications.set(&k, value) {
                Ok(true) => Ok(()),
                Ok(false) => Err(SetError::UnknownKey),
                Err(e) => Err(SetError::Invalid(e)),
            },
            SectionId::Credentials => {
                let mut c = self.credentials.clone().unwrap_or_default();
                c.set(&k, value).map(|()| self.credentials = Some(c))
            }
        };
        r.map_err(|e| match e {
            SetError::UnknownKey => ConfigError::UnknownKey {
                section: sname.into(),
                key: key.into(),
            },
            SetError::Invalid(rule) => ConfigError::InvalidValue {
                section: sname.into(),
                key: key.into(),
                rule,
            },
        })
    }

    fn set_shutdown(&mut self, key: &str, v: &str) -> SetResult {
        let mut s = self.shutdown.clone();
        s.set(key, v)?;
        // Changing A or B must not silently invalidate a schedule that was accepted before.
        let min = s.min_window_s();
        if let Some((name, _)) = self.schedule.iter().find(|(_, sch)| sch.window_s() < min) {
            return Err(SetError::Invalid(format!(
                "command_file_duration_s + os_shutdown_duration_s = {min} s would exceed the window of schedule '{name}'"
            )));
        }
        self.shutdown = s;
        Ok(())
    }

    fn set_schedule(&mut self, key: &str, v: &str) -> SetResult {
        let name = schedule::check_name(key)?;
        if v.is_empty() {
            self.schedule.remove(&name);
            return Ok(());
        }
        let s = Schedule::parse(v)?;
        s.check_window(self.shutdown.min_window_s())?;
        if !self.schedule.contains_key(&name) && self.schedule.len() >= MAX_SCHEDULES {
            return Err(SetError::Invalid(format!(
                "at most {MAX_SCHEDULES} schedules are allowed"
            )));
        }
        self.schedule.insert(name, s);
        Ok(())
    }

    /// The stored text of one value (as it would be written). Secrets are never returned.
    pub fn get(&self, section: &str, key: &str) -> Result<String, ConfigError> {
        let sid = SectionId::from_name(section).ok_or_else(|| ConfigError::UnknownSection {
            section: section.to_string(),
        })?;
        let k = key.to_ascii_lowercase();
        if sid == SectionId::Credentials && Credentials::SECRET_KEYS.contains(&k.as_str()) {
            return Err(ConfigError::Secret {
                section: sid.name().into(),
                key: key.into(),
            });
        }
        self.section_entries(sid)
            .into_iter()
            .find(|(ek, _)| *ek == k)
            .map(|(_, v)| v)
            .ok_or_else(|| ConfigError::UnknownKey {
                section: sid.name().into(),
                key: key.into(),
            })
    }

    /// Every `(key, value)` of one section, as written.
    pub(crate) fn section_entries(&self, sid: SectionId) -> Vec<(String, String)> {
        match sid {
            SectionId::Communication => self.communication.entries(),
            SectionId::Shutdown => self.shutdown.entries(),
            SectionId::Events => self
                .events
                .iter()
                .map(|(k, a)| (k.to_string(), a.to_string()))
                .collect(),
            SectionId::Schedule => self
                .schedule
                .iter()
                .map(|(k, s)| (k.clone(), s.to_string()))
                .collect(),
            SectionId::Logging => self.logging.entries(),
            SectionId::Web => self.web.entries(),
            SectionId::Snmp => self.snmp.entries(),
            SectionId::Nut => self.nut.entries(),
            SectionId::Nis => self.nis.entries(),
            SectionId::Notifications => self.notifications.entries(),
            SectionId::Credentials => self
                .credentials
                .as_ref()
                .map(Credentials::entries)
                .unwrap_or_default(),
        }
    }

    /// Serialise to INI text. Every value is re-validated by reading the text back through
    /// [`Config::set`]; anything that would not load back identically is an error naming the
    /// key (this also catches out-of-range values assigned directly to the public fields).
    pub fn to_ini(&self) -> Result<String, ConfigError> {
        let mut w = Writer::new();
        w.comment("upsguard configuration. Written by upsguard; check edits with `upsguard config check FILE`.");
        for sid in SectionId::ALL {
            if sid == SectionId::Credentials && self.credentials.is_none() {
                continue;
            }
            w.blank();
            if let Some(help) = section_help(sid) {
                w.comment(help);
            }
            w.section(sid.name()).map_err(write_err)?;
            for (k, v) in self.section_entries(sid) {
                w.entry(&k, &v).map_err(write_err)?;
            }
        }
        let text = w.finish();

        let doc = ini::parse(text.as_bytes())
            .map_err(|source| ConfigError::Parse { path: None, source })?;
        let (back, warnings) = Config::from_document(&doc);
        if let Some(first) = warnings.into_iter().next() {
            return Err(ConfigError::InvalidValue {
                section: first.section.unwrap_or_default(),
                key: first.key.unwrap_or_default(),
                rule: first.message,
            });
        }
        if back != *self {
            for sid in SectionId::ALL {
                let (a, b) = (self.section_entries(sid), back.section_entries(sid));
                if let Some((k, _)) = a.iter().find(|e| !b.contains(e)) {
                    return Err(ConfigError::InvalidValue {
                        section: sid.name().into(),
                        key: k.clone(),
                        rule: "value does not read back unchanged".into(),
                    });
                }
            }
            return Err(ConfigError::InvalidValue {
                section: String::new(),
                key: String::new(),
                rule: "configuration does not read back unchanged".into(),
            });
        }
        Ok(text)
    }

    /// Build a config from a parsed file: defaults, then every entry through [`Config::set`].
    /// Problems become warnings naming line, section, key and rule; nothing is fatal.
    pub fn from_document(doc: &Document) -> (Config, Vec<ConfigWarning>) {
        let mut cfg = Config::default();
        let mut warnings = Vec::new();

        for e in &doc.orphans {
            warnings.push(ConfigWarning {
                line: Some(e.line),
                section: None,
                key: Some(e.key.clone()),
                kind: WarningKind::UnknownKey,
                file: None,
                message: "key appears before any [Section] header and is ignored".into(),
            });
        }
        let mut seen_sections: Vec<SectionId> = Vec::new();
        for s in &doc.sections {
            match SectionId::from_name(&s.name) {
                None => warnings.push(ConfigWarning {
                    line: Some(s.line),
                    section: Some(s.name.clone()),
                    key: None,
                    kind: WarningKind::UnknownSection,
                    file: None,
                    message: format!(
                        "unknown section; its {} entries are ignored{}",
                        s.entries.len(),
                        did_you_mean(
                            &s.name,
                            SectionId::ALL.iter().map(|s| s.name()),
                            |n| format!("[{n}]")
                        )
                    ),
                }),
                Some(sid) if seen_sections.contains(&sid) => warnings.push(ConfigWarning {
                    line: Some(s.line),
                    section: Some(sid.name().into()),
                    key: None,
                    kind: WarningKind::Duplicate,
                    file: None,
                    message: "section appears more than once; entries are merged".into(),
                }),
                Some(sid) => seen_sections.push(sid),
            }
        }

        for sid in SectionId::LOAD_ORDER {
            let mut seen_keys: Vec<String> = Vec::new();
            let entries = doc
                .sections
                .iter()
                .filter(|s| SectionId::from_name(&s.name) == Some(sid))
                .flat_map(|s| s.entries.iter());
            for e in entries {
                let lk = e.key.to_ascii_lowercase();
                if seen_keys.contains(&lk) {
                    warnings.push(ConfigWarning {
                        line: Some(e.line),
                        section: Some(sid.name().into()),
                        key: Some(e.key.clone()),
                        kind: WarningKind::Duplicate,
                        file: None,
                        message: "key is given more than once; the first value is used".into(),
                    });
                    continue;
                }
                seen_keys.push(lk);
                if let Err(err) = cfg.set(sid.name(), &e.key, &e.value) {
                    let (kind, message) = match err {
                        ConfigError::UnknownKey { .. } => {
                            let known = known_keys(sid);
                            let hint = did_you_mean(
                                &e.key,
                                known.iter().map(String::as_str),
                                str::to_string,
                            );
                            (
                                WarningKind::UnknownKey,
                                format!("unknown key; ignored{hint}"),
                            )
                        }
                        ConfigError::InvalidValue { rule, .. }
                        | ConfigError::InvalidKey { rule, .. } => {
                            let keeping = cfg
                                .get(sid.name(), &e.key)
                                .map(|d| format!("; keeping {}", ini::show(&d)))
                                .unwrap_or_default();
                            (WarningKind::InvalidValue, format!("{rule}{keeping}"))
                        }
                        other => (WarningKind::InvalidValue, other.to_string()),
                    };
                    warnings.push(ConfigWarning {
                        line: Some(e.line),
                        section: Some(sid.name().into()),
                        key: Some(e.key.clone()),
                        kind,
                        file: None,
                        message,
                    });
                }
            }
        }
        // Report in file order (entries were applied in section order).
        warnings.sort_by_key(|w| w.line);
        (cfg, warnings)
    }
}

/// Every key a section knows (for suggestions). `[Schedule]` keys are free-form names.
pub(crate) fn known_keys(sid: SectionId) -> Vec<String> {
    match sid {
        SectionId::Credentials => ["username", "password", "pkcs12_password", "smtp_password"]
            .into_iter()
            .map(String::from)
            .collect(),
        SectionId::Events => super::events::EVENTS
            .iter()
            .map(|e| e.id.to_string())
            .collect(),
        _ => Config::default()
            .section_entries(sid)
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
    }
}

/// Edit distance (insertions, deletions, substitutions; ASCII case-insensitive).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<u8> = a.bytes().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<u8> = b.bytes().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(usize::MAX) + usize::from(ca != cb);
            let del = prev
                .get(j + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// The known name closest to `word`, if it is close enough to be a typo of it.
pub(crate) fn closest<'a>(word: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    // Long names tolerate more typos; a one-letter key matches nothing by accident.
    let limit = (word.len() / 3).clamp(1, 3);
    known
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// ` (did you mean `policy`?)`, or nothing.
fn did_you_mean<'a>(
    word: &str,
    known: impl Iterator<Item = &'a str>,
    show: impl Fn(&str) -> String,
) -> String {
    if word.len() > 64 {
        return String::new();
    }
    closest(word, known)
        .map(|k| format!(" (did you mean `{}`?)", show(k)))
        .unwrap_or_default()
}

/// One-line reminders written above the sections whose syntax is not obvious.
fn section_help(sid: SectionId) -> Option<&'static str> {
    match sid {
        SectionId::Shutdown => Some(
            "policy: immediately | on_battery_delay | low_battery | threshold | low_runtime. command_file is a name\n\
             in <data-dir>/cmdfiles/. os_shutdown_command runs without a shell: split at spaces, 'single' and\n\
             \"double\" quotes group, backslash escapes; the program must be an absolute path.",
        ),
        SectionId::Events => Some(
            "event = none | log, notify, command_file:NAME[:SECONDS], shutdown[:DELAY_SECONDS]",
        ),
        SectionId::Schedule => Some(
            "name = daily HH:MM wake HH:MM | weekly DAY HH:MM wake DAY HH:MM |\n\
             once YYYY-MM-DDTHH:MM wake YYYY-MM-DDTHH:MM   (host local time; DAY = mon..sun)",
        ),
        SectionId::Logging => Some("The minimum of each size and file count is a retention floor."),
        SectionId::Notifications => Some(
            "smtp_security: starttls | tls | none (none only to a loopback relay). mail_to: comma-separated.\n\
             The SMTP password is given once as smtp_password in the credentials section: it is moved to the\n\
             encrypted credential store and removed from this file.\n\
             *_pin_sha256: SHA-256 fingerprint (AB:CD:...) of the server's certificate, for self-signed receivers.",
        ),
        _ => None,
    }
}

fn write_err(e: ini::WriteError) -> ConfigError {
    if e.key.is_empty() {
        ConfigError::InvalidKey {
            section: e.section,
            key: String::new(),
            rule: e.rule,
        }
    } else {
        ConfigError::InvalidValue {
            section: e.section,
            key: e.key,
            rule: e.rule,
        }
    }
}
