//! Event log: append-only JSON lines in `<data-dir>/events.jsonl`, bounded by size with a
//! rename-chain rotation (`events.jsonl.1` is the newest rotated file, `.N` the oldest).
//!
//! Line format (one JSON object per line, keys in this order):
//!
//! ```text
//! {"ts":"2026-11-27T22:07:30.123Z","id":"on_battery","severity":"warning","state":"active",
//!  "message":"On battery","fields":{"charge":97,"status":"OB"},"source":"10.0.0.7"}
//! ```
//!
//! `fields` and `source` are omitted when empty. Field values are strings or numbers.
//!
//! Injection safety: every string goes through serde_json, which escapes `"`, `\` and C0
//! controls; the serialized line is then post-processed so DEL, C1 controls (NEL, CSI…),
//! U+2028/U+2029 and bidi overrides are written as `\uXXXX` too. The written line therefore
//! contains exactly one `\n` (the terminator) and nothing a terminal, editor or JS parser could
//! take for a line break or a display trick. For CLI/CSV output, [`display_escape`] renders the
//! same characters as `\xNN` / `\u{…}` (and `\` as `\\`, so the escaping is unambiguous).
//!
//! Write path cost: one `write(2)` on an already-open `O_APPEND` descriptor per event (the line is
//! built in memory first, so a line is never split by our own buffering), the size is tracked in
//! memory, and `fdatasync` only for critical events. The read side scans the rotated files in
//! order, skipping (and counting) lines that do not parse, e.g. a line truncated by a crash.
//! Readers racing a rotation may miss or repeat a few lines; that is acceptable for a viewer.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// File name of the live event log inside the data directory.
pub const EVENTS_FILE: &str = "events.jsonl";

/// User-supplied text longer than this (bytes) is cut at a char boundary and marked with `…`,
/// so one hostile value cannot blow the log's size budget in a single line.
pub const MAX_TEXT_BYTES: usize = 4096;

/// Read side: longer lines are garbage (we never write them), skipped without buffering them.
pub(crate) const MAX_READ_LINE_BYTES: usize = 256 * 1024;

/// Severity of an event (the fixed severity from the product spec, §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Info,
    /// Warning.
    Warning,
    /// Critical.
    Critical,
}

impl Severity {
    /// The wire/CSV spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses `info`/`informational`/`warning`/`critical` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "info" | "informational" => Some(Severity::Info),
            "warning" | "warn" => Some(Severity::Warning),
            "critical" | "crit" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// Whether this record marks an event becoming active, clearing, or is a one-shot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    /// The condition started.
    Active,
    /// The condition ended.
    Cleared,
    /// One-shot event without an active/cleared pair (login, self-test passed…).
    None,
}

impl EventState {
    /// The wire/CSV spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Active => "active",
            EventState::Cleared => "cleared",
            EventState::None => "none",
        }
    }
}

/// A value in an event's `fields` object.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// Integer (charge %, runtime seconds…).
    Int(i64),
    /// Finite float (voltages…). Non-finite floats are stored as text.
    Num(f64),
    /// Text (status tokens, model…); may be user-supplied.
    Text(String),
}

impl FieldValue {
    fn to_json(&self) -> Value {
        match self {
            FieldValue::Int(i) => Value::from(*i),
            FieldValue::Num(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(f.to_string())),
            FieldValue::Text(s) => Value::String(clip(s, MAX_TEXT_BYTES).into_owned()),
        }
    }

    /// Lenient conversion on read: anything odd becomes text rather than a lost record.
    fn from_json(v: Value) -> Option<Self> {
        match v {
            Value::Null => None,
            Value::Number(n) => Some(match n.as_i64() {
                Some(i) => FieldValue::Int(i),
                None => FieldValue::Num(n.as_f64().unwrap_or(f64::NAN)),
            }),
            Value::String(s) => Some(FieldValue::Text(s)),
            other => Some(FieldValue::Text(other.to_string())),
        }
    }

    /// Plain rendering (not escaped; pass through [`display_escape`] for output).
    pub fn to_plain_string(&self) -> String {
        match self {
            FieldValue::Int(i) => i.to_string(),
            FieldValue::Num(f) => f.to_string(),
            FieldValue::Text(s) => s.clone(),
        }
    }
}

impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::Int(v)
    }
}
impl From<u32> for FieldValue {
    fn from(v: u32) -> Self {
        FieldValue::Int(i64::from(v))
    }
}
impl From<i32> for FieldValue {
    fn from(v: i32) -> Self {
        FieldValue::Int(i64::from(v))
    }
}
impl From<u64> for FieldValue {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(FieldValue::Num(v as f64), FieldValue::Int)
    }
}
impl From<usize> for FieldValue {
    fn from(v: usize) -> Self {
        FieldValue::from(v as u64)
    }
}
impl From<u16> for FieldValue {
    fn from(v: u16) -> Self {
        FieldValue::Int(i64::from(v))
    }
}
impl From<u8> for FieldValue {
    fn from(v: u8) -> Self {
        FieldValue::Int(i64::from(v))
    }
}
impl From<f32> for FieldValue {
    fn from(v: f32) -> Self {
        // Via the shortest decimal form, so 0.1f32 logs as 0.1, not 0.10000000149011612.
        FieldValue::Num(v.to_string().parse().unwrap_or(f64::from(v)))
    }
}
impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Text(if v { "true" } else { "false" }.to_owned())
    }
}
impl From<f64> for FieldValue {
    fn from(v: f64) -> Self {
        FieldValue::Num(v)
    }
}
impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        FieldValue::Text(v.to_owned())
    }
}
impl From<String> for FieldValue {
    fn from(v: String) -> Self {
        FieldValue::Text(v)
    }
}

