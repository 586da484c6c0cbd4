//! Scratch directories for the files a test hands to shoal.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A fresh directory under the system's temp dir, removed when it drops.
/// Its name carries the test binary, `name` and the process id, so tests
/// running at once never share one.
pub struct TmpDir(PathBuf);

impl TmpDir {
    pub fn new(name: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!(
            "shoal-it-{}-{name}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    /// The path of `name` in the directory (nothing is created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Write `name` whole, readable by its owner only (it may hold keys):
    /// a temporary file renamed into place, so a reader never sees a part.
    /// Returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p
    }

    /// The files whose name starts with `prefix`.
    pub fn files(&self, prefix: &str) -> Vec<PathBuf> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .collect()
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
