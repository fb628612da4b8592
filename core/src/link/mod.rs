//! A sans-I/O link driver for the APC Smart protocol, in the style of quinn-proto.
//!
//! The caller owns the serial port and the clock. It feeds received bytes with
//! [`LinkDriver::handle_input`], calls [`LinkDriver::handle_timeout`] when
//! [`LinkDriver::poll_timeout`] has passed, writes whatever [`LinkDriver::poll_transmit`]
//! returns (until `None`), and drains [`LinkDriver::poll_event`] after every call:
//!
//! ```text
//! loop {
//!     while let Some(t) = drv.poll_transmit(now) { port.write(t.as_bytes()) }
//!     while let Some(e) = drv.poll_event() { handle(e) }
//!     select { bytes = port.read() => drv.handle_input(now, bytes),
//!              _ = sleep_until(drv.poll_timeout()) => drv.handle_timeout(now) }
//! }
//! ```
//!
//! Behaviour: `Y`→`SM` handshake with retries and backoff; discovery (`a`, then only the
//! commands the UPS lists); `Q` every `status_interval`; measurements rotated within a byte
//! budget ([`LinkConfig::reply_budget_bytes_per_sec`]); settings refreshed every
//! `slow_poll_interval`; an alert makes the driver read `Q` at once once the line has been quiet
//! around it for [`LinkConfig::alert_quiet`] (the status comes from `Q` alone, so a noise byte
//! cannot fake a power failure); a transfer to battery reads `G` next to tell a self-test
//! from an outage; one
//! exchange at a time, paced multi-byte commands with nothing else sent in between.

mod config;
mod driver;
mod request;
mod snapshot;

pub use config::LinkConfig;
pub use driver::LinkDriver;
pub use request::{KillMethod, RequestError, RequestFailure, RequestId, RequestResult, UpsRequest};
pub use snapshot::{CommState, Identity, Measurements, Registers, Settings, Stamped, UpsSnapshot};

use crate::wire::{Alert, SelfTestResult, SettingVar, StatusFlags, Value};

/// Bytes to write to the port now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    bytes: heapless::Vec<u8, 10>,
}

impl Transmit {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Something the caller should know about; drain with [`LinkDriver::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkEvent {
    /// Smart mode established (first time, or after Communication Lost).
    CommEstablished,
    /// No valid replies (after the retries); reported once per outage.
    CommLost,
    /// An alert passed the line-noise check: its byte had a quiet line on both sides
    /// (reported [`LinkConfig::alert_quiet`] after it arrived), or it came right before a
    /// valid reply. It is provisional: the status changes only when the `Q` re-read that
    /// follows at once says so ([`LinkEvent::StatusChanged`]), or the alert is refuted.
    Alert(Alert),
    /// The `Q` read after an alert contradicted it (a noise byte that looked like an alert,
    /// a late `$` while the UPS is still on battery); counted in
    /// [`UpsSnapshot::refuted_alerts`].
    AlertRefuted(Alert),
    /// Alert bytes were discarded as line noise (coalesced: one per burst); a `Q` re-read
    /// follows, so a real change hidden in the burst is still seen.
    LineNoise {
        /// Alert bytes in the burst (also summed in [`UpsSnapshot::noise_alerts`]).
        alerts: u32,
    },
    /// The status flags changed (from `Q` or from an alert).
    StatusChanged {
        old: Option<StatusFlags>,
        new: StatusFlags,
    },
    /// Discovery finished: identity, command set, capabilities and settings are known.
    Identified,
    /// Measurements in the snapshot changed (coalesced: at most one per call).
    Updated,
    /// A request finished.
    RequestDone {
        id: RequestId,
        result: RequestResult,
    },
    /// A setting's value changed (seen on a re-read, or after a `SetSetting`).
    SettingChanged { var: SettingVar, value: Value },
    /// `X` changed (e.g. a self-test finished).
    SelfTestResult(SelfTestResult),
    /// Register 1, 2 or 3 changed.
    RegisterChanged { register: u8, old: u8, new: u8 },
    /// `shutdown_link` completed (`R` sent and answered or timed out).
    Closed,
}
