//! The monitor: glue between the link, the core shutdown machine, the logs and the actions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;
use time::{OffsetDateTime, UtcOffset};
use tokio::io::BufReader;
use tokio::sync::{mpsc, oneshot, watch};
use upsguard_core::event::{Event, EventId, Severity as CoreSeverity};

use upsguard_core::agent::HostAction;
use upsguard_core::link::{CommState, LinkConfig, RequestResult};
use upsguard_core::shutdown::{
    Phase, ShutdownConfig, ShutdownPolicy as CorePolicy, UpsOffMode as CoreOffMode,
};
use upsguard_core::time::Duration as CoreDuration;

use super::{Paths, RunArgs, schedule, systemd};
use crate::clock::Clock;
use crate::cmdfile::{self, CmdContext, RunOptions};
use crate::config::{self, Config};
use crate::datalog::{DataLog, DataLogLimits, Sample};
use crate::driver::{self, DriverHandle, DriverMessage, DriverMessageKind, Operator, UpsState};
use crate::eventlog::{EventLog, EventLogLimits, EventRecord, EventState, Severity};
use crate::ipc::{self, Request, Response};
use crate::killpower;
use crate::status::StatusView;

mod config_api;
mod credentials;
mod sim;
mod startup;
mod web;

pub use startup::run;

type Reply = oneshot::Sender<Response>;

/// Messages into the monitor loop from helper tasks.
enum Internal {
    Ipc(Request, Reply),
    CommandFileDone {
        shutdown: bool,
        event: String,
        name: String,
        result: Result<cmdfile::CmdOutcome, cmdfile::CmdFileError>,
    },
    OsShutdownDone(Result<std::process::ExitStatus, String>),
    /// The OS shutdown command succeeded B seconds ago and this process still runs: the
    /// halt did not happen (or not yet); the sequence is over either way.
    OsShutdownElapsed,
}

/// Says plainly, at every start and reload, that an enabled network server does not exist
/// yet: a reload that answers "OK" must not suggest that something now listens.
fn warn_unimplemented(cfg: &Config) {
    for (section, what) in cfg.unimplemented_servers() {
        tracing::warn!(
            "config: [{section}] {}",
            config::not_implemented_message(what)
        );
    }
}

/// Translates the typed config into the core machine's configuration.
pub fn shutdown_config(cfg: &Config) -> ShutdownConfig {
    let s = &cfg.shutdown;
    let ev = |id: &str| cfg.events.get(id).and_then(|a| a.shutdown_delay_s);
    let mut policy = match s.policy {
        config::ShutdownPolicy::Immediately => CorePolicy::Immediately,
        config::ShutdownPolicy::OnBatteryDelay => CorePolicy::AfterOnBattery {
            seconds: s.on_battery_delay_s,
        },
        config::ShutdownPolicy::LowBattery => CorePolicy::LowBattery,
        config::ShutdownPolicy::Threshold => CorePolicy::Threshold {
            charge_pct: u8::try_from(s.threshold_charge_pct.min(100)).unwrap_or(100),
            runtime_s: s.threshold_runtime_min.saturating_mul(60),
        },
        config::ShutdownPolicy::LowRuntime => CorePolicy::LowRuntimeOnly,
    };
    // `[Events] on_battery = shutdown:N` is the same thing as the on_battery_delay policy.
    if let Some(d) = ev("on_battery") {
        policy = if d == 0 {
            CorePolicy::Immediately
        } else {
            CorePolicy::AfterOnBattery { seconds: d }
        };
    }
    let ups_off_mode = match s.ups_off_mode {
        config::UpsOffMode::Return => CoreOffMode::ShutdownReturn,
        config::UpsOffMode::StayOff => CoreOffMode::StayOff,
        config::UpsOffMode::Sleep => {
            CoreOffMode::sleep_hours(u16::try_from(s.sleep_hours).unwrap_or(1))
        }
    };
    let defaults = ShutdownConfig::default();
    ShutdownConfig {
        policy,
        command_file_s: if s.command_file.is_some() {
            s.command_file_duration_s
        } else {
            0
        },
        os_shutdown_s: s.os_shutdown_duration_s,
        low_battery_delay_s: ev("low_battery").unwrap_or(0),
        low_battery_runtime_s: s.low_battery_runtime_s,
        time_on_battery_shutdown_s: ev("time_on_battery_exceeded"),
        overload_shutdown_s: ev("overload"),
        temperature_shutdown_s: ev("temperature_exceeded"),
        comm_lost_on_battery_shutdown_s: if s.comm_lost_on_battery_shutdown {
            Some(s.comm_lost_on_battery_delay_s)
        } else {
            None
        },
        turn_off_ups: s.turn_off_ups,
        ups_off_mode,
        ..defaults
    }
}

