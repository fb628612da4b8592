//! When will the shutdown start? The answer shown by `upsguard status`, the API and the UI,
//! computed from the same core configuration the shutdown machine runs on (so the page can
//! never say 120 s while the always-armed Low Runtime trigger fires at 180 s).

use serde::Serialize;
use upsguard_core::shutdown::{Phase, ShutdownConfig, ShutdownPolicy};
use upsguard_core::time::Duration;

/// The `shutdown` object of the status.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct ShutdownView {
    /// `idle`, `pending`, `command_file`, `os_shutdown`, `completed`.
    pub phase: String,
    /// Why the running/pending/completed sequence started (a `ShutdownReason` id).
    pub reason: Option<String>,
    /// The policy in the INI's spelling.
    pub policy: String,
    pub on_battery_delay_s: u32,
    pub threshold_charge_pct: u8,
    pub threshold_runtime_s: u32,
    pub low_battery_runtime_s: u32,
    /// A: the shutdown command file's duration.
    pub command_file_s: u32,
    /// B: the OS shutdown's duration.
    pub os_shutdown_s: u32,
    pub margin_s: u32,
    /// A + B + margin: Low Runtime fires below this runtime, whatever the policy.
    pub low_runtime_s: u32,
    /// "Shutdown starts when …", in English.
    pub plan: String,
    /// Estimated seconds until the sequence starts (0 once it runs); `None` when no start
    /// is foreseeable (on line, or only the UPS's low-battery flag is left to wait for).
    pub starts_in_s: Option<u64>,
    /// Seconds since the current phase began (pending, command file, OS shutdown, completed).
    pub phase_age_s: Option<u64>,
    /// When the current sequence (or its pending trigger) began, ISO-8601 UTC.
    pub since: Option<String>,
    /// When a completed sequence completed, ISO-8601 UTC.
    pub completed_at: Option<String>,
}

/// The INI spelling of a core policy.
pub fn policy_id(p: ShutdownPolicy) -> &'static str {
    match p {
        ShutdownPolicy::Immediately => "immediately",
        ShutdownPolicy::AfterOnBattery { .. } => "on_battery_delay",
        ShutdownPolicy::LowBattery => "low_battery",
        ShutdownPolicy::Threshold { .. } => "threshold",
        ShutdownPolicy::LowRuntimeOnly => "low_runtime",
    }
}

/// The phase's id as the API and the data model spell it.
pub fn phase_id(p: Phase) -> &'static str {
    p.as_str()
}

/// `90 s`, `3 min`, `2 min 30 s`, `1 h 5 min`.
pub fn human_secs(s: u64) -> String {
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if sec > 0 || parts.is_empty() {
        parts.push(format!("{sec} s"));
    }
    parts.join(" ")
}

/// The English sentence for a configuration.
pub fn sentence(cfg: &ShutdownConfig) -> String {
    let lr = cfg.low_runtime_threshold().as_secs();
    let low_runtime = format!(
        "when the runtime falls below {} (OS shutdown {} s + command file {} s + safety margin {} s)",
        human_secs(lr),
        cfg.os_shutdown_s,
        cfg.command_file_s,
        cfg.safety_margin_s
    );
    let lb_runtime = (cfg.low_battery_runtime_s > 0).then(|| {
        format!(
            " or its runtime falls below {}",
            human_secs(u64::from(cfg.low_battery_runtime_s))
        )
    });
    let lb_delay = if cfg.low_battery_delay_s > 0 {
        format!(" for {} s", cfg.low_battery_delay_s)
    } else {
        String::new()
    };
    let first = match cfg.policy {
        ShutdownPolicy::Immediately => Some("as soon as the UPS is on battery".to_string()),
        ShutdownPolicy::AfterOnBattery { seconds } => Some(format!(
            "after {} on battery without a break",
            human_secs(u64::from(seconds))
        )),
        ShutdownPolicy::LowBattery => Some(format!(
            "when the UPS on battery reports low battery{}{lb_delay}",
            lb_runtime.unwrap_or_default()
        )),
        ShutdownPolicy::Threshold {
            charge_pct,
            runtime_s,
        } => Some(format!(
            "on battery when the charge is at or below {charge_pct} % or the runtime at or \
             below {}, or at low battery",
            human_secs(u64::from(runtime_s))
        )),
        ShutdownPolicy::LowRuntimeOnly => None,
    };
    match first {
        Some(f) => format!("Shutdown starts {f}, or at the latest {low_runtime}."),
        None => format!("Shutdown starts {low_runtime}."),
    }
}

