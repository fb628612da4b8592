//! The sans-I/O emulator: Smart-protocol state machine, alert scheduling,
//! shutdown timers, self-test/calibration and operator commands around the
//! physical [`Model`]. Callers feed it bytes and the current monotonic time
//! in milliseconds; it never sleeps, reads clocks or does I/O, so tests can
//! drive it in virtual time.

use std::collections::VecDeque;

use serde_json::json;

use crate::control::{self, Command};
use crate::eeprom::{self, Eeprom};
use crate::model::Model;
use crate::rng::Rng;
use crate::scenario::Scenario;

pub const MODEL_NAME: &str = "SMART-UPS 1000";
pub const FIRMWARE: &str = "60.11.D";
pub const SERIAL: &str = "AS0123456789";
pub const MFR_DATE: &str = "01/15/99";
/// `V` reply: deliberately not a NUT compat-table key so NUT reads `a`.
pub const OLD_FIRMWARE: &str = "IWD";
/// `a` reply (protocol §7.1): version, alert set, command set.
pub const PROTOCOL_INFO: &[u8] =
    b"3.!$%+?=#|.\x01\x0e\x1a'+-789@ABCDEFGKLMNOPQRSUVWXYZabcdefgjklmnopqrsuxyz~\x7f";

/// Accept the second byte of `K`/`Z`/`^N` only after this gap (NUT ≈1.5 s, apcupsd 2 s)…
pub const SECOND_BYTE_MIN_MS: u64 = 1_000;
/// …and no later than this.
pub const SECOND_BYTE_MAX_MS: u64 = 6_000;
/// Longest pause between the digits of `@nnn` or the characters of a string write
/// (apcupsd paces them 1–2 s apart).
pub const MULTI_BYTE_GAP_MS: u64 = 6_000;
/// The `|` after an EEPROM change.
pub const PIPE_DELAY_MS: u64 = 5_000;
/// Alerts wait until nothing was received for this long, so they never land
/// between a command and its reply.
pub const ALERT_QUIET_MS: u64 = 30;
const BANG_REPEAT_MS: f64 = 30_000.0;
const RB_REPEAT_MS: f64 = 5.0 * 3600.0 * 1000.0;
const SELF_TEST_MS: f64 = 8_000.0;
const SIM_FAIL_MS: f64 = 3_000.0;
const PANEL_TEST_MS: f64 = 2_000.0;
/// Physics never integrates more than this much simulated time in one step.
const MAX_STEP_MS: f64 = 1_000.0;

/// Start-up parameters for [`Ups::new`].
#[derive(Debug, Clone)]
pub struct UpsConfig {
    pub seed: u64,
    /// Physics and grace timers run this many times faster than real time.
    pub speed: f64,
    pub eeprom: Eeprom,
    pub load_pct: f64,
    pub scenario: Option<Scenario>,
}

