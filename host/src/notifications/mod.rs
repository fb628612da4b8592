//! Notifications for the `notify` event action: e-mail ([`smtp`]) and an HTTPS webhook
//! ([`webhook`]), configured in `[Notifications]`. (Not to be confused with
//! `service::notify`, which is systemd's sd_notify.)
//!
//! The monitor hands each message to [`Notifier::submit`], which never waits: a bounded queue
//! feeds one delivery task, and a full queue drops the message (counted and logged). Power
//! events must reach the shutdown logic on time whatever a mail server does. The task tries
//! each enabled channel up to [`ATTEMPTS`] times with backoff, each try bounded by
//! [`ATTEMPT_TIMEOUT`]; a channel that still fails is reported back to the monitor, which logs
//! it as a `notification_failed` event.

pub mod smtp;
pub mod tls;
pub mod webhook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::config::Notifications;
use crate::credentials::{CredentialStore, SecretString};
use crate::eventlog::{EventState, Severity};

/// Messages waiting for delivery; more are dropped.
pub const QUEUE: usize = 32;
/// Tries per channel and message.
pub const ATTEMPTS: u32 = 3;
/// Connect (TCP + TLS) bound of one try; lettre also applies it to each SMTP read/write.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-exchange bound of one try (connect included).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait before the second and third try.
const BACKOFF: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(5)];

/// The UPS as it was when the event fired.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UpsInfo {
    pub model: Option<String>,
    pub serial: Option<String>,
    pub status: String,
    pub charge_pct: Option<f64>,
    pub runtime_s: Option<u32>,
}

/// One notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Stable event id (`on_battery`), or `test`.
    pub event: String,
    pub severity: Severity,
    pub state: EventState,
    /// Human text (the event's title).
    pub text: String,
    pub at: OffsetDateTime,
    pub host: String,
    pub ups: UpsInfo,
    /// Sent from the web UI's "send test" button.
    pub test: bool,
}

/// This machine's name, for messages.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Message {
    /// ISO-8601 UTC, second precision (`2026-11-28T01:02:03Z`).
    pub fn timestamp(&self) -> String {
        let t = self.at.to_offset(time::UtcOffset::UTC);
        let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        t.format(&f).unwrap_or_default()
    }

    fn ups_name(&self) -> String {
        let model = self.ups.model.as_deref().map(str::trim).unwrap_or("");
        let serial = self.ups.serial.as_deref().map(str::trim).unwrap_or("");
        match (model.is_empty(), serial.is_empty()) {
            (false, false) => format!("{model} (serial {serial})"),
            (false, true) => model.to_string(),
            (true, false) => format!("UPS serial {serial}"),
            (true, true) => "UPS".to_string(),
        }
    }

    /// One line, for the e-mail subject (made header-safe by the SMTP side).
    pub fn subject(&self) -> String {
        let test = if self.test { "TEST: " } else { "" };
        format!(
            "[upsguard {}] {test}{}: {} ({}) - {}",
            self.severity.as_str(),
            self.host,
            self.text,
            self.event,
            self.ups_name()
        )
    }

    pub fn text_body(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
        let mut s = String::new();
        if self.test {
            s.push_str("This is a test message from upsguard's Notifications page.\n\n");
        }
        s.push_str(&format!("Event:     {} ({})\n", self.text, self.event));
        s.push_str(&format!("Severity:  {}\n", self.severity.as_str()));
        s.push_str(&format!("Time:      {}\n", self.timestamp()));
        s.push_str(&format!("Host:      {}\n", self.host));
        s.push_str(&format!("UPS:       {}\n", self.ups_name()));
        s.push_str(&format!(
            "Status:    {}\n",
            opt(Some(self.ups.status.clone()).filter(|s| !s.is_empty()))
        ));
        s.push_str(&format!(
            "Charge:    {}\n",
            opt(self.ups.charge_pct.map(|c| format!("{c:.1} %")))
        ));
        s.push_str(&format!(
            "Runtime:   {}\n",
            opt(self
                .ups
                .runtime_s
                .map(|r| format!("{} min {} s", r / 60, r % 60)))
        ));
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "event": self.event,
            "severity": self.severity.as_str(),
            "state": self.state.as_str(),
            "message": self.text,
            "timestamp": self.timestamp(),
            "host": self.host,
            "ups": self.ups,
            "test": self.test,
            "source": "upsguard",
        })
    }
}

