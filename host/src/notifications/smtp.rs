//! The e-mail channel: one message per notification to every `mail_to` address, over SMTP
//! with lettre's connection-level client (so a pinned certificate can be checked after the
//! TLS handshake and before any password is sent).
//!
//! Header safety: the subject is built from our own text with every control character
//! replaced, addresses were validated by the config and are parsed again by lettre's
//! `Address`, and lettre writes and encodes the headers; the body is text, dot-stuffed by
//! lettre on the wire.

use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::{Mailbox, Message as Mail, header::ContentType};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

use super::{Failure, Message, tls};
use crate::config::{Notifications, SmtpSecurity};
use crate::credentials::SecretString;

/// Replace anything that could end a header line (or confuse a reader) with a space.
pub fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

fn address(a: &str, key: &str) -> Result<Address, Failure> {
    a.parse::<Address>()
        .map_err(|e| Failure::permanent(format!("{key} {a:?} is not usable: {e}")))
}

/// The complete RFC 5322 message (also what the unit tests inspect).
pub fn build(cfg: &Notifications, msg: &Message) -> Result<Mail, Failure> {
    let from = address(&cfg.mail_from, "mail_from")?;
    let mut b = Mail::builder()
        .from(Mailbox::new(
            Some(format!("upsguard on {}", header_safe(&msg.host))),
            from.clone(),
        ))
        .subject(header_safe(&msg.subject()))
        .date_now()
        .message_id(Some(message_id(from.domain())))
        .user_agent(concat!("upsguard/", env!("CARGO_PKG_VERSION")).to_string());
    let mut rcpt = Vec::new();
    for to in &cfg.mail_to {
        let a = address(to, "mail_to")?;
        rcpt.push(a.clone());
        b = b.to(Mailbox::new(None, a));
    }
    let envelope = Envelope::new(Some(from), rcpt)
        .map_err(|e| Failure::permanent(format!("envelope: {e}")))?;
    b.envelope(envelope)
        .header(ContentType::TEXT_PLAIN)
        .body(msg.text_body())
        .map_err(|e| Failure::permanent(format!("message: {e}")))
}

/// `<time.random@domain>`: unique without revealing anything.
fn message_id(domain: &str) -> String {
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let rand: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("<{nanos}.{rand}.upsguard@{domain}>")
}

fn smtp_failure(stage: &str, e: &lettre::transport::smtp::Error) -> Failure {
    let text = format!("SMTP {stage}: {e}");
    if e.is_permanent() {
        Failure::permanent(text)
    } else {
        Failure::transient(text)
    }
}

