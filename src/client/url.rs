//! Tracker URLs: `udp://host:port[/path?query]` and
//! `http[s]://host[:port]/path[?query]`.
//!
//! Owns parsing, display, the BEP 48 scrape-URL convention and bounded host
//! resolution (for UDP; ureq resolves HTTP hosts under the same timeout). The parser is deliberately narrow: no user info, no unbracketed
//! IPv6, no whitespace or control bytes (which would break an HTTP request line).

use super::ClientError;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

/// The protocols the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// BEP 15 over UDP.
    Udp,
    /// BEP 3 over plain HTTP/1.1.
    Http,
    /// BEP 3 over HTTP/1.1 in TLS.
    Https,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Udp => "udp",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port of a URL that names none (UDP has no default).
    fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Udp => None,
            Scheme::Http => Some(80),
            Scheme::Https => Some(443),
        }
    }
}

/// A parsed tracker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerUrl {
    scheme: Scheme,
    /// Host name or IP literal, without IPv6 brackets.
    host: String,
    port: u16,
    /// Path and query as written (`/announce?passkey=x`); empty when the URL has none.
    path_and_query: String,
}

impl TrackerUrl {
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query as written, e.g. `/announce?passkey=x`; empty if none.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// The HTTP request target: the path and query, `/` when there is none.
    pub fn request_target(&self) -> &str {
        if self.path_and_query.is_empty() {
            "/"
        } else {
            &self.path_and_query
        }
    }

    /// The `Host` header value: the host (bracketed if IPv6) and the port
    /// unless it is the scheme's default (80, 443).
    pub fn host_header(&self) -> String {
        let host = self.bracketed_host();
        if self.scheme.default_port() == Some(self.port) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// The scrape URL of an HTTP(S) URL, by the BEP 48 convention. A scrape
    /// URL (last path segment starting with `scrape`) is its own; in an
    /// announce URL the last path segment's leading `announce` becomes
    /// `scrape` (`/x/announce.php?k=1` → `/x/scrape.php?k=1`, and a private
    /// tracker's passkey-first `/KEY/announce` → `/KEY/scrape`). Beyond BEP
    /// 48, a key after the route, `/announce/KEY` (shoal's and torrust's
    /// other private form), becomes `/scrape/KEY`, which both answer. A UDP
    /// URL is its own scrape URL (BEP 15 scrapes over the same connection).
    pub fn scrape_url(&self) -> Result<TrackerUrl, ClientError> {
        if self.scheme == Scheme::Udp {
            return Ok(self.clone());
        }
        let (path, query) = match self.path_and_query.find('?') {
            Some(i) => self.path_and_query.split_at(i),
            None => (self.path_and_query.as_str(), ""),
        };
        let slash = path.rfind('/').map_or(0, |i| i + 1);
        let (dir, last) = path.split_at(slash);
        if last.starts_with("scrape") {
            return Ok(self.clone());
        }
        let Some(rest) = last.strip_prefix("announce") else {
            if let Some(parent) = dir.strip_suffix("/announce/") {
                if !last.is_empty() {
                    return Ok(TrackerUrl {
                        path_and_query: format!("{parent}/scrape/{last}{query}"),
                        ..self.clone()
                    });
                }
            }
            return Err(ClientError::Unsupported("cannot derive a scrape URL: the last path segment starts with neither \"announce\" nor \"scrape\" (BEP 48), and the one before it is not \"announce\"".into()));
        };
        Ok(TrackerUrl {
            path_and_query: format!("{dir}scrape{rest}{query}"),
            ..self.clone()
        })
    }

    /// The tracker's socket address. An IP literal needs no lookup; a name is
    /// resolved on a helper thread so the lookup is bounded by `timeout` (the
    /// system resolver itself has no deadline). The first address returned is used.
    pub fn resolve(&self, timeout: Duration) -> Result<SocketAddr, ClientError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let (tx, rx) = mpsc::channel();
        let target = (self.host.clone(), self.port);
        let spawned = std::thread::Builder::new()
            .name("shoal-resolve".into())
            .spawn(move || {
                // The receiver may be gone after a timeout; nothing to do then.
                let _ = tx.send(target.to_socket_addrs().map(|mut it| it.next()));
            });
        if let Err(e) = spawned {
            return Err(ClientError::Io(e));
        }
        let host = self.host.clone();
        match rx.recv_timeout(timeout.max(Duration::from_millis(1))) {
            Ok(Ok(Some(addr))) => Ok(addr),
            Ok(Ok(None)) => Err(ClientError::Resolve {
                host,
                reason: "no addresses".into(),
            }),
            Ok(Err(e)) => Err(ClientError::Resolve {
                host,
                reason: e.to_string(),
            }),
            Err(_) => Err(ClientError::Resolve {
                host,
                reason: format!("no answer within {}", super::secs(timeout)),
            }),
        }
    }
}

