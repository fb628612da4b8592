//! Physical model of a Smart-UPS 1000 (24 V, 12 Ah lead-acid pack): energy,
//! state of charge, runtime with a Peukert-style high-rate penalty, charging,
//! voltages and temperature. Pure functions of state and time; no I/O.

use crate::rng::Rng;

/// Rated real power (W) of the emulated unit.
pub const RATED_W: f64 = 670.0;
/// Nominal mains frequency (Hz).
pub const NOMINAL_FREQ: f64 = 60.0;
/// Pack energy at the 20-hour rate (2 × 12 V × 12 Ah).
pub const BATTERY_WH: f64 = 288.0;
const INVERTER_EFF: f64 = 0.88;
const ELECTRONICS_W: f64 = 12.0;
/// Lead-acid delivers less energy at high discharge rates; this exponent puts
/// full-load runtime near 8 minutes and half-load near 20, like the real unit.
const PEUKERT_EXP: f64 = 0.25;
/// Bulk charge rate: 90 % in about 3 hours.
const CHARGE_FRACTION_PER_H: f64 = 0.30;
const PACK_RESISTANCE_OHM: f64 = 0.04;
const TEMP_TAU_S: f64 = 600.0;
/// SmartBoost/SmartTrim thresholds (V) inside the transfer window.
pub const BOOST_BELOW_V: f64 = 108.0;
pub const TRIM_ABOVE_V: f64 = 126.0;
const BOOST_GAIN: f64 = 1.12;
const TRIM_GAIN: f64 = 0.88;
/// Extra margin (V) needed to go back to mains, so a borderline line does not chatter.
const RETURN_HYSTERESIS_V: f64 = 3.0;
/// Amplitude (V) of the random jitter on line readings.
const LINE_JITTER_V: f64 = 0.3;

#[derive(Debug, Clone)]
pub struct Model {
    pub mains_on: bool,
    /// Line voltage when mains is on (before jitter).
    pub input_setpoint: f64,
    pub load_pct: f64,
    pub battery_connected: bool,
    pub replace_battery: bool,
    pub energy_wh: f64,
    pub capacity_wh: f64,
    pub temp_c: f64,
    /// Last measured input voltage (0 when mains is off).
    pub line_v: f64,
    pub freq: f64,
    /// Line inside the transfer window (with hysteresis).
    pub line_ok: bool,
    /// Battery voltage, updated every step.
    pub battery_v: f64,
}

impl Model {
    pub fn new(load_pct: f64) -> Model {
        let mut m = Model {
            mains_on: true,
            input_setpoint: 118.3,
            load_pct,
            battery_connected: true,
            replace_battery: false,
            energy_wh: BATTERY_WH,
            capacity_wh: BATTERY_WH,
            temp_c: 0.0,
            line_v: 118.3,
            freq: NOMINAL_FREQ,
            line_ok: true,
            battery_v: 27.45,
        };
        m.temp_c = m.equilibrium_temp(false, true);
        m
    }

    pub fn soc_pct(&self) -> f64 {
        if !self.battery_connected || self.capacity_wh <= 0.0 {
            return 0.0;
        }
        (self.energy_wh / self.capacity_wh * 100.0).clamp(0.0, 100.0)
    }

    /// Real power (W) taken from the battery while on battery.
    pub fn battery_power_w(&self, output_on: bool) -> f64 {
        let load_w = if output_on {
            self.load_pct / 100.0 * RATED_W
        } else {
            0.0
        };
        load_w / INVERTER_EFF + ELECTRONICS_W
    }

    /// Rate (W) at which rated energy is used up, including the high-rate penalty.
    pub fn effective_draw_w(&self, output_on: bool) -> f64 {
        let p = self.battery_power_w(output_on);
        let p20 = BATTERY_WH / 20.0;
        if p > p20 {
            p * (p / p20).powf(PEUKERT_EXP)
        } else {
            p
        }
    }

    /// Estimated runtime on battery at the present load (s).
    pub fn runtime_s(&self) -> f64 {
        if !self.battery_connected {
            return 0.0;
        }
        (self.energy_wh.max(0.0) * 3600.0 / self.effective_draw_w(true)).min(9999.0 * 60.0)
    }

    fn equilibrium_temp(&self, on_battery: bool, output_on: bool) -> f64 {
        let load = if output_on {
            self.load_pct / 100.0
        } else {
            0.0
        };
        let charging = !on_battery && self.soc_pct() < 99.0;
        // Heat comes from the inverter on battery and from the charger.
        30.0 + 12.0 * load
            + if on_battery { 4.0 * load } else { 0.0 }
            + if charging { 2.0 } else { 0.0 }
    }

