//! Behaviour of the config subsystem as a whole: loading rules, backups, saving, injection,
//! validation reports and round-trips. Per-grammar unit tests live next to each module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

const INJECTION: &str = "x\r\n[Credentials]\r\nusername=evil";

struct Dir {
    _t: tempfile::TempDir,
    main: PathBuf,
    backup: PathBuf,
}

fn dir() -> Dir {
    let t = tempfile::tempdir().unwrap();
    let main = t.path().join(MAIN_FILE);
    let backup = t.path().join(BACKUP_FILE);
    Dir {
        _t: t,
        main,
        backup,
    }
}

#[cfg(unix)]
fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn write(p: &Path, text: &str) {
    fs::write(p, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn kinds(ws: &[ConfigWarning]) -> Vec<WarningKind> {
    ws.iter().map(|w| w.kind).collect()
}

// ----- defaults --------------------------------------------------------------------------

#[test]
fn defaults_are_sensible_and_credential_free() {
    let c = Config::default();
    assert_eq!(c.communication.device, "/dev/ttyS0");
    assert_eq!(c.get("Communication", "baud").unwrap(), "2400");
    assert_eq!(c.shutdown.policy, ShutdownPolicy::LowBattery);
    assert_eq!(
        c.shutdown.os_shutdown_command.args(),
        ["/sbin/shutdown", "-h", "+0"]
    );
    assert_eq!(c.shutdown.command_file, None);
    assert_eq!(c.web.port, 6547);
    assert_eq!(c.web.bind.to_string(), "0.0.0.0");
    assert_eq!(c.web.idle_timeout_min, 15);
    assert!(!c.snmp.enabled && !c.snmp.v1_v2c_enabled);
    assert_eq!(
        (c.nut.bind.to_string(), c.nut.port, c.nut.enabled),
        ("127.0.0.1".into(), 3493, false)
    );
    assert_eq!(
        (c.nis.bind.to_string(), c.nis.port, c.nis.enabled),
        ("127.0.0.1".into(), 3551, false)
    );
    assert!(!c.has_credentials());
    assert!(c.schedule.is_empty());
}

#[test]
fn built_in_defaults_pass_their_own_validation() {
    // `from_static` skips validation; prove the literals would have passed it.
    let c = Config::default();
    let text = c.to_ini().unwrap();
    let (back, warnings) = Config::from_document(&ini::parse(text.as_bytes()).unwrap());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(back, c);
    assert!(Argv::parse(&c.shutdown.os_shutdown_command.to_string()).is_ok());
    assert!(FileName::parse(c.web.cert_file.as_str()).is_ok());
    assert!(FileName::parse(c.web.key_file.as_str()).is_ok());
}

// ----- setter and getter -----------------------------------------------------------------

#[test]
fn set_and_get_are_case_insensitive_and_canonical() {
    let mut c = Config::default();
    c.set("shutdown", "POLICY", "Threshold").unwrap();
    assert_eq!(c.shutdown.policy, ShutdownPolicy::Threshold);
    assert_eq!(c.get("Shutdown", "policy").unwrap(), "threshold");
    c.set("Shutdown", "turn_off_ups", "no").unwrap();
    assert_eq!(c.get("Shutdown", "turn_off_ups").unwrap(), "false");
}

#[test]
fn baud_other_than_2400_is_rejected_clearly() {
    let mut c = Config::default();
    c.set("Communication", "baud", "2400").unwrap();
    let e = c.set("Communication", "baud", "9600").unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("[Communication]") && s.contains("baud") && s.contains("2400"),
        "{s}"
    );
}

#[test]
fn device_rules() {
    let mut c = Config::default();
    c.set("Communication", "device", "/dev/ttyUSB0").unwrap();
    for bad in [
        "ttyS0",
        "/etc/passwd",
        "/dev/../etc/shadow",
        "/dev/",
        "/dev/tty S0",
        "/dev/a;b",
    ] {
        assert!(c.set("Communication", "device", bad).is_err(), "{bad}");
    }
    assert_eq!(c.communication.device, "/dev/ttyUSB0");
}

#[test]
fn every_range_is_enforced_and_errors_name_the_key() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // section, key, ok, bad
        ("Communication", "poll_interval_ms", "200", "199"),
        ("Communication", "reply_timeout_ms", "10000", "10001"),
        ("Communication", "retries", "0", "11"),
        ("Shutdown", "on_battery_delay_s", "1", "0"),
        ("Shutdown", "low_battery_runtime_s", "7200", "7201"),
        ("Shutdown", "threshold_charge_pct", "100", "101"),
        ("Shutdown", "threshold_runtime_min", "1440", "1441"),
        ("Shutdown", "command_file_duration_s", "3600", "3601"),
        ("Shutdown", "os_shutdown_duration_s", "10", "9"),
        ("Shutdown", "sleep_hours", "99", "100"),
        ("Shutdown", "comm_lost_on_battery_delay_s", "3600", "3601"),
        ("Shutdown", "policy", "low_runtime", "never"),
        ("Shutdown", "ups_off_mode", "stay_off", "explode"),
        ("Shutdown", "turn_off_ups", "true", "perhaps"),
        ("Shutdown", "comm_lost_on_battery_shutdown", "off", "2"),
        ("Logging", "event_log_max_kb", "256", "255"),
        ("Logging", "event_log_files", "2", "1"),
        ("Logging", "datalog_interval_s", "10", "9"),
        ("Logging", "datalog_max_kb", "1024", "1023"),
        ("Logging", "datalog_files", "100", "101"),
        ("Web", "port", "443", "0"),
        ("Web", "bind", "::", "example.com"),
        ("Web", "idle_timeout_min", "15", "16"),
        ("SNMP", "port", "161", "70000"),
        ("SNMP", "enabled", "yes", "y"),
        ("SNMP", "managers", "10.0.0.0/8, 192.0.2.1", "10.0.0.0/33"),
        ("SNMP", "communities", "public:ro, ops:rw", "public:admin"),
        ("SNMP", "trap_receivers", "192.0.2.9", "host.example"),
        ("NUT", "port", "3493", "-1"),
        ("NIS", "bind", "127.0.0.1", "127.0.0.256"),
    ];
    for (section, key, ok, bad) in cases {
        let mut c = Config::default();
        c.set(section, key, ok)
            .unwrap_or_else(|e| panic!("{section}.{key}={ok}: {e}"));
        let before = c.clone();
        let e = c.set(section, key, bad).unwrap_err();
        assert!(
            matches!(e, ConfigError::InvalidValue { .. }),
            "{section}.{key}: {e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains(section) && msg.contains(key), "{msg}");
        assert_eq!(
            c, before,
            "failed set must not change anything ({section}.{key})"
        );
    }
}

