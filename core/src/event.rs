//! The event catalogue (product spec §3).
//!
//! Every event has a stable string id (used in logs, the JSON API, config keys and
//! notifications — never rename one), a fixed [`Severity`], and either a *cleared form*
//! (the same id with `cleared = true`, e.g. "Overload Cleared") or none. Some conditions
//! are modelled as two separate ids instead, because the spec names both sides as events of
//! their own (On Battery / Input Power Restored, Communication Lost / Established, Output
//! Off / On, Sleeping / Woke); [`EventId::opposite`] links those pairs.
//!
//! The shutdown state machine emits the UPS-condition events; the host emits the rest
//! (monitoring, security, configuration) using the same catalogue.

use core::fmt;
use core::str::FromStr;

use crate::time::Instant;

/// How serious an event is. Fixed per id; cleared forms are always [`Severity::Info`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal ),* $(,)?) => {
        /// A catalogued event. The discriminant order is not stable; the string id is.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum EventId {
            $( $(#[$doc])* $variant, )*
        }

        impl EventId {
            /// Every event, in catalogue order.
            pub const ALL: [EventId; catalogue!(@count $($variant)*)] = [ $( EventId::$variant, )* ];

            /// The stable string id.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( EventId::$variant => $id, )*
                }
            }

            /// Parse a stable string id (exact, case-sensitive).
            pub fn from_id(s: &str) -> Option<EventId> {
                match s {
                    $( $id => Some(EventId::$variant), )*
                    _ => None,
                }
            }
        }
    };
    (@count) => { 0usize };
    (@count $head:ident $($tail:ident)*) => { 1usize + catalogue!(@count $($tail)*) };
}

catalogue! {
    /// The UPS transferred to battery.
    OnBattery = "on_battery",
    /// Mains is back; the UPS is on line again.
    PowerRestored = "power_restored",
    /// The UPS raised its low-battery flag, or runtime fell below the low-battery setting.
    LowBattery = "low_battery",
    /// On line, but the runtime is below the configured threshold (the battery needs charging).
    BatteryDischarged = "battery_discharged",
    /// Runtime is below command-file + OS-shutdown duration (+ margin). Always shuts down.
    LowRuntime = "low_runtime",
    /// On battery for longer than the configured limit.
    TimeOnBatteryExceeded = "time_on_battery_exceeded",
    Overload = "overload",
    CommLost = "comm_lost",
    CommEstablished = "comm_established",
    /// The link died while the UPS was last known to be on battery.
    CommLostOnBattery = "comm_lost_on_battery",
    ReplaceBattery = "replace_battery",
    BatteryDisconnected = "battery_disconnected",
    /// The UPS began a battery self-test (ordered here, by its own schedule or from its
    /// front panel): on battery on purpose, not a power failure.
    SelfTestStarted = "self_test_started",
    SelfTestPassed = "self_test_passed",
    SelfTestFailed = "self_test_failed",
    CalibrationStarted = "calibration_started",
    CalibrationFinished = "calibration_finished",
    CalibrationAborted = "calibration_aborted",
    /// Internal temperature at or above the user threshold.
    TemperatureExceeded = "temperature_exceeded",
    SmartBoost = "smart_boost",
    SmartTrim = "smart_trim",
    UpsOutputOff = "ups_output_off",
    UpsOutputOn = "ups_output_on",
    UpsSleeping = "ups_sleeping",
    UpsWoke = "ups_woke",
    /// A shutdown sequence began (Graceful Shutdown Started).
    ShutdownStarted = "shutdown_started",
    /// A shutdown sequence was cancelled before the OS shutdown ran.
    ShutdownCancelled = "shutdown_cancelled",
    MonitoringStarted = "monitoring_started",
    MonitoringStopped = "monitoring_stopped",
    Login = "login",
    Logout = "logout",
    LoginFailed = "login_failed",
    AccountLocked = "account_locked",
    CredentialsChanged = "credentials_changed",
    ConfigurationChanged = "configuration_changed",
    /// The main config file was missing or unreadable; the backup copy was used.
    ConfigBackupUsed = "config_backup_used",
    CertificateExpiring = "certificate_expiring",
    /// A command file was refused because it (or its folder) is writable by others.
    CommandFileRefused = "command_file_refused",
    /// The encrypted credential store was damaged and restored from its backup copy.
    CredentialsBackupUsed = "credentials_backup_used",
    /// The credential store and its backup are both gone although one existed before (its
    /// key or earlier events are there): a new, empty store is created.
    CredentialsMissing = "credentials_missing",
    /// A file or folder (config, data dir, `tls/`) is writable by others or owned by another
    /// user and was not used.
    FilePermissionsRefused = "file_permissions_refused",
    /// A configuration entry (unknown section or key, invalid value) was not applied.
    ConfigValueRefused = "config_value_refused",
    /// Writing the event log failed (e.g. disk full); logged once writing works again.
    EventLogFailed = "event_log_failed",
    /// The event log is writable again; says how many events were lost meanwhile.
    EventLogRecovered = "event_log_recovered",
}

