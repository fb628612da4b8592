//! upsguard-core: the allocation-free heart of upsguard.
//!
//! * [`wire`]: the APC Smart (UPS-Link) codec — typed commands with their pacing, reply
//!   parsers, status flags, alerts, command set and capability tables. Parse and emit, never panic.
//! * [`framer`]: bytes in, alerts out the moment their byte arrives, reply lines out at CR LF.
//! * [`link`]: a sans-I/O link driver (handshake, discovery, polling, timeouts, command pacing)
//!   in the style of quinn-proto: the caller feeds bytes and `now`, and writes what it is told.
//! * [`shutdown`]: the shutdown policy state machine, also sans-I/O.
//! * [`agent`]: the two composed into one [`agent::Agent`] with one quinn-style surface — what
//!   the Linux service and an appliance firmware both run.
//! * [`pump`] (feature `embedded-io`): the one blocking loop that drives an agent over a port.
//! * [`records`]: persisted records (killpower flag, appliance config) as postcard bytes.
//!
//! `#![no_std]`, no `alloc`; builds for `thumbv7em-none-eabihf`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::std_instead_of_core,
    clippy::std_instead_of_alloc,
    clippy::alloc_instead_of_core
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

#[macro_use]
mod fmt;
pub mod agent;
pub mod event;
pub mod framer;
pub mod link;
#[cfg(feature = "embedded-io")]
pub mod pump;
pub mod records;
pub mod shutdown;
pub mod time;
pub mod wire;

/// Re-exported: public types carry `heapless::String`s (model, ids, string writes).
pub use heapless;
