//! The monitor: glue between the link, the core shutdown machine, the logs and the actions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};
use tokio::io::BufReader;
use tokio::sync::{mpsc, oneshot, watch};
use upsguard_core::event::{Event, EventId, Severity as CoreSeverity};
use upsguard_core::link::{
    CommState, LinkConfig, LinkEvent, RequestResult, UpsRequest, UpsSnapshot,
};
use upsguard_core::shutdown::{
    Action, CalibrationState, Observation, Phase, SelfTestResult as ObsSelfTest, ShutdownConfig,
    ShutdownMachine, ShutdownPolicy as CorePolicy, UpsOffMode as CoreOffMode,
};
use upsguard_core::time::Duration as CoreDuration;
use upsguard_core::wire::{SelfTestInterval, SelfTestResult, SettingVar, StatusFlags};

use super::{Paths, RunArgs, notify, schedule};
use crate::clock::Clock;
use crate::cmdfile::{self, CmdContext, RunOptions};
use crate::config::{self, Config};
use crate::datalog::{DataLog, DataLogLimits, Sample, TimeRange};
use crate::eventlog::{EventFilter, EventLog, EventLogLimits, EventRecord, EventState, Severity};
use crate::ipc::{self, Request, Response};
use crate::killpower;
use crate::link::{self as linkthread, LinkHandle, LinkMessage, LinkMessageKind};
use crate::status::StatusView;

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
}

