//! Trust on first use for server keys, as SSH's `known_hosts`: the first
//! key a server presents is written down, and later connections to the same
//! address must present the same key or are refused by the protocol with
//! an error naming both keys.
//!
//! Format: one `ADDRESS KEY` pair a line (KEY in base64), `#` comments.
//! ADDRESS is the server as the user gave it; a list of servers (a
//! cluster sharing one key) is one entry, written without blanks
//! (`a:7667,b:7667`), and its key holds for every address in it. The file
//! is small and rewritten whole; entries are never removed automatically
//! (a user who reinstalled a server deletes the line).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use udpchat_proto::PublicKey;

use crate::session::servers::canonical;

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} line {line}: expected `ADDRESS KEY` with a 44-character base64 key")]
    Syntax { path: PathBuf, line: usize },
}

pub struct KnownHosts {
    path: PathBuf,
    entries: BTreeMap<String, PublicKey>,
}

impl KnownHosts {
    /// Loads the file, or starts empty if it does not exist yet.
    pub fn load(path: &Path) -> Result<Self, KnownHostsError> {
        let mut entries = BTreeMap::new();
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(KnownHostsError::Read { path: path.into(), source }),
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = || KnownHostsError::Syntax { path: path.into(), line: i + 1 };
            let (addr, key) = line.split_once(char::is_whitespace).ok_or_else(syntax)?;
            let key: PublicKey = key.trim().parse().map_err(|_| syntax())?;
            entries.insert(addr.to_owned(), key);
        }
        Ok(Self { path: path.into(), entries })
    }

    pub fn get(&self, server: &str) -> Option<PublicKey> {
        self.entries.get(&canonical(server)).copied()
    }

    /// Records the key of a server seen for the first time.
    pub fn remember(&mut self, server: &str, key: PublicKey) -> Result<(), KnownHostsError> {
        self.entries.insert(canonical(server), key);
        let mut text = String::from("# udpchat known servers: ADDRESS KEY (trusted on first use)\n");
        for (addr, key) in &self.entries {
            text.push_str(&format!("{addr} {key}\n"));
        }
        let write = |source| KnownHostsError::Write { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(write)?;
        }
        // Write then rename, so a crash never leaves a half-written file.
        let tmp = self.path.with_extension("tmp");
        fs::write(&tmp, text).map_err(write)?;
        fs::rename(&tmp, &self.path).map_err(write)
    }

    /// The default location: `$XDG_CONFIG_HOME/udpchat/known_servers`, else
    /// `~/.config/udpchat/known_servers`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("udpchat").join("known_servers"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_proto::ServerKey;

    #[test]
    fn remembers_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known");
        let key = ServerKey::generate([3; 32]).public;
        let mut kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.get("host:1"), None);
        kh.remember("host:1", key).unwrap();
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.get("host:1"), Some(key));
    }

    #[test]
    fn a_list_is_one_entry_whatever_the_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known");
        let key = ServerKey::generate([4; 32]).public;
        let mut kh = KnownHosts::load(&path).unwrap();
        kh.remember("a:1, b:2", key).unwrap();
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.get("a:1,b:2"), Some(key));
        assert_eq!(kh.get(" a:1 ,b:2 "), Some(key));
        assert_eq!(kh.get("a:1"), None, "a list's key is not one server's");
        assert!(fs::read_to_string(&path).unwrap().contains(&format!("\na:1,b:2 {key}\n")));
    }

    #[test]
    fn bad_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known");
        fs::write(&path, "# c\nhost:1 notakey\n").unwrap();
        let err = KnownHosts::load(&path).err().unwrap();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
