//! User requests (commands with side effects) and the small state machines that run them.

use heapless::String;

use crate::wire::{Command, SettingVar, StatusFlags, StringVar, Value, trim_end};

/// Identifies a queued request in [`super::LinkEvent::RequestDone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RequestId(pub u32);

/// Something the caller asks the UPS to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum UpsRequest {
    /// `W`.
    SelfTest,
    /// `Q` (refused if calibration already runs), then `D`.
    CalibrationStart,
    /// `Q` (refused if no calibration runs), then `D`.
    CalibrationAbort,
    /// `U`.
    SimulatePowerFail,
    /// `A`.
    PanelTest,
    /// `S` (accepted on battery only).
    SoftShutdown,
    /// `@nnn`, paced.
    ShutdownReturn { tenths_of_hour: u16 },
    /// `K`…`K`, paced.
    ShutdownStayOff,
    /// `Z`…`Z`, paced.
    TurnOff,
    /// `^N`…`^N`, paced.
    TurnOn,
    /// `DEL`.
    AbortShutdown,
    /// Cycle an EEPROM setting with `-` until it reads `value` (must be a permitted value).
    SetSetting { var: SettingVar, value: Value },
    /// Write `c` or `x` (≤ 8 printable chars, padded with spaces).
    WriteString { var: StringVar, value: String<8> },
    /// `S` if on battery, else `@000`, falling back to `K`…`K` (product spec §4).
    KillPower,
}

/// Why `request` refused to queue something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestError {
    QueueFull,
    /// Out-of-range `@` value, or an unrepresentable string.
    InvalidValue,
    /// The UPS's command set (`a`) lacks the command.
    NotSupported,
    /// The capability table (`^Z`) does not list the value.
    NotPermitted,
    /// The link is closing or closed.
    Closed,
}

/// Which KillPower step the UPS accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KillMethod {
    SoftShutdown,
    ShutdownReturn,
    StayOff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestFailure {
    /// `NA` or `NO`.
    Refused,
    NoReply,
    UnexpectedReply,
    CommLost,
    Closed,
    /// Cycling came back to the original value without reaching the wanted one.
    Wrapped,
    /// The value is not in the capability table (or there is none).
    NotPermitted,
    NotSupported,
    /// Calibration start while one runs.
    AlreadyRunning,
    /// Calibration abort while none runs.
    NotRunning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestResult {
    /// Acknowledged / completed.
    Done,
    /// `SetSetting`: the UPS already had the value.
    Unchanged,
    /// `KillPower`: which method was accepted.
    KillPower(KillMethod),
    Failed(RequestFailure),
}

/// What came back for one exchange of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'a> {
    Line(&'a [u8]),
    /// `*`, or `!`/`$` for commands that answer with alerts.
    AlertAck,
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Simple(Command),
    CalCheck { start: bool },
    CalSend,
    SetQuery,
    SetCycle,
    SetRequery,
    StrQuery,
    StrWrite,
    StrVerify,
    KillStatus,
    Kill(KillMethod),
}

pub(crate) enum Step {
    Continue,
    Finished(RequestResult),
}

/// A running request.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    pub id: RequestId,
    pub req: UpsRequest,
    stage: Stage,
    original: Option<Value>,
    cycles: u8,
    pub max_cycles: u8,
}

/// Interprets an acknowledgement according to the command's reply kind.
pub(crate) fn ack(cmd: Command, o: Outcome<'_>) -> Result<(), RequestFailure> {
    use crate::wire::ReplyKind as K;
    let kind = cmd.reply_kind();
    match (o, kind) {
        (Outcome::AlertAck, _) => Ok(()),
        (Outcome::Timeout, K::OptionalAck) => Ok(()),
        (Outcome::Timeout, _) => Err(RequestFailure::NoReply),
        (Outcome::Line(l), _) => match crate::wire::trim(l) {
            b"NA" | b"NO" => Err(RequestFailure::Refused),
            b"OK" => Ok(()),
            _ if kind == K::AckOrAlert => Ok(()),
            _ => Err(RequestFailure::UnexpectedReply),
        },
    }
}