impl Default for UpsConfig {
    fn default() -> Self {
        UpsConfig {
            seed: 1,
            speed: 1.0,
            eeprom: Eeprom::default(),
            load_pct: 23.5,
            scenario: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownKind {
    /// `S`: back when mains is present (after `r`, charge ≥ `e`).
    Soft,
    /// `@nnn`: back after nnn × 6 min, then as `S`.
    Hibernate(u16),
    /// `K`: stay off.
    StayOff,
}

impl ShutdownKind {
    fn name(self) -> &'static str {
        match self {
            ShutdownKind::Soft => "S",
            ShutdownKind::Hibernate(_) => "@",
            ShutdownKind::StayOff => "K",
        }
    }
}

/// Why the output is off and what brings it back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OffState {
    /// After `S` or a low-battery shutdown: on when mains is back.
    AwaitMains,
    /// After `@nnn`: not before `earliest_ms` (sim), then as `AwaitMains`.
    Sleep { earliest_ms: f64 },
    /// After `K` or `Z`: only `^N` or an operator power-cycle.
    StayOff,
}

#[derive(Debug, Clone, PartialEq)]
enum Input {
    Idle,
    /// First byte of `K`, `Z` or `^N` seen at `since` (real ms).
    Second {
        byte: u8,
        since: u64,
    },
    AtDigits {
        digits: Vec<u8>,
        last: u64,
    },
    StringWrite {
        var: u8,
        buf: Vec<u8>,
        last: u64,
    },
}

/// The emulated UPS.
#[derive(Debug)]
pub struct Ups {
    model: Model,
    eeprom: Eeprom,
    eeprom_dirty: bool,
    rng: Rng,
    speed: f64,
    // Clocks: real (caller's) ms and accumulated simulated ms.
    last_real: Option<u64>,
    sim_ms: f64,
    // Link.
    linked: bool,
    /// Plugged but not answering (`mute on`).
    muted: bool,
    smart: bool,
    input: Input,
    last_query: Option<u8>,
    last_rx: u64,
    out: VecDeque<u8>,
    alerts: VecDeque<u8>,
    pipe_at: Option<u64>,
    garbage: Vec<u8>,
    noise: bool,
    next_noise_at: u64,
    // Output and shutdown.
    output_on: bool,
    off_state: Option<OffState>,
    off_reason: &'static str,
    pending: Option<(ShutdownKind, f64)>,
    mains_ok_since: Option<f64>,
    shutdowns: u64,
    // Status tracking for alerts.
    on_battery: bool,
    bang_sent: bool,
    last_bang: f64,
    low_batt: bool,
    pct_sent: bool,
    overload: bool,
    last_rb_alert: Option<f64>,
    transfer_cause: u8,
    low_batt_shutdown: bool,
    // Tests.
    self_test_until: Option<f64>,
    self_test_result: &'static str,
    self_tests: u64,
    last_self_test_ms: f64,
    sim_fail_until: Option<f64>,
    calibrating: bool,
    panel_until: Option<f64>,
    // Line min/max since last `M`/`N`.
    v_max: f64,
    v_min: f64,
    // Scenario.
    scenario: Option<Scenario>,
    scenario_next: usize,
    scenario_start: f64,
    events: Vec<String>,
}

impl Ups {
    pub fn new(cfg: UpsConfig) -> Ups {
        let model = Model::new(cfg.load_pct);
        let v = model.line_v;
        Ups {
            model,
            eeprom: cfg.eeprom,
            eeprom_dirty: false,
            rng: Rng::new(cfg.seed),
            speed: cfg.speed,
            last_real: None,
            sim_ms: 0.0,
            linked: true,
            muted: false,
            smart: false,
            input: Input::Idle,
            last_query: None,
            last_rx: 0,
            out: VecDeque::new(),
            alerts: VecDeque::new(),
            pipe_at: None,
            garbage: Vec::new(),
            noise: false,
            next_noise_at: 0,
            output_on: true,
            off_state: None,
            off_reason: "",
            pending: None,
            mains_ok_since: Some(0.0),
            shutdowns: 0,
            on_battery: false,
            bang_sent: false,
            last_bang: 0.0,
            low_batt: false,
            pct_sent: false,
            overload: false,
            last_rb_alert: None,
            transfer_cause: b'O',
            low_batt_shutdown: false,
            self_test_until: None,
            self_test_result: "NO",
            self_tests: 0,
            // The profile's `d` reads 10.7 hours at start-up.
            last_self_test_ms: -10.7 * 3_600_000.0,
            sim_fail_until: None,
            calibrating: false,
            panel_until: None,
            v_max: v,
            v_min: v,
            scenario: cfg.scenario,
            scenario_next: 0,
            scenario_start: 0.0,
            events: Vec::new(),
        }
    }

    // ----------------------------------------------------------------- clock

    /// Advance the model to `now_ms` (monotonic, caller's clock).
    pub fn tick(&mut self, now_ms: u64) {
        let Some(last) = self.last_real else {
            self.last_real = Some(now_ms);
            self.next_noise_at = now_ms;
            self.last_rx = now_ms;
            self.step(0.0);
            return;
        };
        if now_ms <= last {
            return;
        }
        self.last_real = Some(now_ms);
        let mut remaining = (now_ms - last) as f64 * self.speed;
        // Integrate in bounded steps; very long jumps use proportionally bigger
        // steps so a test that skips hours stays fast.
        let step_ms = MAX_STEP_MS.max(remaining / 100_000.0);
        while remaining > 0.0 {
            let dt = remaining.min(step_ms);
            remaining -= dt;
            self.step(dt);
        }
        self.protocol_timers(now_ms);
    }

    fn step(&mut self, dt_ms: f64) {
        self.sim_ms += dt_ms;
        self.run_scenario();
        let low = num(self.eeprom.get(b'l')).unwrap_or(103.0);
        let high = num(self.eeprom.get(b'u')).unwrap_or(127.0);
        self.model.update_line(&mut self.rng, low, high);
        let v = self.model.line_v;
        self.v_max = self.v_max.max(v);
        self.v_min = self.v_min.min(v);
        if self.model.line_ok {
            self.mains_ok_since.get_or_insert(self.sim_ms);
        } else {
            self.mains_ok_since = None;
        }
        self.run_timers();

        let forced =
            self.self_test_until.is_some() || self.sim_fail_until.is_some() || self.calibrating;
        let battery_usable = self.model.battery_connected && self.model.energy_wh > 0.0;
        let mut on_battery = false;
        if self.output_on {
            if self.model.line_ok && !(forced && battery_usable) {
                on_battery = false;
            } else if battery_usable {
                on_battery = true;
            } else {
                // Neither line nor battery can carry the load.
                self.low_batt_shutdown = true;
                self.turn_off(OffState::AwaitMains, "battery exhausted");
            }
        }
        self.model
            .step(dt_ms / 1000.0, on_battery, self.output_on, &mut self.rng);
        if on_battery && self.model.energy_wh <= 0.0 {
            self.low_batt_shutdown = true;
            self.turn_off(OffState::AwaitMains, "battery exhausted");
            on_battery = false;
        }
        if self.calibrating
            && (self.model.soc_pct() <= 25.0 || !self.model.line_ok || !self.output_on)
        {
            self.calibrating = false;
            self.log("calibration finished");
        }
        self.set_on_battery(on_battery, forced);
        self.update_flags();
    }

