//! Data log: periodic UPS measurements as CSV in `<data-dir>/datalog.csv`, bounded by size with
//! a rename-chain rotation (`datalog.csv.1` newest … `.N` oldest), plus a long-term hourly file.
//!
//! Raw format (`\n` line ends, one header line at the top of every file, empty cell = unknown):
//!
//! ```text
//! ts,input_v,output_v,freq_hz,load_pct,charge_pct,battery_v,runtime_s,temp_c
//! 2026-11-27T22:07:30Z,230.4,230.4,50,23.5,100,27.1,2460,31.5
//! ```
//!
//! Timestamps are ISO-8601 UTC (seconds); numbers use Rust's own formatting, which is
//! locale-independent (always `.`, never exponent notation), rounded to 3 decimals.
//!
//! Downsampling (long-term retention): when a rotation would delete the oldest raw file
//! (`datalog.csv.N`), its samples are first aggregated per UTC hour and appended to
//! `datalog_hourly.csv`:
//!
//! ```text
//! hour,samples,input_v_min,input_v_avg,input_v_max,…,temp_c_min,temp_c_avg,temp_c_max
//! 2026-11-27T22:00:00Z,360,228.1,230.2,231.9,…
//! ```
//!
//! So raw data covers the most recent window at full resolution and hourly min/avg/max covers
//! everything older, with no overlap except an hour that straddles two raw files: that hour is
//! aggregated twice (once per file) and [`DataLog::read_hourly`] merges adjacent rows of the
//! same hour (min of mins, max of maxes, averages weighted by sample count — exact unless a
//! metric was missing from only some samples). The hourly file is itself bounded
//! (`hourly_max_kib`); when full it is renamed to `datalog_hourly.csv.1`, replacing the previous
//! one, so the total footprint is fixed (the default 4 MiB holds about two years of hours).
//!
//! Garbage lines (torn by a crash, edited by hand) are skipped and counted on read.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::eventlog::{
    MAX_READ_LINE_BYTES, ensure_private_dir, files_oldest_first, for_each_line,
    open_append_private, open_read_nofollow, repair_tail, rotate_chain, rotated_path, sync_dir,
};

/// Live raw data file name.
pub const DATALOG_FILE: &str = "datalog.csv";
/// Hourly (downsampled) file name.
pub const HOURLY_FILE: &str = "datalog_hourly.csv";

/// Metric column names, in file order.
pub const METRICS: [&str; 8] = [
    "input_v",
    "output_v",
    "freq_hz",
    "load_pct",
    "charge_pct",
    "battery_v",
    "runtime_s",
    "temp_c",
];

/// One measurement. `None` = not available from this UPS / not read this time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was taken (stored as UTC, whole seconds).
    pub ts: OffsetDateTime,
    /// Input (mains) voltage, V.
    pub input_v: Option<f64>,
    /// Output voltage, V.
    pub output_v: Option<f64>,
    /// Output frequency, Hz.
    pub freq_hz: Option<f64>,
    /// Load, % of capacity.
    pub load_pct: Option<f64>,
    /// Battery charge, %.
    pub charge_pct: Option<f64>,
    /// Battery voltage, V.
    pub battery_v: Option<f64>,
    /// Estimated runtime, seconds.
    pub runtime_s: Option<u32>,
    /// Internal temperature, °C.
    pub temp_c: Option<f64>,
}

impl Sample {
    /// A sample with only a timestamp.
    pub fn empty(ts: OffsetDateTime) -> Self {
        Sample {
            ts,
            input_v: None,
            output_v: None,
            freq_hz: None,
            load_pct: None,
            charge_pct: None,
            battery_v: None,
            runtime_s: None,
            temp_c: None,
        }
    }

    fn values(&self) -> [Option<f64>; 8] {
        [
            self.input_v,
            self.output_v,
            self.freq_hz,
            self.load_pct,
            self.charge_pct,
            self.battery_v,
            self.runtime_s.map(f64::from),
            self.temp_c,
        ]
        .map(|v| v.filter(|f| f.is_finite()))
    }