impl Active {
    pub fn new(id: RequestId, req: UpsRequest, status: Option<StatusFlags>) -> Self {
        let stage = match &req {
            UpsRequest::SelfTest => Stage::Simple(Command::SelfTest),
            UpsRequest::CalibrationStart => Stage::CalCheck { start: true },
            UpsRequest::CalibrationAbort => Stage::CalCheck { start: false },
            UpsRequest::SimulatePowerFail => Stage::Simple(Command::SimulatePowerFail),
            UpsRequest::PanelTest => Stage::Simple(Command::PanelTest),
            UpsRequest::SoftShutdown => Stage::Simple(Command::SoftShutdown),
            UpsRequest::ShutdownReturn { tenths_of_hour } => {
                Stage::Simple(Command::ShutdownReturn {
                    tenths_of_hour: (*tenths_of_hour).min(999),
                })
            }
            UpsRequest::ShutdownStayOff => Stage::Simple(Command::ShutdownStayOff),
            UpsRequest::TurnOff => Stage::Simple(Command::TurnOff),
            UpsRequest::TurnOn => Stage::Simple(Command::TurnOn),
            UpsRequest::AbortShutdown => Stage::Simple(Command::AbortShutdown),
            UpsRequest::SetSetting { .. } => Stage::SetQuery,
            UpsRequest::WriteString { .. } => Stage::StrQuery,
            UpsRequest::KillPower => match status {
                None => Stage::KillStatus,
                Some(s) => Self::kill_first(Some(s)),
            },
        };
        Active {
            id,
            req,
            stage,
            original: None,
            cycles: 0,
            max_cycles: 32,
        }
    }

    fn kill_first(status: Option<StatusFlags>) -> Stage {
        // Unknown status: assume on battery, as NUT does when it cannot read it.
        if status.is_none_or(|s| s.contains(StatusFlags::OB) || !s.contains(StatusFlags::OL)) {
            Stage::Kill(KillMethod::SoftShutdown)
        } else {
            Stage::Kill(KillMethod::ShutdownReturn)
        }
    }

    /// The command to send for the current stage.
    pub fn command(&self) -> Command {
        match (&self.stage, &self.req) {
            (Stage::Simple(c), _) => *c,
            (Stage::CalCheck { .. } | Stage::KillStatus, _) => Command::Status,
            (Stage::CalSend, _) => Command::Calibrate,
            (Stage::SetQuery | Stage::SetRequery, UpsRequest::SetSetting { var, .. }) => {
                Command::from_byte(var.byte()).unwrap_or(Command::Status)
            }
            (Stage::SetCycle, _) => Command::CycleNext,
            (Stage::StrQuery | Stage::StrVerify, UpsRequest::WriteString { var, .. }) => {
                Command::from_byte(var.byte()).unwrap_or(Command::Status)
            }
            (Stage::StrWrite, UpsRequest::WriteString { var, value }) => {
                Command::write_string(*var, value).unwrap_or(Command::Status)
            }
            (Stage::Kill(KillMethod::SoftShutdown), _) => Command::SoftShutdown,
            (Stage::Kill(KillMethod::ShutdownReturn), _) => {
                Command::ShutdownReturn { tenths_of_hour: 0 }
            }
            (Stage::Kill(KillMethod::StayOff), _) => Command::ShutdownStayOff,
            // Stage/request mismatches cannot be constructed; a harmless query keeps it total.
            _ => Command::Status,
        }
    }

    /// Whether the current stage's reply is a status (`Q`) reply the driver should also store.
    pub fn is_status_query(&self) -> bool {
        matches!(self.stage, Stage::CalCheck { .. } | Stage::KillStatus)
    }

    /// Whether the current stage's reply is a fresh value of the request's variable.
    pub fn is_var_query(&self) -> bool {
        matches!(
            self.stage,
            Stage::SetQuery | Stage::SetRequery | Stage::StrVerify
        )
    }