/// Why a try failed, and whether trying again could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub permanent: bool,
}

impl Failure {
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }
}

/// The result on one channel.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChannelResult {
    /// `email` or `webhook`.
    pub channel: &'static str,
    pub ok: bool,
    /// What happened (an error names the failing step).
    pub detail: String,
    pub attempts: u32,
}

/// A channel that failed for good, for the monitor's event log.
#[derive(Debug, Clone)]
pub struct DeliveryFailure {
    pub event: String,
    pub result: ChannelResult,
}

/// Where the SMTP password comes from: the service's credential store.
pub type Secrets = Option<Arc<Mutex<CredentialStore>>>;

fn smtp_password(secrets: &Secrets) -> Option<SecretString> {
    secrets.as_ref().and_then(|s| {
        s.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .smtp_password()
            .cloned()
    })
}

async fn try_channel<F, Fut>(channel: &'static str, attempts: u32, mut once: F) -> ChannelResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, Failure>>,
{
    let mut last = Failure::transient("not tried");
    let mut n = 0;
    while n < attempts.max(1) {
        if let Some(wait) = n.checked_sub(1).and_then(|i| BACKOFF.get(i as usize)) {
            tokio::time::sleep(*wait).await;
        }
        n += 1;
        match tokio::time::timeout(ATTEMPT_TIMEOUT, once()).await {
            Ok(Ok(detail)) => {
                return ChannelResult {
                    channel,
                    ok: true,
                    detail,
                    attempts: n,
                };
            }
            Ok(Err(f)) => last = f,
            Err(_) => {
                last =
                    Failure::transient(format!("timed out after {} s", ATTEMPT_TIMEOUT.as_secs()));
            }
        }
        if last.permanent {
            break;
        }
    }
    ChannelResult {
        channel,
        ok: false,
        detail: last.message,
        attempts: n,
    }
}

/// Send `msg` on every enabled channel (concurrently), `attempts` tries each.
pub async fn deliver(
    cfg: &Notifications,
    msg: &Message,
    secrets: &Secrets,
    attempts: u32,
) -> Vec<ChannelResult> {
    let email = async {
        if !cfg.email_enabled {
            return None;
        }
        Some(
            try_channel("email", attempts, || async {
                smtp::send(cfg, smtp_password(secrets), msg, CONNECT_TIMEOUT)
                    .await
                    .map(|()| {
                        format!(
                            "accepted by {}:{} for {}",
                            cfg.smtp_host,
                            cfg.smtp_port,
                            cfg.mail_to.join(", ")
                        )
                    })
            })
            .await,
        )
    };
    let hook = async {
        if !cfg.webhook_enabled {
            return None;
        }
        let Some(url) = cfg.webhook_url.as_ref() else {
            return Some(ChannelResult {
                channel: "webhook",
                ok: false,
                detail: "webhook_url is not set".into(),
                attempts: 0,
            });
        };
        let body = msg.to_json().to_string().into_bytes();
        Some(
            try_channel("webhook", attempts, || async {
                webhook::post(
                    url,
                    cfg.webhook_pin_sha256.as_deref(),
                    body.clone(),
                    CONNECT_TIMEOUT,
                )
                .await
                .map(|status| format!("HTTP {status} from {}", url.host))
            })
            .await,
        )
    };
    let (a, b) = tokio::join!(email, hook);
    a.into_iter().chain(b).collect()
}

/// The monitor's side of the queue.
#[derive(Debug)]
pub struct Notifier {
    tx: mpsc::Sender<(Arc<Notifications>, Message)>,
    dropped: Arc<AtomicU64>,
}

impl Notifier {
    /// Start the delivery task. Channels that fail for good are sent to `failures`.
    pub fn spawn(secrets: Secrets, failures: mpsc::UnboundedSender<DeliveryFailure>) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Arc<Notifications>, Message)>(QUEUE);
        tokio::spawn(async move {
            while let Some((cfg, msg)) = rx.recv().await {
                for r in deliver(&cfg, &msg, &secrets, ATTEMPTS).await {
                    if r.ok {
                        tracing::info!(
                            "notification for {} sent by {}: {}",
                            msg.event,
                            r.channel,
                            r.detail
                        );
                    } else {
                        tracing::warn!(
                            "notification for {} by {} failed after {} attempt(s): {}",
                            msg.event,
                            r.channel,
                            r.attempts,
                            crate::eventlog::display_escape(&r.detail)
                        );
                        let _ = failures.send(DeliveryFailure {
                            event: msg.event.clone(),
                            result: r,
                        });
                    }
                }
            }
        });
        Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queue a message without waiting. Returns false (and counts it) when the queue is full
    /// or the task is gone.
    pub fn submit(&self, cfg: Arc<Notifications>, msg: Message) -> bool {
        match self.tx.try_send((cfg, msg)) {
            Ok(()) => true,
            Err(e) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "the queue is full",
                    mpsc::error::TrySendError::Closed(_) => "the delivery task has stopped",
                };
                tracing::warn!("notification dropped: {why} ({n} dropped since start)");
                false
            }
        }
    }

    /// Messages dropped since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn sample() -> Message {
        Message {
            event: "on_battery".into(),
            severity: Severity::Warning,
            state: EventState::Active,
            text: "On Battery".into(),
            at: OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap(),
            host: "server1".into(),
            ups: UpsInfo {
                model: Some("Smart-UPS 1500".into()),
                serial: Some("AS0123456789".into()),
                status: "OB".into(),
                charge_pct: Some(97.0),
                runtime_s: Some(1830),
            },
            test: false,
        }
    }

    #[test]
    fn json_and_text() {
        let m = sample();
        let j = m.to_json();
        assert_eq!(j["event"], "on_battery");
        assert_eq!(j["severity"], "warning");
        assert_eq!(j["timestamp"], "2026-09-21T14:13:20Z");
        assert_eq!(j["ups"]["serial"], "AS0123456789");
        assert_eq!(j["ups"]["runtime_s"], 1830);
        assert!(m.subject().contains("On Battery (on_battery)"));
        assert!(m.subject().contains("Smart-UPS 1500"));
        assert!(m.text_body().contains("30 min 30 s"));
    }

    #[tokio::test]
    async fn a_full_queue_drops_without_waiting() {
        let (ftx, _frx) = mpsc::unbounded_channel();
        // Nothing enabled: each message is "delivered" at once, so fill faster than that by
        // never yielding to the task.
        let n = Notifier::spawn(None, ftx);
        let cfg = Arc::new(Notifications::default());
        let t0 = std::time::Instant::now();
        let mut accepted = 0;
        for _ in 0..(QUEUE * 2) {
            if n.submit(Arc::clone(&cfg), sample()) {
                accepted += 1;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert_eq!(accepted, QUEUE);
        assert_eq!(n.dropped(), QUEUE as u64);
    }

    #[tokio::test]
    async fn a_dead_server_fails_within_the_bounds() {
        // A port nobody listens on: connection refused, transient, retried, then reported.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = Notifications::default();
        cfg.set("email_enabled", "true").unwrap();
        cfg.set("smtp_host", "127.0.0.1").unwrap();
        cfg.set("smtp_port", &port.to_string()).unwrap();
        cfg.set("mail_from", "ups@example.net").unwrap();
        cfg.set("mail_to", "ops@example.net").unwrap();
        let r = deliver(&cfg, &sample(), &None, 1).await;
        assert_eq!(r.len(), 1);
        assert!(!r[0].ok);
        assert_eq!(r[0].attempts, 1);
        assert!(r[0].detail.contains("SMTP connect"), "{}", r[0].detail);
    }
}