    /// Re-evaluate the input line against the transfer window `l..=u`.
    pub fn update_line(&mut self, rng: &mut Rng, low: f64, high: f64) {
        if self.mains_on {
            self.line_v = (self.input_setpoint + rng.signed() * LINE_JITTER_V).max(0.0);
            self.freq = NOMINAL_FREQ + rng.signed() * 0.02;
        } else {
            self.line_v = 0.0;
            self.freq = 0.0;
        }
        let v = self.input_setpoint;
        self.line_ok = if !self.mains_on {
            false
        } else if self.line_ok {
            v >= low && v <= high
        } else {
            v >= low + RETURN_HYSTERESIS_V && v <= high - RETURN_HYSTERESIS_V
        };
    }

    /// Why the line is unusable: `L` low/blackout, `H` high.
    pub fn transfer_cause(&self, high: f64) -> u8 {
        if self.mains_on && self.input_setpoint > high {
            b'H'
        } else {
            b'L'
        }
    }

    pub fn boost(&self) -> bool {
        self.line_ok && self.input_setpoint < BOOST_BELOW_V
    }

    pub fn trim(&self) -> bool {
        self.line_ok && self.input_setpoint > TRIM_ABOVE_V
    }

    /// Output voltage on line, after SmartBoost/SmartTrim.
    pub fn line_output_v(&self) -> f64 {
        if self.boost() {
            self.line_v * BOOST_GAIN
        } else if self.trim() {
            self.line_v * TRIM_GAIN
        } else {
            self.line_v
        }
    }

    /// Advance energy, voltage and temperature by `dt_s` simulated seconds.
    pub fn step(&mut self, dt_s: f64, on_battery: bool, output_on: bool, rng: &mut Rng) {
        let dt_h = dt_s / 3600.0;
        if self.battery_connected {
            if on_battery {
                self.energy_wh -= self.effective_draw_w(output_on) * dt_h;
                self.energy_wh = self.energy_wh.max(0.0);
            } else if self.line_ok {
                let soc = self.soc_pct();
                let taper = if soc < 90.0 {
                    1.0
                } else {
                    ((100.0 - soc) / 10.0).max(0.05)
                };
                self.energy_wh += CHARGE_FRACTION_PER_H * self.capacity_wh * taper * dt_h;
                self.energy_wh = self.energy_wh.min(self.capacity_wh);
            }
        }
        let soc = self.soc_pct() / 100.0;
        self.battery_v = if !self.battery_connected {
            0.0
        } else if on_battery {
            let ocv = 23.0 + 2.6 * soc;
            let amps = self.battery_power_w(output_on) / ocv;
            (ocv - amps * PACK_RESISTANCE_OHM).max(0.0)
        } else {
            26.0 + 1.45 * soc + rng.signed() * 0.02
        };
        let eq = self.equilibrium_temp(on_battery, output_on);
        let k = 1.0 - (-dt_s / TEMP_TAU_S).exp();
        self.temp_c += (eq - self.temp_c) * k;
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_are_plausible() {
        let mut m = Model::new(100.0);
        let full = m.runtime_s() / 60.0;
        assert!((6.0..11.0).contains(&full), "full load {full} min");
        m.load_pct = 50.0;
        let half = m.runtime_s() / 60.0;
        assert!((16.0..26.0).contains(&half), "half load {half} min");
        m.load_pct = 23.5;
        let light = m.runtime_s() / 60.0;
        assert!((40.0..55.0).contains(&light), "light load {light} min");
    }

    #[test]
    fn discharge_matches_runtime_estimate() {
        let mut rng = Rng::new(1);
        let mut m = Model::new(60.0);
        let est = m.runtime_s();
        let mut t = 0.0;
        while m.energy_wh > 0.0 && t < 10_000.0 {
            m.step(1.0, true, true, &mut rng);
            t += 1.0;
        }
        assert!((t - est).abs() < 2.0, "ran {t} s, estimated {est} s");
    }

    #[test]
    fn recharges_to_90_in_about_3_hours() {
        let mut rng = Rng::new(1);
        let mut m = Model::new(20.0);
        m.energy_wh = 0.0;
        let mut t = 0.0;
        while m.soc_pct() < 90.0 {
            m.step(10.0, false, true, &mut rng);
            t += 10.0;
        }
        assert!((2.5 * 3600.0..3.5 * 3600.0).contains(&t), "{t}");
        assert!(m.battery_v > 26.5);
    }

    #[test]
    fn transfer_window_has_hysteresis() {
        let mut rng = Rng::new(1);
        let mut m = Model::new(20.0);
        m.input_setpoint = 102.0;
        m.update_line(&mut rng, 103.0, 127.0);
        assert!(!m.line_ok);
        m.input_setpoint = 104.0;
        m.update_line(&mut rng, 103.0, 127.0);
        assert!(!m.line_ok, "needs the return margin");
        m.input_setpoint = 107.0;
        m.update_line(&mut rng, 103.0, 127.0);
        assert!(m.line_ok && m.boost());
        assert!(m.line_output_v() > 115.0);
    }
}