    /// Advances on the outcome of the current stage's exchange.
    pub fn advance(&mut self, o: Outcome<'_>) -> Step {
        let cmd = self.command();
        let fail = |f| Step::Finished(RequestResult::Failed(f));
        match self.stage {
            Stage::Simple(_) => match ack(cmd, o) {
                Ok(()) => Step::Finished(RequestResult::Done),
                Err(f) => fail(f),
            },
            Stage::CalCheck { start } => match o {
                Outcome::Line(l) => match StatusFlags::parse(l) {
                    Ok(s) if s.contains(StatusFlags::CAL) == start => fail(if start {
                        RequestFailure::AlreadyRunning
                    } else {
                        RequestFailure::NotRunning
                    }),
                    Ok(_) => {
                        self.stage = Stage::CalSend;
                        Step::Continue
                    }
                    Err(_) => fail(RequestFailure::UnexpectedReply),
                },
                _ => fail(RequestFailure::NoReply),
            },
            Stage::CalSend => match ack(cmd, o) {
                Ok(()) => Step::Finished(RequestResult::Done),
                Err(f) => fail(f),
            },
            Stage::SetQuery | Stage::SetRequery => {
                let UpsRequest::SetSetting { value, .. } = &self.req else {
                    return fail(RequestFailure::UnexpectedReply);
                };
                let Outcome::Line(l) = o else {
                    return fail(RequestFailure::NoReply);
                };
                if crate::wire::trim(l) == b"NA" {
                    return fail(RequestFailure::NotSupported);
                }
                if value.matches(l) {
                    return Step::Finished(if self.stage == Stage::SetQuery {
                        RequestResult::Unchanged
                    } else {
                        RequestResult::Done
                    });
                }
                let current = Value::new(trim_end(l));
                match (self.stage, self.original) {
                    (Stage::SetQuery, _) => self.original = current,
                    (_, Some(orig)) if Some(orig) == current => {
                        return fail(RequestFailure::Wrapped);
                    }
                    _ => {}
                }
                self.cycles = self.cycles.saturating_add(1);
                if self.cycles > self.max_cycles {
                    return fail(RequestFailure::Wrapped);
                }
                self.stage = Stage::SetCycle;
                Step::Continue
            }
            Stage::SetCycle => match ack(cmd, o) {
                Ok(()) => {
                    self.stage = Stage::SetRequery;
                    Step::Continue
                }
                Err(f) => fail(f),
            },
            Stage::StrQuery => match o {
                Outcome::Line(l) if crate::wire::trim(l) == b"NA" => {
                    fail(RequestFailure::NotSupported)
                }
                Outcome::Line(_) => {
                    self.stage = Stage::StrWrite;
                    Step::Continue
                }
                _ => fail(RequestFailure::NoReply),
            },
            Stage::StrWrite => match ack(cmd, o) {
                Ok(()) => {
                    self.stage = Stage::StrVerify;
                    Step::Continue
                }
                Err(f) => fail(f),
            },
            Stage::StrVerify => {
                let UpsRequest::WriteString { value, .. } = &self.req else {
                    return fail(RequestFailure::UnexpectedReply);
                };
                match o {
                    Outcome::Line(l) if crate::wire::trim(l) == trim_end(value.as_bytes()) => {
                        Step::Finished(RequestResult::Done)
                    }
                    Outcome::Line(_) => fail(RequestFailure::UnexpectedReply),
                    _ => fail(RequestFailure::NoReply),
                }
            }
            Stage::KillStatus => {
                let status = match o {
                    Outcome::Line(l) => StatusFlags::parse(l).ok(),
                    _ => None,
                };
                self.stage = Self::kill_first(status);
                Step::Continue
            }
            Stage::Kill(m) => match (ack(cmd, o), m) {
                (Ok(()), m) => Step::Finished(RequestResult::KillPower(m)),
                (Err(_), KillMethod::SoftShutdown) => {
                    self.stage = Stage::Kill(KillMethod::ShutdownReturn);
                    Step::Continue
                }
                (Err(_), KillMethod::ShutdownReturn) => {
                    self.stage = Stage::Kill(KillMethod::StayOff);
                    Step::Continue
                }
                (Err(f), KillMethod::StayOff) => fail(f),
            },
        }
    }
}
