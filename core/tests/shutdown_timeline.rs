//! Unit tests of the shutdown state machine: one per policy and per part of the timeline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use upsguard_core::event::{EventId, Severity};
use upsguard_core::shutdown::{
    Action, CalibrationState, CancelError, Observation, Phase, RequestError, SelfTestResult,
    ShutdownConfig, ShutdownMachine, ShutdownPolicy, ShutdownReason, UpsOffMode,
};
use upsguard_core::time::{Duration, Instant};

/// Test driver: virtual time in seconds, records what the machine emits.
struct H {
    m: ShutdownMachine,
    t: u64,
    events: Vec<(u64, EventId, bool)>,
    actions: Vec<(u64, Action)>,
}

fn at(s: u64) -> Instant {
    Instant(s * 1000)
}

impl H {
    fn new(cfg: ShutdownConfig) -> Self {
        let mut h = H {
            m: ShutdownMachine::new(cfg),
            t: 0,
            events: vec![],
            actions: vec![],
        };
        h.obs(Observation::on_line(3600));
        h
    }

    fn drain(&mut self) {
        while let Some(e) = self.m.poll_event() {
            self.events.push((e.at.as_millis(), e.id, e.cleared));
        }
        while let Some(a) = self.m.poll_action() {
            self.actions.push((self.t * 1000, a));
        }
    }

    /// Advance virtual time to `s` seconds, firing every timeout on the way.
    fn to(&mut self, s: u64) {
        while let Some(w) = self.m.poll_timeout() {
            if w > at(s) {
                break;
            }
            self.m.handle_timeout(w);
            self.drain();
        }
        self.t = s;
        self.m.handle_timeout(at(s));
        self.drain();
    }

    fn obs(&mut self, o: Observation) {
        self.m.observe(at(self.t), &o);
        self.drain();
    }

    fn has_event(&self, id: EventId, cleared: bool) -> bool {
        self.events.iter().any(|e| e.1 == id && e.2 == cleared)
    }

    fn event_time(&self, id: EventId, cleared: bool) -> Option<u64> {
        self.events
            .iter()
            .find(|e| e.1 == id && e.2 == cleared)
            .map(|e| e.0 / 1000)
    }

    fn action_list(&self) -> Vec<Action> {
        self.actions.iter().map(|a| a.1).collect()
    }

    fn started_os(&self) -> bool {
        self.actions.iter().any(|a| a.1 == Action::StartOsShutdown)
    }
}

fn cfg(policy: ShutdownPolicy) -> ShutdownConfig {
    ShutdownConfig {
        policy,
        command_file_s: 60,
        os_shutdown_s: 120,
        safety_margin_s: 60,
        ..ShutdownConfig::default()
    }
}

const RUN_A: Action = Action::RunCommandFile {
    duration: Duration::from_secs(60),
};
const ARM: Action = Action::ArmUpsTurnOff {
    mode: UpsOffMode::ShutdownReturn,
};

#[test]
fn immediately_runs_the_whole_timeline() {
    let mut h = H::new(cfg(ShutdownPolicy::Immediately));
    assert!(h.has_event(EventId::CommEstablished, false));
    h.to(10);
    h.obs(Observation::on_battery(3000, 900));
    assert_eq!(h.event_time(EventId::OnBattery, false), Some(10));
    assert_eq!(h.event_time(EventId::ShutdownStarted, false), Some(10));
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert!(matches!(
        h.m.phase(),
        Phase::CommandFile {
            reason: ShutdownReason::OnBattery,
            ..
        }
    ));
    h.to(69);
    assert!(!h.started_os());
    h.to(70);
    assert_eq!(h.action_list(), vec![RUN_A, ARM, Action::StartOsShutdown]);
    assert!(matches!(h.m.phase(), Phase::OsShutdown { .. }));
}

#[test]
fn command_file_finishing_early_moves_on() {
    let mut h = H::new(cfg(ShutdownPolicy::Immediately));
    h.obs(Observation::on_battery(3000, 900));
    h.to(15);
    h.m.command_file_finished(at(15));
    h.drain();
    assert_eq!(h.actions.last(), Some(&(15_000, Action::StartOsShutdown)));
    // No second StartOsShutdown when the configured duration elapses.
    h.to(200);
    assert_eq!(h.action_list(), vec![RUN_A, ARM, Action::StartOsShutdown]);
}