/// One event, as appended and as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// When it happened (UTC; written with millisecond precision).
    pub ts: OffsetDateTime,
    /// Stable event id, e.g. `on_battery`, `login_failed`, `command_file_refused`.
    pub id: String,
    /// Fixed severity of the event.
    pub severity: Severity,
    /// Active / cleared / none.
    pub state: EventState,
    /// Human-readable message.
    pub message: String,
    /// Extra data (status, charge, runtime…). Keys are kept sorted.
    pub fields: BTreeMap<String, FieldValue>,
    /// Who/where it came from (remote address, username…): user-supplied text.
    pub source: Option<String>,
}

impl EventRecord {
    /// A record stamped with the current time.
    pub fn new(id: &str, severity: Severity, state: EventState, message: &str) -> Self {
        Self::new_at(OffsetDateTime::now_utc(), id, severity, state, message)
    }

    /// A record with an explicit timestamp.
    pub fn new_at(
        ts: OffsetDateTime,
        id: &str,
        severity: Severity,
        state: EventState,
        message: &str,
    ) -> Self {
        EventRecord {
            ts,
            id: id.to_owned(),
            severity,
            state,
            message: message.to_owned(),
            fields: BTreeMap::new(),
            source: None,
        }
    }

    /// Builder: adds one field.
    #[must_use]
    pub fn with_field(mut self, key: &str, value: impl Into<FieldValue>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// Builder: sets the source.
    #[must_use]
    pub fn with_source(mut self, source: &str) -> Self {
        self.source = Some(source.to_owned());
        self
    }

    /// The JSON line (with trailing `\n`) exactly as [`EventLog::append`] writes it.
    pub fn to_json_line(&self) -> io::Result<String> {
        let ts = format_ts(self.ts);
        let fields: Map<String, Value> = self
            .fields
            .iter()
            .map(|(k, v)| (clip(k, 256).into_owned(), v.to_json()))
            .collect();
        let wire = WireOut {
            ts: &ts,
            id: &clip(&self.id, 256),
            severity: self.severity,
            state: self.state,
            message: &clip(&self.message, MAX_TEXT_BYTES),
            fields,
            source: self.source.as_deref().map(|s| clip(s, MAX_TEXT_BYTES)),
        };
        let json = serde_json::to_string(&wire).map_err(io::Error::other)?;
        let mut line = escape_json_extras(json);
        line.push('\n');
        Ok(line)
    }

    /// Parses one line; `None` for anything that is not a valid record.
    pub fn from_json_line(line: &[u8]) -> Option<Self> {
        let wire: WireIn = serde_json::from_slice(line).ok()?;
        let ts = OffsetDateTime::parse(&wire.ts, &Rfc3339).ok()?;
        let fields = wire
            .fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| FieldValue::from_json(v).map(|v| (k, v)))
            .collect();
        Some(EventRecord {
            ts,
            id: wire.id,
            severity: Severity::parse(&wire.severity)?,
            state: wire.state.unwrap_or(EventState::None),
            message: wire.message,
            fields,
            source: wire.source,
        })
    }

    /// One escaped, human-readable line for the CLI (no control characters can pass).
    pub fn display_line(&self) -> String {
        let mut s = format!(
            "{} {:<8} {} {}: {}",
            format_ts(self.ts),
            self.severity.as_str(),
            display_escape(&self.id),
            self.state.as_str(),
            display_escape(&self.message)
        );
        if !self.fields.is_empty() {
            s.push_str(" (");
            s.push_str(&self.fields_display());
            s.push(')');
        }
        if let Some(src) = &self.source {
            let _ = write!(s, " source={}", display_escape(src));
        }
        s
    }

    /// `key=value; key=value`, escaped.
    fn fields_display(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(&display_escape(k));
            out.push('=');
            out.push_str(&display_escape(&v.to_plain_string()));
        }
        out
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    ts: &'a str,
    id: &'a str,
    severity: Severity,
    state: EventState,
    message: &'a str,
    #[serde(skip_serializing_if = "Map::is_empty")]
    fields: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireIn {
    ts: String,
    id: String,
    severity: String,
    #[serde(default)]
    state: Option<EventState>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Option<Map<String, Value>>,
    #[serde(default)]
    source: Option<String>,
}

/// Size bounds of the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLogLimits {
    /// Rotate when the live file would exceed this many KiB.
    pub max_file_kib: u32,
    /// How many rotated files (`events.jsonl.1` … `.N`) are kept.
    pub rotated_files: u32,
}

impl EventLogLimits {
    /// Retention floor (anti-forensics, §6): [`EventLog::open`] never goes below it.
    pub const FLOOR: EventLogLimits = EventLogLimits {
        max_file_kib: 16,
        rotated_files: 1,
    };

    /// Raises each bound to at least [`Self::FLOOR`] and caps absurd values.
    pub fn clamped(self) -> Self {
        EventLogLimits {
            max_file_kib: self
                .max_file_kib
                .clamp(Self::FLOOR.max_file_kib, 1024 * 1024),
            rotated_files: self.rotated_files.clamp(Self::FLOOR.rotated_files, 999),
        }
    }

    fn max_bytes(self) -> u64 {
        u64::from(self.max_file_kib) * 1024
    }
}

impl Default for EventLogLimits {
    /// 1 MiB per file, 9 rotated files: 10 MiB, tens of thousands of events.
    fn default() -> Self {
        EventLogLimits {
            max_file_kib: 1024,
            rotated_files: 9,
        }
    }
}

