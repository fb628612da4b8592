//! The on-disk format of `credentials.enc` / `credentials.bak`, and the key file.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  "UPSGCRED"
//! 8       1     format version (1)
//! 9       1     algorithm (1 = AES-256-GCM)
//! 10      2     reserved, zero
//! 12      12    nonce (random per write)
//! 24      n     ciphertext of the JSON payload
//! 24+n    16    GCM tag
//! ```
//!
//! The 12-byte header is the AAD, so a changed version or algorithm byte fails authentication
//! rather than being reinterpreted. The nonce is random (96 bits from the OS) for every write:
//! with a few thousand writes over the store's life the collision probability is negligible
//! (birthday bound ~2^-70), and no counter state needs to survive a crash.
//!
//! `credentials.key` is exactly 32 random bytes, mode 0600, owned by the service user (root).
//! It is created once, with no-replace semantics, and refused if group/other bits are set.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use aes_gcm::aead::array::Array;
use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
use zeroize::Zeroizing;

use super::CredError;
use crate::atomic::{self, MODE_PRIVATE};

pub const MAGIC: &[u8; 8] = b"UPSGCRED";
pub const VERSION: u8 = 1;
pub const ALG_AES256_GCM: u8 = 1;
pub const HEADER_LEN: usize = 12;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;
/// A store larger than this is not ours (a few users need a few KiB); refusing it early
/// keeps a hostile file from making us allocate without bound.
pub const MAX_FILE_LEN: u64 = 1 << 20;

/// The store key, wiped on drop.
pub type Key = Zeroizing<[u8; KEY_LEN]>;

/// Why one copy of the store could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    Missing,
    Unreadable(String),
    TooLarge(u64),
    Truncated(usize),
    BadMagic,
    UnsupportedVersion(u8),
    UnsupportedAlgorithm(u8),
    /// The GCM tag does not verify: tampered, corrupted, or encrypted under another key.
    AuthenticationFailed,
    /// Decrypted, but the payload is not a store we understand.
    BadPayload(String),
}

/// Worded to follow "credentials.enc is …".
impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Missing => f.write_str("missing"),
            Damage::Unreadable(e) => write!(f, "unreadable ({e})"),
            Damage::TooLarge(n) => write!(f, "too large ({n} bytes, at most {MAX_FILE_LEN})"),
            Damage::Truncated(n) => write!(
                f,
                "truncated ({n} bytes, at least {} needed)",
                HEADER_LEN + NONCE_LEN + TAG_LEN
            ),
            Damage::BadMagic => f.write_str("not a credential store (bad magic)"),
            Damage::UnsupportedVersion(v) => write!(f, "of unsupported format version {v}"),
            Damage::UnsupportedAlgorithm(a) => write!(f, "of unsupported algorithm {a}"),
            Damage::AuthenticationFailed => f.write_str(
                "failing authentication (tampered or corrupted, or encrypted under another key)",
            ),
            Damage::BadPayload(e) => write!(f, "invalid inside ({e})"),
        }
    }
}

fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let (magic, rest) = h.split_at_mut(MAGIC.len());
    magic.copy_from_slice(MAGIC);
    if let [v, a, ..] = rest {
        *v = VERSION;
        *a = ALG_AES256_GCM;
    }
    h
}

fn cipher(key: &Key) -> Result<Aes256Gcm, CredError> {
    Aes256Gcm::new_from_slice(key.as_slice())
        .map_err(|_| CredError::Crypto("AES-256-GCM rejected the key length".into()))
}

