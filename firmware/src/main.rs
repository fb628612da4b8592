//! upsguard appliance firmware for QEMU's `mps2-an386` (Cortex-M4).
//!
//! It runs `upsguard_core::agent::Agent` over UART0 (the UPS cable) with
//! `upsguard_core::pump::turn` as its main loop, SysTick as the clock, the configuration from a
//! flash page, and logs over semihosting. When the agent orders the OS shutdown, the firmware
//! switches its load off (the FPGA LEDs), waits the configured shutdown time, and then turns the
//! UPS off itself (the killpower a Linux host runs late in its halt).
//!
//! With the `stub-core` feature the agent loop is replaced by a UART echo, for the size
//! comparison in `ci/firmware.sh`.
#![no_std]
#![no_main]

use cortex_m_rt::{ExceptionFrame, entry, exception};

mod hw;

#[cfg(not(feature = "stub-core"))]
mod app;
#[cfg(not(feature = "stub-core"))]
mod config;
#[cfg(feature = "stub-core")]
mod stub;

/// One line on the semihosting console (QEMU's stdout with `-semihosting-config
/// enable=on,target=native`).
#[macro_export]
macro_rules! log {
    ($($t:tt)*) => { cortex_m_semihosting::hprintln!($($t)*) };
}

/// The UPS line speed (UPS-Link is 2400 8N1).
const BAUD: u32 = 2400;

#[entry]
fn main() -> ! {
    let Some(cp) = cortex_m::Peripherals::take() else {
        fail("core peripherals already taken")
    };
    hw::set_leds(true, false);
    let uart = hw::Uart0::init(BAUD);
    hw::start_systick(cp.SYST);
    log!(
        "upsguard-fw {}: mps2-an386, Cortex-M4 at {} MHz, UPS on UART0 at {} baud",
        env!("CARGO_PKG_VERSION"),
        hw::SYSCLK_HZ / 1_000_000,
        BAUD
    );
    #[cfg(not(feature = "stub-core"))]
    app::run(uart);
    #[cfg(feature = "stub-core")]
    stub::run(uart);
}

/// Reports and ends the emulation (semihosting exit); on hardware without a debugger the
/// exit call traps and the core halts.
fn fail(why: &str) -> ! {
    log!("upsguard-fw: FATAL: {}", why);
    cortex_m_semihosting::debug::exit(cortex_m_semihosting::debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Never reached from input: the core does not panic on any input, and this firmware's own
/// code has no panicking paths on the UART or config data.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Some(loc) = info.location() {
        log!("upsguard-fw: PANIC at {}:{}", loc.file(), loc.line());
    }
    fail("panic")
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    log!("upsguard-fw: HardFault at pc {:#010x}", ef.pc());
    fail("hard fault")
}
