//! Pseudo-terminal transport with a stable symlink (protocol §7.3): we keep
//! our own slave fd open so clients can come and go without the master
//! seeing a hang-up, never flock it (NUT takes LOCK_EX|LOCK_NB), and put the
//! slave back into raw/no-echo whenever a client leaves echo switched on.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::openpty;
use nix::sys::termios::{self, BaudRate, LocalFlags, SetArg};

const TERMIOS_CHECK: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub struct PtyLink {
    link: PathBuf,
    master: Option<File>,
    slave: Option<OwnedFd>,
    slave_name: Option<PathBuf>,
    last_check: Instant,
}

fn err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn make_raw(fd: &OwnedFd) -> io::Result<()> {
    let mut t = termios::tcgetattr(fd.as_fd()).map_err(err)?;
    termios::cfmakeraw(&mut t);
    // Both daemons ask for 2400 baud; a pty accepts and ignores it.
    termios::cfsetspeed(&mut t, BaudRate::B2400).map_err(err)?;
    termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &t).map_err(err)
}

impl PtyLink {
    /// Create the pty and point `link` at its slave.
    pub fn open(link: &Path) -> io::Result<PtyLink> {
        let mut p = PtyLink {
            link: link.to_path_buf(),
            master: None,
            slave: None,
            slave_name: None,
            last_check: Instant::now(),
        };
        p.plug()?;
        Ok(p)
    }

    /// (Re)create the pty and the symlink.
    pub fn plug(&mut self) -> io::Result<()> {
        if self.master.is_some() {
            return Ok(());
        }
        let pty = openpty(None, None).map_err(err)?;
        make_raw(&pty.slave)?;
        let flags = fcntl(pty.master.as_fd(), FcntlArg::F_GETFL).map_err(err)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(pty.master.as_fd(), FcntlArg::F_SETFL(flags)).map_err(err)?;
        let name = nix::unistd::ttyname(pty.slave.as_fd()).map_err(err)?;
        remove_symlink(&self.link)?;
        std::os::unix::fs::symlink(&name, &self.link)?;
        self.master = Some(File::from(pty.master));
        self.slave = Some(pty.slave);
        self.slave_name = Some(name);
        Ok(())
    }

    /// Make the device disappear: close the master (clients get EIO/hang-up)
    /// and remove the symlink.
    pub fn unplug(&mut self) {
        self.master = None;
        self.slave = None;
        self.slave_name = None;
        let _ = remove_symlink(&self.link);
    }

    /// Re-apply raw/no-echo if a client left echo on (apcupsd restores the
    /// termios it found; a default pty has ECHO set and would reflect our
    /// replies back to us as commands).
    pub fn maintain(&mut self) {
        if self.last_check.elapsed() < TERMIOS_CHECK {
            return;
        }
        self.last_check = Instant::now();
        if let Some(slave) = &self.slave
            && let Ok(t) = termios::tcgetattr(slave.as_fd())
            && t.local_flags
                .intersects(LocalFlags::ECHO | LocalFlags::ECHONL)
        {
            let _ = make_raw(slave);
        }
    }

    /// Wait up to `wait` for bytes from the host.
    pub fn recv(&mut self, wait: Duration, out: &mut Vec<u8>) -> io::Result<()> {
        let Some(master) = self.master.as_mut() else {
            std::thread::sleep(wait);
            return Ok(());
        };
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(nix::Error::EINTR) => return Ok(()),
            Err(e) => return Err(err(e)),
        }
        let hup = fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR));
        let mut buf = [0u8; 256];
        match master.read(&mut buf) {
            Ok(n) => out.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            // EIO means no slave is open; we hold one, so treat it as a blip.
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => std::thread::sleep(wait),
            Err(e) => return Err(e),
        }
        if hup {
            std::thread::sleep(wait.min(Duration::from_millis(5)));
        }
        Ok(())
    }

    /// Write to the host; bytes that do not fit are dropped like on a serial
    /// line nobody listens to.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(master) = self.master.as_mut() else {
            return Ok(());
        };
        match master.write_all(data) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for PtyLink {
    fn drop(&mut self) {
        let _ = remove_symlink(&self.link);
    }
}

/// Remove `path` if it is a symlink; refuse to delete anything else.
fn remove_symlink(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a symlink; refusing to replace it",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
