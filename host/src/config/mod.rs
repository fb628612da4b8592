//! `upsguard.ini`: typed configuration with a last-good backup.
//!
//! * [`ini`]: our own small INI dialect (line-numbered errors, size limits, injection-proof
//!   writer). No third-party INI crate: the PowerChute config writer let a CR/LF in a
//!   description smuggle a `[Credentials]` section, and most INI crates accept exactly that.
//! * [`model`]: the typed [`Config`], its defaults and ranges, and the single validating
//!   setter [`Config::set`] used by loading, the web UI and the CLI alike.
//! * [`events`], [`schedule`]: the two sections with a small grammar of their own.
//! * `file_only`: the keys naming a program or a file, which only the file may change
//!   ([`Config::file_only_refusal`]).
//!
//! Loading never fails ([`load`]): an unusable main file falls back to `upsguard_backup.ini`
//! (the service logs `config_backup_used`), then to defaults; a bad value keeps its default
//! with a [`ConfigWarning`] naming line, section, key and rule. Saving ([`Config::save`]) is
//! typed, validated, atomic and `0600`, and refreshes the backup.

pub mod events;
mod file_only;
pub mod ini;
pub mod model;
pub mod notifications;
pub mod schedule;
pub mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::atomic::{self, AtomicWriteError, MODE_PRIVATE};

pub use events::{EVENTS, EventActions, EventSpec, Events};
pub use file_only::FILE_ONLY_KEYS;
pub use ini::ParseError;
pub use model::{
    Access, Communication, Community, Config, Credentials, IpPrefix, Logging, NetService,
    SectionId, Shutdown, ShutdownPolicy, Snmp, UpsOffMode, Web,
};
pub use notifications::{Notifications, SmtpSecurity, WebhookUrl};
pub use schedule::Schedule;
pub use values::{Argv, FileName};

/// Conventional file names in the data directory (product §9).
pub const MAIN_FILE: &str = "upsguard.ini";
pub const BACKUP_FILE: &str = "upsguard_backup.ini";

/// A hard error: reading, parsing, setting or writing failed.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be opened or read.
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// The path is a directory, FIFO, device… (reading those could hang or be huge).
    NotAFile {
        path: PathBuf,
    },
    /// The file is not a well-formed INI file (includes size, line-length and UTF-8 limits).
    Parse {
        path: Option<PathBuf>,
        source: ParseError,
    },
    UnknownSection {
        section: String,
    },
    UnknownKey {
        section: String,
        key: String,
    },
    /// A key name breaks the key rule (`=`, `[`, `]`, whitespace, …).
    InvalidKey {
        section: String,
        key: String,
        rule: String,
    },
    /// A value breaks a rule; `rule` says which.
    InvalidValue {
        section: String,
        key: String,
        rule: String,
    },
    /// Secrets are write-only through this API.
    Secret {
        section: String,
        key: String,
    },
    /// The atomic write failed; the previous file is intact.
    Write(AtomicWriteError),
    /// The file is writable by others or owned by another user, so it is not used.
    Insecure(crate::files::Refusal),
}

impl ConfigError {
    /// The file does not exist (as opposed to existing but being unusable).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// The line the problem is on, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Parse { source, .. } => source.line(),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ini::show;
        match self {
            Self::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Self::NotAFile { path } => write!(f, "{} is not a regular file", path.display()),
            Self::Parse {
                path: Some(p),
                source,
            } => write!(f, "{}: {source}", p.display()),
            Self::Parse { path: None, source } => write!(f, "{source}"),
            Self::UnknownSection { section } => write!(f, "unknown section [{}]", show(section)),
            Self::UnknownKey { section, key } => {
                write!(f, "[{section}] {}: unknown key", show(key))
            }
            Self::InvalidKey { section, key, rule } | Self::InvalidValue { section, key, rule } => {
                write!(f, "[{section}] {}: {rule}", show(key))
            }
            Self::Secret { section, key } => {
                write!(
                    f,
                    "[{section}] {}: secret values are never read back",
                    show(key)
                )
            }
            Self::Write(e) => write!(f, "cannot save configuration: {e}"),
            Self::Insecure(r) => write!(f, "{r}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Parse { source, .. } => Some(source),
            Self::Write(e) => Some(e),
            Self::Insecure(r) => Some(r),
            _ => None,
        }
    }
}

