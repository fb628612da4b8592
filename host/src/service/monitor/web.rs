//! The monitor's side of the web UI: starting the HTTPS listener, the daily certificate check,
//! and the security events the web side may log.

#[allow(unused_imports)]
use super::*;

/// What the start-up banner says about the web UI.
#[derive(Debug, Default)]
pub(super) struct WebStarted {
    pub url: Option<String>,
    pub setup_token: Option<String>,
}

impl Monitor {
    /// Setup token, certificate and the HTTPS listener. Every failure here is a log message:
    /// monitoring goes on without the web UI.
    pub(super) async fn start_web(
        &mut self,
        store: SharedStore,
        tx: crate::web::api::MonitorTx,
        clock_file: Option<PathBuf>,
    ) -> WebStarted {
        use crate::credentials::{SETUP_TOKEN_TTL, SetupToken};
        let mut started = WebStarted::default();
        let data_dir = self.paths.data_dir.clone();
        let has_admin = store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .has_admin();
        if has_admin {
            let _ = SetupToken::discard(&data_dir);
        } else {
            match SetupToken::create(&data_dir) {
                Ok(token) => {
                    tracing::warn!(
                        "web: no administrator yet. One-time setup token: {token} (valid {} h; enter it on the setup page)",
                        SETUP_TOKEN_TTL.as_secs() / 3600
                    );
                    started.setup_token = Some(token.to_string());
                }
                Err(e) => tracing::error!("web: cannot create a setup token: {e}"),
            }
        }
        self.install_configured_pkcs12(&data_dir);
        let tls = match crate::web::TlsManager::load_or_generate(&data_dir) {
            Ok(t) => std::sync::Arc::new(t),
            Err(e) => {
                tracing::error!("web: not started: certificate: {e}");
                return started;
            }
        };
        if tls.generated_at_start() {
            tracing::info!("web: generated a self-signed certificate (RSA 2048, SHA-512)");
        }
        self.web_tls = Some(std::sync::Arc::clone(&tls));
        self.check_certificate();
        let bind = if self.simulate && self.cfg.web.bind.is_unspecified() {
            // A demo is for this machine: not reachable from the network unless asked for.
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        } else {
            self.cfg.web.bind
        };
        let addr = std::net::SocketAddr::new(bind, self.cfg.web.port);
        let listener = match crate::web::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("web: cannot listen on {addr}: {e}; the web UI is not available");
                return started;
            }
        };
        let shown = listener.local_addr().map_or(addr, |a| a);
        tracing::info!("web: HTTPS on https://{shown}/");
        started.url = Some(if shown.ip().is_loopback() {
            format!("https://localhost:{}/", shown.port())
        } else {
            format!("https://{shown}/")
        });
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
        started
    }

    /// At start-up and once a day: our own self-signed certificate is renewed within 30 days
    /// of expiry; an imported one is never replaced, it gets the warning instead.
    pub(super) fn check_certificate(&mut self) {
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

    /// Events the web side may log; anything else is refused so the channel cannot forge
    /// UPS events.
    pub(super) fn web_event(
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
}
