//! What the core said happened, counted: the one place a tracker
//! [`Outcome`] turns into request, response and reject counts.

use crate::stats::{Counters, Family, Kind, Proto, Reject};
use crate::tracker::{Asked, Outcome, Refusal};
use std::net::{IpAddr, SocketAddr};

/// The metrics reason of a refusal.
pub fn reject_of(r: Refusal) -> Reject {
    match r {
        Refusal::Truncated => Reject::Truncated,
        Refusal::BadProtocolId => Reject::BadProtocolId,
        Refusal::UnknownAction => Reject::UnknownAction,
        Refusal::BadConnectionId => Reject::BadConnectionId,
        Refusal::InvalidRequest => Reject::InvalidRequest,
        Refusal::TorrentNotAllowed => Reject::TorrentNotAllowed,
        Refusal::MissingKey => Reject::MissingKey,
        Refusal::UnknownKey => Reject::UnknownKey,
    }
}

fn kind_of(a: Asked) -> Kind {
    match a {
        Asked::Announce => Kind::Announce,
        Asked::Scrape => Kind::Scrape,
    }
}

/// The family a client counts under (IPv4-mapped IPv6 is IPv4).
pub fn family(ip: IpAddr) -> Family {
    match ip.to_canonical() {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// The family of a socket address (IPv4-mapped IPv6 is IPv4).
pub fn family_of(addr: SocketAddr) -> Family {
    family(addr.ip())
}

/// Count one request's outcome over `proto` for a client of family `fam`;
/// `replied`: a reply went out (a datagram can fail to be written).
#[inline]
pub fn outcome(c: &Counters, proto: Proto, fam: Family, o: &Outcome, replied: bool) {
    let (asked, answered) = match *o {
        Outcome::Announced => (Some(Kind::Announce), Kind::Announce),
        Outcome::Connected => (Some(Kind::Connect), Kind::Connect),
        Outcome::Scraped => (Some(Kind::Scrape), Kind::Scrape),
        Outcome::Refused(asked, why) => {
            c.reject(reject_of(why));
            (asked.map(kind_of), Kind::Error)
        }
        Outcome::Dropped(why) => {
            c.reject(reject_of(why));
            return;
        }
    };
    if let Some(k) = asked {
        c.request(proto, fam, k);
    }
    if replied {
        c.response(proto, fam, answered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_count_as_the_metrics_name_them() {
        let c = Counters::default();
        let v4 = Family::V4;
        outcome(&c, Proto::Udp, v4, &Outcome::Connected, true);
        outcome(&c, Proto::Udp, v4, &Outcome::Scraped, false);
        let refused = Outcome::Refused(Some(Asked::Announce), Refusal::MissingKey);
        outcome(&c, Proto::Udp, v4, &refused, true);
        let unanswerable = Outcome::Refused(None, Refusal::UnknownAction);
        outcome(&c, Proto::Udp, v4, &unanswerable, true);
        outcome(
            &c,
            Proto::Udp,
            v4,
            &Outcome::Dropped(Refusal::BadConnectionId),
            false,
        );
        assert_eq!(c.requests(Proto::Udp, v4, Kind::Connect), 1);
        assert_eq!(c.responses(Proto::Udp, v4, Kind::Connect), 1);
        assert_eq!(c.requests(Proto::Udp, v4, Kind::Scrape), 1);
        assert_eq!(c.responses(Proto::Udp, v4, Kind::Scrape), 0, "not sent");
        assert_eq!(c.requests(Proto::Udp, v4, Kind::Announce), 1);
        assert_eq!(c.responses(Proto::Udp, v4, Kind::Error), 2);
        assert_eq!(c.rejects(Reject::MissingKey), 1);
        assert_eq!(c.rejects(Reject::UnknownAction), 1);
        assert_eq!(c.rejects(Reject::BadConnectionId), 1);
        assert_eq!(family("::ffff:10.0.0.1".parse().unwrap()), Family::V4);
    }
}