/// Maps what the link driver knows onto the shutdown machine's input.
pub fn observation_from_snapshot(s: &UpsSnapshot) -> Observation {
    match s.comm {
        CommState::Lost | CommState::Closed => return Observation::comm_lost(),
        // Until the first handshake nothing is known; saying "lost" would fire events at
        // every start-up.
        CommState::Connecting => return Observation::default(),
        CommState::Established => {}
    }
    let flags = s.status.map(|st| st.value);
    // Status 00 means the output is off: it says nothing about mains or the battery, so
    // those stay "unknown" instead of reading as "back on line".
    let off = flags.is_some_and(|f| f.is_empty());
    let flag = |f: StatusFlags| flags.filter(|_| !off).map(|v| v.contains(f));
    let reg2 = s.registers.reg2.map(|r| r.value.0);
    let reg3 = s.registers.reg3.map(|r| r.value.0);
    Observation {
        comm_ok: Some(true),
        on_battery: flag(StatusFlags::OB),
        low_battery: flag(StatusFlags::LB),
        runtime_s: s.measurements.runtime_seconds.map(|r| r.value),
        charge_tenths: s
            .measurements
            .charge_percent
            .and_then(|c| u16::try_from(c.value.tenths().clamp(0, 1000)).ok()),
        overload: flag(StatusFlags::OVER),
        replace_battery: flag(StatusFlags::RB),
        // Register 2 bit 5: battery disconnected.
        battery_disconnected: reg2.map(|r| r & 0x20 != 0),
        // Status 00: output off (what NUT reports as OFF).
        output_off: flags.map(|f| f.is_empty()),
        // Register 3 bit 3: asleep after `@`.
        sleeping: reg3.map(|r| r & 0x08 != 0),
        boost: flag(StatusFlags::BOOST),
        trim: flag(StatusFlags::TRIM),
        temperature_dc: s
            .measurements
            .temperature
            .and_then(|t| i16::try_from(t.value.tenths()).ok()),
        self_test: s.self_test.map(|t| match t.value {
            SelfTestResult::Passed => ObsSelfTest::Passed,
            SelfTestResult::BatteryFailed | SelfTestResult::OverloadFailed => ObsSelfTest::Failed,
            SelfTestResult::NoResult => ObsSelfTest::NoResult,
        }),
        calibration: flag(StatusFlags::CAL).map(|c| {
            if c {
                CalibrationState::Running
            } else {
                CalibrationState::Idle
            }
        }),
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

fn phase_text(p: Phase) -> String {
    match p {
        Phase::Idle => "idle".into(),
        Phase::Pending { reason, .. } => format!("pending ({reason:?})"),
        Phase::CommandFile { reason, .. } => format!("command file running ({reason:?})"),
        Phase::OsShutdown { reason, .. } => format!("OS shutdown started ({reason:?})"),
    }
}

fn off_mode_line(mode: CoreOffMode) -> String {
    match mode {
        CoreOffMode::ShutdownReturn => "return".into(),
        CoreOffMode::StayOff => "stay_off".into(),
        CoreOffMode::Sleep { .. } => format!("sleep:{}", mode.sleep_tenths_of_hour().unwrap_or(1)),
    }
}

struct Monitor {
    paths: Paths,
    cfg: Config,
    simulate: bool,
    clock: Clock,
    link: LinkHandle,
    snap: watch::Receiver<UpsSnapshot>,
    machine: ShutdownMachine,
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
}

type SharedStore = std::sync::Arc<std::sync::Mutex<crate::credentials::CredentialStore>>;

pub async fn run(args: RunArgs, paths: Paths, local_offset: UtcOffset) -> Result<(), String> {
    prepare_dir(&paths.data_dir)?;
    prepare_dir(&paths.data_dir.join(cmdfile::CMDFILES_DIR))?;
    let loaded = config::load(&paths.config, &paths.backup);
    for w in &loaded.warnings {
        tracing::warn!("config: {w}");
    }
    let cfg = loaded.config;
    // First start: neither the file nor its backup exists (missing, not damaged). Write the
    // defaults, so the administrator has a complete, commented-by-key file to edit and a
    // backup from the first minute. A damaged file is never overwritten here.
    if matches!(loaded.source, config::ConfigSource::Defaults)
        && !paths.config.exists()
        && !paths.backup.exists()
    {
        let written = paths
            .config
            .parent()
            .map_or(Ok(()), |d| {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(d)
            })
            .map_err(|e| e.to_string())
            .and_then(|()| {
                cfg.save(&paths.config, &paths.backup)
                    .map_err(|e| e.to_string())
            });
        match written {
            Ok(()) => tracing::info!(
                "config: first start: wrote the default configuration to {}",
                paths.config.display()
            ),
            Err(e) => tracing::warn!(
                "config: cannot write the default configuration to {}: {e}",
                paths.config.display()
            ),
        }
    }
    let simulate = args.simulate.is_some();

    let mut events = EventLog::open(
        &paths.data_dir,
        EventLogLimits {
            max_file_kib: cfg.logging.event_log_max_kb,
            rotated_files: cfg.logging.event_log_files.saturating_sub(1),
        }
        .clamped(),
    )
    .map_err(|e| {
        format!(
            "cannot open the event log in {}: {e}",
            paths.data_dir.display()
        )
    })?;
    let data = DataLog::open(
        &paths.data_dir,
        DataLogLimits {
            max_file_kib: cfg.logging.datalog_max_kb,
            rotated_files: cfg.logging.datalog_files.saturating_sub(1),
            ..DataLogLimits::default()
        }
        .clamped(),
    )
    .map_err(|e| {
        format!(
            "cannot open the data log in {}: {e}",
            paths.data_dir.display()
        )
    })?;

    if loaded.used_backup {
        let why = loaded
            .main_error
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "unusable".into());
        let rec = EventRecord::new(
            EventId::ConfigBackupUsed.as_str(),
            Severity::Warning,
            EventState::None,
            &format!(
                "{} could not be used ({why}); started from the backup {}",
                paths.config.display(),
                paths.backup.display()
            ),
        );
        let _ = events.append(&rec);
        tracing::warn!("{}", rec.message);
    }

    // The emulator, when asked for, sits on a pty so the service uses the very same serial
    // path as with a real UPS.
    let _sim = if let Some(scenario) = &args.simulate {
        Some(start_simulator(
            &paths,
            scenario,
            args.sim_speed,
            args.sim_control.clone(),
        )?)
    } else {
        None
    };
    let device = match (&_sim, &args.device) {
        (Some(sim), _) => sim
            .link_path()
            .map(Path::to_path_buf)
            .ok_or("the emulator has no pty")?,
        (None, Some(d)) => d.clone(),
        (None, None) => PathBuf::from(&cfg.communication.device),
    };

    let clock = Clock::new();
    let (link_tx, mut link_rx) = mpsc::unbounded_channel();
    let link = linkthread::spawn(device.clone(), link_config(&cfg), clock, link_tx)
        .map_err(|e| format!("cannot start the link thread: {e}"))?;
    let snap = link.snapshot();

    let listener = ipc::bind(&paths.socket).map_err(|e| {
        format!(
            "cannot create the control socket {}: {e}",
            paths.socket.display()
        )
    })?;
    let (int_tx, mut int_rx) = mpsc::unbounded_channel();
    tokio::spawn(serve_ipc(listener, int_tx.clone()));

    let machine = ShutdownMachine::new(shutdown_config(&cfg));
    let mut m = Monitor {
        paths,
        cfg,
        simulate,
        clock,
        link,
        snap,
        machine,
        events,
        data,
        internal: int_tx,
        local_offset,
        schedules: BTreeMap::new(),
        os_shutdown_started: false,
        web_tls: None,
        cert_checked: None,
        notifier: None,
        notify_cfg: std::sync::Arc::new(config::Notifications::default()),
        creds: None,
        host_name: crate::notifications::host_name(),
    };
    m.notify_cfg = std::sync::Arc::new(m.cfg.notifications.clone());
    m.warn_incomplete_notifications();
    m.plan_schedules();
    m.log_simple(
        EventId::MonitoringStarted,
        &format!(
            "monitoring {} (config {})",
            device.display(),
            m.paths.config.display()
        ),
    );
    // The credential channels (INI reset, install file) are consumed even without the web
    // UI: plain-text secrets must not wait in the files for it.
    let store: Option<SharedStore> = m
        .bootstrap_credentials()
        .map(|s| std::sync::Arc::new(std::sync::Mutex::new(s)));
    m.creds = store.clone();
    let (notify_fail_tx, mut notify_fail_rx) = mpsc::unbounded_channel();
    m.notifier = Some(crate::notifications::Notifier::spawn(
        store.clone(),
        notify_fail_tx,
    ));
    if let Some(store) = store.filter(|_| !args.no_web) {
        // The web side asks the monitor through the same request path as the CLI.
        let (web_tx, mut web_rx) = mpsc::unbounded_channel::<(Request, Reply)>();
        let fwd = m.internal.clone();
        tokio::spawn(async move {
            while let Some((req, reply)) = web_rx.recv().await {
                if fwd.send(Internal::Ipc(req, reply)).is_err() {
                    break;
                }
            }
        });
        m.start_web(store, web_tx, args.web_test_clock_file.clone())
            .await;
    }
    if simulate {
        print_sim_banner(&m.paths, &device, _sim.as_ref());
    }
    notify::notify("READY=1");

    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sighup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut datalog_tick = tokio::time::interval(Duration::from_secs(u64::from(
        m.cfg.logging.datalog_interval_s.max(1),
    )));
    datalog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watchdog = notify::watchdog_interval();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let stdin_lines = if simulate {
        Some(spawn_stdin_reader())
    } else {
        None
    };
    let mut stdin_rx = stdin_lines;

    loop {
        let deadline = m.next_deadline();
        tokio::select! {
            biased;
            Some(msg) = link_rx.recv() => m.on_link(msg),
            _ = sleep_until(deadline) => m.on_timer(),
            Some(msg) = int_rx.recv() => m.on_internal(msg).await,
            Some(f) = notify_fail_rx.recv() => m.on_notify_failure(f),
            _ = datalog_tick.tick() => m.sample_datalog(),
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify::notify("WATCHDOG=1"),
            Some(line) = recv_opt(&mut stdin_rx) => {
                if let Some(sim) = &_sim {
                    println!("{}", upsguard_sim::answer_line(sim.control(&line)).trim_end());
                }
            }
            _ = sighup.recv() => m.reload("configuration reloaded (SIGHUP)"),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        m.drain_machine();
    }
    notify::notify("STOPPING=1");
    m.log_simple(EventId::MonitoringStopped, "service stopping");
    // Leave the UPS in dumb mode (`R`) as NUT and apcupsd do.
    m.link.stop().await;
    let _ = std::fs::remove_file(&m.paths.socket);
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(kind).map_err(|e| format!("cannot install a signal handler: {e}"))
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

async fn recv_opt(rx: &mut Option<mpsc::UnboundedReceiver<String>>) -> Option<String> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn prepare_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
    }
    Ok(())
}

fn link_config(cfg: &Config) -> LinkConfig {
    let c = &cfg.communication;
    LinkConfig {
        status_interval: CoreDuration::from_millis(u64::from(c.poll_interval_ms)),
        reply_timeout: CoreDuration::from_millis(u64::from(c.reply_timeout_ms)),
        // `retries` is validated to 0..=10, so these fit a u8.
        retries: u8::try_from(c.retries).unwrap_or(10),
        max_consecutive_failures: u8::try_from(c.retries.saturating_add(1)).unwrap_or(11),
        ..LinkConfig::default()
    }
}

fn start_simulator(
    paths: &Paths,
    scenario: &str,
    speed: f64,
    control: Option<String>,
) -> Result<upsguard_sim::SimHandle, String> {
    let scenario = if scenario.is_empty() {
        None
    } else {
        let text = std::fs::read_to_string(scenario)
            .map_err(|e| format!("cannot read scenario {scenario}: {e}"))?;
        Some(
            upsguard_sim::Scenario::parse(&text)
                .map_err(|e| format!("scenario {scenario}: {e}"))?,
        )
    };
    let opts = upsguard_sim::SimOptions {
        transport: upsguard_sim::Transport::Pty(paths.data_dir.join("ups-tty")),
        speed,
        scenario,
        control_addr: control,
        eeprom_path: Some(paths.data_dir.join("sim-eeprom.json")),
        ..upsguard_sim::SimOptions::default()
    };
    upsguard_sim::spawn(opts).map_err(|e| format!("cannot start the emulator: {e}"))
}

fn print_sim_banner(paths: &Paths, device: &Path, sim: Option<&upsguard_sim::SimHandle>) {
    println!("upsguard is monitoring the built-in emulated UPS.");
    println!("  emulated serial port : {}", device.display());
    println!(
        "  event log            : {}",
        paths.data_dir.join("events.jsonl").display()
    );
    println!(
        "  data log             : {}",
        paths.data_dir.join("datalog.csv").display()
    );
    println!("  configuration        : {}", paths.config.display());
    println!(
        "  status from the CLI  : upsguard --socket {} status",
        paths.socket.display()
    );
    if let Some(addr) = sim.and_then(|s| s.control_addr()) {
        println!("  emulator control     : {addr}");
    }
    println!("Type emulator commands here: `mains off`, `mains on`, `load 80`, `status`, `help`.");
    println!("Simulation mode never shuts this machine down: the OS shutdown step is only logged.");
}

fn spawn_stdin_reader() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn serve_ipc(listener: tokio::net::UnixListener, tx: mpsc::UnboundedSender<Internal>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            if !ipc::peer_allowed(&stream) {
                return;
            }
            let mut reader = BufReader::new(stream);
            let resp = match ipc::read_request(&mut reader).await {
                Ok(req) => {
                    let (rtx, rrx) = oneshot::channel();
                    if tx.send(Internal::Ipc(req, rtx)).is_err() {
                        Response::err("service is stopping")
                    } else {
                        rrx.await.unwrap_or_else(|_| Response::err("no answer"))
                    }
                }
                Err(e) => Response::err(e),
            };
            let mut stream = reader.into_inner();
            let _ = ipc::write_response(&mut stream, &resp).await;
        });
    }
}

