//! Who may own the files the service trusts, and private directories (product §8.13).
//!
//! A configuration file, data directory or `tls/` folder that someone else can write lets that
//! someone rewrite the OS shutdown command, swap the TLS key or delete the credential store.
//! Such a file is refused (the caller falls back to safe defaults and says so); a file that is
//! merely readable by others is only warned about elsewhere, as that leaks but cannot be used
//! to take over the service.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file or folder the service would not use, with what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub path: PathBuf,
    /// Owner uid.
    pub uid: u32,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Which rule it broke, as a sentence fragment.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} refused: {} (owner uid {}, mode {:04o})",
            self.path.display(),
            self.reason,
            self.uid,
            self.mode
        )
    }
}

impl std::error::Error for Refusal {}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Root can change anything anyway, so root-owned files are as trusted as our own.
fn owner_trusted(uid: u32) -> bool {
    uid == 0 || uid == euid()
}

fn refusal(path: &Path, md: &fs::Metadata, reason: String) -> Refusal {
    Refusal {
        path: path.to_path_buf(),
        uid: md.uid(),
        mode: md.mode() & 0o7777,
        reason,
    }
}

fn check_owner(path: &Path, md: &fs::Metadata) -> Result<(), Refusal> {
    if !owner_trusted(md.uid()) {
        return Err(refusal(
            path,
            md,
            format!(
                "it is owned by uid {}, not by root or the service (uid {})",
                md.uid(),
                euid()
            ),
        ));
    }
    Ok(())
}

fn check_owner_and_write_bits(path: &Path, md: &fs::Metadata) -> Result<(), Refusal> {
    let mode = md.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refusal(
            path,
            md,
            "it is writable by group or others (chmod go-w)".into(),
        ));
    }
    check_owner(path, md)
}

/// A configuration file (already opened; `md` from the open descriptor): a regular file that
/// only root or the service can write.
pub fn check_trusted_file(path: &Path, md: &fs::Metadata) -> Result<(), Refusal> {
    if !md.is_file() {
        return Err(refusal(path, md, "it is not a regular file".into()));
    }
    check_owner_and_write_bits(path, md)
}

/// A folder whose contents the service trusts (data dir, `tls/`): a directory that only
/// root or the service can write. Follows a symlink: the folder it names is what counts.
pub fn check_trusted_dir(path: &Path) -> Result<(), Refusal> {
    let md = fs::metadata(path).map_err(|e| Refusal {
        path: path.to_path_buf(),
        uid: 0,
        mode: 0,
        reason: format!("it cannot be inspected: {e}"),
    })?;
    if !md.is_dir() {
        return Err(refusal(path, &md, "it is not a directory".into()));
    }
    check_owner_and_write_bits(path, &md)
}

/// A private key (`md` from `symlink_metadata` or the open descriptor): a regular file, not a
/// symlink, mode 0600 or 0400 (no group/other bits), owned by root or the service.
pub fn check_secret_file(path: &Path, md: &fs::Metadata) -> Result<(), Refusal> {
    if md.file_type().is_symlink() {
        return Err(refusal(path, md, "it is a symbolic link".into()));
    }
    if !md.is_file() {
        return Err(refusal(path, md, "it is not a regular file".into()));
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refusal(
            path,
            md,
            "group or others have access to it; a private key must be 0600 (chmod 600)".into(),
        ));
    }
    check_owner(path, md)
}

/// The data directory, before anything in it is used: a missing one is fine (it is created
/// 0700), an existing one must pass [`check_trusted_dir`].
pub fn check_data_dir(path: &Path) -> Result<(), Refusal> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => check_trusted_dir(path),
    }
}

/// Create `path` (0700) or accept an existing directory that is ours and closed to group
/// and others. For directories the service makes up itself, where anything else means
/// someone prepared it for us.
pub fn ensure_private_dir(path: &Path) -> Result<(), String> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
    }
    let md = fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !md.is_dir() {
        return Err(format!(
            "{} exists and is not a directory; remove it",
            path.display()
        ));
    }
    if md.uid() != euid() || md.mode() & 0o077 != 0 {
        return Err(format!(
            "{} exists but is not private to uid {} (owner uid {}, mode {:04o}); remove it or choose another directory",
            path.display(),
            euid(),
            md.uid(),
            md.mode() & 0o7777
        ));
    }
    Ok(())
}