#[test]
fn zero_command_file_skips_phase_a() {
    let mut h = H::new(ShutdownConfig {
        command_file_s: 0,
        turn_off_ups: false,
        ..cfg(ShutdownPolicy::Immediately)
    });
    h.obs(Observation::on_battery(3000, 900));
    assert_eq!(h.action_list(), vec![Action::StartOsShutdown]);
}

#[test]
fn after_on_battery_waits_for_persistence() {
    let mut h = H::new(cfg(ShutdownPolicy::AfterOnBattery { seconds: 30 }));
    h.to(100);
    h.obs(Observation::on_battery(3000, 900));
    assert_eq!(
        h.m.phase(),
        Phase::Pending {
            reason: ShutdownReason::OnBattery,
            since: at(100),
            fires_at: at(130)
        }
    );
    // A 20 s blip never shuts down.
    h.to(120);
    h.obs(Observation::on_line(3000));
    assert_eq!(h.m.phase(), Phase::Idle);
    assert!(h.has_event(EventId::PowerRestored, false));
    h.to(500);
    assert!(h.actions.is_empty());
    // A longer outage does, 30 s after it began.
    h.obs(Observation::on_battery(3000, 900));
    h.to(529);
    assert!(h.actions.is_empty());
    h.to(530);
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert_eq!(h.event_time(EventId::ShutdownStarted, false), Some(530));
}

#[test]
fn low_battery_policy_fires_on_the_ups_flag() {
    let mut h = H::new(ShutdownConfig {
        low_battery_delay_s: 5,
        ..cfg(ShutdownPolicy::LowBattery)
    });
    h.obs(Observation::on_battery(3000, 900));
    h.to(1000);
    assert!(h.actions.is_empty());
    h.obs(Observation {
        low_battery: Some(true),
        ..Observation::on_battery(2000, 300)
    });
    let lb = h
        .events
        .iter()
        .find(|e| e.1 == EventId::LowBattery)
        .unwrap();
    assert_eq!(lb.1.severity(), Severity::Critical);
    h.to(1004);
    assert!(h.actions.is_empty());
    h.to(1005);
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert_eq!(h.m.reason(), Some(ShutdownReason::LowBattery));
}

#[test]
fn low_battery_from_runtime_setting() {
    let mut h = H::new(ShutdownConfig {
        low_battery_runtime_s: 600,
        ..cfg(ShutdownPolicy::LowBattery)
    });
    h.obs(Observation::on_battery(700, 900));
    assert!(h.actions.is_empty());
    // Extrapolated: 700 s of runtime drops below 600 s 100 s later, without a new reading.
    h.to(100);
    assert!(h.actions.is_empty());
    h.to(101);
    assert!(h.has_event(EventId::LowBattery, false));
    assert_eq!(h.action_list(), vec![RUN_A]);
}

#[test]
fn threshold_policy_charge_or_runtime() {
    let policy = ShutdownPolicy::Threshold {
        charge_pct: 50,
        runtime_s: 600,
    };
    let mut h = H::new(cfg(policy));
    h.obs(Observation::on_battery(3000, 510));
    assert!(h.actions.is_empty());
    h.to(10);
    h.obs(Observation::on_battery(3000, 500));
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert_eq!(h.m.reason(), Some(ShutdownReason::Threshold));

    let mut h = H::new(cfg(policy));
    h.obs(Observation::on_battery(601, 900));
    assert!(h.actions.is_empty());
    h.to(1);
    assert_eq!(h.action_list(), vec![RUN_A]);
}

#[test]
fn low_runtime_is_always_armed() {
    // A + B + margin = 240 s.
    let mut h = H::new(cfg(ShutdownPolicy::LowRuntimeOnly));
    h.obs(Observation {
        low_battery: Some(true),
        ..Observation::on_battery(300, 200)
    });
    assert!(h.actions.is_empty(), "LowRuntimeOnly ignores Low Battery");
    h.to(20);
    h.obs(Observation::on_battery(240, 150));
    assert!(h.actions.is_empty());
    h.to(21);
    h.obs(Observation::on_battery(239, 150));
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert!(h.has_event(EventId::LowRuntime, false));
    assert_eq!(h.m.reason(), Some(ShutdownReason::LowRuntime));

    // Also under a long AfterOnBattery delay.
    let mut h = H::new(cfg(ShutdownPolicy::AfterOnBattery { seconds: 3600 }));
    h.obs(Observation::on_battery(200, 150));
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert_eq!(h.m.reason(), Some(ShutdownReason::LowRuntime));
}

