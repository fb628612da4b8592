//! upsguard: the std service and CLI around `upsguard-core`.

pub mod atomic;
pub mod cmdfile;
pub mod config;
pub mod datalog;
pub mod eventlog;
