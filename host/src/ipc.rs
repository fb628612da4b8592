//! Local control socket between the CLI and the running service.
//!
//! One JSON object per line each way. The socket lives in a 0700 directory, is itself 0600,
//! and every connection's peer credentials are checked: only root (or the service's own user,
//! for unprivileged test runs) may talk to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Default location; systemd's `RuntimeDirectory=upsguard` creates it.
pub const DEFAULT_SOCKET: &str = "/run/upsguard/upsguard.sock";

/// Longest request line accepted; anything longer is an error, not an allocation.
const MAX_LINE: usize = 64 * 1024;

/// What the CLI can ask.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    Events {
        #[serde(default)]
        limit: Option<usize>,
    },
    Datalog {
        #[serde(default)]
        limit: Option<usize>,
    },
    Sleep {
        hours: u32,
        graceful: bool,
    },
    ShutdownNow,
    SelfTest,
    Calibrate {
        abort: bool,
    },
    SettingsGet,
    SettingsSet {
        name: String,
        value: String,
    },
    Reload,
    /// A security or configuration event from the web side (login, logout, login_failed,
    /// account_locked, credentials_changed, configuration_changed, certificate_expiring only).
    /// The message and fields may hold user text: the event log escapes it on write.
    LogEvent {
        id: String,
        message: String,
        #[serde(default)]
        fields: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        source: Option<String>,
    },
    /// Every value of one configuration section (never `[Credentials]`).
    ConfigGet {
        section: String,
    },
    /// Set several values of one section through the typed setter, all or nothing, then save
    /// and reload. `[Credentials]` is refused, and so is every key that names a program or a
    /// file (`Config::file_only_refusal`): those change in the INI file only.
    ConfigSet {
        section: String,
        values: std::collections::BTreeMap<String, String>,
        /// Who asked (the web UI's logged-in user), for the configuration_changed event.
        #[serde(default)]
        username: Option<String>,
        /// Their address, for the same event.
        #[serde(default)]
        source: Option<String>,
    },
    /// Send a test message on every enabled notification channel (one try each) and report
    /// each channel's result.
    NotifyTest,
}

/// The service's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: serde_json::Value) -> Self {
        Response {
            ok: true,
            error: None,
            data,
        }
    }
    pub fn err(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::Value::Null,
        }
    }
    /// A refused setting: `data.key` names it, so a form can show the error beside its field.
    pub fn err_key(msg: impl Into<String>, key: &str) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::json!({ "key": key }),
        }
    }
    /// A setting that only the configuration file may change (the web API answers 403).
    pub fn err_file_only(msg: impl Into<String>, key: &str) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            data: serde_json::json!({ "key": key, "file_only": true }),
        }
    }
}

/// Creates the listening socket with root-only permissions.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    // A stale socket from a crashed run would make bind fail; a live one means a second
    // service, which must be refused rather than silently displaced.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "another upsguard is already listening on {}",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    // umask-independent: tighten right after bind, before anyone can be authorised.
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Whether this peer may control the service.
pub fn peer_allowed(stream: &UnixStream) -> bool {
    let Ok(cred) = stream.peer_cred() else {
        return false;
    };
    let me = nix::unistd::geteuid().as_raw();
    cred.uid() == 0 || cred.uid() == me
}

/// Reads one request line with a size bound and a deadline.
pub async fn read_request(stream: &mut BufReader<UnixStream>) -> Result<Request, String> {
    let mut line = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut limited = (&mut *stream).take(MAX_LINE as u64 + 1);
        limited.read_until(b'\n', &mut line).await
    })
    .await;
    match read {
        Err(_) => return Err("request timed out".into()),
        Ok(Err(e)) => return Err(format!("read error: {e}")),
        Ok(Ok(0)) => return Err("empty request".into()),
        Ok(Ok(_)) => {}
    }
    if line.len() > MAX_LINE {
        return Err("request too long".into());
    }
    serde_json::from_slice(&line).map_err(|e| format!("bad request: {e}"))
}

use tokio::io::AsyncReadExt as _;

/// Writes one response line.
pub async fn write_response(stream: &mut UnixStream, resp: &Response) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(resp).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    stream.write_all(&bytes).await
}

/// CLI side: one request, one response.
pub fn call(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the upsguard service at {}: {e} (is `upsguard run` running, and are you root?)",
            socket.display()
        )
    })?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    s.write_all(&line).map_err(|e| e.to_string())?;
    let mut reader = std::io::BufReader::new(s);
    let mut out = String::new();
    reader
        .read_line(&mut out)
        .map_err(|e| format!("no answer from the service: {e}"))?;
    serde_json::from_str(&out).map_err(|e| format!("bad answer from the service: {e}"))
}

/// Resolves the socket path: explicit flag, then `UPSGUARD_SOCKET`, then the default.
pub fn socket_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    match std::env::var_os("UPSGUARD_SOCKET") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json_lines() {
        let r = Request::Sleep {
            hours: 3,
            graceful: true,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"cmd":"sleep","hours":3,"graceful":true}"#);
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"rm -rf"}"#).is_err());
    }
}
