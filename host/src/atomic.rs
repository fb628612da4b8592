//! Crash-safe file replacement.
//!
//! [`write_atomic`] never leaves a half-written target: the bytes go to a fresh temporary file
//! in the *same directory* (so the final `rename` cannot cross file systems), created with
//! `O_CREAT | O_EXCL` and the final permission bits from birth (a secret is never briefly
//! world-readable), written, `fsync`ed, renamed over the target, and then the directory is
//! `fsync`ed so the rename itself survives a power cut — the one thing this program exists for.
//!
//! [`keep_backup`] copies a known-good file to its backup path with the same guarantees; the
//! config subsystem uses it so `upsguard_backup.ini` is always the last good copy.
//!
//! A target that is a symlink is replaced by a regular file (the link is not followed), which
//! is what we want for root-owned state files.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Permission bits for secrets and configuration (product §8.13: root only).
pub const MODE_PRIVATE: u32 = 0o600;

/// How many temp-file names we try before giving up (collisions need a concurrent writer
/// using the same pid and counter, so more than one retry is already paranoia).
const TEMP_ATTEMPTS: u32 = 16;

/// What went wrong, and where. Each variant names the path involved.
#[derive(Debug)]
pub enum AtomicWriteError {
    /// The target path has no file name or no usable parent directory.
    BadTarget { path: PathBuf },
    /// The temporary file could not be created next to the target.
    CreateTemp { path: PathBuf, source: io::Error },
    /// Writing, setting permissions on or syncing the temporary file failed.
    Write { path: PathBuf, source: io::Error },
    /// Renaming the temporary file over the target failed (the target is untouched).
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    /// The rename happened but the directory could not be synced, so it may not be durable.
    SyncDir { path: PathBuf, source: io::Error },
    /// The source of a backup copy could not be read.
    Read { path: PathBuf, source: io::Error },
}

impl fmt::Display for AtomicWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadTarget { path } => {
                write!(
                    f,
                    "cannot write {}: not a file path with a parent directory",
                    path.display()
                )
            }
            Self::CreateTemp { path, source } => {
                write!(
                    f,
                    "cannot create temporary file {}: {source}",
                    path.display()
                )
            }
            Self::Write { path, source } => {
                write!(
                    f,
                    "cannot write temporary file {}: {source}",
                    path.display()
                )
            }
            Self::Rename { from, to, source } => write!(
                f,
                "cannot rename {} over {}: {source} (target left unchanged)",
                from.display(),
                to.display()
            ),
            Self::SyncDir { path, source } => write!(
                f,
                "file replaced but directory {} could not be synced: {source}",
                path.display()
            ),
            Self::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for AtomicWriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BadTarget { .. } => None,
            Self::CreateTemp { source, .. }
            | Self::Write { source, .. }
            | Self::Rename { source, .. }
            | Self::SyncDir { source, .. }
            | Self::Read { source, .. } => Some(source),
        }
    }
}

/// The directory holding `path` (`.` for a bare file name) and the file name itself.
fn split_target(path: &Path) -> Result<(PathBuf, &std::ffi::OsStr), AtomicWriteError> {
    let name = path
        .file_name()
        .ok_or_else(|| AtomicWriteError::BadTarget {
            path: path.to_path_buf(),
        })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// A temp name unlikely to collide: pid, a process-wide counter and the clock.
fn temp_name(name: &std::ffi::OsStr) -> std::ffi::OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // Leading dot: editors and globs skip it; `.tmp` suffix: obvious leftovers if we crash.
    let mut s = std::ffi::OsString::from(".");
    s.push(name);
    s.push(format!(".{}.{n}.{nanos:08x}.tmp", std::process::id()));
    s
}

fn create_exclusive(path: &Path, mode: u32) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    opts.open(path)
}

/// Set the exact mode: `open` applies the umask, which may only have narrowed it, but the
/// caller asked for these bits (e.g. 0640 for a group-readable log under umask 077).
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}

/// Atomically replace `path` with `bytes`, leaving the file with permission bits `mode`.
///
/// Either the old content or the new one is at `path` afterwards, never a mixture. On error
/// the temporary file is removed (best effort). An [`AtomicWriteError::SyncDir`] error means
/// the new content is in place but its durability across a power cut is not guaranteed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AtomicWriteError> {
    let (dir, name) = split_target(path)?;
    let mut attempt = 0;
    let (tmp_path, mut file) = loop {
        let candidate = dir.join(temp_name(name));
        match create_exclusive(&candidate, mode) {
            Ok(f) => break (candidate, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt + 1 < TEMP_ATTEMPTS => {
                attempt += 1;
            }
            Err(source) => {
                return Err(AtomicWriteError::CreateTemp {
                    path: candidate,
                    source,
                });
            }
        }
    };

    let written = set_mode(&file, mode)
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp_path);
        return Err(AtomicWriteError::Write {
            path: tmp_path,
            source,
        });
    }

    if let Err(source) = fs::rename(&tmp_path, path) {
        let _ = fs::remove_file(&tmp_path);
        return Err(AtomicWriteError::Rename {
            from: tmp_path,
            to: path.to_path_buf(),
            source,
        });
    }

    sync_dir(&dir)
}

