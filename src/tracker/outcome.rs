//! What one request did, as the core reports it: the worker counts it,
//! publishes what was stored, and sends the reply the core wrote.
//!
//! The reply goes into the caller's buffer and an announce's [`PeerEvent`]
//! into the caller's [`super::Worker`] (as the rendezvous core writes its
//! replies into the caller's `Replies`): what is returned stays two words,
//! returned in registers on the per-packet path.

use crate::access::Deny;
use crate::swarm::{InfoHash, Role};
use crate::wire::udp::ParseError;
use std::net::SocketAddr;

/// One request's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A connection id was issued (BEP 15 connect).
    Connected,
    /// An announce was taken into the swarm and answered: the peer stored,
    /// refreshed, or removed by `stopped`. What the other instances of a
    /// cluster are told is the worker's [`super::Worker::event`].
    Announced,
    /// A scrape was answered.
    Scraped,
    /// Refused with an error reply (a BEP 15 error frame or a bencoded
    /// `failure reason`): what was asked, when the request got that far,
    /// and why.
    Refused(Option<Asked>, Refusal),
    /// Nothing is sent back, and why.
    Dropped(Refusal),
}

/// The kind of request a refusal answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Announce,
    Scrape,
}

/// Why a request was refused or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// UDP: shorter than its action needs.
    Truncated,
    /// UDP: a connect with the wrong magic.
    BadProtocolId,
    /// UDP: an unknown action.
    UnknownAction,
    /// UDP: a missing, forged, expired or another address's connection id.
    BadConnectionId,
    /// Invalid content: port 0, no info hash, a bad parameter.
    InvalidRequest,
    /// The access list refuses the torrent.
    TorrentNotAllowed,
    /// Private mode: no key.
    MissingKey,
    /// Private mode: a key not listed, expired or malformed.
    UnknownKey,
}

impl From<Deny> for Refusal {
    fn from(d: Deny) -> Refusal {
        match d {
            Deny::TorrentNotAllowed => Refusal::TorrentNotAllowed,
            Deny::MissingKey => Refusal::MissingKey,
            Deny::UnknownKey => Refusal::UnknownKey,
        }
    }
}

impl From<ParseError> for Refusal {
    fn from(e: ParseError) -> Refusal {
        match e {
            ParseError::Truncated => Refusal::Truncated,
            ParseError::BadProtocolId => Refusal::BadProtocolId,
            ParseError::UnknownAction => Refusal::UnknownAction,
        }
    }
}

/// An announce the swarm took: a peer's new state at one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerEvent {
    pub info_hash: InfoHash,
    /// The peer's canonical address (IPv4-mapped IPv6 is IPv4).
    pub addr: SocketAddr,
    pub role: Role,
    /// The announce carried `completed`.
    pub completed: bool,
}

/// One datagram handled: what happened, and how long the reply is that the
/// core wrote into the caller's buffer (0: send nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    pub outcome: Outcome,
    pub reply: usize,
}

impl Handled {
    pub(super) const fn sent(outcome: Outcome, reply: usize) -> Handled {
        Handled { outcome, reply }
    }

    pub(super) const fn dropped(why: Refusal) -> Handled {
        Handled {
            outcome: Outcome::Dropped(why),
            reply: 0,
        }
    }

    /// The reply to send, if any.
    pub fn reply_len(&self) -> Option<usize> {
        (self.reply > 0).then_some(self.reply)
    }
}