#[test]
fn power_return_cancels_before_os_shutdown() {
    let mut h = H::new(cfg(ShutdownPolicy::Immediately));
    h.obs(Observation::on_battery(3000, 900));
    h.to(30);
    h.obs(Observation::on_line(3000));
    assert_eq!(h.action_list(), vec![RUN_A, Action::CancelShutdown]);
    assert_eq!(h.event_time(EventId::ShutdownCancelled, false), Some(30));
    assert_eq!(h.m.phase(), Phase::Idle);
    h.to(1000);
    assert!(!h.started_os());
    // The next outage starts a fresh sequence with its own actions.
    h.obs(Observation::on_battery(3000, 900));
    h.to(1060);
    assert_eq!(
        h.action_list(),
        vec![
            RUN_A,
            Action::CancelShutdown,
            RUN_A,
            ARM,
            Action::StartOsShutdown
        ]
    );
}

#[test]
fn nothing_cancels_after_os_shutdown() {
    let mut h = H::new(cfg(ShutdownPolicy::Immediately));
    h.obs(Observation::on_battery(3000, 900));
    h.to(60);
    assert!(h.started_os());
    h.obs(Observation::on_line(3000));
    assert!(h.has_event(EventId::PowerRestored, false));
    assert!(!h.has_event(EventId::ShutdownCancelled, false));
    assert_eq!(h.m.cancel(at(61)), Err(CancelError::TooLate));
    assert_eq!(
        h.m.shutdown_now(at(61)),
        Err(RequestError::AlreadyShuttingDown)
    );
    assert_eq!(
        h.m.sleep(at(61), 2, false),
        Err(RequestError::AlreadyShuttingDown)
    );
    h.to(5000);
    h.drain();
    assert_eq!(h.action_list(), vec![RUN_A, ARM, Action::StartOsShutdown]);
    assert!(matches!(h.m.phase(), Phase::OsShutdown { .. }));
}

#[test]
fn operator_cancel_sticks_for_the_outage_but_not_past_low_runtime() {
    let mut h = H::new(cfg(ShutdownPolicy::Immediately));
    assert_eq!(h.m.cancel(at(0)), Err(CancelError::NothingToCancel));
    h.obs(Observation::on_battery(3000, 900));
    h.to(10);
    assert_eq!(h.m.cancel(at(10)), Ok(()));
    h.drain();
    assert_eq!(h.action_list(), vec![RUN_A, Action::CancelShutdown]);
    // Still on battery: the On Battery trigger stays silenced.
    h.to(100);
    h.obs(Observation::on_battery(2500, 800));
    assert_eq!(h.action_list().len(), 2);
    // Low Runtime is not silenced by the cancel…
    h.to(200);
    h.obs(Observation::on_battery(230, 100));
    assert_eq!(h.action_list().len(), 3);
    assert_eq!(h.m.reason(), Some(ShutdownReason::LowRuntime));
    // …and cannot be cancelled while it holds.
    assert_eq!(h.m.cancel(at(201)), Err(CancelError::LowRuntime));
}

#[test]
fn operator_cancel_of_a_pending_shutdown() {
    let mut h = H::new(cfg(ShutdownPolicy::AfterOnBattery { seconds: 60 }));
    h.obs(Observation::on_battery(3000, 900));
    assert!(matches!(h.m.phase(), Phase::Pending { .. }));
    assert_eq!(h.m.cancel(at(5)), Ok(()));
    assert_eq!(h.m.phase(), Phase::Idle);
    h.to(600);
    assert!(h.actions.is_empty());
    // The cancel lasts until power returns; the next outage counts again.
    h.obs(Observation::on_line(3000));
    h.to(700);
    h.obs(Observation::on_battery(3000, 900));
    h.to(760);
    assert_eq!(h.action_list(), vec![RUN_A]);
}