    fn set_on_battery(&mut self, on_battery: bool, forced: bool) {
        if on_battery && !self.on_battery {
            self.transfer_cause = if forced && self.model.line_ok {
                b'S'
            } else {
                self.model
                    .transfer_cause(num(self.eeprom.get(b'u')).unwrap_or(127.0))
            };
            self.alert(b'!');
            self.bang_sent = true;
            self.last_bang = self.sim_ms;
            self.log(&format!(
                "on battery (cause {})",
                self.transfer_cause as char
            ));
        } else if !on_battery && self.bang_sent && self.output_on {
            // `$` only once the load is really back on mains (not when the
            // output merely went off while on battery).
            self.alert(b'$');
            self.bang_sent = false;
            self.log("back on line");
        } else if on_battery && !self.low_batt && self.sim_ms - self.last_bang >= BANG_REPEAT_MS {
            self.alert(b'!');
            self.last_bang = self.sim_ms;
        }
        self.on_battery = on_battery;
    }

    fn update_flags(&mut self) {
        let q_min = num(self.eeprom.get(b'q')).unwrap_or(2.0);
        let lb = self.output_on && self.on_battery && self.model.runtime_s() < q_min * 60.0;
        if lb && !self.low_batt {
            self.alert(b'%');
            self.pct_sent = true;
            self.log("low battery");
        } else if !lb && self.low_batt && self.pct_sent {
            self.alert(b'+');
            self.pct_sent = false;
        }
        self.low_batt = lb;
        let over = self.output_on && self.model.load_pct > 100.0;
        if over != self.overload {
            self.alert(if over { b'?' } else { b'=' });
        }
        self.overload = over;
        if self.model.replace_battery {
            let due = self
                .last_rb_alert
                .is_none_or(|t| self.sim_ms - t >= RB_REPEAT_MS);
            if due {
                self.alert(b'#');
                self.last_rb_alert = Some(self.sim_ms);
            }
        } else {
            self.last_rb_alert = None;
        }
    }

    fn run_timers(&mut self) {
        let now = self.sim_ms;
        if let Some((kind, at)) = self.pending
            && now >= at
        {
            self.pending = None;
            let state = match kind {
                ShutdownKind::Soft => OffState::AwaitMains,
                ShutdownKind::Hibernate(n) => OffState::Sleep {
                    earliest_ms: now + f64::from(n) * 360_000.0,
                },
                ShutdownKind::StayOff => OffState::StayOff,
            };
            self.shutdowns += 1;
            self.turn_off(state, kind.name());
        }
        if let Some(state) = self.off_state {
            let wake = match state {
                OffState::StayOff => false,
                OffState::Sleep { earliest_ms } if now < earliest_ms => false,
                OffState::Sleep { .. } | OffState::AwaitMains => self.restart_allowed(),
            };
            if wake {
                self.turn_on("power restored");
            }
        }
        if let Some(until) = self.self_test_until
            && now >= until
        {
            self.finish_self_test();
        }
        if self.sim_fail_until.is_some_and(|u| now >= u) {
            self.sim_fail_until = None;
        }
        if self.panel_until.is_some_and(|u| now >= u) {
            self.panel_until = None;
        }
    }

    fn restart_allowed(&self) -> bool {
        let r_ms = num(self.eeprom.get(b'r')).unwrap_or(0.0) * 1000.0;
        let e_pct = num(self.eeprom.get(b'e')).unwrap_or(0.0);
        self.mains_ok_since
            .is_some_and(|since| self.sim_ms - since >= r_ms)
            && self.model.soc_pct() >= e_pct
    }

    fn turn_off(&mut self, state: OffState, reason: &'static str) {
        if self.output_on {
            self.log(&format!("output off ({reason})"));
        }
        self.output_on = false;
        self.off_state = Some(state);
        self.off_reason = reason;
        self.pending = None;
        self.self_test_until = None;
        self.calibrating = false;
    }

