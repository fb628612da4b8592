//! Creating the first administrator without a default password (product §8.6, §8 lessons):
//! the install-time credentials file and the one-time setup token.
//!
//! Install file (`<data-dir>/initial-credentials`, written by a silent installer):
//! ```text
//! # optional comments
//! username=admin1
//! password=Secret#123
//! ```
//! It must be a regular file, mode 0600 (no group/other bits), owned by root or by us.
//! It is read once and then scrubbed (overwritten with zeros, fsynced, unlinked) whether or not
//! its content was valid — a rejected password must not linger on disk either. The one case
//! where it is left in place is a failure to *save* valid credentials (disk error), so the next
//! start can retry.
//!
//! Setup token (`<data-dir>/setup-token`, 0600):
//! ```text
//! upsguard-setup-token v1
//! sha256=<hex digest of the normalised token>
//! created=<unix seconds>
//! expires=<unix seconds>
//! ```
//! Only the digest is stored; the token (160 random bits, shown as five dash-separated groups
//! of 8 hex digits) goes to the service log once. A plain SHA-256 is enough because the token
//! has full entropy: there is no dictionary to slow down. Redeeming compares digests in
//! constant time, works only while no administrator exists and before expiry, and deletes the
//! file on success.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::envelope::{check_private, open_nofollow, sync_parent};
use super::store::unix_now;
use super::{CredError, CredentialStore, PolicyError, TokenProblem};
use crate::atomic::{self, MODE_PRIVATE};

/// Conventional name of the install-time credentials file in the data directory.
pub const INSTALL_FILE_NAME: &str = "initial-credentials";
/// Name of the pending setup token's file in the data directory.
pub const SETUP_TOKEN_FILE_NAME: &str = "setup-token";
/// How long a setup token stays valid.
pub const SETUP_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// An install file larger than this is not a two-line credentials file.
const MAX_INSTALL_FILE: u64 = 4096;
/// Scrubbing overwrites at most this much of an (oversized) install file before unlinking it:
/// enough for anything an installer writes, without letting a huge file stall the start.
const MAX_SCRUB: u64 = 1 << 20;
/// Random bytes in a setup token (160 bits).
const TOKEN_BYTES: usize = 20;
/// Clock skew tolerated between creating and redeeming a token (a token "from the future"
/// beyond this is treated as expired rather than as valid for longer than its TTL).
const TOKEN_SKEW_S: u64 = 300;
const TOKEN_MAGIC: &str = "upsguard-setup-token v1";

fn install_error(
    path: &Path,
    problem: impl Into<String>,
    policy: Option<PolicyError>,
    scrubbed: bool,
) -> CredError {
    CredError::InstallFile {
        path: path.to_path_buf(),
        problem: problem.into(),
        policy,
        scrubbed,
    }
}

/// Parse `username=…` / `password=…` lines. Messages never echo values.
fn parse_install(bytes: &[u8]) -> Result<(Zeroizing<String>, Zeroizing<String>), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not US-ASCII text".to_string())?;
    let mut username: Option<Zeroizing<String>> = None;
    let mut password: Option<Zeroizing<String>> = None;
    for (i, line) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {n} is not key=value"));
        };
        // Spaces around `=` are layout; the policy rejects white space inside values anyway.
        let value = Zeroizing::new(value.trim_matches([' ', '\t']).to_string());
        let slot = match key.trim() {
            "username" => &mut username,
            "password" => &mut password,
            _ => {
                return Err(format!(
                    "line {n}: unknown key (expected username or password)"
                ));
            }
        };
        if slot.is_some() {
            return Err(format!("line {n}: {} given twice", key.trim()));
        }
        *slot = Some(value);
    }
    match (username, password) {
        (Some(u), Some(p)) => Ok((u, p)),
        (None, _) => Err("no username line".into()),
        (_, None) => Err("no password line".into()),
    }
}

