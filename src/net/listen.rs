//! The listener table: every address shoal serves, what it serves, and its
//! sockets, bound before any thread runs.
//!
//! One [`Listener`] per configured address, in a fixed order; a listener's
//! index in the table is its mio token in every loop that polls it, so a
//! ready event names its listener and role with no arithmetic. Listeners of
//! the data plane ([`Role::plane`]) get one `SO_REUSEPORT` socket per packet
//! worker; those of the control plane get one socket, polled by the control
//! thread alone.

use super::socket::{self, BindError, Buffers, Reach};
use mio::net::{TcpListener, UdpSocket};
use std::net::SocketAddr;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The BEP 15 tracker (`--udp`).
    Udp,
    /// The HTTP tracker (`--http`): announce and scrape, and `/metrics` and
    /// `/health` with `--http-metrics` (served by the control plane).
    Http,
    /// The Sobani rendezvous service (`--rendezvous`), over UDP.
    Rendezvous,
    /// The operator listener (`--metrics`): `/metrics` and `/health` only.
    Metrics,
    /// The management API and its status page (`--api`).
    Api,
    /// torrust-tracker's REST API contract (`--torrust-api`), over the
    /// same access files and token as `--api`.
    Torrust,
}

/// Which threads serve a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Every packet worker, each with its own `SO_REUSEPORT` socket.
    Data,
    /// The control thread only: management work never shares a thread with
    /// packets.
    Control,
}

impl Role {
    pub const fn plane(self) -> Plane {
        match self {
            Role::Udp | Role::Http | Role::Rendezvous => Plane::Data,
            Role::Metrics | Role::Api | Role::Torrust => Plane::Control,
        }
    }

    pub const fn is_datagram(self) -> bool {
        matches!(self, Role::Udp | Role::Rendezvous)
    }

    /// The scheme the start-up log and bind errors name the address with.
    pub const fn scheme(self) -> &'static str {
        match self {
            Role::Udp => "udp",
            Role::Http => "http",
            Role::Rendezvous => "rendezvous",
            Role::Metrics => "metrics",
            Role::Api => "api",
            Role::Torrust => "torrust-api",
        }
    }
}

/// One bound address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub role: Role,
    /// The address as bound (port 0 resolved).
    pub addr: SocketAddr,
    /// Destinations its datagram sockets can send to.
    pub reach: Reach,
}

/// The addresses to serve, by role, as configured.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub role: Role,
    pub addrs: &'a [SocketAddr],
}

/// A socket of one listener, ready for a poll.
#[derive(Debug)]
pub enum Socket {
    Datagram(UdpSocket),
    Stream(TcpListener),
}

/// The bound listeners and their sockets, not yet handed to threads.
#[derive(Debug)]
pub struct Bound {
    pub table: Vec<Listener>,
    /// One entry per packet worker: its socket for each data-plane
    /// listener, with the listener's index.
    pub workers: Vec<Vec<(usize, Socket)>>,
    /// The control thread's sockets, with their listener's index.
    pub control: Vec<(usize, Socket)>,
    /// The smallest buffers the kernel granted a datagram socket, if any.
    pub buffers: Option<Buffers>,
}

/// Bind every wanted address: `workers` sockets for a data-plane address,
/// one for a control-plane address. `defaults`: the tracker's addresses are
/// the built-in ones, so an IPv6 default that cannot be bound (no IPv6 on
/// the host) is skipped with a warning instead of failing.
pub fn bind(
    wanted: &[Wanted<'_>],
    workers: usize,
    buffer: usize,
    defaults: bool,
) -> Result<Bound, BindError> {
    let mut bound = Bound {
        table: Vec::new(),
        workers: (0..workers).map(|_| Vec::new()).collect(),
        control: Vec::new(),
        buffers: None,
    };
    for w in wanted {
        let plane = w.role.plane();
        let copies = match plane {
            Plane::Data => workers,
            Plane::Control => 1,
        };
        let skip_v6 = defaults && matches!(w.role, Role::Udp | Role::Http);
        for group in socket::bind_group(w.addrs, copies, buffer, skip_v6, w.role)? {
            let index = bound.table.len();
            bound.table.push(Listener {
                role: w.role,
                addr: group.addr,
                reach: group.reach,
            });
            if let Some(b) = group.buffers {
                bound.buffers = Some(match bound.buffers {
                    Some(a) => Buffers {
                        recv: a.recv.min(b.recv),
                        send: a.send.min(b.send),
                    },
                    None => b,
                });
            }
            let mut sockets = group.sockets.into_iter().map(|s| {
                if w.role.is_datagram() {
                    Socket::Datagram(UdpSocket::from_std(s.into()))
                } else {
                    Socket::Stream(TcpListener::from_std(s.into()))
                }
            });
            match plane {
                Plane::Data => {
                    for worker in &mut bound.workers {
                        worker.push((index, sockets.next().ok_or(BindError::Missing)?));
                    }
                }
                Plane::Control => {
                    bound
                        .control
                        .push((index, sockets.next().ok_or(BindError::Missing)?));
                }
            }
        }
    }
    Ok(bound)
}

/// The bound addresses of one role, in table order.
pub fn addrs_of(table: &[Listener], role: Role) -> Vec<SocketAddr> {
    table
        .iter()
        .filter(|l| l.role == role)
        .map(|l| l.addr)
        .collect()
}
