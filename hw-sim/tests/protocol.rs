//! Protocol state machine and model tests through the sans-I/O API, in
//! virtual time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use upsguard_sim::{ALERT_QUIET_MS, PROTOCOL_INFO, Scenario, Ups, UpsConfig};

struct Sim {
    ups: Ups,
    now: u64,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(UpsConfig::default())
    }

    fn with(cfg: UpsConfig) -> Sim {
        let mut ups = Ups::new(cfg);
        ups.tick(0);
        Sim { ups, now: 0 }
    }

    fn smart() -> Sim {
        let mut s = Sim::new();
        assert_eq!(s.cmd(b"Y"), "SM\r\n");
        s
    }

    /// Bytes the UPS emits right now (replies; alerts need a quiet line).
    fn drain(&mut self) -> String {
        let out = self.ups.drain_output(self.now);
        assert!(!out.contains(&0), "NUL on the wire");
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Send bytes at the current time and return the immediate reply.
    fn cmd(&mut self, bytes: &[u8]) -> String {
        for &b in bytes {
            self.ups.handle_byte(self.now, b);
        }
        self.drain()
    }

    /// Let `ms` of real time pass in 50 ms ticks; returns what was emitted.
    fn wait(&mut self, ms: u64) -> String {
        let end = self.now + ms;
        let mut out = String::new();
        while self.now < end {
            self.now = (self.now + 50).min(end);
            out += &self.drain();
        }
        out
    }

    fn ctl(&mut self, line: &str) -> String {
        self.ups.control(self.now, line).unwrap()
    }

    fn status(&mut self) -> serde_json::Value {
        self.ups.tick(self.now);
        serde_json::from_str(&self.ups.status_json()).unwrap()
    }

    fn q(&mut self) -> String {
        self.cmd(b"Q")
            .trim_end()
            .trim_start_matches(['!', '$', '%', '+', '#', '|', '?', '='])
            .to_string()
    }
}

#[test]
fn dumb_mode_answers_only_y() {
    let mut s = Sim::new();
    assert_eq!(s.cmd(b"Q"), "");
    assert_eq!(s.cmd(b"\x01"), "");
    assert_eq!(s.cmd(b"Y"), "SM\r\n");
    assert_eq!(s.cmd(b"Y"), "SM\r\n");
    assert_eq!(s.cmd(b"Q"), "08\r\n");
    assert_eq!(s.cmd(b"R"), "BYE\r\n");
    assert_eq!(s.cmd(b"Q"), "");
    // Alerts stay silent in dumb mode.
    s.ctl("mains off");
    assert_eq!(s.wait(1000), "");
}

#[test]
fn identity_and_profile_values() {
    let mut s = Sim::smart();
    assert_eq!(s.cmd(b"\x01"), "SMART-UPS 1000\r\n");
    assert_eq!(s.cmd(b"b"), "60.11.D\r\n");
    assert_eq!(s.cmd(b"V"), "IWD\r\n");
    assert_eq!(s.cmd(b"n"), "AS0123456789\r\n");
    assert_eq!(s.cmd(b"g"), "024\r\n");
    assert_eq!(s.cmd(b"f"), "100.0\r\n");
    assert_eq!(s.cmd(b"P"), "023.5\r\n");
    assert_eq!(s.cmd(b"G"), "O\r\n");
    assert_eq!(s.cmd(b"X"), "NO\r\n");
    assert_eq!(s.cmd(b"9"), "FF\r\n");
    assert_eq!(s.cmd(b"'"), "00\r\n");
    assert_eq!(s.cmd(b"E"), "336\r\n");
    assert_eq!(s.cmd(b"j"), "0047:\r\n");
    assert_eq!(s.cmd(b"a").as_bytes(), [PROTOCOL_INFO, b"\r\n"].concat());
    assert_eq!(
        s.cmd(b"\x1a"),
        "#uD43127130133136lD43106103100097e44200155090oD13115s441HMLLq44202050710p443020180300600k4410TLNr443000060180300E443336168ON OFF\r\n"
    );
    let b = s.cmd(b"B");
    assert!(b.len() == 7 && b.starts_with("27."), "{b:?}");
    let l = s.cmd(b"L");
    let v: f64 = l.trim().parse().unwrap();
    assert!((117.5..119.0).contains(&v), "{l}");
}