impl EventId {
    /// The fixed severity of the active form.
    pub const fn severity(self) -> Severity {
        use EventId::*;
        match self {
            LowBattery | LowRuntime | CommLostOnBattery | BatteryDisconnected
            | TemperatureExceeded => Severity::Critical,
            OnBattery
            | BatteryDischarged
            | TimeOnBatteryExceeded
            | Overload
            | CommLost
            | ReplaceBattery
            | SelfTestFailed
            | UpsOutputOff
            | UpsSleeping
            | LoginFailed
            | AccountLocked
            | ConfigBackupUsed
            | CertificateExpiring
            | CommandFileRefused
            | CredentialsBackupUsed
            | CredentialsMissing
            | FilePermissionsRefused
            | ConfigValueRefused
            | EventLogFailed => Severity::Warning,
            PowerRestored | CommEstablished | SelfTestStarted | SelfTestPassed
            | CalibrationStarted | CalibrationFinished | CalibrationAborted | SmartBoost
            | SmartTrim | UpsOutputOn | UpsWoke | ShutdownStarted | ShutdownCancelled
            | MonitoringStarted | MonitoringStopped | Login | Logout | CredentialsChanged
            | ConfigurationChanged | EventLogRecovered => Severity::Info,
        }
    }

    /// Whether the event has a cleared form (same id, `cleared = true`).
    pub const fn has_cleared_form(self) -> bool {
        use EventId::*;
        matches!(
            self,
            LowBattery
                | BatteryDischarged
                | LowRuntime
                | TimeOnBatteryExceeded
                | Overload
                | CommLostOnBattery
                | ReplaceBattery
                | BatteryDisconnected
                | TemperatureExceeded
                | SmartBoost
                | SmartTrim
        )
    }

    /// The other half of a condition that the spec names as two events.
    pub const fn opposite(self) -> Option<EventId> {
        use EventId::*;
        match self {
            OnBattery => Some(PowerRestored),
            PowerRestored => Some(OnBattery),
            CommLost => Some(CommEstablished),
            CommEstablished => Some(CommLost),
            UpsOutputOff => Some(UpsOutputOn),
            UpsOutputOn => Some(UpsOutputOff),
            UpsSleeping => Some(UpsWoke),
            UpsWoke => Some(UpsSleeping),
            ShutdownStarted => Some(ShutdownCancelled),
            ShutdownCancelled => Some(ShutdownStarted),
            MonitoringStarted => Some(MonitoringStopped),
            MonitoringStopped => Some(MonitoringStarted),
            EventLogFailed => Some(EventLogRecovered),
            EventLogRecovered => Some(EventLogFailed),
            _ => None,
        }
    }

