//! The serial port to the UPS: 2400 8N1, raw, exclusively ours.
//!
//! Exclusivity is enforced twice, the way NUT does it: `flock(LOCK_EX|LOCK_NB)` on the device
//! (so a second upsguard, NUT's `apcsmart` or anything else that locks is refused) and
//! `TIOCEXCL` (so non-root openers get `EBUSY`); serialport does both when it opens.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serialport::{DataBits, FlowControl, Parity, SerialPort, StopBits, TTYPort};

/// Why the port could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The device does not exist (yet): unplugged USB adapter, or a pty that is not there.
    Missing(PathBuf),
    /// Someone else holds the port.
    Busy(PathBuf),
    /// Anything else the OS said.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Missing(p) => write!(f, "serial device {} does not exist", p.display()),
            OpenError::Busy(p) => write!(
                f,
                "serial device {} is in use by another process (is another upsguard, apcupsd or a NUT driver running?)",
                p.display()
            ),
            OpenError::Io(p, e) => write!(f, "cannot open serial device {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for OpenError {}

/// An open, locked UPS port.
#[derive(Debug)]
pub struct SerialLink {
    port: TTYPort,
    path: PathBuf,
}

impl std::os::fd::AsFd for SerialLink {
    /// For `poll(2)` (the driver waits on the port and its control channel together);
    /// serialport only offers `AsRawFd`.
    #[allow(unsafe_code)]
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is owned by `self.port`, which stays open for as long as
        // the returned borrow (tied to `&self`) lives.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.port.as_raw_fd()) }
    }
}

impl SerialLink {
    /// Opens `path` at 2400 8N1 with no flow control, raw mode, locked against other agents
    /// (serialport takes the `flock` and sets `TIOCEXCL` itself).
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        if !path.exists() {
            return Err(OpenError::Missing(path.to_path_buf()));
        }
        let port = serialport::new(path.to_string_lossy(), 2400)
            .data_bits(DataBits::Eight)
            .parity(Parity::None)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None)
            .timeout(Duration::from_millis(100))
            .open_native()
            .map_err(|e| match e.kind() {
                // serialport reports both a held flock and TIOCEXCL's EBUSY as NoDevice.
                serialport::ErrorKind::NoDevice => OpenError::Busy(path.to_path_buf()),
                serialport::ErrorKind::Io(io::ErrorKind::NotFound) => {
                    OpenError::Missing(path.to_path_buf())
                }
                _ => OpenError::Io(path.to_path_buf(), io::Error::other(e.to_string())),
            })?;
        // Stale bytes from before we owned the line are not replies to anything we sent.
        let _ = port.clear(serialport::ClearBuffer::All);
        Ok(SerialLink {
            port,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads what has arrived, waiting at most `timeout`. `Ok(0)` means nothing came.
    /// An error means the port is gone (unplugged, pty closed) and must be reopened.
    pub fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        // serialport rejects a zero timeout on some versions; 1 ms is close enough.
        let t = timeout.max(Duration::from_millis(1));
        if self.port.timeout() != t {
            self.port
                .set_timeout(t)
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        match self.port.read(buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "serial port closed",
            )),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.port.write_all(bytes)?;
        self.port.flush()
    }
}