/// Which records [`EventLog::read`] returns.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only these severities (empty: all).
    pub severities: Vec<Severity>,
    /// Only these ids (empty: all).
    pub ids: Vec<String>,
    /// Only records at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Only records strictly before this instant.
    pub until: Option<OffsetDateTime>,
    /// Keep only the newest N matching records.
    pub limit: Option<usize>,
    /// Return newest first (default: oldest first).
    pub newest_first: bool,
}

impl EventFilter {
    fn matches(&self, r: &EventRecord) -> bool {
        (self.severities.is_empty() || self.severities.contains(&r.severity))
            && (self.ids.is_empty() || self.ids.contains(&r.id))
            && self.since.is_none_or(|t| r.ts >= t)
            && self.until.is_none_or(|t| r.ts < t)
    }
}

/// Result of a read: the records and how many lines were skipped as unreadable.
#[derive(Debug, Clone, Default)]
pub struct EventReadOutcome {
    /// Matching records, in the order the filter asked for.
    pub records: Vec<EventRecord>,
    /// Lines that did not parse (truncated, garbage, overlong).
    pub skipped: usize,
}

/// Appends that failed since the last successful write (disk full, I/O error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// When the first append failed.
    pub since: OffsetDateTime,
    /// When the latest append failed.
    pub last: OffsetDateTime,
    /// Events that could not be written.
    pub lost: u64,
    /// The latest error, as text.
    pub error: String,
}

impl WriteFailure {
    /// One line for the service status.
    pub fn summary(&self) -> String {
        format!(
            "cannot write the event log since {}: {}; {} event{} not written",
            format_ts(self.since),
            self.error,
            self.lost,
            if self.lost == 1 { "" } else { "s" }
        )
    }

    /// The two records written in front of the first record that gets through again: the
    /// failure (stamped when it began) and the recovery with the count of lost events.
    fn records(&self) -> [EventRecord; 2] {
        use upsguard_core::event::EventId;
        let failed = EventRecord::new_at(
            self.since,
            EventId::EventLogFailed.as_str(),
            Severity::Warning,
            EventState::Active,
            &format!("the event log could not be written: {}", self.error),
        )
        .with_field("error", self.error.as_str());
        let recovered = EventRecord::new(
            EventId::EventLogRecovered.as_str(),
            Severity::Info,
            EventState::Cleared,
            &format!(
                "{} event{} could not be written between {} and {}",
                self.lost,
                if self.lost == 1 { "" } else { "s" },
                format_ts(self.since),
                format_ts(self.last)
            ),
        )
        .with_field("lost", self.lost)
        .with_field("since", format_ts(self.since))
        .with_field("until", format_ts(self.last));
        [failed, recovered]
    }
}

/// The writer. Keep one per data directory (the service wraps it in a mutex).
#[derive(Debug)]
pub struct EventLog {
    dir: PathBuf,
    file: File,
    size: u64,
    limits: EventLogLimits,
    /// Set while appends fail; the next append first cuts a torn line off the file.
    failure: Option<WriteFailure>,
    /// The log held records before this writer opened it (the service ran here before).
    had_records: bool,
}

impl EventLog {
    /// Opens (creating if needed) `<dir>/events.jsonl` for appending. The directory is created
    /// with mode 0700 if missing; the file is 0600 (tightened if it was looser).
    pub fn open(dir: &Path, limits: EventLogLimits) -> io::Result<EventLog> {
        ensure_private_dir(dir)?;
        let path = dir.join(EVENTS_FILE);
        let file = open_append_private(&path)?;
        // A crash or a full disk may have left half a record: cut it off, so the next record
        // starts on a line of its own instead of being glued to (and lost with) the fragment.
        let size = truncate_to_last_line(&file)?;
        let had_records = size > 0 || rotated_path(dir, EVENTS_FILE, 1).exists();
        Ok(EventLog {
            dir: dir.to_path_buf(),
            file,
            size,
            limits: limits.clamped(),
            failure: None,
            had_records,
        })
    }

    /// The appends failing right now, if any (cleared by the first append that succeeds).
    pub fn write_failure(&self) -> Option<&WriteFailure> {
        self.failure.as_ref()
    }

    /// Whether the log already held records when it was opened.
    pub fn had_records_at_open(&self) -> bool {
        self.had_records
    }

    /// The limits in force (after clamping to the floor).
    pub fn limits(&self) -> EventLogLimits {
        self.limits
    }

    /// Changes the limits; takes effect at the next append.
    pub fn set_limits(&mut self, limits: EventLogLimits) {
        self.limits = limits.clamped();
    }

    /// Current size of the live file in bytes, as tracked.
    pub fn current_size(&self) -> u64 {
        self.size
    }

    /// Appends one record. Rotates first if the line would overflow the live file; if rotation
    /// fails the line is still written (to whatever file is open) and the error only logged,
    /// because losing an event is worse than a file growing past its bound.
    ///
    /// A failed append is counted ([`Self::write_failure`]). The next append first truncates
    /// the file to its last complete record (a short write leaves a fragment), then writes an
    /// `event_log_failed` and an `event_log_recovered` record in front of its own.
    pub fn append(&mut self, rec: &EventRecord) -> io::Result<()> {
        let mut line = String::new();
        if let Some(f) = &self.failure {
            for r in f.records() {
                line.push_str(&r.to_json_line()?);
            }
        }
        line.push_str(&rec.to_json_line()?);
        match self.write_line(&line) {
            Ok(()) => {
                self.failure = None;
                // The line is written; a failed sync is reported but loses nothing.
                if rec.severity == Severity::Critical {
                    self.file.sync_data()?;
                }
                Ok(())
            }
            Err(e) => {
                let now = OffsetDateTime::now_utc();
                let f = self.failure.get_or_insert_with(|| WriteFailure {
                    since: now,
                    last: now,
                    lost: 0,
                    error: String::new(),
                });
                f.last = now;
                f.lost = f.lost.saturating_add(1);
                f.error = e.to_string();
                Err(e)
            }
        }
    }

