//! upsguard-sim: a UPS emulator.