/// Encrypt `plaintext` into a complete file image.
pub fn seal(key: &Key, plaintext: &[u8]) -> Result<Vec<u8>, CredError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| CredError::Crypto(format!("no randomness for the nonce: {e}")))?;
    let h = header();
    let mut body = Zeroizing::new(plaintext.to_vec());
    let tag = cipher(key)?
        .encrypt_inout_detached(&Array::from(nonce), &h, body.as_mut_slice().into())
        .map_err(|_| CredError::Crypto("encryption failed (payload too large)".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(&h);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    out.extend_from_slice(tag.as_slice());
    Ok(out)
}

/// Check and decrypt a file image. Never panics, whatever the bytes.
pub fn open(key: &Key, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, Damage> {
    if bytes.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
        // A file that does not even start with our magic is "not ours", not "truncated".
        if !MAGIC.starts_with(bytes.get(..MAGIC.len().min(bytes.len())).unwrap_or(&[])) {
            return Err(Damage::BadMagic);
        }
        return Err(Damage::Truncated(bytes.len()));
    }
    let truncated = || Damage::Truncated(bytes.len());
    let (h, rest) = bytes.split_at_checked(HEADER_LEN).ok_or_else(truncated)?;
    let (nonce, rest) = rest.split_at_checked(NONCE_LEN).ok_or_else(truncated)?;
    let ct_len = rest.len().checked_sub(TAG_LEN).ok_or_else(truncated)?;
    let (ct, tag) = rest.split_at_checked(ct_len).ok_or_else(truncated)?;
    match h {
        [m0, m1, m2, m3, m4, m5, m6, m7, version, alg, _, _] => {
            if [*m0, *m1, *m2, *m3, *m4, *m5, *m6, *m7] != *MAGIC {
                return Err(Damage::BadMagic);
            }
            if *version != VERSION {
                return Err(Damage::UnsupportedVersion(*version));
            }
            if *alg != ALG_AES256_GCM {
                return Err(Damage::UnsupportedAlgorithm(*alg));
            }
        }
        _ => return Err(truncated()),
    }
    let nonce = Array::try_from(nonce).map_err(|_| truncated())?;
    let tag = Array::try_from(tag).map_err(|_| truncated())?;
    let mut body = Zeroizing::new(ct.to_vec());
    let aead = cipher(key).map_err(|e| Damage::Unreadable(e.to_string()))?;
    aead.decrypt_inout_detached(&nonce, h, body.as_mut_slice().into(), &tag)
        .map_err(|_| Damage::AuthenticationFailed)?;
    Ok(body)
}

/// Read one copy of the store, bounded in size. `Missing` if it does not exist.
pub fn read_file(path: &Path) -> Result<Vec<u8>, Damage> {
    let file = match open_nofollow(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Damage::Missing),
        Err(e) => return Err(Damage::Unreadable(e.to_string())),
    };
    let meta = file
        .metadata()
        .map_err(|e| Damage::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(Damage::Unreadable("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_LEN {
        return Err(Damage::TooLarge(meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Damage::Unreadable(e.to_string()))?;
    Ok(bytes)
}

/// Open without following a final symlink: a root-owned secret must not be redirected.
pub fn open_nofollow(path: &Path, write: bool) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(write);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NOFOLLOW);
    }
    opts.open(path)
}

/// Permission and ownership rules shared by the key file, the install file and the token
/// file: a regular file, no group/other bits, owned by root or by us.
pub fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), CredError> {
    if !meta.is_file() {
        return Err(CredError::InsecureFile {
            path: path.to_path_buf(),
            problem: "not a regular file".into(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CredError::InsecureFile {
                path: path.to_path_buf(),
                problem: format!(
                    "mode {mode:04o} lets group/others access it; it must be 0600 (chmod 600)"
                ),
            });
        }
        let uid = meta.uid();
        let me = nix::unistd::geteuid().as_raw();
        if uid != 0 && uid != me {
            return Err(CredError::InsecureFile {
                path: path.to_path_buf(),
                problem: format!("owned by uid {uid}; it must be owned by root or uid {me}"),
            });
        }
    }
    Ok(())
}

/// Load the key file, or create it when `may_create` (no store exists yet).
///
/// Returns the key and whether it was created now.
pub fn load_or_create_key(path: &Path, may_create: bool) -> Result<(Key, bool), CredError> {
    match open_nofollow(path, false) {
        Ok(file) => read_key(path, file).map(|k| (k, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !may_create {
                return Err(CredError::KeyMissing {
                    path: path.to_path_buf(),
                });
            }
            create_key(path).map(|k| (k, true))
        }
        Err(source) => Err(CredError::Io {
            path: path.to_path_buf(),
            op: "open key file",
            source,
        }),
    }
}

fn read_key(path: &Path, mut file: File) -> Result<Key, CredError> {
    let meta = file.metadata().map_err(|source| CredError::Io {
        path: path.to_path_buf(),
        op: "inspect key file",
        source,
    })?;
    // Checked on the open descriptor, so the file inspected is the file read.
    check_private(path, &meta)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
    (&mut file)
        .take(KEY_LEN as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|source| CredError::Io {
            path: path.to_path_buf(),
            op: "read key file",
            source,
        })?;
    let mut key: Key = Zeroizing::new([0u8; KEY_LEN]);
    if buf.len() != KEY_LEN {
        return Err(CredError::KeyInvalid {
            path: path.to_path_buf(),
            problem: format!("{} bytes, expected exactly {KEY_LEN}", buf.len()),
        });
    }
    key.copy_from_slice(&buf);
    Ok(key)
}

/// Write a fresh key without ever replacing an existing one: the bytes go to a private temp
/// file (atomic, 0600 from birth), which is then hard-linked to the final name (fails if the
/// name exists, so two racing starters cannot end up with different keys) and unlinked.
fn create_key(path: &Path) -> Result<Key, CredError> {
    let mut key: Key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(key.as_mut_slice())
        .map_err(|e| CredError::Crypto(format!("no randomness for the key: {e}")))?;
    let tmp = sibling(path, ".new");
    atomic::write_atomic(&tmp, key.as_slice(), MODE_PRIVATE)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_parent(path);
            Ok(key)
        }
        // Someone else created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let file = open_nofollow(path, false).map_err(|source| CredError::Io {
                path: path.to_path_buf(),
                op: "open key file",
                source,
            })?;
            read_key(path, file)
        }
        Err(source) => Err(CredError::Io {
            path: path.to_path_buf(),
            op: "create key file",
            source,
        }),
    }
}