/// Overwrite the open file with zeros, sync, and unlink it. Overwriting is skipped for a file
/// with other hard links (its content belongs to another name too); it is unlinked anyway.
fn scrub(path: &Path, file: &mut fs::File, len: u64, nlink: u64) -> io::Result<()> {
    if nlink <= 1 {
        file.seek(SeekFrom::Start(0))?;
        let zeros = [0u8; 512];
        let mut left = len.min(MAX_SCRUB);
        while left > 0 {
            let n = usize::try_from(left.min(512)).unwrap_or(512);
            file.write_all(zeros.get(..n).unwrap_or(&zeros))?;
            left = left.saturating_sub(512);
        }
        file.sync_all()?;
    }
    fs::remove_file(path)?;
    sync_parent(path);
    Ok(())
}

impl CredentialStore {
    /// Consume an install-time credentials file: validate it, store the administrator, then
    /// scrub the file. `Ok(None)` if there is no such file, `Ok(Some(username))` when the
    /// administrator was set (replacing any existing one: this is also a reset channel).
    ///
    /// Invalid content or wrong permissions: an [`CredError::InstallFile`] naming the problem
    /// (and the policy rule, if that was it), with the file scrubbed anyway.
    pub fn consume_install_file(&mut self, path: &Path) -> Result<Option<String>, CredError> {
        let link_meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(install_error(path, e.to_string(), None, false)),
        };
        if !link_meta.file_type().is_file() {
            // A symlink or device is not something an installer wrote; do not touch it.
            return Err(install_error(
                path,
                "not a regular file (symlinks are not followed)",
                None,
                false,
            ));
        }
        let mut file = open_nofollow(path, true)
            .map_err(|e| install_error(path, format!("cannot open: {e}"), None, false))?;
        let meta = file
            .metadata()
            .map_err(|e| install_error(path, format!("cannot inspect: {e}"), None, false))?;
        #[cfg(unix)]
        let nlink = std::os::unix::fs::MetadataExt::nlink(&meta);
        #[cfg(not(unix))]
        let nlink = 1;

        // Decide what the file says (or why it cannot be used), then scrub in every case
        // except a failure to save valid credentials.
        let mut content = Zeroizing::new(Vec::new());
        let outcome = self.apply_install_file(path, &mut file, &meta, &mut content);
        let len = meta
            .len()
            .max(u64::try_from(content.len()).unwrap_or(u64::MAX));
        match outcome {
            Install::Set(username) => match scrub(path, &mut file, len, nlink) {
                Ok(()) => Ok(Some(username)),
                Err(e) => Err(install_error(
                    path,
                    format!(
                        "the administrator {username:?} WAS set, but the file could not be \
                         scrubbed ({e}); delete it by hand"
                    ),
                    None,
                    false,
                )),
            },
            Install::StoreFailed(e) => Err(install_error(
                path,
                format!("valid, but the credential store could not be saved: {e}"),
                None,
                false,
            )),
            Install::Invalid(problem, policy) => {
                let scrubbed = scrub(path, &mut file, len, nlink);
                let problem = match &scrubbed {
                    Ok(()) => problem,
                    Err(e) => format!("{problem}; scrubbing failed too: {e}"),
                };
                Err(install_error(path, problem, policy, scrubbed.is_ok()))
            }
        }
    }

    fn apply_install_file(
        &mut self,
        path: &Path,
        file: &mut fs::File,
        meta: &fs::Metadata,
        content: &mut Vec<u8>,
    ) -> Install {
        if let Err(e) = check_private(path, meta) {
            let why = match e {
                CredError::InsecureFile { problem, .. } => problem,
                other => other.to_string(),
            };
            return Install::Invalid(
                format!("{why}; its password may have been read by others, choose another"),
                None,
            );
        }
        if meta.len() > MAX_INSTALL_FILE {
            return Install::Invalid(format!("larger than {MAX_INSTALL_FILE} bytes"), None);
        }
        if let Err(e) = file.take(MAX_INSTALL_FILE + 1).read_to_end(content) {
            return Install::Invalid(format!("cannot read: {e}"), None);
        }
        let (username, password) = match parse_install(content) {
            Ok(v) => v,
            Err(problem) => return Install::Invalid(problem, None),
        };
        match self.set_admin(&username, &password) {
            // Saved (only the backup copy lagging): the file has done its job.
            Ok(()) | Err(CredError::BackupNotUpdated(_)) => Install::Set(username.to_string()),
            Err(CredError::Policy(p)) => Install::Invalid(p.to_string(), Some(p)),
            Err(other) => Install::StoreFailed(other),
        }
    }
}

