//! Store-level tests: persistence, corruption and backup, key file, bootstrap channels.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::envelope::{self, Damage};
use super::hash::HASH_RUNS;
use super::*;

const USER: &str = "admin1";
const PASS: &str = "Secret#123";

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn open(dir: &Path) -> (CredentialStore, OpenReport) {
    let (mut s, r) = CredentialStore::open(dir).unwrap();
    s.use_test_cost();
    (s, r)
}

/// A data dir with an administrator saved (so both copies exist and are good).
fn with_admin() -> (tempfile::TempDir, CredentialStore) {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    s.set_admin(USER, PASS).unwrap();
    (d, s)
}

fn main_path(d: &Path) -> std::path::PathBuf {
    d.join(MAIN_FILE_NAME)
}

fn bak_path(d: &Path) -> std::path::PathBuf {
    d.join(BACKUP_FILE_NAME)
}

fn runs() -> u64 {
    HASH_RUNS.with(|c| c.get())
}

fn snmp(name: &str) -> SnmpUser {
    SnmpUser {
        name: name.into(),
        key_kind: SnmpKeyKind::Localized {
            engine_id: vec![0x80, 0x00, 0x1f, 0x88, 0x04],
        },
        auth_protocol: SnmpAuthProtocol::HmacSha256,
        auth_key: SecretBytes::from_slice(&[1; 32]),
        priv_protocol: SnmpPrivProtocol::Aes128,
        priv_key: SecretBytes::from_slice(&[2; 16]),
    }
}

fn nut(name: &str) -> NutUser {
    NutUser {
        name: name.into(),
        secret: SecretString::new("nut#secret"),
        role: NutRole::MonitorSecondary,
    }
}

// --- open / round trip -------------------------------------------------------------------

#[test]
fn first_open_creates_key_and_empty_store() {
    let d = tempfile::tempdir().unwrap();
    let (s, r) = open(d.path());
    assert!(r.created() && r.key_created && r.no_admin() && !r.used_backup());
    assert!(!s.has_admin());
    assert_eq!(s.admin_username(), None);
    let key = d.path().join(KEY_FILE_NAME);
    assert_eq!(fs::read(&key).unwrap().len(), 32);
    for p in [key, main_path(d.path()), bak_path(d.path())] {
        assert_eq!(mode_of(&p), 0o600, "{}", p.display());
    }
    assert!(r.notes().iter().any(|n| n.contains("no administrator")));
    // Second open: same key, main copy, nothing notable but the missing admin.
    let (_, r2) = open(d.path());
    assert_eq!(r2.source, StoreSource::Main);
    assert!(!r2.key_created && r2.no_admin());
}

#[test]
fn round_trip_admin_and_users() {
    let (d, mut s) = with_admin();
    s.add_snmp_user(snmp("manager")).unwrap();
    s.add_nut_user(nut("upsmon")).unwrap();
    let changed = s.admin_changed_at().unwrap();
    drop(s);

    let (s, r) = open(d.path());
    assert_eq!(r.source, StoreSource::Main);
    assert!(r.has_admin && r.notes().is_empty(), "{:?}", r.notes());
    assert_eq!(s.admin_username(), Some(USER));
    assert_eq!(s.admin_changed_at(), Some(changed));
    assert!(s.verify(USER, PASS));
    assert!(!s.verify(USER, "Secret#124"));
    assert!(!s.verify("admin2", PASS));
    assert!(!s.verify("ADMIN1", PASS), "usernames are case-sensitive");
    assert_eq!(s.snmp_user("manager"), Some(&snmp("manager")));
    assert_eq!(s.nut_user("upsmon"), Some(&nut("upsmon")));

    // Nothing readable on disk.
    let raw = fs::read(main_path(d.path())).unwrap();
    for needle in [USER.as_bytes(), b"argon2id", b"nut#secret", b"manager"] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle),
            "plaintext on disk"
        );
    }
    assert_eq!(raw, fs::read(bak_path(d.path())).unwrap());
}

#[test]
fn every_write_uses_a_fresh_nonce() {
    let (d, s) = with_admin();
    let a = fs::read(main_path(d.path())).unwrap();
    s.save().unwrap();
    let b = fs::read(main_path(d.path())).unwrap();
    assert_ne!(a.get(12..24), b.get(12..24));
}