fn severity(s: CoreSeverity) -> Severity {
    match s {
        CoreSeverity::Critical => Severity::Critical,
        CoreSeverity::Warning => Severity::Warning,
        CoreSeverity::Info => Severity::Info,
    }
}

/// The `[Events]` key whose actions apply to this event (cleared forms that have their own
/// name in the catalogue), or `None` when only logging applies.
fn action_key(ev: &Event) -> Option<&'static str> {
    if !ev.cleared {
        return Some(ev.id.as_str());
    }
    match ev.id {
        EventId::Overload => Some("overload_cleared"),
        EventId::BatteryDisconnected => Some("battery_reconnected"),
        _ => None,
    }
}

/// Active/cleared for the log: an event with a cleared form says which it is, and the pairs
/// that product §3 names as two events (On Battery / Input Power Restored, …) read as the
/// active and cleared sides of one condition.
fn event_state(ev: &Event) -> EventState {
    use EventId::*;
    if ev.id.has_cleared_form() {
        return if ev.cleared {
            EventState::Cleared
        } else {
            EventState::Active
        };
    }
    match ev.id {
        OnBattery | CommLost | UpsOutputOff | UpsSleeping | ShutdownStarted => EventState::Active,
        PowerRestored | CommEstablished | UpsOutputOn | UpsWoke | ShutdownCancelled => {
            EventState::Cleared
        }
        _ => EventState::None,
    }
}

struct Monitor {
    paths: Paths,
    cfg: Config,
    simulate: bool,
    clock: Clock,
    /// The driver thread: owns the port and the core Agent (and so the shutdown decision).
    driver: DriverHandle,
    /// What the driver publishes; the monitor reads it like every other reader.
    state: watch::Receiver<Arc<UpsState>>,
    events: EventLog,
    data: DataLog,
    internal: mpsc::UnboundedSender<Internal>,
    local_offset: UtcOffset,
    /// Next fire time of each schedule.
    schedules: BTreeMap<String, (OffsetDateTime, time::Duration)>,
    os_shutdown_started: bool,
    /// The web UI's certificate, reloaded with the configuration (SIGHUP).
    web_tls: Option<std::sync::Arc<crate::web::TlsManager>>,
    /// Last daily certificate-expiry check.
    cert_checked: Option<std::time::Instant>,
    /// The `notify` action's delivery queue (set once the credential store is open).
    notifier: Option<crate::notifications::Notifier>,
    /// `[Notifications]` as of the last load, shared with queued messages.
    notify_cfg: std::sync::Arc<config::Notifications>,
    /// The credential store (SMTP password; the web UI shares it).
    creds: crate::notifications::Secrets,
    /// This machine's name, for notifications.
    host_name: String,
    /// What the administrator should fix, from the latest configuration load.
    config_problems: Vec<crate::status::Problem>,
    /// Files and folders refused at start-up (data dir).
    file_problems: Vec<crate::status::Problem>,
    /// Everything in `problems`, as the readers show it (status, web banner).
    problems: watch::Sender<Vec<crate::status::Problem>>,
}

type SharedStore = std::sync::Arc<std::sync::Mutex<crate::credentials::CredentialStore>>;

impl Monitor {
    fn next_deadline(&self) -> Option<std::time::Instant> {
        self.schedules.values().map(|(t, _)| *t).min().map(|t| {
            let ms = (t - OffsetDateTime::now_utc()).whole_milliseconds().max(0);
            std::time::Instant::now() + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        })
    }