#[test]
fn log_floors_mention_anti_forensics() {
    let e = Config::default()
        .set("Logging", "event_log_files", "1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("floor"), "{e}");
}

#[test]
fn unknown_sections_and_keys_are_errors_for_set() {
    let mut c = Config::default();
    assert!(matches!(
        c.set("Nope", "x", "1"),
        Err(ConfigError::UnknownSection { .. })
    ));
    assert!(matches!(
        c.set("Web", "colour", "1"),
        Err(ConfigError::UnknownKey { .. })
    ));
    assert!(matches!(
        c.set("Events", "no_such_event", "log"),
        Err(ConfigError::UnknownKey { .. })
    ));
    assert!(matches!(
        c.get("Web", "colour"),
        Err(ConfigError::UnknownKey { .. })
    ));
}

#[test]
fn command_file_names_refuse_path_traversal() {
    let mut c = Config::default();
    c.set("Shutdown", "command_file", "shutdown-db.sh").unwrap();
    for bad in [
        "../../bin/sh",
        "/bin/sh",
        "..",
        "a/b.sh",
        "a\\b.sh",
        ".profile",
        "-x",
        "a b",
    ] {
        let e = c.set("Shutdown", "command_file", bad).unwrap_err();
        assert!(e.to_string().contains("command_file"), "{e}");
        let ev = format!("log, command_file:{bad}:10");
        assert!(c.set("Events", "on_battery", &ev).is_err(), "{ev}");
    }
    assert!(c.set("Shutdown", "command_file", "a\0b").is_err());
    assert!(c.set("Web", "cert_file", "../key.pem").is_err());
    assert!(c.set("Web", "pkcs12_file", "/root/x.p12").is_err());
    c.set("Shutdown", "command_file", "").unwrap();
    assert_eq!(c.shutdown.command_file, None);
}

#[test]
fn os_shutdown_command_is_split_without_a_shell() {
    let mut c = Config::default();
    c.set(
        "Shutdown",
        "os_shutdown_command",
        "/usr/bin/systemctl poweroff 'now please' ;",
    )
    .unwrap();
    assert_eq!(
        c.shutdown.os_shutdown_command.args(),
        ["/usr/bin/systemctl", "poweroff", "now please", ";"]
    );
    assert_eq!(
        c.get("Shutdown", "os_shutdown_command").unwrap(),
        "/usr/bin/systemctl poweroff 'now please' ;"
    );
    assert!(
        c.set("Shutdown", "os_shutdown_command", "shutdown -h now")
            .is_err()
    );
    assert!(c.set("Shutdown", "os_shutdown_command", "").is_err());
}

#[test]
fn events_setter() {
    let mut c = Config::default();
    c.set(
        "Events",
        "on_battery",
        "log,command_file:onbatt.sh:30,notify,shutdown:60",
    )
    .unwrap();
    assert_eq!(
        c.get("Events", "on_battery").unwrap(),
        "log, notify, command_file:onbatt.sh:30, shutdown:60"
    );
    assert!(
        c.set("Events", "login", "none")
            .unwrap_err()
            .to_string()
            .contains("always logged")
    );
    assert!(c.set("Events", "smart_trim", "shutdown").is_err());
    assert!(
        c.set("Events", "on_battery", "command_file:x.sh:99999")
            .is_err()
    );
}

#[test]
fn schedule_windows_respect_shutdown_durations() {
    let mut c = Config::default();
    c.set("Shutdown", "command_file_duration_s", "60").unwrap();
    c.set("Shutdown", "os_shutdown_duration_s", "120").unwrap();
    // 3 minutes = 180 s = A + B: just enough.
    c.set("Schedule", "tight", "daily 01:00 wake 01:03")
        .unwrap();
    let e = c
        .set("Schedule", "short", "daily 01:00 wake 01:02")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[Schedule]") && e.contains("short") && e.contains("shorter"),
        "{e}"
    );
    // Growing A or B past an accepted schedule is refused, naming the schedule.
    let e = c
        .set("Shutdown", "os_shutdown_duration_s", "121")
        .unwrap_err()
        .to_string();
    assert!(e.contains("tight"), "{e}");
    assert_eq!(c.shutdown.os_shutdown_duration_s, 120);
    c.set("Schedule", "weekend", "weekly sat 23:00 wake sun 07:00")
        .unwrap();
    c.set(
        "Schedule",
        "xmas",
        "once 2026-12-24T22:00 wake 2026-12-25T07:00",
    )
    .unwrap();
    assert_eq!(c.schedule.len(), 3);
    c.set("Schedule", "tight", "").unwrap();
    assert_eq!(c.schedule.len(), 2);
    assert!(
        c.set("Schedule", "bad name", "daily 01:00 wake 02:00")
            .is_err()
    );
}

