//! Size probe: drives the link driver and the shutdown machine the way firmware would, with
//! the hardware reduced to four extern functions, so nothing the core needs is optimised away.
#![no_std]
#![no_main]

use upsguard_core::link::{LinkConfig, LinkDriver, LinkEvent, UpsRequest};
use upsguard_core::shutdown::{Observation, ShutdownConfig, ShutdownMachine};
use upsguard_core::time::Instant;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

unsafe extern "C" {
    fn hw_read(buf: *mut u8, len: usize) -> usize;
    fn hw_write(buf: *const u8, len: usize);
    fn hw_now() -> u64;
    fn hw_event(kind: u32);
}

#[unsafe(no_mangle)]
pub extern "C" fn entry() -> ! {
    let mut d = LinkDriver::new(LinkConfig::default());
    let mut m = ShutdownMachine::new(ShutdownConfig::default());
    let mut buf = [0u8; 64];
    loop {
        let now = Instant(unsafe { hw_now() });
        let n = unsafe { hw_read(buf.as_mut_ptr(), buf.len()) };
        d.handle_input(now, buf.get(..n).unwrap_or(&[]));
        if d.poll_timeout().is_some_and(|t| t <= now) {
            d.handle_timeout(now);
        }
        while let Some(t) = d.poll_transmit(now) {
            unsafe { hw_write(t.as_bytes().as_ptr(), t.as_bytes().len()) }
        }
        while let Some(e) = d.poll_event() {
            unsafe { hw_event(matches!(e, LinkEvent::CommLost) as u32) }
        }
        if n == 7 {
            let _ = d.request(now, UpsRequest::KillPower);
        }
        if n == 9 {
            d.shutdown_link(now);
        }
        let s = d.snapshot();
        let obs = Observation {
            comm_ok: Some(true),
            on_battery: s.status.map(|st| st.value.bits() & 0x10 != 0),
            runtime_s: s.measurements.runtime_seconds.map(|r| r.value),
            ..Observation::default()
        };
        m.observe(now, &obs);
        m.handle_timeout(now);
        while let Some(e) = m.poll_event() {
            unsafe { hw_event(e.id as u32) }
        }
        while let Some(a) = m.poll_action() {
            unsafe { hw_event(matches!(a, upsguard_core::shutdown::Action::StartOsShutdown) as u32) }
        }
    }
}
