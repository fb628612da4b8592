//! Driver tests: a scripted Smart-UPS (the ups-link-protocol.md §7.1 profile) talks to the
//! link driver in virtual time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use upsguard_core::link::{
    CommState, KillMethod, LinkConfig, LinkDriver, LinkEvent, RequestError, RequestResult,
    UpsRequest,
};
use upsguard_core::time::Instant;
use upsguard_core::wire::{Alert, SettingVar, StatusFlags, StringVar, Value};

mod common;
use common::ups::*;

struct Harness {
    drv: LinkDriver,
    ups: Ups,
    now: u64,
    events: Vec<(u64, LinkEvent)>,
    tx: Vec<(u64, u8)>,
    rx_bytes: Vec<(u64, usize)>,
    /// When the driver last received a byte.
    last_rx: Option<u64>,
}

impl Harness {
    fn new() -> Self {
        Self::with(LinkConfig::default())
    }
    fn with(cfg: LinkConfig) -> Self {
        Harness {
            drv: LinkDriver::new(cfg),
            ups: Ups::new(),
            now: 0,
            events: vec![],
            tx: vec![],
            rx_bytes: vec![],
            last_rx: None,
        }
    }

    fn pump(&mut self) {
        let now = Instant(self.now);
        while let Some(t) = self.drv.poll_transmit(now) {
            for &b in t.as_bytes() {
                self.tx.push((self.now, b));
                self.ups.receive(self.now, b);
            }
        }
        while let Some(e) = self.drv.poll_event() {
            self.events.push((self.now, e));
        }
    }

    fn run_until(&mut self, end: u64) {
        let mut spins = 0;
        loop {
            self.pump();
            let drv_t = self.drv.poll_timeout().map_or(u64::MAX, |i| i.0);
            let ups_t = self.ups.out.front().map_or(u64::MAX, |o| o.0);
            let next = drv_t.min(ups_t).max(self.now);
            if next > end {
                self.now = end;
                self.pump();
                return;
            }
            if next == self.now {
                spins += 1;
                assert!(spins < 10_000, "driver spins at {} ms", self.now);
            } else {
                spins = 0;
            }
            self.now = next;
            while self.ups.out.front().is_some_and(|o| o.0 <= self.now) {
                let (_, bytes) = self.ups.out.pop_front().unwrap();
                self.rx_bytes.push((self.now, bytes.len()));
                self.last_rx = Some(self.now);
                self.drv.handle_input(Instant(self.now), &bytes);
                self.pump();
            }
            if self.drv.poll_timeout().is_some_and(|t| t.0 <= self.now) {
                self.drv.handle_timeout(Instant(self.now));
            }
        }
    }

    fn deliver(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.last_rx = Some(self.now);
        }
        self.drv.handle_input(Instant(self.now), bytes);
        self.pump();
    }

    /// Steps to an instant with no exchange in flight, nothing due, and no byte received
    /// within `alert_quiet`: an alert delivered now is isolated.
    fn quiet_point(&mut self) {
        let q = self.drv.config().alert_quiet.as_millis();
        for _ in 0..100_000 {
            if self.ups.out.is_empty()
                && self.last_rx.is_none_or(|t| self.now >= t + q)
                && self.drv.poll_timeout().is_none_or(|t| t.0 > self.now)
            {
                return;
            }
            self.run_until(self.now + 1);
        }
        panic!("no quiet point");
    }

    /// Steps until the driver has just sent `byte`; its reply is then `ups.out.back()`.
    fn until_sent(&mut self, byte: u8) {
        let from = self.tx.len();
        for _ in 0..100_000 {
            if self.tx[from..].iter().any(|(_, b)| *b == byte) {
                assert_eq!(self.tx.last().map(|(_, b)| *b), Some(byte));
                return;
            }
            self.run_until(self.now + 1);
        }
        panic!("{} never sent", char::from(byte));
    }

    fn events_since(&self, t: u64) -> Vec<(u64, LinkEvent)> {
        self.events
            .iter()
            .filter(|(at, _)| *at >= t)
            .cloned()
            .collect()
    }

    fn sent_since(&self, t: u64) -> Vec<(u64, u8)> {
        self.tx.iter().copied().filter(|(at, _)| *at >= t).collect()
    }

    fn count_events(&self, f: impl Fn(&LinkEvent) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| f(e)).count()
    }

    fn first_event(&self, f: impl Fn(&LinkEvent) -> bool) -> Option<u64> {
        self.events.iter().find(|(_, e)| f(e)).map(|(t, _)| *t)
    }

    fn request(&mut self, req: UpsRequest) -> upsguard_core::link::RequestId {
        let id = self.drv.request(Instant(self.now), req).unwrap();
        self.pump();
        id
    }

    fn result_of(&self, id: upsguard_core::link::RequestId) -> Option<(u64, RequestResult)> {
        self.events.iter().find_map(|(t, e)| match e {
            LinkEvent::RequestDone { id: i, result } if *i == id => Some((*t, *result)),
            _ => None,
        })
    }
}

fn started() -> Harness {
    let mut h = Harness::new();
    h.run_until(10_000);
    assert!(
        h.first_event(|e| *e == LinkEvent::Identified).is_some(),
        "{:?}",
        h.events
    );
    h
}

#[test]
fn startup_discovery_and_snapshot() {
    let mut h = started();
    h.run_until(15_000);
    let kinds: Vec<_> = h.events.iter().take(3).map(|(_, e)| e.clone()).collect();
    assert_eq!(kinds[0], LinkEvent::CommEstablished);
    assert_eq!(
        kinds[1],
        LinkEvent::StatusChanged {
            old: None,
            new: StatusFlags::OL
        }
    );
    // Discovery sent exactly the listed identification commands, in order, once.
    let sent: Vec<u8> =
        h.tx.iter()
            .map(|(_, b)| *b)
            .filter(|b| *b != b'Q')
            .collect();
    assert!(
        sent.starts_with(b"Yab\x01nmxcgo\x1aulesqpkrE"),
        "{:?}",
        String::from_utf8_lossy(&sent)
    );
    assert_eq!(h.count_events(|e| *e == LinkEvent::Identified), 1);
    assert_eq!(h.drv.snapshot().comm, CommState::Established);
    // Stamps are virtual times: keep them, they are deterministic.
    insta::assert_debug_snapshot!("snapshot_after_15s", h.drv.snapshot());
}