fn sync_dir(dir: &Path) -> Result<(), AtomicWriteError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| AtomicWriteError::SyncDir {
                path: dir.to_path_buf(),
                source,
            })
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened for syncing on Windows; rename is already durable there.
        let _ = dir;
        Ok(())
    }
}

/// Make `backup_path` an exact, durable copy of the (known-good) file at `path`, with
/// permission bits `mode`. Used after a file has been verified good, so the backup is always
/// the last good copy. The previous backup survives if anything fails.
pub fn keep_backup(path: &Path, backup_path: &Path, mode: u32) -> Result<(), AtomicWriteError> {
    let bytes = fs::read(path).map_err(|source| AtomicWriteError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(backup_path, &bytes, mode)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode_of(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn creates_new_file_with_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.ini");
        write_atomic(&p, b"hello", MODE_PRIVATE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn replaces_existing_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.ini");
        fs::write(&p, b"old content that is longer").unwrap();
        write_atomic(&p, b"new", MODE_PRIVATE).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert!(leftovers(d.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn sets_exact_mode_even_over_a_wider_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secret");
        fs::write(&p, b"x").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"y", MODE_PRIVATE).unwrap();
        assert_eq!(mode_of(&p), 0o600);
        write_atomic(&p, b"z", 0o640).unwrap();
        assert_eq!(mode_of(&p), 0o640);
    }

    #[cfg(unix)]
    #[test]
    fn replaces_symlink_instead_of_following_it() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, b"keep me").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_atomic(&link, b"new", MODE_PRIVATE).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep me");
        assert!(
            !fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&link).unwrap(), b"new");
    }

    #[test]
    fn missing_directory_is_a_clear_error_and_nothing_is_written() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no/such/dir/a.ini");
        let e = write_atomic(&p, b"x", MODE_PRIVATE).unwrap_err();
        assert!(matches!(e, AtomicWriteError::CreateTemp { .. }), "{e:?}");
        assert!(e.to_string().contains("cannot create temporary file"));
    }

    #[test]
    fn rename_failure_leaves_target_and_no_temp() {
        let d = tempfile::tempdir().unwrap();
        // A non-empty directory cannot be replaced by a file.
        let p = d.path().join("dir");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("inner"), b"x").unwrap();
        let e = write_atomic(&p, b"x", MODE_PRIVATE).unwrap_err();
        assert!(matches!(e, AtomicWriteError::Rename { .. }), "{e:?}");
        assert!(p.is_dir());
        assert!(leftovers(d.path()).is_empty());
    }

    #[test]
    fn bad_target_is_rejected() {
        let e = write_atomic(Path::new("/"), b"x", MODE_PRIVATE).unwrap_err();
        assert!(matches!(e, AtomicWriteError::BadTarget { .. }));
    }

    #[test]
    fn bare_file_name_uses_current_directory_semantics() {
        let (dir, name) = split_target(Path::new("x.ini")).unwrap();
        assert_eq!(dir, PathBuf::from("."));
        assert_eq!(name, "x.ini");
    }

    #[cfg(unix)]
    #[test]
    fn keep_backup_copies_with_mode() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("m.ini");
        let bak = d.path().join("m_backup.ini");
        fs::write(&main, b"good").unwrap();
        fs::write(&bak, b"stale").unwrap();
        keep_backup(&main, &bak, MODE_PRIVATE).unwrap();
        assert_eq!(fs::read(&bak).unwrap(), b"good");
        assert_eq!(mode_of(&bak), 0o600);
    }

    #[test]
    fn keep_backup_of_missing_source_keeps_old_backup() {
        let d = tempfile::tempdir().unwrap();
        let bak = d.path().join("b");
        fs::write(&bak, b"old").unwrap();
        let e = keep_backup(&d.path().join("missing"), &bak, MODE_PRIVATE).unwrap_err();
        assert!(matches!(e, AtomicWriteError::Read { .. }));
        assert_eq!(fs::read(&bak).unwrap(), b"old");
    }
}
