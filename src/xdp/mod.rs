//! The AF_XDP path for the UDP tracker: whole Ethernet frames from the
//! driver to the tracker core and back, past the kernel's socket layer.
//!
//! - [`config`]: `--xdp IFACE` ([`config::XdpConfig`]), refused in one line
//!   by a build without the feature.
//! - [`frame`]: the Ethernet/IPv4/IPv6/UDP layouts: parse a frame addressed
//!   to the tracker's ports, write the reply's headers and checksums around
//!   the payload the core wrote in place. Pure byte code, no I/O; compiled
//!   in every build so the default tests, fuzzing and benches cover it.
//! - [`prog`] (feature `xdp`, Linux): the XDP program in C that redirects the
//!   tracker's datagrams to AF_XDP sockets, loaded and attached with libbpf.
//! - [`xsk`] (feature `xdp`, Linux): one AF_XDP socket and its rings: frames
//!   in, a handler writes each reply's payload in place, frames out.
//! - [`path`] (feature `xdp`, Linux): the program and one socket per queue a
//!   worker serves, opened at start-up.

pub mod config;
pub mod frame;
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub mod path;
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub mod prog;
#[cfg(all(feature = "xdp", target_os = "linux"))]
pub mod xsk;

pub use config::XdpConfig;