#[test]
fn shutdown_now_is_not_cancelled_by_power_state() {
    let mut h = H::new(cfg(ShutdownPolicy::LowBattery));
    h.to(5);
    assert_eq!(h.m.shutdown_now(at(5)), Ok(()));
    h.drain();
    assert_eq!(h.event_time(EventId::ShutdownStarted, false), Some(5));
    h.obs(Observation::on_line(3000));
    h.to(65);
    assert_eq!(h.action_list(), vec![RUN_A, ARM, Action::StartOsShutdown]);
    assert_eq!(h.m.reason(), Some(ShutdownReason::ShutdownNow));
}

#[test]
fn shutdown_now_during_a_power_sequence_pins_it() {
    let mut h = H::new(cfg(ShutdownPolicy::Immediately));
    h.obs(Observation::on_battery(3000, 900));
    h.to(10);
    assert_eq!(h.m.shutdown_now(at(10)), Ok(()));
    h.obs(Observation::on_line(3000));
    h.to(60);
    assert_eq!(h.action_list(), vec![RUN_A, ARM, Action::StartOsShutdown]);
    assert!(!h.has_event(EventId::ShutdownCancelled, false));
}

#[test]
fn operator_can_cancel_shutdown_now() {
    let mut h = H::new(cfg(ShutdownPolicy::LowBattery));
    h.m.shutdown_now(at(0)).unwrap();
    h.to(30);
    assert_eq!(h.m.cancel(at(30)), Ok(()));
    h.to(500);
    assert_eq!(h.action_list(), vec![RUN_A, Action::CancelShutdown]);
}

#[test]
fn sleep_graceful_and_immediate() {
    let mut h = H::new(ShutdownConfig {
        turn_off_ups: false,
        ..cfg(ShutdownPolicy::LowBattery)
    });
    assert_eq!(h.m.sleep(at(0), 0, true), Err(RequestError::InvalidSleep));
    assert_eq!(h.m.sleep(at(0), 100, true), Err(RequestError::InvalidSleep));
    h.m.sleep(at(0), 2, true).unwrap();
    assert_eq!(h.m.sleep(at(0), 2, false), Err(RequestError::Busy));
    h.to(60);
    let sleep2h = UpsOffMode::sleep_hours(2);
    assert_eq!(sleep2h.sleep_tenths_of_hour(), Some(20));
    assert_eq!(
        h.action_list(),
        vec![
            RUN_A,
            Action::ArmUpsTurnOff { mode: sleep2h },
            Action::StartOsShutdown
        ]
    );

    let mut h = H::new(cfg(ShutdownPolicy::LowBattery));
    h.m.sleep(at(0), 3, false).unwrap();
    h.drain();
    assert_eq!(
        h.action_list(),
        vec![Action::TurnOffUpsNow {
            mode: UpsOffMode::sleep_hours(3)
        }]
    );
    assert_eq!(h.m.phase(), Phase::Idle);
}

#[test]
fn scheduled_shutdown_sleeps_until_turn_on() {
    let mut h = H::new(cfg(ShutdownPolicy::LowBattery));
    let wake = Duration::from_secs(8 * 3600 + 60);
    h.m.scheduled_shutdown(at(0), Some(wake)).unwrap();
    h.obs(Observation::on_battery(3000, 900));
    h.obs(Observation::on_line(3000));
    h.to(60);
    let mode = UpsOffMode::Sleep { duration: wake };
    // Rounded up to whole tenths of an hour so the UPS never wakes early.
    assert_eq!(mode.sleep_tenths_of_hour(), Some(81));
    assert_eq!(
        h.action_list(),
        vec![
            RUN_A,
            Action::ArmUpsTurnOff { mode },
            Action::StartOsShutdown
        ]
    );
    assert_eq!(h.m.reason(), Some(ShutdownReason::Scheduled));
    assert_eq!(
        h.m.scheduled_shutdown(at(61), Some(Duration::ZERO)),
        Err(RequestError::InvalidSleep)
    );
}

