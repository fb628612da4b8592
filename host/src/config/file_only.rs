//! Settings that only the configuration file may change.
//!
//! A key that names a program, a command file or a file decides what the service runs as root
//! (at shutdown, on an event) or which files it reads (device, certificate, key, keystore).
//! Whoever can change it owns the machine, so such a key is set by editing `upsguard.ini`
//! (root only, product §8.13) and never by a client of the running service: the monitor's
//! `ConfigSet` request — the web UI's only way to change settings — refuses it before anything
//! is validated or written ([`Config::file_only_refusal`]). Reading the value stays allowed.

use super::events;
use super::model::{Config, SectionId};

/// `(section, key)` pairs that are file-only. `[Events]` values are handled separately: only
/// their `command_file:NAME` part is file-only, the other actions stay settable.
pub const FILE_ONLY_KEYS: &[(SectionId, &str)] = &[
    (SectionId::Communication, "device"),
    (SectionId::Shutdown, "command_file"),
    (SectionId::Shutdown, "os_shutdown_command"),
    (SectionId::Web, "cert_file"),
    (SectionId::Web, "key_file"),
    (SectionId::Web, "pkcs12_file"),
];

impl Config {
    /// Why a client of the service may not set `[section] key = value`, or `None` when it may
    /// (the value is then still checked by [`Config::set`]). An `[Events]` value may change
    /// every action except its command file: the name it runs must stay what the file says.
    /// Key names match ASCII case-insensitively, as in [`Config::set`].
    pub fn file_only_refusal(&self, sid: SectionId, key: &str, value: &str) -> Option<String> {
        let k = key.to_ascii_lowercase();
        let shown = super::ini::show(key);
        if FILE_ONLY_KEYS.iter().any(|(s, n)| *s == sid && *n == k) {
            return Some(format!(
                "[{}] {shown} names a program or a file and can only be changed in the configuration file (upsguard.ini), not from the web UI",
                sid.name()
            ));
        }
        if sid == SectionId::Events {
            // Unknown events and malformed values are the setter's to report.
            let spec = events::spec(&k)?;
            let new = events::EventActions::parse(spec, value).ok()?;
            let current = self
                .events
                .get(spec.id)
                .and_then(|a| a.command_file.as_ref())
                .map(|c| &c.name);
            if new.command_file.as_ref().map(|c| &c.name) != current {
                return Some(format!(
                    "[Events] {shown}: the command file of an event can only be changed in the configuration file (upsguard.ini), not from the web UI; its other actions can"
                ));
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn program_and_file_keys_are_refused_whatever_the_value() {
        let c = Config::default();
        for (sid, key, value) in [
            (SectionId::Shutdown, "os_shutdown_command", "/bin/sh -c id"),
            // Even the current value: the key is not the client's to send.
            (
                SectionId::Shutdown,
                "os_shutdown_command",
                "/sbin/shutdown -h +0",
            ),
            (SectionId::Shutdown, "OS_Shutdown_Command", "/sbin/poweroff"),
            (SectionId::Shutdown, "command_file", "evil.sh"),
            (SectionId::Shutdown, "command_file", ""),
            (SectionId::Web, "cert_file", "cert.pem"),
            (SectionId::Web, "key_file", "other.pem"),
            (SectionId::Web, "pkcs12_file", "x.p12"),
            (SectionId::Communication, "device", "/dev/ttyUSB0"),
        ] {
            let why = c.file_only_refusal(sid, key, value);
            let why = why.unwrap_or_else(|| panic!("{key} = {value} was allowed"));
            assert!(why.contains("configuration file"), "{why}");
            assert!(why.contains(key), "{why}");
        }
        for (sid, key) in [
            (SectionId::Shutdown, "os_shutdown_duration_s"),
            (SectionId::Shutdown, "command_file_duration_s"),
            (SectionId::Web, "idle_timeout_min"),
            (SectionId::Communication, "poll_interval_ms"),
            (SectionId::Logging, "datalog_interval_s"),
        ] {
            assert_eq!(c.file_only_refusal(sid, key, "60"), None, "{key}");
        }
    }

    #[test]
    fn an_event_keeps_the_command_file_the_file_gave_it() {
        let mut c = Config::default();
        c.set("Events", "on_battery", "log, command_file:onbatt.sh:30")
            .unwrap();
        let ev = SectionId::Events;
        // Other actions and the duration may change; the name may not.
        assert_eq!(
            c.file_only_refusal(ev, "on_battery", "log, notify, command_file:onbatt.sh:60"),
            None
        );
        for v in ["log, command_file:evil.sh:30", "log", "none", "log, notify"] {
            assert!(c.file_only_refusal(ev, "ON_BATTERY", v).is_some(), "{v}");
        }
        // An event without a command file cannot get one.
        assert!(
            c.file_only_refusal(ev, "low_battery", "log, command_file:x.sh")
                .is_some()
        );
        assert_eq!(c.file_only_refusal(ev, "low_battery", "log, notify"), None);
        // Malformed values and unknown events are left to the setter's error.
        assert_eq!(
            c.file_only_refusal(ev, "on_battery", "log, command_file:../x.sh"),
            None
        );
        assert_eq!(c.file_only_refusal(ev, "nope", "log"), None);
    }
}
