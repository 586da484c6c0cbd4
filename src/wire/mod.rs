//! Byte layouts of everything shoal reads and writes on the wire.
//!
//! Parsers borrow from the input and never panic; writers never write past the
//! buffer they are given. Nothing here does I/O, reads a clock or takes a lock.

pub mod bencode;
pub mod http;
pub mod udp;