    /// One `write(2)` of whole lines. On error part of it may be on disk: `append` records the
    /// failure, and the next call cuts the fragment off before writing.
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        if self.failure.is_some() {
            self.size = truncate_to_last_line(&self.file)?;
        }
        let len = line.len() as u64;
        if self.size > 0
            && self.size.saturating_add(len) > self.limits.max_bytes()
            && let Err(e) = self.rotate()
        {
            tracing::warn!(error = %e, "event log rotation failed; appending to current file");
        }
        self.file.write_all(line.as_bytes())?;
        self.size = self.size.saturating_add(len);
        Ok(())
    }

    /// Flushes file data to disk (e.g. before the OS shutdown command runs).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn rotate(&mut self) -> io::Result<()> {
        let n = self.limits.rotated_files;
        let current = self.dir.join(EVENTS_FILE);
        rotate_chain(&self.dir, EVENTS_FILE, n)?;
        match fs::rename(&current, rotated_path(&self.dir, EVENTS_FILE, 1)) {
            Ok(()) => {}
            // A previous half-done rotation already moved it away.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = open_append_private(&current)?;
        sync_dir(&self.dir);
        self.file = file;
        self.size = 0;
        Ok(())
    }

    /// Reads this log's directory; see [`EventLog::read_dir`].
    pub fn read(&self, filter: &EventFilter) -> io::Result<EventReadOutcome> {
        Self::read_dir(&self.dir, filter)
    }

    /// Reads all event files in `dir` (oldest rotated file first) and applies `filter`. Works
    /// without a writer, e.g. from the CLI.
    pub fn read_dir(dir: &Path, filter: &EventFilter) -> io::Result<EventReadOutcome> {
        let mut records: VecDeque<EventRecord> = VecDeque::new();
        let mut skipped = 0usize;
        for path in files_oldest_first(dir, EVENTS_FILE) {
            let file = match open_read_nofollow(&path) {
                Ok(f) => f,
                // Raced with a rotation or deleted: nothing to read there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for_each_line(BufReader::new(file), MAX_READ_LINE_BYTES, |line| {
                let Some(line) = line else {
                    skipped += 1;
                    return;
                };
                if line.iter().all(u8::is_ascii_whitespace) {
                    return;
                }
                match EventRecord::from_json_line(line) {
                    Some(rec) if filter.matches(&rec) => {
                        records.push_back(rec);
                        if filter.limit.is_some_and(|l| records.len() > l) {
                            records.pop_front();
                        }
                    }
                    Some(_) => {}
                    None => skipped += 1,
                }
            })?;
        }
        let mut records: Vec<EventRecord> = records.into();
        if filter.newest_first {
            records.reverse();
        }
        Ok(EventReadOutcome { records, skipped })
    }
}

/// CSV export: header `ts,id,severity,state,message,source,fields`, `\n` line ends, RFC 4180
/// quoting, every text escaped with [`display_escape`] and formula cells defused.
pub fn to_csv(records: &[EventRecord]) -> String {
    let mut out = String::from("ts,id,severity,state,message,source,fields\n");
    for r in records {
        out.push_str(&format_ts(r.ts));
        out.push(',');
        push_csv_cell(&mut out, &r.id);
        out.push(',');
        out.push_str(r.severity.as_str());
        out.push(',');
        out.push_str(r.state.as_str());
        out.push(',');
        push_csv_cell(&mut out, &r.message);
        out.push(',');
        push_csv_cell(&mut out, r.source.as_deref().unwrap_or(""));
        out.push(',');
        // Already escaped by fields_display; escaping twice would double the backslashes.
        push_csv_escaped_cell(&mut out, &r.fields_display());
        out.push('\n');
    }
    out
}

/// Appends one CSV cell holding arbitrary (untrusted) text.
pub fn push_csv_cell(out: &mut String, raw: &str) {
    push_csv_escaped_cell(out, &display_escape(raw));
}