#[test]
fn turn_off_ups_false_never_arms() {
    let mut h = H::new(ShutdownConfig {
        turn_off_ups: false,
        ..cfg(ShutdownPolicy::Immediately)
    });
    h.obs(Observation::on_battery(3000, 900));
    h.to(60);
    assert_eq!(h.action_list(), vec![RUN_A, Action::StartOsShutdown]);
}

#[test]
fn stay_off_mode_is_passed_through() {
    let mut h = H::new(ShutdownConfig {
        ups_off_mode: UpsOffMode::StayOff,
        ..cfg(ShutdownPolicy::Immediately)
    });
    h.obs(Observation::on_battery(3000, 900));
    h.to(60);
    assert!(h.action_list().contains(&Action::ArmUpsTurnOff {
        mode: UpsOffMode::StayOff
    }));
}

#[test]
fn comm_lost_on_battery_shuts_down_after_its_delay() {
    let mut h = H::new(cfg(ShutdownPolicy::LowBattery));
    h.obs(Observation::on_battery(3000, 900));
    h.to(10);
    h.obs(Observation::comm_lost());
    assert!(h.has_event(EventId::CommLost, false));
    assert_eq!(h.event_time(EventId::CommLostOnBattery, false), Some(10));
    assert_eq!(EventId::CommLostOnBattery.severity(), Severity::Critical);
    h.to(39);
    assert!(h.actions.is_empty());
    h.to(40);
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert_eq!(h.m.reason(), Some(ShutdownReason::CommLostOnBattery));
    // Link back, mains back: cancelled.
    h.to(50);
    h.obs(Observation::on_line(3000));
    assert!(h.has_event(EventId::CommEstablished, false));
    assert!(h.has_event(EventId::CommLostOnBattery, true));
    assert_eq!(h.action_list(), vec![RUN_A, Action::CancelShutdown]);
}

#[test]
fn comm_lost_on_battery_can_be_configured_off_but_low_runtime_extrapolates() {
    let mut h = H::new(ShutdownConfig {
        comm_lost_on_battery_shutdown_s: None,
        ..cfg(ShutdownPolicy::LowBattery)
    });
    // 600 s of runtime, threshold 240 s: the link dies at once, yet the shutdown starts
    // 360 s later on the extrapolated runtime.
    h.obs(Observation::on_battery(600, 900));
    h.obs(Observation::comm_lost());
    h.to(360);
    assert!(h.actions.is_empty());
    h.to(361);
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert_eq!(h.m.reason(), Some(ShutdownReason::LowRuntime));
}

#[test]
fn comm_lost_on_line_is_only_a_warning() {
    let mut h = H::new(cfg(ShutdownPolicy::Immediately));
    h.obs(Observation::comm_lost());
    h.to(10_000);
    assert!(h.has_event(EventId::CommLost, false));
    assert!(!h.has_event(EventId::CommLostOnBattery, false));
    assert!(h.actions.is_empty());
}

#[test]
fn overload_shutdown_on_line_with_persistence_and_cancel() {
    let mut h = H::new(ShutdownConfig {
        overload_shutdown_s: Some(10),
        ..cfg(ShutdownPolicy::LowBattery)
    });
    let over = |v| Observation {
        overload: Some(v),
        ..Observation::on_line(3000)
    };
    h.obs(over(true));
    h.to(5);
    h.obs(over(false));
    assert!(h.has_event(EventId::Overload, true));
    h.to(100);
    assert!(h.actions.is_empty());
    h.obs(over(true));
    h.to(110);
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert_eq!(h.m.reason(), Some(ShutdownReason::Overload));
    // Overload cleared before the OS shutdown: cancelled.
    h.to(120);
    h.obs(over(false));
    assert_eq!(h.action_list(), vec![RUN_A, Action::CancelShutdown]);
}

#[test]
fn overload_does_not_shut_down_by_default() {
    let mut h = H::new(cfg(ShutdownPolicy::LowBattery));
    h.obs(Observation {
        overload: Some(true),
        ..Observation::on_line(3000)
    });
    h.to(10_000);
    assert!(h.has_event(EventId::Overload, false));
    assert!(h.actions.is_empty());
}

