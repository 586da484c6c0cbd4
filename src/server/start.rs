//! The start-up log: what an operator reads to know what is running — the
//! effective settings, what hurts clients, what the kernel granted, every
//! listener, the access policy in force.

use super::Server;
use crate::net::{Buffers, Role};

impl Server {
    /// Log the start-up lines (after binding, before serving). Raises the
    /// soft open-file limit on the way (logged).
    pub fn log_start(&self) {
        let config = &self.config;
        log::info!("shoal {} {}", env!("CARGO_PKG_VERSION"), config.summary());
        for w in config.warnings() {
            log::warn!("{w}");
        }
        self.raise_nofile_limit();
        log_socket_buffers(self.buffers, config.socket_buffer);
        for l in &self.table {
            let addr = l.addr;
            match l.role {
                Role::Udp => log::info!("listening on udp://{addr}"),
                Role::Http => log::info!("listening on http://{addr}"),
                Role::Rendezvous => log::info!("listening on rendezvous://{addr}"),
                Role::Metrics => log::info!("serving /metrics and /health on http://{addr}"),
                Role::Api => {
                    log::info!("serving the management API and status page on http://{addr}");
                    warn_if_exposed("management API", addr);
                }
                Role::Torrust => {
                    log::info!("serving the torrust REST API (v1) on http://{addr}");
                    warn_if_exposed("torrust REST API", addr);
                }
            }
        }
        if let Some(r) = &self.reloader {
            crate::access::reload::log_policy(&config.access, r);
        }
    }

    /// Raise the soft open-file limit to the hard one (one info line), and
    /// warn if even that is below what the HTTP connection limit may need.
    #[cfg(unix)]
    fn raise_nofile_limit(&self) {
        let config = &self.config;
        let limit = match crate::sys::raise_nofile(1 << 20) {
            Ok(l) => l,
            Err(e) => {
                log::warn!("cannot raise the open-file limit: {e}");
                return;
            }
        };
        if limit.after > limit.before {
            log::info!(
                "open-file limit raised from {} to {} (the hard limit is {})",
                limit.before,
                limit.after,
                limit.hard
            );
        } else {
            log::info!(
                "open-file limit {} (the hard limit is {})",
                limit.after,
                limit.hard
            );
        }
        // Each loop: its sockets and poller, plus up to the HTTP connection limit.
        let l = &config.listen;
        let streams = !l.http.is_empty()
            || !l.metrics.is_empty()
            || !l.api.is_empty()
            || !l.torrust.is_empty();
        let per_loop = 16 + self.table.len();
        let loops = config.workers + 1;
        let max = config.http.max_connections;
        let need = loops * (per_loop + usize::from(streams) * max);
        if (limit.after as usize) < need {
            log::warn!(
                "the open-file limit {} is below the {need} descriptors {} workers with --http-max-connections {max} may need; accepts pause when it runs out",
                limit.after,
                config.workers,
            );
        }
    }

    #[cfg(not(unix))]
    fn raise_nofile_limit(&self) {}
}

/// A management listener off loopback: whoever reaches it with the token can
/// change who may use the tracker.
fn warn_if_exposed(what: &str, addr: std::net::SocketAddr) {
    if !addr.ip().is_loopback() {
        log::warn!("the {what} on {addr} is not on loopback: keep it behind a firewall");
    }
}

/// Log what the kernel granted for --socket-buffer, and warn (once, for all
/// sockets) when it is less than asked: the kernel silently caps the request
/// at net.core.rmem_max / wmem_max.
fn log_socket_buffers(granted: Option<Buffers>, asked: usize) {
    let Some(b) = granted else {
        return;
    };
    log::info!(
        "socket buffers: {} bytes receive, {} bytes send granted ({asked} asked)",
        b.recv,
        b.send
    );
    let mut short = Vec::new();
    if b.recv < asked {
        short.push(format!("sysctl -w net.core.rmem_max={asked}"));
    }
    if b.send < asked {
        short.push(format!("sysctl -w net.core.wmem_max={asked}"));
    }
    if !short.is_empty() {
        log::warn!(
            "the kernel granted smaller socket buffers than --socket-buffer {asked} asks (receive {}, send {}): bursts beyond them are dropped (see shoal_udp_receive_drops_total); raise the caps with `{}` (and in /etc/sysctl.d/ to keep them)",
            b.recv,
            b.send,
            short.join("` and `")
        );
    }
}
