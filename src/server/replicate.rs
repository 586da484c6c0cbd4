//! The two ends of access-change replication, joined here because the API
//! and the cluster do not know each other: a change made through the API
//! goes to the cluster's outbox ([`ToCluster`]); a change from another
//! instance goes to this instance's access files ([`ToFiles`]).

use crate::access::Change;
use crate::api::manage::{Files, Replicate};
use crate::cluster::{AccessSink, Status};
use std::sync::Arc;

/// The API's hook: queue the change for the other instances.
#[derive(Debug)]
pub struct ToCluster(pub Arc<Status>);

impl Replicate for ToCluster {
    fn changed(&self, change: &Change) {
        self.0.queue_access(*change);
    }
}

/// The cluster's sink: apply the change to the policy and its file.
#[derive(Debug)]
pub struct ToFiles(pub Arc<Files>);

impl AccessSink for ToFiles {
    fn apply(&self, change: &Change) -> Result<bool, String> {
        self.0
            .apply(change)
            .map(|c| c.changed)
            .map_err(|e| e.to_string())
    }
}
