//! upsguard: the std service and CLI around `upsguard-core`.

pub mod atomic;
pub mod cli;
pub mod clock;
pub mod cmdfile;
pub mod config;
pub mod credentials;
pub mod datalog;
pub mod driver;
pub mod eventlog;
pub mod files;
pub mod ipc;
pub mod killpower;
pub mod notifications;
pub mod serial;
pub mod service;
pub mod status;
pub mod web;
