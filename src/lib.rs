//! shoal: a single-binary, UDP-first BitTorrent tracker.
//!
//! # Layout
//!
//! Data flows one way: socket → [`wire`] view → [`tracker`] → [`swarm`] → [`tracker`]
//! writes the reply → socket.
//!
//! - [`wire`]: byte layouts. BEP 15 frames ([`wire::udp`]), HTTP request heads and
//!   announce/scrape queries ([`wire::http`]), bencode output ([`wire::bencode`]).
//!   No I/O, no clocks, no locks, no allocation per packet.
//! - [`swarm`]: the sharded in-memory map of torrents and peers: announce, scrape,
//!   random peer sampling, expiry. No sockets, no parsing, no OS clock.
//! - [`tracker`]: the sans-IO tracker: `(now, source address, request bytes) → reply
//!   bytes`, plus stateless connection ids. Testable without sockets.
//! - [`net`]: mio worker loops, socket set-up (socket2), HTTP connection state,
//!   shutdown. No protocol decisions.
//! - [`snapshot`]: the warm-restart state file: versioned, checksummed format,
//!   atomic streaming writer, all-or-nothing loader. No locks, no clock.
//! - [`limit`]: per-address limits: a fixed-size rate limiter shared by all
//!   workers, HTTP connection counts per address, trusted-proxy CIDRs.
//!   No allocation after construction, no clock (`now_ms` is an argument).
//! - [`state`]: `--state-file`: the start-up load (key, swarm) and the writer
//!   thread and final write of the snapshot.
//! - [`stats`]: per-worker counters and their Prometheus rendering.
//! - [`client`]: a blocking tracker client (UDP BEP 15, plain HTTP) with typed
//!   announce/scrape; used by `shoal announce`/`scrape` and the tests.
//! - [`rendezvous`]: the Sobani rendezvous service (issue 11), sans-IO: JSON
//!   messages, the sharded registry with expiry and cap, `(now, source, bytes) →
//!   replies`, and a blocking client.
//! - [`bench`]: `shoal bench`, a BEP 15 load generator with a simulated population.
//! - [`config`]: the plain, validated configuration the server runs with.
//! - [`cli`]: the command line: clap definitions, their conversion into a
//!   [`server::Config`] or a tool invocation, `--print-config`, completions and
//!   the man page, and the client tools' runs.
//! - [`api`]: the management API (`--api`): JSON under `/api/v1` behind a
//!   token, the status page, the stats history, and `shoal api`.
//! - [`cluster`]: several instances sharing one swarm view through Redis/Valkey
//!   pub/sub: per-worker record buffers, the batch format, publisher and
//!   subscriber threads, state for joining instances.
//! - [`access`]: the access list and private keys: file formats, the per-request
//!   [`access::Policy`] check, live reload without a request-path lock, atomic writes.

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
pub mod time;
pub mod tracker;
pub mod wire;