#[test]
fn status_is_fresh_and_budget_respected() {
    let mut h = started();
    let from = 20_000;
    h.run_until(80_000);
    let qs: Vec<u64> =
        h.tx.iter()
            .filter(|(t, b)| *t >= from && *b == b'Q')
            .map(|(t, _)| *t)
            .collect();
    for w in qs.windows(2) {
        assert!(w[1] - w[0] <= 1_050, "Q gap {} ms", w[1] - w[0]);
    }
    let bytes: usize = h
        .rx_bytes
        .iter()
        .filter(|(t, _)| *t >= from)
        .map(|(_, n)| *n)
        .sum();
    let secs = (80_000 - from) / 1000;
    // 10 % of 240 B/s = 24 B/s, plus one reply of slack.
    assert!(bytes as u64 <= secs * 24 + 7, "{bytes} bytes in {secs} s");
    assert!(
        bytes as u64 >= secs * 20,
        "budget under-used: {bytes} bytes in {secs} s"
    );
    // Every rotated measurement was refreshed within the last ~6 s.
    let m = &h.drv.snapshot().measurements;
    for at in [
        m.input_voltage.unwrap().at,
        m.output_voltage.unwrap().at,
        m.load_percent.unwrap().at,
        m.charge_percent.unwrap().at,
        m.runtime_seconds.unwrap().at,
        m.battery_voltage.unwrap().at,
        m.frequency.unwrap().at,
        m.temperature.unwrap().at,
        m.line_quality.unwrap().at,
        m.max_line_voltage.unwrap().at,
        m.min_line_voltage.unwrap().at,
        h.drv.snapshot().registers.reg3.unwrap().at,
    ] {
        assert!(80_000 - at.0 <= 6_000, "stale by {} ms", 80_000 - at.0);
    }
    assert_eq!(m.runtime_seconds.unwrap().value, 45 * 60);
    assert_eq!(m.input_voltage.unwrap().value.hundredths(), 11830);
}

/// On battery, runtime and charge jump the rotation (≤ ~2 s old) while the line stays
/// within its budget and the other measurements are still refreshed.
#[test]
fn on_battery_runtime_and_charge_stay_fresh() {
    let mut h = started();
    h.ups.status = 0x10;
    h.run_until(22_000);
    let from = 25_000;
    let mut worst_runtime = 0;
    let mut worst_charge = 0;
    let mut t = from;
    while t <= 85_000 {
        h.run_until(t);
        let m = &h.drv.snapshot().measurements;
        worst_runtime = worst_runtime.max(t - m.runtime_seconds.unwrap().at.0);
        worst_charge = worst_charge.max(t - m.charge_percent.unwrap().at.0);
        t += 100;
    }
    assert!(
        worst_runtime <= 2_600,
        "runtime {worst_runtime} ms old on battery"
    );
    assert!(
        worst_charge <= 2_600,
        "charge {worst_charge} ms old on battery"
    );
    let bytes: usize = h
        .rx_bytes
        .iter()
        .filter(|(t, _)| *t >= from)
        .map(|(_, n)| *n)
        .sum();
    assert!(bytes as u64 <= 60 * 24 + 7, "{bytes} bytes in 60 s");
    let m = &h.drv.snapshot().measurements;
    for at in [m.input_voltage.unwrap().at, m.temperature.unwrap().at] {
        assert!(85_000 - at.0 <= 20_000, "starved: {} ms old", 85_000 - at.0);
    }
}

#[test]
fn handshake_failure_then_success() {
    let mut h = Harness::new();
    h.ups.dead = true;
    h.run_until(20_000);
    let ys: Vec<u64> =
        h.tx.iter()
            .filter(|(_, b)| *b == b'Y')
            .map(|(t, _)| *t)
            .collect();
    assert_eq!(&ys[..5], [0, 1500, 3000, 4500, 6000]);
    assert_eq!(h.count_events(|e| *e == LinkEvent::CommLost), 1);
    assert_eq!(h.first_event(|e| *e == LinkEvent::CommLost), Some(7500));
    // Backoff afterwards: gaps grow.
    let gaps: Vec<u64> = ys.windows(2).skip(4).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    h.ups.dead = false;
    h.run_until(60_000);
    assert_eq!(
        h.count_events(|e| *e == LinkEvent::CommLost),
        1,
        "reported once"
    );
    assert_eq!(h.count_events(|e| *e == LinkEvent::CommEstablished), 1);
    assert_eq!(h.count_events(|e| *e == LinkEvent::Identified), 1);
}

#[test]
fn dead_link_detected_and_recovered() {
    let mut h = started();
    h.run_until(20_000);
    h.ups.dead = true;
    h.run_until(40_000);
    let lost = h
        .first_event(|e| *e == LinkEvent::CommLost)
        .expect("CommLost");
    assert!(
        lost - 20_000 <= 3_000,
        "detected after {} ms",
        lost - 20_000
    );
    assert_eq!(h.drv.snapshot().comm, CommState::Lost);
    // The UPS comes back power-cycled (dumb mode): Y, then a fresh discovery.
    h.ups.dead = false;
    h.ups.smart = false;
    let back = h.now;
    h.run_until(70_000);
    let est: Vec<u64> = h
        .events
        .iter()
        .filter(|(t, e)| *t >= back && *e == LinkEvent::CommEstablished)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(est.len(), 1);
    assert_eq!(h.count_events(|e| *e == LinkEvent::CommLost), 1);
    assert_eq!(h.count_events(|e| *e == LinkEvent::Identified), 2);
    assert!(
        h.sent_since(back).iter().any(|(_, b)| *b == b'a'),
        "discovery rerun"
    );
}