#[test]
fn temperature_threshold_with_hysteresis() {
    let mut h = H::new(ShutdownConfig {
        temperature_limit_dc: Some(450),
        temperature_shutdown_s: Some(60),
        ..cfg(ShutdownPolicy::LowBattery)
    });
    let temp = |dc| Observation {
        temperature_dc: Some(dc),
        ..Observation::on_line(3000)
    };
    h.obs(temp(449));
    h.obs(temp(450));
    assert_eq!(h.event_time(EventId::TemperatureExceeded, false), Some(0));
    h.to(30);
    h.obs(temp(440)); // within hysteresis: still exceeded
    assert!(h.m.is_active(EventId::TemperatureExceeded));
    h.to(60);
    assert_eq!(h.action_list(), vec![RUN_A]);
    assert_eq!(h.m.reason(), Some(ShutdownReason::TemperatureExceeded));
    h.to(70);
    h.obs(temp(429));
    assert!(h.has_event(EventId::TemperatureExceeded, true));
    assert_eq!(h.action_list(), vec![RUN_A, Action::CancelShutdown]);
}

#[test]
fn battery_discharged_on_line() {
    let mut h = H::new(ShutdownConfig {
        battery_discharged_runtime_s: Some(900),
        ..cfg(ShutdownPolicy::LowBattery)
    });
    h.obs(Observation::on_line(800));
    assert!(h.has_event(EventId::BatteryDischarged, false));
    h.to(600);
    h.obs(Observation::on_line(920)); // within the hysteresis
    assert!(!h.has_event(EventId::BatteryDischarged, true));
    h.to(1200);
    h.obs(Observation::on_line(1000));
    assert_eq!(h.event_time(EventId::BatteryDischarged, true), Some(1200));
    assert!(h.actions.is_empty());
}

#[test]
fn time_on_battery_exceeded_event_and_shutdown() {
    let mut h = H::new(ShutdownConfig {
        time_on_battery_limit_s: Some(300),
        time_on_battery_shutdown_s: Some(0),
        ..cfg(ShutdownPolicy::LowRuntimeOnly)
    });
    h.obs(Observation::on_battery(3000, 900));
    h.to(299);
    assert!(h.actions.is_empty());
    h.to(300);
    assert_eq!(
        h.event_time(EventId::TimeOnBatteryExceeded, false),
        Some(300)
    );
    assert_eq!(h.action_list(), vec![RUN_A]);
    h.to(310);
    h.obs(Observation::on_line(3000));
    assert!(h.has_event(EventId::TimeOnBatteryExceeded, true));
    assert_eq!(h.action_list(), vec![RUN_A, Action::CancelShutdown]);
}

#[test]
fn calibration_is_not_an_outage() {
    let mut h = H::new(cfg(ShutdownPolicy::Immediately));
    h.obs(Observation {
        calibration: Some(CalibrationState::Running),
        ..Observation::on_battery(3000, 1000)
    });
    assert!(h.has_event(EventId::CalibrationStarted, false));
    assert!(!h.has_event(EventId::OnBattery, false));
    h.to(600);
    h.obs(Observation::on_line(2000));
    assert!(h.has_event(EventId::CalibrationFinished, false));
    assert!(h.actions.is_empty());
    // A power failure during calibration aborts it, and that is an outage.
    h.obs(Observation {
        calibration: Some(CalibrationState::Running),
        ..Observation::on_battery(2000, 1000)
    });
    h.to(700);
    h.obs(Observation::on_battery(2000, 900));
    assert!(h.has_event(EventId::CalibrationAborted, false));
    assert_eq!(h.event_time(EventId::OnBattery, false), Some(700));
    assert_eq!(h.action_list(), vec![RUN_A]);
}

#[test]
fn self_test_results_after_baseline() {
    let mut h = H::new(cfg(ShutdownPolicy::LowBattery));
    let st = |r| Observation {
        self_test: Some(r),
        ..Observation::on_line(3000)
    };
    h.obs(st(SelfTestResult::Passed)); // baseline: an old result is not news
    assert!(!h.has_event(EventId::SelfTestPassed, false));
    h.obs(st(SelfTestResult::InProgress));
    h.obs(st(SelfTestResult::Passed));
    assert!(h.has_event(EventId::SelfTestPassed, false));
    h.obs(st(SelfTestResult::InProgress));
    h.obs(st(SelfTestResult::Failed));
    assert!(h.has_event(EventId::SelfTestFailed, false));
}

