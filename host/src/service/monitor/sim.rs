//! The built-in emulator for `run --simulate`, behind the `simulator` cargo feature (on by
//! default): a packaged server binary can be built without it (`--no-default-features`),
//! and then `--simulate` says so instead of starting anything.

use std::net::SocketAddr;
use std::path::Path;

use crate::service::Paths;

/// The running emulator, on a pty the service opens like a real port.
#[derive(Debug)]
pub struct Sim {
    #[cfg(feature = "simulator")]
    handle: upsguard_sim::SimHandle,
}

#[cfg(feature = "simulator")]
impl Sim {
    pub fn start(
        paths: &Paths,
        scenario: &str,
        speed: f64,
        control: Option<String>,
    ) -> Result<Sim, String> {
        let scenario = if scenario.is_empty() {
            None
        } else {
            let text = std::fs::read_to_string(scenario)
                .map_err(|e| format!("cannot read scenario {scenario}: {e}"))?;
            Some(
                upsguard_sim::Scenario::parse(&text)
                    .map_err(|e| format!("scenario {scenario}: {e}"))?,
            )
        };
        let opts = upsguard_sim::SimOptions {
            transport: upsguard_sim::Transport::Pty(paths.data_dir.join("ups-tty")),
            speed,
            scenario,
            control_addr: control,
            eeprom_path: Some(paths.data_dir.join("sim-eeprom.json")),
            ..upsguard_sim::SimOptions::default()
        };
        let handle =
            upsguard_sim::spawn(opts).map_err(|e| format!("cannot start the emulator: {e}"))?;
        Ok(Sim { handle })
    }

    pub fn link_path(&self) -> Option<&Path> {
        self.handle.link_path()
    }

    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.handle.control_addr()
    }

    /// One emulator control line (typed on stdin), answered `OK …` or `ERR …`.
    pub fn answer(&self, line: &str) -> String {
        upsguard_sim::answer_line(self.handle.control(line))
    }
}

#[cfg(not(feature = "simulator"))]
impl Sim {
    pub fn start(
        _paths: &Paths,
        _scenario: &str,
        _speed: f64,
        _control: Option<String>,
    ) -> Result<Sim, String> {
        Err(
            "this upsguard was built without the emulator (cargo feature `simulator`); \
             --simulate is not available"
                .into(),
        )
    }

    pub fn link_path(&self) -> Option<&Path> {
        None
    }

    pub fn control_addr(&self) -> Option<SocketAddr> {
        None
    }

    pub fn answer(&self, _line: &str) -> String {
        "ERR no emulator in this build".into()
    }
}