/// The whole view from the machine's configuration, phase and forecast.
pub fn view(
    cfg: &ShutdownConfig,
    phase: Phase,
    starts_in: Option<Duration>,
    now: upsguard_core::time::Instant,
) -> ShutdownView {
    let (threshold_charge_pct, threshold_runtime_s) = match cfg.policy {
        ShutdownPolicy::Threshold {
            charge_pct,
            runtime_s,
        } => (charge_pct, runtime_s),
        _ => (0, 0),
    };
    let (reason, since, completed) = match phase {
        Phase::Idle => (None, None, None),
        Phase::Pending { reason, since, .. }
        | Phase::CommandFile { reason, since, .. }
        | Phase::OsShutdown { reason, since } => (Some(reason), Some(since), None),
        Phase::Completed { reason, since, at } => (Some(reason), Some(since), Some(at)),
    };
    // The core counts milliseconds on the service's monotonic clock: back to wall time.
    let wall = |t: upsguard_core::time::Instant| {
        let ago = now.saturating_since(t).as_millis();
        let at = time::OffsetDateTime::now_utc()
            - time::Duration::milliseconds(i64::try_from(ago).unwrap_or(i64::MAX));
        at.format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    ShutdownView {
        phase: phase_id(phase).to_string(),
        reason: reason.map(|r| r.as_str().to_string()),
        policy: policy_id(cfg.policy).to_string(),
        on_battery_delay_s: match cfg.policy {
            ShutdownPolicy::AfterOnBattery { seconds } => seconds,
            _ => 0,
        },
        threshold_charge_pct,
        threshold_runtime_s,
        low_battery_runtime_s: cfg.low_battery_runtime_s,
        command_file_s: cfg.command_file_s,
        os_shutdown_s: cfg.os_shutdown_s,
        margin_s: cfg.safety_margin_s,
        low_runtime_s: u32::try_from(cfg.low_runtime_threshold().as_secs()).unwrap_or(u32::MAX),
        plan: sentence(cfg),
        // Rounded up: "starts in 0 s" only once it has started.
        starts_in_s: starts_in.map(|d| d.as_millis().div_ceil(1000)),
        phase_age_s: completed
            .or(since)
            .map(|s| now.saturating_since(s).as_secs()),
        since: since.and_then(wall),
        completed_at: completed.and_then(wall),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_names_the_real_low_runtime_level() {
        let s = sentence(&ShutdownConfig::default());
        assert!(s.contains("reports low battery"), "{s}");
        assert!(s.contains("below 3 min (OS shutdown 120 s"), "{s}");
        assert!(s.ends_with("safety margin 60 s)."), "{s}");
    }

    #[test]
    fn each_policy_has_its_sentence() {
        let with = |policy| ShutdownConfig {
            policy,
            ..ShutdownConfig::default()
        };
        assert!(sentence(&with(ShutdownPolicy::Immediately)).contains("as soon as"));
        assert!(
            sentence(&with(ShutdownPolicy::AfterOnBattery { seconds: 150 }))
                .contains("after 2 min 30 s on battery")
        );
        assert!(
            sentence(&with(ShutdownPolicy::Threshold {
                charge_pct: 20,
                runtime_s: 300
            }))
            .contains("at or below 20 % or the runtime at or below 5 min")
        );
        assert!(
            sentence(&with(ShutdownPolicy::LowRuntimeOnly))
                .starts_with("Shutdown starts when the runtime")
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_secs(0), "0 s");
        assert_eq!(human_secs(180), "3 min");
        assert_eq!(human_secs(3725), "1 h 2 min 5 s");
    }
}