#[test]
fn alert_mid_reply() {
    let mut h = started();
    h.run_until(12_000);
    h.ups.inject = Some(b'!');
    h.ups.status = 0x10;
    let before = h.events.len();
    let t0 = h.now;
    h.run_until(t0 + 2_000);
    let new: Vec<_> = h.events[before..].to_vec();
    let alert_at = new
        .iter()
        .find(|(_, e)| *e == LinkEvent::Alert(Alert::LineFail))
        .map(|(t, _)| *t)
        .expect("alert event");
    let status_at = new
        .iter()
        .find(|(_, e)| {
            *e == LinkEvent::StatusChanged {
                old: Some(StatusFlags::OL),
                new: StatusFlags::OB,
            }
        })
        .map(|(t, _)| *t)
        .expect("status change");
    // The status comes from `Q` alone: the reply that carried the alert (if it was `Q`) or
    // the re-read that follows it at once.
    assert!(
        status_at <= alert_at + 60,
        "status followed within one exchange: alert {alert_at}, status {status_at}"
    );
    // The next byte sent after the alert is a Q re-read.
    let next = h.tx.iter().find(|(t, _)| *t >= alert_at);
    assert_eq!(next.map(|(_, b)| *b), Some(b'Q'));
    // And the reply that carried the alert still parsed (no garbage, no desync).
    assert_eq!(h.drv.snapshot().comm, CommState::Established);
    assert_eq!(h.drv.snapshot().status.unwrap().value, StatusFlags::OB);
}

#[test]
fn na_variable_is_dropped() {
    let mut h = Harness::new();
    h.ups.na.insert(b'C');
    h.ups.na.insert(b'9');
    h.ups.table.insert(b'G', b"NA".to_vec());
    h.run_until(60_000);
    let count = |c: u8| h.tx.iter().filter(|(_, b)| *b == c).count();
    assert_eq!(count(b'C'), 1, "C asked once");
    assert_eq!(count(b'9'), 1);
    assert!(
        count(b'G') > 3,
        "G answering NA means 'not known yet', keep polling"
    );
    assert_eq!(h.drv.snapshot().comm, CommState::Established);
    assert!(h.drv.snapshot().measurements.temperature.is_none());
}

fn paced_request(h: &mut Harness, req: UpsRequest) -> (u64, Vec<(u64, u8)>, RequestResult) {
    let t0 = h.now;
    let id = h.request(req);
    h.run_until(t0 + 5_000);
    let (done, result) = h.result_of(id).expect("request finished");
    let sent =
        h.tx.iter()
            .copied()
            .filter(|(t, _)| *t >= t0 && *t < done)
            .collect();
    (t0, sent, result)
}

#[test]
fn k_k_pacing() {
    let mut h = started();
    h.run_until(12_345);
    let (_, sent, result) = paced_request(&mut h, UpsRequest::ShutdownStayOff);
    assert_eq!(result, RequestResult::Done);
    let k: Vec<usize> = (0..sent.len()).filter(|i| sent[*i].1 == b'K').collect();
    assert_eq!(k.len(), 2);
    let (t1, t2) = (sent[k[0]].0, sent[k[1]].0);
    assert!(t2 - t1 >= 1_500, "gap {}", t2 - t1);
    assert_eq!(k[1], k[0] + 1, "nothing sent between the two K: {sent:?}");
    assert_eq!(h.ups.double_gaps, [1_500]);
}

#[test]
fn at_nnn_pacing() {
    let mut h = started();
    h.run_until(12_345);
    let (_, sent, result) =
        paced_request(&mut h, UpsRequest::ShutdownReturn { tenths_of_hour: 12 });
    assert_eq!(result, RequestResult::Done);
    let at = sent.iter().position(|(_, b)| *b == b'@').unwrap();
    let seq: Vec<u8> = sent[at..at + 4].iter().map(|(_, b)| *b).collect();
    assert_eq!(seq, b"@012");
    let t: Vec<u64> = sent[at..at + 4].iter().map(|(t, _)| *t).collect();
    assert_eq!([t[1] - t[0], t[2] - t[1], t[3] - t[2]], [200, 50, 50]);
    assert_eq!(
        sent.len(),
        at + 4,
        "nothing after the digits until the ack: {sent:?}"
    );
    assert_eq!(
        h.drv.request(
            Instant(h.now),
            UpsRequest::ShutdownReturn {
                tenths_of_hour: 1000
            }
        ),
        Err(RequestError::InvalidValue)
    );
}

#[test]
fn slow_digits_are_configurable() {
    let cfg = LinkConfig {
        digit_gap: upsguard_core::time::Duration::from_millis(2000),
        ack_timeout: upsguard_core::time::Duration::from_millis(3000),
        ..LinkConfig::default()
    };
    let mut h = Harness::with(cfg);
    h.run_until(10_000);
    let (_, sent, result) = paced_request(&mut h, UpsRequest::ShutdownReturn { tenths_of_hour: 0 });
    assert_eq!(result, RequestResult::Done);
    let at = sent.iter().position(|(_, b)| *b == b'@').unwrap();
    assert_eq!(sent[at + 3].0 - sent[at + 1].0, 4_000);
}

#[test]
fn setting_change_by_cycling() {
    let mut h = started();
    h.run_until(12_000);
    let v = Value::from_text("133").unwrap();
    let bad = Value::from_text("200").unwrap();
    assert_eq!(
        h.drv.request(
            Instant(h.now),
            UpsRequest::SetSetting {
                var: SettingVar::TransferHigh,
                value: bad
            }
        ),
        Err(RequestError::NotPermitted)
    );
    let t0 = h.now;
    let id = h.request(UpsRequest::SetSetting {
        var: SettingVar::TransferHigh,
        value: v,
    });
    h.run_until(t0 + 3_000);
    let (_, result) = h.result_of(id).unwrap();
    assert_eq!(result, RequestResult::Done);
    assert_eq!(h.drv.snapshot().settings.transfer_high.unwrap().value, 133);
    assert!(h.events.iter().any(|(_, e)| *e
        == LinkEvent::SettingChanged {
            var: SettingVar::TransferHigh,
            value: v
        }));
    // u, -, u, -, u: query, cycle, re-query; `-` always right after `u`.
    let seq: Vec<u8> = h
        .sent_since(t0)
        .iter()
        .map(|(_, b)| *b)
        .filter(|b| matches!(b, b'u' | b'-'))
        .take(5)
        .collect();
    assert_eq!(seq, b"u-u-u");
    let sent = h.sent_since(t0);
    for (i, (_, b)) in sent.iter().enumerate() {
        if *b == b'-' {
            assert_eq!(sent[i - 1].1, b'u');
        }
    }
    // Already at the value: Unchanged, no cycling.
    let t1 = h.now;
    let id = h.request(UpsRequest::SetSetting {
        var: SettingVar::TransferHigh,
        value: v,
    });
    h.run_until(t1 + 2_000);
    assert_eq!(h.result_of(id).unwrap().1, RequestResult::Unchanged);
    assert!(!h.sent_since(t1).iter().any(|(_, b)| *b == b'-'));
}

