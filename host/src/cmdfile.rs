//! Command files: administrator scripts run on events, taken only from `<data-dir>/cmdfiles/`.
//!
//! Security rules (product spec §8 item 12 and the PCSS lessons):
//! - A command file is chosen by *name*, never by path. Names are plain file names: no `/`, `\`,
//!   NUL or control characters, no leading `.` (so no `..`, no hidden files), at most
//!   [`MAX_NAME_LEN`] bytes.
//! - The name is resolved inside the canonicalized cmdfiles folder; the folder itself must be a
//!   real directory (not a symlink). A symlink inside it is followed only if its canonical target
//!   lies directly in the same folder.
//! - Refused (typed [`CmdFileError`], [`CmdFileError::is_refusal`] → the service logs a
//!   `command_file_refused` event) when the file, the cmdfiles folder or the data directory is
//!   writable by group or others; when the file or folder is owned by anyone but root (running as
//!   root) or anyone but root/us (otherwise); when the target is not a regular file or has no
//!   execute bit.
//!
//! Execution: no shell (the resolved path is exec'd directly, no arguments), a clean environment
//! (`PATH=/usr/sbin:/usr/bin:/sbin:/bin` plus `UPSGUARD_*` variables describing the event, values
//! escaped with [`display_escape`]), stdin `/dev/null`, working directory `/`, its own process
//! group. stdout and stderr share one pipe (so their interleaving is kept), read non-blockingly
//! while polling for exit; the first [`RunOptions::max_output`] bytes are kept, the rest counted
//! and dropped. When the allowed duration expires the whole group gets SIGTERM, then SIGKILL
//! after [`RunOptions::kill_grace`]. If the script exits in time but leaves background children
//! holding the pipe, we stop reading after a short grace rather than wait for them; they are left
//! running (a script may legitimately start something).

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, geteuid};
use time::OffsetDateTime;

use crate::eventlog::{EventState, Severity, display_escape, format_ts};

/// Folder (inside the data directory) that command files must live in.
pub const CMDFILES_DIR: &str = "cmdfiles";
/// Longest accepted command file name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// `PATH` given to command files.
pub const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Default cap on captured output.
pub const DEFAULT_MAX_OUTPUT: usize = 64 * 1024;

const POLL: Duration = Duration::from_millis(10);
/// After the script exits, how long we keep reading output its background children may hold.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Why a command file was not run (or failed to run).
#[derive(Debug)]
pub enum CmdFileError {
    /// The name breaks a naming rule (which one is in the text).
    InvalidName(&'static str),
    /// No such file in the cmdfiles folder (or the folder does not exist).
    NotFound,
    /// A symlink (or the folder) leads outside the cmdfiles folder.
    OutsideFolder,
    /// The target is not a regular file.
    NotRegularFile,
    /// The target has no execute permission.
    NotExecutable,
    /// The file or a folder is writable by group or others.
    WritableByOthers {
        /// The offending path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file or folder is owned by someone other than root (or, when not root, us).
    BadOwner {
        /// The offending path.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// A file-system call failed while checking.
    Io {
        /// What we were doing.
        context: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The process could not be started or waited for.
    Spawn(io::Error),
    /// The async wrapper's blocking task failed.
    Join(String),
}

impl CmdFileError {
    /// True for refusals by policy (name rules, permissions, ownership, type, location), which
    /// the service reports as a `command_file_refused` event; false for operational failures.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            CmdFileError::Io { .. } | CmdFileError::Spawn(_) | CmdFileError::Join(_)
        )
    }
}

impl fmt::Display for CmdFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdFileError::InvalidName(why) => write!(f, "invalid command file name: {why}"),
            CmdFileError::NotFound => write!(f, "command file not found in {CMDFILES_DIR}/"),
            CmdFileError::OutsideFolder => {
                write!(
                    f,
                    "command file resolves outside the {CMDFILES_DIR}/ folder"
                )
            }
            CmdFileError::NotRegularFile => write!(f, "command file is not a regular file"),
            CmdFileError::NotExecutable => write!(f, "command file is not executable"),
            CmdFileError::WritableByOthers { path, mode } => write!(
                f,
                "{} is writable by group or others (mode {:04o})",
                display_escape(&path.to_string_lossy()),
                mode & 0o7777
            ),
            CmdFileError::BadOwner { path, uid } => write!(
                f,
                "{} is owned by uid {uid}, not by root",
                display_escape(&path.to_string_lossy())
            ),
            CmdFileError::Io { context, source } => write!(f, "{context}: {source}"),
            CmdFileError::Spawn(e) => write!(f, "cannot run command file: {e}"),
            CmdFileError::Join(e) => write!(f, "command file task failed: {e}"),
        }
    }
}

