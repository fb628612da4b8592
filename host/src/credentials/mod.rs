//! The encrypted credential store and the administrator credential policy (product §8.3–8.6,
//! §9).
//!
//! Files in the data directory (all 0600, root only):
//! - `credentials.key`: 32 random bytes, created on first use, refused if group/other bits are
//!   set or if it is owned by someone else;
//! - `credentials.enc`: the store, AES-256-GCM with a fresh random nonce per write and the
//!   versioned header as AAD (format documented in `envelope.rs`);
//! - `credentials.bak`: the last good copy. A damaged `credentials.enc` (bad tag, truncated,
//!   wrong version) is restored from it and [`OpenReport`] says so; if both are bad, opening
//!   fails with [`CredError::Unreadable`] — never a silent empty store.
//!
//! The administrator password is kept only as an Argon2id PHC string ([`hash`]); verification
//! always runs exactly one hash, whatever the username, so timing does not reveal it. The
//! policy lives in [`policy`] and every way of setting the administrator goes through it.
//!
//! First administrator (there is no default password): [`CredentialStore::set_admin`] (the
//! INI `[Credentials]` reset channel), [`CredentialStore::consume_install_file`] (silent
//! install), or a one-time [`SetupToken`] printed to the service log.
//!
//! A `CredentialStore` is a single-writer object: the service owns one (behind a mutex if
//! several tasks need it). Every mutating call persists before it returns, and leaves memory
//! unchanged if persisting fails.

mod bootstrap;
mod envelope;
pub mod hash;
pub mod model;
pub mod policy;
mod store;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use bootstrap::{INSTALL_FILE_NAME, SETUP_TOKEN_FILE_NAME, SETUP_TOKEN_TTL, SetupToken};
pub use envelope::Damage;
pub use model::{
    Admin, NutRole, NutUser, SecretBytes, SecretString, SnmpAuthProtocol, SnmpKeyKind,
    SnmpPrivProtocol, SnmpUser,
};
pub use policy::PolicyError;
pub use store::{
    BACKUP_FILE_NAME, CredentialStore, KEY_FILE_NAME, MAIN_FILE_NAME, OpenReport, StoreSource,
};

use crate::atomic::AtomicWriteError;

/// Which kind of secondary user an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    Snmp,
    Nut,
    /// The `[Notifications]` SMTP account.
    Smtp,
}

impl fmt::Display for UserKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserKind::Snmp => "SNMPv3 user",
            UserKind::Nut => "NUT user",
            UserKind::Smtp => "SMTP account",
        })
    }
}

/// Why a setup token could not be redeemed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenProblem {
    /// No token file: never created, already used, or discarded.
    NonePending,
    /// The token file exists but is past its expiry (it has been deleted).
    Expired,
    /// The text does not match the pending token.
    Mismatch,
    /// An administrator already exists; setup tokens only create the first one (the token
    /// file has been deleted).
    AdminExists,
    /// The token file is not in our format.
    Malformed(String),
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenProblem::NonePending => {
                f.write_str("no setup token is pending (already used, or never created)")
            }
            TokenProblem::Expired => {
                f.write_str("the setup token has expired; restart the service for a new one")
            }
            TokenProblem::Mismatch => f.write_str("the setup token is not valid"),
            TokenProblem::AdminExists => f.write_str(
                "an administrator already exists; setup tokens only create the first one",
            ),
            TokenProblem::Malformed(why) => write!(f, "the setup token file is damaged: {why}"),
        }
    }
}

