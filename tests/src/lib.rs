//! Shared helpers for the end-to-end tests: locating the workspace binaries
//! next to the test executable, temp dirs, free ports, polling with a
//! timeout, child processes that die with the test, and a client for the
//! emulator's control port.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Path of a workspace binary (`target/<profile>/<name>`), found from the
/// running test executable (`target/<profile>/deps/<test>-<hash>`), so it works
/// with any `CARGO_TARGET_DIR`.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A fresh directory removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "upsguard-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Poll `f` every `every` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
/// stdout/stderr go to a log file so the test can print them.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawn `cmd` with stdin closed and output appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> ChildGuard {
        let out = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        ChildGuard {
            name: name.into(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` if the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the log.
    pub fn stop(&mut self, grace: Duration) -> String {
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let end = Instant::now() + grace;
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        format!("----- {} log -----\n{}", self.name, self.log_text())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(2));
    }
}

/// Line client for the emulator's `--control` port.
#[derive(Debug)]
pub struct Control {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Control {
    /// Connect, retrying while the emulator starts.
    pub fn connect(port: u16, timeout: Duration) -> Control {
        let stream = wait_for(timeout, Duration::from_millis(50), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .unwrap_or_else(|| panic!("emulator control port {port} did not open"));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let writer = stream.try_clone().unwrap_or_else(|e| panic!("clone: {e}"));
        Control {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Send one command, return the full answer line ("OK …" / "ERR …").
    pub fn send(&mut self, cmd: &str) -> String {
        self.writer
            .write_all(format!("{cmd}\n").as_bytes())
            .unwrap_or_else(|e| panic!("control write: {e}"));
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("control read: {e}"));
        line.trim_end().to_string()
    }

    /// Send a command that must succeed; returns the text after "OK".
    pub fn ok(&mut self, cmd: &str) -> String {
        let line = self.send(cmd);
        match line.strip_prefix("OK") {
            Some(rest) => rest.trim_start().to_string(),
            None => panic!("control command {cmd:?} failed: {line}"),
        }
    }

    /// The emulator's `status` as JSON.
    pub fn status(&mut self) -> serde_json::Value {
        let text = self.ok("status");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status is not JSON ({e}): {text}"))
    }

    /// Waits until the emulator's output is `on` (true) or off; its `status` then, or None
    /// after `timeout`.
    pub fn wait_output(&mut self, on: bool, timeout: Duration) -> Option<serde_json::Value> {
        wait_for(timeout, Duration::from_millis(100), || {
            let st = self.status();
            (st["output_on"] == on).then_some(st)
        })
    }

    pub fn eeprom(&mut self) -> serde_json::Value {
        let text = self.ok("eeprom");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("eeprom is not JSON ({e}): {text}"))
    }
}

/// First existing path among `candidates`.
pub fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// A service's files in a fresh temp dir, laid out as on a server: `data/` and
/// `data/cmdfiles/` (0700, as the command-file checks demand), the INI `upsguard.ini` (0600),
/// and the path where the emulator's pty link will appear (`ups-tty`).
#[derive(Debug)]
pub struct ServiceDir {
    pub dir: TempDir,
    pub data: PathBuf,
    pub config: PathBuf,
    pub link: PathBuf,
}

impl ServiceDir {
    pub fn new(tag: &str, ini: &str) -> ServiceDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new(tag);
        let data = dir.join("data");
        let fail = |p: &Path, e: std::io::Error| -> ! { panic!("{}: {e}", p.display()) };
        let cmdfiles = data.join("cmdfiles");
        std::fs::create_dir_all(&cmdfiles).unwrap_or_else(|e| fail(&cmdfiles, e));
        for d in [&data, &cmdfiles] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .unwrap_or_else(|e| fail(d, e));
        }
        let config = dir.join("upsguard.ini");
        std::fs::write(&config, ini).unwrap_or_else(|e| fail(&config, e));
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| fail(&config, e));
        let link = dir.join("ups-tty");
        ServiceDir {
            dir,
            data,
            config,
            link,
        }
    }

    /// Starts `upsguard-sim` on a pty at [`Self::link`] with a control port, physics at
    /// `speed`× (log in `sim.log`), and connects to its control port.
    pub fn start_emulator(&self, speed: u32) -> (ChildGuard, Control) {
        let port = free_port();
        let sim = ChildGuard::spawn(
            "upsguard-sim",
            Command::new(bin_path("upsguard-sim"))
                .arg("--link")
                .arg(&self.link)
                .arg("--control")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--speed")
                .arg(speed.to_string()),
            &self.dir.join("sim.log"),
        );
        let ctl = Control::connect(port, Duration::from_secs(10));
        (sim, ctl)
    }
}
