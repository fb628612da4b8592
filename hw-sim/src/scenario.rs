//! Scenario files: timed operator commands in TOML.
//!
//! ```toml
//! name = "blackout"
//! [[step]]
//! at = "10s"          # simulated time since the scenario started
//! do = "mains off"
//! [[step]]
//! after = "2m"        # relative to the previous step
//! do = "mains on"
//! ```
//! `do` takes any control command (see [`crate::control`]); `wait D` just
//! moves the clock for the following `after` steps. Times are simulated, so
//! `--speed` shortens a scenario.

use serde::Deserialize;

use crate::control::{self, Command};

const MAX_FILE_BYTES: usize = 1024 * 1024;
const MAX_STEPS: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Simulated ms since the scenario started.
    pub at_ms: u64,
    pub command: Command,
    /// The original `do` text, for logs.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scenario {
    pub name: String,
    pub steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<String>,
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: Option<TimeSpec>,
    after: Option<TimeSpec>,
    #[serde(rename = "do")]
    action: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TimeSpec {
    Text(String),
    Seconds(f64),
}

impl TimeSpec {
    fn ms(&self) -> Result<u64, String> {
        match self {
            TimeSpec::Text(t) => control::parse_duration_ms(t),
            TimeSpec::Seconds(s) => control::parse_duration_ms(&s.to_string()),
        }
    }
}

impl Scenario {
    /// Parse and validate a scenario; every error names the step.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        if text.len() > MAX_FILE_BYTES {
            return Err("scenario file is larger than 1 MiB".into());
        }
        let raw: RawFile = toml::from_str(text).map_err(|e| format!("scenario: {e}"))?;
        if raw.step.len() > MAX_STEPS {
            return Err(format!("scenario has more than {MAX_STEPS} steps"));
        }
        let mut t: u64 = 0;
        let mut steps = Vec::with_capacity(raw.step.len());
        for (i, s) in raw.step.iter().enumerate() {
            let n = i + 1;
            let at = match (&s.at, &s.after) {
                (Some(_), Some(_)) => {
                    return Err(format!("step {n}: give 'at' or 'after', not both"));
                }
                (Some(at), None) => {
                    let at = at.ms().map_err(|e| format!("step {n}: {e}"))?;
                    if at < t {
                        return Err(format!("step {n}: 'at' goes back in time"));
                    }
                    at
                }
                (None, Some(after)) => t
                    .checked_add(after.ms().map_err(|e| format!("step {n}: {e}"))?)
                    .ok_or("time overflow")?,
                (None, None) => t,
            };
            let command =
                control::parse(&s.action).map_err(|e| format!("step {n} ({:?}): {e}", s.action))?;
            if let Command::Wait(d) = command {
                t = at.checked_add(d).ok_or("time overflow")?;
                continue;
            }
            t = at;
            steps.push(Step {
                at_ms: at,
                command,
                text: s.action.trim().to_string(),
            });
        }
        Ok(Scenario {
            name: raw.name.unwrap_or_default(),
            steps,
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Scenario, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.len() > MAX_FILE_BYTES as u64 {
            return Err(format!("{}: larger than 1 MiB", path.display()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;

    #[test]
    fn parses_relative_and_absolute_steps() {
        let sc = Scenario::parse(
            r#"
name = "t"
[[step]]
at = "10s"
do = "mains off"
[[step]]
do = "wait 5s"
[[step]]
after = "1m"
do = "load 80"
[[step]]
at = 100
do = "mains on"
"#,
        )
        .unwrap();
        let times: Vec<u64> = sc.steps.iter().map(|s| s.at_ms).collect();
        assert_eq!(times, vec![10_000, 75_000, 100_000]);
        assert_eq!(sc.steps[1].command, Command::Load(80.0));
    }

    #[test]
    fn rejects_hostile_files() {
        for bad in [
            "[[step]]\nat = \"5s\"\ndo = \"explode\"",
            "[[step]]\nat = \"5s\"\nafter = \"1s\"\ndo = \"mains on\"",
            "[[step]]\nat = \"10s\"\ndo = \"mains on\"\n[[step]]\nat = \"5s\"\ndo = \"mains off\"",
            "[[step]]\nat = \"-5s\"\ndo = \"mains on\"",
            "[[step]]\nat = 1e300\ndo = \"mains on\"",
            "[[step]]\ndo = 5",
            "not toml at all [[[",
            "[[step]]\nat = \"1s\"\ndo = \"mains on\"\nextra = 1",
        ] {
            assert!(Scenario::parse(bad).is_err(), "{bad}");
        }
        let huge = "x".repeat(MAX_FILE_BYTES + 1);
        assert!(Scenario::parse(&huge).is_err());
    }

    #[test]
    fn shipped_scenarios_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let sc = Scenario::load(&path).unwrap();
                assert!(!sc.steps.is_empty());
                n += 1;
            }
        }
        assert!(n >= 2);
    }
}
