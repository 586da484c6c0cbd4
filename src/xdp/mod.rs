//! The AF_XDP path for the UDP tracker: whole Ethernet frames from the
//! driver to the tracker core and back, past the kernel's socket layer.
//!
//! - [`frame`]: the Ethernet/IPv4/IPv6/UDP layouts: parse a frame addressed
//!   to the tracker's ports, write the reply's headers and checksums around
//!   the payload the core wrote in place. Pure byte code, no I/O.

pub mod frame;
