//! Atomic file replacement for the access list and key files (used by the
//! management API): a reader, the watcher included, sees either the old file
//! or the new one, never a prefix, and the new one survives a crash once this
//! returns.
//!
//! Steps: create a temporary file in the same directory (rename is atomic only
//! within a file system) with the final mode, write, fsync, rename over the
//! target, fsync the directory so the rename itself is durable.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Mode for the key file: readable by the tracker's user only.
pub const KEYS_MODE: u32 = 0o600;
/// Mode for the access list.
pub const LIST_MODE: u32 = 0o644;

/// Replace `path` with `contents` atomically and durably, with permission `mode`.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    // Dot-prefixed and unique per attempt; create_new refuses to follow a
    // planted file or symlink of the same name.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}.{}", std::process::id(), fastrand::u64(..)));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn test_write_replaces_with_mode_and_leaves_no_temp() {
        let d = std::env::temp_dir().join(format!("shoal-access-write-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("keys.txt");
        std::fs::write(&p, "old\n").unwrap();
        let ino_before = std::fs::metadata(&p)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap();
        write_atomically(&p, b"new\n", KEYS_MODE).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new\n");
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_ne!(
            std::os::unix::fs::MetadataExt::ino(&meta),
            ino_before,
            "renamed, not rewritten"
        );
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keys.txt"]);
        assert!(write_atomically(&d.join("no/such/dir/f"), b"x", LIST_MODE).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
