//! upsguard-core: the allocation-free heart of upsguard.
#![no_std]