#[test]
fn every_listed_command_answers_and_unknown_gets_na() {
    // Multi-byte commands and ones with side effects are checked elsewhere.
    let skip = b"@KZ\x0e-+RSWUDz\x7fA";
    let list = PROTOCOL_INFO.split(|&b| b == b'.').nth(2).unwrap();
    for &c in list {
        if skip.contains(&c) {
            continue;
        }
        let mut s = Sim::smart();
        let r = s.cmd(&[c]);
        assert!(
            r.ends_with("\r\n") && r.len() > 2 && r != "NA\r\n",
            "{:?} -> {r:?}",
            c as char
        );
    }
    let mut s = Sim::smart();
    for c in [b'>', b'<', b'T', b'h', b'\x1b', b'^', b'/', 0u8, 0xff] {
        assert_eq!(s.cmd(&[c]), "NA\r\n", "{c:#x}");
    }
}

#[test]
fn eeprom_cycle_then_pipe_when_idle() {
    let mut s = Sim::smart();
    assert_eq!(s.cmd(b"-"), "NA\r\n", "no variable queried yet");
    assert_eq!(s.cmd(b"u"), "127\r\n");
    assert_eq!(s.cmd(b"-"), "OK\r\n");
    assert_eq!(s.cmd(b"u"), "130\r\n");
    assert_eq!(s.wait(4_000), "");
    assert_eq!(s.wait(1_500), "|");
    assert_eq!(s.ups.eeprom().u, "130");
    assert!(s.ups.take_eeprom_dirty());
    // `s` lists L twice; cycling never gets stuck on the duplicate.
    assert_eq!(s.cmd(b"s"), "H\r\n");
    s.cmd(b"-");
    s.cmd(b"s");
    s.cmd(b"-");
    assert_eq!(s.cmd(b"s"), "L\r\n");
    s.cmd(b"-");
    assert_eq!(s.cmd(b"s"), "H\r\n");
    // A measurement in between breaks the link to the variable.
    s.cmd(b"p");
    s.cmd(b"Q");
    assert_eq!(s.cmd(b"-"), "NA\r\n");
}

#[test]
fn string_write_is_silent_until_eighth_char() {
    let mut s = Sim::smart();
    assert_eq!(s.cmd(b"c"), "UPS_IDEN\r\n");
    assert_eq!(s.cmd(b"-"), "");
    for &b in b"RACK\r\r\r" {
        assert_eq!(s.cmd(&[b]), "");
        s.wait(900);
    }
    assert_eq!(s.cmd(b"\r"), "OK\r\n");
    assert_eq!(s.cmd(b"c"), "RACK\r\n");
    // apcupsd pads with spaces and writes dates exactly 8 chars long.
    s.cmd(b"x");
    assert_eq!(s.cmd(b"-05/22/02"), "OK\r\n");
    assert_eq!(s.cmd(b"x"), "05/22/02\r\n");
    // A host that gives up half-way is forgotten after the gap timeout.
    s.cmd(b"c");
    s.cmd(b"-AB");
    s.wait(7_000);
    assert_eq!(s.cmd(b"Q"), "08\r\n");
}

#[test]
fn at_command_with_slow_digits_and_abort() {
    let mut s = Sim::smart();
    assert_eq!(s.cmd(b"@"), "");
    s.wait(2_000);
    assert_eq!(s.cmd(b"0"), "");
    s.wait(4_500);
    assert_eq!(s.cmd(b"0"), "");
    s.wait(2_000);
    assert_eq!(s.cmd(b"1"), "OK\r\n");
    assert_eq!(s.cmd(b"8"), "08\r\n", "reg3 bit3: asleep after @");
    let st = s.status();
    assert_eq!(st["pending_shutdown"]["kind"], "@");
    // Output off after p = 20 s; wake after 1 × 6 min with mains present.
    s.wait(21_000);
    assert_eq!(s.q(), "00");
    assert!(!s.ups.output_on());
    s.wait(300_000);
    assert!(!s.ups.output_on(), "too early");
    s.wait(70_000);
    assert!(s.ups.output_on());
    // Non-digit aborts with NO.
    assert_eq!(s.cmd(b"@"), "");
    assert_eq!(s.cmd(b"0"), "");
    assert_eq!(s.cmd(b"Y"), "NO\r\n");
    assert!(s.status()["pending_shutdown"].is_null());
}