impl std::error::Error for CmdFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CmdFileError::Io { source, .. } | CmdFileError::Spawn(source) => Some(source),
            _ => None,
        }
    }
}

/// What the command file is told about the event (all become `UPSGUARD_*` variables; unknown
/// values are passed as empty strings so `set -u` scripts still work).
#[derive(Debug, Clone)]
pub struct CmdContext {
    /// `UPSGUARD_EVENT`: stable event id.
    pub event: String,
    /// `UPSGUARD_SEVERITY`.
    pub severity: Severity,
    /// `UPSGUARD_STATE`: active / cleared / none.
    pub state: EventState,
    /// `UPSGUARD_MESSAGE`.
    pub message: String,
    /// `UPSGUARD_STATUS`: NUT-style tokens, e.g. `OB LB`.
    pub status: String,
    /// `UPSGUARD_CHARGE` (%).
    pub charge_pct: Option<f64>,
    /// `UPSGUARD_RUNTIME_S`.
    pub runtime_s: Option<u32>,
    /// `UPSGUARD_LOAD` (%).
    pub load_pct: Option<f64>,
    /// `UPSGUARD_INPUT_V`.
    pub input_v: Option<f64>,
    /// `UPSGUARD_MODEL`.
    pub model: String,
    /// `UPSGUARD_SERIAL`.
    pub serial: String,
    /// `UPSGUARD_TIME` (event time; ISO-8601 UTC with ms).
    pub time: OffsetDateTime,
}

impl CmdContext {
    /// A context with the event basics, time = now, measurements unknown.
    pub fn new(event: &str, severity: Severity, state: EventState, message: &str) -> Self {
        CmdContext {
            event: event.to_owned(),
            severity,
            state,
            message: message.to_owned(),
            status: String::new(),
            charge_pct: None,
            runtime_s: None,
            load_pct: None,
            input_v: None,
            model: String::new(),
            serial: String::new(),
            time: OffsetDateTime::now_utc(),
        }
    }

    /// The environment (besides `PATH`) passed to the command file.
    pub fn env_vars(&self, duration: Duration) -> Vec<(&'static str, String)> {
        fn num(v: Option<f64>) -> String {
            v.filter(|f| f.is_finite())
                .map(|f| f.to_string())
                .unwrap_or_default()
        }
        let text = |s: &str| display_escape(s).into_owned();
        vec![
            ("UPSGUARD_EVENT", text(&self.event)),
            ("UPSGUARD_SEVERITY", self.severity.as_str().to_owned()),
            ("UPSGUARD_STATE", self.state.as_str().to_owned()),
            ("UPSGUARD_MESSAGE", text(&self.message)),
            ("UPSGUARD_STATUS", text(&self.status)),
            ("UPSGUARD_CHARGE", num(self.charge_pct)),
            (
                "UPSGUARD_RUNTIME_S",
                self.runtime_s.map(|r| r.to_string()).unwrap_or_default(),
            ),
            ("UPSGUARD_LOAD", num(self.load_pct)),
            ("UPSGUARD_INPUT_V", num(self.input_v)),
            ("UPSGUARD_MODEL", text(&self.model)),
            ("UPSGUARD_SERIAL", text(&self.serial)),
            ("UPSGUARD_TIME", format_ts(self.time)),
            ("UPSGUARD_DURATION_S", duration.as_secs().to_string()),
        ]
    }
}

/// How long a command file may run and how its output is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// Allowed duration (also passed as `UPSGUARD_DURATION_S`).
    pub duration: Duration,
    /// Between SIGTERM and SIGKILL to the process group on expiry.
    pub kill_grace: Duration,
    /// Bytes of combined stdout/stderr kept.
    pub max_output: usize,
}