    fn on_driver(&mut self, msg: DriverMessage) {
        match msg.kind {
            DriverMessageKind::Event(ev) => self.on_event(ev),
            DriverMessageKind::Action(a) => self.on_action(a),
            DriverMessageKind::Identified => {
                let st = self.state.borrow().clone();
                let id = &st.ups.identity;
                tracing::info!(
                    "UPS identified: {} serial {} firmware {}",
                    id.model.as_ref().map_or("?", |m| m.value.as_str()).trim(),
                    id.serial.as_ref().map_or("?", |m| m.value.as_str()),
                    id.firmware.as_ref().map_or("?", |m| m.value.text.as_str()),
                );
            }
            DriverMessageKind::UpsOffSent { mode, result } => match result {
                RequestResult::Failed(f) => tracing::error!(
                    "UPS turn-off ({mode:?}) failed: {}",
                    crate::service::requests::failure_text(f)
                ),
                _ => tracing::warn!("UPS turn-off ({mode:?}) accepted by the UPS"),
            },
            DriverMessageKind::PortProblem { message, first } => {
                if first {
                    tracing::warn!("{message}");
                }
            }
            DriverMessageKind::PortOpened(p) => tracing::info!("serial port {} open", p.display()),
        }
        self.after_phase_change();
    }

    fn on_timer(&mut self) {
        let now = OffsetDateTime::now_utc();
        let due: Vec<(String, time::Duration)> = self
            .schedules
            .iter()
            .filter(|(_, (t, _))| *t <= now)
            .map(|(n, (_, w))| (n.clone(), *w))
            .collect();
        for (name, window) in due {
            let wake = CoreDuration::from_secs(u64::try_from(window.whole_seconds()).unwrap_or(0));
            let driver = self.driver.clone();
            tokio::spawn(async move {
                let op = Operator::Scheduled {
                    wake_after: Some(wake),
                };
                match driver.operator(op).await {
                    Ok(()) => tracing::info!("scheduled shutdown {name} started"),
                    Err(e) => tracing::warn!("scheduled shutdown {name} not started: {e}"),
                }
            });
        }
        self.plan_schedules();
    }

    fn plan_schedules(&mut self) {
        let now = OffsetDateTime::now_utc();
        self.schedules = self
            .cfg
            .schedule
            .iter()
            .filter_map(|(n, s)| {
                schedule::next_fire(s, now, self.local_offset).map(|f| (n.clone(), f))
            })
            .collect();
    }

    /// A completed sequence is over and the UPS is back on line with this machine still up
    /// (so the halt, and the killpower hook in it, did not happen): a stale flag would cut
    /// the UPS at some later, unrelated reboot. The next sequence may run.
    fn after_phase_change(&mut self) {
        let phase = self.state.borrow().phase;
        if self.os_shutdown_started
            && matches!(
                phase,
                Phase::Idle | Phase::Pending { .. } | Phase::CommandFile { .. }
            )
        {
            self.os_shutdown_started = false;
            let flag = killpower::flag_path(&self.paths.data_dir);
            if std::fs::remove_file(&flag).is_ok() {
                tracing::info!("shutdown sequence over, UPS back on line: killpower flag removed");
            }
        }
    }

    fn cmd_context(&self, id: &str, sev: Severity, state: EventState, message: &str) -> CmdContext {
        let v = crate::service::requests::status_view(&self.state.borrow(), self.clock.now());
        let mut ctx = CmdContext::new(id, sev, state, message);
        ctx.status = v.status;
        ctx.charge_pct = v.charge_pct;
        ctx.runtime_s = v.runtime_s;
        ctx.load_pct = v.load_pct;
        ctx.input_v = v.input_voltage;
        ctx.model = v.model.unwrap_or_default();
        ctx.serial = v.serial.unwrap_or_default();
        ctx
    }

