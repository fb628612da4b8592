//! `upsguard`: the service (`upsguard run`) and the CLI that talks to it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "upsguard",
    version,
    about = "UPS monitoring and safe-shutdown agent for APC Smart-UPS units"
)]
struct Cli {
    /// Control socket of the running service (default /run/upsguard/upsguard.sock, or $UPSGUARD_SOCKET).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the monitoring service.
    Run(upsguard::service::RunArgs),
    /// Show the UPS status (apcaccess-like).
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the event log.
    Events {
        /// Print CSV.
        #[arg(long)]
        csv: bool,
        /// Show at most this many events (newest last).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show the data log as CSV.
    Datalog {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Shut the OS down, then put the UPS to sleep for N hours (@nnn late in the halt).
    /// With --no-graceful the UPS output is cut right away and the OS is NOT shut down.
    Sleep {
        #[arg(long)]
        hours: u32,
        /// Shut the OS down first (the default; kept for scripts that pass it).
        #[arg(long, conflicts_with = "no_graceful")]
        graceful: bool,
        /// Cut the UPS output now without shutting the OS down: everything on this UPS loses
        /// power at once.
        #[arg(long)]
        no_graceful: bool,
    },
    /// Start the graceful shutdown sequence now.
    ShutdownNow,
    /// Start the UPS battery self-test.
    SelfTest,
    /// Start (or with --abort, stop) a runtime calibration.
    Calibrate {
        #[arg(long)]
        abort: bool,
    },
    /// Read or change UPS settings (only values the UPS permits).
    Settings {
        #[command(subcommand)]
        op: SettingsOp,
    },
    /// Tell the UPS to cut its output (run late in the OS halt by the shutdown hook).
    Killpower(upsguard::killpower::KillpowerArgs),
    /// HTTPS certificate of the web UI: show, generate, csr, import.
    Cert(upsguard::web::cert_cli::CertArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        op: ConfigOp,
    },
}

#[derive(Debug, Subcommand)]
enum SettingsOp {
    /// List the current settings and their permitted values.
    Get,
    /// Change one setting.
    Set { name: String, value: String },
}

#[derive(Debug, Subcommand)]
enum ConfigOp {
    /// Validate a configuration file.
    Check { file: PathBuf },
    /// Print the built-in default configuration (every section and key) as an INI file.
    Defaults,
    /// Change one value through the typed, validating writer (atomic save, backup kept).
    Set {
        /// Configuration file.
        #[arg(long, default_value = "/etc/upsguard/upsguard.ini")]
        config: PathBuf,
        section: String,
        key: String,
        value: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = upsguard::ipc::socket_path(cli.socket.as_deref());
    let result = match cli.command {
        Command::Run(args) => return upsguard::service::main(args, socket),
        Command::Killpower(args) => return upsguard::killpower::main(args),
        Command::Cert(args) => return upsguard::web::cert_cli::cert_main(args),
        Command::Config {
            op: ConfigOp::Check { file },
        } => return upsguard::cli::config_check(&file),
        Command::Config {
            op: ConfigOp::Defaults,
        } => upsguard::cli::config_defaults(),
        Command::Config {
            op:
                ConfigOp::Set {
                    config,
                    section,
                    key,
                    value,
                },
        } => upsguard::cli::config_set(&config, &section, &key, &value),
        Command::Status { json } => upsguard::cli::status(&socket, json),
        Command::Events { csv, limit } => upsguard::cli::events(&socket, csv, limit),
        Command::Datalog { limit } => upsguard::cli::datalog(&socket, limit),
        Command::Sleep {
            hours, no_graceful, ..
        } => {
            let graceful = !no_graceful;
            upsguard::cli::simple(&socket, upsguard::ipc::Request::Sleep { hours, graceful })
        }
        Command::ShutdownNow => upsguard::cli::simple(&socket, upsguard::ipc::Request::ShutdownNow),
        Command::SelfTest => upsguard::cli::simple(&socket, upsguard::ipc::Request::SelfTest),
        Command::Calibrate { abort } => {
            upsguard::cli::simple(&socket, upsguard::ipc::Request::Calibrate { abort })
        }
        Command::Settings {
            op: SettingsOp::Get,
        } => upsguard::cli::settings_get(&socket),
        Command::Settings {
            op: SettingsOp::Set { name, value },
        } => upsguard::cli::simple(&socket, upsguard::ipc::Request::SettingsSet { name, value }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upsguard: {e}");
            ExitCode::FAILURE
        }
    }
}
