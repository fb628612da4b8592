//! The shutdown policy state machine (product spec §4), sans-I/O in the style of
//! quinn-proto: every input carries `now`, outputs are polled, nothing here reads a clock
//! or touches the OS.
//!
//! ```text
//! inputs                                   outputs
//!   observe(now, &Observation)   ──┐    ┌──► poll_event()  → Event (catalogue, §3)
//!   handle_timeout(now)            ├─►──┤
//!   shutdown_now / sleep /         │    └──► poll_action() → Action
//!   scheduled_shutdown / cancel  ──┘         poll_timeout() → next wake-up
//! ```
//!
//! Timeline of one sequence: a trigger fires (after its persistence delay) → *Graceful
//! Shutdown Started* → [`Action::RunCommandFile`] for A seconds (skipped when A = 0) →
//! when A elapses or [`ShutdownMachine::command_file_finished`] →
//! [`Action::ArmUpsTurnOff`] (if configured) + [`Action::StartOsShutdown`]. Until the OS
//! shutdown starts, the end of the cause (mains back, overload or temperature cleared)
//! cancels the sequence (*Graceful Shutdown Cancelled* + [`Action::CancelShutdown`]), as
//! does an operator [`ShutdownMachine::cancel`]. After it, nothing does.
//!
//! Triggers: the chosen [`ShutdownPolicy`], the per-event options of [`ShutdownConfig`],
//! and Low Runtime (runtime < A + B + safety margin while on battery), which is always
//! armed, fires without delay, and cannot be cancelled while it holds. While on battery,
//! runtime is extrapolated between readings (and while the link is down) at one second per
//! second, so Low Runtime fires on time even when readings stop.
//!
//! Operator requests (Shutdown Now, scheduled, graceful sleep) start the same timeline and
//! are not cancelled by the power state: they were asked for on line.

mod config;
mod machine;
mod observation;

pub use config::{
    ConfigError, MAX_CONFIG_SECONDS, MAX_SLEEP, ShutdownConfig, ShutdownPolicy, UpsOffMode,
    check_sleep,
};
pub use machine::{
    Action, CancelError, Phase, RUNTIME_HYSTERESIS, RequestError, ShutdownMachine, ShutdownReason,
    TEMPERATURE_HYSTERESIS_DC,
};
pub use observation::{CalibrationState, Observation, SelfTestResult};