#[test]
fn schedule_limit() {
    let mut c = Config::default();
    for i in 0..schedule::MAX_SCHEDULES {
        c.set("Schedule", &format!("s{i}"), "daily 01:00 wake 06:00")
            .unwrap();
    }
    assert!(
        c.set("Schedule", "one_more", "daily 01:00 wake 06:00")
            .is_err()
    );
    c.set("Schedule", "s0", "daily 02:00 wake 06:00").unwrap();
}

#[test]
fn schedule_is_checked_after_shutdown_whatever_the_file_order() {
    let text =
        "[Schedule]\nnight = daily 01:00 wake 01:05\n[Shutdown]\nos_shutdown_duration_s = 600\n";
    let (c, ws) = Config::from_document(&ini::parse(text.as_bytes()).unwrap());
    assert_eq!(c.shutdown.os_shutdown_duration_s, 600);
    assert!(c.schedule.is_empty());
    assert_eq!(kinds(&ws), [WarningKind::InvalidValue]);
    assert_eq!(ws[0].line, Some(2));
}

// ----- injection -------------------------------------------------------------------------

#[test]
fn injection_is_rejected_by_the_setter_everywhere() {
    let mut c = Config::default();
    let targets = [
        ("Communication", "device"),
        ("Shutdown", "command_file"),
        ("Shutdown", "os_shutdown_command"),
        ("Events", "on_battery"),
        ("Schedule", "s1"),
        ("Web", "cert_file"),
        ("SNMP", "communities"),
        ("Credentials", "username"),
        ("Credentials", "password"),
    ];
    for (s, k) in targets {
        let e = c.set(s, k, INJECTION).unwrap_err();
        assert!(
            matches!(e, ConfigError::InvalidValue { ref key, .. } if key == k),
            "{s}.{k}: {e:?}"
        );
        assert!(e.to_string().contains(k));
    }
    for v in ["a]b", "[Credentials]", "a\nb", "a\rb", "a\0b", "a\u{85}b"] {
        assert!(c.set("Communication", "device", v).is_err(), "{v:?}");
    }
    for k in ["a=b", "[x", "x]", "a b", "on_battery\r\n[Credentials]"] {
        assert!(
            matches!(
                c.set("Events", k, "log"),
                Err(ConfigError::InvalidKey { .. })
            ),
            "{k:?}"
        );
    }
    assert_eq!(c, Config::default());
}

#[test]
fn injection_through_public_fields_is_rejected_by_save() {
    let d = dir();
    let mut c = Config::default();
    c.communication.device = INJECTION.to_string();
    let e = c.save(&d.main, &d.backup).unwrap_err();
    assert!(e.to_string().contains("device"), "{e}");
    assert!(!d.main.exists() && !d.backup.exists());

    let mut c = Config::default();
    c.snmp.communities.push(Community {
        name: "x\n[Credentials]".into(),
        access: Access::ReadOnly,
    });
    let e = c.save(&d.main, &d.backup).unwrap_err();
    assert!(e.to_string().contains("communities"), "{e}");

    // Out-of-range numbers assigned directly are caught the same way.
    let mut c = Config::default();
    c.logging.event_log_files = 0;
    let e = c.save(&d.main, &d.backup).unwrap_err();
    assert!(e.to_string().contains("event_log_files"), "{e}");
    assert!(!d.main.exists());
}