fn push_csv_escaped_cell(out: &mut String, s: &str) {
    // Spreadsheets evaluate cells starting with these as formulas (CSV injection).
    let defuse = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if quote {
        out.push('"');
    }
    if defuse {
        out.push('\'');
    }
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

/// True for characters that must never reach a log line or terminal raw: C0, DEL, C1, line and
/// paragraph separators, bidi controls and BOM.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// Display form of untrusted text: `\` → `\\`, C0/DEL/C1 → `\xNN`, other unsafe characters →
/// `\u{XXXX}`. The result is single-line and free of terminal escape sequences.
pub fn display_escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_unsafe_char(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe_char(c) {
            let cp = u32::from(c);
            if cp < 0x100 {
                let _ = write!(out, "\\x{cp:02x}");
            } else {
                let _ = write!(out, "\\u{{{cp:04x}}}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// serde_json leaves DEL, C1 and U+2028/2029 raw; these can only occur inside JSON strings (all
/// structural JSON is ASCII), so replacing them with `\uXXXX` keeps the JSON valid and equal.
fn escape_json_extras(json: String) -> String {
    if !json.chars().any(is_unsafe_char) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe_char(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// `2026-11-27T22:07:30.123Z` (UTC, milliseconds).
pub fn format_ts(ts: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    ts.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| String::from("0000-00-00T00:00:00.000Z"))
}

/// Cuts `s` to at most `max` bytes at a char boundary, marking the cut with `…`.
fn clip(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s.get(..end).unwrap_or("").to_owned();
    out.push('…');
    Cow::Owned(out)
}

// ---- file helpers shared with the data log ----

/// Creates `dir` (mode 0700) if missing; warns if an existing one is open to group/others.
pub(crate) fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(md) => {
            if !md.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", dir.display()),
                ));
            }
            if md.permissions().mode() & 0o077 != 0 {
                tracing::warn!(dir = %dir.display(), "data directory is accessible to group/others; expected 0700");
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
        Err(e) => Err(e),
    }
}

/// Opens for append with mode 0600, refusing symlinks and non-regular files.
pub(crate) fn open_append_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let md = file.metadata()?;
    if !md.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if md.permissions().mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

pub(crate) fn open_read_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Cuts a trailing partial line (no `\n` at the end) off the file and returns the new size.
/// Complete, newline-terminated records are never touched.
pub(crate) fn truncate_to_last_line(file: &File) -> io::Result<u64> {
    let size = file.metadata()?.len();
    let mut end = size;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = buf
            .get_mut(..usize::try_from(end - start).unwrap_or(0))
            .unwrap_or(&mut []);
        file.read_exact_at(chunk, start)?;
        match chunk.iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                let keep = start + i as u64 + 1;
                if keep != size {
                    file.set_len(keep)?;
                }
                return Ok(keep);
            }
            None => end = start,
        }
    }
    if size != 0 {
        file.set_len(0)?;
    }
    Ok(0)
}

/// Returns the file size, first terminating a torn last line (crash mid-write) so the next
/// append starts on a fresh line instead of being glued to, and lost with, the fragment.
pub(crate) fn repair_tail(file: &mut File) -> io::Result<u64> {
    let size = file.metadata()?.len();
    if size == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, size - 1)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
        return Ok(size + 1);
    }
    Ok(size)
}

pub(crate) fn rotated_path(dir: &Path, base: &str, k: u32) -> PathBuf {
    dir.join(format!("{base}.{k}"))
}

