//! Snapshot of one full outage timeline: a blip that does not shut down, an outage whose
//! shutdown is cancelled when mains returns during the command file, and an outage that
//! runs the whole sequence to the OS shutdown and the UPS turn-off.
//!
//! Create/refresh with `INSTA_UPDATE=always cargo test -p upsguard-core --test
//! shutdown_snapshot`; CI runs with `CI=true` and never writes snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write;

use upsguard_core::shutdown::{
    Observation, Phase, ShutdownConfig, ShutdownMachine, ShutdownPolicy,
};
use upsguard_core::time::Instant;

struct Trace {
    m: ShutdownMachine,
    out: String,
    phase: Phase,
}

impl Trace {
    fn drain(&mut self, now: Instant) {
        while let Some(e) = self.m.poll_event() {
            let t = e.at.as_millis();
            let form = if e.cleared { "cleared" } else { "active" };
            writeln!(
                self.out,
                "{:>4}.{:03}s  event   {:<26} {:<7} {:<8} {}",
                t / 1000,
                t % 1000,
                e.id,
                form,
                e.severity(),
                e.title()
            )
            .unwrap();
        }
        while let Some(a) = self.m.poll_action() {
            let t = now.as_millis();
            writeln!(self.out, "{:>4}.{:03}s  action  {a:?}", t / 1000, t % 1000).unwrap();
        }
        let p = self.m.phase();
        if p != self.phase {
            writeln!(self.out, "           phase   {p:?}").unwrap();
            self.phase = p;
        }
    }

    /// Advance to `s` seconds, honouring every timeout on the way.
    fn to(&mut self, s: u64) {
        let target = Instant(s * 1000);
        while let Some(w) = self.m.poll_timeout() {
            if w > target {
                break;
            }
            self.m.handle_timeout(w);
            self.drain(w);
        }
        self.m.handle_timeout(target);
        self.drain(target);
    }

    fn obs(&mut self, s: u64, o: Observation) {
        self.to(s);
        self.m.observe(Instant(s * 1000), &o);
        self.drain(Instant(s * 1000));
    }
}

#[test]
fn full_outage_timeline() {
    let cfg = ShutdownConfig {
        policy: ShutdownPolicy::AfterOnBattery { seconds: 120 },
        command_file_s: 60,
        os_shutdown_s: 120,
        safety_margin_s: 60,
        time_on_battery_limit_s: Some(140),
        ..ShutdownConfig::default()
    };
    let mut tr = Trace {
        m: ShutdownMachine::new(cfg),
        out: String::new(),
        phase: Phase::Idle,
    };
    writeln!(tr.out, "config: {cfg:?}\n").unwrap();

    tr.obs(0, Observation::on_line(2400));
    // A 15 s blip with SmartBoost on the way back: no shutdown.
    tr.obs(30, Observation::on_battery(2400, 1000));
    tr.obs(
        45,
        Observation {
            boost: Some(true),
            ..Observation::on_line(2380)
        },
    );
    tr.obs(60, Observation::on_line(2380));
    // Outage 1: the shutdown starts after 120 s, mains returns during the command file.
    tr.obs(100, Observation::on_battery(2380, 990));
    for s in (110..=240).step_by(10) {
        let runtime = 2380 - u32::try_from(s - 100).unwrap() * 2;
        tr.obs(s, Observation::on_battery(runtime, 900));
    }
    tr.obs(250, Observation::on_line(2080));
    // Outage 2: on battery again, heavier load; the link drops for a while on the way.
    tr.obs(400, Observation::on_battery(1500, 700));
    tr.obs(410, Observation::comm_lost());
    tr.obs(425, Observation::on_battery(1400, 680));
    for s in (430..=600).step_by(10) {
        let runtime = 1400 - u32::try_from(s - 425).unwrap() * 3;
        let o = Observation {
            low_battery: Some(s >= 560),
            ..Observation::on_battery(runtime, 600)
        };
        tr.obs(s, o);
    }
    // Mains returns after the OS shutdown started: nothing is cancelled.
    tr.obs(620, Observation::on_line(800));
    tr.to(700);
    assert!(matches!(tr.m.phase(), Phase::OsShutdown { .. }));
    insta::assert_snapshot!("full_outage", tr.out);
}
