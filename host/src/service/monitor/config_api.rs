//! Configuration through the monitor: the typed section API the web UI uses, and reloads
//! (SIGHUP or after a change), which hand the new shutdown policy to the driver.

#[allow(unused_imports)]
use super::*;

impl Monitor {
    pub(super) fn config_section(section: &str) -> Result<config::SectionId, Response> {
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

    pub(super) fn config_get(&self, section: &str) -> Response {
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
    pub(super) fn config_set(
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

    pub(super) fn reload(&mut self, why: &str) {
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
    pub(super) fn reload_logged(&mut self, rec: &EventRecord) {
        // Test hook: stall the monitor as a long Argon2 or a slow disk would, to prove that
        // no reader and no shutdown decision waits for it. Never set in production.
        if let Some(ms) = std::env::var("UPSGUARD_TEST_MONITOR_STALL_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            tracing::warn!("test hook: the monitor stalls {ms} ms");
            std::thread::sleep(Duration::from_millis(ms.min(30_000)));
        }
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
        let warnings = loaded.warnings.clone();
        self.cfg = loaded.config;
        warn_unimplemented(&self.cfg);
        self.set_config_problems(&warnings);
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
        self.driver
            .tell(Operator::SetShutdownConfig(shutdown_config(&self.cfg)));
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