#[test]
fn set_admin_goes_through_the_policy() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    let e = s.set_admin("admin", PASS).unwrap_err();
    assert!(
        matches!(&e, CredError::Policy(p) if p.rule() == "username.length"),
        "{e}"
    );
    let e = s.set_admin(USER, "xxadmin1XX").unwrap_err();
    assert!(
        matches!(&e, CredError::Policy(PolicyError::ContainsUsername)),
        "{e}"
    );
    assert!(e.to_string().contains("must not contain the username"));
    assert!(!s.has_admin());
    // Reset replaces the account.
    s.set_admin(USER, PASS).unwrap();
    s.set_admin("operator", "Other#456").unwrap();
    assert!(s.verify("operator", "Other#456"));
    assert!(!s.verify(USER, PASS));
}

#[test]
fn change_password() {
    let (d, mut s) = with_admin();
    assert!(matches!(
        s.change_password("Wrong#123", "New#pass1"),
        Err(CredError::WrongPassword)
    ));
    assert!(matches!(
        s.change_password(PASS, "short"),
        Err(CredError::Policy(PolicyError::Length { .. }))
    ));
    s.change_password(PASS, "New#pass1").unwrap();
    assert!(s.verify(USER, "New#pass1"));
    assert!(!s.verify(USER, PASS));
    let (s2, _) = open(d.path());
    assert!(s2.verify(USER, "New#pass1"));

    let e = tempfile::tempdir().unwrap();
    let (mut empty, _) = open(e.path());
    assert!(matches!(
        empty.change_password(PASS, "New#pass1"),
        Err(CredError::NoAdmin)
    ));
}

// --- timing path -------------------------------------------------------------------------

#[test]
fn verify_always_runs_exactly_one_hash() {
    let (_d, s) = with_admin();
    for (u, p) in [
        (USER, PASS),
        (USER, "wrong"),
        ("nobody", PASS),
        ("nobody", "wrong"),
        ("", ""),
    ] {
        let before = runs();
        let _ = s.verify(u, p);
        assert_eq!(runs(), before + 1, "user {u:?}");
    }
    // No administrator at all: the dummy hash still runs.
    let d = tempfile::tempdir().unwrap();
    let (empty, _) = open(d.path());
    let _ = hash::dummy_hash(); // computed once, outside the measured call
    let before = runs();
    assert!(!empty.verify(USER, PASS));
    assert_eq!(runs(), before + 1);
}

// --- corruption and backup -----------------------------------------------------------------

fn assert_restored(d: &Path, expect: impl Fn(&Damage) -> bool) {
    let good = fs::read(bak_path(d)).unwrap();
    let (s, r) = open(d);
    match &r.source {
        StoreSource::Backup {
            main_damage,
            restore_error: None,
        } => assert!(expect(main_damage), "{main_damage:?}"),
        other => panic!("expected backup, got {other:?}"),
    }
    assert!(r.used_backup());
    assert!(r.notes().iter().any(|n| n.contains("restored from")));
    assert!(s.verify(USER, PASS));
    assert_eq!(fs::read(main_path(d)).unwrap(), good, "main not restored");
    // And it is good again next time.
    assert_eq!(open(d).1.source, StoreSource::Main);
}

#[test]
fn tampered_ciphertext_uses_backup() {
    let (d, _s) = with_admin();
    let mut b = fs::read(main_path(d.path())).unwrap();
    b[30] ^= 0x01;
    fs::write(main_path(d.path()), &b).unwrap();
    assert_restored(d.path(), |x| *x == Damage::AuthenticationFailed);
}

#[test]
fn truncated_store_uses_backup() {
    let (d, _s) = with_admin();
    let b = fs::read(main_path(d.path())).unwrap();
    fs::write(main_path(d.path()), &b[..20]).unwrap();
    assert_restored(d.path(), |x| matches!(x, Damage::Truncated(20)));
    let b = fs::read(main_path(d.path())).unwrap();
    fs::write(main_path(d.path()), &b[..b.len() - 1]).unwrap();
    assert_restored(d.path(), |x| *x == Damage::AuthenticationFailed);
}

#[test]
fn wrong_version_uses_backup() {
    let (d, _s) = with_admin();
    let mut b = fs::read(main_path(d.path())).unwrap();
    b[8] = 99;
    fs::write(main_path(d.path()), &b).unwrap();
    assert_restored(d.path(), |x| *x == Damage::UnsupportedVersion(99));
}

#[test]
fn missing_main_uses_backup() {
    let (d, _s) = with_admin();
    fs::remove_file(main_path(d.path())).unwrap();
    assert_restored(d.path(), |x| *x == Damage::Missing);
}