#[test]
fn k_needs_a_second_k_within_the_window() {
    let mut s = Sim::smart();
    // Too quick: not a confirmation, and no reply.
    assert_eq!(s.cmd(b"K"), "");
    s.wait(200);
    assert_eq!(s.cmd(b"K"), "");
    // NUT's timing: ~1.5 s after the first byte.
    s.wait(1_500);
    assert_eq!(s.cmd(b"K"), "OK\r\n");
    assert_eq!(s.status()["pending_shutdown"]["kind"], "K");
    s.wait(20_500);
    assert!(!s.ups.output_on());
    // Stays off with mains present until ^N^N.
    s.wait(60_000);
    assert!(!s.ups.output_on());
    assert_eq!(s.cmd(b"\x0e"), "");
    s.wait(1_500);
    assert_eq!(s.cmd(b"\x0e"), "");
    assert!(s.ups.output_on());
    // A second K after the window is a fresh first byte, silently dropped later.
    s.cmd(b"K");
    s.wait(7_000);
    assert_eq!(s.cmd(b"K"), "");
    s.wait(7_000);
    assert!(s.status()["pending_shutdown"].is_null());
    assert_eq!(s.q(), "08");
}

#[test]
fn z_turns_off_at_once_and_power_cycle_restores() {
    let mut s = Sim::smart();
    s.cmd(b"Z");
    s.wait(2_000);
    assert_eq!(s.cmd(b"Z"), "");
    assert!(!s.ups.output_on());
    assert_eq!(s.q(), "00");
    s.wait(10_000);
    assert!(!s.ups.output_on());
    s.ctl("power-cycle");
    assert!(s.ups.output_on());
}

#[test]
fn s_on_battery_returns_with_mains_and_del_cancels() {
    let mut s = Sim::smart();
    s.ctl("mains off");
    s.wait(100);
    assert_eq!(s.cmd(b"S"), "OK\r\n");
    assert_eq!(s.cmd(b"8"), "10\r\n", "reg3 bit4: in shutdown after S");
    assert_eq!(s.cmd(b"\x7f"), "OK\r\n");
    assert!(s.status()["pending_shutdown"].is_null());
    assert_eq!(s.cmd(b"S"), "OK\r\n");
    s.wait(19_000);
    assert!(s.ups.output_on());
    s.wait(1_500);
    assert!(!s.ups.output_on());
    s.wait(30_000);
    assert!(!s.ups.output_on(), "stays off while mains is out");
    // Restart needs r seconds of good mains and e % charge.
    s.ctl("set r 60");
    s.ctl("mains on");
    s.wait(50_000);
    assert!(!s.ups.output_on());
    s.wait(11_000);
    assert!(s.ups.output_on());
    assert_eq!(s.q(), "08");
}

#[test]
fn s_on_mains_power_cycles_the_load() {
    let mut s = Sim::smart();
    assert_eq!(s.cmd(b"S"), "OK\r\n");
    s.wait(20_500);
    let st = s.status();
    assert_eq!(st["shutdowns"], 1);
    assert!(s.ups.output_on(), "mains present and r = 0: back at once");
}

#[test]
fn alerts_only_on_an_idle_line() {
    let mut s = Sim::smart();
    s.ctl("mains off");
    // A query in the same instant gets its reply first, with no alert inside.
    assert_eq!(s.cmd(b"Q"), "10\r\n");
    assert_eq!(s.drain(), "");
    s.now += ALERT_QUIET_MS;
    assert_eq!(s.drain(), "!");
    assert_eq!(s.cmd(b"G"), "L\r\n");
    assert_eq!(s.cmd(b"9"), "00\r\n");
    // Repeated every 30 s while on battery.
    let out = s.wait(61_000);
    assert_eq!(out, "!!");
    // Not during multi-byte input.
    s.cmd(b"K");
    let out = s.wait(5_000);
    assert_eq!(out, "");
    s.ctl("mains on");
    s.wait(2_000);
    let out = s.wait(100);
    assert!(out.is_empty() || out == "$", "{out}");
    assert_eq!(s.q(), "08");
}

