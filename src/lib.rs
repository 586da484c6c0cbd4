//! shoal: a single-binary, UDP-first BitTorrent tracker.
//!
//! # Layout
//!
//! The rooms lean one way: each imports only rooms listed before it here
//! (enforced by `tests/rooms.rs`). A packet goes socket → [`wire`] view →
//! [`tracker`] core → [`swarm`] → the core writes the reply and says what
//! happened → the worker counts it ([`stats`]) and sends the reply.
//!
//! Leaves:
//! - [`time`]: the clock, read once per loop turn, and its units (ms,
//!   tracker seconds, Unix seconds).
//! - [`wire`]: byte layouts. BEP 15 frames ([`wire::udp`]), HTTP request heads and
//!   announce/scrape queries ([`wire::http`]), bencode output ([`wire::bencode`]).
//!   No I/O, no clocks, no locks, no allocation per packet.
//! - [`xdp`]: the AF_XDP path's frames: Ethernet, IPv4/IPv6 and UDP headers
//!   around BEP 15 payloads, parsed and written with their checksums.
//! - [`snapshot`]: the warm-restart file format: versioned, checksummed,
//!   atomic streaming writer, all-or-nothing loader. No locks, no clock.
//! - [`limit`]: per-address limits: a fixed-size rate limiter shared by all
//!   workers, HTTP connection counts per address, trusted-proxy CIDRs.
//!
//! The map and the cores:
//! - [`swarm`]: the sharded in-memory map of torrents and peers: announce,
//!   scrape, random peer sampling, expiry, the memory budget. No sockets, no
//!   parsing, no OS clock.
//! - [`access`]: the access list and private keys: file formats, the
//!   per-request [`access::Policy`] check, live reload without a request-path
//!   lock, atomic writes.
//! - [`rendezvous`]: the Sobani rendezvous service, sans-IO: JSON messages,
//!   the sharded registry, `(now, source, bytes) → replies + Outcome`.
//! - [`tracker`]: the sans-IO tracker: `(now, source, bytes) → reply +`
//!   [`tracker::Outcome`], connection ids, its own [`tracker::TrackerConfig`].
//!
//! Rooms with a narrow context (never the whole server):
//! - [`stats`]: single-writer counters per thread, the Prometheus rendering,
//!   and [`stats::Series`] for rooms that render their own.
//! - [`state`]: `--state-file`: the start-up load and the writer thread.
//! - [`cluster`]: several instances sharing one swarm through Redis/Valkey.
//! - [`api`]: the management API, its status page and history, `shoal api`.
//!
//! The planes and the one place that knows every room:
//! - [`net`]: the packet workers (UDP, HTTP tracker, rendezvous) and the
//!   control thread (operator listeners, the API, the periodic work that
//!   walks the map), over one listener table and one HTTP connection layer.
//!   No protocol decisions.
//! - [`server`]: the composed [`server::Config`], binding, spawning every
//!   thread with its context, and the shutdown order.
//!
//! Tools and the command line:
//! - [`client`]: a blocking tracker client (UDP BEP 15, HTTP, HTTPS).
//! - [`bench`]: `shoal bench`, a BEP 15 load generator.
//! - [`cli`]: flags and environment twins, their conversion to a
//!   [`server::Config`], the effective configuration, the man page and
//!   completions, the tool runners.

// Tests may unwrap: a panic is how they fail. Non-test code may not (see Cargo.toml).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod api;
pub mod bench;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod limit;
pub mod net;
pub mod rendezvous;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod swarm;
#[cfg(unix)]
pub mod sys;
pub mod time;
pub mod tracker;
pub mod wire;
pub mod xdp;