impl Monitor {
    fn next_deadline(&self) -> Option<std::time::Instant> {
        let machine = self
            .machine
            .poll_timeout()
            .map(|t| std::time::Instant::now() + self.clock.until(t));
        let sched = self.schedules.values().map(|(t, _)| *t).min().map(|t| {
            let secs = (t - OffsetDateTime::now_utc()).whole_milliseconds().max(0);
            std::time::Instant::now() + Duration::from_millis(u64::try_from(secs).unwrap_or(0))
        });
        match (machine, sched) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_link(&mut self, msg: LinkMessage) {
        match &msg.kind {
            LinkMessageKind::Event(ev) => {
                match ev {
                    LinkEvent::Alert(a) => tracing::debug!("alert {a:?}"),
                    LinkEvent::Identified => {
                        let s = self.snap.borrow();
                        tracing::info!(
                            "UPS identified: {} serial {} firmware {}",
                            s.identity
                                .model
                                .as_ref()
                                .map(|m| m.value.as_str())
                                .unwrap_or("?")
                                .trim(),
                            s.identity
                                .serial
                                .as_ref()
                                .map(|m| m.value.as_str())
                                .unwrap_or("?"),
                            s.identity
                                .firmware
                                .as_ref()
                                .map(|m| m.value.text.as_str())
                                .unwrap_or("?"),
                        );
                    }
                    _ => {}
                }
                let obs = observation_from_snapshot(&self.snap.borrow());
                self.machine.observe(self.clock.now(), &obs);
            }
            LinkMessageKind::PortProblem { message, first } => {
                if *first {
                    tracing::warn!("{message}");
                }
            }
            LinkMessageKind::PortOpened(p) => tracing::info!("serial port {} open", p.display()),
        }
        let _ = msg.at;
    }

    fn on_timer(&mut self) {
        self.machine.handle_timeout(self.clock.now());
        let now = OffsetDateTime::now_utc();
        let due: Vec<(String, time::Duration)> = self
            .schedules
            .iter()
            .filter(|(_, (t, _))| *t <= now)
            .map(|(n, (_, w))| (n.clone(), *w))
            .collect();
        for (name, window) in due {
            let wake = CoreDuration::from_secs(u64::try_from(window.whole_seconds()).unwrap_or(0));
            match self
                .machine
                .scheduled_shutdown(self.clock.now(), Some(wake))
            {
                Ok(()) => tracing::info!("scheduled shutdown {name} started"),
                Err(e) => tracing::warn!("scheduled shutdown {name} not started: {e:?}"),
            }
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

    /// Logs and acts on everything the machine produced.
    fn drain_machine(&mut self) {
        while let Some(ev) = self.machine.poll_event() {
            self.on_event(ev);
        }
        while let Some(action) = self.machine.poll_action() {
            self.on_action(action);
        }
    }

    fn cmd_context(&self, id: &str, sev: Severity, state: EventState, message: &str) -> CmdContext {
        let v = StatusView::from_snapshot(&self.snap.borrow(), self.clock.now());
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
        let v = StatusView::from_snapshot(&self.snap.borrow(), self.clock.now());
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
        let v = StatusView::from_snapshot(&self.snap.borrow(), self.clock.now());
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
        if let Err(e) = self.events.append(rec) {
            tracing::error!("cannot write the event log: {e}");
        }
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

    fn on_action(&mut self, action: Action) {
        tracing::info!("shutdown action: {action:?}");
        match action {
            Action::RunCommandFile { duration } => match self.cfg.shutdown.command_file.clone() {
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
                None => self.machine.command_file_finished(self.clock.now()),
            },
            Action::ArmUpsTurnOff { mode } => {
                let flag = killpower::flag_path(&self.paths.data_dir);
                let body = format!("mode={}\n", off_mode_line(mode));
                if let Err(e) =
                    crate::atomic::write_atomic(&flag, body.as_bytes(), crate::atomic::MODE_PRIVATE)
                {
                    tracing::error!("cannot write the killpower flag {}: {e}", flag.display());
                }
            }
            Action::StartOsShutdown => self.start_os_shutdown(),
            Action::CancelShutdown => {
                let _ = std::fs::remove_file(killpower::flag_path(&self.paths.data_dir));
            }
            Action::TurnOffUpsNow { mode } => {
                let req = match mode {
                    CoreOffMode::StayOff => UpsRequest::ShutdownStayOff,
                    CoreOffMode::ShutdownReturn => UpsRequest::ShutdownReturn { tenths_of_hour: 0 },
                    CoreOffMode::Sleep { .. } => UpsRequest::ShutdownReturn {
                        tenths_of_hour: mode.sleep_tenths_of_hour().unwrap_or(1),
                    },
                };
                let link = self.link.clone();
                tokio::spawn(async move {
                    match link.request(req).await {
                        Ok(r) => tracing::info!("UPS turn-off: {r:?}"),
                        Err(e) => tracing::error!("UPS turn-off failed: {e}"),
                    }
                });
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
            // Do what the shutdown hook would do late in the halt, through our own link.
            let link = self.link.clone();
            tokio::spawn(async move {
                let r = link.request(UpsRequest::KillPower).await;
                tracing::warn!("simulation: killpower answered {r:?}");
            });
            return;
        }
        let argv: Vec<String> = self.cfg.shutdown.os_shutdown_command.args().to_vec();
        tracing::warn!("running the OS shutdown command: {argv:?}");
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
                    self.machine.command_file_finished(self.clock.now());
                }
            }
            Internal::OsShutdownDone(r) => match r {
                Ok(st) if st.success() => tracing::info!("OS shutdown command accepted"),
                Ok(st) => tracing::error!("OS shutdown command failed: {st}"),
                Err(e) => tracing::error!("OS shutdown command could not run: {e}"),
            },
        }
    }

    /// Answers a CLI request; long ones are answered from a task (returns None then).
    async fn on_request(&mut self, req: Request, reply: Reply) -> Option<(Response, Reply)> {
        let now = self.clock.now();
        let resp = match req {
            Request::Status => {
                let mut v = StatusView::from_snapshot(&self.snap.borrow(), now);
                v.shutdown_phase = phase_text(self.machine.phase());
                Response::ok(serde_json::to_value(v).unwrap_or_default())
            }
            Request::Events { limit } => {
                let filter = EventFilter {
                    limit: Some(limit.unwrap_or(50).min(10_000)),
                    ..EventFilter::default()
                };
                match self.events.read(&filter) {
                    Ok(out) => {
                        let text: String = out
                            .records
                            .iter()
                            .map(|r| r.display_line() + "\n")
                            .collect();
                        let records: Vec<serde_json::Value> = out
                            .records
                            .iter()
                            .filter_map(|r| r.to_json_line().ok())
                            .filter_map(|l| serde_json::from_str(&l).ok())
                            .collect();
                        Response::ok(serde_json::json!({
                            "records": records,
                            "text": text,
                            "csv": crate::eventlog::to_csv(&out.records),
                            "skipped": out.skipped,
                        }))
                    }
                    Err(e) => Response::err(format!("cannot read the event log: {e}")),
                }
            }
            Request::Datalog { limit } => {
                match self.data.read(
                    TimeRange::default(),
                    Some(limit.unwrap_or(100).min(100_000)),
                ) {
                    Ok(out) => Response::ok(serde_json::json!({
                        "csv": crate::datalog::samples_to_csv(&out.rows),
                    })),
                    Err(e) => Response::err(format!("cannot read the data log: {e}")),
                }
            }
            Request::ShutdownNow => match self.machine.shutdown_now(now) {
                Ok(()) => Response::ok(serde_json::json!({"message": "graceful shutdown started"})),
                Err(e) => Response::err(format!("refused: {e:?}")),
            },
            Request::Sleep { hours, graceful } => {
                let h = u16::try_from(hours).unwrap_or(u16::MAX);
                match self.machine.sleep(now, h, graceful) {
                    Ok(()) => Response::ok(serde_json::json!({"message": if graceful {
                        format!("graceful shutdown started; the UPS then sleeps {hours} h")
                    } else {
                        format!("the UPS is told to sleep {hours} h")
                    }})),
                    Err(e) => Response::err(format!("refused: {e:?} (hours must be 1..=99)")),
                }
            }
            Request::SelfTest => return self.forward(UpsRequest::SelfTest, reply),
            Request::Calibrate { abort } => {
                let r = if abort {
                    UpsRequest::CalibrationAbort
                } else {
                    UpsRequest::CalibrationStart
                };
                return self.forward(r, reply);
            }
            Request::SettingsGet => Response::ok(self.settings_json()),
            Request::SettingsSet { name, value } => match self.setting_request(&name, &value) {
                Ok(r) => return self.forward(r, reply),
                Err(e) => Response::err(e),
            },
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

    fn forward(&self, req: UpsRequest, reply: Reply) -> Option<(Response, Reply)> {
        let link = self.link.clone();
        tokio::spawn(async move {
            let resp = match link.request(req).await {
                Ok(RequestResult::Failed(f)) => Response::err(format!("the UPS refused: {f:?}")),
                Ok(r) => Response::ok(serde_json::json!({"message": format!("done: {r:?}")})),
                Err(e) => Response::err(e),
            };
            let _ = reply.send(resp);
        });
        None
    }

    fn settings_json(&self) -> serde_json::Value {
        let s = self.snap.borrow();
        let v = StatusView::from_snapshot(&s, self.clock.now());
        let mut out = Vec::new();
        for var in SettingVar::ALL {
            let permitted: Vec<String> = s
                .capabilities
                .as_ref()
                .and_then(|c| c.permitted(var.byte()))
                .map(|vals| {
                    vals.iter()
                        .map(|x| x.as_str().trim_end().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let value = match var {
                SettingVar::TransferHigh => v.transfer_high_v.map(|x| x.to_string()),
                SettingVar::TransferLow => v.transfer_low_v.map(|x| x.to_string()),
                SettingVar::ShutdownDelay => v.shutdown_delay_s.map(|x| format!("{x:03}")),
                SettingVar::ReturnDelay => v.return_delay_s.map(|x| format!("{x:03}")),
                SettingVar::LowBatteryWarning => {
                    v.low_battery_warning_min.map(|x| format!("{x:02}"))
                }
                SettingVar::MinReturnCharge => v.min_return_charge_pct.map(|x| format!("{x:02}")),
                SettingVar::Sensitivity => s
                    .settings
                    .sensitivity
                    .map(|x| String::from_utf8_lossy(x.value.as_bytes()).into_owned()),
                SettingVar::AlarmDelay => s
                    .settings
                    .alarm_delay
                    .map(|x| String::from_utf8_lossy(x.value.as_bytes()).into_owned()),
                SettingVar::OutputVoltage => v.nominal_output_voltage.map(|x| x.to_string()),
                // The UPS's own spelling, so it matches an entry of the permitted list.
                SettingVar::SelfTestInterval => {
                    s.settings.self_test_interval.map(|x| match x.value {
                        SelfTestInterval::Hours(h) => format!("{h:03}"),
                        SelfTestInterval::OnPowerOn => "ON".to_string(),
                        SelfTestInterval::Off => "OFF".to_string(),
                    })
                }
            };
            out.push(serde_json::json!({
                "name": setting_name(var),
                "value": value,
                "permitted": permitted,
            }));
        }
        serde_json::Value::Array(out)
    }

    fn setting_request(&self, name: &str, value: &str) -> Result<UpsRequest, String> {
        if let Some(var) = SettingVar::ALL
            .into_iter()
            .find(|v| setting_name(*v) == name)
        {
            let s = self.snap.borrow();
            let permitted = s
                .capabilities
                .as_ref()
                .and_then(|c| c.permitted(var.byte()))
                .ok_or_else(|| format!("the UPS does not allow changing {name}"))?;
            let wanted = permitted
                .iter()
                .find(|p| p.as_str().trim_end() == value.trim())
                .copied()
                .ok_or_else(|| {
                    let list: Vec<&str> = permitted.iter().map(|p| p.as_str().trim_end()).collect();
                    format!(
                        "{value} is not a value the UPS permits for {name}; permitted: {}",
                        list.join(", ")
                    )
                })?;
            return Ok(UpsRequest::SetSetting { var, value: wanted });
        }
        let var = match name {
            "ups_name" => upsguard_core::wire::StringVar::UpsId,
            "battery_date" => upsguard_core::wire::StringVar::BatteryDate,
            _ => {
                let names: Vec<&str> = SettingVar::ALL.into_iter().map(setting_name).collect();
                return Err(format!(
                    "unknown setting {name:?}; known: {}, ups_name, battery_date",
                    names.join(", ")
                ));
            }
        };
        if value.is_empty()
            || value.len() > 8
            || !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(format!("{name} must be 1 to 8 printable ASCII characters"));
        }
        let mut v = upsguard_core::heapless::String::<8>::new();
        v.push_str(value)
            .map_err(|_| format!("{name} must be at most 8 characters"))?;
        Ok(UpsRequest::WriteString { var, value: v })
    }

    /// At start-up and once a day: our own self-signed certificate is renewed within 30 days
    /// of expiry; an imported one is never replaced, it gets the warning instead.
    fn check_certificate(&mut self) {
        let Some(tls) = self.web_tls.clone() else {
            return;
        };
        let now = std::time::Instant::now();
        if self
            .cert_checked
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(86_400))
        {
            return;
        }
        self.cert_checked = Some(now);
        match tls.renew_if_due() {
            Ok(Some(info)) => {
                self.log_simple(
                    EventId::ConfigurationChanged,
                    &format!(
                        "the web UI's self-signed certificate was within {} days of expiry and has been renewed (RSA 2048, SHA-512, same names); the new one is valid until {} (SHA-256 {})",
                        crate::web::cert::RENEW_BEFORE_DAYS,
                        info.to_json()["not_after"].as_str().unwrap_or("?"),
                        info.sha256_fingerprint
                    ),
                );
                return;
            }
            Ok(None) => {}
            Err(e) => tracing::error!("web: the certificate could not be renewed: {e}"),
        }
        if tls.expiry_warning_due() {
            self.log_simple(
                EventId::CertificateExpiring,
                &format!(
                    "the web UI certificate expires in {} days; replace it with `upsguard cert generate` or `cert import`",
                    tls.days_until_expiry()
                ),
            );
        }
    }

    fn sample_datalog(&mut self) {
        self.check_certificate();
        let s = self.snap.borrow().clone();
        if s.comm != CommState::Established {
            return;
        }
        let v = StatusView::from_snapshot(&s, self.clock.now());
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

    /// `[Credentials]` in the INI, the reset channel (product §8.5): secrets go into the
    /// store and are scrubbed from the file, used or not. Runs at start-up and on every
    /// reload, so a password written into the file never waits there for a restart.
    fn consume_ini_credentials(&mut self, store: &mut crate::credentials::CredentialStore) {
        if let Some(c) = self.cfg.take_credentials() {
            if let Some(pw) = &c.smtp_password {
                match store.set_smtp_password(Some(pw)) {
                    Ok(()) | Err(crate::credentials::CredError::BackupNotUpdated(_)) => self
                        .log_simple(
                            EventId::CredentialsChanged,
                            &format!(
                                "SMTP password for [Notifications] set from the [Credentials] section of {}",
                                self.paths.config.display()
                            ),
                        ),
                    Err(e) => tracing::error!(
                        "smtp_password from [Credentials] not used (removed from the file anyway): {e}"
                    ),
                }
            }
            if c.username.is_some() || c.password.is_some() {
                let u = c.username.clone().unwrap_or_default();
                let p = c.password.clone().unwrap_or_default();
                match store.set_admin(&u, &p) {
                    Ok(()) | Err(crate::credentials::CredError::BackupNotUpdated(_)) => {
                        self.log_simple(
                            EventId::CredentialsChanged,
                            &format!(
                                "administrator {} set from the [Credentials] section of {}",
                                crate::eventlog::display_escape(&u),
                                self.paths.config.display()
                            ),
                        );
                    }
                    Err(e) => tracing::error!(
                        "credentials from [Credentials] not used (removed from the file anyway): {e}"
                    ),
                }
            }
            if c.username.is_some() || c.password.is_some() || c.smtp_password.is_some() {
                // Plain-text secrets never stay in the file, used or not.
                if let Err(e) = config::scrub_credentials(&self.paths.config, &self.paths.backup) {
                    tracing::error!("cannot remove [Credentials] from the configuration: {e}");
                }
                if let Some(pw) = &c.pkcs12_password {
                    // The keystore password belongs in the config: put it back.
                    let mut again = config::load(&self.paths.config, &self.paths.backup).config;
                    if again.set("Credentials", "pkcs12_password", pw).is_ok()
                        && let Err(e) = again.save(&self.paths.config, &self.paths.backup)
                    {
                        tracing::error!("cannot keep pkcs12_password in the configuration: {e}");
                    }
                }
            }
            if let Some(pw) = &c.pkcs12_password {
                let _ = self.cfg.set("Credentials", "pkcs12_password", pw);
            }
        }
    }

    /// Open the credential store and consume `[Credentials]` and the install-time file. A
    /// store that cannot be opened is logged; the web UI then stays off.
    fn bootstrap_credentials(&mut self) -> Option<crate::credentials::CredentialStore> {
        use crate::credentials::{CredentialStore, INSTALL_FILE_NAME};
        let data_dir = self.paths.data_dir.clone();
        let (mut store, report) = match CredentialStore::open(&data_dir) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("credential store: {e}; the web UI is not started");
                return None;
            }
        };
        for note in report.notes() {
            tracing::warn!("credentials: {note}");
        }
        if report.used_backup() {
            self.log_simple(
                EventId::CredentialsBackupUsed,
                &format!(
                    "credentials.enc was damaged; restored from credentials.bak ({})",
                    report.notes().join("; ")
                ),
            );
        }
        self.consume_ini_credentials(&mut store);
        match store.consume_install_file(&data_dir.join(INSTALL_FILE_NAME)) {
            Ok(Some(user)) => self.log_simple(
                EventId::CredentialsChanged,
                &format!(
                    "administrator {} set from the install-time credentials file",
                    crate::eventlog::display_escape(&user)
                ),
            ),
            Ok(None) => {}
            Err(e) => tracing::error!("{e}"),
        }
        Some(store)
    }

    /// `[Web] pkcs12_file` names a keystore in `<data-dir>/tls/` whose password is
    /// `[Credentials] pkcs12_password` (product §8.2): it becomes the served certificate at
    /// start-up and on reload. A bad keystore or password is logged and the previous
    /// certificate stays in service.
    fn install_configured_pkcs12(&self, data_dir: &Path) {
        let Some(name) = self.cfg.web.pkcs12_file.clone() else {
            return;
        };
        let password = self
            .cfg
            .clone()
            .take_credentials()
            .and_then(|c| c.pkcs12_password.clone());
        let Some(password) = password else {
            tracing::error!(
                "web: [Web] pkcs12_file = {} but [Credentials] pkcs12_password is not set; keeping the current certificate",
                name.as_str()
            );
            return;
        };
        let file = data_dir.join("tls").join(name.as_str());
        match crate::web::cert::import_pkcs12(data_dir, &file, &password) {
            Ok(info) => tracing::info!(
                "web: certificate from the PKCS#12 keystore {} installed ({})",
                name.as_str(),
                info.subject
            ),
            Err(e) => tracing::error!(
                "web: PKCS#12 keystore {} not used: {e}; keeping the current certificate",
                name.as_str()
            ),
        }
    }

    /// Setup token, certificate and the HTTPS listener. Every failure here is a log message:
    /// monitoring goes on without the web UI.
    async fn start_web(
        &mut self,
        store: SharedStore,
        tx: crate::web::api::MonitorTx,
        clock_file: Option<PathBuf>,
    ) {
        use crate::credentials::{SETUP_TOKEN_TTL, SetupToken};
        let data_dir = self.paths.data_dir.clone();
        let has_admin = store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .has_admin();
        if has_admin {
            let _ = SetupToken::discard(&data_dir);
        } else {
            match SetupToken::create(&data_dir) {
                Ok(token) => tracing::warn!(
                    "web: no administrator yet. One-time setup token: {token} (valid {} h; enter it on the setup page)",
                    SETUP_TOKEN_TTL.as_secs() / 3600
                ),
                Err(e) => tracing::error!("web: cannot create a setup token: {e}"),
            }
        }
        self.install_configured_pkcs12(&data_dir);
        let tls = match crate::web::TlsManager::load_or_generate(&data_dir) {
            Ok(t) => std::sync::Arc::new(t),
            Err(e) => {
                tracing::error!("web: not started: certificate: {e}");
                return;
            }
        };
        if tls.generated_at_start() {
            tracing::info!("web: generated a self-signed certificate (RSA 2048, SHA-512)");
        }
        self.web_tls = Some(std::sync::Arc::clone(&tls));
        self.check_certificate();
        let addr = std::net::SocketAddr::new(self.cfg.web.bind, self.cfg.web.port);
        let listener = match crate::web::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("web: cannot listen on {addr}: {e}; the web UI is not available");
                return;
            }
        };
        let shown = listener.local_addr().map_or(addr, |a| a);
        tracing::info!("web: HTTPS on https://{shown}/");
        let idle = Duration::from_secs(u64::from(self.cfg.web.idle_timeout_min.max(1)) * 60);
        let ctx = crate::web::api::Ctx::new(
            store,
            tx,
            idle,
            crate::web::api::WebClock::new(clock_file),
            Some(std::sync::Arc::clone(&tls)),
        );
        tokio::spawn(async move {
            if let Err(e) = crate::web::serve(
                listener,
                tls,
                crate::web::api::routes(ctx),
                crate::web::ServeOptions::default(),
                std::future::pending::<()>(),
            )
            .await
            {
                tracing::error!("web: server stopped: {e}");
            }
        });
    }

    /// Events the web side may log; anything else is refused so the channel cannot forge
    /// UPS events.
    fn web_event(
        &mut self,
        id: &str,
        message: &str,
        fields: BTreeMap<String, String>,
        source: Option<String>,
    ) -> Response {
        const ALLOWED: [EventId; 7] = [
            EventId::Login,
            EventId::Logout,
            EventId::LoginFailed,
            EventId::AccountLocked,
            EventId::CredentialsChanged,
            EventId::ConfigurationChanged,
            EventId::CertificateExpiring,
        ];
        let Some(eid) = ALLOWED.into_iter().find(|e| e.as_str() == id) else {
            return Response::err(format!(
                "event {} cannot be logged from the web side",
                crate::eventlog::display_escape(id)
            ));
        };
        let state = if eid.has_cleared_form() {
            EventState::Active
        } else {
            EventState::None
        };
        let mut rec = EventRecord::new(eid.as_str(), severity(eid.severity()), state, message);
        for (k, v) in fields {
            rec = rec.with_field(&k, v);
        }
        if let Some(src) = &source {
            rec = rec.with_source(src);
        }
        // User text (a typed username) must not forge lines in the service log either.
        tracing::info!(
            "event: {} — {}",
            eid.title(),
            crate::eventlog::display_escape(message)
        );
        self.append(&rec);
        Response::ok(serde_json::Value::Null)
    }

    fn config_section(section: &str) -> Result<config::SectionId, Response> {
        let sid = config::SectionId::from_name(section).ok_or_else(|| {
            Response::err(format!(
                "unknown section {}",
                crate::eventlog::display_escape(section)
            ))
        })?;
        if sid == config::SectionId::Credentials {
            return Err(Response::err(
                "the [Credentials] section cannot be read or written here; use the security page",
            ));
        }
        Ok(sid)
    }

    fn config_get(&self, section: &str) -> Response {
        let sid = match Self::config_section(section) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let values: serde_json::Map<String, serde_json::Value> = self
            .cfg
            .section_entries(sid)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        Response::ok(serde_json::json!({"section": sid.name(), "values": values}))
    }

    /// All or nothing: every value through the typed setter on a copy, then save and reload.
    /// `username`/`source` say who asked, for the configuration_changed event.
    fn config_set(
        &mut self,
        section: &str,
        values: &BTreeMap<String, String>,
        username: Option<&str>,
        source: Option<&str>,
    ) -> Response {
        let sid = match Self::config_section(section) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if values.is_empty() {
            return Response::err("no values given");
        }
        // No program or file path ever comes from a client (product §8): the device, the
        // shutdown command, command files and certificate files change in the INI file only.
        // Checked here, where every ConfigSet lands, so no client can go around it.
        for (k, v) in values {
            if let Some(why) = self.cfg.file_only_refusal(sid, k, v) {
                return Response::err_file_only(why, k);
            }
        }
        // `[Credentials]` (e.g. a pkcs12_password) stays as it is: `save` keeps it out of the
        // backup, and this request cannot change it.
        let mut next = self.cfg.clone();
        for (k, v) in values {
            if let Err(e) = next.set(sid.name(), k, v) {
                return Response::err_key(e.to_string(), k);
            }
        }
        // An enabled channel that could never deliver is refused here rather than found out
        // during a power failure.
        if sid == config::SectionId::Notifications
            && let Some((key, rule)) = next.notifications.incomplete().into_iter().next()
        {
            return Response::err_key(format!("[Notifications] {key} {rule}"), key);
        }
        if let Err(e) = next.save(&self.paths.config, &self.paths.backup) {
            return Response::err(format!("cannot save the configuration: {e}"));
        }
        // Who, from where, and which keys (the event log escapes the user text in them).
        let keys = values
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let who = match (username, source) {
            (Some(u), Some(s)) => format!(" by {u} from {s}"),
            (Some(u), None) => format!(" by {u}"),
            (None, Some(s)) => format!(" from {s}"),
            (None, None) => String::new(),
        };
        let via = if username.is_some() {
            "the web UI"
        } else {
            "the control socket"
        };
        let message = format!(
            "configuration changed from {via}{who}: [{}] {keys}",
            sid.name()
        );
        let eid = EventId::ConfigurationChanged;
        let mut rec = EventRecord::new(
            eid.as_str(),
            severity(eid.severity()),
            EventState::None,
            &message,
        )
        .with_field("section", sid.name())
        .with_field("keys", keys.as_str());
        if let Some(u) = username {
            rec = rec.with_field("username", u);
        }
        if let Some(s) = source {
            rec = rec.with_source(s);
        }
        self.reload_logged(&rec);
        self.config_get(sid.name())
    }

    fn reload(&mut self, why: &str) {
        let eid = EventId::ConfigurationChanged;
        let rec = EventRecord::new(
            eid.as_str(),
            severity(eid.severity()),
            EventState::None,
            why,
        );
        self.reload_logged(&rec);
    }

    /// Reload the file; `rec` is the configuration_changed event that says why.
    fn reload_logged(&mut self, rec: &EventRecord) {
        let loaded = config::load(&self.paths.config, &self.paths.backup);
        for w in &loaded.warnings {
            tracing::warn!("config: {w}");
        }
        if loaded.used_backup {
            let rec = EventRecord::new(
                EventId::ConfigBackupUsed.as_str(),
                Severity::Warning,
                EventState::None,
                &format!(
                    "{} unusable on reload; the backup was used",
                    self.paths.config.display()
                ),
            );
            self.append(&rec);
        }
        self.cfg = loaded.config;
        if self.cfg.credentials_present()
            && let Some(store) = self.creds.clone()
        {
            // Argon2id stalls this loop for a fraction of a second; only when the administrator
            // has just put a secret in the file, and the link thread keeps reading meanwhile.
            let mut store = store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.consume_ini_credentials(&mut store);
        }
        self.notify_cfg = std::sync::Arc::new(self.cfg.notifications.clone());
        self.warn_incomplete_notifications();
        self.machine
            .set_config(self.clock.now(), shutdown_config(&self.cfg));
        self.events.set_limits(
            EventLogLimits {
                max_file_kib: self.cfg.logging.event_log_max_kb,
                rotated_files: self.cfg.logging.event_log_files.saturating_sub(1),
            }
            .clamped(),
        );
        self.plan_schedules();
        // User text (a username, key names) must not forge lines in the service log.
        tracing::info!(
            "event: {} — {}",
            EventId::ConfigurationChanged.title(),
            crate::eventlog::display_escape(&rec.message)
        );
        self.append(rec);
        // A certificate replaced with `upsguard cert import|generate` is served from here on.
        if let Some(tls) = self.web_tls.clone() {
            self.install_configured_pkcs12(&self.paths.data_dir.clone());
            match tls.reload() {
                Ok(info) => {
                    tracing::info!("web: certificate reloaded ({})", info.sha256_fingerprint);
                    if tls.expiry_warning_due() {
                        self.log_simple(
                            EventId::CertificateExpiring,
                            &format!(
                                "the web UI certificate expires in {} days",
                                tls.days_until_expiry()
                            ),
                        );
                    }
                }
                Err(e) => tracing::error!("web: certificate not reloaded (old one kept): {e}"),
            }
        }
    }
}

/// Names used by the CLI (and later the web UI) for the cyclable settings.
pub fn setting_name(v: SettingVar) -> &'static str {
    match v {
        SettingVar::TransferHigh => "transfer_high",
        SettingVar::TransferLow => "transfer_low",
        SettingVar::MinReturnCharge => "min_return_charge",
        SettingVar::OutputVoltage => "output_voltage",
        SettingVar::Sensitivity => "sensitivity",
        SettingVar::LowBatteryWarning => "low_battery_warning",
        SettingVar::ShutdownDelay => "shutdown_delay",
        SettingVar::AlarmDelay => "alarm_delay",
        SettingVar::ReturnDelay => "return_delay",
        SettingVar::SelfTestInterval => "self_test_interval",
    }
}
