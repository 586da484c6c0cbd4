//! The thread that keeps the access policy in step with its files: a
//! reload on request (SIGHUP) and a check every [`ACCESS_POLL`] for a file
//! that changed. Packet workers never wait on it: they switch to the new
//! policy on their next request.
//!
//! One info line per file reloaded (counts, never keys), one error line per
//! file that failed, and the previous policy stays in force.

use super::{AccessConfig, LoadError, LoadStats, Reloaded, Reloader};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the access files are checked for changes. A change is loaded
/// once the file has held still for one check, so within two of these.
pub const ACCESS_POLL: Duration = Duration::from_secs(2);

/// Which file a reload failed for (`shoal_*_reload_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    List = 0,
    Keys = 1,
}

/// A running reload thread. Dropping it (or [`ReloadThread::stop`]) ends it.
#[derive(Debug)]
pub struct ReloadThread {
    tx: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl ReloadThread {
    /// Start reloading the files of `config` into `reloader`'s policy;
    /// `failed` is told about each failed reload.
    pub fn spawn(
        mut reloader: Reloader,
        config: AccessConfig,
        failed: impl Fn(Which) + Send + 'static,
    ) -> std::io::Result<ReloadThread> {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("shoal-reload".into())
            .spawn(move || loop {
                let out = match rx.recv_timeout(ACCESS_POLL) {
                    Ok(()) => reloader.reload_all(),
                    Err(mpsc::RecvTimeoutError::Timeout) => reloader.poll(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                };
                report(&config, &out, &failed);
            })?;
        Ok(ReloadThread { tx, thread })
    }

    /// Reload every file now (SIGHUP).
    pub fn reload(&self) {
        let _ = self.tx.send(());
    }

    /// End the thread and wait for it.
    pub fn stop(self) {
        drop(self.tx);
        if self.thread.join().is_err() {
            log::error!("the access reload thread panicked");
        }
    }
}

/// The access policy in force, at start-up (counts, never keys).
pub fn log_policy(access: &AccessConfig, reloader: &Reloader) {
    let policy = reloader.handle().load();
    if let (Some((path, _)), Some((mode, list))) = (&access.list, policy.list()) {
        let mode = format!("{mode:?}").to_ascii_lowercase();
        log::info!(
            "access list {}: {} info hashes ({mode} mode)",
            path.display(),
            list.len()
        );
    }
    if let (Some(path), Some(keys)) = (&access.keys, policy.keys()) {
        log::info!(
            "private mode: {} keys from {}{}",
            keys.len(),
            path.display(),
            if access.private_scrape {
                "; scrapes need a key too"
            } else {
                ""
            }
        );
    }
}

/// One info line per file reloaded, one error line per file that failed.
fn report(access: &AccessConfig, out: &Reloaded, failed: &impl Fn(Which)) {
    let list_path = access.list.as_ref().map(|(p, _)| p.display());
    let keys_path = access.keys.as_ref().map(|p| p.display());
    let files = [
        (
            &out.list,
            list_path,
            "info hashes",
            "access list",
            Which::List,
        ),
        (&out.keys, keys_path, "keys", "key file", Which::Keys),
    ];
    for (result, path, what, file, which) in files {
        let path = path.map(|p| p.to_string()).unwrap_or_default();
        match result {
            None => {}
            Some(Ok(LoadStats {
                entries, elapsed, ..
            })) => log::info!(
                "reloaded {file} {path}: {entries} {what} in {} ms",
                elapsed.as_millis()
            ),
            Some(Err(e)) => {
                failed(which);
                log_reload_error(file, e);
            }
        }
    }
}

/// `FILE:LINE: reason`; the text of a line is never shown (it may be a key).
fn log_reload_error(file: &str, e: &LoadError) {
    log::error!("cannot reload the {file}: {e}; the previous one stays in force");
}
