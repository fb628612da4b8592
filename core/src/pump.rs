//! The one blocking loop that drives an [`Agent`] over an `embedded-io` port (feature
//! `embedded-io`). The Linux service's link thread, `upsguard killpower` and the appliance
//! firmware all turn this same pump; only the port and the clock differ.
//!
//! A port is `embedded_io::{Read, Write}` plus [`WaitReadable`]: "wait until a byte can be
//! read, or until this deadline". The firmware implements it with `ReadReady` and a timer;
//! the host with `poll(2)` on the serial descriptor and its control channel together, so an
//! alert byte wakes the loop at once and an operator request needs no polling interval.

use embedded_io::{Read, Write};

use crate::agent::Agent;
use crate::time::Instant;

/// Wait for input with a deadline.
pub trait WaitReadable: embedded_io::ErrorType {
    /// Returns `Ok(true)` once a read will not block, `Ok(false)` when `deadline` passed (or
    /// the port's own wake-up source fired, e.g. the host's control channel) first.
    /// `None`: no deadline.
    fn wait_readable(&mut self, deadline: Option<Instant>) -> Result<bool, Self::Error>;
}

/// The caller's monotonic clock.
pub trait Clock {
    fn now(&mut self) -> Instant;
}

/// What one [`turn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Turned {
    /// Bytes were read and fed to the agent.
    Read(usize),
    /// The deadline passed (or the port was woken): the agent's timers ran.
    Waited,
}

/// One turn of the loop: write everything due, wait for a byte or the agent's next deadline
/// (capped by `limit`, the caller's own next wake-up), then feed the agent. Drain
/// [`Agent::poll_event`] and [`Agent::poll_action`] after each turn.
pub fn turn<P, C>(
    agent: &mut Agent,
    port: &mut P,
    clock: &mut C,
    buf: &mut [u8],
    limit: Option<Instant>,
) -> Result<Turned, P::Error>
where
    P: Read + Write + WaitReadable,
    C: Clock,
{
    let now = clock.now();
    let mut wrote = false;
    while let Some(t) = agent.poll_transmit(now) {
        port.write_all(t.as_bytes())?;
        wrote = true;
    }
    if wrote {
        port.flush()?;
    }
    let deadline = match (agent.poll_timeout(), limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if deadline.is_some_and(|d| d <= now) {
        agent.handle_timeout(now);
        return Ok(Turned::Waited);
    }
    if port.wait_readable(deadline)? {
        let n = port.read(buf)?;
        agent.handle_input(clock.now(), buf.get(..n).unwrap_or(&[]));
        Ok(Turned::Read(n))
    } else {
        agent.handle_timeout(clock.now());
        Ok(Turned::Waited)
    }
}
