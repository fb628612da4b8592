//! [`CredentialStore`]: open (with backup fallback), verify, set and persist.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::envelope::{self, Damage, Key};
use super::model::{
    Admin, CONTENT_FORMAT, Content, NutUser, SecretString, SnmpAuthProtocol, SnmpKeyKind,
    SnmpPrivProtocol, SnmpUser,
};
use super::{CredError, UserKind, hash, policy};
use crate::atomic::{self, MODE_PRIVATE};

pub const MAIN_FILE_NAME: &str = "credentials.enc";
pub const BACKUP_FILE_NAME: &str = "credentials.bak";
pub const KEY_FILE_NAME: &str = "credentials.key";

/// Where the store opened by [`CredentialStore::open`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSource {
    /// `credentials.enc` was good.
    Main,
    /// `credentials.enc` was missing or damaged (`main_damage`); the backup was used and
    /// copied over it (`restore_error` if that copy failed — the store in memory is good).
    Backup {
        main_damage: Damage,
        restore_error: Option<String>,
    },
    /// Neither file existed: a new, empty store was created and written.
    Created,
}

/// What happened while opening the store; the service turns the notable parts into events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub source: StoreSource,
    /// The main copy was good but the backup was missing or damaged; it has been rewritten
    /// from the main copy (unless `backup_repair_error` says otherwise).
    pub backup_damage: Option<Damage>,
    pub backup_repair_error: Option<String>,
    /// `credentials.key` did not exist and was generated now.
    pub key_created: bool,
    /// Whether an administrator account exists. `false` means the service must offer a way to
    /// create one (INI `[Credentials]`, install file, setup token).
    pub has_admin: bool,
}

impl OpenReport {
    /// The backup copy was used because the main copy was missing or damaged.
    pub fn used_backup(&self) -> bool {
        matches!(self.source, StoreSource::Backup { .. })
    }

    /// A new store was created.
    pub fn created(&self) -> bool {
        self.source == StoreSource::Created
    }

    /// No administrator account yet.
    pub fn no_admin(&self) -> bool {
        !self.has_admin
    }

    /// One line per notable fact, for the event log (empty when everything was normal).
    pub fn notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.source {
            StoreSource::Main => {}
            StoreSource::Backup {
                main_damage,
                restore_error,
            } => {
                out.push(format!(
                    "{MAIN_FILE_NAME} was {main_damage}; restored from {BACKUP_FILE_NAME}"
                ));
                if let Some(e) = restore_error {
                    out.push(format!("could not rewrite {MAIN_FILE_NAME}: {e}"));
                }
            }
            StoreSource::Created => out.push("new credential store created".into()),
        }
        if let Some(d) = &self.backup_damage {
            out.push(format!(
                "{BACKUP_FILE_NAME} was {d}; rewritten from {MAIN_FILE_NAME}"
            ));
        }
        if let Some(e) = &self.backup_repair_error {
            out.push(format!("could not rewrite {BACKUP_FILE_NAME}: {e}"));
        }
        if self.key_created {
            out.push(format!("new store key {KEY_FILE_NAME} generated"));
        }
        if !self.has_admin {
            out.push("no administrator account is set up".into());
        }
        out
    }
}

/// Argon2id cost used for new hashes: `(m KiB, t, p)`.
type Cost = (u32, u32, u32);

/// The decrypted credential store of one data directory.
pub struct CredentialStore {
    dir: PathBuf,
    key: Key,
    content: Content,
    cost: Cost,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialStore")
            .field("dir", &self.dir)
            .field("admin", &self.admin_username())
            .field("snmp_users", &self.content.snmp_users.len())
            .field("nut_users", &self.content.nut_users.len())
            .finish_non_exhaustive()
    }
}