/// What consuming an install file came to.
enum Install {
    Set(String),
    /// Not usable (content, format or permissions): scrub it.
    Invalid(String, Option<PolicyError>),
    /// Valid but not saved: keep the file for a retry.
    StoreFailed(CredError),
}

/// Namespace for the one-time setup token.
#[derive(Debug)]
pub struct SetupToken;

fn token_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join(SETUP_TOKEN_FILE_NAME)
}

/// Lower-case hex without separators or white space: what the digest is taken of.
fn normalise(token: &str) -> Zeroizing<String> {
    Zeroizing::new(
        token
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    )
}

fn token_digest_hex(normalised: &str) -> String {
    Sha256::digest(normalised.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct TokenRecord {
    digest: String,
    created: u64,
    expires: u64,
}

fn parse_token_file(text: &str) -> Result<TokenRecord, TokenProblem> {
    let bad = |why: &str| TokenProblem::Malformed(why.to_string());
    let mut lines = text.lines();
    if lines.next() != Some(TOKEN_MAGIC) {
        return Err(bad("unknown format"));
    }
    let (mut digest, mut created, mut expires) = (None, None, None);
    for line in lines {
        match line.split_once('=') {
            Some(("sha256", v)) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                digest = Some(v.to_ascii_lowercase());
            }
            Some(("created", v)) => created = v.parse::<u64>().ok(),
            Some(("expires", v)) => expires = v.parse::<u64>().ok(),
            _ => return Err(bad("unexpected line")),
        }
    }
    match (digest, created, expires) {
        (Some(digest), Some(created), Some(expires)) => Ok(TokenRecord {
            digest,
            created,
            expires,
        }),
        _ => Err(bad("missing or invalid field")),
    }
}

impl SetupToken {
    /// Create a new setup token (replacing any pending one), store its digest, and return the
    /// token text for the service to print to its log.
    pub fn create(data_dir: &Path) -> Result<String, CredError> {
        Self::create_at(data_dir, SystemTime::now())
    }

    /// [`Self::create`] with an explicit clock.
    pub fn create_at(data_dir: &Path, now: SystemTime) -> Result<String, CredError> {
        let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
        getrandom::fill(raw.as_mut_slice())
            .map_err(|e| CredError::Crypto(format!("no randomness for the setup token: {e}")))?;
        let hex: Zeroizing<String> =
            Zeroizing::new(raw.iter().map(|b| format!("{b:02x}")).collect());
        let display = hex
            .as_bytes()
            .chunks(8)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-");
        let created = unix_now(now);
        let record = format!(
            "{TOKEN_MAGIC}\nsha256={}\ncreated={created}\nexpires={}\n",
            token_digest_hex(&hex),
            created.saturating_add(SETUP_TOKEN_TTL.as_secs())
        );
        atomic::write_atomic(&token_path(data_dir), record.as_bytes(), MODE_PRIVATE)?;
        Ok(display)
    }

    /// Whether a token file exists (it may still be expired).
    pub fn pending(data_dir: &Path) -> bool {
        fs::symlink_metadata(token_path(data_dir)).is_ok()
    }

    /// Delete any pending token (e.g. once an administrator was set another way). Returns
    /// whether there was one.
    pub fn discard(data_dir: &Path) -> Result<bool, CredError> {
        let path = token_path(data_dir);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_parent(&path);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(CredError::Io {
                path,
                op: "delete setup token",
                source,
            }),
        }
    }

    /// Redeem the pending token for the store's data directory: on success the administrator
    /// is set (through the policy) and the token file is deleted. A policy rejection leaves
    /// the token valid so the user can try again.
    pub fn redeem(
        store: &mut CredentialStore,
        token: &str,
        username: &str,
        password: &str,
    ) -> Result<(), CredError> {
        Self::redeem_at(store, token, username, password, SystemTime::now())
    }

    /// [`Self::redeem`] with an explicit clock.
    pub fn redeem_at(
        store: &mut CredentialStore,
        token: &str,
        username: &str,
        password: &str,
        now: SystemTime,
    ) -> Result<(), CredError> {
        let data_dir = store.data_dir().to_path_buf();
        let path = token_path(&data_dir);
        let mut file = match open_nofollow(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CredError::SetupToken(TokenProblem::NonePending));
            }
            Err(source) => {
                return Err(CredError::Io {
                    path,
                    op: "open setup token",
                    source,
                });
            }
        };
        let meta = file.metadata().map_err(|source| CredError::Io {
            path: path.clone(),
            op: "inspect setup token",
            source,
        })?;
        // A token file others could write would let them plant their own digest.
        check_private(&path, &meta)?;
        let mut text = String::new();
        (&mut file)
            .take(1024)
            .read_to_string(&mut text)
            .map_err(|_| CredError::SetupToken(TokenProblem::Malformed("not text".into())))?;
        let record = parse_token_file(&text).map_err(CredError::SetupToken)?;

        let now_s = unix_now(now);
        if now_s >= record.expires || now_s.saturating_add(TOKEN_SKEW_S) < record.created {
            let _ = Self::discard(&data_dir);
            return Err(CredError::SetupToken(TokenProblem::Expired));
        }
        if store.has_admin() {
            let _ = Self::discard(&data_dir);
            return Err(CredError::SetupToken(TokenProblem::AdminExists));
        }
        let given = token_digest_hex(&normalise(token));
        if !bool::from(given.as_bytes().ct_eq(record.digest.as_bytes())) {
            return Err(CredError::SetupToken(TokenProblem::Mismatch));
        }
        let result = store.set_admin_at(username, password, now);
        if store.has_admin() {
            // One-time: the token is gone once it has done its job (also when only the backup
            // copy could not be updated). Should the delete fail, the token is still useless
            // because an administrator now exists.
            let _ = Self::discard(&data_dir);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_parser() {
        let (u, p) = parse_install(b"# hi\r\nusername = admin1\r\npassword=Secret#123\n").unwrap();
        assert_eq!(u.as_str(), "admin1");
        assert_eq!(p.as_str(), "Secret#123");
        assert_eq!(
            parse_install(b"username=admin1\n").unwrap_err(),
            "no password line"
        );
        assert_eq!(
            parse_install(b"password=x\n").unwrap_err(),
            "no username line"
        );
        assert!(
            parse_install(b"Secret#123\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            parse_install(b"username=a\nuser=b\n")
                .unwrap_err()
                .contains("unknown key")
        );
        assert!(
            parse_install(b"username=a\nusername=b\n")
                .unwrap_err()
                .contains("twice")
        );
        assert_eq!(
            parse_install(&[0xff, 0xfe]).unwrap_err(),
            "not US-ASCII text"
        );
        // Nothing quotes the value.
        let e = parse_install(b"Secret#123").unwrap_err();
        assert!(!e.contains("Secret"), "{e}");
    }

    #[test]
    fn token_normalisation() {
        assert_eq!(normalise(" AB-cd \n").as_str(), "abcd");
    }

    #[test]
    fn token_file_parser_rejects_garbage() {
        assert!(parse_token_file("").is_err());
        assert!(
            parse_token_file("upsguard-setup-token v1\nsha256=zz\ncreated=1\nexpires=2\n").is_err()
        );
        assert!(parse_token_file("upsguard-setup-token v1\ncreated=1\nexpires=2\n").is_err());
        let ok = format!(
            "upsguard-setup-token v1\nsha256={}\ncreated=1\nexpires=2\n",
            "a".repeat(64)
        );
        let r = parse_token_file(&ok).unwrap();
        assert_eq!((r.created, r.expires), (1, 2));
    }
}