    /// The CSV line (with `\n`) as written to the data log.
    pub fn to_csv_line(&self) -> String {
        let mut line = format_ts(self.ts);
        for (i, v) in self.values().iter().enumerate() {
            line.push(',');
            if let Some(v) = v {
                if i == 6 {
                    // runtime_s is an integer column
                    let _ = write!(line, "{}", *v as u32);
                } else {
                    line.push_str(&format_num(*v));
                }
            }
        }
        line.push('\n');
        line
    }

    /// Parses one data line; `None` for headers and garbage.
    pub fn from_csv_line(line: &str) -> Option<Self> {
        let mut cells = line.split(',');
        let ts = parse_ts(cells.next()?)?;
        let mut vals = [None; 8];
        for v in vals.iter_mut() {
            *v = parse_cell(cells.next()?)?;
        }
        if cells.next().is_some() {
            return None;
        }
        let [
            input_v,
            output_v,
            freq_hz,
            load_pct,
            charge_pct,
            battery_v,
            runtime,
            temp_c,
        ] = vals;
        let runtime_s = match runtime {
            None => None,
            Some(r) if r >= 0.0 && r <= f64::from(u32::MAX) && r.fract() == 0.0 => Some(r as u32),
            Some(_) => return None,
        };
        Some(Sample {
            ts,
            input_v,
            output_v,
            freq_hz,
            load_pct,
            charge_pct,
            battery_v,
            runtime_s,
            temp_c,
        })
    }
}

/// min / avg / max of one metric over an hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// Minimum.
    pub min: f64,
    /// Mean.
    pub avg: f64,
    /// Maximum.
    pub max: f64,
}

/// One downsampled hour.
#[derive(Debug, Clone, PartialEq)]
pub struct HourlyRow {
    /// Start of the hour (UTC).
    pub hour: OffsetDateTime,
    /// Number of raw samples aggregated.
    pub samples: u32,
    /// Per metric, in [`METRICS`] order; `None` when no sample had it.
    pub stats: [Option<Stat>; 8],
}

impl HourlyRow {
    /// Stat of a metric by name (see [`METRICS`]).
    pub fn stat(&self, metric: &str) -> Option<Stat> {
        let i = METRICS.iter().position(|m| *m == metric)?;
        self.stats.get(i).copied().flatten()
    }

    fn to_csv_line(&self) -> String {
        let mut line = format_ts(self.hour);
        let _ = write!(line, ",{}", self.samples);
        for s in &self.stats {
            match s {
                Some(s) => {
                    let _ = write!(
                        line,
                        ",{},{},{}",
                        format_num(s.min),
                        format_num(s.avg),
                        format_num(s.max)
                    );
                }
                None => line.push_str(",,,"),
            }
        }
        line.push('\n');
        line
    }

    fn from_csv_line(line: &str) -> Option<Self> {
        let mut cells = line.split(',');
        let hour = parse_ts(cells.next()?)?;
        let samples: u32 = cells.next()?.parse().ok()?;
        let mut stats = [None; 8];
        for s in stats.iter_mut() {
            let (a, b, c) = (
                parse_cell(cells.next()?)?,
                parse_cell(cells.next()?)?,
                parse_cell(cells.next()?)?,
            );
            *s = match (a, b, c) {
                (Some(min), Some(avg), Some(max)) => Some(Stat { min, avg, max }),
                (None, None, None) => None,
                _ => return None,
            };
        }
        if cells.next().is_some() || samples == 0 {
            return None;
        }
        Some(HourlyRow {
            hour,
            samples,
            stats,
        })
    }

