//! Start-up of `upsguard run`: configuration, logs, the emulator (simulation), the driver
//! thread, the control socket, the web UI, then the monitor loop until SIGTERM.

#[allow(unused_imports)]
use super::*;

pub async fn run(args: RunArgs, mut paths: Paths, local_offset: UtcOffset) -> Result<(), String> {
    // A data dir others can write (or owned by someone else) could hold a forged config,
    // command files or TLS key: never use it. Monitoring goes on, with logs in a fresh
    // private directory, and the refusal is an event and a problem in the status.
    let refused_data_dir = match crate::files::check_data_dir(&paths.data_dir) {
        Ok(()) => None,
        Err(r) => {
            let fallback = crate::files::fallback_data_dir()?;
            tracing::error!(
                "{r}; monitoring continues with logs in {} (fix the owner or mode and restart)",
                fallback.display()
            );
            if paths.config.starts_with(&paths.data_dir) {
                paths.config = fallback.join(config::MAIN_FILE);
                paths.backup = fallback.join(config::BACKUP_FILE);
            }
            if paths.socket.starts_with(&paths.data_dir) {
                paths.socket = fallback.join("upsguard.sock");
            }
            paths.data_dir = fallback;
            Some(r)
        }
    };
    prepare_dir(&paths.data_dir)?;
    prepare_dir(&paths.data_dir.join(cmdfile::CMDFILES_DIR))?;
    let loaded = config::load(&paths.config, &paths.backup);
    for w in &loaded.warnings {
        tracing::warn!("config: {w}");
    }
    let config_warnings = loaded.warnings.clone();
    let cfg = loaded.config;
    warn_unimplemented(&cfg);
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
        Some(super::sim::Sim::start(
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
    let driver = driver::spawn(
        device.clone(),
        link_config(&cfg),
        shutdown_config(&cfg),
        clock,
        link_tx,
    )
    .map_err(|e| format!("cannot start the UPS driver thread: {e}"))?;
    let state = driver.state();
    let (problems_tx, problems_rx) = watch::channel(Vec::new());
    let readers = crate::service::requests::Readers {
        driver: driver.clone(),
        clock,
        data_dir: paths.data_dir.clone(),
        problems: problems_rx,
    };

    let listener = ipc::bind(&paths.socket).map_err(|e| {
        format!(
            "cannot create the control socket {}: {e}",
            paths.socket.display()
        )
    })?;
    let (int_tx, mut int_rx) = mpsc::unbounded_channel();
    tokio::spawn(serve_ipc(listener, int_tx.clone(), readers.clone()));

    let mut m = Monitor {
        paths,
        cfg,
        simulate,
        clock,
        driver,
        state,
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
        config_problems: Vec::new(),
        file_problems: Vec::new(),
        problems: problems_tx,
    };
    m.set_config_problems(&config_warnings);
    if let Some(r) = refused_data_dir {
        let rec = EventRecord::new(
            EventId::FilePermissionsRefused.as_str(),
            Severity::Warning,
            EventState::None,
            &format!("{r}; the data directory was not used"),
        )
        .with_field("path", r.path.display().to_string());
        m.append(&rec);
        m.file_problems.push(crate::status::Problem::new(
            crate::status::ProblemKind::FilePermissions,
            r.path.display().to_string(),
            format!(
                "{r}; logs go to {} until it is fixed",
                m.paths.data_dir.display()
            ),
        ));
        m.publish_problems();
    }
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
    let mut web_started = super::web::WebStarted::default();
    if let Some(store) = store.filter(|_| !args.no_web) {
        // The web side asks the monitor through the same request path as the CLI.
        let (web_tx, mut web_rx) = mpsc::unbounded_channel::<(Request, Reply)>();
        let fwd = m.internal.clone();
        let web_readers = readers.clone();
        tokio::spawn(async move {
            while let Some((req, reply)) = web_rx.recv().await {
                // Status, logs, settings and UPS commands never wait for the monitor.
                let r = web_readers.clone();
                let fwd = fwd.clone();
                tokio::spawn(async move {
                    match r.answer(req).await {
                        Ok(resp) => {
                            let _ = reply.send(resp);
                        }
                        Err(req) => {
                            let _ = fwd.send(Internal::Ipc(req, reply));
                        }
                    }
                });
            }
        });
        web_started = m
            .start_web(store, web_tx, args.web_test_clock_file.clone())
            .await;
    }
    if simulate {
        print_sim_banner(&m.paths, _sim.as_ref(), &web_started);
    }
    systemd::notify("READY=1");

    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sighup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut datalog_tick = tokio::time::interval(Duration::from_secs(u64::from(
        m.cfg.logging.datalog_interval_s.max(1),
    )));
    datalog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watchdog = systemd::watchdog_interval();
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
            Some(msg) = link_rx.recv() => m.on_driver(msg),
            _ = sleep_until(deadline) => m.on_timer(),
            Some(msg) = int_rx.recv() => m.on_internal(msg).await,
            Some(f) = notify_fail_rx.recv() => m.on_notify_failure(f),
            _ = datalog_tick.tick() => m.sample_datalog(),
            _ = watchdog_tick.tick(), if watchdog.is_some() => systemd::notify("WATCHDOG=1"),
            Some(line) = recv_opt(&mut stdin_rx) => {
                if let Some(sim) = &_sim {
                    println!("{}", sim.answer(&line).trim_end());
                }
            }
            _ = sighup.recv() => m.reload("configuration reloaded (SIGHUP)"),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    systemd::notify("STOPPING=1");
    m.log_simple(EventId::MonitoringStopped, "service stopping");
    // Leave the UPS in dumb mode (`R`) as NUT and apcupsd do.
    m.driver.stop().await;
    let _ = std::fs::remove_file(&m.paths.socket);
    Ok(())
}

pub(super) fn prepare_dir(dir: &Path) -> Result<(), String> {
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

pub(super) fn link_config(cfg: &Config) -> LinkConfig {
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

/// One banner at the end of start-up: everything a first-time user needs, once.
pub(super) fn print_sim_banner(
    paths: &Paths,
    sim: Option<&super::sim::Sim>,
    web: &super::web::WebStarted,
) {
    let mut b = String::from("\nupsguard is running against the emulated UPS.\n");
    match &web.url {
        Some(u) => b.push_str(&format!("  Web UI:      {u}   (self-signed certificate)\n")),
        None => b.push_str("  Web UI:      not running (see the log above)\n"),
    }
    if let Some(t) = &web.setup_token {
        b.push_str(&format!(
            "  Setup token: {t}   (one-time; create the administrator in the web UI)\n"
        ));
    }
    b.push_str(&format!(
        "  Data dir:    {}   (config, logs, control socket)\n",
        paths.data_dir.display()
    ));
    b.push_str(&format!(
        "  CLI:         upsguard --socket {} status\n",
        paths.socket.display()
    ));
    if let Some(addr) = sim.and_then(|s| s.control_addr()) {
        b.push_str(&format!("  Emulator:    control port {addr}\n"));
    }
    b.push_str(
        "  Emulator:    type `mains off`, `mains on`, `load 80`, `self-test`, `help` here\n",
    );
    b.push_str("  Reset demo:  stop upsguard (Ctrl-C) and delete the data dir\n");
    b.push_str("Simulation never shuts this machine down: the OS shutdown step is only logged.\n");
    print!("{b}");
}

pub(super) fn spawn_stdin_reader() -> mpsc::UnboundedReceiver<String> {
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

pub(super) async fn serve_ipc(
    listener: tokio::net::UnixListener,
    tx: mpsc::UnboundedSender<Internal>,
    readers: crate::service::requests::Readers,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let tx = tx.clone();
        let readers = readers.clone();
        tokio::spawn(async move {
            if !ipc::peer_allowed(&stream) {
                return;
            }
            let mut reader = BufReader::new(stream);
            let resp = match ipc::read_request(&mut reader).await {
                Ok(req) => match readers.answer(req).await {
                    Ok(resp) => resp,
                    Err(req) => {
                        let (rtx, rrx) = oneshot::channel();
                        if tx.send(Internal::Ipc(req, rtx)).is_err() {
                            Response::err("service is stopping")
                        } else {
                            rrx.await.unwrap_or_else(|_| Response::err("no answer"))
                        }
                    }
                },
                Err(e) => Response::err(e),
            };
            let mut stream = reader.into_inner();
            let _ = ipc::write_response(&mut stream, &resp).await;
        });
    }
}

pub(super) fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(kind).map_err(|e| format!("cannot install a signal handler: {e}"))
}

pub(super) async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn recv_opt(rx: &mut Option<mpsc::UnboundedReceiver<String>>) -> Option<String> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