/// Decrypt and parse one file image.
pub(super) fn decode(key: &Key, bytes: &[u8]) -> Result<Content, Damage> {
    let plain = envelope::open(key, bytes)?;
    // serde_json messages can quote the offending value, which might be a secret; keep only
    // the category and position.
    let content: Content = serde_json::from_slice(&plain).map_err(|e| {
        Damage::BadPayload(format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    if content.format != CONTENT_FORMAT {
        return Err(Damage::BadPayload(format!(
            "unsupported content format {}",
            content.format
        )));
    }
    Ok(content)
}

fn read_and_decode(key: &Key, path: &Path) -> Result<(Content, Vec<u8>), Damage> {
    let bytes = envelope::read_file(path)?;
    decode(key, &bytes).map(|c| (c, bytes))
}

pub(super) fn unix_now(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl CredentialStore {
    /// Open the store in `data_dir` (which must exist), creating the key and an empty store on
    /// first use, and falling back to the backup when the main copy is damaged.
    pub fn open(data_dir: &Path) -> Result<(CredentialStore, OpenReport), CredError> {
        let main = data_dir.join(MAIN_FILE_NAME);
        let bak = data_dir.join(BACKUP_FILE_NAME);
        let main_raw = envelope::read_file(&main);
        let bak_raw = envelope::read_file(&bak);
        let nothing_stored = main_raw == Err(Damage::Missing) && bak_raw == Err(Damage::Missing);
        let (key, key_created) =
            envelope::load_or_create_key(&data_dir.join(KEY_FILE_NAME), nothing_stored)?;

        let main_res = main_raw.and_then(|b| decode(&key, &b).map(|c| (c, b)));
        let bak_res = bak_raw.and_then(|b| decode(&key, &b).map(|c| (c, b)));

        let mut store = CredentialStore {
            dir: data_dir.to_path_buf(),
            key,
            content: Content::default(),
            cost: (hash::PARAMS_M_KIB, hash::PARAMS_T, hash::PARAMS_P),
        };
        let mut report = OpenReport {
            source: StoreSource::Main,
            backup_damage: None,
            backup_repair_error: None,
            key_created,
            has_admin: false,
        };

        match (main_res, bak_res) {
            (Ok((content, bytes)), backup) => {
                store.content = content;
                let refresh = match backup {
                    Ok((_, bak_bytes)) => bak_bytes != bytes,
                    Err(damage) => {
                        report.backup_damage = Some(damage);
                        true
                    }
                };
                // A good but older backup (crash between the two writes) is brought up to date
                // so it is the last good copy again.
                if refresh && let Err(e) = atomic::write_atomic(&bak, &bytes, MODE_PRIVATE) {
                    report.backup_repair_error = Some(e.to_string());
                }
            }
            (Err(main_damage), Ok((content, bytes))) => {
                store.content = content;
                let restore_error = atomic::write_atomic(&main, &bytes, MODE_PRIVATE)
                    .err()
                    .map(|e| e.to_string());
                report.source = StoreSource::Backup {
                    main_damage,
                    restore_error,
                };
            }
            (Err(Damage::Missing), Err(Damage::Missing)) => {
                store.save()?;
                report.source = StoreSource::Created;
            }
            (Err(main_damage), Err(backup_damage)) => {
                return Err(CredError::Unreadable {
                    main,
                    main_damage,
                    backup: bak,
                    backup_damage,
                });
            }
        }
        report.has_admin = store.has_admin();
        Ok((store, report))
    }

    /// The data directory this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Use cheap Argon2 parameters for new hashes (unit tests only: the real cost is ~100 ms).
    #[cfg(test)]
    pub(super) fn use_test_cost(&mut self) {
        self.cost = (64, 1, 1);
    }

    pub fn has_admin(&self) -> bool {
        self.content.admin.is_some()
    }

    pub fn admin_username(&self) -> Option<&str> {
        self.content.admin.as_ref().map(|a| a.username.as_str())
    }

    /// When the administrator password was last set (seconds since the Unix epoch).
    pub fn admin_changed_at(&self) -> Option<u64> {
        self.content.admin.as_ref().map(|a| a.changed_at)
    }

    /// Check a login. Exactly one Argon2 computation runs whatever the input — against the
    /// administrator's hash even when the username is wrong, against a dummy hash when there
    /// is no administrator — and the username comparison is constant-time, so the answer's
    /// timing does not reveal whether the username exists.
    pub fn verify(&self, username: &str, password: &str) -> bool {
        match &self.content.admin {
            Some(admin) => {
                // Compare fixed-size digests so not even the length of the name leaks.
                let name_ok: bool = digest(username).ct_eq(&digest(&admin.username)).into();
                let password_ok = hash::verify_password(password, &admin.password_hash);
                name_ok & password_ok
            }
            None => {
                let _ = hash::verify_password(password, hash::dummy_hash());
                false
            }
        }
    }

    /// Set (or reset) the administrator: validate through the policy, hash, persist. This is
    /// the path for the INI `[Credentials]` section and for forgotten credentials.
    pub fn set_admin(&mut self, username: &str, password: &str) -> Result<(), CredError> {
        self.set_admin_at(username, password, SystemTime::now())
    }

    pub(super) fn set_admin_at(
        &mut self,
        username: &str,
        password: &str,
        now: SystemTime,
    ) -> Result<(), CredError> {
        policy::check_credentials(username, password)?;
        let (m, t, p) = self.cost;
        let password_hash = hash::hash_password_with(password, m, t, p)?;
        let admin = Admin {
            username: username.to_string(),
            password_hash,
            changed_at: unix_now(now),
        };
        self.mutate(|c| {
            c.admin = Some(admin);
            Ok(())
        })
    }

    /// Change the administrator's password, given the current one.
    pub fn change_password(&mut self, old: &str, new: &str) -> Result<(), CredError> {
        let (username, ok) = match &self.content.admin {
            Some(a) => (
                a.username.clone(),
                hash::verify_password(old, &a.password_hash),
            ),
            None => return Err(CredError::NoAdmin),
        };
        if !ok {
            return Err(CredError::WrongPassword);
        }
        self.set_admin(&username, new)
    }

    /// Encrypt and write the store: `credentials.enc` atomically, read back and checked, then
    /// the same bytes to `credentials.bak`, so the backup only ever receives a verified copy.
    ///
    /// [`CredError::Write`] from the first step means nothing changed on disk. If only the
    /// backup could not be written, the error is [`CredError::BackupNotUpdated`]: the new
    /// content *is* saved.
    pub fn save(&self) -> Result<(), CredError> {
        let json = Zeroizing::new(
            serde_json::to_vec(&self.content).map_err(|e| CredError::Encode(e.to_string()))?,
        );
        let sealed = envelope::seal(&self.key, &json)?;
        let main = self.dir.join(MAIN_FILE_NAME);
        atomic::write_atomic(&main, &sealed, MODE_PRIVATE)?;
        if let Err(damage) = read_and_decode(&self.key, &main) {
            return Err(CredError::Crypto(format!(
                "{} does not read back after writing: {damage}",
                main.display()
            )));
        }
        atomic::write_atomic(&self.dir.join(BACKUP_FILE_NAME), &sealed, MODE_PRIVATE)
            .map_err(CredError::BackupNotUpdated)
    }

    /// Apply `f` to a copy of the content and persist it; memory changes only if the new
    /// content reached disk.
    fn mutate<T>(
        &mut self,
        f: impl FnOnce(&mut Content) -> Result<T, CredError>,
    ) -> Result<T, CredError> {
        let mut next = self.content.clone();
        let out = f(&mut next)?;
        let previous = std::mem::replace(&mut self.content, next);
        match self.save() {
            Ok(()) => Ok(out),
            // Saved, only the backup is stale: keep the new content, report the problem.
            Err(e @ CredError::BackupNotUpdated(_)) => Err(e),
            Err(e) => {
                self.content = previous;
                Err(e)
            }
        }
    }

    // --- notification secrets ---------------------------------------------------------

    /// The SMTP AUTH password for `[Notifications]`, if one is stored.
    pub fn smtp_password(&self) -> Option<&SecretString> {
        self.content.smtp_password.as_ref()
    }

    /// Store (or with `None` / an empty text, remove) the SMTP AUTH password. Only what keeps
    /// it usable on the wire is checked: 1..=256 bytes, no control characters.
    pub fn set_smtp_password(&mut self, password: Option<&str>) -> Result<(), CredError> {
        let pw = password.filter(|p| !p.is_empty());
        if let Some(p) = pw
            && (p.len() > 256 || p.chars().any(char::is_control))
        {
            return Err(CredError::InvalidUser {
                kind: UserKind::Smtp,
                problem: "the SMTP password must be at most 256 bytes without control characters"
                    .into(),
            });
        }
        let value = pw.map(SecretString::new);
        self.mutate(move |c| {
            c.smtp_password = value;
            Ok(())
        })
    }

    // --- SNMPv3 users -------------------------------------------------------------------

    pub fn snmp_users(&self) -> &[SnmpUser] {
        &self.content.snmp_users
    }

    pub fn snmp_user(&self, name: &str) -> Option<&SnmpUser> {
        self.content.snmp_users.iter().find(|u| u.name == name)
    }

    pub fn add_snmp_user(&mut self, user: SnmpUser) -> Result<(), CredError> {
        check_snmp_user(&user)?;
        self.mutate(|c| {
            if c.snmp_users.iter().any(|u| u.name == user.name) {
                return Err(CredError::UserExists {
                    kind: UserKind::Snmp,
                    name: user.name.clone(),
                });
            }
            c.snmp_users.push(user);
            Ok(())
        })
    }

    /// Replace the user with the same name.
    pub fn update_snmp_user(&mut self, user: SnmpUser) -> Result<(), CredError> {
        check_snmp_user(&user)?;
        self.mutate(|c| {
            match c.snmp_users.iter_mut().find(|u| u.name == user.name) {
                Some(slot) => *slot = user,
                None => {
                    return Err(CredError::UserNotFound {
                        kind: UserKind::Snmp,
                        name: user.name.clone(),
                    });
                }
            }
            Ok(())
        })
    }

    pub fn remove_snmp_user(&mut self, name: &str) -> Result<(), CredError> {
        self.mutate(|c| {
            let before = c.snmp_users.len();
            c.snmp_users.retain(|u| u.name != name);
            if c.snmp_users.len() == before {
                return Err(CredError::UserNotFound {
                    kind: UserKind::Snmp,
                    name: name.to_string(),
                });
            }
            Ok(())
        })
    }

    // --- NUT users ----------------------------------------------------------------------

    pub fn nut_users(&self) -> &[NutUser] {
        &self.content.nut_users
    }

    pub fn nut_user(&self, name: &str) -> Option<&NutUser> {
        self.content.nut_users.iter().find(|u| u.name == name)
    }

    pub fn add_nut_user(&mut self, user: NutUser) -> Result<(), CredError> {
        check_nut_user(&user)?;
        self.mutate(|c| {
            if c.nut_users.iter().any(|u| u.name == user.name) {
                return Err(CredError::UserExists {
                    kind: UserKind::Nut,
                    name: user.name.clone(),
                });
            }
            c.nut_users.push(user);
            Ok(())
        })
    }

    /// Replace the user with the same name.
    pub fn update_nut_user(&mut self, user: NutUser) -> Result<(), CredError> {
        check_nut_user(&user)?;
        self.mutate(|c| {
            match c.nut_users.iter_mut().find(|u| u.name == user.name) {
                Some(slot) => *slot = user,
                None => {
                    return Err(CredError::UserNotFound {
                        kind: UserKind::Nut,
                        name: user.name.clone(),
                    });
                }
            }
            Ok(())
        })
    }

    pub fn remove_nut_user(&mut self, name: &str) -> Result<(), CredError> {
        self.mutate(|c| {
            let before = c.nut_users.len();
            c.nut_users.retain(|u| u.name != name);
            if c.nut_users.len() == before {
                return Err(CredError::UserNotFound {
                    kind: UserKind::Nut,
                    name: name.to_string(),
                });
            }
            Ok(())
        })
    }
}

/// Printable ASCII without white space (what both SNMP and NUT names/secrets can carry
/// without quoting trouble), `min..=max` bytes.
fn printable(s: &[u8], min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.iter().all(|b| b.is_ascii_graphic())
}

fn check_snmp_user(u: &SnmpUser) -> Result<(), CredError> {
    let bad = |problem: &str| {
        Err(CredError::InvalidUser {
            kind: UserKind::Snmp,
            problem: problem.to_string(),
        })
    };
    if !printable(u.name.as_bytes(), 1, 32) {
        return bad("name must be 1 to 32 printable US-ASCII characters without white space");
    }
    if let SnmpKeyKind::Localized { engine_id } = &u.key_kind
        && !(5..=32).contains(&engine_id.len())
    {
        return bad("engine id must be 5 to 32 bytes (RFC 3411)");
    }
    let no_auth = u.auth_protocol == SnmpAuthProtocol::None;
    let no_priv = u.priv_protocol == SnmpPrivProtocol::None;
    if no_auth != u.auth_key.is_empty() {
        return bad("an authentication key is needed exactly when an auth protocol is set");
    }
    if no_priv != u.priv_key.is_empty() {
        return bad("a privacy key is needed exactly when a privacy protocol is set");
    }
    if no_auth && !no_priv {
        return bad("privacy requires authentication (USM has no noAuthPriv level)");
    }
    if u.auth_key.len() > 64 || u.priv_key.len() > 64 {
        return bad("keys are at most 64 bytes");
    }
    Ok(())
}

fn check_nut_user(u: &NutUser) -> Result<(), CredError> {
    let bad = |problem: &str| {
        Err(CredError::InvalidUser {
            kind: UserKind::Nut,
            problem: problem.to_string(),
        })
    };
    if !printable(u.name.as_bytes(), 1, 64) {
        return bad("name must be 1 to 64 printable US-ASCII characters without white space");
    }
    if !printable(u.secret.expose().as_bytes(), 1, 128) {
        return bad("password must be 1 to 128 printable US-ASCII characters without white space");
    }
    Ok(())
}