#[test]
fn setting_change_gives_up_after_wrap() {
    let mut h = started();
    // The UPS lists 136 but never reaches it (its cycle skips it): one full wrap, then fail.
    h.ups.settings.insert(b'u', (vec!["127", "130", "133"], 0));
    let v = Value::from_text("136").unwrap();
    let id = h.request(UpsRequest::SetSetting {
        var: SettingVar::TransferHigh,
        value: v,
    });
    h.run_until(h.now + 5_000);
    assert_eq!(
        h.result_of(id).unwrap().1,
        RequestResult::Failed(upsguard_core::link::RequestFailure::Wrapped)
    );
}

#[test]
fn write_string() {
    let mut h = started();
    let id = h.request(UpsRequest::WriteString {
        var: StringVar::UpsId,
        value: heapless::String::try_from("RACK1").unwrap(),
    });
    h.run_until(h.now + 3_000);
    assert_eq!(h.result_of(id).unwrap().1, RequestResult::Done);
    assert_eq!(
        h.drv
            .snapshot()
            .identity
            .ups_id
            .as_ref()
            .unwrap()
            .value
            .as_str(),
        "RACK1"
    );
    let sent: Vec<u8> = h.tx.iter().map(|(_, b)| *b).collect();
    assert!(sent.windows(10).any(|w| w == b"c-RACK1   "));
}

#[test]
fn kill_power_falls_back_s_at_k() {
    let mut h = started();
    h.ups.status = 0x10;
    h.deliver(b"!");
    h.run_until(h.now + 1_000);
    h.ups.refuse.insert(b'S');
    h.ups.refuse.insert(b'@');
    let t0 = h.now;
    let id = h.request(UpsRequest::KillPower);
    h.run_until(t0 + 10_000);
    assert_eq!(
        h.result_of(id).unwrap().1,
        RequestResult::KillPower(KillMethod::StayOff)
    );
    let done = h.result_of(id).unwrap().0;
    let seq: Vec<u8> = h
        .sent_since(t0)
        .iter()
        .filter(|(t, b)| *t < done && *b != b'Q')
        .map(|(_, b)| *b)
        .collect();
    assert_eq!(seq, b"S@000KK");
}

#[test]
fn kill_power_on_line_uses_at() {
    let mut h = started();
    let id = h.request(UpsRequest::KillPower);
    h.run_until(h.now + 3_000);
    assert_eq!(
        h.result_of(id).unwrap().1,
        RequestResult::KillPower(KillMethod::ShutdownReturn)
    );
    let mut h = started();
    h.ups.status = 0x10;
    h.deliver(b"!");
    let id = h.request(UpsRequest::KillPower);
    h.run_until(h.now + 3_000);
    assert_eq!(
        h.result_of(id).unwrap().1,
        RequestResult::KillPower(KillMethod::SoftShutdown)
    );
}

#[test]
fn simple_requests_and_close() {
    let mut h = started();
    let ids: Vec<_> = [
        UpsRequest::SelfTest,
        UpsRequest::PanelTest,
        UpsRequest::AbortShutdown,
        UpsRequest::TurnOn,
    ]
    .into_iter()
    .map(|r| h.request(r))
    .collect();
    h.run_until(h.now + 6_000);
    for id in ids {
        assert_eq!(h.result_of(id).unwrap().1, RequestResult::Done);
    }
    let cal = h.request(UpsRequest::CalibrationAbort);
    h.run_until(h.now + 2_000);
    assert_eq!(
        h.result_of(cal).unwrap().1,
        RequestResult::Failed(upsguard_core::link::RequestFailure::NotRunning)
    );
    let t0 = h.now;
    h.drv.shutdown_link(Instant(h.now));
    h.run_until(t0 + 3_000);
    assert_eq!(h.sent_since(t0).first().map(|(_, b)| *b), Some(b'R'));
    assert!(h.events.iter().any(|(_, e)| *e == LinkEvent::Closed));
    assert_eq!(h.drv.snapshot().comm, CommState::Closed);
    assert!(!h.ups.smart, "UPS back in dumb mode");
    assert_eq!(h.drv.poll_timeout(), None);
    assert_eq!(
        h.drv.request(Instant(h.now), UpsRequest::SelfTest),
        Err(RequestError::Closed)
    );
}

#[test]
fn reset_restarts_handshake() {
    let mut h = started();
    h.ups.smart = false;
    h.drv.reset(Instant(h.now));
    let t0 = h.now;
    h.run_until(t0 + 10_000);
    assert_eq!(h.sent_since(t0).first().map(|(_, b)| *b), Some(b'Y'));
    assert_eq!(h.count_events(|e| *e == LinkEvent::Identified), 2);
}

#[test]
fn silent_protocol_info_falls_back() {
    // A very old unit ignores `a`: no Communication Lost, fallback command set, NA pruning.
    // One unit answers `NA`, the other says nothing at all.
    let mut h = Harness::new();
    h.ups.na.insert(b'a');
    let mut h2 = Harness::new();
    h2.ups.silent.insert(b'a');
    for h in [&mut h, &mut h2] {
        h.run_until(30_000);
        assert_eq!(
            h.count_events(|e| *e == LinkEvent::CommLost),
            0,
            "{:?}",
            h.events
        );
        assert_eq!(h.count_events(|e| *e == LinkEvent::Identified), 1);
        assert!(h.drv.snapshot().protocol.is_none());
        assert!(h.drv.snapshot().capabilities.is_some());
        assert!(h.drv.snapshot().measurements.input_voltage.is_some());
    }
}

