//! The server's long-term key, generated on first start and kept in the
//! data directory (`server.key`, base64 of the 32-byte secret, readable by
//! the owner only, `private_files.rs`). Clients pin its public half, so losing this file makes
//! every client refuse the server until users accept the new key.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use udpchat_proto::ServerKey;

pub const KEY_FILE: &str = "server.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot create data directory {path}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot read server key {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "cannot read the shared server key {path} (key_file); make it once with `udpchat keygen --data-dir DIR` and copy DIR/server.key to every node"
    )]
    Shared { path: PathBuf, source: io::Error },
    #[error("cannot write server key {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is not a udpchat server key (expected base64 of 32 bytes); move it away to generate a new key")]
    Invalid { path: PathBuf },
}

/// Loads the key a cluster's nodes share (`key_file`, docs/SCALING.md):
/// one file every node has, so clients pin the cluster, not a node. It is
/// never generated here: a node that made its own would not be the
/// cluster's.
pub fn load(path: &Path) -> Result<ServerKey, KeyFileError> {
    let text = fs::read_to_string(path).map_err(|source| KeyFileError::Shared { path: path.into(), source })?;
    let invalid = || KeyFileError::Invalid { path: path.into() };
    let bytes = BASE64.decode(text.trim()).map_err(|_| invalid())?;
    let secret: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
    ServerKey::from_secret(secret).ok_or_else(invalid)
}

/// Loads the key from `data_dir`, generating and saving one if there is
/// none. Returns the key and whether it was just created.
pub fn load_or_create(data_dir: &Path) -> Result<(ServerKey, bool), KeyFileError> {
    let path = data_dir.join(KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let invalid = || KeyFileError::Invalid { path: path.clone() };
            let bytes = BASE64.decode(text.trim()).map_err(|_| invalid())?;
            let secret: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
            Ok((ServerKey::from_secret(secret).ok_or_else(invalid)?, false))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            crate::private_files::private_dir(data_dir)
                .map_err(|source| KeyFileError::CreateDir { path: data_dir.into(), source })?;
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed)
                .map_err(|e| KeyFileError::Write { path: path.clone(), source: io::Error::other(e.to_string()) })?;
            let key = ServerKey::generate(seed);
            write_private(&path, &BASE64.encode(key.secret))
                .map_err(|source| KeyFileError::Write { path: path.clone(), source })?;
            Ok((key, true))
        }
        Err(source) => Err(KeyFileError::Read { path, source }),
    }
}

fn write_private(path: &Path, text: &str) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = load_or_create(dir.path()).unwrap();
        assert!(created);
        let (b, created) = load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(a.public, b.public);
        fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        let err = load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("move it away"), "{err}");
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let (c, _) = load_or_create(dir.path()).unwrap();
        assert_eq!(load(&dir.path().join(KEY_FILE)).unwrap().public, c.public);
        let err = load(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("udpchat keygen"), "{err}");
    }
}