/// `path` with `suffix` appended to its file name.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Best-effort fsync of the directory holding `path`, after a link/unlink.
pub fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> Key {
        Zeroizing::new([b; KEY_LEN])
    }

    #[test]
    fn seal_open_round_trip_and_fresh_nonce() {
        let k = key(7);
        let a = seal(&k, b"{\"x\":1}").unwrap();
        let b = seal(&k, b"{\"x\":1}").unwrap();
        assert_ne!(a, b, "nonce must be random per write");
        assert_eq!(a.get(..8).unwrap(), MAGIC);
        assert_eq!(open(&k, &a).unwrap().as_slice(), b"{\"x\":1}");
        assert_eq!(open(&key(8), &a).unwrap_err(), Damage::AuthenticationFailed);
    }

    #[test]
    fn header_is_authenticated() {
        let k = key(1);
        let good = seal(&k, b"payload").unwrap();
        // Reserved byte changed: only the tag can notice.
        let mut t = good.clone();
        t[11] = 1;
        assert_eq!(open(&k, &t).unwrap_err(), Damage::AuthenticationFailed);
        let mut t = good.clone();
        t[8] = 2;
        assert_eq!(open(&k, &t).unwrap_err(), Damage::UnsupportedVersion(2));
        let mut t = good.clone();
        t[9] = 9;
        assert_eq!(open(&k, &t).unwrap_err(), Damage::UnsupportedAlgorithm(9));
        let mut t = good.clone();
        t[0] = b'X';
        assert_eq!(open(&k, &t).unwrap_err(), Damage::BadMagic);
        for i in [12, 24, good.len() - 1] {
            let mut t = good.clone();
            t[i] ^= 1;
            assert_eq!(
                open(&k, &t).unwrap_err(),
                Damage::AuthenticationFailed,
                "{i}"
            );
        }
        assert_eq!(
            open(&k, &good[..41]).unwrap_err(),
            Damage::AuthenticationFailed
        );
        assert_eq!(open(&k, &good[..20]).unwrap_err(), Damage::Truncated(20));
        assert_eq!(open(&k, b"").unwrap_err(), Damage::Truncated(0));
        assert_eq!(open(&k, b"junk").unwrap_err(), Damage::BadMagic);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = open(&key(3), &bytes);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let mut bytes = header().to_vec();
            bytes.extend_from_slice(&tail);
            prop_assert!(open(&key(3), &bytes).is_err());
        }
    }
}