#[test]
fn q_answering_sm_after_power_up_is_not_a_failure() {
    let mut h = Harness::new();
    h.ups.table.insert(b'Q', b"SM".to_vec());
    h.ups.status_sm = true;
    h.run_until(10_000);
    assert!(h.drv.snapshot().status.is_none());
    assert_eq!(h.drv.snapshot().comm, CommState::Established);
    h.ups.status_sm = false;
    h.run_until(12_000);
    assert_eq!(h.drv.snapshot().status.unwrap().value, StatusFlags::OL);
}

#[test]
fn requests_fail_when_link_never_comes_up() {
    let mut h = Harness::new();
    h.ups.dead = true;
    let id = h.request(UpsRequest::KillPower);
    h.run_until(10_000);
    assert_eq!(
        h.result_of(id).unwrap(),
        (
            7_500,
            RequestResult::Failed(upsguard_core::link::RequestFailure::CommLost)
        )
    );
}

#[test]
fn eeprom_alert_triggers_settings_refresh() {
    let mut h = started();
    h.run_until(20_000);
    h.ups.settings.get_mut(&b'p').unwrap().1 = 2;
    let t0 = h.now;
    h.deliver(b"|");
    h.run_until(t0 + 5_000);
    assert!(h.sent_since(t0).iter().any(|(_, b)| *b == b'p'));
    assert_eq!(
        h.drv.snapshot().settings.shutdown_delay_s.unwrap().value,
        300
    );
    assert!(h.events.iter().any(|(_, e)| *e
        == LinkEvent::SettingChanged {
            var: SettingVar::ShutdownDelay,
            value: Value::from_text("300").unwrap()
        }));
}

const QUIET: u64 = 7;

fn status_changes(ev: &[(u64, LinkEvent)]) -> Vec<(u64, Option<StatusFlags>, StatusFlags)> {
    ev.iter()
        .filter_map(|(t, e)| match e {
            LinkEvent::StatusChanged { old, new } => Some((*t, *old, *new)),
            _ => None,
        })
        .collect()
}

#[test]
fn alert_quiet_default_is_1_5_byte_times() {
    assert_eq!(LinkConfig::default().alert_quiet.as_millis(), QUIET);
    assert_eq!(LinkConfig::alert_quiet_for_baud(2400).as_millis(), 7);
    assert_eq!(LinkConfig::alert_quiet_for_baud(9600).as_millis(), 2);
    assert_eq!(LinkConfig::alert_quiet_for_baud(1200).as_millis(), 13);
    assert_eq!(LinkConfig::alert_quiet_for_baud(0).as_millis(), 15_000);
}

#[test]
fn isolated_alert_acted_on_after_quiet() {
    let mut h = started();
    h.run_until(20_000);
    h.quiet_point();
    h.ups.status = 0x10;
    let t0 = h.now;
    h.deliver(b"!");
    // Held: nothing yet, and the caller is told to wake at the hold deadline.
    assert!(h.events_since(t0).is_empty(), "{:?}", h.events_since(t0));
    assert_eq!(h.drv.poll_timeout(), Some(Instant(t0 + QUIET)));
    assert!(
        h.drv.poll_transmit(Instant(t0 + 1)).is_none(),
        "nothing sent while held"
    );
    h.run_until(t0 + QUIET - 1);
    assert!(h.events_since(t0).is_empty());
    h.run_until(t0 + 500);
    let ev = h.events_since(t0);
    assert_eq!(
        ev.first(),
        Some(&(t0 + QUIET, LinkEvent::Alert(Alert::LineFail)))
    );
    // The alert alone changes nothing: the Q re-read, sent at once, does (its reply comes
    // the UPS's 20 ms later).
    assert_eq!(
        status_changes(&ev),
        [(t0 + QUIET + 20, Some(StatusFlags::OL), StatusFlags::OB)]
    );
    assert_eq!(h.sent_since(t0).first(), Some(&(t0 + QUIET, b'Q')));
    // A transfer to battery: its cause (`G`) is read next, to tell a self-test apart.
    assert_eq!(
        h.sent_since(t0 + QUIET + 1).first().map(|x| x.1),
        Some(b'G')
    );
    assert!(!h.drv.snapshot().power_cause_pending);
    assert!(!h.drv.snapshot().self_test_running);
    assert_eq!(h.drv.snapshot().noise_alerts, 0);
    assert_eq!(h.drv.snapshot().status.unwrap().value, StatusFlags::OB);
}

#[test]
fn handle_input_after_the_deadline_settles_first() {
    // A caller that did not wake at poll_timeout: the hold is settled (confirmed) before
    // the later bytes are looked at.
    let mut h = started();
    h.run_until(20_000);
    h.quiet_point();
    let t0 = h.now;
    h.ups.status |= 0x40;
    h.drv.handle_input(Instant(t0), b"%");
    h.now = t0 + 50;
    h.drv.handle_input(Instant(t0 + 50), b"x");
    h.pump();
    h.run_until(t0 + 200);
    let ev = h.events_since(t0);
    assert!(
        ev.contains(&(t0 + 50, LinkEvent::Alert(Alert::LowBattery))),
        "{ev:?}"
    );
    assert_eq!(h.drv.snapshot().noise_alerts, 0);
    assert!(
        h.drv
            .snapshot()
            .status
            .unwrap()
            .value
            .contains(StatusFlags::LB)
    );
}