/// Shifts `base.1..base.(n-1)` up by one and deletes `base.n` and anything beyond (left over
/// from a larger limit), leaving `base.1` free.
pub(crate) fn rotate_chain(dir: &Path, base: &str, n: u32) -> io::Result<()> {
    let mut k = n.max(1);
    loop {
        match fs::remove_file(rotated_path(dir, base, k)) {
            Ok(()) => k += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        }
    }
    for k in (1..n).rev() {
        match fs::rename(rotated_path(dir, base, k), rotated_path(dir, base, k + 1)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Persists renames; best effort, as not every filesystem supports fsync on directories.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `base.K … base.1, base` for the contiguous rotated files that exist.
pub(crate) fn files_oldest_first(dir: &Path, base: &str) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for k in 1..=10_000u32 {
        let p = rotated_path(dir, base, k);
        if fs::symlink_metadata(&p).is_err() {
            break;
        }
        rotated.push(p);
    }
    rotated.reverse();
    rotated.push(dir.join(base));
    rotated
}

/// Calls `f` with each line (without `\n`, and without a trailing `\r`), or `None` for a line
/// longer than `max` (which is skipped without being buffered whole).
pub(crate) fn for_each_line<R: BufRead>(
    mut r: R,
    max: usize,
    mut f: impl FnMut(Option<&[u8]>),
) -> io::Result<()> {
    let mut line: Vec<u8> = Vec::new();
    let mut overlong = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if overlong {
                f(None);
            } else if !line.is_empty() {
                f(Some(trim_cr(&line)));
            }
            return Ok(());
        }
        let (chunk, used, eol) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (buf.get(..i).unwrap_or(&[]), i + 1, true),
            None => (buf, buf.len(), false),
        };
        if !overlong {
            if line.len() + chunk.len() > max {
                overlong = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        r.consume(used);
        if eol {
            if overlong {
                f(None);
            } else {
                f(Some(trim_cr(&line)));
            }
            line.clear();
            overlong = false;
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Read;
    use time::macros::datetime;

    fn small() -> EventLogLimits {
        EventLogLimits {
            max_file_kib: 16,
            rotated_files: 2,
        }
    }

    fn all(dir: &Path) -> EventReadOutcome {
        EventLog::read_dir(dir, &EventFilter::default()).unwrap()
    }

    #[test]
    fn timestamp_format_is_iso_utc_millis() {
        let ts = datetime!(2026-11-27 22:07:30.123456 UTC);
        assert_eq!(format_ts(ts), "2026-11-27T22:07:30.123Z");
        let ts = datetime!(2026-11-28 07:07:30.5 +09:00);
        assert_eq!(format_ts(ts), "2026-11-27T22:07:30.500Z");
    }

    #[test]
    fn append_and_read_back_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        let ts = datetime!(2026-11-27 22:07:30.123 UTC);
        let rec = EventRecord::new_at(
            ts,
            "on_battery",
            Severity::Warning,
            EventState::Active,
            "On battery",
        )
        .with_field("status", "OB")
        .with_field("charge", 97u32)
        .with_field("input_v", 0.5)
        .with_source("10.0.0.7");
        log.append(&rec).unwrap();
        let text = fs::read_to_string(dir.path().join(EVENTS_FILE)).unwrap();
        assert_eq!(
            text,
            "{\"ts\":\"2026-11-27T22:07:30.123Z\",\"id\":\"on_battery\",\"severity\":\"warning\",\
             \"state\":\"active\",\"message\":\"On battery\",\"fields\":{\"charge\":97,\
             \"input_v\":0.5,\"status\":\"OB\"},\"source\":\"10.0.0.7\"}\n"
        );
        let out = all(dir.path());
        assert_eq!(out.skipped, 0);
        assert_eq!(out.records, vec![rec]);
    }

    #[test]
    fn file_mode_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("data");
        let mut log = EventLog::open(&sub, EventLogLimits::default()).unwrap();
        log.append(&EventRecord::new(
            "x",
            Severity::Info,
            EventState::None,
            "m",
        ))
        .unwrap();
        let md = fs::metadata(sub.join(EVENTS_FILE)).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn loose_file_mode_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(EVENTS_FILE);
        fs::write(&p, b"").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        let _log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn symlinked_log_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        fs::write(&target, b"").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(EVENTS_FILE)).unwrap();
        assert!(EventLog::open(dir.path(), EventLogLimits::default()).is_err());
    }

    #[test]
    fn forged_username_cannot_inject_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        let evil = "evil\r\n{\"id\":\"login\"}";
        let rec = EventRecord::new(
            "login_failed",
            Severity::Warning,
            EventState::None,
            "Login failed",
        )
        .with_source(evil)
        .with_field("user", evil);
        log.append(&rec).unwrap();
        let text = fs::read_to_string(dir.path().join(EVENTS_FILE)).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        assert!(!text.contains('\r'));
        let out = all(dir.path());
        assert_eq!(out.skipped, 0);
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].id, "login_failed");
        assert_eq!(out.records[0].source.as_deref(), Some(evil));
        let shown = out.records[0].display_line();
        assert!(!shown.contains('\n') && !shown.contains('\r'));
        assert!(shown.contains("evil\\x0d\\x0a{\"id\":\"login\"}"));
    }

    #[test]
    fn c1_line_separators_and_bidi_are_escaped_in_json() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        let nasty = "a\u{85}b\u{2028}c\u{2029}d\u{1b}[31me\u{9b}f\u{7f}g\u{202e}h\u{0}i";
        let rec =
            EventRecord::new("x", Severity::Info, EventState::None, nasty).with_field(nasty, nasty);
        log.append(&rec).unwrap();
        let bytes = fs::read(dir.path().join(EVENTS_FILE)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.is_ascii(), "{text}");
        assert!(!text.trim_end_matches('\n').chars().any(|c| c.is_control()));
        for esc in [
            "\\u0085", "\\u2028", "\\u2029", "\\u001b", "\\u009b", "\\u007f", "\\u202e", "\\u0000",
        ] {
            assert!(text.contains(esc), "missing {esc} in {text}");
        }
        let out = all(dir.path());
        assert_eq!(out.records[0].message, nasty);
        assert_eq!(
            out.records[0].fields.get(nasty),
            Some(&FieldValue::Text(nasty.into()))
        );
    }

    #[test]
    fn display_escape_forms() {
        assert!(matches!(display_escape("plain text"), Cow::Borrowed(_)));
        assert_eq!(display_escape("a\r\nb"), "a\\x0d\\x0ab");
        assert_eq!(display_escape("\u{1b}[2J"), "\\x1b[2J");
        assert_eq!(display_escape("x\u{85}y\u{9b}"), "x\\x85y\\x9b");
        assert_eq!(display_escape("l\u{2028}p\u{2029}"), "l\\u{2028}p\\u{2029}");
        assert_eq!(display_escape("back\\x0a"), "back\\\\x0a");
        assert_eq!(display_escape("日本語 ok"), "日本語 ok");
    }

    #[test]
    fn long_text_is_clipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        let huge = "é".repeat(10_000);
        log.append(
            &EventRecord::new("x", Severity::Info, EventState::None, &huge).with_source(&huge),
        )
        .unwrap();
        let out = all(dir.path());
        let r = &out.records[0];
        assert!(r.message.len() <= MAX_TEXT_BYTES && r.message.ends_with('…'));
        assert!(r.source.as_ref().unwrap().len() <= MAX_TEXT_BYTES);
    }

    #[test]
    fn rotation_respects_bounds_and_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let limits = small();
        let mut log = EventLog::open(dir.path(), limits).unwrap();
        let base = datetime!(2026-01-01 0:00 UTC);
        let total = 1500u32;
        for i in 0..total {
            let ts = base + time::Duration::seconds(i64::from(i));
            log.append(
                &EventRecord::new_at(
                    ts,
                    "tick",
                    Severity::Info,
                    EventState::None,
                    "some message text here",
                )
                .with_field("n", i),
            )
            .unwrap();
        }
        let max = limits.max_bytes();
        for name in [
            EVENTS_FILE.to_string(),
            format!("{EVENTS_FILE}.1"),
            format!("{EVENTS_FILE}.2"),
        ] {
            let len = fs::metadata(dir.path().join(&name)).unwrap().len();
            assert!(len <= max, "{name} is {len} bytes");
            assert!(len > 0);
        }
        assert!(!dir.path().join(format!("{EVENTS_FILE}.3")).exists());
        assert_eq!(
            log.current_size(),
            fs::metadata(dir.path().join(EVENTS_FILE)).unwrap().len()
        );
        let out = all(dir.path());
        assert_eq!(out.skipped, 0);
        let ns: Vec<i64> = out
            .records
            .iter()
            .map(|r| match r.fields["n"] {
                FieldValue::Int(n) => n,
                _ => panic!(),
            })
            .collect();
        // Contiguous, ending at the last one written: nothing lost inside the retained window.
        assert_eq!(*ns.last().unwrap(), i64::from(total - 1));
        assert!(ns.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(ns.len() < total as usize);
    }

    #[test]
    fn shrinking_rotated_count_removes_surplus_files() {
        let dir = tempfile::tempdir().unwrap();
        for k in 1..=5 {
            fs::write(dir.path().join(format!("{EVENTS_FILE}.{k}")), b"").unwrap();
        }
        // Whole lines: a torn tail would be cut off at open.
        let line = format!("{}\n", "x".repeat(1023));
        fs::write(dir.path().join(EVENTS_FILE), line.repeat(17)).unwrap();
        let mut log = EventLog::open(dir.path(), small()).unwrap();
        log.append(&EventRecord::new(
            "x",
            Severity::Info,
            EventState::None,
            "m",
        ))
        .unwrap();
        for k in 3..=6 {
            assert!(
                !dir.path().join(format!("{EVENTS_FILE}.{k}")).exists(),
                "{k}"
            );
        }
        assert!(dir.path().join(format!("{EVENTS_FILE}.2")).exists());
    }

    #[test]
    fn limits_are_clamped_to_floor() {
        let l = EventLogLimits {
            max_file_kib: 0,
            rotated_files: 0,
        }
        .clamped();
        assert_eq!(l, EventLogLimits::FLOOR);
    }

    #[test]
    fn garbage_and_truncated_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let good = EventRecord::new_at(
            datetime!(2026-01-01 0:00 UTC),
            "a",
            Severity::Info,
            EventState::None,
            "m",
        );
        let mut content = good.to_json_line().unwrap();
        content
            .push_str("not json at all\n\n{\"ts\":\"bogus\",\"id\":\"x\",\"severity\":\"info\"}\n");
        content.push_str("\u{0}\u{1}\u{2}\n");
        content.push_str(&"x".repeat(MAX_READ_LINE_BYTES + 10));
        content.push('\n');
        content.push_str("{\"ts\":\"2026-01-01T00:00:01.000Z\",\"id\":\"trunc");
        fs::write(dir.path().join(EVENTS_FILE), content).unwrap();
        // Non-UTF-8 garbage in a rotated file.
        fs::write(
            dir.path().join(format!("{EVENTS_FILE}.1")),
            [0xff, 0xfe, b'\n', 0x80],
        )
        .unwrap();
        let out = all(dir.path());
        assert_eq!(out.records, vec![good.clone()]);
        assert_eq!(out.skipped, 7);

        // Appending after a torn line starts a fresh line: the new record survives.
        let mut log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        let next = EventRecord::new_at(
            datetime!(2026-01-01 0:00:02 UTC),
            "b",
            Severity::Critical,
            EventState::Active,
            "n",
        );
        log.append(&next).unwrap();
        let out = all(dir.path());
        assert_eq!(out.records, vec![good, next]);
        // The torn tail was cut off at open; the other bad lines are still there (skipped).
        assert_eq!(out.skipped, 6);
    }

    #[test]
    fn failed_append_is_counted_and_the_torn_record_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        let mut log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        let rec = |id: &str| EventRecord::new(id, Severity::Warning, EventState::Active, id);
        log.append(&rec("a")).unwrap();
        // Fault injection: /dev/full fails every write with ENOSPC, like a full disk.
        let real = std::mem::replace(
            &mut log.file,
            OpenOptions::new().write(true).open("/dev/full").unwrap(),
        );
        let err = log.append(&rec("b")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert!(log.append(&rec("c")).is_err());
        let f = log.write_failure().unwrap().clone();
        assert_eq!(f.lost, 2);
        assert!(
            f.summary().contains("2 events not written"),
            "{}",
            f.summary()
        );
        // What a short write leaves on the real disk: the first half of a record.
        let torn = rec("b").to_json_line().unwrap();
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(&torn.as_bytes()[..torn.len() / 2]).unwrap();
        // Space is back.
        log.file = real;
        log.append(&rec("d")).unwrap();
        assert!(log.write_failure().is_none());
        let out = all(dir.path());
        assert_eq!(out.skipped, 0, "the fragment must be gone");
        let ids: Vec<&str> = out.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["a", "event_log_failed", "event_log_recovered", "d"],
            "{out:?}"
        );
        let recovered = &out.records[2];
        assert!(
            recovered
                .message
                .starts_with("2 events could not be written between "),
            "{}",
            recovered.message
        );
        assert_eq!(recovered.fields.get("lost"), Some(&FieldValue::Int(2)));
        // Stamped when the failure began (the log keeps milliseconds).
        assert_eq!(format_ts(out.records[1].ts), format_ts(f.since));
        assert_eq!(log.current_size(), fs::metadata(&path).unwrap().len());
        // The next append is ordinary again.
        log.append(&rec("e")).unwrap();
        assert_eq!(all(dir.path()).records.len(), 5);
    }

    #[test]
    fn open_cuts_a_torn_tail_and_keeps_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        let good = EventRecord::new("a", Severity::Info, EventState::None, "m")
            .to_json_line()
            .unwrap();
        // A fragment longer than one read chunk, to exercise the backwards scan.
        let content = format!("{good}{good}{{\"ts\":\"{}", "x".repeat(10_000));
        fs::write(&path, &content).unwrap();
        let log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        assert_eq!(log.current_size(), 2 * good.len() as u64);
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("{good}{good}"));
        assert!(log.had_records_at_open());
        // No newline at all: nothing to keep.
        fs::write(&path, "garbage").unwrap();
        let log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        assert_eq!(log.current_size(), 0);
        assert!(!log.had_records_at_open());
    }

    #[test]
    fn filter_by_severity_id_time_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        let base = datetime!(2026-01-01 0:00 UTC);
        for i in 0..10i64 {
            let sev = if i % 3 == 0 {
                Severity::Critical
            } else {
                Severity::Info
            };
            let id = if i % 2 == 0 { "even" } else { "odd" };
            log.append(
                &EventRecord::new_at(
                    base + time::Duration::minutes(i),
                    id,
                    sev,
                    EventState::None,
                    "m",
                )
                .with_field("i", i),
            )
            .unwrap();
        }
        let idx = |f: EventFilter| -> Vec<i64> {
            log.read(&f)
                .unwrap()
                .records
                .iter()
                .map(|r| match r.fields["i"] {
                    FieldValue::Int(n) => n,
                    _ => -1,
                })
                .collect()
        };
        assert_eq!(
            idx(EventFilter {
                severities: vec![Severity::Critical],
                ..Default::default()
            }),
            vec![0, 3, 6, 9]
        );
        assert_eq!(
            idx(EventFilter {
                ids: vec!["odd".into()],
                ..Default::default()
            }),
            vec![1, 3, 5, 7, 9]
        );
        assert_eq!(
            idx(EventFilter {
                since: Some(base + time::Duration::minutes(2)),
                until: Some(base + time::Duration::minutes(5)),
                ..Default::default()
            }),
            vec![2, 3, 4]
        );
        assert_eq!(
            idx(EventFilter {
                limit: Some(3),
                ..Default::default()
            }),
            vec![7, 8, 9]
        );
        assert_eq!(
            idx(EventFilter {
                limit: Some(3),
                newest_first: true,
                ..Default::default()
            }),
            vec![9, 8, 7]
        );
    }

    #[test]
    fn csv_quoting_and_formula_defence() {
        let ts = datetime!(2026-01-01 0:00 UTC);
        let r1 = EventRecord::new_at(
            ts,
            "login_failed",
            Severity::Warning,
            EventState::None,
            "say \"hi\", ok",
        )
        .with_source("=HYPERLINK(\"http://x\")")
        .with_field("user", "@SUM(A1)")
        .with_field("n", -3i64);
        let r2 = EventRecord::new_at(ts, "+cmd", Severity::Info, EventState::Cleared, "-1+1")
            .with_source("a\r\nb");
        let csv = to_csv(&[r1, r2]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert_eq!(lines[0], "ts,id,severity,state,message,source,fields");
        assert_eq!(
            lines[1],
            "2026-01-01T00:00:00.000Z,login_failed,warning,none,\"say \"\"hi\"\", ok\",\
             \"'=HYPERLINK(\"\"http://x\"\")\",n=-3; user=@SUM(A1)"
        );
        assert_eq!(
            lines[2],
            "2026-01-01T00:00:00.000Z,'+cmd,info,cleared,'-1+1,a\\x0d\\x0ab,"
        );
    }

    #[test]
    fn critical_events_are_synced_and_handle_stays_open() {
        // Behavioural check: many appends leave exactly that many lines (no re-open per write).
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path(), EventLogLimits::default()).unwrap();
        for i in 0..50 {
            let sev = if i % 10 == 0 {
                Severity::Critical
            } else {
                Severity::Warning
            };
            log.append(&EventRecord::new("e", sev, EventState::Active, "m"))
                .unwrap();
        }
        let mut s = String::new();
        File::open(dir.path().join(EVENTS_FILE))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s.lines().count(), 50);
        assert_eq!(log.current_size(), s.len() as u64);
    }

    #[test]
    fn append_latency_p99_under_10ms() {
        // Includes rotations; non-critical events (critical ones add one fdatasync).
        let dir = tempfile::tempdir().unwrap();
        let limits = EventLogLimits {
            max_file_kib: 64,
            rotated_files: 2,
        };
        let mut log = EventLog::open(dir.path(), limits).unwrap();
        let mut times = Vec::new();
        for i in 0..1000i64 {
            let rec = EventRecord::new(
                "on_battery",
                Severity::Warning,
                EventState::Active,
                "On battery",
            )
            .with_field("i", i)
            .with_field("status", "OB");
            let t = std::time::Instant::now();
            log.append(&rec).unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        assert!(
            times[989] < std::time::Duration::from_millis(10),
            "p99 {:?}",
            times[989]
        );
        assert!(dir.path().join(format!("{EVENTS_FILE}.1")).exists());
    }

    proptest::proptest! {
        #[test]
        fn any_text_yields_exactly_one_line(msg in "\\PC*|[\\x00-\\x1f\\x7f-\\u{9f}\\u{2028}\\u{2029}a\"\\\\]{0,40}", src in proptest::prelude::any::<String>()) {
            let rec = EventRecord::new("p", Severity::Info, EventState::None, &msg).with_source(&src);
            let line = rec.to_json_line().unwrap();
            proptest::prop_assert_eq!(line.matches('\n').count(), 1);
            proptest::prop_assert!(line.ends_with('\n'));
            proptest::prop_assert!(!line.trim_end_matches('\n').chars().any(is_unsafe_char));
            let back = EventRecord::from_json_line(line.as_bytes()).unwrap();
            proptest::prop_assert_eq!(&back.message, &clip(&msg, MAX_TEXT_BYTES).into_owned());
            let shown = back.display_line();
            proptest::prop_assert!(!shown.chars().any(is_unsafe_char));
        }
    }
}
