//! The `shoal` binary as an operator runs it: started with flags and
//! environment, its log read line by line, its listeners taken from the
//! start-up lines, stopped by a signal.
// Signals go to the child with libc::kill.
#![allow(unsafe_code)]

use super::{metric, shoal_command, WAIT};
use shoal::net::Role;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The start-up line of each kind of listener, up to its address.
const LISTENING: [(Role, &str); 6] = [
    (Role::Udp, "listening on udp://"),
    (Role::Http, "listening on http://"),
    (Role::Rendezvous, "listening on rendezvous://"),
    (Role::Metrics, "serving /metrics and /health on http://"),
    (
        Role::Api,
        "serving the management API and status page on http://",
    ),
    (
        Role::Torrust,
        "serving the torrust REST API (v1) on http://",
    ),
];

/// The last start-up line: every listener is logged before it.
const SERVING: &str = "worker(s)";

/// A running `shoal`, killed when it drops (a test that fails leaves no
/// process behind).
pub struct Proc {
    child: Child,
    /// Lines of its stderr, from a thread that reads them as they come.
    log: mpsc::Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
    listeners: Vec<(Role, SocketAddr)>,
}

impl Proc {
    /// `shoal ARGS`, and wait (bounded) until it serves.
    pub fn start(args: &[&str]) -> Proc {
        Proc::start_with_env(args, &[])
    }

    /// `shoal ARGS` with `env` set (on top of [`shoal_command`]'s clean
    /// environment), and wait (bounded) until it serves.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = shoal_command()
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    return;
                }
            }
        });
        let mut p = Proc {
            child,
            log,
            seen: Vec::new(),
            listeners: Vec::new(),
        };
        p.wait_for(SERVING);
        for line in &p.seen {
            for (role, prefix) in LISTENING {
                if let Some(addr) = line.split(prefix).nth(1) {
                    let addr = addr
                        .trim()
                        .parse()
                        .unwrap_or_else(|e| panic!("{line}: {e}"));
                    p.listeners.push((role, addr));
                }
            }
        }
        p
    }

    /// The addresses of its `role` listeners, in the order it logged them
    /// (as [`shoal::server::Running::addrs`] gives them in process).
    pub fn addrs(&self, role: Role) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(r, _)| *r == role)
            .map(|&(_, a)| a)
            .collect()
    }

    /// The first of its `role` listeners.
    pub fn addr(&self, role: Role) -> SocketAddr {
        *self
            .addrs(role)
            .first()
            .unwrap_or_else(|| panic!("no {role:?} listener in {:#?}", self.seen))
    }

    /// Every line of the log read so far.
    pub fn log(&self) -> &[String] {
        &self.seen
    }

    /// The first line of the log that contains `text`, reading on (bounded
    /// by [`WAIT`]) until there is one.
    pub fn wait_for(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(e) => panic!("no log line with {text:?} ({e}); saw {:#?}", self.seen),
            }
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) takes plain integers and touches no memory of ours;
        // the pid is our child's, which is not reaped before `self` drops.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// The value of `name` in its `/metrics`: on the `--metrics` listener,
    /// or else on the HTTP tracker (`--http-metrics`).
    pub fn metric(&self, name: &str) -> u64 {
        let at = [Role::Metrics, Role::Http]
            .into_iter()
            .find_map(|r| self.addrs(r).first().copied())
            .expect("a listener that serves /metrics");
        metric(at, name)
    }

    /// Send `sig` (SIGTERM, SIGINT) and wait (bounded) for a clean exit: the
    /// last line says it stopped, the status is success. The whole log.
    pub fn stop(mut self, sig: libc::c_int) -> String {
        self.signal(sig);
        let deadline = Instant::now() + WAIT;
        // Its stderr closes when it exits.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("shoal did not exit; its log: {:#?}", self.seen)
                }
            }
        }
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "shoal closed its log but did not exit"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let log = self.seen.join("\n");
        assert!(status.success(), "exit status {status}; its log:\n{log}");
        let last = self.seen.last().map_or("", String::as_str);
        assert!(
            last.ends_with("stopped"),
            "the last line: {last}; its log:\n{log}"
        );
        log
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
