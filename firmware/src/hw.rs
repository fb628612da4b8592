//! The board: mps2-an386 (AN386 FPGA image, Cortex-M4 at 25 MHz) as QEMU models it.
//!
//! * UART0, a CMSDK APB UART at 0x4000_4000 (IRQ 0 = RX, 1 = TX): the UPS cable.
//! * SysTick from the processor clock (25 MHz), one interrupt per millisecond: the clock.
//! * The FPGA IO block's LED register at 0x4002_8000: the load's power switch (LED0 lit = the
//!   load is powered).

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use upsguard_core::time::Instant;

/// The CPU (and SysTick, and APB) clock of the AN386 image.
pub const SYSCLK_HZ: u32 = 25_000_000;

// ------------------------------------------------------------------------------ clock

static TICKS_LO: AtomicU32 = AtomicU32::new(0);
static TICKS_HI: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // The only writer; main reads the pair with a retry (see `now_ms`).
    let lo = TICKS_LO.load(Ordering::Relaxed).wrapping_add(1);
    if lo == 0 {
        TICKS_HI.fetch_add(1, Ordering::Release);
    }
    TICKS_LO.store(lo, Ordering::Release);
}

/// Milliseconds since [`start_systick`], 64-bit (the 32-bit counter wraps after 49 days).
pub fn now_ms() -> u64 {
    loop {
        let hi = TICKS_HI.load(Ordering::Acquire);
        let lo = TICKS_LO.load(Ordering::Acquire);
        if TICKS_HI.load(Ordering::Acquire) == hi {
            return (u64::from(hi) << 32) | u64::from(lo);
        }
    }
}

/// SysTick from the processor clock, reloading every millisecond, interrupt on.
pub fn start_systick(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSCLK_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// [`upsguard_core::pump::Clock`] over [`now_ms`].
#[cfg_attr(feature = "stub-core", allow(dead_code))]
#[derive(Debug, Default)]
pub struct SysTickClock;

impl upsguard_core::pump::Clock for SysTickClock {
    fn now(&mut self) -> Instant {
        Instant(now_ms())
    }
}

// ------------------------------------------------------------------------------ UART0

const UART0: usize = 0x4000_4000;
const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const INTSTATUS: usize = 0x0C;
const BAUDDIV: usize = 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const STATE_OVERRUNS: u32 = 0b1100;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;
const CTRL_RX_INTEN: u32 = 1 << 3;
const INT_RX: u32 = 1 << 1;

/// NVIC line of UART0's receive interrupt on the AN385/AN386 images.
const UART0_RX_IRQ: i16 = 0;
const NVIC_ISER0: usize = 0xE000_E100;

fn uart_read_reg(off: usize) -> u32 {
    // SAFETY: a CMSDK APB UART register of this board.
    unsafe { read_volatile((UART0 + off) as *const u32) }
}

fn uart_write_reg(off: usize, v: u32) {
    // SAFETY: a CMSDK APB UART register of this board.
    unsafe { write_volatile((UART0 + off) as *mut u32, v) }
}

/// UART0 as the UPS port: blocking `embedded_io` reads and writes, and a wait that sleeps
/// (WFI) until a byte arrives or the SysTick passes the deadline.
#[derive(Debug)]
pub struct Uart0 {
    _private: (),
}

impl Uart0 {
    /// 8N1 at `baud` (the divider only matters to real hardware: QEMU does not pace the
    /// line, but transmits nothing while the divider is below 16), RX interrupt on so a byte
    /// wakes the core from WFI at once.
    pub fn init(baud: u32) -> Uart0 {
        uart_write_reg(CTRL, 0);
        uart_write_reg(BAUDDIV, (SYSCLK_HZ / baud.max(1)).max(16));
        uart_write_reg(STATE, STATE_OVERRUNS);
        uart_write_reg(INTSTATUS, 0xF);
        uart_write_reg(CTRL, CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INTEN);
        // SAFETY: enabling an interrupt whose handler (DefaultHandler below) only clears
        // the UART's RX interrupt flag.
        unsafe { write_volatile(NVIC_ISER0 as *mut u32, 1 << UART0_RX_IRQ) };
        Uart0 { _private: () }
    }

    fn rx_full() -> bool {
        uart_read_reg(STATE) & STATE_RX_FULL != 0
    }

    fn put(b: u8) {
        while uart_read_reg(STATE) & STATE_TX_FULL != 0 {}
        uart_write_reg(DATA, u32::from(b));
    }

    /// Sleeps until an interrupt: SysTick (1 ms) or a received byte. Interrupts are masked
    /// around the check so a byte arriving in between still ends the WFI.
    fn sleep_unless_rx() {
        cortex_m::interrupt::disable();
        if !Self::rx_full() {
            cortex_m::asm::wfi();
        }
        // SAFETY: interrupts were enabled before (single core, no critical section open).
        unsafe { cortex_m::interrupt::enable() };
    }
}

/// UART0 RX (and any other unexpected) interrupt. The byte itself stays in DATA for the
/// main loop; clearing the flag lets WFI return and the line drop.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == UART0_RX_IRQ {
        uart_write_reg(INTSTATUS, INT_RX);
    }
}

impl embedded_io::ErrorType for Uart0 {
    type Error = Infallible;
}

impl embedded_io::Read for Uart0 {
    /// Blocks for the first byte, then takes what is there without waiting.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !Self::rx_full() {
            Self::sleep_unless_rx();
        }
        let mut n = 0;
        for slot in buf.iter_mut() {
            if !Self::rx_full() {
                break;
            }
            *slot = (uart_read_reg(DATA) & 0xFF) as u8;
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for Uart0 {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(Self::rx_full())
    }
}

impl embedded_io::Write for Uart0 {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            Self::put(b);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while uart_read_reg(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}

impl upsguard_core::pump::WaitReadable for Uart0 {
    fn wait_readable(&mut self, deadline: Option<Instant>) -> Result<bool, Infallible> {
        loop {
            if Self::rx_full() {
                return Ok(true);
            }
            if deadline.is_some_and(|d| now_ms() >= d.0) {
                return Ok(false);
            }
            Self::sleep_unless_rx();
        }
    }
}

// ------------------------------------------------------------------------------ LEDs

const FPGAIO_LED0: usize = 0x4002_8000;

/// LED0 is the load's power switch; LED1 lights while a shutdown is under way.
pub fn set_leds(load_on: bool, shutting_down: bool) {
    let v = u32::from(load_on) | (u32::from(shutting_down) << 1);
    // SAFETY: the FPGA IO LED register of this board (bits 1:0).
    unsafe { write_volatile(FPGAIO_LED0 as *mut u32, v) }
}
