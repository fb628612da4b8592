//! The monitor's credential bootstrap: the `[Credentials]` reset channel in the INI, the
//! install-time file, and a configured PKCS#12 keystore.

#[allow(unused_imports)]
use super::*;

impl Monitor {
    /// `[Credentials]` in the INI, the reset channel (product §8.5): secrets go into the
    /// store and are scrubbed from the file, used or not. Runs at start-up and on every
    /// reload, so a password written into the file never waits there for a restart.
    pub(super) fn consume_ini_credentials(
        &mut self,
        store: &mut crate::credentials::CredentialStore,
    ) {
        if let Some(c) = self.cfg.take_credentials() {
            if let Some(pw) = &c.smtp_password {
                match store.set_smtp_password(Some(pw)) {
                    Ok(()) | Err(crate::credentials::CredError::BackupNotUpdated(_)) => self
                        .log_simple(
                            EventId::CredentialsChanged,
                            &format!(
                                "SMTP password for [Notifications] set from the [Credentials] section of {}",
                                self.paths.config.display()
                            ),
                        ),
                    Err(e) => tracing::error!(
                        "smtp_password from [Credentials] not used (removed from the file anyway): {e}"
                    ),
                }
            }
            if c.username.is_some() || c.password.is_some() {
                let u = c.username.clone().unwrap_or_default();
                let p = c.password.clone().unwrap_or_default();
                match store.set_admin(&u, &p) {
                    Ok(()) | Err(crate::credentials::CredError::BackupNotUpdated(_)) => {
                        self.log_simple(
                            EventId::CredentialsChanged,
                            &format!(
                                "administrator {} set from the [Credentials] section of {}",
                                crate::eventlog::display_escape(&u),
                                self.paths.config.display()
                            ),
                        );
                    }
                    Err(e) => tracing::error!(
                        "credentials from [Credentials] not used (removed from the file anyway): {e}"
                    ),
                }
            }
            if c.username.is_some() || c.password.is_some() || c.smtp_password.is_some() {
                // Plain-text secrets never stay in the file, used or not.
                if let Err(e) = config::scrub_credentials(&self.paths.config, &self.paths.backup) {
                    tracing::error!("cannot remove [Credentials] from the configuration: {e}");
                }
                if let Some(pw) = &c.pkcs12_password {
                    // The keystore password belongs in the config: put it back.
                    let mut again = config::load(&self.paths.config, &self.paths.backup).config;
                    if again.set("Credentials", "pkcs12_password", pw).is_ok()
                        && let Err(e) = again.save(&self.paths.config, &self.paths.backup)
                    {
                        tracing::error!("cannot keep pkcs12_password in the configuration: {e}");
                    }
                }
            }
            if let Some(pw) = &c.pkcs12_password {
                let _ = self.cfg.set("Credentials", "pkcs12_password", pw);
            }
        }
    }

    /// Open the credential store and consume `[Credentials]` and the install-time file. A
    /// store that cannot be opened is logged; the web UI then stays off.
    pub(super) fn bootstrap_credentials(&mut self) -> Option<crate::credentials::CredentialStore> {
        use crate::credentials::{CredentialStore, INSTALL_FILE_NAME};
        let data_dir = self.paths.data_dir.clone();
        {
            use crate::credentials::{BACKUP_FILE_NAME, KEY_FILE_NAME, MAIN_FILE_NAME};
            // A store that existed (its key file, or an event log with history, is still
            // here) and is now gone was deleted: say so before a new setup token appears.
            let gone = !data_dir.join(MAIN_FILE_NAME).exists()
                && !data_dir.join(BACKUP_FILE_NAME).exists();
            if gone && (data_dir.join(KEY_FILE_NAME).exists() || self.events.had_records_at_open())
            {
                self.log_simple(
                    EventId::CredentialsMissing,
                    &format!(
                        "the credential store ({MAIN_FILE_NAME} and {BACKUP_FILE_NAME}) is missing although this installation had one; a new store and setup token are created. If nobody here removed it, someone with access to {} did",
                        data_dir.display()
                    ),
                );
            }
        }
        let (mut store, report) = match CredentialStore::open(&data_dir) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("credential store: {e}; the web UI is not started");
                return None;
            }
        };
        for note in report.notes() {
            tracing::warn!("credentials: {note}");
        }
        if report.used_backup() {
            self.log_simple(
                EventId::CredentialsBackupUsed,
                &format!(
                    "credentials.enc was damaged; restored from credentials.bak ({})",
                    report.notes().join("; ")
                ),
            );
        }
        self.consume_ini_credentials(&mut store);
        match store.consume_install_file(&data_dir.join(INSTALL_FILE_NAME)) {
            Ok(Some(user)) => self.log_simple(
                EventId::CredentialsChanged,
                &format!(
                    "administrator {} set from the install-time credentials file",
                    crate::eventlog::display_escape(&user)
                ),
            ),
            Ok(None) => {}
            Err(e) => tracing::error!("{e}"),
        }
        Some(store)
    }

    /// `[Web] pkcs12_file` names a keystore in `<data-dir>/tls/` whose password is
    /// `[Credentials] pkcs12_password` (product §8.2): it becomes the served certificate at
    /// start-up and on reload. A bad keystore or password is logged and the previous
    /// certificate stays in service.
    pub(super) fn install_configured_pkcs12(&self, data_dir: &Path) {
        let Some(name) = self.cfg.web.pkcs12_file.clone() else {
            return;
        };
        let password = self
            .cfg
            .clone()
            .take_credentials()
            .and_then(|c| c.pkcs12_password.clone());
        let Some(password) = password else {
            tracing::error!(
                "web: [Web] pkcs12_file = {} but [Credentials] pkcs12_password is not set; keeping the current certificate",
                name.as_str()
            );
            return;
        };
        let file = data_dir.join("tls").join(name.as_str());
        match crate::web::cert::import_pkcs12(data_dir, &file, &password) {
            Ok(info) => tracing::info!(
                "web: certificate from the PKCS#12 keystore {} installed ({})",
                name.as_str(),
                info.subject
            ),
            Err(e) => tracing::error!(
                "web: PKCS#12 keystore {} not used: {e}; keeping the current certificate",
                name.as_str()
            ),
        }
    }
}