    fn on_event(&mut self, ev: Event) {
        let sev = severity(ev.severity());
        let state = event_state(&ev);
        let title = if ev.cleared {
            ev.id.cleared_title().unwrap_or(ev.id.title())
        } else {
            ev.id.title()
        };
        let v = crate::service::requests::status_view(&self.state.borrow(), self.clock.now());
        let mut rec = EventRecord::new(ev.id.as_str(), sev, state, title);
        if !v.status.is_empty() {
            rec = rec.with_field("status", v.status.as_str());
        }
        if let Some(c) = v.charge_pct {
            rec = rec.with_field("charge", c);
        }
        if let Some(r) = v.runtime_s {
            rec = rec.with_field("runtime_s", u64::from(r));
        }
        let actions = action_key(&ev)
            .and_then(|k| self.cfg.events.get(k))
            .cloned();
        let log = actions.as_ref().is_none_or(|a| a.log) || ev.id.is_security();
        match sev {
            Severity::Critical | Severity::Warning => tracing::warn!("event: {title}"),
            Severity::Info => tracing::info!("event: {title}"),
        }
        if log {
            self.append(&rec);
        }
        let Some(actions) = actions else { return };
        if actions.notify {
            self.notify(ev.id.as_str(), sev, state, title, &v);
        }
        if let Some(cf) = actions.command_file {
            let ctx = self.cmd_context(ev.id.as_str(), sev, state, title);
            self.spawn_command_file(
                cf.name.as_str().to_string(),
                cf.duration_s,
                ctx,
                ev.id.as_str(),
                false,
            );
        }
    }

    fn notification(
        &self,
        id: &str,
        sev: Severity,
        state: EventState,
        title: &str,
        v: &StatusView,
        test: bool,
    ) -> crate::notifications::Message {
        crate::notifications::Message {
            event: id.to_string(),
            severity: sev,
            state,
            text: title.to_string(),
            at: OffsetDateTime::now_utc(),
            host: self.host_name.clone(),
            ups: crate::notifications::UpsInfo {
                model: v.model.clone(),
                serial: v.serial.clone(),
                status: v.status.clone(),
                charge_pct: v.charge_pct,
                runtime_s: v.runtime_s,
            },
            test,
        }
    }

    /// Queue an event's notification; never waits (a full queue drops it, counted and
    /// logged). The web UI's test message goes through `notify_test` instead.
    fn notify(&self, id: &str, sev: Severity, state: EventState, title: &str, v: &StatusView) {
        let c = &self.notify_cfg;
        if !c.email_enabled && !c.webhook_enabled {
            tracing::debug!("notify requested for {id}; no notification channel is enabled");
            return;
        }
        let msg = self.notification(id, sev, state, title, v, false);
        if let Some(n) = &self.notifier {
            n.submit(std::sync::Arc::clone(&self.notify_cfg), msg);
        }
    }

    /// A channel gave up on a message: an event, so it shows in the UI's event log.
    fn on_notify_failure(&mut self, f: crate::notifications::DeliveryFailure) {
        let rec = EventRecord::new(
            "notification_failed",
            Severity::Warning,
            EventState::None,
            &format!(
                "{} notification for {} failed after {} attempt(s): {}",
                f.result.channel, f.event, f.result.attempts, f.result.detail
            ),
        )
        .with_field("channel", f.result.channel)
        .with_field("event", f.event.as_str());
        self.append(&rec);
    }

    /// Test message on every enabled channel, one try each, answered from a task.
    fn notify_test(&self, reply: Reply) -> Option<(Response, Reply)> {
        let cfg = std::sync::Arc::clone(&self.notify_cfg);
        if !cfg.email_enabled && !cfg.webhook_enabled {
            return Some((
                Response::err(
                    "no notification channel is enabled: enable e-mail or the webhook and save first",
                ),
                reply,
            ));
        }
        let v = crate::service::requests::status_view(&self.state.borrow(), self.clock.now());
        let msg = self.notification(
            "test",
            Severity::Info,
            EventState::None,
            "Test notification",
            &v,
            true,
        );
        let secrets = self.creds.clone();
        tokio::spawn(async move {
            let results = crate::notifications::deliver(&cfg, &msg, &secrets, 1).await;
            for r in &results {
                tracing::info!(
                    "test notification by {}: {} ({})",
                    r.channel,
                    if r.ok { "sent" } else { "failed" },
                    crate::eventlog::display_escape(&r.detail)
                );
            }
            let _ = reply.send(Response::ok(serde_json::json!({ "results": results })));
        });
        None
    }