    /// Folds `other` (same hour) into `self`.
    fn merge(&mut self, other: &HourlyRow) {
        let (n1, n2) = (f64::from(self.samples), f64::from(other.samples));
        for (a, b) in self.stats.iter_mut().zip(other.stats.iter()) {
            *a = match (*a, *b) {
                (Some(x), Some(y)) => Some(Stat {
                    min: x.min.min(y.min),
                    max: x.max.max(y.max),
                    avg: (x.avg * n1 + y.avg * n2) / (n1 + n2),
                }),
                (x, None) => x,
                (None, y) => y,
            };
        }
        self.samples = self.samples.saturating_add(other.samples);
    }
}

/// Size bounds of the data log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLogLimits {
    /// Rotate when the live raw file would exceed this many KiB.
    pub max_file_kib: u32,
    /// How many rotated raw files are kept before downsampling.
    pub rotated_files: u32,
    /// Size bound of the hourly file (one rotated copy is kept beside it).
    pub hourly_max_kib: u32,
}

impl DataLogLimits {
    /// Retention floor (anti-forensics, §6): [`DataLog::open`] never goes below it.
    pub const FLOOR: DataLogLimits = DataLogLimits {
        max_file_kib: 16,
        rotated_files: 1,
        hourly_max_kib: 64,
    };

    /// Raises each bound to at least [`Self::FLOOR`] and caps absurd values.
    pub fn clamped(self) -> Self {
        DataLogLimits {
            max_file_kib: self
                .max_file_kib
                .clamp(Self::FLOOR.max_file_kib, 1024 * 1024),
            rotated_files: self.rotated_files.clamp(Self::FLOOR.rotated_files, 999),
            hourly_max_kib: self
                .hourly_max_kib
                .clamp(Self::FLOOR.hourly_max_kib, 1024 * 1024),
        }
    }
}

impl Default for DataLogLimits {
    /// 1 MiB × (1 + 7) raw files (≈ 3 weeks at one sample a minute), then 4 MiB of hours.
    fn default() -> Self {
        DataLogLimits {
            max_file_kib: 1024,
            rotated_files: 7,
            hourly_max_kib: 4096,
        }
    }
}

/// Time window for reads: `since` inclusive, `until` exclusive; `None` = unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive lower bound.
    pub since: Option<OffsetDateTime>,
    /// Exclusive upper bound.
    pub until: Option<OffsetDateTime>,
}

impl TimeRange {
    fn contains(&self, t: OffsetDateTime) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// Rows read plus the number of unreadable lines skipped.
#[derive(Debug, Clone, Default)]
pub struct DataReadOutcome<T> {
    /// Matching rows, oldest first.
    pub rows: Vec<T>,
    /// Lines that did not parse.
    pub skipped: usize,
}

/// The data log writer.
#[derive(Debug)]
pub struct DataLog {
    dir: PathBuf,
    file: File,
    size: u64,
    limits: DataLogLimits,
}

impl DataLog {
    /// Opens (creating with a header if needed) `<dir>/datalog.csv`; dir 0700, file 0600.
    pub fn open(dir: &Path, limits: DataLogLimits) -> io::Result<DataLog> {
        ensure_private_dir(dir)?;
        let (file, size) = open_with_header(&dir.join(DATALOG_FILE), &raw_header())?;
        Ok(DataLog {
            dir: dir.to_path_buf(),
            file,
            size,
            limits: limits.clamped(),
        })
    }

    /// The limits in force (after clamping to the floor).
    pub fn limits(&self) -> DataLogLimits {
        self.limits
    }

    /// Changes the limits; takes effect at the next append.
    pub fn set_limits(&mut self, limits: DataLogLimits) {
        self.limits = limits.clamped();
    }