    /// Whether the event can be configured to shut the system down (spec §3 "may shut
    /// down"). [`EventId::LowRuntime`] always does.
    pub const fn may_shut_down(self) -> bool {
        use EventId::*;
        matches!(
            self,
            OnBattery
                | LowBattery
                | LowRuntime
                | TimeOnBatteryExceeded
                | Overload
                | CommLostOnBattery
                | TemperatureExceeded
        )
    }

    /// Security events are always logged, whatever the administrator configures.
    pub const fn is_security(self) -> bool {
        use EventId::*;
        matches!(
            self,
            Login
                | Logout
                | LoginFailed
                | AccountLocked
                | CredentialsChanged
                | ConfigurationChanged
                | ConfigBackupUsed
                | CertificateExpiring
                | CommandFileRefused
                | CredentialsBackupUsed
                | CredentialsMissing
                | FilePermissionsRefused
        )
    }

    /// English title of the active form.
    pub const fn title(self) -> &'static str {
        use EventId::*;
        match self {
            OnBattery => "On Battery",
            PowerRestored => "Input Power Restored",
            LowBattery => "Low Battery",
            BatteryDischarged => "Battery Discharged",
            LowRuntime => "Low Runtime",
            TimeOnBatteryExceeded => "Time On Battery Exceeded",
            Overload => "Overload",
            CommLost => "Communication Lost",
            CommEstablished => "Communication Established",
            CommLostOnBattery => "Communication Lost While On Battery",
            ReplaceBattery => "Replace Battery",
            BatteryDisconnected => "Battery Disconnected",
            SelfTestStarted => "Self-Test Started",
            SelfTestPassed => "Self-Test Passed",
            SelfTestFailed => "Self-Test Failed",
            CalibrationStarted => "Runtime Calibration Started",
            CalibrationFinished => "Runtime Calibration Finished",
            CalibrationAborted => "Runtime Calibration Aborted",
            TemperatureExceeded => "Internal Temperature Exceeded",
            SmartBoost => "SmartBoost Active",
            SmartTrim => "SmartTrim Active",
            UpsOutputOff => "UPS Output Off",
            UpsOutputOn => "UPS Output On",
            UpsSleeping => "UPS Sleeping",
            UpsWoke => "UPS Woke",
            ShutdownStarted => "Graceful Shutdown Started",
            ShutdownCancelled => "Graceful Shutdown Cancelled",
            MonitoringStarted => "Monitoring Started",
            MonitoringStopped => "Monitoring Stopped",
            Login => "Login",
            Logout => "Logout",
            LoginFailed => "Login Failed",
            AccountLocked => "Account Locked",
            CredentialsChanged => "Credentials Changed",
            ConfigurationChanged => "Configuration Changed",
            ConfigBackupUsed => "Configuration Backup Used",
            CertificateExpiring => "Certificate Expiring",
            CommandFileRefused => "Command File Refused",
            CredentialsBackupUsed => "Credential Store Restored From Backup",
            CredentialsMissing => "Credential Store Missing",
            FilePermissionsRefused => "File Permissions Refused",
            ConfigValueRefused => "Configuration Value Refused",
            EventLogFailed => "Event Log Write Failed",
            EventLogRecovered => "Event Log Recovered",
        }
    }

    /// English title of the cleared form, if the event has one.
    pub const fn cleared_title(self) -> Option<&'static str> {
        use EventId::*;
        match self {
            LowBattery => Some("Low Battery Cleared"),
            BatteryDischarged => Some("Battery Recharged"),
            LowRuntime => Some("Low Runtime Cleared"),
            TimeOnBatteryExceeded => Some("Time On Battery Exceeded Cleared"),
            Overload => Some("Overload Cleared"),
            CommLostOnBattery => Some("Communication Lost While On Battery Cleared"),
            ReplaceBattery => Some("Replace Battery Cleared"),
            BatteryDisconnected => Some("Battery Reconnected"),
            TemperatureExceeded => Some("Internal Temperature Normal"),
            SmartBoost => Some("SmartBoost Ended"),
            SmartTrim => Some("SmartTrim Ended"),
            _ => None,
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The string is not a catalogued event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnknownEventId;

impl fmt::Display for UnknownEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown event id")
    }
}