#[test]
fn schedules_too_short_via_public_fields_are_rejected_by_save() {
    let d = dir();
    let mut c = Config::default();
    c.set("Schedule", "n", "daily 01:00 wake 01:05").unwrap();
    c.shutdown.os_shutdown_duration_s = 3600;
    let e = c.save(&d.main, &d.backup).unwrap_err().to_string();
    assert!(e.contains("[Schedule]") && e.contains('n'), "{e}");
}

#[test]
fn a_crafted_file_cannot_inject_with_lone_cr() {
    let d = dir();
    write(
        &d.main,
        "[Web]\nport = 6547\r[Credentials]\rusername = evil\n",
    );
    write(&d.backup, "[Web]\nport = 8443\n");
    let out = load(&d.main, &d.backup);
    assert!(out.used_backup);
    assert!(!out.config.has_credentials());
    assert_eq!(out.config.web.port, 8443);
}

// ----- loading ---------------------------------------------------------------------------

#[test]
fn good_main_loads_and_refreshes_the_backup() {
    let d = dir();
    let text = "# mine\n[Logging]\nevent_log_files = 7\n";
    write(&d.main, text);
    let out = load(&d.main, &d.backup);
    assert_eq!(out.source, ConfigSource::Main);
    assert!(!out.used_backup && out.backup_refreshed && out.main_error.is_none());
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    assert_eq!(out.config.logging.event_log_files, 7);
    assert_eq!(fs::read_to_string(&d.backup).unwrap(), text);
    #[cfg(unix)]
    assert_eq!(mode_of(&d.backup), 0o600);
    // Unchanged: no rewrite.
    let again = load(&d.main, &d.backup);
    assert!(!again.backup_refreshed);
}

#[test]
fn corrupt_main_uses_backup() {
    let d = dir();
    write(&d.backup, "[Web]\nport = 8443\n");
    write(&d.main, "[Web\nport = 1\n");
    let out = load(&d.main, &d.backup);
    assert!(out.used_backup);
    assert_eq!(out.source, ConfigSource::Backup);
    assert_eq!(out.config.web.port, 8443);
    let err = out.main_error.unwrap();
    assert_eq!(err.line(), Some(1));
    assert_eq!(out.warnings[0].kind, WarningKind::MainFileUnusable);
    assert!(
        out.warnings[0].to_string().contains("line 1"),
        "{}",
        out.warnings[0]
    );
    // Neither file was touched.
    assert_eq!(fs::read_to_string(&d.main).unwrap(), "[Web\nport = 1\n");
    assert_eq!(
        fs::read_to_string(&d.backup).unwrap(),
        "[Web]\nport = 8443\n"
    );
}

#[test]
fn missing_or_non_utf8_main_uses_backup() {
    let d = dir();
    write(&d.backup, "[Web]\nport = 8443\n");
    let out = load(&d.main, &d.backup);
    assert!(out.used_backup && out.main_error.as_ref().unwrap().is_not_found());
    assert!(out.warnings[0].message.contains("missing"));

    fs::write(&d.main, b"[Web]\nport = \xff\xfe\n").unwrap();
    let out = load(&d.main, &d.backup);
    assert!(out.used_backup);
    assert!(out.main_error.unwrap().to_string().contains("UTF-8"));
}

#[cfg(unix)]
#[test]
fn unreadable_main_uses_backup() {
    let d = dir();
    write(&d.backup, "[Web]\nport = 8443\n");
    fs::create_dir(&d.main).unwrap();
    let out = load(&d.main, &d.backup);
    assert!(out.used_backup);
    assert!(matches!(out.main_error, Some(ConfigError::NotAFile { .. })));
}