    fn warn_incomplete_notifications(&self) {
        for (key, rule) in self.cfg.notifications.incomplete() {
            tracing::warn!("config: [Notifications] {key} {rule}; that channel cannot deliver");
        }
    }

    fn append(&mut self, rec: &EventRecord) {
        let failing = self.events.write_failure().is_some();
        if let Err(e) = self.events.append(rec) {
            tracing::error!("cannot write the event log: {e}");
        }
        if failing != self.events.write_failure().is_some() || failing {
            self.publish_problems();
        }
    }

    /// Problems from a configuration load: refused entries and loose files, and servers
    /// this version does not have.
    fn set_config_problems(&mut self, warnings: &[config::ConfigWarning]) {
        use crate::status::{Problem, ProblemKind};
        let mut v = Vec::new();
        for w in warnings {
            let kind = match w.kind {
                config::WarningKind::InsecurePermissions => ProblemKind::FilePermissions,
                config::WarningKind::InvalidValue
                | config::WarningKind::UnknownKey
                | config::WarningKind::UnknownSection
                | config::WarningKind::Duplicate
                | config::WarningKind::MainFileUnusable
                | config::WarningKind::BackupUnusable
                | config::WarningKind::UsingDefaults => ProblemKind::Config,
                _ => continue,
            };
            let key = match (&w.section, &w.key) {
                (Some(s), Some(k)) => format!("[{s}] {k}"),
                (Some(s), None) => format!("[{s}]"),
                _ => w.file.as_ref().map_or_else(
                    || config::MAIN_FILE.to_string(),
                    |f| f.display().to_string(),
                ),
            };
            v.push(Problem::new(kind, key, w.to_string()));
        }
        for (section, what) in self.cfg.unimplemented_servers() {
            v.push(Problem::new(
                ProblemKind::NotImplemented,
                format!("[{section}] enabled"),
                config::not_implemented_message(what),
            ));
        }
        // Visible events too, not only a log line (capped: a file of garbage must not
        // flood the event log at every reload).
        let refused: Vec<String> = v
            .iter()
            .filter(|p| p.kind != ProblemKind::NotImplemented)
            .map(|p| p.message.clone())
            .collect();
        for m in refused.iter().take(20) {
            let rec = EventRecord::new(
                EventId::ConfigValueRefused.as_str(),
                Severity::Warning,
                EventState::None,
                m,
            );
            self.append(&rec);
        }
        if refused.len() > 20 {
            let rec = EventRecord::new(
                EventId::ConfigValueRefused.as_str(),
                Severity::Warning,
                EventState::None,
                &format!(
                    "and {} more refused configuration entries",
                    refused.len() - 20
                ),
            );
            self.append(&rec);
        }
        self.config_problems = v;
        self.publish_problems();
    }

    fn publish_problems(&self) {
        use crate::status::{Problem, ProblemKind};
        let mut all = self.file_problems.clone();
        all.extend(self.config_problems.iter().cloned());
        if let Some(f) = self.events.write_failure() {
            all.push(Problem::new(
                ProblemKind::EventLog,
                crate::eventlog::EVENTS_FILE,
                f.summary(),
            ));
        }
        self.problems.send_if_modified(|p| {
            let changed = *p != all;
            if changed {
                *p = all;
            }
            changed
        });
    }

    fn log_simple(&mut self, id: EventId, message: &str) {
        let state = if id.has_cleared_form() {
            EventState::Active
        } else {
            EventState::None
        };
        let rec = EventRecord::new(id.as_str(), severity(id.severity()), state, message);
        tracing::info!("event: {} — {message}", id.title());
        self.append(&rec);
    }

    fn spawn_command_file(
        &self,
        name: String,
        duration_s: u32,
        ctx: CmdContext,
        event: &str,
        shutdown: bool,
    ) {
        let data_dir = self.paths.data_dir.clone();
        let tx = self.internal.clone();
        let event = event.to_string();
        let opts = RunOptions::with_duration(Duration::from_secs(u64::from(duration_s)));
        tokio::spawn(async move {
            let result = cmdfile::run_async(data_dir, name.clone(), ctx, opts).await;
            let _ = tx.send(Internal::CommandFileDone {
                shutdown,
                event,
                name,
                result,
            });
        });
    }