    fn turn_on(&mut self, reason: &str) {
        if !self.output_on {
            self.log(&format!("output on ({reason})"));
        }
        self.output_on = true;
        self.off_state = None;
        self.off_reason = "";
        self.low_batt_shutdown = false;
    }

    fn protocol_timers(&mut self, now: u64) {
        let deadline = match &self.input {
            Input::Idle => None,
            Input::Second { since, .. } => Some(since.saturating_add(SECOND_BYTE_MAX_MS)),
            Input::AtDigits { last, .. } | Input::StringWrite { last, .. } => {
                Some(last.saturating_add(MULTI_BYTE_GAP_MS))
            }
        };
        if deadline.is_some_and(|d| now > d) {
            // The host gave up half-way: drop the sequence silently.
            self.input = Input::Idle;
        }
    }

    // -------------------------------------------------------------- the wire

    /// Feed one byte received from the host.
    pub fn handle_byte(&mut self, now_ms: u64, b: u8) {
        self.tick(now_ms);
        if !self.linked || self.muted {
            return;
        }
        self.last_rx = now_ms;
        match std::mem::replace(&mut self.input, Input::Idle) {
            Input::Idle => {}
            Input::Second { byte, since } => {
                if b == byte {
                    if now_ms.saturating_sub(since) >= SECOND_BYTE_MIN_MS {
                        self.double_command(byte);
                    } else {
                        // Too quick to be the confirmation: start the wait again.
                        self.input = Input::Second {
                            byte,
                            since: now_ms,
                        };
                    }
                    return;
                }
                // Anything else abandons the sequence and is handled normally.
            }
            Input::AtDigits { mut digits, .. } => {
                if b.is_ascii_digit() {
                    digits.push(b);
                    if digits.len() == 3 {
                        let n = digits
                            .iter()
                            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
                        self.start_shutdown(ShutdownKind::Hibernate(n));
                        self.reply(b"OK");
                    } else {
                        self.input = Input::AtDigits {
                            digits,
                            last: now_ms,
                        };
                    }
                } else {
                    self.reply(b"NO");
                }
                return;
            }
            Input::StringWrite { var, mut buf, .. } => {
                buf.push(b);
                if buf.len() == 8 {
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    match self.eeprom.set(var, &text) {
                        Ok(()) => {
                            self.eeprom_changed(now_ms);
                            self.reply(b"OK");
                        }
                        Err(_) => self.reply(b"NO"),
                    }
                } else {
                    self.input = Input::StringWrite {
                        var,
                        buf,
                        last: now_ms,
                    };
                }
                return;
            }
        }
        if !self.smart {
            // Dumb mode: only `Y` means anything.
            if b == b'Y' {
                self.smart = true;
                self.reply(b"SM");
            }
            return;
        }
        self.command(now_ms, b);
    }

    fn reply(&mut self, text: &[u8]) {
        self.out.extend(text.iter().copied().filter(|&c| c != 0));
        self.out.extend(b"\r\n");
    }

    fn reply_str(&mut self, text: &str) {
        self.reply(text.as_bytes());
    }