#[cfg(unix)]
#[test]
fn fifo_does_not_hang() {
    let d = dir();
    nix::unistd::mkfifo(&d.main, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = load(&d.main, &d.backup);
    assert!(matches!(out.main_error, Some(ConfigError::NotAFile { .. })));
    assert_eq!(out.source, ConfigSource::Defaults);
}

#[test]
fn neither_file_gives_defaults_with_warning() {
    let d = dir();
    let out = load(&d.main, &d.backup);
    assert_eq!(out.source, ConfigSource::Defaults);
    assert!(!out.used_backup);
    assert_eq!(out.config, Config::default());
    assert_eq!(
        kinds(&out.warnings),
        [
            WarningKind::MainFileUnusable,
            WarningKind::BackupUnusable,
            WarningKind::UsingDefaults
        ]
    );
    assert!(!d.main.exists() && !d.backup.exists());
}

#[test]
fn hostile_huge_file_is_rejected_clearly() {
    let d = dir();
    let mut big = String::from("[Web]\n");
    while big.len() <= ini::MAX_FILE_BYTES {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    write(&d.main, &big);
    let out = load(&d.main, &d.backup);
    let e = out.main_error.unwrap();
    assert!(
        matches!(
            e,
            ConfigError::Parse {
                source: ParseError::TooLarge { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("limit"), "{e}");
    let r = validate_file(&d.main);
    assert_eq!(r.exit_code(), 1);
    assert!(r.to_string().contains("limit"), "{r}");
}

#[test]
fn out_of_range_log_setting_keeps_default_with_warning_naming_the_key() {
    let d = dir();
    write(
        &d.main,
        "[Logging]\nevent_log_max_kb = 10\ndatalog_files = 3\n",
    );
    let out = load(&d.main, &d.backup);
    assert_eq!(out.config.logging.event_log_max_kb, 1024);
    assert_eq!(out.config.logging.datalog_files, 3);
    assert_eq!(out.warnings.len(), 1);
    let w = &out.warnings[0];
    assert_eq!(w.kind, WarningKind::InvalidValue);
    assert_eq!(
        (w.section.as_deref(), w.key.as_deref(), w.line),
        (Some("Logging"), Some("event_log_max_kb"), Some(2))
    );
    let s = w.to_string();
    assert!(
        s.contains("line 2") && s.contains("[Logging]") && s.contains("event_log_max_kb"),
        "{s}"
    );
    assert!(
        s.contains("below the minimum 256") && s.contains("keeping \"1024\""),
        "{s}"
    );
}

#[test]
fn unknown_duplicate_and_orphan_entries_warn() {
    let text = "stray = 1\n[Web]\nport = 8443\nport = 9443\nfancy = yes\n[Mystery]\na = b\n[web]\nbind = ::1\n";
    let (c, ws) = Config::from_document(&ini::parse(text.as_bytes()).unwrap());
    assert_eq!(c.web.port, 8443, "first value wins");
    assert_eq!(c.web.bind.to_string(), "::1", "repeated sections merge");
    assert_eq!(
        kinds(&ws),
        [
            WarningKind::UnknownKey,
            WarningKind::Duplicate,
            WarningKind::UnknownKey,
            WarningKind::UnknownSection,
            WarningKind::Duplicate
        ]
    );
    let lines: Vec<_> = ws.iter().map(|w| w.line.unwrap()).collect();
    assert_eq!(lines, [1, 4, 5, 6, 8], "warnings are in file order");
}

#[test]
fn warnings_escape_hostile_names() {
    let (_, ws) = Config::from_document(&ini::parse("[Web]\nport = 70000\n".as_bytes()).unwrap());
    assert!(!ws[0].to_string().contains('\n'));
    let w = ConfigWarning {
        kind: WarningKind::UnknownKey,
        file: None,
        line: Some(1),
        section: Some("a\u{1b}[31m".into()),
        key: Some("k\u{7}".into()),
        message: "m".into(),
    };
    let s = w.to_string();
    assert!(!s.contains('\u{1b}') && !s.contains('\u{7}'), "{s:?}");
}

#[cfg(unix)]
#[test]
fn world_readable_config_warns() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir();
    write(&d.main, "[Web]\n");
    fs::set_permissions(&d.main, fs::Permissions::from_mode(0o644)).unwrap();
    let out = load(&d.main, &d.backup);
    assert_eq!(kinds(&out.warnings), [WarningKind::InsecurePermissions]);
    assert!(out.warnings[0].to_string().contains("0644"));
}

// ----- saving and credentials ------------------------------------------------------------

#[test]
fn save_is_atomic_private_and_keeps_backup_in_step() {
    let d = dir();
    let mut c = Config::default();
    c.set("Web", "port", "8443").unwrap();
    c.save(&d.main, &d.backup).unwrap();
    #[cfg(unix)]
    {
        assert_eq!(mode_of(&d.main), 0o600);
        assert_eq!(mode_of(&d.backup), 0o600);
    }
    assert_eq!(fs::read(&d.main).unwrap(), fs::read(&d.backup).unwrap());
    let out = load(&d.main, &d.backup);
    assert_eq!(out.config, c);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let leftovers: Vec<_> = fs::read_dir(d.main.parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn saved_file_lists_every_section_and_reads_well() {
    let text = Config::default().to_ini().unwrap();
    for s in SectionId::ALL {
        if s != SectionId::Credentials {
            assert!(text.contains(&format!("[{}]\n", s.name())), "{s:?}");
        }
    }
    assert!(!text.contains("[Credentials]"));
    assert!(text.contains("on_battery = log\n"));
    assert!(text.contains("os_shutdown_command = /sbin/shutdown -h +0\n"));
    assert!(
        text.contains("\ncommand_file =\n"),
        "no trailing space after empty values"
    );
    assert!(!text.lines().any(|l| l.ends_with(' ')));
}

#[test]
fn credentials_are_taken_never_backed_up_and_never_read_back() {
    let d = dir();
    write(
        &d.main,
        "# keep me\n[Web]\nport = 8443\n[Credentials]\nusername = admin1\npassword = Secret#123\n[NUT]\nenabled = true\n",
    );
    let mut out = load(&d.main, &d.backup);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let backup = fs::read_to_string(&d.backup).unwrap();
    assert!(
        !backup.contains("Secret#123") && !backup.contains("[Credentials]"),
        "{backup}"
    );
    assert!(backup.contains("port = 8443"));

    let cfg = &mut out.config;
    assert!(
        !format!("{cfg:?}").contains("Secret#123"),
        "Debug leaks the password"
    );
    assert!(matches!(
        cfg.get("Credentials", "password"),
        Err(ConfigError::Secret { .. })
    ));
    assert_eq!(cfg.get("Credentials", "username").unwrap(), "admin1");
    let creds = cfg.take_credentials().unwrap();
    assert_eq!(creds.username.as_deref(), Some("admin1"));
    assert_eq!(creds.password.as_deref(), Some("Secret#123"));
    assert!(!cfg.has_credentials());
    cfg.save(&d.main, &d.backup).unwrap();
    assert!(!fs::read_to_string(&d.main).unwrap().contains("Credentials"));
    assert!(!load(&d.main, &d.backup).config.has_credentials());
}

#[test]
fn save_with_credentials_keeps_them_out_of_the_backup() {
    let d = dir();
    let mut c = Config::default();
    c.set("Credentials", "password", "Secret#123").unwrap();
    c.save(&d.main, &d.backup).unwrap();
    assert!(fs::read_to_string(&d.main).unwrap().contains("Secret#123"));
    assert!(
        !fs::read_to_string(&d.backup)
            .unwrap()
            .contains("Secret#123")
    );
}

#[test]
fn scrub_credentials_keeps_everything_else() {
    let d = dir();
    write(
        &d.main,
        "# keep me\n[Web]\nport = 8443\n\n[credentials]\n# reset\nusername = admin1\npassword = Secret#123\n\n[NUT]\nenabled = true\n[Credentials]\npkcs12_password = x\n",
    );
    assert!(scrub_credentials(&d.main, &d.backup).unwrap());
    let text = fs::read_to_string(&d.main).unwrap();
    assert_eq!(
        text,
        "# keep me\n[Web]\nport = 8443\n\n[NUT]\nenabled = true\n"
    );
    assert_eq!(fs::read_to_string(&d.backup).unwrap(), text);
    #[cfg(unix)]
    assert_eq!(mode_of(&d.main), 0o600);
    assert!(!scrub_credentials(&d.main, &d.backup).unwrap());
}

// ----- validate_file ---------------------------------------------------------------------

#[test]
fn validate_file_reports_with_lines_and_exit_codes() {
    let d = dir();
    write(&d.main, "[Web]\nport = 6547\n");
    let r = validate_file(&d.main);
    assert!(r.is_ok() && r.exit_code() == 0);
    assert!(r.to_string().ends_with(": OK\n"), "{r}");

    write(
        &d.main,
        "[Web]\nport = 0\nshiny = 1\n[Credentials]\nusername = admin1\n",
    );
    let r = validate_file(&d.main);
    assert_eq!(r.exit_code(), 1);
    assert_eq!(
        kinds(&r.errors),
        [WarningKind::InvalidValue, WarningKind::UnknownKey]
    );
    assert_eq!(kinds(&r.warnings), [WarningKind::CredentialsPresent]);
    let s = r.to_string();
    assert!(s.contains("2 errors, 1 warning"), "{s}");
    assert!(s.contains("error: line 2: [Web] \"port\""), "{s}");
    assert!(
        s.contains("error: line 3: [Web] \"shiny\": unknown key"),
        "{s}"
    );

    write(&d.main, "[Web]\n\nport\n");
    let r = validate_file(&d.main);
    assert_eq!(r.exit_code(), 1);
    assert!(
        r.to_string()
            .contains("error: line 3: expected 'key = value'"),
        "{r}"
    );

    let r = validate_file(&d.main.with_file_name("absent.ini"));
    assert_eq!(r.exit_code(), 1);
    assert!(r.to_string().contains("cannot read"), "{r}");
}

// ----- properties ------------------------------------------------------------------------

fn arb_settings() -> impl Strategy<Value = Vec<(&'static str, String, String)>> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|b| std::net::IpAddr::from(b).to_string()),
        any::<[u16; 8]>().prop_map(|b| std::net::IpAddr::from(b).to_string()),
    ];
    let arg = "[a-zA-Z0-9 '\"\\\\;$=#.+-]{0,8}";
    let fixed = (
        (
            "/dev/tty[A-Z]{1,3}[0-9]{0,2}",
            200u32..=60_000,
            prop::sample::select(vec![
                "immediately",
                "on_battery_delay",
                "low_battery",
                "threshold",
                "low_runtime",
            ]),
            0u32..=100,
            prop::option::of("[a-z][a-z0-9_-]{0,10}(\\.sh)?"),
            0u32..=600,
            prop::collection::vec(arg, 0..4),
            10u32..=600,
            any::<bool>(),
            prop::sample::select(vec!["return", "stay_off", "sleep"]),
        ),
        (
            256u32..=1_048_576,
            2u32..=100,
            ip.clone(),
            1u16..,
            1u32..=15,
            prop::collection::vec(("[a-z]{1,8}", any::<bool>()), 0..3),
            prop::option::of(("[a-zA-Z0-9]{6,12}", "[a-zA-Z0-9#?!@$%^&*-]{8,16}")),
        ),
    );
    let events = prop::collection::vec(
        (
            prop::sample::select(events::EVENTS.to_vec()),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(("[a-z][a-z0-9]{0,6}", 0u32..=3600)),
            prop::option::of(0u32..=86_400),
        ),
        0..6,
    );
    let schedules = prop::collection::vec(
        ("[a-z][a-z0-9_]{0,8}", 0u8..24, 0u8..60, 0u8..24, 0u8..60),
        0..4,
    );
    (fixed, events, schedules).prop_map(|((a, b), events, schedules)| {
        let (device, poll, policy, pct, cmd, cmd_dur, args, os_dur, off, mode) = a;
        let (ev_kb, ev_files, bind, port, idle, communities, creds) = b;
        let mut argv = vec!["/usr/sbin/halt".to_string()];
        argv.extend(args);
        let argv = Argv::from_args(argv).unwrap().to_string();
        let mut s: Vec<(&'static str, String, String)> = vec![
            ("Communication", "device".into(), device),
            ("Communication", "poll_interval_ms".into(), poll.to_string()),
            ("Shutdown", "policy".into(), policy.into()),
            ("Shutdown", "threshold_charge_pct".into(), pct.to_string()),
            ("Shutdown", "command_file".into(), cmd.unwrap_or_default()),
            (
                "Shutdown",
                "command_file_duration_s".into(),
                cmd_dur.to_string(),
            ),
            ("Shutdown", "os_shutdown_command".into(), argv),
            (
                "Shutdown",
                "os_shutdown_duration_s".into(),
                os_dur.to_string(),
            ),
            ("Shutdown", "turn_off_ups".into(), off.to_string()),
            ("Shutdown", "ups_off_mode".into(), mode.into()),
            ("Logging", "event_log_max_kb".into(), ev_kb.to_string()),
            ("Logging", "event_log_files".into(), ev_files.to_string()),
            ("Web", "bind".into(), bind.clone()),
            ("Web", "port".into(), port.to_string()),
            ("Web", "idle_timeout_min".into(), idle.to_string()),
            ("NUT", "bind".into(), bind),
            (
                "SNMP",
                "communities".into(),
                communities
                    .iter()
                    .map(|(n, rw)| format!("{n}:{}", if *rw { "rw" } else { "ro" }))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ];
        if let Some((u, p)) = creds {
            s.push(("Credentials", "username".into(), u));
            s.push(("Credentials", "password".into(), p));
        }
        for (spec, log, notify, cmd, shut) in events {
            let mut parts = Vec::new();
            if log || spec.security {
                parts.push("log".to_string());
            }
            if notify {
                parts.push("notify".into());
            }
            if let Some((n, d)) = cmd {
                parts.push(format!("command_file:{n}.sh:{d}"));
            }
            if let (Some(d), true) = (shut, spec.may_shut_down) {
                parts.push(format!("shutdown:{d}"));
            }
            s.push(("Events", spec.id.into(), parts.join(",")));
        }
        for (name, h1, m1, h2, m2) in schedules {
            s.push((
                "Schedule",
                name,
                format!("daily {h1:02}:{m1:02} wake {h2:02}:{m2:02}"),
            ));
        }
        s
    })
}

fn build(settings: &[(&'static str, String, String)]) -> Config {
    let mut c = Config::default();
    for (sec, key, value) in settings {
        match c.set(sec, key, value) {
            Ok(()) => {}
            // Random schedules may legitimately be too short or zero-length.
            Err(_) if *sec == "Schedule" => {}
            Err(e) => panic!("{sec}.{key} = {value:?}: {e}"),
        }
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn text_round_trip(settings in arb_settings()) {
        let c = build(&settings);
        let text = c.to_ini().unwrap();
        let (back, warnings) = Config::from_document(&ini::parse(text.as_bytes()).unwrap());
        prop_assert!(warnings.is_empty(), "{:?}", warnings);
        prop_assert_eq!(back, c);
    }

    #[test]
    fn arbitrary_bytes_never_panic_load_or_check(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(doc) = ini::parse(&bytes) {
            let _ = Config::from_document(&doc);
        }
    }

    #[test]
    fn config_shaped_text_never_panics(
        lines in prop::collection::vec(
            prop_oneof![
                prop::sample::select(SectionId::ALL.to_vec()).prop_map(|s| format!("[{}]", s.name())),
                ("[a-z_]{1,24}", "\\PC{0,40}").prop_map(|(k, v)| format!("{k} = {v}")),
                prop::sample::select(events::EVENTS.to_vec())
                    .prop_flat_map(|e| "[a-z:_.,0-9 ]{0,40}".prop_map(move |v| format!("{} = {v}", e.id))),
                "\\PC{0,40}",
            ],
            0..40,
        )
    ) {
        let text = lines.join("\n");
        if let Ok(doc) = ini::parse(text.as_bytes()) {
            let (c, _) = Config::from_document(&doc);
            // Whatever loaded must be savable: invalid input never reaches the typed config.
            prop_assert!(c.to_ini().is_ok());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn save_then_load_round_trips(settings in arb_settings()) {
        let d = dir();
        let c = build(&settings);
        c.save(&d.main, &d.backup).unwrap();
        let out = load(&d.main, &d.backup);
        prop_assert!(!out.used_backup);
        prop_assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        prop_assert_eq!(out.config, c);
    }
}

// ----- unknown names, suggestions, refused files -----------------------------------------

#[test]
fn unknown_keys_and_sections_are_errors_with_a_suggestion() {
    let d = dir();
    write(
        &d.main,
        "[Shutdown]\npolcy = immediately\n[Shutdwn]\npolicy = low_battery\n[Web]\nzzzzzzzz = 1\n[Events]\non_batery = log\n",
    );
    let r = validate_file(&d.main);
    assert_eq!(r.exit_code(), 1, "{r}");
    let s = r.to_string();
    assert!(
        s.contains(
            "error: line 2: [Shutdown] \"polcy\": unknown key; ignored (did you mean `policy`?)"
        ),
        "{s}"
    );
    assert!(
        s.contains("error: line 3: [Shutdwn]: unknown section; its 1 entries are ignored (did you mean `[Shutdown]`?)"),
        "{s}"
    );
    assert!(
        s.contains("error: line 6: [Web] \"zzzzzzzz\": unknown key; ignored\n"),
        "no far-fetched suggestion: {s}"
    );
    assert!(s.contains("(did you mean `on_battery`?)"), "{s}");
    assert_eq!(r.errors.len(), 4, "{s}");
}

#[test]
fn closest_name_needs_to_be_close() {
    use super::model::closest;
    let keys = ["policy", "on_battery_delay_s", "turn_off_ups"];
    assert_eq!(closest("polcy", keys.into_iter()), Some("policy"));
    assert_eq!(closest("POLICY", keys.into_iter()), Some("policy"));
    assert_eq!(closest("x", keys.into_iter()), None);
    assert_eq!(
        closest("turn_of_ups", keys.into_iter()),
        Some("turn_off_ups")
    );
    assert_eq!(closest("banana", keys.into_iter()), None);
}

#[cfg(unix)]
#[test]
fn group_writable_config_is_refused_and_the_backup_used() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir();
    write(&d.main, "[Shutdown]\nos_shutdown_command = /bin/evil\n");
    write(&d.backup, "[Web]\nport = 8443\n");
    fs::set_permissions(&d.main, fs::Permissions::from_mode(0o664)).unwrap();
    let out = load(&d.main, &d.backup);
    assert!(matches!(out.main_error, Some(ConfigError::Insecure(_))));
    assert!(out.used_backup);
    assert_eq!(out.config.web.port, 8443);
    assert_ne!(
        out.config.shutdown.os_shutdown_command.to_string(),
        "/bin/evil"
    );
    assert_eq!(out.refusals().len(), 1);
    assert!(
        out.refusals()[0]
            .to_string()
            .contains("writable by group or others"),
        "{:?}",
        out.refusals()
    );
    assert!(out.is_explicit("web", "PORT"));
    // Backup refused too: built-in defaults.
    fs::set_permissions(&d.backup, fs::Permissions::from_mode(0o666)).unwrap();
    let out = load(&d.main, &d.backup);
    assert_eq!(out.source, ConfigSource::Defaults);
    assert_eq!(out.refusals().len(), 2);
    assert_eq!(out.config, Config::default());
    // `config check` says so and fails.
    let r = validate_file(&d.main);
    assert_eq!(r.exit_code(), 1);
    assert!(r.to_string().contains("refused"), "{r}");
}

#[test]
fn enabled_network_servers_are_reported_as_not_implemented() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("upsguard.ini");
    std::fs::write(&p, "[SNMP]\nenabled = true\n[NIS]\nenabled = true\n").unwrap();
    let report = validate_file(&p);
    let text = report.to_string();
    assert!(text.contains("SNMP agent is not implemented yet"), "{text}");
    assert!(text.contains("NIS server is not implemented yet"), "{text}");
    assert!(!text.contains("NUT network server"), "{text}");
    // A notice, not an error: a file written for a later version still loads.
    assert!(report.is_ok(), "{text}");
}