#[test]
fn low_battery_then_recovery_alerts() {
    let mut s = Sim::smart();
    s.ctl("load 100");
    s.ctl("mains off");
    let out = s.wait(7 * 60_000);
    assert!(out.starts_with('!') && out.ends_with('%'), "{out}");
    assert_eq!(s.q(), "50");
    let rt: u32 = s
        .cmd(b"j")
        .trim_end()
        .trim_end_matches(':')
        .parse()
        .unwrap();
    assert!(rt < 2);
    s.ctl("mains on");
    let out = s.wait(1_000);
    assert!(out.contains('$') && out.contains('+'), "{out}");
    assert_eq!(s.q(), "08");
}

#[test]
fn battery_runs_flat_and_ups_restarts_on_mains() {
    let mut s = Sim::with(UpsConfig {
        speed: 10.0,
        ..UpsConfig::default()
    });
    s.cmd(b"Y");
    s.ctl("load 80");
    s.ctl("mains off");
    s.wait(120_000);
    assert!(!s.ups.output_on());
    let st = s.status();
    assert_eq!(st["off_reason"], "battery exhausted");
    assert_eq!(st["reg3"], "01");
    s.ctl("set e 15");
    s.ctl("mains on");
    s.wait(1_000);
    assert!(!s.ups.output_on(), "waits for 15 % charge");
    s.wait(300_000);
    assert!(s.ups.output_on());
}

#[test]
fn self_test_transfers_briefly_and_reports() {
    let mut s = Sim::smart();
    assert_eq!(s.cmd(b"W"), "OK\r\n");
    assert_eq!(s.q(), "10");
    assert_eq!(s.cmd(b"G"), "S\r\n");
    let out = s.wait(9_000);
    assert_eq!(out, "!$");
    assert_eq!(s.cmd(b"X"), "OK\r\n");
    assert_eq!(s.q(), "08");
    assert_eq!(s.cmd(b"d"), "000.0\r\n");
    // A failed battery fails the test and raises RB.
    s.ctl("battery fail");
    assert_eq!(s.cmd(b"'"), "20\r\n");
    assert_eq!(s.cmd(b"W"), "OK\r\n");
    assert_eq!(s.cmd(b"X"), "BT\r\n");
    assert_eq!(s.q(), "88");
    assert_eq!(s.wait(100), "#");
    // On battery a self-test is refused.
    s.ctl("battery ok");
    s.ctl("replace-battery off");
    s.ctl("mains off");
    assert_eq!(s.cmd(b"W"), "NO\r\n");
}

#[test]
fn simulated_failure_and_calibration() {
    let mut s = Sim::smart();
    assert_eq!(s.cmd(b"U"), "OK\r\n");
    assert_eq!(s.q(), "10");
    assert_eq!(s.wait(4_000), "!$");
    assert_eq!(s.q(), "08");
    assert_eq!(s.cmd(b"A"), "OK\r\n");
    let mut s = Sim::with(UpsConfig {
        speed: 20.0,
        load_pct: 50.0,
        ..UpsConfig::default()
    });
    s.cmd(b"Y");
    assert_eq!(s.cmd(b"D"), "OK\r\n");
    assert_eq!(s.q(), "11");
    let mut st = s.status();
    for _ in 0..120 {
        if !st["calibrating"].as_bool().unwrap() {
            break;
        }
        s.wait(500);
        st = s.status();
    }
    assert!(!st["calibrating"].as_bool().unwrap());
    let charge = st["charge"].as_f64().unwrap();
    assert!((20.0..=26.0).contains(&charge), "{charge}");
    assert_eq!(s.q(), "08");
    assert_eq!(s.cmd(b"D"), "NO\r\n", "needs a full battery");
}

#[test]
fn line_window_trim_boost_and_overload() {
    let mut s = Sim::smart();
    s.ctl("input 106");
    assert_eq!(s.q(), "0C");
    let o: f64 = s.cmd(b"O").trim().parse().unwrap();
    assert!(o > 115.0);
    s.ctl("input 126.5");
    assert_eq!(s.q(), "0A");
    s.ctl("input 131");
    assert_eq!(s.q(), "10");
    assert_eq!(s.cmd(b"G"), "H\r\n");
    // Back only inside the window by the 3 V return margin.
    s.ctl("input 125");
    assert_eq!(s.q(), "10");
    s.ctl("input 120");
    s.ctl("load 120");
    assert_eq!(s.q(), "28");
    s.ctl("input 95");
    assert_eq!(s.q(), "30");
}