    fn command(&mut self, now: u64, b: u8) {
        let was_query = self.last_query.take();
        match b {
            b'Y' => self.reply(b"SM"),
            b'R' => {
                self.reply(b"BYE");
                self.smart = false;
            }
            0x01 => self.reply_str(MODEL_NAME),
            b'b' => self.reply_str(FIRMWARE),
            b'V' => self.reply_str(OLD_FIRMWARE),
            b'n' => self.reply_str(SERIAL),
            b'm' => self.reply_str(MFR_DATE),
            b'y' => self.reply(b"(C) APCC"),
            b'g' => self.reply(b"024"),
            b'a' => self.reply(PROTOCOL_INFO),
            0x1A => self.reply_str(eeprom::CAPABILITIES),
            b'B' => self.reply_str(&format!("{:05.2}", self.model.battery_v.clamp(0.0, 99.99))),
            b'C' => self.reply_str(&format!("{:05.1}", self.model.temp_c.clamp(0.0, 999.9))),
            b'F' => self.reply_str(&format!("{:05.2}", self.freq().clamp(0.0, 99.99))),
            b'L' => self.reply_str(&fmt_v(self.model.line_v)),
            b'M' => {
                self.reply_str(&fmt_v(self.v_max));
                self.v_max = self.model.line_v;
            }
            b'N' => {
                self.reply_str(&fmt_v(self.v_min));
                self.v_min = self.model.line_v;
            }
            b'O' => self.reply_str(&fmt_v(self.output_v())),
            b'P' => self.reply_str(&format!("{:05.1}", self.load_reading().clamp(0.0, 999.9))),
            b'f' => self.reply_str(&format!("{:05.1}", self.model.soc_pct())),
            b'j' => self.reply_str(&format!("{:04}:", self.runtime_min())),
            b'9' => self.reply(if self.model.line_ok { b"FF" } else { b"00" }),
            b'G' => self.reply(&[self.transfer_cause]),
            b'X' => self.reply_str(self.self_test_result),
            b'd' => {
                let h = ((self.sim_ms - self.last_self_test_ms) / 3_600_000.0).clamp(0.0, 999.9);
                self.reply_str(&format!("{h:05.1}"));
            }
            b'Q' => self.reply_str(&format!("{:02X}", self.status_byte())),
            b'7' | b'~' => self.reply(b"00"),
            b'\'' => self.reply_str(&format!("{:02X}", self.reg2())),
            b'8' => self.reply_str(&format!("{:02X}", self.reg3())),
            v if eeprom::is_enum_var(v) || eeprom::is_string_var(v) => {
                let value = self.eeprom.get(v).unwrap_or_default().to_string();
                self.reply_str(&value);
                self.last_query = Some(v);
            }
            b'-' | b'+' => match was_query {
                Some(v) if eeprom::is_enum_var(v) => {
                    self.eeprom.cycle(v, b == b'-');
                    self.eeprom_changed(now);
                    self.last_query = Some(v);
                    self.reply(b"OK");
                }
                Some(v) if b == b'-' && eeprom::is_string_var(v) => {
                    // Silent until all 8 characters are in.
                    self.input = Input::StringWrite {
                        var: v,
                        buf: Vec::new(),
                        last: now,
                    };
                }
                _ => self.reply(b"NA"),
            },
            b'S' => {
                // Accepted on mains too (NUT 2.8.0 `-k` always sends S): the
                // output goes off after `p` and returns after `r` while mains
                // is present, i.e. the load is power-cycled like `@000`.
                if self.output_on {
                    self.start_shutdown(ShutdownKind::Soft);
                    self.reply(b"OK");
                } else {
                    self.reply(b"NA");
                }
            }
            b'@' => {
                if self.output_on {
                    self.input = Input::AtDigits {
                        digits: Vec::new(),
                        last: now,
                    };
                } else {
                    self.reply(b"NA");
                }
            }
            b'K' | b'Z' | 0x0E => {
                self.input = Input::Second {
                    byte: b,
                    since: now,
                }
            }
            0x7F => {
                if self.pending.take().is_some() {
                    self.log("pending shutdown cancelled");
                }
                self.reply(b"OK");
            }
            b'W' => self.self_test_cmd(),
            b'A' => {
                self.panel_until = Some(self.sim_ms + PANEL_TEST_MS);
                self.reply(b"OK");
            }
            b'U' => {
                if self.output_on
                    && self.model.line_ok
                    && !self.on_battery
                    && self.battery_ok_for_test()
                {
                    self.sim_fail_until = Some(self.sim_ms + SIM_FAIL_MS);
                    self.step(0.0);
                    self.reply(b"OK");
                } else {
                    self.reply(b"NO");
                }
            }
            b'D' => {
                if self.calibrating {
                    self.calibrating = false;
                    self.log("calibration aborted");
                    self.reply(b"OK");
                } else if self.output_on
                    && self.model.line_ok
                    && !self.on_battery
                    && self.battery_ok_for_test()
                    && self.model.soc_pct() >= 99.5
                {
                    self.calibrating = true;
                    self.log("calibration started");
                    self.step(0.0);
                    self.reply(b"OK");
                } else {
                    self.reply(b"NO");
                }
            }
            b'z' => {
                self.eeprom.factory_reset();
                self.eeprom_changed(now);
                self.reply(b"CLEAR");
            }
            _ => self.reply(b"NA"),
        }
    }

    fn double_command(&mut self, byte: u8) {
        match byte {
            b'K' => {
                if self.output_on {
                    self.start_shutdown(ShutdownKind::StayOff);
                    self.reply(b"OK");
                } else {
                    self.reply(b"NA");
                }
            }
            b'Z' => {
                // Immediate and silent (NUT accepts silence or OK).
                self.shutdowns += 1;
                self.turn_off(OffState::StayOff, "Z");
            }
            _ => {
                // ^N^N: load on, no reply.
                self.pending = None;
                if !self.output_on && (self.model.line_ok || self.model.energy_wh > 0.0) {
                    self.turn_on("^N");
                }
            }
        }
    }

    fn start_shutdown(&mut self, kind: ShutdownKind) {
        let grace_ms = num(self.eeprom.get(b'p')).unwrap_or(20.0) * 1000.0;
        self.pending = Some((kind, self.sim_ms + grace_ms));
        self.log(&format!(
            "shutdown {} pending, output off in {} s",
            kind.name(),
            grace_ms / 1000.0
        ));
    }