    fn on_action(&mut self, action: HostAction) {
        tracing::info!("shutdown action: {action:?}");
        match action {
            HostAction::RunCommandFile { duration } => match self.cfg.shutdown.command_file.clone()
            {
                Some(name) => {
                    let ctx = self.cmd_context(
                        EventId::ShutdownStarted.as_str(),
                        Severity::Info,
                        EventState::Active,
                        "graceful shutdown started",
                    );
                    let secs = u32::try_from(duration.as_secs()).unwrap_or(u32::MAX);
                    self.spawn_command_file(
                        name.as_str().to_string(),
                        secs,
                        ctx,
                        EventId::ShutdownStarted.as_str(),
                        true,
                    );
                }
                None => self.driver.tell(Operator::CommandFileFinished),
            },
            HostAction::ArmUpsTurnOff { mode } => {
                let flag = killpower::flag_path(&self.paths.data_dir);
                let now_s = OffsetDateTime::now_utc().unix_timestamp();
                let body = killpower::flag_bytes(mode, u64::try_from(now_s).unwrap_or(0));
                if let Err(e) =
                    crate::atomic::write_atomic(&flag, &body, crate::atomic::MODE_PRIVATE)
                {
                    tracing::error!("cannot write the killpower flag {}: {e}", flag.display());
                }
            }
            HostAction::StartOsShutdown => self.start_os_shutdown(),
            HostAction::CancelShutdown => {
                let _ = std::fs::remove_file(killpower::flag_path(&self.paths.data_dir));
            }
        }
    }

    fn start_os_shutdown(&mut self) {
        if self.os_shutdown_started {
            return;
        }
        self.os_shutdown_started = true;
        let tx = self.internal.clone();
        if self.simulate {
            tracing::warn!(
                "simulation: the OS shutdown command would run now; this machine stays up"
            );
            // Nothing halts here: the sequence is over, and the machine says so until the
            // UPS is back on line (then a new outage can shut down again).
            self.driver.tell(Operator::OsShutdownDone);
            // Do what the shutdown hook would do late in the halt, through our own link.
            let driver = self.driver.clone();
            let mode = self.state.borrow().shutdown_config.ups_off_mode;
            let turn_off = self.state.borrow().shutdown_config.turn_off_ups;
            if !turn_off {
                return;
            }
            tokio::spawn(async move {
                let r = driver.request(mode.request()).await;
                tracing::warn!("simulation: killpower answered {r:?}");
            });
            return;
        }
        let argv: Vec<String> = self.cfg.shutdown.os_shutdown_command.args().to_vec();
        tracing::warn!("running the OS shutdown command: {argv:?}");
        // The shutdown record must survive the halt: on disk before the command runs.
        if let Err(e) = self.events.sync() {
            tracing::error!("cannot sync the event log before the OS shutdown: {e}");
        }
        tokio::task::spawn_blocking(move || {
            let result = match argv.split_first() {
                Some((prog, rest)) => std::process::Command::new(prog)
                    .args(rest)
                    .stdin(std::process::Stdio::null())
                    .status()
                    .map_err(|e| e.to_string()),
                None => Err("empty os_shutdown_command".to_string()),
            };
            let _ = tx.send(Internal::OsShutdownDone(result));
        });
    }