/// A new directory with an unpredictable name (`mkdtemp`, 0700) under `parent`.
pub fn fresh_private_dir(parent: &Path, prefix: &str) -> Result<PathBuf, String> {
    let template = parent.join(format!("{prefix}XXXXXX"));
    let dir = nix::unistd::mkdtemp(&template)
        .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?;
    // mkdtemp already uses 0700; make it explicit in case of an odd libc.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
    Ok(dir)
}

/// `$XDG_RUNTIME_DIR` when it is set, absolute, ours and private.
fn runtime_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    let md = fs::metadata(&dir).ok()?;
    (dir.is_absolute() && md.is_dir() && md.uid() == euid() && md.mode() & 0o077 == 0)
        .then_some(dir)
}

/// `run --simulate`'s default data directory: `$XDG_RUNTIME_DIR/upsguard-sim` (kept between
/// runs), else a fresh `upsguard-sim-XXXXXX` in the temp dir. Never a fixed name under `/tmp`,
/// which any local user could create first.
pub fn sim_data_dir() -> Result<PathBuf, String> {
    match runtime_dir() {
        Some(run) => {
            let dir = run.join("upsguard-sim");
            ensure_private_dir(&dir)?;
            Ok(dir)
        }
        None => fresh_private_dir(&std::env::temp_dir(), "upsguard-sim-"),
    }
}

/// Where the logs go when the data directory is refused: a fresh private directory under
/// `/run/upsguard` (when that is ours), else the temp dir.
pub fn fallback_data_dir() -> Result<PathBuf, String> {
    let run = Path::new("/run/upsguard");
    let parent = if check_trusted_dir(run).is_ok() {
        run.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    fresh_private_dir(&parent, "upsguard-fallback-")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chmod(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn write_bits_and_foreign_owners_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("upsguard.ini");
        fs::write(&f, "").unwrap();
        for (mode, ok) in [(0o600, true), (0o644, true), (0o664, false), (0o606, false)] {
            chmod(&f, mode);
            let md = fs::metadata(&f).unwrap();
            let r = check_trusted_file(&f, &md);
            assert_eq!(r.is_ok(), ok, "{mode:o}: {r:?}");
            if let Err(r) = r {
                assert_eq!(r.mode, mode);
                assert!(r.to_string().contains("writable by group or others"), "{r}");
                assert!(r.to_string().contains(&format!("mode {mode:04o}")), "{r}");
            }
        }
        chmod(d.path(), 0o777);
        assert!(check_trusted_dir(d.path()).is_err());
        assert!(check_data_dir(d.path()).is_err());
        chmod(d.path(), 0o755);
        assert!(check_trusted_dir(d.path()).is_ok());
        assert!(check_data_dir(&d.path().join("missing")).is_ok());
        if euid() == 0 {
            nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(12345)), None).unwrap();
            chmod(&f, 0o600);
            let r = check_trusted_file(&f, &fs::metadata(&f).unwrap()).unwrap_err();
            assert!(r.reason.contains("owned by uid 12345"), "{r}");
            assert_eq!(r.uid, 12345);
        }
    }

    #[test]
    fn secret_files_must_be_private_and_not_links() {
        let d = tempfile::tempdir().unwrap();
        let k = d.path().join("key.pem");
        fs::write(&k, "").unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o640, false), (0o644, false)] {
            chmod(&k, mode);
            let md = fs::symlink_metadata(&k).unwrap();
            assert_eq!(check_secret_file(&k, &md).is_ok(), ok, "{mode:o}");
        }
        let l = d.path().join("link.pem");
        std::os::unix::fs::symlink(&k, &l).unwrap();
        let r = check_secret_file(&l, &fs::symlink_metadata(&l).unwrap()).unwrap_err();
        assert!(r.reason.contains("symbolic link"), "{r}");
    }

    #[test]
    fn private_dirs_are_created_0700_and_loose_ones_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sim");
        ensure_private_dir(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o700);
        ensure_private_dir(&p).unwrap();
        chmod(&p, 0o755);
        let e = ensure_private_dir(&p).unwrap_err();
        assert!(e.contains("not private"), "{e}");
        let a = fresh_private_dir(d.path(), "x-").unwrap();
        let b = fresh_private_dir(d.path(), "x-").unwrap();
        assert_ne!(a, b);
        assert_eq!(fs::metadata(&a).unwrap().mode() & 0o7777, 0o700);
    }
}
