//! `stub-core`: the firmware with every use of upsguard-core (agent, pump, records) taken
//! out. The board code, the semihosting log with the same kinds of formatted lines, the
//! heartbeat and the panic/fault handlers stay, so `ci/firmware.sh` can subtract this
//! build's size from the real one and call the difference the core's share (an upper bound:
//! the firmware's own event and action glue is counted with it).

use embedded_io::{Read, ReadReady, Write};
use upsguard_core::pump::WaitReadable;
use upsguard_core::time::Instant;

use crate::hw::{self, Uart0};
use crate::log;

pub fn run(mut uart: Uart0) -> ! {
    let mut rx = [0u8; 64];
    let mut heartbeat = hw::now_ms() + 10_000;
    log!(
        "upsguard-fw: stub: echoing UART0 ({} bytes buffer)",
        rx.len()
    );
    loop {
        let ready = match uart.wait_readable(Some(Instant(heartbeat))) {
            Ok(r) => r,
            Err(never) => match never {},
        };
        if ready && matches!(uart.read_ready(), Ok(true)) {
            let n = match uart.read(&mut rx) {
                Ok(n) => n,
                Err(never) => match never {},
            };
            let _ = uart.write_all(rx.get(..n).unwrap_or(&[]));
            let _ = uart.flush();
            hw::set_leds(n % 2 == 0, n > 32);
        }
        let now = hw::now_ms();
        if now >= heartbeat {
            heartbeat += 10_000;
            log!(
                "upsguard-fw: uptime {} s, stub {}, {:#x}",
                now / 1000,
                if ready { "busy" } else { "idle" },
                heartbeat
            );
        }
    }
}