    /// Appends one sample (one `write(2)`, no fsync: losing the last samples in a crash is fine).
    /// Rotation failures are logged and the sample is written anyway.
    pub fn append(&mut self, sample: &Sample) -> io::Result<()> {
        let line = sample.to_csv_line();
        let len = line.len() as u64;
        let max = u64::from(self.limits.max_file_kib) * 1024;
        if self.size.saturating_add(len) > max
            && let Err(e) = self.rotate()
        {
            tracing::warn!(error = %e, "data log rotation failed; appending to current file");
        }
        self.file.write_all(line.as_bytes())?;
        self.size = self.size.saturating_add(len);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let n = self.limits.rotated_files;
        // Files about to be deleted: `.n` and any surplus left by a larger former limit.
        let mut doomed = Vec::new();
        let mut k = n.max(1);
        while rotated_path(&self.dir, DATALOG_FILE, k).exists() {
            doomed.push(rotated_path(&self.dir, DATALOG_FILE, k));
            k += 1;
        }
        for path in doomed.iter().rev() {
            // Downsampling failure must not block rotation: the size bound wins.
            if let Err(e) = downsample_file(&self.dir, path, self.limits.hourly_max_kib) {
                tracing::warn!(error = %e, "data log downsampling failed");
            }
        }
        rotate_chain(&self.dir, DATALOG_FILE, n)?;
        let current = self.dir.join(DATALOG_FILE);
        match fs::rename(&current, rotated_path(&self.dir, DATALOG_FILE, 1)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (file, size) = open_with_header(&current, &raw_header())?;
        sync_dir(&self.dir);
        self.file = file;
        self.size = size;
        Ok(())
    }

    /// Raw samples in `range`, oldest first; with `limit`, the newest `limit` of them.
    pub fn read(
        &self,
        range: TimeRange,
        limit: Option<usize>,
    ) -> io::Result<DataReadOutcome<Sample>> {
        Self::read_dir(&self.dir, range, limit)
    }

    /// Like [`DataLog::read`], without a writer (CLI).
    pub fn read_dir(
        dir: &Path,
        range: TimeRange,
        limit: Option<usize>,
    ) -> io::Result<DataReadOutcome<Sample>> {
        read_rows(
            &files_oldest_first(dir, DATALOG_FILE),
            |l| Sample::from_csv_line(l).map(|s| Some(s).filter(|s| range.contains(s.ts))),
            limit,
        )
    }

    /// Downsampled hours in `range` (by hour start), oldest first, same-hour rows merged.
    pub fn read_hourly(
        &self,
        range: TimeRange,
        limit: Option<usize>,
    ) -> io::Result<DataReadOutcome<HourlyRow>> {
        Self::read_hourly_dir(&self.dir, range, limit)
    }

    /// Like [`DataLog::read_hourly`], without a writer.
    pub fn read_hourly_dir(
        dir: &Path,
        range: TimeRange,
        limit: Option<usize>,
    ) -> io::Result<DataReadOutcome<HourlyRow>> {
        let files = [rotated_path(dir, HOURLY_FILE, 1), dir.join(HOURLY_FILE)];
        let mut out = read_rows(
            &files,
            |l| HourlyRow::from_csv_line(l).map(|h| Some(h).filter(|h| range.contains(h.hour))),
            None,
        )?;
        let mut merged: Vec<HourlyRow> = Vec::with_capacity(out.rows.len());
        for row in out.rows.drain(..) {
            match merged.last_mut() {
                Some(last) if last.hour == row.hour => last.merge(&row),
                _ => merged.push(row),
            }
        }
        if let Some(l) = limit {
            let excess = merged.len().saturating_sub(l);
            merged.drain(..excess);
        }
        out.rows = merged;
        Ok(out)
    }
}

/// CSV export of raw samples (same format as the file, one header).
pub fn samples_to_csv(samples: &[Sample]) -> String {
    let mut out = raw_header();
    for s in samples {
        out.push_str(&s.to_csv_line());
    }
    out
}

/// CSV export of hourly rows (same format as the hourly file).
pub fn hourly_to_csv(rows: &[HourlyRow]) -> String {
    let mut out = hourly_header();
    for r in rows {
        out.push_str(&r.to_csv_line());
    }
    out
}

fn raw_header() -> String {
    let mut h = String::from("ts");
    for m in METRICS {
        h.push(',');
        h.push_str(m);
    }
    h.push('\n');
    h
}

fn hourly_header() -> String {
    let mut h = String::from("hour,samples");
    for m in METRICS {
        let _ = write!(h, ",{m}_min,{m}_avg,{m}_max");
    }
    h.push('\n');
    h
}

/// Opens for append; writes `header` into a new/empty file. Returns the file and its size.
fn open_with_header(path: &Path, header: &str) -> io::Result<(File, u64)> {
    let mut file = open_append_private(path)?;
    let mut size = repair_tail(&mut file)?;
    if size == 0 {
        file.write_all(header.as_bytes())?;
        size = header.len() as u64;
    }
    Ok((file, size))
}

/// Reads lines of `files` in order; `parse` gives `None` for garbage (counted), `Some(None)`
/// for a valid row outside the wanted range, `Some(Some(row))` to keep. Header lines and blank
/// lines are ignored.
fn read_rows<T>(
    files: &[PathBuf],
    mut parse: impl FnMut(&str) -> Option<Option<T>>,
    limit: Option<usize>,
) -> io::Result<DataReadOutcome<T>> {
    let mut rows: VecDeque<T> = VecDeque::new();
    let mut skipped = 0usize;
    for path in files {
        let file = match open_read_nofollow(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for_each_line(BufReader::new(file), MAX_READ_LINE_BYTES, |line| {
            let Some(line) = line else {
                skipped += 1;
                return;
            };
            let Ok(line) = std::str::from_utf8(line) else {
                skipped += 1;
                return;
            };
            if line.trim().is_empty() || line.starts_with("ts,") || line.starts_with("hour,") {
                return;
            }
            match parse(line) {
                Some(Some(row)) => {
                    rows.push_back(row);
                    if limit.is_some_and(|l| rows.len() > l) {
                        rows.pop_front();
                    }
                }
                Some(None) => {}
                None => skipped += 1,
            }
        })?;
    }
    Ok(DataReadOutcome {
        rows: rows.into(),
        skipped,
    })
}

#[derive(Debug, Clone, Copy)]
struct Acc {
    n: u32,
    min: f64,
    max: f64,
    sum: f64,
}

/// Aggregates one raw file per UTC hour and appends the rows to the hourly file.
fn downsample_file(dir: &Path, raw: &Path, hourly_max_kib: u32) -> io::Result<()> {
    // Streamed: only the per-hour accumulators are held, never the file's samples.
    let mut agg = HourlyAggregator::default();
    read_rows::<()>(
        &[raw.to_path_buf()],
        |l| {
            let s = Sample::from_csv_line(l)?;
            agg.add(&s);
            Some(None)
        },
        None,
    )?;
    let rows = agg.finish();
    if rows.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for r in &rows {
        text.push_str(&r.to_csv_line());
    }
    let path = dir.join(HOURLY_FILE);
    let (mut file, size) = open_with_header(&path, &hourly_header())?;
    if size > hourly_header().len() as u64
        && size.saturating_add(text.len() as u64) > u64::from(hourly_max_kib) * 1024
    {
        drop(file);
        fs::rename(&path, rotated_path(dir, HOURLY_FILE, 1))?;
        file = open_with_header(&path, &hourly_header())?.0;
    }
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// Per-UTC-hour min/sum/max accumulators.
#[derive(Debug, Default)]
pub struct HourlyAggregator {
    hours: BTreeMap<i64, (u32, [Option<Acc>; 8])>,
}

impl HourlyAggregator {
    /// Adds one sample to its hour.
    pub fn add(&mut self, s: &Sample) {
        let key = s.ts.unix_timestamp().div_euclid(3600);
        let entry = self.hours.entry(key).or_insert((0, [None; 8]));
        entry.0 = entry.0.saturating_add(1);
        for (acc, v) in entry.1.iter_mut().zip(s.values()) {
            let Some(v) = v else { continue };
            *acc = Some(match *acc {
                None => Acc {
                    n: 1,
                    min: v,
                    max: v,
                    sum: v,
                },
                Some(a) => Acc {
                    n: a.n.saturating_add(1),
                    min: a.min.min(v),
                    max: a.max.max(v),
                    sum: a.sum + v,
                },
            });
        }
    }

    /// The hourly rows, sorted by hour.
    pub fn finish(self) -> Vec<HourlyRow> {
        self.hours
            .into_iter()
            .filter_map(|(key, (samples, accs))| {
                let hour = OffsetDateTime::from_unix_timestamp(key.checked_mul(3600)?).ok()?;
                Some(HourlyRow {
                    hour,
                    samples,
                    stats: accs.map(|a| {
                        a.map(|a| Stat {
                            min: a.min,
                            avg: a.sum / f64::from(a.n),
                            max: a.max,
                        })
                    }),
                })
            })
            .collect()
    }
}

/// Groups samples by UTC hour (sorted by hour) into min/avg/max rows.
pub fn aggregate_hourly(samples: &[Sample]) -> Vec<HourlyRow> {
    let mut agg = HourlyAggregator::default();
    for s in samples {
        agg.add(s);
    }
    agg.finish()
}

/// `2026-11-27T22:07:30Z` (UTC, whole seconds).
pub fn format_ts(ts: OffsetDateTime) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    ts.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| String::from("0000-00-00T00:00:00Z"))
}

fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Locale-independent: Rust's float formatting always uses `.`, never exponents. Rounded to 3
/// decimals with trailing zeros dropped (`50`, `230.4`, `27.125`).
fn format_num(v: f64) -> String {
    let mut s = format!("{v:.3}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    if s == "-0" {
        s = String::from("0");
    }
    s
}

/// Empty → `Some(None)`; finite number → `Some(Some(v))`; anything else → `None` (garbage).
fn parse_cell(s: &str) -> Option<Option<f64>> {
    if s.is_empty() {
        return Some(None);
    }
    // Only plain decimals: reject "inf", "NaN", "1e5", "0x10" and locale commas alike.
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(Some(v))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample(ts: OffsetDateTime, v: f64) -> Sample {
        Sample {
            ts,
            input_v: Some(v),
            output_v: Some(230.0),
            freq_hz: Some(50.0),
            load_pct: Some(23.5),
            charge_pct: Some(100.0),
            battery_v: Some(27.125),
            runtime_s: Some(2460),
            temp_c: None,
        }
    }

    #[test]
    fn line_format_timestamp_and_decimals() {
        let s = Sample {
            ts: datetime!(2026-11-28 07:07:30.75 +09:00),
            input_v: Some(230.4),
            output_v: Some(1.0 / 3.0),
            freq_hz: Some(50.0),
            load_pct: Some(-0.0001),
            charge_pct: Some(1e21),
            battery_v: Some(f64::NAN),
            runtime_s: Some(2460),
            temp_c: None,
        };
        assert_eq!(
            s.to_csv_line(),
            "2026-11-27T22:07:30Z,230.4,0.333,50,0,1000000000000000000000,,2460,\n"
        );
        let back = Sample::from_csv_line(s.to_csv_line().trim_end()).unwrap();
        assert_eq!(back.ts, datetime!(2026-11-27 22:07:30 UTC));
        assert_eq!(back.output_v, Some(0.333));
        assert_eq!(back.battery_v, None);
        assert_eq!(back.runtime_s, Some(2460));
    }

    #[test]
    fn file_has_header_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = DataLog::open(dir.path(), DataLogLimits::default()).unwrap();
        let t = datetime!(2026-01-01 0:00 UTC);
        let samples: Vec<Sample> = (0..5)
            .map(|i| sample(t + time::Duration::minutes(i), 230.0 + i as f64))
            .collect();
        for s in &samples {
            log.append(s).unwrap();
        }
        drop(log);
        // Reopening must not write a second header.
        let log = DataLog::open(dir.path(), DataLogLimits::default()).unwrap();
        let text = fs::read_to_string(dir.path().join(DATALOG_FILE)).unwrap();
        assert!(text.starts_with(
            "ts,input_v,output_v,freq_hz,load_pct,charge_pct,battery_v,runtime_s,temp_c\n\
             2026-01-01T00:00:00Z,230,230,50,23.5,100,27.125,2460,\n"
        ));
        assert_eq!(text.matches("ts,").count(), 1);
        let out = log.read(TimeRange::default(), None).unwrap();
        assert_eq!(out.skipped, 0);
        assert_eq!(out.rows, samples);
        assert_eq!(samples_to_csv(&out.rows), text);

        let out = log
            .read(
                TimeRange {
                    since: Some(t + time::Duration::minutes(1)),
                    until: Some(t + time::Duration::minutes(4)),
                },
                Some(2),
            )
            .unwrap();
        assert_eq!(out.rows, samples[2..4].to_vec());
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let good = sample(datetime!(2026-01-01 0:00 UTC), 231.0);
        let mut text = raw_header();
        text.push_str(&good.to_csv_line());
        text.push_str("garbage\n2026-01-01T00:01:00Z,230,5,50\n");
        text.push_str("2026-01-01T00:01:00Z,23o,,,,,,,\n");
        text.push_str("2026-01-01T00:01:00Z,230;5,,,,,,,\n");
        text.push_str("2026-01-01T00:01:00Z,inf,,,,,,,\n");
        text.push_str("2026-01-01T00:01:00Z,,,,,,,-5,\n");
        text.push_str("2026-01-01T00:01:00Z,,,,,,,,,\n");
        text.push_str("\u{ff}\n\n2026-01-01T00:02:00Z,230,2");
        fs::write(dir.path().join(DATALOG_FILE), text).unwrap();
        let out = DataLog::read_dir(dir.path(), TimeRange::default(), None).unwrap();
        assert_eq!(out.rows, vec![good]);
        assert_eq!(out.skipped, 9);
        // A writer opened over a torn tail starts a new line.
        let mut log = DataLog::open(dir.path(), DataLogLimits::default()).unwrap();
        let next = sample(datetime!(2026-01-01 0:03 UTC), 229.0);
        log.append(&next).unwrap();
        let out = log.read(TimeRange::default(), None).unwrap();
        assert_eq!(out.rows, vec![good, next]);
    }

