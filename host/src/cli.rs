//! The CLI side of the control socket: each command is one request to the running service.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::ipc::{self, Request, Response};
use crate::status::StatusView;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Self-tests and setting changes wait for the UPS (EEPROM cycling can take a while).
const SLOW_TIMEOUT: Duration = Duration::from_secs(90);

fn call(socket: &Path, req: Request) -> Result<Response, String> {
    let timeout = match req {
        Request::SettingsSet { .. } | Request::SelfTest | Request::Calibrate { .. } => SLOW_TIMEOUT,
        _ => TIMEOUT,
    };
    let resp = ipc::call(socket, &req, timeout)?;
    if resp.ok {
        Ok(resp)
    } else {
        Err(resp.error.unwrap_or_else(|| "the service refused".into()))
    }
}

pub fn status(socket: &Path, json: bool) -> Result<(), String> {
    let resp = call(socket, Request::Status)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&resp.data).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let view: StatusView =
        serde_json::from_value(resp.data).map_err(|e| format!("bad status from service: {e}"))?;
    print!("{}", view.render_text());
    Ok(())
}

pub fn events(socket: &Path, csv: bool, limit: usize) -> Result<(), String> {
    let resp = call(socket, Request::Events { limit: Some(limit) })?;
    let key = if csv { "csv" } else { "text" };
    match resp.data.get(key).and_then(|v| v.as_str()) {
        Some(s) => print!("{s}"),
        None => println!("{}", resp.data),
    }
    Ok(())
}

pub fn datalog(socket: &Path, limit: usize) -> Result<(), String> {
    let resp = call(socket, Request::Datalog { limit: Some(limit) })?;
    match resp.data.get("csv").and_then(|v| v.as_str()) {
        Some(s) => print!("{s}"),
        None => println!("{}", resp.data),
    }
    Ok(())
}

pub fn settings_get(socket: &Path) -> Result<(), String> {
    let resp = call(socket, Request::SettingsGet)?;
    if let Some(items) = resp.data.as_array() {
        for item in items {
            let name = item.get("name").and_then(|v| v.as_str()).unwrap_or("?");
            let value = item.get("value").and_then(|v| v.as_str()).unwrap_or("-");
            let permitted: Vec<&str> = item
                .get("permitted")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            println!("{name:<22} {value:<8} permitted: {}", permitted.join(" "));
        }
    } else {
        println!("{}", resp.data);
    }
    Ok(())
}

/// Commands whose answer is a message.
pub fn simple(socket: &Path, req: Request) -> Result<(), String> {
    let resp = call(socket, req)?;
    match resp.data.get("message").and_then(|v| v.as_str()) {
        Some(m) => println!("{m}"),
        None if resp.data.is_null() => println!("ok"),
        None => println!("{}", resp.data),
    }
    Ok(())
}

pub fn config_check(file: &Path) -> ExitCode {
    let report = crate::config::validate_file(file);
    print!("{report}");
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `upsguard config defaults`: the built-in defaults as a complete INI file.
pub fn config_defaults() -> Result<(), String> {
    let text = crate::config::Config::default()
        .to_ini()
        .map_err(|e| e.to_string())?;
    print!("{text}");
    Ok(())
}

/// `upsguard config set`: load, change one value through the validating setter, save
/// atomically (the old file becomes the backup). A running service picks it up on SIGHUP.
pub fn config_set(file: &Path, section: &str, key: &str, value: &str) -> Result<(), String> {
    let backup = file.with_file_name(crate::config::BACKUP_FILE);
    let loaded = crate::config::load(file, &backup);
    if let Some(e) = &loaded.main_error {
        return Err(format!(
            "{} is not usable ({e}); fix it (or restore {}) before changing values",
            file.display(),
            backup.display()
        ));
    }
    let mut cfg = loaded.config;
    cfg.set(section, key, value).map_err(|e| e.to_string())?;
    cfg.save(file, &backup).map_err(|e| e.to_string())?;
    println!(
        "[{section}] {key} updated in {}; send SIGHUP to the service to apply it",
        file.display()
    );
    Ok(())
}
