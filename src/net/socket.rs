//! Socket set-up with socket2: one `SO_REUSEPORT` socket per worker per address.
//!
//! One function serves both families (`Domain::for_address`). An IPv6 wildcard
//! socket is dual-stack unless an IPv4 address with the same port is also
//! configured, in which case it is made v6-only so the two do not collide.
//! Before a fixed port is bound with `SO_REUSEPORT`, it is probed without it,
//! so a port already held by another process (even another shoal with
//! `SO_REUSEPORT`) is reported as in use instead of being silently shared.
//! Every role's sockets are set up here ([`super::listen::Role`] tells
//! datagram from stream); a datagram socket's [`Reach`] tells the sender
//! which families it can send to.

use super::listen::Role;
use socket2::{Domain, Protocol, Socket, Type};
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why a listener could not be set up. Its `Display` is the one-line
/// message an operator sees; it names the address.
#[derive(Debug)]
pub enum BindError {
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        error: io::Error,
    },
    Poll(io::Error),
    /// Internal: fewer sockets were bound than workers (cannot happen).
    Missing,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Bind { addr, proto, error } if error.kind() == io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "cannot listen on {proto}://{addr}: address already in use"
                )
            }
            BindError::Bind { addr, proto, error }
                if error.kind() == io::ErrorKind::PermissionDenied && addr.port() < 1024 =>
            {
                write!(
                    f,
                    "cannot listen on {proto}://{addr}: permission denied: ports below 1024 need \
                     CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep on the binary, or \
                     AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit), or use a port \
                     of 1024 or above"
                )
            }
            BindError::Bind { addr, proto, error }
                if error.kind() == io::ErrorKind::AddrNotAvailable =>
            {
                write!(
                    f,
                    "cannot listen on {proto}://{addr}: {} is not an address of this host \
                     (listen on 0.0.0.0 or [::], or on an address `ip addr` shows)",
                    addr.ip()
                )
            }
            BindError::Bind { addr, proto, error } => {
                write!(f, "cannot listen on {proto}://{addr}: {error}")
            }
            BindError::Poll(e) => write!(f, "cannot create the event loop: {e}"),
            BindError::Missing => write!(f, "internal error: a worker has no socket"),
        }
    }
}

impl std::error::Error for BindError {}

/// Which destinations a bound UDP socket can send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// IPv4 only.
    V4,
    /// IPv6 only: v6-only, or bound to one IPv6 address (which cannot send
    /// to IPv4-mapped destinations).
    V6,
    /// A dual-stack IPv6 wildcard: IPv6, and IPv4 as IPv4-mapped IPv6.
    Dual,
}

impl Reach {
    fn of(addr: SocketAddr, v6only: bool) -> Reach {
        match addr {
            SocketAddr::V4(_) => Reach::V4,
            SocketAddr::V6(a) if !v6only && a.ip().is_unspecified() => Reach::Dual,
            SocketAddr::V6(_) => Reach::V6,
        }
    }
}

/// Receive and send buffer sizes the kernel granted a datagram socket, in
/// bytes usable for data (Linux reports double what it grants, the other
/// half being its bookkeeping allowance: halved here, so the numbers compare
/// with what was asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffers {
    pub recv: usize,
    pub send: usize,
}

impl Buffers {
    fn of(s: &Socket) -> Option<Buffers> {
        let halve = if cfg!(target_os = "linux") { 2 } else { 1 };
        Some(Buffers {
            recv: s.recv_buffer_size().ok()? / halve,
            send: s.send_buffer_size().ok()? / halve,
        })
    }
}

/// The sockets of one configured address.
pub struct Group {
    pub addr: SocketAddr,
    /// What the kernel granted its first socket (datagram sockets only).
    pub buffers: Option<Buffers>,
    /// Destinations its sockets can send to.
    pub reach: Reach,
    pub sockets: Vec<Socket>,
}