    fn battery_ok_for_test(&self) -> bool {
        self.model.battery_connected && !self.model.replace_battery && self.model.soc_pct() > 10.0
    }

    fn self_test_cmd(&mut self) {
        if self.self_test_until.is_some() {
            self.self_test_until = None;
            self.log("self-test stopped");
            self.reply(b"OK");
            return;
        }
        if !self.output_on || !self.model.line_ok || self.on_battery {
            self.reply(b"NO");
            return;
        }
        self.self_tests += 1;
        self.last_self_test_ms = self.sim_ms;
        if !self.battery_ok_for_test() {
            // Fails at once: the UPS never drops the load for a bad battery.
            self.self_test_result = "BT";
            self.model.replace_battery = true;
            self.log("self-test failed (BT)");
        } else if self.model.load_pct > 100.0 {
            self.self_test_result = "NG";
            self.log("self-test failed (NG)");
        } else {
            self.self_test_until = Some(self.sim_ms + SELF_TEST_MS);
            self.log("self-test started");
            self.step(0.0);
        }
        self.reply(b"OK");
    }

    fn finish_self_test(&mut self) {
        self.self_test_until = None;
        self.self_test_result = if self.battery_ok_for_test() {
            "OK"
        } else {
            "BT"
        };
        if self.self_test_result == "BT" {
            self.model.replace_battery = true;
        }
        self.log(&format!("self-test finished: {}", self.self_test_result));
    }

    fn eeprom_changed(&mut self, now: u64) {
        self.eeprom_dirty = true;
        self.pipe_at = Some(now + PIPE_DELAY_MS);
    }

    fn alert(&mut self, b: u8) {
        // Collapse repeats still waiting for an idle line.
        if self.alerts.back() != Some(&b) {
            self.alerts.push_back(b);
        }
    }

    fn line_idle(&self, now: u64) -> bool {
        self.input == Input::Idle
            && self.out.is_empty()
            && now.saturating_sub(self.last_rx) >= ALERT_QUIET_MS
    }

    /// Next byte to send to the host, if any. Alerts, the `|` and injected
    /// garbage are released here, only when the line is idle.
    pub fn poll_output(&mut self, now_ms: u64) -> Option<u8> {
        self.tick(now_ms);
        if !self.linked || self.muted {
            self.out.clear();
            return None;
        }
        if self.out.is_empty() && self.line_idle(now_ms) {
            if self.smart {
                self.out.extend(self.alerts.drain(..));
                if self.pipe_at.is_some_and(|t| now_ms >= t) {
                    self.pipe_at = None;
                    self.out.push_back(b'|');
                }
            } else {
                // Stay silent until the host has sent `Y` (protocol §7.3).
                self.alerts.clear();
            }
            if self.noise && now_ms >= self.next_noise_at {
                let n = 1 + (self.rng.next_u64() % 4) as usize;
                for _ in 0..n {
                    let g = self.rng.garbage_byte();
                    self.garbage.push(g);
                }
                self.next_noise_at = now_ms + 2_000 + self.rng.next_u64() % 4_000;
            }
            self.out.extend(self.garbage.drain(..));
        }
        self.out.pop_front()
    }

    /// Drain everything that is ready now (for transports without pacing).
    pub fn drain_output(&mut self, now_ms: u64) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(b) = self.poll_output(now_ms) {
            v.push(b);
        }
        v
    }

    // ------------------------------------------------------------ readings

    fn freq(&self) -> f64 {
        if self.model.mains_on {
            self.model.freq
        } else if self.output_on {
            // No line: report the inverter's frequency.
            crate::model::NOMINAL_FREQ
        } else {
            0.0
        }
    }

    fn output_v(&self) -> f64 {
        if !self.output_on {
            0.0
        } else if self.on_battery {
            num(self.eeprom.get(b'o')).unwrap_or(115.0)
        } else {
            self.model.line_output_v()
        }
    }

    fn load_reading(&self) -> f64 {
        if self.output_on {
            self.model.load_pct
        } else {
            0.0
        }
    }

    fn runtime_min(&self) -> u32 {
        (self.model.runtime_s() / 60.0).floor().clamp(0.0, 9999.0) as u32
    }

    /// The `Q` status byte.
    pub fn status_byte(&self) -> u8 {
        if !self.output_on {
            // Undocumented on real units; 00 makes NUT report OFF (protocol §7.2).
            return 0;
        }
        let mut s = if self.on_battery { 0x10 } else { 0x08 };
        if self.calibrating {
            s |= 0x01;
        }
        if !self.on_battery && self.model.trim() {
            s |= 0x02;
        }
        if !self.on_battery && self.model.boost() {
            s |= 0x04;
        }
        if self.overload {
            s |= 0x20;
        }
        if self.low_batt {
            s |= 0x40;
        }
        if self.model.replace_battery {
            s |= 0x80;
        }
        s
    }

