//! The composed Agent (real link driver + shutdown machine) against a scripted UPS over hours
//! of virtual time: the invariants of `shutdown_props.rs`, now end to end through the wire.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::ups::Ups;
use proptest::prelude::*;
use upsguard_core::agent::{Agent, AgentEvent, HostAction};
use upsguard_core::event::EventId;
use upsguard_core::link::LinkConfig;
use upsguard_core::shutdown::{ShutdownConfig, ShutdownPolicy};
use upsguard_core::time::Instant;

/// One outage: starts at `at` s, lasts `len` s; the runtime drains 1:1 from `runtime` s.
#[derive(Debug, Clone, Copy)]
struct Outage {
    at: u64,
    len: u64,
    runtime: u64,
}

struct World {
    agent: Agent,
    ups: Ups,
    now: u64,
    events: Vec<(u64, EventId, bool)>,
    actions: Vec<(u64, HostAction)>,
}

impl World {
    fn new(cfg: ShutdownConfig) -> Self {
        let mut ups = Ups::new();
        ups.table.insert(b'j', b"0060:".to_vec());
        World {
            agent: Agent::new(LinkConfig::default(), cfg),
            ups,
            now: 0,
            events: vec![],
            actions: vec![],
        }
    }

    fn pump(&mut self) {
        let now = Instant(self.now);
        while let Some(t) = self.agent.poll_transmit(now) {
            for &b in t.as_bytes() {
                self.ups.receive(self.now, b);
            }
        }
        while let Some(e) = self.agent.poll_event() {
            if let AgentEvent::Ups(e) = e {
                self.events.push((self.now, e.id, e.cleared));
            }
        }
        while let Some(a) = self.agent.poll_action() {
            if a == HostAction::StartOsShutdown {
                // The host's OS shutdown "completes" and this process keeps running.
                self.agent.os_shutdown_done(now);
            }
            self.actions.push((self.now, a));
        }
    }

    /// Runs to `end` ms with the UPS following `state(now_ms) -> (status, runtime_s)`.
    fn run(&mut self, end: u64, state: &dyn Fn(u64) -> (u8, u64)) {
        let mut spins = 0;
        while self.now < end {
            let (st, rt) = state(self.now);
            self.ups.status = st;
            self.ups
                .table
                .insert(b'j', format!("{:04}:", rt / 60).into_bytes());
            self.ups.table.insert(
                b'G',
                if st & 0x10 != 0 {
                    b"L".to_vec()
                } else {
                    b"O".to_vec()
                },
            );
            self.pump();
            let a = self.agent.poll_timeout().map_or(u64::MAX, |i| i.0);
            let u = self.ups.out.front().map_or(u64::MAX, |o| o.0);
            // Step at least every 100 ms so the scripted UPS state follows time.
            let next = a.min(u).min(self.now + 100).max(self.now).min(end);
            if next == self.now {
                spins += 1;
                assert!(spins < 10_000, "agent spins at {}", self.now);
            } else {
                spins = 0;
            }
            self.now = next;
            while self.ups.out.front().is_some_and(|o| o.0 <= self.now) {
                let (_, bytes) = self.ups.out.pop_front().unwrap();
                self.agent.handle_input(Instant(self.now), &bytes);
                self.pump();
            }
            self.agent.handle_timeout(Instant(self.now));
        }
        self.pump();
    }
}

fn ups_state(outages: &[Outage]) -> impl Fn(u64) -> (u8, u64) + '_ {
    move |ms| {
        let s = ms / 1000;
        for o in outages {
            if s >= o.at && s < o.at + o.len {
                return (0x10, o.runtime.saturating_sub(s - o.at));
            }
        }
        (0x08, 3600)
    }
}