#[test]
fn alert_next_to_another_byte_is_noise() {
    // (UPS status, bytes with their delay): an alert with a stranger byte 2 ms after it, or
    // 3 ms before it; whether or not the UPS really changed state.
    for (ups_status, script) in [
        (0x08, &[(0u64, &b"!"[..]), (2, b"\x8e")][..]),
        (0x10, &[(0, &b"!"[..]), (2, b"\x8e")][..]),
        (0x08, &[(0, &b"q"[..]), (3, b"!")][..]),
        (0x08, &[(0, &b"?"[..]), (1, b"\r\n")][..]),
        (0x08, &[(0, &b"x!y"[..])][..]),
    ] {
        let mut h = started();
        h.run_until(20_000);
        h.quiet_point();
        h.ups.status = ups_status;
        let t0 = h.now;
        let mut t = t0;
        for (dt, bytes) in script {
            h.run_until(t + dt);
            t = h.now;
            h.deliver(bytes);
        }
        let last = t;
        h.run_until(t0 + 500);
        let ev = h.events_since(t0);
        assert!(
            !ev.iter().any(|(_, e)| matches!(e, LinkEvent::Alert(_))),
            "{ev:?}"
        );
        assert!(ev.contains(&(last + QUIET, LinkEvent::LineNoise { alerts: 1 })));
        assert_eq!(h.drv.snapshot().noise_alerts, 1);
        assert!(h.drv.snapshot().garbage_bytes >= 1);
        // Q at once after the burst, and the status follows its reply, not the alert.
        assert_eq!(h.sent_since(t0).first(), Some(&(last + QUIET, b'Q')));
        let changes = status_changes(&ev);
        if ups_status == 0x10 {
            assert_eq!(
                changes,
                [(last + QUIET + 20, Some(StatusFlags::OL), StatusFlags::OB)]
            );
        } else {
            assert!(changes.is_empty(), "{changes:?}");
        }
    }
}

#[test]
fn repeated_alert_is_one_alert() {
    // `!!!` in one read, and `!` `!` 3 ms apart: one alert each time. `!!$` is noise.
    for script in [&[&b"!!!"[..]][..], &[&b"!"[..], &b"!"[..]][..]] {
        let mut h = started();
        h.run_until(20_000);
        h.quiet_point();
        h.ups.status = 0x10;
        let t0 = h.now;
        for (i, bytes) in script.iter().enumerate() {
            h.run_until(t0 + 3 * i as u64);
            h.deliver(bytes);
        }
        let last = t0 + 3 * (script.len() as u64 - 1);
        h.run_until(t0 + 500);
        let ev = h.events_since(t0);
        assert_eq!(
            h.count_events(|e| *e == LinkEvent::Alert(Alert::LineFail)),
            1
        );
        assert_eq!(
            status_changes(&ev),
            [(last + QUIET + 20, Some(StatusFlags::OL), StatusFlags::OB)]
        );
        assert_eq!(h.drv.snapshot().noise_alerts, 0);
    }
    let mut h = started();
    h.run_until(20_000);
    h.quiet_point();
    let t0 = h.now;
    h.deliver(b"!!$");
    h.run_until(t0 + 500);
    assert!(status_changes(&h.events_since(t0)).is_empty());
    assert_eq!(h.drv.snapshot().noise_alerts, 3);
    assert!(
        h.events_since(t0)
            .contains(&(t0 + QUIET, LinkEvent::LineNoise { alerts: 3 }))
    );
}

#[test]
fn alert_right_before_valid_reply_is_confirmed() {
    let mut h = started();
    h.run_until(20_000);
    h.until_sent(b'Q');
    let t0 = h.now;
    h.ups.status = 0x10;
    let (at, reply) = h.ups.out.back_mut().unwrap();
    *reply = b"!10\r\n".to_vec();
    let at = *at;
    h.run_until(t0 + 500);
    let ev = h.events_since(t0);
    assert_eq!(
        ev.iter()
            .filter(|(_, e)| matches!(e, LinkEvent::Alert(_)))
            .collect::<Vec<_>>(),
        [&(at, LinkEvent::Alert(Alert::LineFail))]
    );
    assert_eq!(
        status_changes(&ev),
        [(at, Some(StatusFlags::OL), StatusFlags::OB)]
    );
    assert_eq!(h.drv.snapshot().noise_alerts, 0);
    // The Q re-read still follows.
    assert_eq!(h.sent_since(at).first(), Some(&(at, b'Q')));
}

#[test]
fn alert_inside_garbage_reply_is_noise() {
    // Unparsable reply: noise when the line completes. Garbage line (control byte): the line
    // is dropped, so noise when the reply times out.
    for (garbage, noise_after) in [(&b"Z!Z\r\n"[..], 20), (b"1\x01!\r\n", 1_000)] {
        let mut h = started();
        h.run_until(20_000);
        h.until_sent(b'Q');
        let t0 = h.now;
        h.ups.out.back_mut().unwrap().1 = garbage.to_vec();
        h.run_until(t0 + 2_000);
        let ev = h.events_since(t0);
        assert!(
            !ev.iter().any(|(_, e)| matches!(e, LinkEvent::Alert(_))),
            "{ev:?}"
        );
        assert!(status_changes(&ev).is_empty(), "{ev:?}");
        assert!(ev.contains(&(t0 + noise_after, LinkEvent::LineNoise { alerts: 1 })));
        assert_eq!(h.drv.snapshot().noise_alerts, 1);
        assert_eq!(
            h.sent_since(t0 + 1).first(),
            Some(&(t0 + noise_after, b'Q'))
        );
        assert_eq!(h.drv.snapshot().comm, CommState::Established);
    }
}

#[test]
fn star_still_acknowledges_shutdown() {
    let mut h = started();
    let t0 = h.now;
    let from = h.tx.len();
    let id = h.request(UpsRequest::ShutdownStayOff);
    while h.tx[from..].iter().filter(|(_, b)| *b == b'K').count() < 2 {
        h.run_until(h.now + 1);
    }
    assert_eq!(h.tx.last().map(|(_, b)| *b), Some(b'K'));
    let (at, reply) = h.ups.out.back_mut().unwrap();
    *reply = b"*".to_vec();
    let at = *at;
    h.run_until(h.now + 3_000);
    assert_eq!(h.result_of(id), Some((at, RequestResult::Done)));
    assert!(
        h.events_since(t0)
            .contains(&(at, LinkEvent::Alert(Alert::AboutToTurnOff)))
    );
    assert_eq!(h.drv.snapshot().noise_alerts, 0);
}

#[test]
fn zero_quiet_disables_the_filter() {
    let cfg = LinkConfig {
        alert_quiet: upsguard_core::time::Duration::ZERO,
        ..LinkConfig::default()
    };
    let mut h = Harness::with(cfg);
    h.run_until(20_000);
    h.quiet_point();
    let t0 = h.now;
    h.deliver(b"x!");
    assert!(
        h.events_since(t0)
            .contains(&(t0, LinkEvent::Alert(Alert::LineFail)))
    );
}

