//! `[Events]`: what to do when each event fires.
//!
//! ```text
//! [Events]
//! on_battery  = log, notify, command_file:onbatt.sh:30, shutdown:60
//! low_battery = log, shutdown
//! smart_boost = none
//! ```
//!
//! Grammar of a value (spaces around commas are ignored, each action at most once):
//!
//! ```text
//! actions = "none" | "" | action *("," action)
//! action  = "log"
//!         | "notify"                                  ; e-mail / webhook, configured elsewhere
//!         | "command_file:" NAME [":" DURATION]        ; NAME from <data-dir>/cmdfiles/, DURATION s 0..=3600 (default 0)
//!         | "shutdown" [":" DELAY]                     ; DELAY s 0..=86400 the event must persist (default 0)
//! ```
//!
//! Keys are the stable event ids of [`EVENTS`]. `shutdown` is only accepted on events that may
//! shut the system down; security events are always logged, so `log` cannot be dropped from
//! them (product §3). The writer emits the canonical order `log, notify, command_file, shutdown`.

use std::collections::BTreeMap;
use std::fmt;

use upsguard_core::event::EventId;

use super::values::{FileName, parse_range};

/// Longest command-file duration, seconds.
pub const MAX_COMMAND_DURATION_S: u32 = 3600;
/// Longest persist delay before an event shuts down, seconds.
pub const MAX_SHUTDOWN_DELAY_S: u32 = 86_400;

/// Static facts about an event that bound what may be configured for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    /// Stable id, used as the `[Events]` key and in the event log.
    pub id: &'static str,
    /// Whether a `shutdown` action makes sense for it (product §3, "may shut down").
    pub may_shut_down: bool,
    /// Security events are always logged.
    pub security: bool,
}

const fn ev(id: &'static str, may_shut_down: bool, security: bool) -> EventSpec {
    EventSpec {
        id,
        may_shut_down,
        security,
    }
}

/// Every configurable event: the core's catalogue (one source of truth for ids, "may shut
/// down" and "security"), plus the two cleared forms that product §3 names as events of
/// their own. Ids are stable: they are stored in config files and logs.
pub const EVENTS: &[EventSpec] = &EVENT_TABLE;

const CORE_EVENTS: usize = EventId::ALL.len();

const EVENT_TABLE: [EventSpec; CORE_EVENTS + 2] = {
    let mut out = [ev("", false, false); CORE_EVENTS + 2];
    let mut i = 0;
    while i < CORE_EVENTS {
        let e = EventId::ALL[i];
        out[i] = ev(e.as_str(), e.may_shut_down(), e.is_security());
        i += 1;
    }
    out[CORE_EVENTS] = ev("overload_cleared", false, false);
    out[CORE_EVENTS + 1] = ev("battery_reconnected", false, false);
    out
};

/// Look an event up by id (ASCII case-insensitive).
pub fn spec(id: &str) -> Option<&'static EventSpec> {
    EVENTS.iter().find(|e| e.id.eq_ignore_ascii_case(id))
}

/// Run a command file and wait up to `duration_s` for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFileAction {
    pub name: FileName,
    pub duration_s: u32,
}

/// The actions configured for one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventActions {
    pub log: bool,
    pub notify: bool,
    pub command_file: Option<CommandFileAction>,
    /// Shut down once the event has persisted this many seconds.
    pub shutdown_delay_s: Option<u32>,
}

impl EventActions {
    /// The default for every event: log it, nothing else.
    pub fn log_only() -> Self {
        Self {
            log: true,
            ..Self::default()
        }
    }

    /// Parse a value for event `spec` (see the module docs for the grammar).
    pub fn parse(spec: &EventSpec, value: &str) -> Result<Self, String> {
        let mut out = Self::default();
        let trimmed = value.trim();
        if !(trimmed.is_empty() || trimmed.eq_ignore_ascii_case("none")) {
            for raw in trimmed.split(',') {
                let item = raw.trim();
                let (word, rest) = match item.split_once(':') {
                    Some((w, r)) => (w, Some(r)),
                    None => (item, None),
                };
                match (word.to_ascii_lowercase().as_str(), rest) {
                    ("log", None) => set_once(&mut out.log, "log")?,
                    ("notify", None) => set_once(&mut out.notify, "notify")?,
                    ("command_file", Some(r)) => {
                        if out.command_file.is_some() {
                            return Err("'command_file' is given more than once".into());
                        }
                        let (name, dur) = match r.split_once(':') {
                            Some((n, d)) => (n, Some(d)),
                            None => (r, None),
                        };
                        let name =
                            FileName::parse(name).map_err(|e| format!("command_file: {e}"))?;
                        let duration_s = match dur {
                            Some(d) => parse_range(d, 0, MAX_COMMAND_DURATION_S)
                                .map_err(|e| format!("command_file duration (seconds) {e}"))?,
                            None => 0,
                        };
                        out.command_file = Some(CommandFileAction { name, duration_s });
                    }
                    ("shutdown", r) => {
                        if out.shutdown_delay_s.is_some() {
                            return Err("'shutdown' is given more than once".into());
                        }
                        if !spec.may_shut_down {
                            return Err(format!("event '{}' cannot trigger a shutdown", spec.id));
                        }
                        let delay = match r {
                            Some(d) => parse_range(d, 0, MAX_SHUTDOWN_DELAY_S)
                                .map_err(|e| format!("shutdown delay (seconds) {e}"))?,
                            None => 0,
                        };
                        out.shutdown_delay_s = Some(delay);
                    }
                    ("command_file", None) => {
                        return Err(
                            "'command_file' needs a name: command_file:NAME[:SECONDS]".into()
                        );
                    }
                    _ => {
                        return Err(format!(
                            "unknown action {} (expected log, notify, command_file:NAME[:SECONDS], shutdown[:SECONDS] or none)",
                            super::ini::show(item)
                        ));
                    }
                }
            }
        }
        if spec.security && !out.log {
            return Err(format!(
                "'{}' is a security event and is always logged: include 'log'",
                spec.id
            ));
        }
        Ok(out)
    }
}