/// Deliver one message. `connect` bounds the TCP connect (lettre applies it to each read and
/// write too); the caller bounds the whole exchange.
pub async fn send(
    cfg: &Notifications,
    password: Option<SecretString>,
    msg: &Message,
    connect: Duration,
) -> Result<(), Failure> {
    let mail = build(cfg, msg)?;
    let host = cfg.smtp_host.clone();
    let hello = ClientId::Domain(header_safe(&msg.host).replace(' ', ""));
    let tls_params = || -> Result<TlsParameters, Failure> {
        let mut b = TlsParameters::builder(host.clone());
        if cfg.smtp_pin_sha256.is_some() {
            // The chain is not what is trusted with a pin: the leaf is checked against it
            // right after the handshake, before AUTH or any message data.
            b = b
                .dangerous_accept_invalid_certs(true)
                .dangerous_accept_invalid_hostnames(true);
        }
        b.build_rustls()
            .map_err(|e| Failure::permanent(format!("TLS setup: {e}")))
    };
    let implicit = match cfg.smtp_security {
        SmtpSecurity::Tls => Some(tls_params()?),
        SmtpSecurity::StartTls | SmtpSecurity::None => None,
    };
    let mut conn = AsyncSmtpConnection::connect_tokio1(
        (host.as_str(), cfg.smtp_port),
        Some(connect),
        &hello,
        implicit,
        None,
    )
    .await
    .map_err(|e| smtp_failure("connect", &e))?;

    let result = async {
        if cfg.smtp_security == SmtpSecurity::StartTls {
            if !conn.can_starttls() {
                return Err(Failure::permanent(
                    "SMTP: the server does not offer STARTTLS (smtp_security = starttls requires it)"
                        .to_string(),
                ));
            }
            conn.starttls(tls_params()?, &hello)
                .await
                .map_err(|e| smtp_failure("STARTTLS", &e))?;
        }
        if let Some(pin) = &cfg.smtp_pin_sha256 {
            let der = conn
                .peer_certificate()
                .map_err(|e| Failure::permanent(format!("SMTP: no server certificate: {e}")))?;
            if !tls::matches_pin(&der, &tls::pin_bytes(pin).map_err(Failure::permanent)?) {
                return Err(Failure::permanent(format!(
                    "TLS with {host}: certificate pin mismatch: the server presented SHA-256 {} (smtp_pin_sha256 is {pin})",
                    tls::fingerprint(&der)
                )));
            }
        }
        if !cfg.smtp_username.is_empty() {
            let Some(pw) = password else {
                return Err(Failure::permanent(
                    "SMTP: smtp_username is set but no SMTP password is stored \
                     ([Credentials] smtp_password, or the Notifications page)"
                        .to_string(),
                ));
            };
            let creds = Credentials::new(cfg.smtp_username.clone(), pw.expose().to_string());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await
                .map_err(|e| smtp_failure("AUTH", &e))?;
        }
        conn.send(mail.envelope(), &mail.formatted())
            .await
            .map_err(|e| smtp_failure("send", &e))?;
        Ok(())
    }
    .await;
    match &result {
        Ok(()) => {
            let _ = conn.quit().await;
        }
        Err(_) => conn.abort().await,
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::notifications::tests::sample;

    fn cfg() -> Notifications {
        let mut n = Notifications::default();
        n.set("mail_from", "ups@example.net").unwrap();
        n.set("mail_to", "ops@example.net, b@example.org").unwrap();
        n
    }

    fn headers(raw: &str) -> Vec<String> {
        let head = raw.split("\r\n\r\n").next().unwrap();
        // Unfold continuation lines: a folded header is still one header.
        let mut out: Vec<String> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = out.last_mut() {
                    last.push_str(line);
                }
            } else {
                out.push(line.to_string());
            }
        }
        out
    }

    #[test]
    fn message_has_the_headers_and_body() {
        let m = build(&cfg(), &sample()).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        let h = headers(&raw);
        let find = |name: &str| {
            h.iter()
                .find(|l| {
                    l.to_ascii_lowercase()
                        .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                })
                .cloned()
                .unwrap_or_default()
        };
        assert!(find("From").contains("<ups@example.net>"), "{raw}");
        assert!(
            find("To").contains("ops@example.net") && find("To").contains("b@example.org"),
            "{raw}"
        );
        assert!(find("Subject").contains("on_battery"), "{raw}");
        assert!(find("Date").len() > 10, "{raw}");
        assert!(find("Message-ID").ends_with("@example.net>"), "{raw}");
        assert!(raw.contains("Smart-UPS 1500"), "{raw}");
        assert_eq!(m.envelope().to().len(), 2);
    }

    #[test]
    fn no_header_injection_through_the_subject_or_host() {
        let mut msg = sample();
        msg.text = "On Battery\r\nBcc: victim@evil.test\r\n\r\nspoofed body".into();
        msg.host = "host\nX-Evil: 1".into();
        msg.ups.model = Some("Smart\r\nBcc: x@evil.test".into());
        let raw = String::from_utf8(build(&cfg(), &msg).unwrap().formatted()).unwrap();
        let h = headers(&raw);
        assert!(
            !h.iter().any(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("bcc:") || l.starts_with("x-evil:")
            }),
            "{raw}"
        );
        assert_eq!(h.iter().filter(|l| l.starts_with("Subject:")).count(), 1);
    }

    #[test]
    fn bad_addresses_never_reach_the_wire() {
        let mut n = cfg();
        n.mail_to = vec!["ops@example.net\r\nRCPT TO:<x@evil.test>".into()];
        assert!(build(&n, &sample()).is_err());
        n.mail_to = vec!["ops@example.net".into()];
        n.mail_from = "a@b.net>\r\nX: y".into();
        assert!(build(&n, &sample()).is_err());
    }

    #[test]
    fn header_safe_strips_controls() {
        assert_eq!(header_safe("a\r\nb\u{2028}c\td"), "a  b c d");
    }
}