    #[test]
    fn rotation_bounds_and_downsampling() {
        let dir = tempfile::tempdir().unwrap();
        let limits = DataLogLimits {
            max_file_kib: 16,
            rotated_files: 2,
            hourly_max_kib: 64,
        };
        let mut log = DataLog::open(dir.path(), limits).unwrap();
        let t0 = datetime!(2026-01-01 0:00 UTC);
        // One sample a minute for 30 hours (~60 bytes each → 108 KiB of raw data).
        let total = 30 * 60;
        for i in 0..total {
            let v = 200.0 + f64::from(i % 60);
            log.append(&sample(t0 + time::Duration::minutes(i64::from(i)), v))
                .unwrap();
        }
        for name in ["datalog.csv", "datalog.csv.1", "datalog.csv.2"] {
            let len = fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(len <= 16 * 1024, "{name}: {len}");
            let text = fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.starts_with("ts,"), "{name} lacks header");
        }
        assert!(!dir.path().join("datalog.csv.3").exists());

        let raw = log.read(TimeRange::default(), None).unwrap();
        let hourly = log.read_hourly(TimeRange::default(), None).unwrap();
        assert_eq!(raw.skipped + hourly.skipped, 0);
        let first_raw = raw.rows.first().unwrap().ts;
        assert_eq!(
            raw.rows.last().unwrap().ts,
            t0 + time::Duration::minutes(total as i64 - 1)
        );

