//! The appliance: the core's [`Agent`] turned by [`pump::turn`] over UART0, its events logged
//! and its host actions carried out here.

use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use upsguard_core::agent::{Agent, AgentEvent, HostAction};
use upsguard_core::link::{
    CommState, KillMethod, RequestError, RequestFailure, RequestId, RequestResult,
};
use upsguard_core::pump::{self, Clock};
use upsguard_core::shutdown::{Phase, UpsOffMode};
use upsguard_core::time::{Duration, Instant};

use crate::hw::{self, SysTickClock, Uart0};
use crate::{config, log};

/// How often a status line is logged.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// The agent's whole state, in a static so the linker's `.bss` shows its size
/// (ci/firmware-size.py counts this symbol as the core's RAM).
static mut AGENT: MaybeUninit<Agent> = MaybeUninit::uninit();
/// The pump's read buffer.
static mut RX: [u8; 64] = [0; 64];

/// Where the shutdown of this appliance stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    On,
    /// Switched off; the UPS is turned off once `ready_at` (its shutdown time) has passed.
    ShuttingDown {
        ready_at: Instant,
    },
    /// The UPS turn-off request with this id is under way.
    UpsOffRequested(RequestId),
    /// The UPS turn-off finished (either way); nothing more to do.
    Done,
}

pub fn run(mut uart: Uart0) -> ! {
    let mut clock = SysTickClock;
    let cfg = config::load();
    log!(
        "upsguard-fw: config: os_shutdown_s={} safety_margin_s={} on_battery_delay_s={} off_mode={} poll_ms={}",
        cfg.os_shutdown_s,
        cfg.safety_margin_s,
        cfg.on_battery_delay_s,
        config::off_mode_text(cfg.off_mode),
        cfg.poll_ms
    );
    let shutdown_cfg = config::shutdown_config(&cfg);
    // SAFETY: the only accesses to AGENT and RX; `run` never returns and is called once.
    let agent: &mut Agent = unsafe {
        (*addr_of_mut!(AGENT)).write(Agent::new(config::link_config(&cfg), shutdown_cfg))
    };
    let rx: &mut [u8; 64] = unsafe { &mut *addr_of_mut!(RX) };
    log!(
        "upsguard-fw: agent ready ({} bytes); talking to the UPS",
        core::mem::size_of::<Agent>()
    );

    let mut off_mode: UpsOffMode = shutdown_cfg.ups_off_mode;
    let mut load = Load::On;
    let mut heartbeat = clock.now() + HEARTBEAT;
    loop {
        let limit = match load {
            Load::ShuttingDown { ready_at } => ready_at.min(heartbeat),
            _ => heartbeat,
        };
        match pump::turn(agent, &mut uart, &mut clock, rx, Some(limit)) {
            Ok(_) => {}
            Err(never) => match never {},
        }
        let now = clock.now();
        while let Some(e) = agent.poll_event() {
            on_event(agent, e, &mut load);
        }
        while let Some(a) = agent.poll_action() {
            match a {
                HostAction::RunCommandFile { duration } => {
                    // Not configured (command_file_s = 0); nothing to run, so it is over.
                    log!(
                        "upsguard-fw: no command file on this appliance ({} s asked); skipped",
                        duration.as_secs()
                    );
                    agent.command_file_finished(now);
                }
                HostAction::ArmUpsTurnOff { mode } => {
                    off_mode = mode;
                    log!("upsguard-fw: ups turn-off armed (mode {})", mode_text(mode));
                }
                HostAction::StartOsShutdown => {
                    let reason = match agent.state().phase {
                        Phase::OsShutdown { reason, .. } | Phase::Completed { reason, .. } => {
                            reason.as_str()
                        }
                        _ => "unknown",
                    };
                    hw::set_leds(false, true);
                    let wait = Duration::from_secs(u64::from(cfg.os_shutdown_s));
                    log!(
                        "upsguard-fw: shutting down load (reason {}); ups turn-off in {} s",
                        reason,
                        wait.as_secs()
                    );
                    load = Load::ShuttingDown {
                        ready_at: now + wait,
                    };
                }
                HostAction::CancelShutdown => {
                    log!("upsguard-fw: shutdown cancelled");
                }
            }
        }
        if let Load::ShuttingDown { ready_at } = load
            && now >= ready_at
        {
            // The load had its shutdown time: the killpower, done by the firmware itself.
            agent.os_shutdown_done(now);
            log!(
                "upsguard-fw: load is down; turning the UPS off (mode {})",
                mode_text(off_mode)
            );
            load = match agent.request(now, off_mode.request()) {
                Ok(id) => Load::UpsOffRequested(id),
                Err(e) => {
                    log!(
                        "upsguard-fw: ups turn-off refused: {}",
                        request_error_text(e)
                    );
                    Load::Done
                }
            };
            // The request may have finished at once (refused before sending).
            while let Some(e) = agent.poll_event() {
                on_event(agent, e, &mut load);
            }
        }
        if now >= heartbeat {
            heartbeat = heartbeat + HEARTBEAT;
            let st = agent.state();
            log!(
                "upsguard-fw: uptime {} s, comm {}, phase {}, runtime {} s, dropped {}",
                now.as_millis() / 1000,
                match st.ups.comm {
                    CommState::Connecting => "connecting",
                    CommState::Established => "established",
                    CommState::Lost => "lost",
                    CommState::Closed => "closed",
                },
                phase_text(st.phase),
                st.estimated_runtime.map_or(0, |d| d.as_secs()),
                st.counters.dropped
            );
        }
    }
}