/// Everything that can go wrong with the credential store. Messages never contain a password
/// or key.
#[derive(Debug)]
pub enum CredError {
    /// A credential was rejected by the §8.4 policy.
    Policy(PolicyError),
    /// An I/O operation failed.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// An atomic write failed (the previous file is intact).
    Write(AtomicWriteError),
    /// The change *was* saved to `credentials.enc`, but `credentials.bak` could not be
    /// updated (it still holds the previous good copy).
    BackupNotUpdated(AtomicWriteError),
    /// A secret file (key, install file, token) is not private to root/us.
    InsecureFile { path: PathBuf, problem: String },
    /// The key file exists but is not a 32-byte key.
    KeyInvalid { path: PathBuf, problem: String },
    /// A store exists but its key file is gone; a new key could never decrypt it.
    KeyMissing { path: PathBuf },
    /// Neither the store nor its backup could be used.
    Unreadable {
        main: PathBuf,
        main_damage: Damage,
        backup: PathBuf,
        backup_damage: Damage,
    },
    /// Randomness, cipher or hash failure (should not happen on a working system).
    Crypto(String),
    /// The payload could not be serialised.
    Encode(String),
    /// The operation needs an administrator and there is none.
    NoAdmin,
    /// `change_password`: the current password is wrong.
    WrongPassword,
    /// A secondary user with that name exists already.
    UserExists { kind: UserKind, name: String },
    /// No secondary user with that name.
    UserNotFound { kind: UserKind, name: String },
    /// A secondary user's fields are not acceptable.
    InvalidUser { kind: UserKind, problem: String },
    /// The install-time credentials file could not be used. `scrubbed` says whether it was
    /// overwritten and removed anyway.
    InstallFile {
        path: PathBuf,
        problem: String,
        /// The policy rule that failed, if that was the problem.
        policy: Option<PolicyError>,
        scrubbed: bool,
    },
    /// A setup token could not be redeemed.
    SetupToken(TokenProblem),
}

impl fmt::Display for CredError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredError::Policy(e) => write!(f, "credentials rejected: {e}"),
            CredError::Io { path, op, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
            CredError::Write(e) => write!(f, "cannot save the credential store: {e}"),
            CredError::BackupNotUpdated(e) => write!(
                f,
                "credential store saved, but its backup could not be updated: {e}"
            ),
            CredError::InsecureFile { path, problem } => {
                write!(f, "refusing to use {}: {problem}", path.display())
            }
            CredError::KeyInvalid { path, problem } => {
                write!(f, "key file {} is invalid: {problem}", path.display())
            }
            CredError::KeyMissing { path } => write!(
                f,
                "key file {} is missing but a credential store exists, which no new key can \
                 decrypt; restore the key file, or move credentials.enc/.bak aside and set new \
                 credentials through the [Credentials] section of the configuration",
                path.display()
            ),
            CredError::Unreadable {
                main,
                main_damage,
                backup,
                backup_damage,
            } => {
                write!(
                    f,
                    "credential store unusable: {} is {main_damage}, and its backup {} is \
                     {backup_damage}",
                    main.display(),
                    backup.display()
                )?;
                if *main_damage == Damage::AuthenticationFailed
                    && *backup_damage == Damage::AuthenticationFailed
                {
                    f.write_str(" (both failing authentication usually means the key file does not belong to them)")?;
                }
                f.write_str(
                    "; to start over, move them aside and set new credentials through the \
                     [Credentials] section of the configuration",
                )
            }
            CredError::Crypto(e) => write!(f, "cryptographic failure: {e}"),
            CredError::Encode(e) => write!(f, "cannot encode the credential store: {e}"),
            CredError::NoAdmin => f.write_str("no administrator account is set up"),
            CredError::WrongPassword => f.write_str("the current password is not correct"),
            CredError::UserExists { kind, name } => {
                write!(f, "{kind} {name:?} already exists")
            }
            CredError::UserNotFound { kind, name } => write!(f, "no {kind} {name:?}"),
            CredError::InvalidUser { kind, problem } => write!(f, "invalid {kind}: {problem}"),
            CredError::InstallFile {
                path,
                problem,
                scrubbed,
                ..
            } => {
                write!(
                    f,
                    "install credentials file {} not used: {problem}",
                    path.display()
                )?;
                if *scrubbed {
                    f.write_str(" (the file has been scrubbed and removed)")
                } else {
                    f.write_str(" (the file was left in place)")
                }
            }
            CredError::SetupToken(p) => write!(f, "setup token refused: {p}"),
        }
    }
}

impl std::error::Error for CredError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CredError::Policy(e) => Some(e),
            CredError::Io { source, .. } => Some(source),
            CredError::Write(e) | CredError::BackupNotUpdated(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PolicyError> for CredError {
    fn from(e: PolicyError) -> Self {
        CredError::Policy(e)
    }
}

impl From<AtomicWriteError> for CredError {
    fn from(e: AtomicWriteError) -> Self {
        CredError::Write(e)
    }
}