impl RunOptions {
    /// Given duration, 3 s kill grace, 64 KiB of output.
    pub fn with_duration(duration: Duration) -> Self {
        RunOptions {
            duration,
            kill_grace: Duration::from_secs(3),
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdExit {
    /// Exit code, if it exited normally.
    pub code: Option<i32>,
    /// Terminating signal, if killed by one.
    pub signal: Option<i32>,
}

impl From<ExitStatus> for CmdExit {
    fn from(s: ExitStatus) -> Self {
        CmdExit {
            code: s.code(),
            signal: s.signal(),
        }
    }
}

/// Result of running a command file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOutcome {
    /// The canonical path that was executed.
    pub path: PathBuf,
    /// Exit code or signal of the script itself.
    pub exit: CmdExit,
    /// The allowed duration expired and the group was killed.
    pub timed_out: bool,
    /// Wall time from spawn to reaping.
    pub duration: Duration,
    /// Captured stdout+stderr (lossy UTF-8) escaped with [`display_escape`]: one line, no
    /// control characters, ready for the event log.
    pub output_escaped: String,
    /// Output exceeded the cap.
    pub truncated: bool,
    /// Bytes dropped beyond the cap.
    pub dropped_bytes: u64,
}

impl CmdOutcome {
    /// Exited with code 0 within its duration.
    pub fn success(&self) -> bool {
        !self.timed_out && self.exit.code == Some(0)
    }
}

/// Checks a command file name against the naming rules.
pub fn validate_name(name: &str) -> Result<(), CmdFileError> {
    if name.is_empty() {
        return Err(CmdFileError::InvalidName("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(CmdFileError::InvalidName("longer than 128 bytes"));
    }
    if name.starts_with('.') {
        return Err(CmdFileError::InvalidName("starts with '.'"));
    }
    if name.contains(['/', '\\']) {
        return Err(CmdFileError::InvalidName("contains a path separator"));
    }
    if name.contains("..") {
        return Err(CmdFileError::InvalidName("contains '..'"));
    }
    if name.chars().any(crate::eventlog::is_unsafe_char) {
        return Err(CmdFileError::InvalidName("contains control characters"));
    }
    Ok(())
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> CmdFileError {
    move |source| {
        if source.kind() == io::ErrorKind::NotFound {
            CmdFileError::NotFound
        } else {
            CmdFileError::Io { context, source }
        }
    }
}

fn check_not_writable_by_others(path: &Path, md: &fs::Metadata) -> Result<(), CmdFileError> {
    let mode = md.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(CmdFileError::WritableByOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn check_owner(path: &Path, md: &fs::Metadata) -> Result<(), CmdFileError> {
    let euid = geteuid().as_raw();
    let uid = md.uid();
    let ok = if euid == 0 {
        uid == 0
    } else {
        uid == 0 || uid == euid
    };
    if !ok {
        return Err(CmdFileError::BadOwner {
            path: path.to_path_buf(),
            uid,
        });
    }
    Ok(())
}

/// Resolves `name` to the canonical path of an allowed command file under
/// `<data_dir>/cmdfiles/`, applying every rule in the module doc.
pub fn resolve(data_dir: &Path, name: &str) -> Result<PathBuf, CmdFileError> {
    validate_name(name)?;
    let data = fs::canonicalize(data_dir).map_err(io_err("data directory"))?;
    let data_md = fs::metadata(&data).map_err(io_err("data directory"))?;
    // Whoever can write the data dir can swap the cmdfiles folder itself.
    check_not_writable_by_others(&data, &data_md)?;

    let folder = data.join(CMDFILES_DIR);
    let folder_md = fs::symlink_metadata(&folder).map_err(io_err("cmdfiles folder"))?;
    if folder_md.file_type().is_symlink() {
        return Err(CmdFileError::OutsideFolder);
    }
    if !folder_md.is_dir() {
        return Err(CmdFileError::NotFound);
    }
    check_not_writable_by_others(&folder, &folder_md)?;
    check_owner(&folder, &folder_md)?;

    let candidate = folder.join(name);
    // lstat first so a dangling symlink reads as "not found" rather than an I/O error.
    fs::symlink_metadata(&candidate).map_err(io_err("command file"))?;
    let target = fs::canonicalize(&candidate).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => CmdFileError::OutsideFolder,
        _ => CmdFileError::Io {
            context: "command file",
            source: e,
        },
    })?;
    if target.parent() != Some(folder.as_path()) {
        return Err(CmdFileError::OutsideFolder);
    }
    let md = fs::metadata(&target).map_err(io_err("command file"))?;
    if !md.is_file() {
        return Err(CmdFileError::NotRegularFile);
    }
    check_not_writable_by_others(&target, &md)?;
    check_owner(&target, &md)?;
    if md.permissions().mode() & 0o111 == 0 {
        return Err(CmdFileError::NotExecutable);
    }
    Ok(target)
}

/// Bounded output buffer.
struct Capture {
    buf: Vec<u8>,
    max: usize,
    dropped: u64,
}

impl Capture {
    /// Reads what is available now; returns true at EOF.
    fn drain(&mut self, r: &mut impl Read) -> io::Result<bool> {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    let data = chunk.get(..n).unwrap_or(&[]);
                    let room = self.max.saturating_sub(self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(data.get(..room).unwrap_or(&[]));
                    self.dropped += (data.len() - room) as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Runs the command file `name` from `<data_dir>/cmdfiles/` for the event in `ctx`, blocking
/// until it exits or its duration (plus kill grace) expires.
pub fn run(
    data_dir: &Path,
    name: &str,
    ctx: &CmdContext,
    opts: &RunOptions,
) -> Result<CmdOutcome, CmdFileError> {
    let path = resolve(data_dir, name)?;
    let (mut reader, writer) = io::pipe().map_err(CmdFileError::Spawn)?;
    let writer2 = writer.try_clone().map_err(CmdFileError::Spawn)?;
    fcntl(&reader, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(|e| CmdFileError::Spawn(io::Error::from(e)))?;

    let mut cmd = Command::new(&path);
    cmd.env_clear()
        .env("PATH", SAFE_PATH)
        .envs(ctx.env_vars(opts.duration))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .current_dir("/")
        .process_group(0);
    let start = Instant::now();
    let spawned = cmd.spawn();
    // Drop our copies of the pipe's write end, or we would never see EOF.
    drop(cmd);
    let mut child = spawned.map_err(CmdFileError::Spawn)?;
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));

    let mut cap = Capture {
        buf: Vec::new(),
        max: opts.max_output,
        dropped: 0,
    };
    match supervise(&mut child, pgid, &mut reader, &mut cap, start, opts) {
        Ok((status, timed_out)) => {
            let duration = start.elapsed();
            let text = String::from_utf8_lossy(&cap.buf);
            Ok(CmdOutcome {
                path,
                exit: status.into(),
                timed_out,
                duration,
                output_escaped: display_escape(&text).into_owned(),
                truncated: cap.dropped > 0,
                dropped_bytes: cap.dropped,
            })
        }
        Err(e) => {
            // Never leave a half-supervised group behind.
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait();
            Err(CmdFileError::Spawn(e))
        }
    }
}

fn supervise(
    child: &mut Child,
    pgid: Pid,
    reader: &mut io::PipeReader,
    cap: &mut Capture,
    start: Instant,
    opts: &RunOptions,
) -> io::Result<(ExitStatus, bool)> {
    let deadline = start + opts.duration;
    let mut eof = false;
    let mut status = None;
    while status.is_none() {
        if !eof {
            eof = cap.drain(reader)?;
        }
        status = child.try_wait()?;
        if status.is_none() {
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(POLL);
        }
    }

    if let Some(status) = status {
        let until = Instant::now() + OUTPUT_GRACE;
        while !eof && Instant::now() < until {
            eof = cap.drain(reader)?;
            if !eof {
                std::thread::sleep(POLL);
            }
        }
        return Ok((status, false));
    }

    // Timed out: TERM the whole group, give it the grace period, then KILL what is left.
    let _ = killpg(pgid, Signal::SIGTERM);
    let grace_end = Instant::now() + opts.kill_grace;
    loop {
        if !eof {
            eof = cap.drain(reader)?;
        }
        if status.is_none() {
            status = child.try_wait()?;
        }
        // Group empty (ESRCH) once every member is gone; our own child counts until reaped.
        if status.is_some() && killpg(pgid, None).is_err() {
            break;
        }
        if Instant::now() >= grace_end {
            break;
        }
        std::thread::sleep(POLL);
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let status = match status {
        Some(s) => s,
        None => child.wait()?,
    };
    if !eof {
        cap.drain(reader)?;
    }
    Ok((status, true))
}

/// Async wrapper for the tokio service: runs [`run`] on the blocking pool, so the shutdown
/// timeline never blocks on a hanging script. Dropping the future does not stop the script;
/// it is still bounded by its duration plus kill grace.
pub async fn run_async(
    data_dir: PathBuf,
    name: String,
    ctx: CmdContext,
    opts: RunOptions,
) -> Result<CmdOutcome, CmdFileError> {
    tokio::task::spawn_blocking(move || run(&data_dir, &name, &ctx, &opts))
        .await
        .map_err(|e| CmdFileError::Join(e.to_string()))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Setup {
        _tmp: tempfile::TempDir,
        data: PathBuf,
        folder: PathBuf,
    }

    fn setup() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let folder = data.join(CMDFILES_DIR);
        fs::create_dir_all(&folder).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o700)).unwrap();
        Setup {
            _tmp: tmp,
            data,
            folder,
        }
    }

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn ctx() -> CmdContext {
        let mut c = CmdContext::new(
            "on_battery",
            Severity::Warning,
            EventState::Active,
            "On battery\nnow",
        );
        c.status = "OB LB".into();
        c.charge_pct = Some(42.5);
        c.runtime_s = Some(300);
        c.load_pct = Some(23.0);
        c.input_v = Some(0.0);
        c.model = "Smart-UPS 1500".into();
        c.serial = "AS1234567890".into();
        c.time = time::macros::datetime!(2026-11-27 22:07:30.123 UTC);
        c
    }

    fn opts(ms: u64) -> RunOptions {
        RunOptions {
            duration: Duration::from_millis(ms),
            kill_grace: Duration::from_millis(500),
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    #[test]
    fn name_validation() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            "a\\b",
            ".hidden",
            "a..b",
            "a\0b",
            "a\nb",
            "a\u{1b}b",
            "a\u{85}b",
        ] {
            assert!(
                matches!(validate_name(bad), Err(CmdFileError::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(validate_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        for good in ["shutdown.sh", "on-battery_1", "ups notify", "日本"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn traversal_names_refused_even_if_target_exists() {
        let s = setup();
        script(&s.data, "outside.sh", "exit 0", 0o700);
        let e = run(&s.data, "../outside.sh", &ctx(), &opts(1000)).unwrap_err();
        assert!(matches!(e, CmdFileError::InvalidName(_)), "{e}");
        assert!(e.is_refusal());
    }

    #[test]
    fn world_writable_file_refused() {
        let s = setup();
        script(&s.folder, "x.sh", "exit 0", 0o707);
        let e = resolve(&s.data, "x.sh").unwrap_err();
        assert!(matches!(e, CmdFileError::WritableByOthers { .. }), "{e}");
        script(&s.folder, "g.sh", "exit 0", 0o770);
        let e = resolve(&s.data, "g.sh").unwrap_err();
        assert!(matches!(e, CmdFileError::WritableByOthers { .. }), "{e}");
        assert!(e.is_refusal());
    }

    #[test]
    fn group_writable_folder_refused() {
        let s = setup();
        script(&s.folder, "x.sh", "exit 0", 0o700);
        assert!(resolve(&s.data, "x.sh").is_ok());
        fs::set_permissions(&s.folder, fs::Permissions::from_mode(0o770)).unwrap();
        let e = run(&s.data, "x.sh", &ctx(), &opts(1000)).unwrap_err();
        assert!(
            matches!(e, CmdFileError::WritableByOthers { ref path, .. } if path.ends_with(CMDFILES_DIR)),
            "{e}"
        );
    }

    #[test]
    fn world_writable_data_dir_refused() {
        let s = setup();
        script(&s.folder, "x.sh", "exit 0", 0o700);
        fs::set_permissions(&s.data, fs::Permissions::from_mode(0o777)).unwrap();
        let e = resolve(&s.data, "x.sh").unwrap_err();
        assert!(matches!(e, CmdFileError::WritableByOthers { .. }), "{e}");
    }

    #[test]
    fn symlink_outside_refused_inside_allowed() {
        let s = setup();
        let outside = script(&s.data, "outside.sh", "exit 0", 0o700);
        symlink(&outside, s.folder.join("evil")).unwrap();
        let e = resolve(&s.data, "evil").unwrap_err();
        assert!(matches!(e, CmdFileError::OutsideFolder), "{e}");
        symlink("/bin/sh", s.folder.join("sh")).unwrap();
        assert!(matches!(
            resolve(&s.data, "sh"),
            Err(CmdFileError::OutsideFolder)
        ));
        symlink("missing", s.folder.join("dangling")).unwrap();
        assert!(resolve(&s.data, "dangling").is_err());

        let real = script(&s.folder, "real.sh", "exit 0", 0o700);
        symlink("real.sh", s.folder.join("alias")).unwrap();
        assert_eq!(
            resolve(&s.data, "alias").unwrap(),
            fs::canonicalize(real).unwrap()
        );
    }

    #[test]
    fn symlinked_folder_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir_all(&data).unwrap();
        fs::create_dir_all(&elsewhere).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
        script(&elsewhere, "x.sh", "exit 0", 0o700);
        symlink(&elsewhere, data.join(CMDFILES_DIR)).unwrap();
        assert!(matches!(
            resolve(&data, "x.sh"),
            Err(CmdFileError::OutsideFolder)
        ));
    }

    #[test]
    fn non_regular_and_non_executable_refused() {
        let s = setup();
        fs::create_dir(s.folder.join("sub")).unwrap();
        fs::set_permissions(s.folder.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            resolve(&s.data, "sub"),
            Err(CmdFileError::NotRegularFile)
        ));
        script(&s.folder, "noexec.sh", "exit 0", 0o600);
        assert!(matches!(
            resolve(&s.data, "noexec.sh"),
            Err(CmdFileError::NotExecutable)
        ));
        assert!(matches!(
            resolve(&s.data, "absent.sh"),
            Err(CmdFileError::NotFound)
        ));
        let e = resolve(&s.data, "absent.sh").unwrap_err();
        assert!(e.is_refusal());
    }

    #[test]
    fn foreign_owner_refused_when_root() {
        if !geteuid().is_root() {
            return; // chown needs root; the non-root rule (owner = us or root) holds trivially.
        }
        let s = setup();
        let p = script(&s.folder, "x.sh", "exit 0", 0o700);
        std::os::unix::fs::chown(&p, Some(1000), None).unwrap();
        assert!(matches!(
            resolve(&s.data, "x.sh"),
            Err(CmdFileError::BadOwner { uid: 1000, .. })
        ));
        std::os::unix::fs::chown(&p, Some(0), None).unwrap();
        std::os::unix::fs::chown(&s.folder, Some(1000), None).unwrap();
        assert!(matches!(
            resolve(&s.data, "x.sh"),
            Err(CmdFileError::BadOwner { uid: 1000, .. })
        ));
    }

    #[test]
    fn environment_is_clean_and_describes_the_event() {
        let s = setup();
        let out = s.data.join("env.txt");
        script(
            &s.folder,
            "env.sh",
            &format!("env > '{}'", out.display()),
            0o700,
        );
        let r = run(&s.data, "env.sh", &ctx(), &opts(5000)).unwrap();
        assert!(r.success(), "{r:?}");
        let env = fs::read_to_string(&out).unwrap();
        let vars: Vec<&str> = env.lines().collect();
        for want in [
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "UPSGUARD_EVENT=on_battery",
            "UPSGUARD_SEVERITY=warning",
            "UPSGUARD_STATE=active",
            "UPSGUARD_MESSAGE=On battery\\x0anow",
            "UPSGUARD_STATUS=OB LB",
            "UPSGUARD_CHARGE=42.5",
            "UPSGUARD_RUNTIME_S=300",
            "UPSGUARD_LOAD=23",
            "UPSGUARD_INPUT_V=0",
            "UPSGUARD_MODEL=Smart-UPS 1500",
            "UPSGUARD_SERIAL=AS1234567890",
            "UPSGUARD_TIME=2026-11-27T22:07:30.123Z",
            "UPSGUARD_DURATION_S=5",
        ] {
            assert!(vars.contains(&want), "missing {want} in {env}");
        }
        // Only our variables (plus what sh itself sets: PWD, SHLVL, _).
        for v in &vars {
            let k = v.split('=').next().unwrap();
            assert!(
                k == "PATH"
                    || k.starts_with("UPSGUARD_")
                    || ["PWD", "SHLVL", "_", "OLDPWD"].contains(&k),
                "unexpected variable {v}"
            );
        }
    }

    #[test]
    fn exit_code_signal_and_stdin() {
        let s = setup();
        script(&s.folder, "three.sh", "exit 3", 0o700);
        let r = run(&s.data, "three.sh", &ctx(), &opts(5000)).unwrap();
        assert_eq!(
            r.exit,
            CmdExit {
                code: Some(3),
                signal: None
            }
        );
        assert!(!r.success() && !r.timed_out);

        script(&s.folder, "sig.sh", "kill -KILL $$", 0o700);
        let r = run(&s.data, "sig.sh", &ctx(), &opts(5000)).unwrap();
        assert_eq!(r.exit.signal, Some(9));

        script(&s.folder, "stdin.sh", "read x; echo \"[$x]\"", 0o700);
        let r = run(&s.data, "stdin.sh", &ctx(), &opts(5000)).unwrap();
        assert_eq!(r.output_escaped, "[]\\x0a");
        assert!(r.duration < Duration::from_secs(3));
    }

    #[test]
    fn output_captured_escaped_and_truncated() {
        let s = setup();
        script(
            &s.folder,
            "loud.sh",
            "printf 'err\\033[2J\\n' >&2; head -c 100000 /dev/zero | tr '\\000' a",
            0o700,
        );
        let r = run(&s.data, "loud.sh", &ctx(), &opts(10_000)).unwrap();
        assert!(r.success(), "{r:?}");
        assert!(r.truncated);
        assert_eq!(r.dropped_bytes, 100_000 + 8 - DEFAULT_MAX_OUTPUT as u64);
        assert!(r.output_escaped.starts_with("err\\x1b[2J\\x0aaaa"));
        assert_eq!(
            r.output_escaped.len(),
            DEFAULT_MAX_OUTPUT - 8 + "err\\x1b[2J\\x0a".len()
        );
        assert!(!r.output_escaped.chars().any(|c| c.is_control()));

        script(&s.folder, "small.sh", "echo hello", 0o700);
        let r = run(&s.data, "small.sh", &ctx(), &opts(5000)).unwrap();
        assert!(!r.truncated);
        assert_eq!(r.output_escaped, "hello\\x0a");
    }

    fn pid_alive(pid: i32) -> bool {
        // A zombie (exited, not yet reaped by init in a container) counts as dead.
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z') && !state.starts_with('X')
            }
            Err(_) => false,
        }
    }

    #[test]
    fn timeout_kills_whole_process_group() {
        let s = setup();
        let pidfile = s.data.join("child.pid");
        script(
            &s.folder,
            "hang.sh",
            &format!(
                "echo started\nsleep 100 &\necho $! > '{}'\nsleep 100",
                pidfile.display()
            ),
            0o700,
        );
        let t = Instant::now();
        let r = run(&s.data, "hang.sh", &ctx(), &opts(500)).unwrap();
        assert!(r.timed_out);
        assert!(!r.success());
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(r.output_escaped.starts_with("started"), "{r:?}");
        let child: i32 = fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !pid_alive(child)
        });
        assert!(gone, "background child {child} survived");
    }

    #[test]
    fn term_ignoring_group_is_killed() {
        let s = setup();
        script(
            &s.folder,
            "stubborn.sh",
            "trap '' TERM\nwhile :; do sleep 1; done",
            0o700,
        );
        let t = Instant::now();
        let r = run(&s.data, "stubborn.sh", &ctx(), &opts(300)).unwrap();
        assert!(r.timed_out);
        assert_eq!(r.exit.signal, Some(9));
        assert!(t.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn background_child_holding_pipe_does_not_block() {
        let s = setup();
        script(&s.folder, "bg.sh", "sleep 3 &\necho done", 0o700);
        let t = Instant::now();
        let r = run(&s.data, "bg.sh", &ctx(), &opts(10_000)).unwrap();
        assert!(r.success());
        assert_eq!(r.output_escaped, "done\\x0a");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_wrapper_does_not_block_runtime() {
        let s = setup();
        script(&s.folder, "slow.sh", "sleep 0.3; echo ok", 0o700);
        let task = tokio::spawn(run_async(
            s.data.clone(),
            "slow.sh".into(),
            ctx(),
            opts(5000),
        ));
        // The runtime stays responsive while the script runs.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let r = task.await.unwrap().unwrap();
        assert!(r.success());
        assert_eq!(r.output_escaped, "ok\\x0a");
        let e = run_async(s.data.clone(), "../x".into(), ctx(), opts(5000))
            .await
            .unwrap_err();
        assert!(e.is_refusal());
    }
}