impl core::error::Error for UnknownEventId {}

impl FromStr for EventId {
    type Err = UnknownEventId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventId::from_id(s).ok_or(UnknownEventId)
    }
}

/// One occurrence of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Event {
    pub id: EventId,
    /// The cleared form (only meaningful when [`EventId::has_cleared_form`]).
    pub cleared: bool,
    pub at: Instant,
}

impl Event {
    pub const fn active(id: EventId, at: Instant) -> Self {
        Event {
            id,
            cleared: false,
            at,
        }
    }

    pub const fn cleared(id: EventId, at: Instant) -> Self {
        Event {
            id,
            cleared: true,
            at,
        }
    }

    /// Severity of this occurrence: the id's severity, or Info for a cleared form.
    pub const fn severity(&self) -> Severity {
        if self.cleared {
            Severity::Info
        } else {
            self.id.severity()
        }
    }

    /// English title of this occurrence (active or cleared form).
    pub const fn title(&self) -> &'static str {
        if self.cleared {
            match self.id.cleared_title() {
                Some(t) => t,
                None => self.id.title(),
            }
        } else {
            self.id.title()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for (i, a) in EventId::ALL.iter().enumerate() {
            assert_eq!(a.as_str().parse::<EventId>(), Ok(*a));
            assert_eq!(EventId::from_id(a.as_str()), Some(*a));
            for b in EventId::ALL.iter().skip(i + 1) {
                assert_ne!(a.as_str(), b.as_str());
                assert_ne!(a.title(), b.title());
            }
            // Ids are snake_case ASCII: safe in logs, URLs and INI keys.
            assert!(
                a.as_str()
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c == b'_')
            );
        }
        assert_eq!("On_Battery".parse::<EventId>(), Err(UnknownEventId));
        assert_eq!("".parse::<EventId>(), Err(UnknownEventId));
    }

    #[test]
    fn cleared_forms_and_pairs_are_consistent() {
        for id in EventId::ALL {
            assert_eq!(id.has_cleared_form(), id.cleared_title().is_some(), "{id}");
            // A condition is either a cleared-form event or one half of a pair, never both.
            assert!(!(id.has_cleared_form() && id.opposite().is_some()), "{id}");
            if let Some(o) = id.opposite() {
                assert_eq!(o.opposite(), Some(id));
            }
        }
    }

    #[test]
    fn severities_match_the_spec() {
        use EventId::*;
        assert_eq!(OnBattery.severity(), Severity::Warning);
        assert_eq!(PowerRestored.severity(), Severity::Info);
        assert_eq!(LowBattery.severity(), Severity::Critical);
        assert_eq!(LowRuntime.severity(), Severity::Critical);
        assert_eq!(CommLost.severity(), Severity::Warning);
        assert_eq!(CommEstablished.severity(), Severity::Info);
        assert_eq!(CommLostOnBattery.severity(), Severity::Critical);
        assert_eq!(BatteryDisconnected.severity(), Severity::Critical);
        assert_eq!(TemperatureExceeded.severity(), Severity::Critical);
        assert_eq!(SelfTestFailed.severity(), Severity::Warning);
        assert_eq!(ShutdownStarted.severity(), Severity::Info);
        let reconnected = Event::cleared(BatteryDisconnected, Instant(0));
        assert_eq!(reconnected.severity(), Severity::Info);
        assert_eq!(reconnected.title(), "Battery Reconnected");
        assert!(LowRuntime.may_shut_down());
        assert!(!SmartBoost.may_shut_down());
        assert!(LoginFailed.is_security());
        assert_eq!(EventLogFailed.severity(), Severity::Warning);
        assert_eq!(EventLogRecovered.severity(), Severity::Info);
        assert!(FilePermissionsRefused.is_security() && CredentialsMissing.is_security());
        assert_eq!(EventId::ALL.len(), 44);
    }
}