/// The status byte a consistent UPS reports after sending `alert`.
fn ups_after(status: u8, alert: u8) -> u8 {
    match alert {
        b'!' => (status | 0x10) & !0x08,
        b'$' => (status | 0x08) & !0x10,
        b'%' => status | 0x40,
        b'+' => status & !0x40,
        b'?' => status | 0x20,
        b'=' => status & !0x20,
        b'#' => status | 0x80,
        _ => status,
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Arbitrary bytes at arbitrary times, with arbitrary requests: never panics, and the
        /// poll_timeout loop always makes progress.
        #[test]
        fn driver_never_panics(
            steps in prop::collection::vec(
                (0u64..3000, prop::collection::vec(any::<u8>(), 0..40), 0u8..20),
                1..60,
            )
        ) {
            let mut d = LinkDriver::new(LinkConfig::default());
            let mut now = 0u64;
            for (dt, bytes, action) in steps {
                now += dt;
                let t = Instant(now);
                match action {
                    0 => { let _ = d.request(t, UpsRequest::KillPower); }
                    1 => { let _ = d.request(t, UpsRequest::ShutdownStayOff); }
                    2 => { let _ = d.request(t, UpsRequest::SetSetting { var: SettingVar::Sensitivity, value: Value::from_text("M").unwrap() }); }
                    3 => d.reset(t),
                    4 => d.shutdown_link(t),
                    5 => { let _ = d.request(t, UpsRequest::WriteString { var: StringVar::BatteryDate, value: heapless::String::try_from("01/01/26").unwrap() }); }
                    _ => {}
                }
                d.handle_input(t, &bytes);
                if d.poll_timeout().is_some_and(|p| p.0 <= now) {
                    d.handle_timeout(t);
                }
                let mut n = 0;
                while d.poll_transmit(t).is_some() {
                    n += 1;
                    prop_assert!(n < 20);
                }
                while d.poll_event().is_some() {}
            }
        }

        /// Every isolated alert byte (quiet line on both sides, no exchange in flight) is
        /// acted on exactly once, `alert_quiet` after it arrived, and the status follows the
        /// `Q` re-read it causes.
        #[test]
        fn isolated_alerts_acted_on_exactly_once(
            alerts in prop::collection::vec(
                (0u64..3000, prop::sample::select(&b"!$%+?=#"[..])),
                1..10,
            )
        ) {
            let mut h = started();
            let mut want = Vec::new();
            for (gap, a) in alerts {
                h.run_until(h.now + gap);
                h.quiet_point();
                h.ups.status = ups_after(h.ups.status, a);
                want.push((h.now + QUIET, LinkEvent::Alert(Alert::from_byte(a).unwrap())));
                h.deliver(&[a]);
                // The alert, then the Q re-read's reply (20 ms), then maybe `G`.
                h.run_until(h.now + QUIET + 60);
                let flags = StatusFlags::parse(format!("{:02X}", h.ups.status).as_bytes()).unwrap();
                prop_assert_eq!(h.drv.snapshot().status.unwrap().value, flags);
            }
            h.run_until(h.now + 2_000);
            let got: Vec<_> = h
                .events
                .iter()
                .filter(|(_, e)| matches!(e, LinkEvent::Alert(_)))
                .cloned()
                .collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(h.drv.snapshot().noise_alerts, 0);
        }

        /// A random burst (arriving in a few reads ≤ 3 ms apart) on an idle line never
        /// changes the status: every alert in it is noise, and `Q` (which still says on
        /// line) decides.
        #[test]
        fn alerts_in_a_burst_never_change_status(
            burst in prop::collection::vec(any::<u8>(), 200)
                .prop_filter("contains an alert and another byte", |b| {
                    b.iter().any(|x| Alert::from_byte(*x).is_some())
                        && b.iter().any(|x| *x != b[0])
                }),
            cuts in prop::collection::vec((1usize..200, 0u64..=3), 0..8),
        ) {
            let mut h = started();
            h.run_until(20_000);
            h.quiet_point();
            let t0 = h.now;
            let mut cuts = cuts;
            cuts.sort();
            let mut from = 0;
            for (to, dt) in cuts.into_iter().chain([(200, 0)]) {
                if to <= from { continue; }
                h.deliver(&burst[from..to]);
                from = to;
                h.run_until(h.now + dt);
            }
            h.run_until(t0 + 3_000);
            let ev = h.events_since(t0);
            prop_assert!(!ev.iter().any(|(_, e)| matches!(e, LinkEvent::Alert(_) | LinkEvent::StatusChanged { .. })), "{:?}", ev);
            let n_alerts = burst.iter().filter(|b| Alert::from_byte(**b).is_some()).count();
            prop_assert_eq!(h.drv.snapshot().noise_alerts as usize, n_alerts);
            prop_assert_eq!(h.drv.snapshot().garbage_bytes as usize, 200 - n_alerts);
            prop_assert_eq!(h.count_events(|e| matches!(e, LinkEvent::LineNoise { .. })), 1);
            prop_assert!(h.sent_since(t0).first().is_some_and(|(_, b)| *b == b'Q'));
            prop_assert_eq!(h.drv.snapshot().status.unwrap().value, StatusFlags::OL);
            prop_assert_eq!(h.drv.snapshot().comm, CommState::Established);
        }

        /// A real conversation with garbage and alerts sprinkled in: never panics, and no
        /// more alerts surface than were sent.
        #[test]
        fn noisy_ups(noise in prop::collection::vec((0u64..200_000, prop::sample::select(&b"!$%+#?=xZ\x00\x01\xff\r\n"[..])), 0..40)) {
            let mut h = Harness::new();
            let mut noise = noise;
            noise.sort();
            let mut alerts = 0;
            for (t, b) in noise {
                h.run_until(t.max(h.now));
                h.deliver(&[b]);
                if Alert::from_byte(b).is_some() { alerts += 1; }
            }
            h.run_until(h.now + 30_000);
            let got = h.count_events(|e| matches!(e, LinkEvent::Alert(_)));
            // Alerts delivered during an `a` reply (raw mode) are part of that reply.
            prop_assert!(got <= alerts);
        }
    }
}