#[test]
fn unplug_stops_answering_until_replug() {
    let mut s = Sim::smart();
    s.ctl("unplug");
    assert_eq!(s.cmd(b"Y"), "");
    s.ctl("mains off");
    assert_eq!(s.wait(1_000), "");
    s.ctl("replug");
    assert_eq!(s.cmd(b"Q"), "10\r\n");
}

#[test]
fn garbage_never_contains_nul_and_waits_for_idle() {
    let mut s = Sim::smart();
    s.ctl("garbage 500");
    s.now += ALERT_QUIET_MS;
    let out = s.ups.drain_output(s.now);
    assert_eq!(out.len(), 500);
    assert!(!out.contains(&0));
    s.ctl("noise on");
    let mut n = 0;
    for _ in 0..200 {
        s.now += 100;
        n += s.ups.drain_output(s.now).len();
    }
    assert!(n > 0);
}

#[test]
fn hostile_input_never_panics() {
    let mut s = Sim::with(UpsConfig {
        speed: 50.0,
        ..UpsConfig::default()
    });
    let mut x: u64 = 12345;
    for i in 0..200_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = (x & 0xff) as u8;
        s.ups.handle_byte(s.now, b);
        if i % 7 == 0 {
            s.now += x % 3000;
        }
        let out = s.ups.drain_output(s.now);
        assert!(!out.contains(&0));
    }
    for line in [
        "",
        "   ",
        "mains",
        "load 1e400",
        "speed -1",
        "garbage 1000000",
        "set c ÄÖÜ",
        "set u 999",
        "\u{0}\u{1}",
    ] {
        assert!(s.ups.control(s.now, line).is_err(), "{line:?}");
    }
}

#[test]
fn deterministic_given_seed() {
    let run = || {
        let mut s = Sim::with(UpsConfig {
            seed: 42,
            ..UpsConfig::default()
        });
        s.cmd(b"Y");
        s.ctl("mains off");
        s.wait(90_000);
        s.ctl("input 110");
        s.ctl("mains on");
        s.wait(30_000);
        s.ctl("garbage 8");
        (s.status().to_string(), s.wait(1_000))
    };
    assert_eq!(run(), run());
}

#[test]
fn scenario_runs_in_simulated_time() {
    let sc = Scenario::parse(
        "[[step]]\nat = \"10s\"\ndo = \"mains off\"\n[[step]]\nafter = \"60s\"\ndo = \"mains on\"\n",
    )
    .unwrap();
    let mut s = Sim::with(UpsConfig {
        speed: 10.0,
        scenario: Some(sc),
        ..UpsConfig::default()
    });
    s.cmd(b"Y");
    s.wait(1_100);
    assert_eq!(s.q(), "10");
    s.wait(6_000);
    assert_eq!(s.q(), "08");
    assert!(s.ups.scenario_done());
    assert!(s.ups.take_events().iter().any(|e| e.contains("scenario")));
}

#[test]
fn runtime_tracks_load_and_charge() {
    let mut s = Sim::smart();
    let j = |s: &mut Sim| -> u32 {
        s.cmd(b"j")
            .trim_end()
            .trim_end_matches(':')
            .parse()
            .unwrap()
    };
    let light = j(&mut s);
    s.ctl("load 50");
    let half = j(&mut s);
    assert!(half < light);
    s.ctl("mains off");
    s.wait(5 * 60_000);
    let later = j(&mut s);
    assert!(later < half && later > 0, "{later} vs {half}");
    let f: f64 = s.cmd(b"f").trim().parse().unwrap();
    assert!(f < 80.0);
    let c1: f64 = s.cmd(b"C").trim().parse().unwrap();
    assert!(c1 > 33.0, "temperature rises with load: {c1}");
    s.ctl("mains on");
    s.wait(30 * 60_000);
    let f2: f64 = s.cmd(b"f").trim().parse().unwrap();
    assert!(f2 > f + 10.0, "recharges: {f} -> {f2}");
}