/// Bind `copies` sockets for every address in `addrs`. `default_addrs`: an
/// IPv6 address that fails for want of IPv6 is skipped with a warning.
pub fn bind_group(
    addrs: &[SocketAddr],
    copies: usize,
    buffer: usize,
    default_addrs: bool,
    kind: Role,
) -> Result<Vec<Group>, BindError> {
    let mut groups = Vec::new();
    for &addr in addrs {
        let v6only = addr.is_ipv6() && addrs.iter().any(|a| a.is_ipv4() && a.port() == addr.port());
        match bind_one(addr, copies, buffer, v6only, kind) {
            Ok(g) => groups.push(g),
            Err(error) if default_addrs && addr.is_ipv6() && is_no_ipv6(&error) => {
                log::warn!(
                    "IPv6 is not available here ({error}); serving {} on IPv4 only",
                    kind.scheme()
                );
            }
            Err(error) => {
                return Err(BindError::Bind {
                    addr,
                    proto: kind.scheme(),
                    error,
                })
            }
        }
    }
    Ok(groups)
}

fn is_no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

fn bind_one(
    addr: SocketAddr,
    copies: usize,
    buffer: usize,
    v6only: bool,
    kind: Role,
) -> io::Result<Group> {
    if addr.port() != 0 {
        // Probe: fails if anyone holds the port, with or without SO_REUSEPORT.
        drop(new_socket(addr, v6only, kind, false, buffer)?);
    }
    let first = new_socket(addr, v6only, kind, true, buffer)?;
    let bound = first
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound address is not an IP socket address"))?;
    let buffers = kind.is_datagram().then(|| Buffers::of(&first)).flatten();
    let mut sockets = vec![first];
    for _ in 1..copies {
        sockets.push(new_socket(bound, v6only, kind, true, buffer)?);
    }
    Ok(Group {
        addr: bound,
        buffers,
        reach: Reach::of(bound, v6only),
        sockets,
    })
}

fn new_socket(
    addr: SocketAddr,
    v6only: bool,
    kind: Role,
    reuse_port: bool,
    buffer: usize,
) -> io::Result<Socket> {
    let (ty, proto) = if kind.is_datagram() {
        (Type::DGRAM, Protocol::UDP)
    } else {
        (Type::STREAM, Protocol::TCP)
    };
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(v6only)?;
    }
    if !kind.is_datagram() {
        s.set_reuse_address(true)?;
    }
    s.set_reuse_port(reuse_port)?;
    s.set_nonblocking(true)?;
    if kind.is_datagram() {
        // The kernel caps these at net.core.{r,w}mem_max; a smaller grant is fine.
        let _ = s.set_recv_buffer_size(buffer);
        let _ = s.set_send_buffer_size(buffer);
    }
    s.bind(&addr.into())?;
    if !kind.is_datagram() {
        s.listen(1024)?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind_error(addr: &str, kind: io::ErrorKind) -> String {
        BindError::Bind {
            addr: addr.parse().unwrap(),
            proto: "udp",
            error: io::Error::from(kind),
        }
        .to_string()
    }

    #[test]
    fn bind_errors_say_what_to_do() {
        let low = bind_error("0.0.0.0:69", io::ErrorKind::PermissionDenied);
        assert!(low.starts_with("cannot listen on udp://0.0.0.0:69: permission denied"));
        assert!(low.contains("CAP_NET_BIND_SERVICE") && low.contains("AmbientCapabilities="));
        // Above 1024 the capability is not the answer: the plain error.
        let high = bind_error("0.0.0.0:6969", io::ErrorKind::PermissionDenied);
        assert!(!high.contains("CAP_NET_BIND_SERVICE"), "{high}");
        let away = bind_error("192.0.2.1:6969", io::ErrorKind::AddrNotAvailable);
        assert!(
            away.contains("192.0.2.1 is not an address of this host"),
            "{away}"
        );
        assert_eq!(
            bind_error("127.0.0.1:6969", io::ErrorKind::AddrInUse),
            "cannot listen on udp://127.0.0.1:6969: address already in use"
        );
    }
}