// ------------------------------------------------------------------ provisional alerts

/// Puts the UPS on battery through its own `Q` (no alert), `G` answering `cause`, and runs
/// until the transfer has been seen and its cause read.
fn transfer_to_battery(h: &mut Harness, cause: &[u8]) -> u64 {
    h.ups.table.insert(b'G', cause.to_vec());
    h.ups.status = 0x10;
    let t0 = h.now;
    h.run_until(t0 + 1_500);
    t0
}

#[test]
fn lone_alert_refuted_by_status_changes_nothing() {
    // One noise byte that looks like `!` (or `%`, `#`, `?`) on an idle line, the UPS still on
    // line: nothing that could shut down may act on it. The status never changes; `Q` refutes it.
    for a in [b'!', b'%', b'#', b'?'] {
        let mut h = started();
        h.run_until(20_000);
        h.quiet_point();
        let t0 = h.now;
        h.deliver(&[a]);
        h.run_until(t0 + 500);
        let ev = h.events_since(t0);
        assert!(status_changes(&ev).is_empty(), "{ev:?}");
        assert!(
            ev.contains(&(
                t0 + QUIET + 20,
                LinkEvent::AlertRefuted(Alert::from_byte(a).unwrap())
            )),
            "{ev:?}"
        );
        assert_eq!(h.drv.snapshot().refuted_alerts, 1);
        assert_eq!(h.drv.snapshot().status.unwrap().value, StatusFlags::OL);
    }
}

#[test]
fn late_line_restored_while_still_on_battery_is_refuted() {
    // Seen on a real SU420INET replay: a `$` arrives while `Q` still says on battery.
    let mut h = started();
    h.run_until(20_000);
    transfer_to_battery(&mut h, b"L");
    assert_eq!(h.drv.snapshot().status.unwrap().value, StatusFlags::OB);
    h.quiet_point();
    let t0 = h.now;
    h.deliver(b"$");
    h.run_until(t0 + 500);
    let ev = h.events_since(t0);
    assert!(status_changes(&ev).is_empty(), "{ev:?}");
    assert!(
        ev.iter()
            .any(|(_, e)| *e == LinkEvent::AlertRefuted(Alert::LineRestored))
    );
    assert_eq!(h.drv.snapshot().status.unwrap().value, StatusFlags::OB);
}

#[test]
fn alert_counts_only_once_a_q_begun_after_it_answers() {
    // An alert held for a `Q` in flight cannot be judged by that `Q` (the UPS may have
    // answered before the transfer): a second `Q` follows at once.
    let mut h = started();
    h.run_until(20_000);
    h.until_sent(b'Q');
    let t0 = h.now;
    // The in-flight reply says on line, with the alert in front of it.
    let (at, reply) = h.ups.out.back_mut().unwrap();
    *reply = b"!08\r\n".to_vec();
    let at = *at;
    h.ups.status = 0x10;
    h.run_until(t0 + 500);
    let ev = h.events_since(t0);
    assert_eq!(
        status_changes(&ev),
        [(at + 20, Some(StatusFlags::OL), StatusFlags::OB)],
        "{ev:?}"
    );
    assert_eq!(h.drv.snapshot().refuted_alerts, 0);
}

#[test]
fn transfer_cause_pending_until_g_answers() {
    let mut h = started();
    h.run_until(20_000);
    h.quiet_point();
    h.ups.table.insert(b'G', b"L".to_vec());
    h.ups.status = 0x10;
    h.until_sent(b'Q');
    // Q goes out, its reply arrives 20 ms later: from then until G's reply the cause is open.
    let q_at = h.now;
    h.run_until(q_at + 21);
    assert_eq!(h.drv.snapshot().status.unwrap().value, StatusFlags::OB);
    assert!(h.drv.snapshot().power_cause_pending);
    assert_eq!(h.sent_since(q_at + 1).first().map(|x| x.1), Some(b'G'));
    h.run_until(q_at + 100);
    assert!(!h.drv.snapshot().power_cause_pending);
    assert!(!h.drv.snapshot().self_test_running);
}

#[test]
fn self_test_transfer_is_not_an_outage() {
    let mut h = started();
    h.run_until(20_000);
    transfer_to_battery(&mut h, b"S");
    let s = h.drv.snapshot();
    assert_eq!(s.status.unwrap().value, StatusFlags::OB);
    assert!(!s.power_cause_pending);
    assert!(s.self_test_running, "G = S: a self-test");
    // Back on line: still "running" until the result (`X`) has been read, at once.
    h.ups.table.insert(b'X', b"OK".to_vec());
    h.ups.status = 0x08;
    let back = h.now;
    h.run_until(back + 1_000);
    let s = h.drv.snapshot();
    assert!(!s.self_test_running);
    assert_eq!(
        s.self_test.map(|x| x.value),
        Some(upsguard_core::wire::SelfTestResult::Passed)
    );
    assert!(
        h.sent_since(back).iter().any(|(_, b)| *b == b'X'),
        "X read after the test"
    );
}

#[test]
fn self_test_that_stays_on_battery_becomes_an_outage() {
    // Mains failed during the test: after SELF_TEST_MAX (30 s) it is an outage.
    let mut h = started();
    h.run_until(20_000);
    let t0 = transfer_to_battery(&mut h, b"S");
    assert!(h.drv.snapshot().self_test_running);
    h.run_until(t0 + 29_000);
    assert!(h.drv.snapshot().self_test_running);
    h.run_until(t0 + 32_000);
    assert!(!h.drv.snapshot().self_test_running);
    assert_eq!(h.drv.snapshot().status.unwrap().value, StatusFlags::OB);
}

#[test]
fn silent_g_does_not_hide_an_outage() {
    let mut h = started();
    h.run_until(20_000);
    h.ups.silent.insert(b'G');
    h.ups.status = 0x10;
    let t0 = h.now;
    h.run_until(t0 + 600);
    h.run_until(t0 + 3_000);
    assert!(!h.drv.snapshot().power_cause_pending, "bounded wait");
    assert!(!h.drv.snapshot().self_test_running);
}