#[test]
fn outage_through_the_wire_shuts_down_before_the_runtime_is_gone() {
    // Default policy (Low Battery; Low Runtime always armed at B 120 + margin 60 = 180 s).
    let outages = [Outage {
        at: 20,
        len: 2000,
        runtime: 900,
    }];
    let mut w = World::new(ShutdownConfig::default());
    w.run(1_200_000, &ups_state(&outages));
    let on_batt = w
        .events
        .iter()
        .find(|e| e.1 == EventId::OnBattery)
        .expect("on battery")
        .0;
    assert!((20_000..21_500).contains(&on_batt), "{on_batt}");
    let started = w
        .actions
        .iter()
        .find(|a| a.1 == HostAction::StartOsShutdown)
        .expect("OS shutdown")
        .0;
    // Runtime (read in whole minutes) falls below 180 s at 720 s into the outage at the
    // latest; the shutdown must start then, and not before 600 s (still 5 min left).
    let into = started / 1000 - 20;
    assert!(
        (600..=722).contains(&into),
        "started {into} s into the outage"
    );
    assert_eq!(
        w.actions
            .iter()
            .filter(|a| a.1 == HostAction::StartOsShutdown)
            .count(),
        1
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random outages over up to three hours: no OS shutdown ever starts on line; every
    /// outage whose runtime runs below A + B + margin gets exactly one shutdown before the
    /// UPS would have died; each action at most once per sequence; and it is deterministic.
    #[test]
    fn invariants_over_hours(
        raw in prop::collection::vec((60u64..3000, 5u64..1500, 200u64..2400), 1..5),
        policy in prop::sample::select(vec![
            ShutdownPolicy::LowBattery,
            ShutdownPolicy::LowRuntimeOnly,
            ShutdownPolicy::AfterOnBattery { seconds: 120 },
        ]),
    ) {
        let mut outages = Vec::new();
        let mut t = 30;
        for (gap, len, runtime) in raw {
            t += gap;
            outages.push(Outage { at: t, len, runtime });
            t += len + 120;
        }
        let end = (t + 60) * 1000;
        let cfg = ShutdownConfig { policy, ..ShutdownConfig::default() };
        let lr = cfg.low_runtime_threshold().as_secs();
        let mut w = World::new(cfg);
        w.run(end, &ups_state(&outages));

        let state = ups_state(&outages);
        for (at, a) in &w.actions {
            if *a == HostAction::StartOsShutdown {
                prop_assert_eq!(state(*at).0 & 0x10, 0x10, "OS shutdown on line at {}", at);
            }
        }
        for o in &outages {
            let from = o.at * 1000;
            let to = (o.at + o.len) * 1000;
            let starts = w.actions.iter()
                .filter(|(t, a)| *a == HostAction::StartOsShutdown && *t >= from && *t < to + 1000)
                .count();
            prop_assert!(starts <= 1, "{} shutdowns in one outage", starts);
            // Runtime below A + B + margin during this outage: it must have shut down while
            // runtime was still left (reported in whole minutes, so up to 60 s late).
            let dies_at = o.at + o.runtime;
            if o.runtime.saturating_sub(o.len) < lr && o.at + o.len > o.at + o.runtime.saturating_sub(lr) + 62 {
                prop_assert_eq!(starts, 1, "no shutdown in {:?}", o);
                let at = w.actions.iter()
                    .find(|(t, a)| *a == HostAction::StartOsShutdown && *t >= from)
                    .unwrap().0 / 1000;
                prop_assert!(at + cfg_b() <= dies_at, "shut down at {} s, battery empty at {} s", at, dies_at);
            }
        }
        // Determinism: the same world twice gives the same record.
        let mut w2 = World::new(ShutdownConfig { policy, ..ShutdownConfig::default() });
        w2.run(end, &ups_state(&outages));
        prop_assert_eq!(&w.events, &w2.events);
        prop_assert_eq!(&w.actions, &w2.actions);
    }
}

/// B, the OS shutdown duration of the default configuration.
fn cfg_b() -> u64 {
    u64::from(ShutdownConfig::default().os_shutdown_s)
}

#[test]
fn lone_alert_bytes_never_reach_the_shutdown_machine() {
    let mut w = World::new(ShutdownConfig {
        policy: ShutdownPolicy::Immediately,
        ..ShutdownConfig::default()
    });
    let online = |_| (0x08, 3600);
    w.run(15_000, &online);
    for (i, b) in b"!%!#?!".iter().enumerate() {
        let t = 15_000 + i as u64 * 997;
        w.run(t, &online);
        // A byte on an otherwise idle line: wait for the line to be quiet first.
        w.ups.out.push_back((w.now + 1, vec![*b]));
    }
    w.run(30_000, &online);
    let ups_events: Vec<_> = w
        .events
        .iter()
        .filter(|e| e.1 != EventId::CommEstablished)
        .collect();
    assert!(ups_events.is_empty(), "{ups_events:?}");
    assert!(w.actions.is_empty(), "{:?}", w.actions);
    assert!(w.agent.state().counters.refuted_alerts + w.agent.state().counters.noise_alerts >= 1);
}
