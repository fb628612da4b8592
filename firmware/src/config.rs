//! The appliance configuration: an [`ApplianceConfig`] record (postcard bytes behind the
//! `UGAC` magic, see `upsguard_core::records`) in the 4 KiB config page at the end of flash
//! (`_config_page` in memory.x).
//!
//! On mps2-an386 that page is ZBT SSRAM, as is the "flash" the image runs from, so the write
//! below is a plain memory write and lasts until QEMU restarts (a RAM-backed page). A
//! production MCU would erase and program the page through its flash controller at the same
//! point; the bytes would be the same.

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use upsguard_core::link::LinkConfig;
use upsguard_core::records::{self, ApplianceConfig, OffMode, RecordError};
use upsguard_core::shutdown::{ShutdownConfig, ShutdownPolicy, UpsOffMode};
use upsguard_core::time::Duration;

use crate::log;

const PAGE_LEN: usize = 4096;
/// More than any ApplianceConfig record takes (5-byte header + five varints ≤ 25 bytes).
const RECORD_MAX: usize = 64;
/// What an erased flash cell reads as.
const ERASED: u8 = 0xFF;

unsafe extern "C" {
    /// The page itself; defined by the linker script, not by any section of the image.
    static mut _config_page: [u8; PAGE_LEN];
}

fn page_ptr() -> *mut u8 {
    addr_of_mut!(_config_page).cast::<u8>()
}

fn read_page(out: &mut [u8; RECORD_MAX]) {
    let p = page_ptr().cast_const();
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: i < RECORD_MAX ≤ PAGE_LEN, inside the page.
        *b = unsafe { read_volatile(p.add(i)) };
    }
}

/// "Programs" the page: the record, then erased bytes up to the end of the record window.
fn write_page(bytes: &[u8]) {
    let p = page_ptr();
    for i in 0..RECORD_MAX {
        let b = bytes.get(i).copied().unwrap_or(ERASED);
        // SAFETY: i < RECORD_MAX ≤ PAGE_LEN, inside the page (RAM on this board).
        unsafe { write_volatile(p.add(i), b) };
    }
}

/// What the firmware runs with when the page holds no valid record: the core's defaults.
pub fn defaults() -> ApplianceConfig {
    ApplianceConfig::default()
}

fn error_text(e: RecordError) -> &'static str {
    match e {
        RecordError::TooSmall => "record buffer too small",
        RecordError::Foreign => "erased, or not a record of this kind or version",
        RecordError::Corrupt => "damaged record",
    }
}

pub fn off_mode_text(m: OffMode) -> &'static str {
    match m {
        OffMode::ShutdownReturn => "shutdown_return",
        OffMode::StayOff => "stay_off",
        OffMode::Sleep { .. } => "sleep",
    }
}

/// Reads the page at boot; on [`RecordError`] falls back to [`defaults`] and writes them back.
pub fn load() -> ApplianceConfig {
    let mut raw = [0u8; RECORD_MAX];
    read_page(&mut raw);
    let at = addr_of!(_config_page) as usize;
    match records::decode::<ApplianceConfig>(&raw) {
        Ok(cfg) => {
            log!("upsguard-fw: config from flash page at {:#x}", at);
            cfg
        }
        Err(e) => {
            let cfg = defaults();
            log!(
                "upsguard-fw: config page at {:#x} unusable ({}): using defaults",
                at,
                error_text(e)
            );
            let mut buf = [0u8; RECORD_MAX];
            match records::encode(&cfg, &mut buf) {
                Ok(bytes) => {
                    let n = bytes.len();
                    write_page(bytes);
                    read_page(&mut raw);
                    let ok = records::decode::<ApplianceConfig>(&raw) == Ok(cfg);
                    log!(
                        "upsguard-fw: defaults written to the config page ({} bytes, read back {})",
                        n,
                        if ok { "ok" } else { "FAILED" }
                    );
                }
                Err(e) => log!("upsguard-fw: cannot encode the defaults: {}", error_text(e)),
            }
            cfg
        }
    }
}

/// The link driver's settings: the core's defaults with the configured status poll period.
pub fn link_config(cfg: &ApplianceConfig) -> LinkConfig {
    LinkConfig {
        status_interval: Duration::from_millis(u64::from(cfg.poll_ms.clamp(100, 60_000))),
        ..LinkConfig::default()
    }
}

/// The shutdown policy: Low Battery (Low Runtime always armed), or After On Battery when a
/// delay is set; no command file (the appliance has none); the UPS is turned off at the end.
pub fn shutdown_config(cfg: &ApplianceConfig) -> ShutdownConfig {
    ShutdownConfig {
        policy: if cfg.on_battery_delay_s > 0 {
            ShutdownPolicy::AfterOnBattery {
                seconds: cfg.on_battery_delay_s,
            }
        } else {
            ShutdownPolicy::LowBattery
        },
        command_file_s: 0,
        os_shutdown_s: cfg.os_shutdown_s,
        safety_margin_s: cfg.safety_margin_s,
        turn_off_ups: true,
        ups_off_mode: UpsOffMode::from(cfg.off_mode),
        ..ShutdownConfig::default()
    }
}
