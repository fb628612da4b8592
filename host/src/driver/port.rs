//! The serial port as the core pump sees it: `embedded_io::{Read, Write}` plus
//! [`WaitReadable`], which waits on the port and the driver's control channel together
//! (`poll(2)`), so an alert byte or an operator request wakes the loop at once and an idle
//! line costs nothing. With no port open (unplugged adapter), writes are dropped and only
//! the control channel and the deadline wake it: the driver's clock keeps running, so it
//! declares Communication Lost on time.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use upsguard_core::pump::{Clock as PumpClock, WaitReadable};
use upsguard_core::time::Instant;

use crate::clock::Clock;
use crate::serial::SerialLink;

/// An I/O error of the port: the port is gone and must be reopened.
#[derive(Debug)]
pub struct PortError(pub io::Error);

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for PortError {}

impl embedded_io::Error for PortError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

/// The core clock over the service's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct CoreClock(pub Clock);

impl PumpClock for CoreClock {
    fn now(&mut self) -> Instant {
        self.0.now()
    }
}

/// The UPS port (if open) and the read end of the control channel's wake-up socket.
#[derive(Debug)]
pub struct HostPort {
    pub serial: Option<SerialLink>,
    wake: Option<UnixStream>,
    clock: Clock,
}

impl HostPort {
    pub fn new(serial: Option<SerialLink>, wake: Option<UnixStream>, clock: Clock) -> Self {
        HostPort {
            serial,
            wake,
            clock,
        }
    }

    fn drain_wake(&mut self) {
        use std::io::Read as _;
        if let Some(w) = &mut self.wake {
            let mut b = [0u8; 64];
            // Non-blocking: empties what the senders wrote, however many.
            while matches!(w.read(&mut b), Ok(n) if n > 0) {}
        }
    }
}

impl embedded_io::ErrorType for HostPort {
    type Error = PortError;
}

impl embedded_io::Read for HostPort {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, PortError> {
        match &mut self.serial {
            // Called after wait_readable said so: returns at once with what arrived.
            Some(s) => s
                .read(buf, std::time::Duration::from_millis(1))
                .map_err(PortError),
            None => Ok(0),
        }
    }
}

impl embedded_io::Write for HostPort {
    fn write(&mut self, buf: &[u8]) -> Result<usize, PortError> {
        if let Some(s) = &mut self.serial {
            s.write_all(buf).map_err(PortError)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), PortError> {
        Ok(())
    }
}

impl WaitReadable for HostPort {
    fn wait_readable(&mut self, deadline: Option<Instant>) -> Result<bool, PortError> {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            // Rounded up: waking a millisecond early would only spin once more.
            Some(d) => {
                let left = self.clock.until(d);
                let ms = left
                    .as_millis()
                    .saturating_add(u128::from(!left.subsec_nanos().is_multiple_of(1_000_000)));
                PollTimeout::try_from(ms.min(60_000) as u64).unwrap_or(PollTimeout::MAX)
            }
        };
        let (serial_ready, wake_ready) = {
            let mut fds = Vec::with_capacity(2);
            if let Some(s) = &self.serial {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let Some(w) = &self.wake {
                fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Ok(false),
                Err(e) => return Err(PortError(io::Error::from(e))),
            }
            let ready = |fd: Option<&PollFd>| {
                fd.and_then(|f| f.revents()).is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            let (s, w) = match (&self.serial, &self.wake) {
                (Some(_), Some(_)) => (ready(fds.first()), ready(fds.get(1))),
                (Some(_), None) => (ready(fds.first()), false),
                (None, Some(_)) => (false, ready(fds.first())),
                (None, None) => (false, false),
            };
            (s, w)
        };
        if wake_ready {
            self.drain_wake();
        }
        // A hang-up counts as readable: the read then reports the lost port.
        Ok(serial_ready)
    }
}
