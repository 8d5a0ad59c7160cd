//! The data directory is the server's alone: the directory is created
//! 0700 and every file in it 0600 (history database, its -wal and -shm
//! files, the lock file, server.key), whatever the umask, and group or
//! other bits an older version or a careless copy left are removed at
//! start (the owner's bits are left as they are).
//! SQLite creates -wal and -shm with the database file's mode, so the
//! database file is created 0600 before SQLite opens it.
//!
//! On systems without Unix modes these do nothing beyond creating.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) if needed, 0700; an existing one
/// loses its group and other bits (its owner bits stay: a directory made
/// read-only on purpose stays so).
pub fn private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    restrict(dir)
}

/// Creates `path` empty, 0600, if it does not exist; an existing one
/// loses its group and other bits.
pub fn private_file(path: &Path) -> io::Result<()> {
    if path.exists() {
        return restrict(path);
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?;
    restrict(path)
}

/// Takes the group and other bits from every regular file directly in
/// `dir` (0644 becomes 0600); returns the ones that had any.
pub fn fix_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut fixed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let path = entry.path();
        if loose(&path) {
            restrict(&path)?;
            fixed.push(path);
        }
    }
    Ok(fixed)
}

/// Whether group or others may read or write `path` (false if it cannot
/// be inspected, or off Unix).
pub fn loose(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Clears the group and other bits of `path`'s mode.
fn restrict(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode & !0o077))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_made_owner_only() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("data");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(loose(&file));
        assert_eq!(fix_files(&dir).unwrap(), vec![file.clone()]);
        private_dir(&dir).unwrap();
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
        // Owner bits stay: a file made read-only on purpose stays so.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o400);
    }
}