fn on_event(agent: &Agent, e: AgentEvent, load: &mut Load) {
    match e {
        AgentEvent::Ups(ev) => {
            let cleared = ev.cleared && ev.id.has_cleared_form();
            log!(
                "upsguard-fw: event {}{} ({})",
                ev.id.as_str(),
                if cleared { " cleared" } else { "" },
                ev.title()
            );
        }
        AgentEvent::Identified => {
            let id = &agent.snapshot().identity;
            log!(
                "upsguard-fw: ups identified: model {}, serial {}",
                id.model.as_ref().map_or("?", |m| m.value.as_str()),
                id.serial.as_ref().map_or("?", |s| s.value.as_str())
            );
        }
        AgentEvent::RequestDone { id, result } => {
            if *load == Load::UpsOffRequested(id) {
                *load = Load::Done;
                log!("upsguard-fw: ups turn-off sent: {}", result_text(result));
            } else {
                log!(
                    "upsguard-fw: request {} done: {}",
                    id.0,
                    result_text(result)
                );
            }
        }
        AgentEvent::UpsOffSent { mode, result } => {
            log!(
                "upsguard-fw: ups turn-off sent (mode {}): {}",
                mode_text(mode),
                result_text(result)
            );
        }
        AgentEvent::Closed => log!("upsguard-fw: link closed"),
    }
}

fn mode_text(m: UpsOffMode) -> &'static str {
    match m {
        UpsOffMode::ShutdownReturn => "shutdown_return",
        UpsOffMode::StayOff => "stay_off",
        UpsOffMode::Sleep { .. } => "sleep",
    }
}

fn phase_text(p: Phase) -> &'static str {
    p.as_str()
}

fn result_text(r: RequestResult) -> &'static str {
    match r {
        RequestResult::Done => "done",
        RequestResult::Unchanged => "unchanged",
        RequestResult::KillPower(KillMethod::SoftShutdown) => {
            "accepted S (soft shutdown: output off after the delay, back with mains)"
        }
        RequestResult::KillPower(KillMethod::ShutdownReturn) => {
            "accepted @000 (shutdown and return)"
        }
        RequestResult::KillPower(KillMethod::StayOff) => "accepted K..K (shutdown, stay off)",
        RequestResult::Failed(f) => match f {
            RequestFailure::Refused => "FAILED: refused",
            RequestFailure::NoReply => "FAILED: no reply",
            RequestFailure::UnexpectedReply => "FAILED: unexpected reply",
            RequestFailure::CommLost => "FAILED: communication lost",
            RequestFailure::Closed => "FAILED: link closed",
            RequestFailure::Wrapped => "FAILED: value not reached",
            RequestFailure::NotPermitted => "FAILED: not permitted",
            RequestFailure::NotSupported => "FAILED: not supported",
            RequestFailure::AlreadyRunning => "FAILED: already running",
            RequestFailure::NotRunning => "FAILED: not running",
        },
    }
}

fn request_error_text(e: RequestError) -> &'static str {
    match e {
        RequestError::QueueFull => "queue full",
        RequestError::InvalidValue => "invalid value",
        RequestError::NotSupported => "not supported by this UPS",
        RequestError::NotPermitted => "not permitted by this UPS",
        RequestError::Closed => "link closed",
    }
}