impl From<AtomicWriteError> for ConfigError {
    fn from(e: AtomicWriteError) -> Self {
        Self::Write(e)
    }
}

/// What kind of problem a [`ConfigWarning`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// A value broke a rule; the key keeps its default (or previous) value.
    InvalidValue,
    UnknownSection,
    UnknownKey,
    /// A section or key appears more than once.
    Duplicate,
    /// The main file was missing, unreadable or unparsable.
    MainFileUnusable,
    /// The backup was needed but is missing, unreadable or unparsable.
    BackupUnusable,
    /// Neither file was usable: built-in defaults are in force.
    UsingDefaults,
    /// The main file loaded but the backup could not be refreshed.
    BackupNotRefreshed,
    /// The file is accessible to group or others (product §8.13: root only).
    InsecurePermissions,
    /// A `[Credentials]` section is present (it will be consumed and removed).
    CredentialsPresent,
    /// A server is enabled that this version does not have yet (SNMP, NUT, NIS).
    NotImplemented,
}

/// A non-fatal problem, with as much location as is known. `Display` escapes every piece of
/// file-supplied text, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub kind: WarningKind,
    /// The file it is about, when not obvious from context.
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub section: Option<String>,
    pub key: Option<String>,
    pub message: String,
}

impl ConfigWarning {
    fn file(kind: WarningKind, file: &Path, message: String) -> Self {
        Self {
            kind,
            file: Some(file.to_path_buf()),
            line: None,
            section: None,
            key: None,
            message,
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.file {
            write!(f, "{}: ", p.display())?;
        }
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        match (&self.section, &self.key) {
            (Some(s), Some(k)) => {
                write!(f, "[{}] {}: ", ini::show(s).trim_matches('"'), ini::show(k))?
            }
            (Some(s), None) => write!(f, "[{}]: ", ini::show(s).trim_matches('"'))?,
            (None, Some(k)) => write!(f, "{}: ", ini::show(k))?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Where the running configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Main,
    Backup,
    Defaults,
}

/// The result of [`load`]: always a usable configuration, plus what happened on the way.
#[derive(Debug)]
pub struct LoadOutcome {
    pub config: Config,
    pub warnings: Vec<ConfigWarning>,
    /// The main file was unusable and the backup was used: log `config_backup_used`.
    pub used_backup: bool,
    pub source: ConfigSource,
    /// Why the main file was not used, when it was not.
    pub main_error: Option<ConfigError>,
    /// The backup was rewritten from the main file during this load.
    pub backup_refreshed: bool,
    /// `(section, key)` pairs present in the file that was used, lowercase, so a caller can
    /// tell an explicit value from a default.
    pub explicit: BTreeSet<(String, String)>,
    /// The backup was needed but refused for its owner or mode.
    pub backup_refusal: Option<crate::files::Refusal>,
}

impl LoadOutcome {
    /// Whether the file that was used sets `[section] key` (ASCII case-insensitive).
    pub fn is_explicit(&self, section: &str, key: &str) -> bool {
        self.explicit
            .contains(&(section.to_ascii_lowercase(), key.to_ascii_lowercase()))
    }

    /// Files refused for their owner or mode during this load (main and/or backup).
    pub fn refusals(&self) -> Vec<&crate::files::Refusal> {
        let mut out = Vec::new();
        if let Some(ConfigError::Insecure(r)) = &self.main_error {
            out.push(r);
        }
        out.extend(self.backup_refusal.iter());
        out
    }
}

fn explicit_keys(doc: &ini::Document) -> BTreeSet<(String, String)> {
    doc.sections
        .iter()
        .flat_map(|s| {
            s.entries
                .iter()
                .map(|e| (s.name.to_ascii_lowercase(), e.key.to_ascii_lowercase()))
        })
        .collect()
}

/// Read a config file: regular files only, at most [`ini::MAX_FILE_BYTES`], never blocking on
/// a FIFO. Returns the bytes and the permission bits.
fn read_file(path: &Path) -> Result<(Vec<u8>, Option<u32>), ConfigError> {
    let io_err = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        opts.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = opts.open(path).map_err(io_err)?;
    let md = file.metadata().map_err(io_err)?;
    if !md.is_file() {
        return Err(ConfigError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    // Checked on the open descriptor, so the file inspected is the file read. Whoever can
    // write it could change the OS shutdown command or reset the administrator.
    crate::files::check_trusted_file(path, &md).map_err(ConfigError::Insecure)?;
    let limit = ini::MAX_FILE_BYTES;
    let too_large = |size| ConfigError::Parse {
        path: Some(path.to_path_buf()),
        source: ParseError::TooLarge { size, limit },
    };
    if md.len() > limit as u64 {
        return Err(too_large(usize::try_from(md.len()).unwrap_or(usize::MAX)));
    }
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() > limit {
        return Err(too_large(bytes.len()));
    }
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        Some(md.permissions().mode() & 0o7777)
    };
    #[cfg(not(unix))]
    let mode = None;
    Ok((bytes, mode))
}

fn read_and_parse(path: &Path) -> Result<(Vec<u8>, ini::Document, Option<u32>), ConfigError> {
    let (bytes, mode) = read_file(path)?;
    let doc = ini::parse(&bytes).map_err(|source| ConfigError::Parse {
        path: Some(path.to_path_buf()),
        source,
    })?;
    Ok((bytes, doc, mode))
}

fn permission_warning(path: &Path, mode: Option<u32>) -> Option<ConfigWarning> {
    let m = mode?;
    (m & 0o077 != 0).then(|| {
        ConfigWarning::file(
            WarningKind::InsecurePermissions,
            path,
            format!("file mode is {m:04o}; it should be 0600 (readable and writable by root only)"),
        )
    })
}

fn has_credentials_section(doc: &ini::Document) -> bool {
    doc.sections
        .iter()
        .any(|s| SectionId::from_name(&s.name) == Some(SectionId::Credentials))
}

fn with_file(mut ws: Vec<ConfigWarning>, path: &Path) -> Vec<ConfigWarning> {
    for w in &mut ws {
        w.file.get_or_insert_with(|| path.to_path_buf());
    }
    ws
}

/// Load the configuration. Never fails:
///
/// 1. the main file, if readable and parsable (bad values keep defaults, with warnings); the
///    backup is then refreshed atomically as the last good copy;
/// 2. otherwise the backup (`used_backup`), without touching either file;
/// 3. otherwise built-in defaults, with a warning.
pub fn load(main_path: &Path, backup_path: &Path) -> LoadOutcome {
    match read_and_parse(main_path) {
        Ok((bytes, doc, mode)) => {
            let (config, ws) = Config::from_document(&doc);
            let mut warnings = with_file(ws, main_path);
            warnings.extend(permission_warning(main_path, mode));
            let backup_refreshed = match refresh_backup(&bytes, &doc, &config, backup_path) {
                Ok(written) => written,
                Err(e) => {
                    warnings.push(ConfigWarning::file(
                        WarningKind::BackupNotRefreshed,
                        backup_path,
                        format!("backup not refreshed: {e}"),
                    ));
                    false
                }
            };
            LoadOutcome {
                config,
                warnings,
                used_backup: false,
                source: ConfigSource::Main,
                main_error: None,
                backup_refreshed,
                explicit: explicit_keys(&doc),
                backup_refusal: None,
            }
        }
        Err(main_err) => {
            let what = if main_err.is_not_found() {
                "is missing"
            } else {
                "is unusable"
            };
            let mut warnings = vec![ConfigWarning::file(
                WarningKind::MainFileUnusable,
                main_path,
                format!("configuration file {what} ({main_err}); trying the backup"),
            )];
            match read_and_parse(backup_path) {
                Ok((_, doc, mode)) => {
                    let (config, ws) = Config::from_document(&doc);
                    warnings.extend(with_file(ws, backup_path));
                    warnings.extend(permission_warning(backup_path, mode));
                    LoadOutcome {
                        config,
                        warnings,
                        used_backup: true,
                        source: ConfigSource::Backup,
                        main_error: Some(main_err),
                        backup_refreshed: false,
                        explicit: explicit_keys(&doc),
                        backup_refusal: None,
                    }
                }
                Err(bak_err) => {
                    let backup_refusal = match &bak_err {
                        ConfigError::Insecure(r) => Some(r.clone()),
                        _ => None,
                    };
                    warnings.push(ConfigWarning::file(
                        WarningKind::BackupUnusable,
                        backup_path,
                        format!("backup is not usable either ({bak_err})"),
                    ));
                    warnings.push(ConfigWarning {
                        kind: WarningKind::UsingDefaults,
                        file: None,
                        line: None,
                        section: None,
                        key: None,
                        message: "using built-in defaults".into(),
                    });
                    LoadOutcome {
                        config: Config::default(),
                        warnings,
                        used_backup: false,
                        source: ConfigSource::Defaults,
                        main_error: Some(main_err),
                        backup_refreshed: false,
                        explicit: BTreeSet::new(),
                        backup_refusal,
                    }
                }
            }
        }
    }
}

/// Make the backup the last good copy of a main file that just loaded. A byte copy keeps the
/// administrator's comments; but plain-text credentials are never copied into the backup, so a
/// file with `[Credentials]` is backed up in canonical form without them. Skips the write when
/// the backup is already identical. Returns whether it wrote.
fn refresh_backup(
    bytes: &[u8],
    doc: &ini::Document,
    config: &Config,
    backup: &Path,
) -> Result<bool, ConfigError> {
    let content = if has_credentials_section(doc) {
        let mut c = config.clone();
        c.take_credentials();
        c.to_ini()?.into_bytes()
    } else {
        bytes.to_vec()
    };
    if let Ok((old, _)) = read_file(backup)
        && old == content
    {
        return Ok(false);
    }
    atomic::write_atomic(backup, &content, MODE_PRIVATE)?;
    Ok(true)
}

impl Config {
    /// Validate and write the configuration to `main` atomically (temp + fsync + rename, mode
    /// 0600), then make `backup` the same last good copy. If writing `main` fails, neither file
    /// changes; if only the backup fails, `main` is already saved and the error says so.
    pub fn save(&self, main: &Path, backup: &Path) -> Result<(), ConfigError> {
        let text = self.to_ini()?;
        atomic::write_atomic(main, text.as_bytes(), MODE_PRIVATE)?;
        let mut for_backup = self.clone();
        let bak = if for_backup.take_credentials().is_some() {
            for_backup.to_ini()?
        } else {
            text
        };
        atomic::write_atomic(backup, bak.as_bytes(), MODE_PRIVATE)?;
        Ok(())
    }
}

/// Remove every `[Credentials]` section from the main file in place, keeping all other lines
/// (and comments) as they are, and refresh the backup from the result. Returns `Ok(false)` if
/// there was nothing to remove. For the credential store, after it consumed the values.
pub fn scrub_credentials(main: &Path, backup: &Path) -> Result<bool, ConfigError> {
    let (bytes, doc, _) = read_and_parse(main)?;
    if !has_credentials_section(&doc) {
        return Ok(false);
    }
    // Each section spans from its header to the line before the next header.
    let mut drop_lines: Vec<(usize, usize)> = Vec::new();
    for (i, s) in doc.sections.iter().enumerate() {
        if SectionId::from_name(&s.name) == Some(SectionId::Credentials) {
            let end = doc
                .sections
                .get(i + 1)
                .map_or(doc.line_count, |n| n.line.saturating_sub(1));
            drop_lines.push((s.line, end));
        }
    }
    // `parse` succeeded, so this is UTF-8; line numbering matches the parser's ('\n' split,
    // after the optional BOM).
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let kept: String = text
        .split_inclusive('\n')
        .enumerate()
        .filter(|(i, _)| !drop_lines.iter().any(|&(a, b)| (a..=b).contains(&(i + 1))))
        .map(|(_, l)| l)
        .collect();
    // Re-parse before writing: the result must still be a valid file without credentials.
    let check =
        ini::parse(kept.as_bytes()).map_err(|source| ConfigError::Parse { path: None, source })?;
    if has_credentials_section(&check) {
        return Err(ConfigError::InvalidValue {
            section: "Credentials".into(),
            key: String::new(),
            rule: "section could not be removed".into(),
        });
    }
    atomic::write_atomic(main, kept.as_bytes(), MODE_PRIVATE)?;
    atomic::write_atomic(backup, kept.as_bytes(), MODE_PRIVATE)?;
    Ok(true)
}

/// Result of checking one file (`upsguard config check FILE`).
#[derive(Debug)]
pub struct Report {
    pub path: PathBuf,
    /// Problems that make the file (or a value in it) not load as written.
    pub errors: Vec<ConfigWarning>,
    /// Things worth fixing that do not change what loads.
    pub warnings: Vec<ConfigWarning>,
}

impl Report {
    /// No errors (warnings are allowed).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Process exit code for the CLI: 0 when there are no errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.is_ok() { 0 } else { 1 }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        if self.errors.is_empty() && self.warnings.is_empty() {
            return writeln!(f, "{}: OK", self.path.display());
        }
        writeln!(
            f,
            "{}: {}, {}",
            self.path.display(),
            plural(self.errors.len(), "error"),
            plural(self.warnings.len(), "warning")
        )?;
        for e in &self.errors {
            writeln!(f, "  error: {e}")?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

/// Check a file without loading it into the service: syntax, every value, permissions.
/// What `config check`, the service log and the status say about an enabled server that
/// does not exist yet.
pub fn not_implemented_message(what: &str) -> String {
    format!(
        "enabled, but the {what} is not implemented yet in this version: nothing listens and the settings have no effect"
    )
}

impl Config {
    /// Enabled sections whose server does not exist yet: (section, server name).
    pub fn unimplemented_servers(&self) -> Vec<(&'static str, &'static str)> {
        let mut v = Vec::new();
        if self.snmp.enabled {
            v.push(("SNMP", "SNMP agent"));
        }
        if self.nut.enabled {
            v.push(("NUT", "NUT network server"));
        }
        if self.nis.enabled {
            v.push(("NIS", "apcupsd NIS server"));
        }
        v
    }
}

pub fn validate_file(path: &Path) -> Report {
    let mut report = Report {
        path: path.to_path_buf(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let (_, doc, mode) = match read_and_parse(path) {
        Ok(x) => x,
        Err(e) => {
            let line = e.line();
            let message = match &e {
                ConfigError::Parse { source, .. } => match source {
                    ParseError::Syntax { message, .. } => message.clone(),
                    ParseError::NotUtf8 { .. } => "file is not valid UTF-8 text".into(),
                    ParseError::LineTooLong { limit, .. } => {
                        format!("line is longer than {limit} bytes")
                    }
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            report.errors.push(ConfigWarning {
                kind: WarningKind::MainFileUnusable,
                file: None,
                line,
                section: None,
                key: None,
                message,
            });
            return report;
        }
    };
    let (cfg, ws) = Config::from_document(&doc);
    for (section, what) in cfg.unimplemented_servers() {
        report.warnings.push(ConfigWarning {
            kind: WarningKind::NotImplemented,
            file: None,
            line: None,
            section: Some(section.into()),
            key: Some("enabled".into()),
            message: not_implemented_message(what),
        });
    }
    for w in ws {
        // An unknown key is usually a typo (`polcy`) that silently leaves a default in force.
        if matches!(
            w.kind,
            WarningKind::InvalidValue | WarningKind::UnknownKey | WarningKind::UnknownSection
        ) {
            report.errors.push(w);
        } else {
            report.warnings.push(w);
        }
    }
    if let Some(mut w) = permission_warning(path, mode) {
        w.file = None;
        report.warnings.push(w);
    }
    if let Some(s) = doc
        .sections
        .iter()
        .find(|s| SectionId::from_name(&s.name) == Some(SectionId::Credentials))
    {
        report.warnings.push(ConfigWarning {
            kind: WarningKind::CredentialsPresent,
            file: None,
            line: Some(s.line),
            section: Some("Credentials".into()),
            key: None,
            message: "plain-text credentials: the service stores them encrypted and removes this section at its next start".into(),
        });
    }
    report
}