        // Hours are contiguous from the start up to the raw window, merged across files.
        assert!(!hourly.rows.is_empty());
        assert_eq!(hourly.rows[0].hour, t0);
        for (i, h) in hourly.rows.iter().enumerate() {
            assert_eq!(h.hour, t0 + time::Duration::hours(i as i64));
            assert!(h.hour <= first_raw);
        }
        let full = &hourly.rows[0];
        assert_eq!(full.samples, 60);
        let st = full.stat("input_v").unwrap();
        assert_eq!((st.min, st.avg, st.max), (200.0, 229.5, 259.0));
        assert_eq!(full.stat("temp_c"), None);
        assert_eq!(full.stat("runtime_s").unwrap().avg, 2460.0);

        // Every sample is accounted for: in raw data or in an hourly row.
        let in_hours: u32 = hourly.rows.iter().map(|h| h.samples).sum();
        assert_eq!(in_hours as usize + raw.rows.len(), total as usize);

        let csv = hourly_to_csv(&hourly.rows);
        assert!(csv.starts_with("hour,samples,input_v_min,input_v_avg,input_v_max,output_v_min"));
        assert!(csv.contains("\n2026-01-01T00:00:00Z,60,200,229.5,259,230,230,230,"));
    }

    #[test]
    fn hourly_rows_of_same_hour_merge() {
        let t = datetime!(2026-01-01 5:00 UTC);
        let a: Vec<Sample> = (0..3)
            .map(|i| sample(t + time::Duration::minutes(i), 10.0 * (i + 1) as f64))
            .collect();
        let b: Vec<Sample> = (3..4)
            .map(|i| sample(t + time::Duration::minutes(i), 50.0))
            .collect();
        let mut ra = aggregate_hourly(&a).remove(0);
        let rb = aggregate_hourly(&b).remove(0);
        ra.merge(&rb);
        assert_eq!(ra.samples, 4);
        let st = ra.stat("input_v").unwrap();
        assert_eq!((st.min, st.avg, st.max), (10.0, 27.5, 50.0));
        let line = ra.to_csv_line();
        assert_eq!(HourlyRow::from_csv_line(line.trim_end()), Some(ra));
    }

