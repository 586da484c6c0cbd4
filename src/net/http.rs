//! HTTP connection state in the worker loops. Being written (issue 3).

use super::Shared;
use crate::config::Config;
use crate::core::Worker;
use crate::stats::Counters;

#[derive(Debug)]
pub struct HttpWorker {}

impl HttpWorker {
    pub fn new(_config: &Config, _first_listener: usize, _listeners: usize) -> HttpWorker {
        HttpWorker {}
    }

    pub fn expire(&mut self, _poll: &mut mio::Poll, _now_ms: u64, _counters: &Counters) {}

    pub fn on_event(
        &mut self,
        _poll: &mut mio::Poll,
        _listeners: &[mio::net::TcpListener],
        _shared: &Shared,
        _worker: &mut Worker,
        _event: &mio::event::Event,
        _now_ms: u64,
    ) {
    }
}
