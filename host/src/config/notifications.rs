//! `[Notifications]`: where the `notify` event action sends its messages (e-mail over SMTP and
//! an HTTPS webhook). Only addresses and switches live here; the SMTP password is a secret and
//! goes through `[Credentials] smtp_password` into the encrypted credential store.
//!
//! ```text
//! [Notifications]
//! email_enabled = true
//! smtp_host = mail.example.net
//! smtp_port = 587
//! smtp_security = starttls
//! smtp_username = ups-alerts
//! mail_from = ups@example.net
//! mail_to = ops@example.net, oncall@example.net
//! webhook_enabled = true
//! webhook_url = https://hooks.example.net/ups
//! webhook_pin_sha256 =
//! ```

use std::fmt;
use std::net::IpAddr;

use super::values::{fmt_bool, parse_bool, parse_port};

/// Most recipients in `mail_to`.
pub const MAX_RECIPIENTS: usize = 16;
/// Longest `webhook_url`.
pub const MAX_URL: usize = 1024;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connect, then `STARTTLS` is required (submission, port 587).
    StartTls,
    /// TLS from the first byte (implicit TLS, port 465).
    Tls,
    /// No TLS at all: only to a loopback relay (see [`Notifications::set`]).
    None,
}

impl SmtpSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StartTls => "starttls",
            Self::Tls => "tls",
            Self::None => "none",
        }
    }

    fn parse(v: &str) -> Result<Self, String> {
        [Self::StartTls, Self::Tls, Self::None]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(v))
            .ok_or_else(|| "must be one of starttls, tls, none".into())
    }
}

/// A parsed `https://` webhook address. Kept as parts so the client never re-parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    text: String,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl WebhookUrl {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `https://host[:port][/path][?query]`. No user info (a password in a URL ends up in
    /// logs and process lists), no fragment, no IPv6 literal (`[`/`]` cannot appear in an INI
    /// value), printable ASCII only.
    pub fn parse(v: &str) -> Result<Self, String> {
        let rule = "must be an https:// URL (https://host[:port]/path)";
        if v.len() > MAX_URL {
            return Err(format!("must be at most {MAX_URL} characters"));
        }
        if !v.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "{rule}; only printable ASCII without spaces is allowed (percent-encode the rest)"
            ));
        }
        let Some(rest) = v
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("https://"))
            .and_then(|_| v.get(8..))
        else {
            return Err(format!(
                "{rule}; plain http:// is refused: notifications carry host details and must be encrypted"
            ));
        };
        if v.contains('#') {
            return Err(format!("{rule}; a #fragment is not allowed"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(format!(
                "{rule}; user:password@ is not allowed in the URL (put a token in the path or query instead)"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, parse_port(p).map_err(|e| format!("port {e}"))?),
            None => (authority, 443),
        };
        let host = parse_host(host).map_err(|e| format!("{rule}; host {e}"))?;
        let path = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        // The request line is built from this: make sure `http` agrees it is a valid target.
        if path.parse::<hyper::http::uri::PathAndQuery>().is_err() {
            return Err(format!("{rule}; the path is not valid"));
        }
        Ok(Self {
            text: v.to_string(),
            host,
            port,
            path,
        })
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A DNS name or an IP address (lower-cased). No trailing dot, labels of letters, digits and
/// hyphens.
pub fn parse_host(v: &str) -> Result<String, String> {
    if v.parse::<IpAddr>().is_ok() {
        return Ok(v.to_string());
    }
    let rule = "must be a host name (letters, digits, '-', '.') or an IP address";
    if v.is_empty() || v.len() > 253 {
        return Err(format!("{rule}; 1 to 253 characters"));
    }
    for label in v.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(rule.into());
        }
    }
    Ok(v.to_ascii_lowercase())
}

/// Loopback: `localhost`, 127.0.0.0/8 or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// A mail address `local@domain`: ASCII, no white space, quotes, angle brackets, commas or
/// other characters that would let a value become a second address or header.
pub fn parse_address(v: &str) -> Result<String, String> {
    let rule = "must be a mail address like name@example.net";
    if v.len() > 254 {
        return Err(format!("{rule}; at most 254 characters"));
    }
    let Some((local, domain)) = v.rsplit_once('@') else {
        return Err(rule.into());
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    if !local_ok {
        return Err(format!(
            "{rule}; the part before @ may hold letters, digits and !#$%&'*+-/=?^_`{{|}}~."
        ));
    }
    // An address literal (`user@[192.0.2.1]`) cannot be written in an INI value anyway.
    parse_host(domain).map_err(|e| format!("{rule}; domain {e}"))?;
    if domain.parse::<IpAddr>().is_ok() {
        return Err(format!("{rule}; the domain must be a name"));
    }
    Ok(v.to_string())
}

/// `AB:CD:…` (32 bytes, colons optional, any case) → upper-case colon form, the way
/// `upsguard cert show` and `openssl x509 -fingerprint -sha256` print it.
pub fn parse_pin(v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let hex: String = v.chars().filter(|&c| c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(
            "must be a SHA-256 certificate fingerprint: 64 hex digits, optionally separated by ':' \
             (as `openssl x509 -noout -fingerprint -sha256` prints it)"
                .into(),
        );
    }
    let up = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).filter_map(|i| up.get(i * 2..i * 2 + 2)).collect();
    Ok(Some(pairs.join(":")))
}

/// `[Notifications]`. Both channels are off by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifications {
    pub email_enabled: bool,
    /// Empty until configured.
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_security: SmtpSecurity,
    /// Empty: no SMTP AUTH.
    pub smtp_username: String,
    /// SHA-256 fingerprint of the SMTP server's certificate; when set, that certificate is
    /// accepted instead of one that chains to the system's trust roots.
    pub smtp_pin_sha256: Option<String>,
    pub mail_from: String,
    pub mail_to: Vec<String>,
    pub webhook_enabled: bool,
    pub webhook_url: Option<WebhookUrl>,
    /// SHA-256 fingerprint of the webhook server's certificate (see `smtp_pin_sha256`).
    pub webhook_pin_sha256: Option<String>,
}

