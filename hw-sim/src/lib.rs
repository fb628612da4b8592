//! upsguard-sim: an APC Smart-UPS 1000 emulator for developing and testing
//! upsguard without hardware.
//!
//! It speaks the UPS side of the Smart ("UPS-Link") protocol as NUT 2.8.0's
//! `apcsmart` and apcupsd expect it (see `shared/docs/ups-link-protocol.md`
//! §7), backed by a battery/line/temperature model, timed scenarios and an
//! operator control grammar.
//!
//! * [`Ups`] is sans-I/O: feed it bytes and a millisecond clock, pull reply
//!   bytes out. Tests drive it in virtual time.
//! * [`spawn`] runs it on a thread over a pty (with a stable symlink), a real
//!   serial port or TCP; [`spawn_in_process`] gives an in-memory cable.
//! * The `upsguard-sim` binary wraps both with a CLI.

mod control;
pub mod eeprom;
mod model;
mod pty;
mod rng;
mod runner;
pub mod scenario;
mod ups;

pub use control::{Command, HELP, parse as parse_control, parse_duration_ms};
pub use eeprom::Eeprom;
pub use runner::{
    DuplexEnd, SimError, SimHandle, SimOptions, Transport, answer_line, spawn, spawn_in_process,
};
pub use scenario::Scenario;
pub use ups::{
    ALERT_QUIET_MS, FIRMWARE, MODEL_NAME, PROTOCOL_INFO, SECOND_BYTE_MAX_MS, SECOND_BYTE_MIN_MS,
    SERIAL, ShutdownKind, Ups, UpsConfig,
};