    fn reg2(&self) -> u8 {
        if self.model.battery_connected {
            0
        } else {
            0x20
        }
    }

    fn reg3(&self) -> u8 {
        let mut r = 0;
        if self.low_batt_shutdown {
            r |= 0x01;
        }
        let asleep = matches!(self.pending, Some((ShutdownKind::Hibernate(_), _)))
            || matches!(self.off_state, Some(OffState::Sleep { .. }));
        let in_s = matches!(self.pending, Some((ShutdownKind::Soft, _)))
            || (self.off_state == Some(OffState::AwaitMains) && !self.low_batt_shutdown);
        if asleep {
            r |= 0x08;
        }
        if in_s {
            r |= 0x10;
        }
        r
    }

    fn status_flags(&self) -> String {
        let s = self.status_byte();
        if s == 0 {
            return "OFF".into();
        }
        let names = [
            (0x08, "OL"),
            (0x10, "OB"),
            (0x40, "LB"),
            (0x80, "RB"),
            (0x20, "OVER"),
            (0x02, "TRIM"),
            (0x04, "BOOST"),
            (0x01, "CAL"),
        ];
        names
            .iter()
            .filter(|(m, _)| s & m != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(" ")
    }

    // ------------------------------------------------------------- control

    /// Run one operator command line. `Ok` text follows "OK ", `Err` follows "ERR ".
    pub fn control(&mut self, now_ms: u64, line: &str) -> Result<String, String> {
        self.tick(now_ms);
        let cmd = control::parse(line)?;
        self.apply(cmd)
    }

    fn apply(&mut self, cmd: Command) -> Result<String, String> {
        Ok(match cmd {
            Command::Mains(on) => {
                self.model.mains_on = on;
                self.step(0.0);
                format!("mains {}", if on { "on" } else { "off" })
            }
            Command::Input(v) => {
                self.model.input_setpoint = v;
                self.step(0.0);
                format!("input {v}")
            }
            Command::Load(p) => {
                self.model.load_pct = p;
                self.step(0.0);
                format!("load {p}")
            }
            Command::BatteryOk(ok) => {
                self.model.battery_connected = ok;
                self.step(0.0);
                format!("battery {}", if ok { "ok" } else { "fail" })
            }
            Command::ReplaceBattery(on) => {
                self.model.replace_battery = on;
                self.step(0.0);
                format!("replace-battery {}", if on { "on" } else { "off" })
            }
            Command::Unplug => {
                self.linked = false;
                self.input = Input::Idle;
                self.out.clear();
                self.log("link unplugged");
                "unplugged".into()
            }
            Command::Mute(on) => {
                self.muted = on;
                self.input = Input::Idle;
                self.out.clear();
                self.log(if on { "link muted" } else { "link unmuted" });
                format!("mute {}", if on { "on" } else { "off" })
            }
            Command::Replug => {
                self.linked = true;
                self.log("link replugged");
                "replugged".into()
            }
            Command::Garbage(n) => {
                for _ in 0..n {
                    let g = self.rng.garbage_byte();
                    self.garbage.push(g);
                }
                format!("{n} garbage bytes queued")
            }
            Command::Inject(bytes) => {
                let n = bytes.len();
                self.garbage.extend(bytes);
                format!("{n} bytes queued")
            }
            Command::PanelSelfTest => {
                // The front panel's test: the same as `W`, without a reply on the line.
                let before = self.out.len();
                self.self_test_cmd();
                self.out.truncate(before);
                format!("self-test: {}", self.self_test_result)
            }
            Command::Noise(on) => {
                self.noise = on;
                format!("noise {}", if on { "on" } else { "off" })
            }
            Command::PowerCycle => {
                self.pending = None;
                self.output_on = false;
                if self.model.line_ok
                    || (self.model.battery_connected && self.model.energy_wh > 0.0)
                {
                    self.turn_on("power-cycle");
                } else {
                    self.off_state = Some(OffState::AwaitMains);
                }
                self.step(0.0);
                "power-cycled".into()
            }
            Command::Speed(s) => {
                self.speed = s;
                format!("speed {s}")
            }
            Command::Set(var, value) => {
                self.eeprom.set(var, &value)?;
                self.eeprom_dirty = true;
                format!(
                    "{}={}",
                    var as char,
                    self.eeprom.get(var).unwrap_or_default()
                )
            }
            Command::Wait(_) => "".into(),
            Command::Status => self.status_json(),
            Command::Eeprom => self.eeprom.to_json(),
            Command::Help => control::HELP.into(),
        })
    }

    fn run_scenario(&mut self) {
        let Some(sc) = self.scenario.as_ref() else {
            return;
        };
        let elapsed = self.sim_ms - self.scenario_start;
        let mut due = Vec::new();
        while let Some(step) = sc.steps.get(self.scenario_next) {
            if (step.at_ms as f64) > elapsed {
                break;
            }
            due.push(step.clone());
            self.scenario_next += 1;
        }
        for step in due {
            let res = self.apply(step.command.clone());
            let text = match res {
                Ok(t) => format!(
                    "scenario +{:.1}s: {} -> OK {t}",
                    step.at_ms as f64 / 1000.0,
                    step.text
                ),
                Err(e) => format!(
                    "scenario +{:.1}s: {} -> ERR {e}",
                    step.at_ms as f64 / 1000.0,
                    step.text
                ),
            };
            self.log(&text);
        }
    }

    /// Replace the running scenario; its times count from now (simulated).
    pub fn load_scenario(&mut self, sc: Scenario) {
        self.scenario = Some(sc);
        self.scenario_next = 0;
        self.scenario_start = self.sim_ms;
    }

    pub fn scenario_done(&self) -> bool {
        self.scenario
            .as_ref()
            .is_none_or(|s| self.scenario_next >= s.steps.len())
    }

    fn log(&mut self, msg: &str) {
        // Bounded so a long unattended run cannot grow memory.
        if self.events.len() < 1000 {
            self.events
                .push(format!("[sim {:.1}s] {msg}", self.sim_ms / 1000.0));
        }
    }

    /// Human-readable events since the last call (for logs).
    pub fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }

    // --------------------------------------------------------------- views

    pub fn is_linked(&self) -> bool {
        self.linked
    }

    pub fn smart_mode(&self) -> bool {
        self.smart
    }

    pub fn output_on(&self) -> bool {
        self.output_on
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn sim_time_ms(&self) -> f64 {
        self.sim_ms
    }

    pub fn eeprom(&self) -> &Eeprom {
        &self.eeprom
    }

    /// True once after each EEPROM change (the runner persists it).
    pub fn take_eeprom_dirty(&mut self) -> bool {
        std::mem::take(&mut self.eeprom_dirty)
    }

    /// One line of JSON describing everything a test may want to check.
    pub fn status_json(&self) -> String {
        let pending = self.pending.map(|(kind, at)| {
            json!({"kind": kind.name(), "remaining_s": ((at - self.sim_ms) / 1000.0).max(0.0)})
        });
        let off_state = self.off_state.map(|s| match s {
            OffState::AwaitMains => "await_mains",
            OffState::Sleep { .. } => "sleep",
            OffState::StayOff => "stay_off",
        });
        let rt_min = self.runtime_min();
        let v = json!({
            "smart_mode": self.smart,
            "linked": self.linked,
            "muted": self.muted,
            "mains": self.model.mains_on,
            "line_ok": self.model.line_ok,
            "input_setpoint": self.model.input_setpoint,
            "input_voltage": round1(self.model.line_v),
            "output_voltage": round1(self.output_v()),
            "frequency": round2(self.freq()),
            "load": round1(self.load_reading()),
            "charge": round1(self.model.soc_pct()),
            "runtime_min": rt_min,
            "runtime_s": u64::from(rt_min) * 60,
            "runtime_exact_s": round1(self.model.runtime_s()),
            "battery_voltage": round2(self.model.battery_v),
            "temperature": round1(self.model.temp_c),
            "status": format!("{:02X}", self.status_byte()),
            "status_flags": self.status_flags(),
            "output_on": self.output_on,
            "on_battery": self.on_battery,
            "pending_shutdown": pending,
            "off_state": off_state,
            "off_reason": self.off_reason,
            "shutdowns": self.shutdowns,
            "transfer_cause": (self.transfer_cause as char).to_string(),
            "reg1": "00",
            "reg2": format!("{:02X}", self.reg2()),
            "reg3": format!("{:02X}", self.reg3()),
            "battery_connected": self.model.battery_connected,
            "replace_battery": self.model.replace_battery,
            "self_test": {
                "running": self.self_test_until.is_some(),
                "result": self.self_test_result,
                "count": self.self_tests,
            },
            "calibrating": self.calibrating,
            "panel_test": self.panel_until.is_some(),
            "noise": self.noise,
            "speed": self.speed,
            "sim_time_s": round1(self.sim_ms / 1000.0),
            "model": MODEL_NAME,
            "serial": SERIAL,
            "firmware": FIRMWARE,
            "eeprom": serde_json::to_value(&self.eeprom).unwrap_or_default(),
            "scenario_done": self.scenario_done(),
        });
        v.to_string()
    }
}

fn num(s: Option<&str>) -> Option<f64> {
    s?.trim().parse().ok()
}

fn fmt_v(v: f64) -> String {
    format!("{:05.1}", v.clamp(0.0, 999.9))
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
