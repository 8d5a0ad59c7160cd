//! What the desktop client remembers between runs, in
//! `$XDG_CONFIG_HOME/udpchat/gui.toml` (next to the terminal client's
//! `known_servers`): the last few server addresses, and with "remember
//! me" the nickname. Passwords are written only when the user ticks
//! "remember passwords", and then in plain text in a file only its owner
//! may read (0600); otherwise the file holds none. Loaded once before the
//! window opens and saved by the network thread, so the UI thread never
//! touches the disk.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Server addresses kept for the drop-down; the oldest goes past this.
pub const RECENT_SERVERS: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GuiConfig {
    /// Most recent first.
    pub servers: Vec<String>,
    pub remember_me: bool,
    pub nick: String,
    pub remember_passwords: bool,
    pub server_password: String,
    pub account_password: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid settings file (delete it to start afresh): {source}")]
    Syntax { path: PathBuf, source: toml::de::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot encode the settings: {0}")]
    Encode(#[from] toml::ser::Error),
}

impl GuiConfig {
    /// `$XDG_CONFIG_HOME/udpchat/gui.toml`, else `~/.config/udpchat/gui.toml`.
    pub fn default_path() -> Option<PathBuf> {
        udpchat_client::known_hosts::KnownHosts::default_path().map(|p| p.with_file_name("gui.toml"))
    }

    /// The settings in `path`; the defaults if there is no file yet.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Syntax { path: path.into(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ConfigError::Read { path: path.into(), source }),
        }
    }

    /// Puts `server` first in the recent list (once, at most [`RECENT_SERVERS`]).
    pub fn used_server(&mut self, server: &str) {
        self.servers.retain(|s| s != server);
        self.servers.insert(0, server.to_owned());
        self.servers.truncate(RECENT_SERVERS);
    }

    /// What is written: without "remember me" no nickname, without
    /// "remember passwords" no password.
    pub fn to_store(&self) -> Self {
        let mut c = self.clone();
        if !c.remember_me {
            c.nick.clear();
            c.remember_passwords = false;
        }
        if !c.remember_passwords {
            c.server_password.clear();
            c.account_password.clear();
        }
        c
    }

    /// Writes [`Self::to_store`] to `path` (write then rename), readable
    /// only by its owner, since it may hold passwords.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let text = toml::to_string(&self.to_store())?;
        let write = |source| ConfigError::Write { path: path.into(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let tmp = path.with_extension("tmp");
        let mut open = std::fs::OpenOptions::new();
        open.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        let mut f = open.open(&tmp).map_err(write)?;
        #[cfg(unix)]
        {
            // An older file of ours may have been created with looser modes.
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(write)?;
        }
        f.write_all(text.as_bytes()).map_err(write)?;
        f.sync_all().map_err(write)?;
        std::fs::rename(&tmp, path).map_err(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> GuiConfig {
        GuiConfig {
            servers: vec!["a:1".into()],
            remember_me: true,
            nick: "ana".into(),
            remember_passwords: false,
            server_password: "s3cret".into(),
            account_password: "acc0unt".into(),
        }
    }

    #[test]
    fn passwords_are_written_only_when_asked_and_then_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/gui.toml");
        full().save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cret") && !text.contains("acc0unt"), "{text}");
        assert!(text.contains("ana"));
        let mut c = full();
        c.remember_passwords = true;
        c.save(&path).unwrap();
        let back = GuiConfig::load(&path).unwrap();
        assert_eq!(back, c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let mut c = full();
        c.remember_me = false;
        c.save(&path).unwrap();
        let back = GuiConfig::load(&path).unwrap();
        assert!(back.nick.is_empty() && back.server_password.is_empty());
        assert_eq!(back.servers, ["a:1"]);
    }

    #[test]
    fn recent_servers_are_bounded_and_most_recent_first() {
        let mut c = GuiConfig::default();
        for i in 0..RECENT_SERVERS + 3 {
            c.used_server(&format!("h:{i}"));
        }
        c.used_server("h:5");
        assert_eq!(c.servers.len(), RECENT_SERVERS);
        assert_eq!(c.servers[0], "h:5");
        assert_eq!(c.servers.iter().filter(|s| *s == "h:5").count(), 1);
    }

    #[test]
    fn missing_file_is_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(GuiConfig::load(&dir.path().join("none.toml")).unwrap(), GuiConfig::default());
    }
}