impl fmt::Display for TrackerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.host_header(),
            self.path_and_query
        )
    }
}

fn bad(url: &str, why: &str) -> ClientError {
    ClientError::Url(format!("{url:?}: {why}"))
}

impl FromStr for TrackerUrl {
    type Err = ClientError;

    fn from_str(url: &str) -> Result<TrackerUrl, ClientError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(
                url,
                "expected udp://host:port or http[s]://host/announce",
            ));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "udp" => Scheme::Udp,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(bad(url, "the scheme must be udp, http or https")),
        };
        if url
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad(url, "whitespace or control characters"));
        }
        // A fragment never reaches the tracker.
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.contains('@') {
            return Err(bad(url, "user info (user@host) is not supported"));
        }
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let Some((host, after)) = after.split_once(']') else {
                return Err(bad(url, "unclosed [ in the host"));
            };
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad(url, "not an IPv6 address in brackets"));
            }
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(bad(url, "unexpected text after the IPv6 address")),
            }
        } else if authority.matches(':').count() > 1 {
            return Err(bad(url, "an IPv6 host must be in brackets"));
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad(url, "no host"));
        }
        let port = match (port, scheme.default_port()) {
            (Some(p), _) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad(url, "the port must be 1..=65535")),
            },
            (None, Some(default)) => default,
            (None, None) => return Err(bad(url, "a udp:// URL needs a port")),
        };
        Ok(TrackerUrl {
            scheme,
            host: host.to_string(),
            port,
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> TrackerUrl {
        s.parse().unwrap()
    }

    #[test]
    fn test_parse_udp() {
        let u = url("udp://tracker.example.org:6969");
        assert_eq!(u.scheme(), Scheme::Udp);
        assert_eq!(
            (u.host(), u.port(), u.path_and_query()),
            ("tracker.example.org", 6969, "")
        );
        assert_eq!(u.to_string(), "udp://tracker.example.org:6969");
        let u = url("UDP://[::1]:80/announce?passkey=a%20b#frag");
        assert_eq!((u.host(), u.port()), ("::1", 80));
        assert_eq!(u.path_and_query(), "/announce?passkey=a%20b");
        assert_eq!(u.to_string(), "udp://[::1]:80/announce?passkey=a%20b");
        let u = url("udp://1.2.3.4:1?x=1");
        assert_eq!(u.path_and_query(), "/?x=1");
    }

    #[test]
    fn test_parse_http() {
        let u = url("http://example.org/announce");
        assert_eq!((u.scheme(), u.port()), (Scheme::Http, 80));
        assert_eq!(u.host_header(), "example.org");
        assert_eq!(u.to_string(), "http://example.org/announce");
        let u = url("http://[2001:db8::1]:8080/a/announce.php?k=v");
        assert_eq!(u.host_header(), "[2001:db8::1]:8080");
        assert_eq!(u.request_target(), "/a/announce.php?k=v");
        assert_eq!(url("http://h:81").request_target(), "/");
    }

    #[test]
    fn test_parse_https() {
        let u = url("HTTPS://example.org/announce");
        assert_eq!((u.scheme(), u.port()), (Scheme::Https, 443));
        assert_eq!(u.host_header(), "example.org");
        assert_eq!(u.to_string(), "https://example.org/announce");
        let u = url("https://127.0.0.1:8443/announce");
        assert_eq!(u.host_header(), "127.0.0.1:8443");
        assert_eq!(u.to_string(), "https://127.0.0.1:8443/announce");
        // Port 80 is no default for https, nor 443 for http.
        assert_eq!(url("https://h:80/a").host_header(), "h:80");
        assert_eq!(url("http://h:443/a").host_header(), "h:443");
    }

    #[test]
    fn test_parse_errors() {
        for (bad, why) in [
            ("example.org:6969", "expected udp://"),
            ("ftp://h:1", "udp, http or https"),
            ("udp://h", "needs a port"),
            ("udp://h:0", "port"),
            ("udp://h:70000", "port"),
            ("udp://h:x", "port"),
            ("udp://:6969", "no host"),
            ("udp://::1:6969", "brackets"),
            ("udp://[::1:6969", "unclosed"),
            ("udp://[nothex]:6969", "IPv6"),
            ("udp://[::1]x:6969", "after the IPv6"),
            ("http://u:p@h/announce", "user info"),
            ("http://h/announce x", "whitespace"),
            ("http://h/announce\r\nX: y", "control"),
        ] {
            match bad.parse::<TrackerUrl>() {
                Err(ClientError::Url(m)) => assert!(m.contains(why), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn test_scrape_url() {
        let s = |u: &str| url(u).scrape_url().map(|u| u.to_string());
        assert_eq!(s("http://h/announce").unwrap(), "http://h/scrape");
        assert_eq!(
            s("http://h:81/x/announce.php?k=1").unwrap(),
            "http://h:81/x/scrape.php?k=1"
        );
        assert_eq!(
            s("http://h/announce?info=announce").unwrap(),
            "http://h/scrape?info=announce"
        );
        assert_eq!(
            s("https://h/announce?passkey=k").unwrap(),
            "https://h/scrape?passkey=k"
        );
        // A scrape URL is taken as it is (BEP 48 names both forms).
        assert_eq!(s("http://h/scrape").unwrap(), "http://h/scrape");
        assert_eq!(
            s("https://h:8443/x/scrape.php?k=1").unwrap(),
            "https://h:8443/x/scrape.php?k=1"
        );
        // Private trackers: the key before the route (passkey-first) or after it.
        const K: &str = "abcdefghijklmnopqrstuvwxyzABCDEF";
        assert_eq!(
            s(&format!("http://h:7070/{K}/announce")).unwrap(),
            format!("http://h:7070/{K}/scrape")
        );
        assert_eq!(
            s(&format!("https://h/x/{K}/announce?a=1")).unwrap(),
            format!("https://h/x/{K}/scrape?a=1")
        );
        assert_eq!(
            s(&format!("http://h/announce/{K}")).unwrap(),
            format!("http://h/scrape/{K}")
        );
        assert_eq!(
            s(&format!("http://h/t/announce/{K}?a=1")).unwrap(),
            format!("http://h/t/scrape/{K}?a=1")
        );
        assert!(s("http://h/a").is_err());
        assert!(s("http://h/announce/").is_err());
        assert!(s("http://h/announcer/x").is_err());
        assert!(s("http://h/announce/x/y").is_err());
        assert!(s("http://h/x/scrape/y").is_err());
        assert!(s("http://h").is_err());
        assert_eq!(s("udp://h:1/announce").unwrap(), "udp://h:1/announce");
    }

    #[test]
    fn test_resolve() {
        let addr = url("udp://127.0.0.1:6969")
            .resolve(Duration::from_secs(1))
            .unwrap();
        assert_eq!(addr, "127.0.0.1:6969".parse().unwrap());
        let addr = url("udp://[::1]:6969")
            .resolve(Duration::from_secs(1))
            .unwrap();
        assert_eq!(addr, "[::1]:6969".parse().unwrap());
        // `.invalid` never resolves (RFC 2606); whatever the resolver does, it is bounded.
        match url("udp://no-such-host.invalid:6969").resolve(Duration::from_secs(5)) {
            Err(ClientError::Resolve { host, .. }) => assert_eq!(host, "no-such-host.invalid"),
            other => panic!("{other:?}"),
        }
    }
}
