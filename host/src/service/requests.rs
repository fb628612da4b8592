//! The server role's answers: every reader (CLI socket, web API) gets the UPS status,
//! settings, event and data logs straight from the driver's published state and the log
//! files, and operator commands go straight to the driver thread. Only what changes the
//! service itself (reload, configuration, web security events, a notification test) goes
//! to the monitor, so no reader ever waits for it (e.g. during a reload's Argon2 work).

use std::path::PathBuf;
use std::sync::Arc;

use upsguard_core::link::{RequestResult, UpsRequest, UpsSnapshot};
use upsguard_core::time::Instant;
use upsguard_core::wire::{SelfTestInterval, SettingVar};

use crate::clock::Clock;
use crate::datalog::{DataLog, TimeRange};
use crate::driver::{DriverHandle, Operator, UpsState};
use crate::eventlog::{EventFilter, EventLog};
use crate::ipc::{Request, Response};
use crate::status::StatusView;

/// What a reader needs; cheap to clone into every connection.
#[derive(Debug, Clone)]
pub struct Readers {
    pub driver: DriverHandle,
    pub clock: Clock,
    pub data_dir: PathBuf,
    /// What the monitor found wrong (refused configuration, event-log failures, …).
    pub problems: tokio::sync::watch::Receiver<Vec<crate::status::Problem>>,
}

impl Readers {
    /// The status as every server shows it.
    pub fn status(&self) -> StatusView {
        let state: Arc<UpsState> = self.driver.state().borrow().clone();
        let mut v = status_view(&state, self.clock.now());
        v.problems = self.problems.borrow().clone();
        v
    }

    /// Answers `req` without the monitor, or gives it back when only the monitor can.
    pub async fn answer(&self, req: Request) -> Result<Response, Request> {
        let now = self.clock.now();
        Ok(match req {
            Request::Status => {
                Response::ok(serde_json::to_value(self.status()).unwrap_or_default())
            }
            Request::Events { limit } => {
                let dir = self.data_dir.clone();
                let filter = EventFilter {
                    limit: Some(limit.unwrap_or(50).min(10_000)),
                    ..EventFilter::default()
                };
                blocking(move || events_response(&dir, &filter)).await
            }
            Request::Datalog { limit } => {
                let dir = self.data_dir.clone();
                blocking(move || {
                    match DataLog::read_dir(
                        &dir,
                        TimeRange::default(),
                        Some(limit.unwrap_or(100).min(100_000)),
                    ) {
                        Ok(out) => Response::ok(serde_json::json!({
                            "csv": crate::datalog::samples_to_csv(&out.rows),
                        })),
                        Err(e) => Response::err(format!("cannot read the data log: {e}")),
                    }
                })
                .await
            }
            Request::ShutdownNow => match self.driver.operator(Operator::ShutdownNow).await {
                Ok(()) => Response::ok(serde_json::json!({"message": "graceful shutdown started"})),
                Err(e) => Response::err(format!("refused: {e}")),
            },
            Request::Sleep { hours, graceful } => {
                if !(1..=99).contains(&hours) {
                    return Ok(Response::err("hours must be between 1 and 99"));
                }
                let h = u16::try_from(hours).unwrap_or(99);
                match self
                    .driver
                    .operator(Operator::Sleep { hours: h, graceful })
                    .await
                {
                    Ok(()) => Response::ok(serde_json::json!({"message": if graceful {
                        format!("graceful shutdown started; the UPS then sleeps {hours} h")
                    } else {
                        format!("the UPS is told to sleep {hours} h now (the OS is not shut down)")
                    }})),
                    Err(e) => Response::err(format!("refused: {e}")),
                }
            }
            Request::SelfTest => self.ups(UpsRequest::SelfTest).await,
            Request::Calibrate { abort } => {
                self.ups(if abort {
                    UpsRequest::CalibrationAbort
                } else {
                    UpsRequest::CalibrationStart
                })
                .await
            }
            Request::SettingsGet => {
                let state = self.driver.state().borrow().clone();
                Response::ok(settings_json(&state.ups, now))
            }
            Request::SettingsSet { name, value } => {
                let state = self.driver.state().borrow().clone();
                match setting_request(&state.ups, &name, &value) {
                    Ok(r) => self.ups(r).await,
                    Err(e) => Response::err(e),
                }
            }
            other => return Err(other),
        })
    }

    async fn ups(&self, req: UpsRequest) -> Response {
        match self.driver.request(req).await {
            Ok(RequestResult::Failed(f)) => {
                Response::err(format!("the UPS refused: {}", failure_text(f)))
            }
            Ok(_) => Response::ok(serde_json::json!({"message": "done"})),
            Err(e) => Response::err(e),
        }
    }
}

async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Response::err("the read failed"))
}

fn events_response(dir: &std::path::Path, filter: &EventFilter) -> Response {
    match EventLog::read_dir(dir, filter) {
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

/// A failed UPS command, for a person.
pub fn failure_text(f: upsguard_core::link::RequestFailure) -> &'static str {
    use upsguard_core::link::RequestFailure::*;
    match f {
        Refused => "the UPS answered NA/NO",
        NoReply => "no reply from the UPS",
        UnexpectedReply => "unexpected reply from the UPS",
        CommLost => "communication with the UPS was lost",
        Closed => "the UPS link is closing",
        Wrapped => "the UPS never reached that value",
        NotPermitted => "the UPS does not permit that value",
        NotSupported => "this UPS does not support that command",
        AlreadyRunning => "it is already running",
        NotRunning => "it is not running",
    }
}

/// The status view of a published state: snapshot, shutdown plan and phase.
pub fn status_view(state: &UpsState, now: Instant) -> StatusView {
    let mut v = StatusView::from_snapshot(&state.ups, now);
    v.shutdown_phase = super::plan::phase_id(state.phase).to_string();
    v.shutdown = Some(super::plan::view(
        &state.shutdown_config,
        state.phase,
        state.time_to_shutdown,
        now,
    ));
    v
}

pub fn settings_json(s: &UpsSnapshot, now: Instant) -> serde_json::Value {
    let v = StatusView::from_snapshot(s, now);
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
            SettingVar::LowBatteryWarning => v.low_battery_warning_min.map(|x| format!("{x:02}")),
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
            SettingVar::SelfTestInterval => s.settings.self_test_interval.map(|x| match x.value {
                SelfTestInterval::Hours(h) => format!("{h:03}"),
                SelfTestInterval::OnPowerOn => "ON".to_string(),
                SelfTestInterval::Off => "OFF".to_string(),
            }),
        };
        out.push(serde_json::json!({
            "name": setting_name(var),
            "value": value,
            "permitted": permitted,
        }));
    }
    serde_json::Value::Array(out)
}

pub fn setting_request(s: &UpsSnapshot, name: &str, value: &str) -> Result<UpsRequest, String> {
    if let Some(var) = SettingVar::ALL
        .into_iter()
        .find(|v| setting_name(*v) == name)
    {
        let permitted = s
            .capabilities
            .as_ref()
            .and_then(|c| c.permitted(var.byte()))
            .ok_or_else(|| format!("the UPS does not allow changing {name}"))?;
        let wanted = permitted
            .iter()
            .find(|p| same_setting_value(p.as_str(), value))
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

/// A value as a person types it against the UPS's spelling: `20` is `020`, `on` is `ON `.
fn same_setting_value(permitted: &str, typed: &str) -> bool {
    let (p, t) = (permitted.trim(), typed.trim());
    if p.eq_ignore_ascii_case(t) {
        return true;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(p) && digits(t) && p.trim_start_matches('0') == t.trim_start_matches('0')
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