#[test]
fn flag_events_have_active_and_cleared_forms() {
    let mut h = H::new(cfg(ShutdownPolicy::LowBattery));
    let all = |v| Observation {
        replace_battery: Some(v),
        battery_disconnected: Some(v),
        boost: Some(v),
        trim: Some(v),
        output_off: Some(v),
        sleeping: Some(v),
        ..Observation::on_line(3000)
    };
    h.obs(all(true));
    h.obs(all(true));
    h.obs(all(false));
    for id in [
        EventId::ReplaceBattery,
        EventId::BatteryDisconnected,
        EventId::SmartBoost,
        EventId::SmartTrim,
    ] {
        assert_eq!(h.events.iter().filter(|e| e.1 == id).count(), 2, "{id}");
        assert!(h.has_event(id, true), "{id}");
    }
    for (on, off) in [
        (EventId::UpsOutputOff, EventId::UpsOutputOn),
        (EventId::UpsSleeping, EventId::UpsWoke),
    ] {
        assert!(h.has_event(on, false) && h.has_event(off, false));
    }
    assert!(h.actions.is_empty());
}

#[test]
fn unknown_fields_keep_last_known_state() {
    let mut h = H::new(cfg(ShutdownPolicy::Immediately));
    h.obs(Observation {
        comm_ok: Some(true),
        ..Default::default()
    });
    h.obs(Observation::default());
    assert!(!h.has_event(EventId::PowerRestored, false));
    assert_eq!(h.events.len(), 1); // just comm_established
    assert!(h.actions.is_empty());
}

#[test]
fn time_running_backwards_is_harmless() {
    let mut h = H::new(cfg(ShutdownPolicy::AfterOnBattery { seconds: 30 }));
    h.to(100);
    h.obs(Observation::on_battery(3000, 900));
    h.m.observe(at(5), &Observation::on_battery(3000, 900));
    h.m.handle_timeout(Instant(0));
    h.drain();
    assert!(h.actions.is_empty());
    let w = h.m.poll_timeout().unwrap();
    assert_eq!(w, at(130));
    h.m.handle_timeout(w);
    h.drain();
    assert_eq!(h.action_list(), vec![RUN_A]);
}