fn set_once(flag: &mut bool, name: &str) -> Result<(), String> {
    if *flag {
        return Err(format!("'{name}' is given more than once"));
    }
    *flag = true;
    Ok(())
}

impl fmt::Display for EventActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.log {
            parts.push("log".into());
        }
        if self.notify {
            parts.push("notify".into());
        }
        if let Some(c) = &self.command_file {
            parts.push(format!("command_file:{}:{}", c.name, c.duration_s));
        }
        if let Some(d) = self.shutdown_delay_s {
            parts.push(format!("shutdown:{d}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The whole `[Events]` section: one entry per known event, always complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events(BTreeMap<&'static str, EventActions>);

impl Default for Events {
    fn default() -> Self {
        Self(
            EVENTS
                .iter()
                .map(|e| (e.id, EventActions::log_only()))
                .collect(),
        )
    }
}

impl Events {
    /// The actions for `id`, if it is a known event.
    pub fn get(&self, id: &str) -> Option<&EventActions> {
        spec(id).and_then(|s| self.0.get(s.id))
    }

    /// Parse and set the actions for `id`. `Ok(false)` means the id is unknown.
    pub fn set(&mut self, id: &str, value: &str) -> Result<bool, String> {
        let Some(s) = spec(id) else { return Ok(false) };
        let actions = EventActions::parse(s, value)?;
        self.0.insert(s.id, actions);
        Ok(true)
    }

    /// All events, in the order of [`EVENTS`] (the product's table order).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &EventActions)> {
        EVENTS
            .iter()
            .filter_map(|s| self.0.get(s.id).map(|a| (s.id, a)))
    }

    /// Largest command-file duration configured on any event (the shutdown waits for it).
    pub fn max_command_duration_s(&self) -> u32 {
        self.0
            .values()
            .filter_map(|a| a.command_file.as_ref())
            .map(|c| c.duration_s)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn on_batt() -> &'static EventSpec {
        spec("on_battery").unwrap()
    }

    #[test]
    fn full_grammar() {
        let a = EventActions::parse(
            on_batt(),
            "log,command_file:onbatt.sh:30, notify ,shutdown:60",
        )
        .unwrap();
        assert!(a.log && a.notify);
        assert_eq!(a.command_file.as_ref().unwrap().name.as_str(), "onbatt.sh");
        assert_eq!(a.command_file.as_ref().unwrap().duration_s, 30);
        assert_eq!(a.shutdown_delay_s, Some(60));
        assert_eq!(
            a.to_string(),
            "log, notify, command_file:onbatt.sh:30, shutdown:60"
        );
        assert_eq!(EventActions::parse(on_batt(), &a.to_string()).unwrap(), a);
    }

    #[test]
    fn defaults_for_optional_numbers_and_none() {
        let a = EventActions::parse(on_batt(), "command_file:x.sh, shutdown").unwrap();
        assert_eq!(a.command_file.unwrap().duration_s, 0);
        assert_eq!(a.shutdown_delay_s, Some(0));
        assert_eq!(
            EventActions::parse(on_batt(), "none").unwrap(),
            EventActions::default()
        );
        assert_eq!(
            EventActions::parse(on_batt(), "").unwrap(),
            EventActions::default()
        );
        assert_eq!(EventActions::default().to_string(), "none");
    }

    #[test]
    fn rejects_bad_actions() {
        for bad in [
            "log,log",
            "shutdown,shutdown:5",
            "command_file:a.sh,command_file:b.sh",
            "command_file",
            "command_file:../x.sh:5",
            "command_file:/bin/sh",
            "command_file:.hidden",
            "command_file:a.sh:3601",
            "command_file:a.sh:-1",
            "shutdown:86401",
            "reboot",
            "log,,notify",
            "log:1",
        ] {
            assert!(EventActions::parse(on_batt(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shutdown_only_where_allowed() {
        let e = EventActions::parse(spec("smart_boost").unwrap(), "shutdown").unwrap_err();
        assert!(e.contains("cannot trigger a shutdown"), "{e}");
    }

    #[test]
    fn security_events_always_logged() {
        let e = EventActions::parse(spec("login_failed").unwrap(), "notify").unwrap_err();
        assert!(e.contains("always logged"), "{e}");
        assert!(EventActions::parse(spec("login_failed").unwrap(), "log, notify").is_ok());
    }

    #[test]
    fn events_table_is_complete_and_unique() {
        let d = Events::default();
        assert_eq!(d.iter().count(), EVENTS.len());
        assert!(d.iter().all(|(_, a)| *a == EventActions::log_only()));
        for e in EVENTS {
            assert!(super::super::ini::check_key(e.id).is_ok(), "{}", e.id);
        }
    }

    #[test]
    fn set_is_case_insensitive_and_reports_unknown() {
        let mut d = Events::default();
        assert_eq!(d.set("ON_BATTERY", "notify"), Ok(true));
        assert!(d.get("on_battery").unwrap().notify);
        assert_eq!(d.set("nope", "log"), Ok(false));
    }

    #[test]
    fn max_command_duration() {
        let mut d = Events::default();
        d.set("on_battery", "log, command_file:a.sh:30").unwrap();
        d.set("low_battery", "log, command_file:b.sh:90").unwrap();
        assert_eq!(d.max_command_duration_s(), 90);
    }
}
