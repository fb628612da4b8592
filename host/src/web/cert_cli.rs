//! `upsguard cert …`: the administrator's certificate commands (local root CLI only; the
//! file paths given here never come from a web client).
//!
//! The commands change the files; a running service serves them after its `TlsManager`
//! is reloaded (or after a restart).

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::cert::{self, CertError};

/// Default data directory of the service.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/upsguard";

/// `upsguard cert` arguments.
#[derive(Debug, clap::Args)]
pub struct CertArgs {
    /// Data directory of the service (the pair lives in <DATA_DIR>/tls/).
    #[arg(long, env = "UPSGUARD_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub op: CertOp,
}

/// `upsguard cert` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CertOp {
    /// Show the installed certificate: subject, SANs, issuer, validity, key, signature, fingerprint.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace the certificate with a new self-signed one (RSA 2048, SHA-512).
    Generate,
    /// Print a certificate signing request (PEM) for the installed key, with the same SANs.
    Csr {
        /// Write the CSR to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Install a certificate from a PEM chain and key, or from a PKCS#12 keystore.
    Import(ImportArgs),
}

/// `upsguard cert import` arguments.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["cert", "pkcs12"])))]
pub struct ImportArgs {
    /// PEM certificate chain, server certificate first.
    #[arg(long, requires = "key", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// PEM private key (unencrypted PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "cert", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// PKCS#12 keystore (.p12/.pfx).
    #[arg(long, conflicts_with_all = ["cert", "key"], value_name = "FILE")]
    pub pkcs12: Option<PathBuf>,
    /// Read the keystore password from the first line of standard input.
    #[arg(long, conflicts_with_all = ["cert", "key", "password_file"])]
    pub password_stdin: bool,
    /// Read the keystore password from the first line of this file.
    #[arg(long, conflicts_with_all = ["cert", "key"], value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// Run `upsguard cert …`.
pub fn cert_main(args: CertArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upsguard cert: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &CertArgs) -> Result<(), String> {
    let dir = args.data_dir.as_path();
    match &args.op {
        CertOp::Show { json } => {
            let info = cert::show(dir).map_err(|e| e.to_string())?;
            if *json {
                println!("{}", info.to_json());
            } else {
                println!("{info}");
            }
        }
        CertOp::Generate => {
            let info = cert::regenerate(dir).map_err(|e| e.to_string())?;
            println!("Generated a new self-signed certificate.\n{info}");
        }
        CertOp::Csr { out } => {
            let pem = cert::csr_pem(dir).map_err(|e| e.to_string())?;
            match out {
                Some(path) => crate::atomic::write_atomic(path, pem.as_bytes(), cert::CERT_MODE)
                    .map_err(|e| e.to_string())?,
                None => print!("{pem}"),
            }
        }
        CertOp::Import(imp) => {
            let info = import(dir, imp).map_err(|e| e.to_string())?;
            println!("Installed the certificate.\n{info}");
        }
    }
    Ok(())
}

fn import(dir: &Path, imp: &ImportArgs) -> Result<cert::CertInfo, CertError> {
    if let (Some(c), Some(k)) = (&imp.cert, &imp.key) {
        return cert::import_pem(dir, c, k);
    }
    let Some(p12) = &imp.pkcs12 else {
        return Err(CertError::NoCertificate {
            what: "import".into(),
        });
    };
    let password = if let Some(f) = &imp.password_file {
        let text = std::fs::read_to_string(f).map_err(|source| CertError::Io {
            path: f.clone(),
            source,
        })?;
        first_line(&text)
    } else if imp.password_stdin {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|source| CertError::Io {
                path: PathBuf::from("<stdin>"),
                source,
            })?;
        first_line(&line)
    } else {
        String::new()
    };
    cert::import_pkcs12(dir, p12, &password)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        cert: CertArgs,
    }

    fn parse(args: &[&str]) -> Result<T, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn argument_rules() {
        T::command().debug_assert();
        assert!(parse(&["import", "--cert", "c", "--key", "k"]).is_ok());
        assert!(parse(&["import", "--pkcs12", "p", "--password-stdin"]).is_ok());
        assert!(parse(&["import", "--cert", "c"]).is_err());
        assert!(parse(&["import"]).is_err());
        assert!(parse(&["import", "--pkcs12", "p", "--cert", "c", "--key", "k"]).is_err());
        assert!(parse(&["import", "--cert", "c", "--key", "k", "--password-stdin"]).is_err());
    }

    #[test]
    fn generate_show_csr_through_the_cli() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let out = dir.path().join("req.csr");
        for args in [
            vec!["--data-dir", d, "generate"],
            vec!["--data-dir", d, "show", "--json"],
            vec!["--data-dir", d, "csr", "--out", out.to_str().unwrap()],
        ] {
            let t = parse(&args).unwrap();
            run(&t.cert).unwrap();
        }
        let csr = std::fs::read_to_string(&out).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let t = parse(&["--data-dir", "/nonexistent/upsguard", "show"]).unwrap();
        assert!(run(&t.cert).is_err());
    }
}
