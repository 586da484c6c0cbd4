//! One change to the access policy made through the management API, as a
//! value: what the API applied, and what the cluster carries to the other
//! instances, which apply it to their own policy and files.

use super::Key;
use crate::swarm::InfoHash;

/// A change to the access list or the key set. `Debug` shows no key (a
/// [`Key`]'s is redacted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The info hash is on the access list.
    Listed(InfoHash),
    /// The info hash is off the access list.
    Unlisted(InfoHash),
    /// The key is valid until the Unix second given (`None`: no expiry).
    KeyAdded(Key, Option<u64>),
    /// The key is no longer valid.
    KeyRemoved(Key),
}