    #[test]
    fn hourly_file_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = datetime!(2026-01-01 0:00 UTC);
        // Feed many hours straight through downsample_file.
        for chunk in 0..40 {
            let raw = dir.path().join("raw.csv");
            let mut text = raw_header();
            for h in 0..50 {
                let ts = t0 + time::Duration::hours(chunk * 50 + h);
                text.push_str(&sample(ts, 230.0).to_csv_line());
            }
            fs::write(&raw, text).unwrap();
            downsample_file(dir.path(), &raw, 64).unwrap();
        }
        let main = fs::metadata(dir.path().join(HOURLY_FILE)).unwrap().len();
        let old = fs::metadata(rotated_path(dir.path(), HOURLY_FILE, 1))
            .unwrap()
            .len();
        assert!(main <= 64 * 1024 && old <= 64 * 1024);
        let rows = DataLog::read_hourly_dir(dir.path(), TimeRange::default(), Some(10)).unwrap();
        assert_eq!(rows.rows.len(), 10);
        assert_eq!(rows.rows[9].hour, t0 + time::Duration::hours(40 * 50 - 1));
    }

    #[test]
    fn format_num_cases() {
        assert_eq!(format_num(50.0), "50");
        assert_eq!(format_num(230.4), "230.4");
        assert_eq!(format_num(-12.5), "-12.5");
        assert_eq!(format_num(0.0004), "0");
        assert_eq!(format_num(27.1256), "27.126");
    }
}