impl Default for Notifications {
    fn default() -> Self {
        Self {
            email_enabled: false,
            smtp_host: String::new(),
            smtp_port: 587,
            smtp_security: SmtpSecurity::StartTls,
            smtp_username: String::new(),
            smtp_pin_sha256: None,
            mail_from: String::new(),
            mail_to: Vec::new(),
            webhook_enabled: false,
            webhook_url: None,
            webhook_pin_sha256: None,
        }
    }
}

impl Notifications {
    /// Set one key. `Ok(false)`: no such key.
    ///
    /// `smtp_security = none` sends the password and the messages in clear text, so it is only
    /// accepted while `smtp_host` is a loopback address: a local MTA (postfix, exim, msmtpd)
    /// that relays onwards with its own TLS, where nothing crosses a network unencrypted.
    /// The check runs from whichever of the two keys is set second.
    pub fn set(&mut self, key: &str, v: &str) -> Result<bool, String> {
        match key {
            "email_enabled" => self.email_enabled = parse_bool(v)?,
            "smtp_host" => {
                let host = if v.is_empty() {
                    String::new()
                } else {
                    parse_host(v)?
                };
                if self.smtp_security == SmtpSecurity::None
                    && !host.is_empty()
                    && !is_loopback_host(&host)
                {
                    return Err(
                        "must be a loopback address (localhost, 127.0.0.1, ::1) while smtp_security = none: \
                         mail is never sent unencrypted over a network"
                            .into(),
                    );
                }
                self.smtp_host = host;
            }
            "smtp_port" => self.smtp_port = parse_port(v)?,
            "smtp_security" => {
                let sec = SmtpSecurity::parse(v)?;
                if sec == SmtpSecurity::None
                    && !self.smtp_host.is_empty()
                    && !is_loopback_host(&self.smtp_host)
                {
                    return Err(
                        "none is only allowed when smtp_host is a loopback address (a local relay): \
                         mail is never sent unencrypted over a network"
                            .into(),
                    );
                }
                self.smtp_security = sec;
            }
            "smtp_username" => {
                if v.len() > 256 || !v.chars().all(|c| c.is_ascii_graphic()) {
                    return Err(
                        "must be at most 256 printable ASCII characters without spaces".into(),
                    );
                }
                self.smtp_username = v.to_string();
            }
            "smtp_pin_sha256" => self.smtp_pin_sha256 = parse_pin(v)?,
            "mail_from" => {
                self.mail_from = if v.is_empty() {
                    String::new()
                } else {
                    parse_address(v)?
                };
            }
            "mail_to" => self.mail_to = parse_recipients(v)?,
            "webhook_enabled" => self.webhook_enabled = parse_bool(v)?,
            "webhook_url" => {
                self.webhook_url = if v.is_empty() {
                    None
                } else {
                    Some(WebhookUrl::parse(v)?)
                };
            }
            "webhook_pin_sha256" => self.webhook_pin_sha256 = parse_pin(v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn entries(&self) -> Vec<(String, String)> {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        vec![
            ("email_enabled".into(), fmt_bool(self.email_enabled)),
            ("smtp_host".into(), self.smtp_host.clone()),
            ("smtp_port".into(), self.smtp_port.to_string()),
            ("smtp_security".into(), self.smtp_security.as_str().into()),
            ("smtp_username".into(), self.smtp_username.clone()),
            ("smtp_pin_sha256".into(), opt(&self.smtp_pin_sha256)),
            ("mail_from".into(), self.mail_from.clone()),
            ("mail_to".into(), self.mail_to.join(", ")),
            ("webhook_enabled".into(), fmt_bool(self.webhook_enabled)),
            (
                "webhook_url".into(),
                self.webhook_url
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            ("webhook_pin_sha256".into(), opt(&self.webhook_pin_sha256)),
        ]
    }

    /// What an enabled channel still lacks, as `(key, rule)`. The web UI refuses to save an
    /// enabled channel that could never deliver; the service logs these at start and reload.
    pub fn incomplete(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if self.email_enabled {
            if self.smtp_host.is_empty() {
                out.push(("smtp_host", "is required when email_enabled = true"));
            }
            if self.mail_from.is_empty() {
                out.push(("mail_from", "is required when email_enabled = true"));
            }
            if self.mail_to.is_empty() {
                out.push(("mail_to", "is required when email_enabled = true"));
            }
        }
        if self.webhook_enabled && self.webhook_url.is_none() {
            out.push(("webhook_url", "is required when webhook_enabled = true"));
        }
        out
    }
}

fn parse_recipients(v: &str) -> Result<Vec<String>, String> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = v.split(',').map(str::trim).collect();
    if items.len() > MAX_RECIPIENTS {
        return Err(format!("at most {MAX_RECIPIENTS} recipients are allowed"));
    }
    let mut out: Vec<String> = Vec::new();
    for i in items {
        let a = parse_address(i).map_err(|e| format!("recipient {i:?}: {e}"))?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses() {
        assert!(parse_address("ops@example.net").is_ok());
        assert!(parse_address("a.b+tag@mail.example.net").is_ok());
        for bad in [
            "",
            "ops",
            "@example.net",
            "ops@",
            "a b@example.net",
            "ops@example.net\r\nBcc: x@evil.test",
            "ops@example.net>",
            "\"ops\"@example.net",
            "ops@exa_mple.net",
            "ops@127.0.0.1",
            "a..b@example.net",
            "ops,evil@example.net",
        ] {
            assert!(parse_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn recipients_list() {
        let n = {
            let mut n = Notifications::default();
            assert!(n.set("mail_to", "a@x.net, b@y.org,a@x.net").unwrap());
            n
        };
        assert_eq!(n.mail_to, vec!["a@x.net", "b@y.org"]);
        assert_eq!(n.entries()[7].1, "a@x.net, b@y.org");
        let mut n = Notifications::default();
        let e = n.set("mail_to", "a@x.net, nope").unwrap_err();
        assert!(e.contains("recipient \"nope\""), "{e}");
        let many = vec!["a@x.net"; MAX_RECIPIENTS + 1].join(",");
        assert!(n.set("mail_to", &many).is_err());
    }

    #[test]
    fn security_none_only_to_loopback() {
        let mut n = Notifications::default();
        n.set("smtp_host", "mail.example.net").unwrap();
        let e = n.set("smtp_security", "none").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        n.set("smtp_host", "127.0.0.1").unwrap();
        n.set("smtp_security", "none").unwrap();
        let e = n.set("smtp_host", "mail.example.net").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        n.set("smtp_host", "localhost").unwrap();
        n.set("smtp_host", "::1").unwrap();
        // Order in the file does not matter for a valid pair.
        let mut n = Notifications::default();
        n.set("smtp_security", "none").unwrap();
        n.set("smtp_host", "127.0.0.2").unwrap();
        assert!(n.set("smtp_security", "ssl").is_err());
    }

    #[test]
    fn webhook_urls() {
        let u = WebhookUrl::parse("https://hooks.example.net/ups?token=abc").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("hooks.example.net", 443, "/ups?token=abc")
        );
        let u = WebhookUrl::parse("HTTPS://10.0.0.5:8443").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("10.0.0.5", 8443, "/")
        );
        for bad in [
            "http://hooks.example.net/",
            "ftp://x/",
            "https://",
            "https://user:pw@hooks.example.net/",
            "https://hooks.example.net/a b",
            "https://hooks.example.net/#x",
            "https://hooks.example.net:0/",
            "https://hooks.example.net:99999/",
            "https://bad_host/",
            "https://x/\u{e9}",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pins() {
        let hex = "ab".repeat(32);
        let p = parse_pin(&hex).unwrap().unwrap();
        assert_eq!(p.len(), 95);
        assert!(p.starts_with("AB:AB:"));
        assert_eq!(parse_pin(&p).unwrap().unwrap(), p);
        assert_eq!(parse_pin("").unwrap(), None);
        assert!(parse_pin("ab:cd").is_err());
        assert!(parse_pin(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn username_and_ports() {
        let mut n = Notifications::default();
        assert!(n.set("smtp_username", "a b").is_err());
        assert!(n.set("smtp_port", "0").is_err());
        assert!(n.set("smtp_port", "465").unwrap());
        assert!(!n.set("smtp_password", "x").unwrap());
    }

    #[test]
    fn through_the_typed_config() {
        use crate::config::{Config, ConfigError};
        let mut c = Config::default();
        c.set("Notifications", "smtp_host", "mail.example.net")
            .unwrap();
        c.set("notifications", "MAIL_TO", "a@x.net,b@y.org")
            .unwrap();
        c.set("Notifications", "webhook_url", "https://h.example.net/x")
            .unwrap();
        c.set("Notifications", "webhook_pin_sha256", &"0f".repeat(32))
            .unwrap();
        // CR/LF never gets in, and the error names section, key and rule.
        let e = c
            .set("Notifications", "mail_to", "a@x.net\r\nBcc: evil@x.net")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Notifications") && e.contains("mail_to"), "{e}");
        let e = c
            .set("Notifications", "smtp_security", "none")
            .unwrap_err()
            .to_string();
        assert!(e.contains("smtp_security") && e.contains("loopback"), "{e}");
        assert!(matches!(
            c.set("Notifications", "smtp_password", "x"),
            Err(ConfigError::UnknownKey { .. })
        ));
        // Written and read back unchanged.
        let text = c.to_ini().unwrap();
        assert!(text.contains("[Notifications]\n"), "{text}");
        assert!(text.contains("mail_to = a@x.net, b@y.org\n"), "{text}");
        let doc = crate::config::ini::parse(text.as_bytes()).unwrap();
        let (back, warnings) = Config::from_document(&doc);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(back.notifications, c.notifications);
        // The SMTP password is a [Credentials] secret: accepted, never read back.
        c.set("Credentials", "smtp_password", "pw#1").unwrap();
        assert!(matches!(
            c.get("Credentials", "smtp_password"),
            Err(ConfigError::Secret { .. })
        ));
        assert!(!format!("{c:?}").contains("pw#1"));
        let mut saved = c.clone();
        assert_eq!(
            saved
                .take_credentials()
                .and_then(|k| k.smtp_password)
                .as_deref(),
            Some("pw#1")
        );
    }

    #[test]
    fn incomplete_channels_are_named() {
        let mut n = Notifications::default();
        assert!(n.incomplete().is_empty());
        n.email_enabled = true;
        n.webhook_enabled = true;
        let keys: Vec<&str> = n.incomplete().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["smtp_host", "mail_from", "mail_to", "webhook_url"]);
    }
}