#[test]
fn extreme_config_values_do_not_overflow() {
    let mut h = H::new(ShutdownConfig {
        policy: ShutdownPolicy::AfterOnBattery { seconds: u32::MAX },
        command_file_s: u32::MAX,
        os_shutdown_s: u32::MAX,
        safety_margin_s: u32::MAX,
        low_battery_delay_s: u32::MAX,
        low_battery_runtime_s: u32::MAX,
        battery_discharged_runtime_s: Some(u32::MAX),
        time_on_battery_limit_s: Some(u32::MAX),
        time_on_battery_shutdown_s: Some(u32::MAX),
        overload_shutdown_s: Some(u32::MAX),
        temperature_limit_dc: Some(i16::MIN),
        temperature_shutdown_s: Some(u32::MAX),
        comm_lost_on_battery_shutdown_s: Some(u32::MAX),
        turn_off_ups: true,
        ups_off_mode: UpsOffMode::Sleep {
            duration: Duration(u64::MAX),
        },
    });
    assert!(h.m.config().validate().is_err());
    h.obs(Observation::on_battery(u32::MAX, u16::MAX));
    h.m.handle_timeout(Instant(u64::MAX));
    h.m.observe(
        Instant(u64::MAX),
        &Observation {
            temperature_dc: Some(i16::MAX),
            ..Observation::on_battery(0, 0)
        },
    );
    h.drain();
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn config_validation() {
    assert_eq!(ShutdownConfig::default().validate(), Ok(()));
    let bad = ShutdownConfig {
        policy: ShutdownPolicy::Threshold {
            charge_pct: 101,
            runtime_s: 60,
        },
        ..ShutdownConfig::default()
    };
    assert!(bad.validate().is_err());
    let c = cfg(ShutdownPolicy::LowBattery);
    assert_eq!(c.min_schedule_window(), Duration::from_secs(180));
    assert_eq!(c.low_runtime_threshold(), Duration::from_secs(240));
}

#[test]
fn self_test_is_not_an_outage() {
    // policy = immediately: a self-test (on battery on purpose) must not shut down, notify
    // On Battery or run its command file; it logs Self-Test Started, then the result.
    let mut h = H::new(ShutdownConfig {
        policy: ShutdownPolicy::Immediately,
        ..ShutdownConfig::default()
    });
    h.obs(Observation {
        self_test: Some(SelfTestResult::NoResult),
        ..Observation::on_line(3600)
    });
    h.t = 10;
    h.obs(Observation {
        self_test: Some(SelfTestResult::InProgress),
        ..Observation::on_battery(3500, 990)
    });
    h.to(18);
    assert!(!h.has_event(EventId::OnBattery, false));
    assert!(h.has_event(EventId::SelfTestStarted, false));
    assert_eq!(h.m.phase(), Phase::Idle);
    assert!(h.actions.is_empty(), "{:?}", h.actions);
    h.obs(Observation {
        self_test: Some(SelfTestResult::InProgress),
        ..Observation::on_line(3500)
    });
    h.t = 19;
    h.obs(Observation {
        self_test: Some(SelfTestResult::Passed),
        ..Observation::on_line(3500)
    });
    assert!(h.has_event(EventId::SelfTestPassed, false));
    assert!(!h.has_event(EventId::PowerRestored, false));
    assert!(h.actions.is_empty());
}

#[test]
fn low_runtime_stays_armed_during_a_self_test() {
    let mut h = H::new(ShutdownConfig::default());
    h.t = 10;
    h.obs(Observation {
        self_test: Some(SelfTestResult::InProgress),
        ..Observation::on_battery(100, 300)
    });
    assert!(
        h.started_os(),
        "runtime below A + B + margin shuts down even in a test"
    );
}

#[test]
fn completed_sequence_returns_to_idle_when_the_ups_is_back_on_line() {
    let mut h = H::new(ShutdownConfig::default());
    h.t = 10;
    h.obs(Observation::on_battery(100, 300));
    assert!(h.started_os());
    h.t = 11;
    h.m.os_shutdown_done(at(11));
    assert!(matches!(h.m.phase(), Phase::Completed { .. }));
    // Still on battery: nothing new starts, and no cancel (the killpower flag stays).
    h.to(100);
    h.obs(Observation::on_battery(50, 200));
    assert!(matches!(h.m.phase(), Phase::Completed { .. }));
    assert_eq!(
        h.action_list()
            .iter()
            .filter(|a| **a == Action::StartOsShutdown)
            .count(),
        1
    );
    assert!(!h.action_list().contains(&Action::CancelShutdown));
    h.t = 200;
    h.obs(Observation::on_line(600));
    assert_eq!(h.m.phase(), Phase::Idle);
    // A new outage can shut down again.
    h.t = 300;
    h.obs(Observation::on_battery(100, 300));
    assert_eq!(
        h.action_list()
            .iter()
            .filter(|a| **a == Action::StartOsShutdown)
            .count(),
        2
    );
}

#[test]
fn time_to_shutdown_follows_the_draining_runtime() {
    // Default: Low Battery policy, B = 120 s, margin 60 s → Low Runtime at 180 s of runtime.
    let mut h = H::new(ShutdownConfig::default());
    assert_eq!(h.m.time_to_shutdown(), None, "on line: nothing expected");
    h.t = 10;
    h.obs(Observation::on_battery(1000, 900));
    let left = h.m.time_to_shutdown().unwrap().as_millis();
    assert!((819_000..=821_000).contains(&left), "{left}");
    h.to(110);
    let left = h.m.time_to_shutdown().unwrap().as_millis();
    assert!((719_000..=721_000).contains(&left), "{left}");
    // After-on-battery policy: the earlier of its delay and Low Runtime.
    let mut h = H::new(ShutdownConfig {
        policy: ShutdownPolicy::AfterOnBattery { seconds: 300 },
        ..ShutdownConfig::default()
    });
    h.t = 10;
    h.obs(Observation::on_battery(3000, 900));
    assert_eq!(h.m.time_to_shutdown().unwrap().as_millis(), 300_000);
    h.to(400);
    assert_eq!(h.m.time_to_shutdown(), Some(Duration::ZERO), "started");
}