    async fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Ipc(req, reply) => {
                let resp = self.on_request(req, reply).await;
                if let Some((resp, reply)) = resp {
                    let _ = reply.send(resp);
                }
            }
            Internal::CommandFileDone {
                shutdown,
                event,
                name,
                result,
            } => {
                match result {
                    Ok(out) => {
                        let msg = format!(
                            "command file {name} for {event}: {} after {:.1} s{}; output: {}",
                            match (out.timed_out, out.exit.code, out.exit.signal) {
                                (true, _, _) => "killed at its duration".to_string(),
                                (false, Some(c), _) => format!("exit {c}"),
                                (false, None, Some(s)) => format!("signal {s}"),
                                _ => "ended".to_string(),
                            },
                            out.duration.as_secs_f64(),
                            if out.truncated {
                                " (output truncated)"
                            } else {
                                ""
                            },
                            out.output_escaped
                        );
                        let sev = if out.success() {
                            Severity::Info
                        } else {
                            Severity::Warning
                        };
                        let rec = EventRecord::new("command_file", sev, EventState::None, &msg)
                            .with_field("name", name.as_str())
                            .with_field("event", event.as_str());
                        self.append(&rec);
                    }
                    Err(e) => {
                        let refused = e.is_refusal();
                        let id = if refused {
                            EventId::CommandFileRefused.as_str()
                        } else {
                            "command_file"
                        };
                        let rec = EventRecord::new(
                            id,
                            Severity::Warning,
                            EventState::None,
                            &format!("command file {name} for {event} not run: {e}"),
                        )
                        .with_field("name", name.as_str());
                        tracing::warn!("{}", rec.message);
                        self.append(&rec);
                    }
                }
                if shutdown {
                    self.driver.tell(Operator::CommandFileFinished);
                }
            }
            Internal::OsShutdownDone(r) => {
                let failure = match r {
                    Ok(st) if st.success() => None,
                    Ok(st) => Some(format!("the OS shutdown command failed: {st}")),
                    Err(e) => Some(format!("the OS shutdown command could not run: {e}")),
                };
                match failure {
                    None => {
                        tracing::info!("OS shutdown command accepted");
                        let tx = self.internal.clone();
                        let b = u64::from(self.state.borrow().shutdown_config.os_shutdown_s);
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(b)).await;
                            let _ = tx.send(Internal::OsShutdownElapsed);
                        });
                    }
                    Some(msg) => {
                        tracing::error!("{msg}");
                        let rec = EventRecord::new(
                            "os_shutdown_failed",
                            Severity::Critical,
                            EventState::None,
                            &format!("{msg}; this machine is NOT shutting down"),
                        );
                        self.append(&rec);
                    }
                }
            }
            Internal::OsShutdownElapsed => {
                tracing::warn!(
                    "still running {} s after the OS shutdown command: the sequence is over",
                    self.state.borrow().shutdown_config.os_shutdown_s
                );
                self.driver.tell(Operator::OsShutdownDone);
            }
        }
    }

    /// Answers a CLI request; long ones are answered from a task (returns None then).
    async fn on_request(&mut self, req: Request, reply: Reply) -> Option<(Response, Reply)> {
        let resp = match req {
            Request::Status
            | Request::Events { .. }
            | Request::Datalog { .. }
            | Request::ShutdownNow
            | Request::Sleep { .. }
            | Request::SelfTest
            | Request::Calibrate { .. }
            | Request::SettingsGet
            | Request::SettingsSet { .. } => {
                // Answered by requests::Readers before anything reaches the monitor.
                Response::err("internal: this request is not the monitor's")
            }
            Request::Reload => {
                self.reload("configuration reloaded (SIGHUP)");
                Response::ok(serde_json::json!({"message": "configuration reloaded"}))
            }
            Request::LogEvent {
                id,
                message,
                fields,
                source,
            } => self.web_event(&id, &message, fields, source),
            Request::ConfigGet { section } => self.config_get(&section),
            Request::ConfigSet {
                section,
                values,
                username,
                source,
            } => self.config_set(&section, &values, username.as_deref(), source.as_deref()),
            Request::NotifyTest => return self.notify_test(reply),
        };
        Some((resp, reply))
    }

    fn sample_datalog(&mut self) {
        self.check_certificate();
        let st = self.state.borrow().clone();
        if st.ups.comm != CommState::Established {
            return;
        }
        let v = StatusView::from_snapshot(&st.ups, self.clock.now());
        let sample = Sample {
            input_v: v.input_voltage,
            output_v: v.output_voltage,
            freq_hz: v.frequency_hz,
            load_pct: v.load_pct,
            charge_pct: v.charge_pct,
            battery_v: v.battery_voltage,
            runtime_s: v.runtime_s,
            temp_c: v.temperature_c,
            ..Sample::empty(OffsetDateTime::now_utc())
        };
        if let Err(e) = self.data.append(&sample) {
            tracing::error!("cannot write the data log: {e}");
        }
    }
}
