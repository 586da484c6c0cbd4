//! Sockets, loops and shutdown: the data plane and the control plane.
//!
//! - **The data plane**: one packet worker per core ([`worker`]), each with
//!   its own mio `Poll` and its own `SO_REUSEPORT` socket for every UDP,
//!   HTTP-tracker and rendezvous address, decoding straight into the sans-IO
//!   core ([`crate::tracker`]) and the shared swarm map: no channels, no
//!   async runtime, nothing allocated per packet.
//! - **The control plane**: one thread ([`control`]) for the operator
//!   listeners, the management API and the periodic work that walks the map
//!   ([`housekeeping`]), at a lower priority than the packet workers; among
//!   it, each worker's announce interval from its load ([`load`]).
//!
//! Both planes bind up front ([`listen::bind`]: start-up errors surface
//! before any thread runs, and tests can read the ephemeral ports) and
//! share the HTTP connection code ([`conn`]). Protocol decisions are the
//! core's; this module moves bytes, counts what the core says happened
//! ([`count`]) and enforces the limits on connections.

pub mod conn;
pub mod control;
mod count;
pub mod housekeeping;
pub mod listen;
pub mod load;
#[cfg(target_os = "linux")]
mod mmsg;
mod rendezvous;
pub mod serve;
mod socket;
pub mod udp;
pub mod worker;

pub use conn::{ConnConfig, Handoff};
pub use listen::{Listener, Plane, Role};
pub use socket::{BindError, Buffers, Reach};

use mio::Waker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The HTTP side's settings: connection limits and proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Most open connections per loop; when all are taken the longest-idle
    /// one is closed to admit a newcomer.
    pub max_connections: usize,
    /// A connection idle (or stuck mid-request) this long is closed.
    pub idle_timeout: Duration,
    /// Take the client address from this header (`X-Forwarded-For`, `X-Real-IP`).
    pub client_ip_header: Option<String>,
    /// Also serve `/metrics` and `/health` on the HTTP tracker addresses
    /// (`--http-metrics`), through the control thread. Off by default: the
    /// tracker port is public, and the counters are the operator's business.
    pub metrics_on_tracker_port: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(15),
            client_ip_header: None,
            metrics_on_tracker_port: false,
        }
    }
}

impl HttpConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("--http-max-connections must be at least 1".into());
        }
        Ok(())
    }
}

/// Stops every loop: sets the flag they check after each wake-up and wakes
/// them all at once.
#[derive(Debug, Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    wakers: Arc<Vec<Arc<Waker>>>,
}

impl Stop {
    pub fn new(flag: Arc<AtomicBool>, wakers: Vec<Arc<Waker>>) -> Stop {
        Stop {
            flag,
            wakers: Arc::new(wakers),
        }
    }

    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        for w in self.wakers.iter() {
            if let Err(e) = w.wake() {
                log::warn!("could not wake a loop: {e}");
            }
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}