#[test]
fn damaged_backup_is_rewritten_from_main() {
    let (d, _s) = with_admin();
    fs::write(bak_path(d.path()), b"garbage").unwrap();
    let (s, r) = open(d.path());
    assert_eq!(r.source, StoreSource::Main);
    assert_eq!(r.backup_damage, Some(Damage::BadMagic));
    assert!(s.has_admin());
    assert_eq!(
        fs::read(bak_path(d.path())).unwrap(),
        fs::read(main_path(d.path())).unwrap()
    );
}

#[test]
fn both_corrupt_is_a_clear_error() {
    let (d, _s) = with_admin();
    fs::write(main_path(d.path()), b"").unwrap();
    let mut b = fs::read(bak_path(d.path())).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0x80;
    fs::write(bak_path(d.path()), &b).unwrap();
    let e = CredentialStore::open(d.path()).unwrap_err();
    match &e {
        CredError::Unreadable {
            main_damage,
            backup_damage,
            ..
        } => {
            assert_eq!(*main_damage, Damage::Truncated(0));
            assert_eq!(*backup_damage, Damage::AuthenticationFailed);
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("credentials.enc") && msg.contains("credentials.bak"),
        "{msg}"
    );
    assert!(msg.contains("[Credentials]"), "{msg}");
}

#[test]
fn main_damaged_and_backup_missing_is_an_error_not_an_empty_store() {
    let (d, _s) = with_admin();
    fs::remove_file(bak_path(d.path())).unwrap();
    fs::write(main_path(d.path()), b"UPSGCRED").unwrap();
    let e = CredentialStore::open(d.path()).unwrap_err();
    assert!(
        matches!(
            e,
            CredError::Unreadable {
                backup_damage: Damage::Missing,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn wrong_key_is_an_error() {
    let (d, _s) = with_admin();
    let key = d.path().join(KEY_FILE_NAME);
    fs::write(&key, [0x42u8; 32]).unwrap();
    chmod(&key, 0o600);
    let e = CredentialStore::open(d.path()).unwrap_err();
    assert!(
        matches!(
            e,
            CredError::Unreadable {
                main_damage: Damage::AuthenticationFailed,
                backup_damage: Damage::AuthenticationFailed,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("key file does not belong"), "{e}");
}

#[test]
fn unsupported_content_format_inside_valid_encryption_uses_backup() {
    let (d, s) = with_admin();
    drop(s);
    let key_bytes: [u8; 32] = fs::read(d.path().join(KEY_FILE_NAME))
        .unwrap()
        .try_into()
        .unwrap();
    let key = zeroize::Zeroizing::new(key_bytes);
    let sealed = envelope::seal(&key, br#"{"format":7}"#).unwrap();
    fs::write(main_path(d.path()), sealed).unwrap();
    assert_restored(
        d.path(),
        |x| matches!(x, Damage::BadPayload(m) if m.contains("format 7")),
    );
}

// --- key file ------------------------------------------------------------------------------

#[test]
fn group_or_world_readable_key_is_refused() {
    let (d, _s) = with_admin();
    let key = d.path().join(KEY_FILE_NAME);
    for mode in [0o644, 0o640, 0o604, 0o620] {
        chmod(&key, mode);
        let e = CredentialStore::open(d.path()).unwrap_err();
        assert!(matches!(e, CredError::InsecureFile { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{mode:04o}")) && msg.contains("0600"),
            "{msg}"
        );
        assert!(msg.contains("credentials.key"), "{msg}");
    }
    chmod(&key, 0o400);
    assert!(CredentialStore::open(d.path()).is_ok());
}

#[test]
fn key_of_wrong_length_is_refused() {
    let (d, _s) = with_admin();
    let key = d.path().join(KEY_FILE_NAME);
    fs::write(&key, [1u8; 31]).unwrap();
    let e = CredentialStore::open(d.path()).unwrap_err();
    assert!(matches!(e, CredError::KeyInvalid { .. }), "{e:?}");
    assert!(e.to_string().contains("31 bytes"));
}

#[test]
fn missing_key_with_existing_store_is_not_silently_replaced() {
    let (d, _s) = with_admin();
    fs::remove_file(d.path().join(KEY_FILE_NAME)).unwrap();
    let e = CredentialStore::open(d.path()).unwrap_err();
    assert!(matches!(e, CredError::KeyMissing { .. }), "{e:?}");
    assert!(!d.path().join(KEY_FILE_NAME).exists());
}

#[test]
fn symlinked_key_is_not_followed() {
    let (d, _s) = with_admin();
    let key = d.path().join(KEY_FILE_NAME);
    let elsewhere = d.path().join("other");
    fs::rename(&key, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &key).unwrap();
    assert!(CredentialStore::open(d.path()).is_err());
}

// --- failed saves ----------------------------------------------------------------------------

#[test]
fn failed_save_leaves_memory_and_disk_unchanged() {
    let (d, mut s) = with_admin();
    let before = fs::read(main_path(d.path())).unwrap();
    // Make the rename over credentials.enc impossible: a non-empty directory in its place.
    fs::remove_file(main_path(d.path())).unwrap();
    fs::create_dir(main_path(d.path())).unwrap();
    fs::write(main_path(d.path()).join("x"), b"x").unwrap();
    let e = s.add_nut_user(nut("upsmon")).unwrap_err();
    assert!(matches!(e, CredError::Write(_)), "{e:?}");
    assert!(s.nut_users().is_empty());
    assert_eq!(fs::read(bak_path(d.path())).unwrap(), before);
}

// --- SNMP / NUT users ---------------------------------------------------------------------

#[test]
fn snmp_user_crud() {
    let (d, mut s) = with_admin();
    s.add_snmp_user(snmp("mgr1")).unwrap();
    assert!(matches!(
        s.add_snmp_user(snmp("mgr1")),
        Err(CredError::UserExists {
            kind: UserKind::Snmp,
            ..
        })
    ));
    let mut u = snmp("mgr1");
    u.key_kind = SnmpKeyKind::Master;
    u.priv_protocol = SnmpPrivProtocol::Aes256;
    u.priv_key = SecretBytes::from_slice(&[9; 32]);
    s.update_snmp_user(u.clone()).unwrap();
    assert!(matches!(
        s.update_snmp_user(snmp("ghost")),
        Err(CredError::UserNotFound { .. })
    ));
    assert_eq!(open(d.path()).0.snmp_user("mgr1"), Some(&u));
    s.remove_snmp_user("mgr1").unwrap();
    assert!(matches!(
        s.remove_snmp_user("mgr1"),
        Err(CredError::UserNotFound { .. })
    ));
    assert!(open(d.path()).0.snmp_users().is_empty());
}

#[test]
fn snmp_user_validation() {
    let (_d, mut s) = with_admin();
    let mut cases = Vec::new();
    let mut u = snmp("has space");
    cases.push(u.clone());
    u = snmp("x");
    u.auth_protocol = SnmpAuthProtocol::None;
    cases.push(u.clone()); // key without protocol
    u.auth_key = SecretBytes::default();
    cases.push(u.clone()); // priv without auth
    u = snmp("x");
    u.priv_key = SecretBytes::default();
    cases.push(u.clone()); // protocol without key
    u = snmp("x");
    u.key_kind = SnmpKeyKind::Localized {
        engine_id: vec![1, 2],
    };
    cases.push(u.clone());
    u = snmp(&"n".repeat(33));
    cases.push(u);
    for c in cases {
        assert!(
            matches!(
                s.add_snmp_user(c.clone()),
                Err(CredError::InvalidUser {
                    kind: UserKind::Snmp,
                    ..
                })
            ),
            "{c:?}"
        );
    }
    assert!(s.snmp_users().is_empty());
    // noAuthNoPriv is valid.
    let mut plain = snmp("public1");
    plain.auth_protocol = SnmpAuthProtocol::None;
    plain.auth_key = SecretBytes::default();
    plain.priv_protocol = SnmpPrivProtocol::None;
    plain.priv_key = SecretBytes::default();
    s.add_snmp_user(plain).unwrap();
}

#[test]
fn nut_user_crud_and_validation() {
    let (d, mut s) = with_admin();
    s.add_nut_user(nut("upsmon")).unwrap();
    assert!(matches!(
        s.add_nut_user(nut("upsmon")),
        Err(CredError::UserExists {
            kind: UserKind::Nut,
            ..
        })
    ));
    let mut u = nut("upsmon");
    u.role = NutRole::MonitorPrimary;
    u.secret = SecretString::new("other#1");
    s.update_nut_user(u.clone()).unwrap();
    assert_eq!(open(d.path()).0.nut_user("upsmon"), Some(&u));
    let mut bad = nut("bad");
    bad.secret = SecretString::new("has space");
    assert!(matches!(
        s.add_nut_user(bad),
        Err(CredError::InvalidUser {
            kind: UserKind::Nut,
            ..
        })
    ));
    assert!(s.add_nut_user(nut("")).is_err());
    s.remove_nut_user("upsmon").unwrap();
    assert!(s.remove_nut_user("upsmon").is_err());
    assert!(open(d.path()).0.nut_users().is_empty());
}

// --- install file ---------------------------------------------------------------------------

fn write_install(d: &Path, text: &str, mode: u32) -> std::path::PathBuf {
    let p = d.join(INSTALL_FILE_NAME);
    fs::write(&p, text).unwrap();
    chmod(&p, mode);
    p
}

#[test]
fn install_file_is_consumed_and_scrubbed() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    let p = write_install(d.path(), "username=admin1\npassword=Secret#123\n", 0o600);
    assert_eq!(s.consume_install_file(&p).unwrap().as_deref(), Some(USER));
    assert!(!p.exists());
    assert!(s.verify(USER, PASS));
    assert!(open(d.path()).0.verify(USER, PASS));
    // Nothing left to consume.
    assert_eq!(s.consume_install_file(&p).unwrap(), None);
}

#[test]
fn scrub_overwrites_before_unlinking() {
    // Keep a second handle open: after unlink it still sees the inode, which must be zeros.
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    let p = write_install(d.path(), "username=admin1\npassword=Secret#123\n", 0o600);
    let mut keep = fs::File::open(&p).unwrap();
    s.consume_install_file(&p).unwrap();
    let mut left = Vec::new();
    std::io::Read::read_to_end(&mut keep, &mut left).unwrap();
    assert!(!left.is_empty() && left.iter().all(|&b| b == 0), "{left:?}");
}

#[test]
fn invalid_install_file_is_scrubbed_with_the_rule_named() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    let p = write_install(d.path(), "username=admin1\npassword=secret#123\n", 0o600);
    let e = s.consume_install_file(&p).unwrap_err();
    match &e {
        CredError::InstallFile {
            policy, scrubbed, ..
        } => {
            assert_eq!(*policy, Some(PolicyError::NoUppercase));
            assert!(*scrubbed);
        }
        other => panic!("{other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("upper-case") && msg.contains("scrubbed"),
        "{msg}"
    );
    assert!(!msg.contains("secret#123"), "{msg}");
    assert!(!p.exists());
    assert!(!s.has_admin());

    // Malformed content: scrubbed too.
    let p = write_install(d.path(), "user=admin1\n", 0o600);
    let e = s.consume_install_file(&p).unwrap_err();
    assert!(e.to_string().contains("unknown key"), "{e}");
    assert!(!p.exists());
}

#[test]
fn install_file_readable_by_others_is_refused_and_scrubbed() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    let p = write_install(d.path(), "username=admin1\npassword=Secret#123\n", 0o644);
    let e = s.consume_install_file(&p).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("0644") && msg.contains("0600"), "{msg}");
    assert!(matches!(e, CredError::InstallFile { scrubbed: true, .. }));
    assert!(!p.exists());
    assert!(
        !s.has_admin(),
        "a leaked password must not become the admin's"
    );
}

#[test]
fn install_symlink_is_refused_and_not_touched() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    let target = d.path().join("target");
    fs::write(&target, "username=admin1\npassword=Secret#123\n").unwrap();
    chmod(&target, 0o600);
    let link = d.path().join(INSTALL_FILE_NAME);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = s.consume_install_file(&link).unwrap_err();
    assert!(
        matches!(
            e,
            CredError::InstallFile {
                scrubbed: false,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        "username=admin1\npassword=Secret#123\n"
    );
    assert!(!s.has_admin());
}

// --- setup token ------------------------------------------------------------------------------

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn setup_token_is_one_time() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    let token = SetupToken::create_at(d.path(), t0()).unwrap();
    assert_eq!(token.len(), 44, "{token}");
    let file = d.path().join(SETUP_TOKEN_FILE_NAME);
    assert_eq!(mode_of(&file), 0o600);
    let stored = fs::read_to_string(&file).unwrap();
    assert!(!stored.contains(&token) && !stored.contains(&token.replace('-', "")));
    assert!(SetupToken::pending(d.path()));

    let later = t0() + Duration::from_secs(3600);
    let e = SetupToken::redeem_at(&mut s, "00000000-0000", USER, PASS, later).unwrap_err();
    assert!(
        matches!(e, CredError::SetupToken(TokenProblem::Mismatch)),
        "{e:?}"
    );
    // A policy failure keeps the token usable.
    let e = SetupToken::redeem_at(&mut s, &token, USER, "weak", later).unwrap_err();
    assert!(matches!(e, CredError::Policy(_)), "{e:?}");
    assert!(file.exists());

    // Case and dashes do not matter.
    SetupToken::redeem_at(&mut s, &token.to_uppercase(), USER, PASS, later).unwrap();
    assert!(s.verify(USER, PASS));
    assert!(!file.exists());
    let e = SetupToken::redeem_at(&mut s, &token, "other1", "Other#456", later).unwrap_err();
    assert!(
        matches!(e, CredError::SetupToken(TokenProblem::NonePending)),
        "{e:?}"
    );
    assert!(s.verify(USER, PASS));
}

#[test]
fn setup_token_expires() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    let token = SetupToken::create_at(d.path(), t0()).unwrap();
    let e = SetupToken::redeem_at(&mut s, &token, USER, PASS, t0() + SETUP_TOKEN_TTL).unwrap_err();
    assert!(
        matches!(e, CredError::SetupToken(TokenProblem::Expired)),
        "{e:?}"
    );
    assert!(e.to_string().contains("expired"));
    assert!(!SetupToken::pending(d.path()));
    assert!(!s.has_admin());

    // Just inside the window works.
    let token = SetupToken::create_at(d.path(), t0()).unwrap();
    let edge = t0() + SETUP_TOKEN_TTL - Duration::from_secs(1);
    SetupToken::redeem_at(&mut s, &token, USER, PASS, edge).unwrap();

    // A token "from the future" (clock went back) is not valid for longer than its TTL.
    let d2 = tempfile::tempdir().unwrap();
    let (mut s2, _) = open(d2.path());
    let token = SetupToken::create_at(d2.path(), t0()).unwrap();
    let e = SetupToken::redeem_at(
        &mut s2,
        &token,
        USER,
        PASS,
        t0() - Duration::from_secs(3600),
    )
    .unwrap_err();
    assert!(
        matches!(e, CredError::SetupToken(TokenProblem::Expired)),
        "{e:?}"
    );
}

#[test]
fn setup_token_only_creates_the_first_admin() {
    let (d, mut s) = with_admin();
    let token = SetupToken::create_at(d.path(), t0()).unwrap();
    let e = SetupToken::redeem_at(&mut s, &token, "intruder", "Intrude#1", t0()).unwrap_err();
    assert!(
        matches!(e, CredError::SetupToken(TokenProblem::AdminExists)),
        "{e:?}"
    );
    assert!(!SetupToken::pending(d.path()));
    assert!(s.verify(USER, PASS));
}

#[test]
fn setup_token_file_writable_by_others_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = open(d.path());
    let token = SetupToken::create_at(d.path(), t0()).unwrap();
    chmod(&d.path().join(SETUP_TOKEN_FILE_NAME), 0o666);
    let e = SetupToken::redeem_at(&mut s, &token, USER, PASS, t0()).unwrap_err();
    assert!(matches!(e, CredError::InsecureFile { .. }), "{e:?}");
    assert!(!s.has_admin());
    assert!(SetupToken::discard(d.path()).unwrap());
    assert!(!SetupToken::discard(d.path()).unwrap());
}

// --- hostile files -------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever `credentials.enc` contains, opening never panics; with a good backup it always
    /// succeeds (through the backup unless the bytes happen to be valid).
    #[test]
    fn arbitrary_main_file_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                                        keep_backup in any::<bool>()) {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = open(d.path());
            s.set_admin(USER, PASS).unwrap();
        }
        fs::write(main_path(d.path()), &bytes).unwrap();
        if !keep_backup {
            fs::write(bak_path(d.path()), bytes.iter().rev().copied().collect::<Vec<u8>>()).unwrap();
        }
        match CredentialStore::open(d.path()) {
            Ok((s, r)) => {
                prop_assert!(keep_backup);
                prop_assert!(r.used_backup());
                prop_assert!(s.has_admin());
            }
            Err(e) => {
                prop_assert!(!keep_backup);
                prop_assert!(matches!(e, CredError::Unreadable { .. }), "{e:?}");
            }
        }
    }

    /// Authentic but arbitrary payloads (a writer bug, a future format) never panic either.
    #[test]
    fn arbitrary_authentic_payload_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let key = zeroize::Zeroizing::new([5u8; 32]);
        let sealed = envelope::seal(&key, &payload).unwrap();
        let _ = super::store::decode(&key, &sealed);
    }
}
