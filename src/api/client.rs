//! `shoal api …`: the management API from the command line, so an operator
//! never hand-writes a curl line.
//!
//! One request per command over ureq (plain HTTP or HTTPS, no proxy, a
//! bounded time and reply size), the token from `--api-token` or
//! `SHOAL_API_TOKEN`. Output is a few human lines by default, or the API's
//! JSON as is with `--json`. An error reply (4xx/5xx) is an `Err` carrying
//! the status and the API's own message.

use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

/// One request at most this long, connection included.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest reply read (a full access-list page is ~45 KiB).
const MAX_REPLY: u64 = 16 << 20;

/// What to ask the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Stats,
    Torrents { limit: u32, offset: u64 },
    Torrent { info_hash: [u8; 20] },
    Allow { info_hash: [u8; 20] },
    Disallow { info_hash: [u8; 20] },
    Keys,
    AddKey { valid_for: Option<u64> },
    RemoveKey { key: String },
}

fn hex(h: &[u8; 20]) -> String {
    h.iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Request {
    /// Method, path under `/api/v1/`, and body.
    fn route(&self) -> (&'static str, String, Option<String>) {
        match self {
            Request::Stats => ("GET", "stats".into(), None),
            Request::Torrents { limit, offset } => (
                "GET",
                format!("torrents?limit={limit}&offset={offset}"),
                None,
            ),
            Request::Torrent { info_hash } => ("GET", format!("torrents/{}", hex(info_hash)), None),
            Request::Allow { info_hash } => {
                ("PUT", format!("access-list/{}", hex(info_hash)), None)
            }
            Request::Disallow { info_hash } => {
                ("DELETE", format!("access-list/{}", hex(info_hash)), None)
            }
            Request::Keys => ("GET", "keys".into(), None),
            Request::AddKey { valid_for } => (
                "POST",
                "keys".into(),
                Some(match valid_for {
                    Some(s) => format!("{{\"valid_for\": {s}}}"),
                    None => "{}".into(),
                }),
            ),
            Request::RemoveKey { key } => ("DELETE", format!("keys/{key}"), None),
        }
    }
}

/// Send `req` to the API at `base` (`http://127.0.0.1:6970`); the reply as
/// text (`json`: the API's JSON, one line).
pub fn run(base: &str, token: &str, req: &Request, json: bool) -> Result<String, String> {
    let base = base.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!(
            "--api-url {base:?} must start with http:// or https://"
        ));
    }
    let (method, path, body) = req.route();
    let url = format!("{base}/api/v1/{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(TIMEOUT))
        .user_agent(format!("shoal/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let auth = format!("Bearer {token}");
    let sent = match (method, body) {
        ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
        ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
        ("PUT", _) => agent.put(&url).header("Authorization", &auth).send_empty(),
        (_, body) => agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body.unwrap_or_default()),
    };
    let mut reply = sent.map_err(|e| format!("{base}: {e}"))?;
    let status = reply.status().as_u16();
    let text = reply
        .body_mut()
        .with_config()
        .limit(MAX_REPLY)
        .read_to_string()
        .map_err(|e| format!("{base}: reading the reply: {e}"))?;
    let value: Value = serde_json::from_str(&text).map_err(|_| {
        format!("{base}: HTTP {status}, not a JSON reply (is this shoal's --api address?)")
    })?;
    if status >= 400 {
        let msg = value["error"].as_str().unwrap_or("no message");
        return Err(format!("HTTP {status}: {msg}"));
    }
    if json {
        return Ok(format!("{value}\n"));
    }
    Ok(human(req, &value))
}

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The announce interval the workers hand out now, and its range.
fn interval_line(i: &Value) -> String {
    let workers: Vec<u64> = i["workers"]
        .as_array()
        .map(|w| w.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let now = match (workers.iter().min(), workers.iter().max()) {
        (Some(lo), Some(hi)) if lo < hi => format!("{lo}-{hi} s"),
        (_, Some(hi)) => format!("{hi} s"),
        _ => "-".into(),
    };
    let base = num(&i["base_secs"]);
    let max = num(&i["max_secs"]);
    let range = if base == max {
        "fixed".to_string()
    } else {
        format!("--interval {base} s, up to {max} s under load")
    };
    format!("{now} ±{} % ({range})", num(&i["jitter_percent"]))
}

/// The reply in a few lines for a person.
pub fn human(req: &Request, v: &Value) -> String {
    let mut o = String::new();
    match req {
        Request::Stats => {
            let p = &v["peers"];
            let t = &v["totals"];
            let _ = writeln!(o, "torrents   {}", num(&v["torrents"]));
            let _ = writeln!(
                o,
                "peers      {} ({} seeders, {} leechers; IPv4 {}+{}, IPv6 {}+{})",
                num(&p["total"]),
                num(&p["seeders"]),
                num(&p["leechers"]),
                num(&p["ipv4"]["seeders"]),
                num(&p["ipv4"]["leechers"]),
                num(&p["ipv6"]["seeders"]),
                num(&p["ipv6"]["leechers"]),
            );
            for (name, key) in [("requests", "requests_total"), ("replies", "replies_total")] {
                let _ = writeln!(
                    o,
                    "{name:<10} {} ({}/s over 10 s, {}/s over 60 s)",
                    num(&t[key]),
                    num(&v["rates"]["last_10s"][key]),
                    num(&v["rates"]["last_60s"][key]),
                );
            }
            let mut reasons: Vec<(String, u64)> = v["rejects"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                        .filter(|(_, n)| *n > 0)
                        .collect()
                })
                .unwrap_or_default();
            reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let list: Vec<String> = reasons.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(
                o,
                "rejects    {}{}",
                num(&t["rejects_total"]),
                if list.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", list.join(", "))
                }
            );
            let list = &v["access"]["list"];
            let access = if list.is_null() {
                "off".to_string()
            } else {
                format!(
                    "{} ({})",
                    num(&list["entries"]),
                    list["mode"].as_str().unwrap_or("?")
                )
            };
            let _ = writeln!(o, "access     {access}");
            let keys = &v["access"]["keys"];
            let keys = if keys.is_null() {
                "off".into()
            } else {
                num(&keys["entries"])
            };
            let _ = writeln!(o, "keys       {keys}");
            let _ = writeln!(o, "interval   {}", interval_line(&v["interval"]));
            let mem = v["resident_memory_bytes"]
                .as_u64()
                .map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
            let _ = writeln!(o, "memory     {mem}");
            let _ = writeln!(
                o,
                "uptime     {} s, {} workers, shoal {}",
                num(&v["uptime_secs"]),
                num(&v["workers"]),
                v["version"].as_str().unwrap_or("?")
            );
        }
        Request::Torrents { .. } => {
            let _ = writeln!(
                o,
                "{:<40}  {:>8}  {:>8}  {:>9}",
                "INFO HASH", "SEEDERS", "LEECHERS", "COMPLETED"
            );
            let list = v["torrents"].as_array().cloned().unwrap_or_default();
            for t in &list {
                let _ = writeln!(
                    o,
                    "{:<40}  {:>8}  {:>8}  {:>9}",
                    t["info_hash"].as_str().unwrap_or("?"),
                    num(&t["seeders"]),
                    num(&t["leechers"]),
                    num(&t["completed"])
                );
            }
            let _ = writeln!(
                o,
                "{} of {} torrents (from {})",
                list.len(),
                num(&v["total"]),
                num(&v["offset"])
            );
        }
        Request::Torrent { .. } => {
            let _ = writeln!(
                o,
                "{}: {} seeders, {} leechers, {} completed",
                v["info_hash"].as_str().unwrap_or("?"),
                num(&v["seeders"]),
                num(&v["leechers"]),
                num(&v["completed"])
            );
            let peers = v["peer_list"].as_array().cloned().unwrap_or_default();
            if !peers.is_empty() {
                let _ = writeln!(
                    o,
                    "{:<40} {:>5}  {:<7} {:>8}  PROTOCOL",
                    "ADDRESS", "PORT", "ROLE", "IDLE"
                );
            }
            for p in &peers {
                let role = if p["seeder"].as_bool().unwrap_or(false) {
                    "seeder"
                } else {
                    "leecher"
                };
                let _ = writeln!(
                    o,
                    "{:<40} {:>5}  {:<7} {:>7}s  {}",
                    p["ip"].as_str().unwrap_or("?"),
                    num(&p["port"]),
                    role,
                    num(&p["last_announce_secs_ago"]),
                    p["protocol"].as_str().unwrap_or("?")
                );
            }
        }
        Request::Allow { .. } | Request::Disallow { .. } => {
            let listed = v["listed"].as_bool().unwrap_or(false);
            let changed = v["changed"].as_bool().unwrap_or(false);
            let _ = writeln!(
                o,
                "{} {}{}; the list has {} entries",
                if listed { "listed" } else { "unlisted" },
                v["info_hash"].as_str().unwrap_or("?"),
                if changed { "" } else { " (already)" },
                num(&v["entries"])
            );
        }
        Request::Keys => {
            for k in v["keys"].as_array().cloned().unwrap_or_default() {
                let expires = match k["expires"].as_u64() {
                    None => "never expires".to_string(),
                    Some(e) if k["expired"].as_bool().unwrap_or(false) => format!("expired at {e}"),
                    Some(e) => format!("expires at {e}"),
                };
                let _ = writeln!(o, "{}  {expires}", k["key"].as_str().unwrap_or("?"));
            }
            let _ = writeln!(o, "{} keys", num(&v["entries"]));
        }
        Request::AddKey { .. } => {
            let _ = write!(o, "{}", v["key"].as_str().unwrap_or("?"));
            match v["expires"].as_u64() {
                Some(e) => {
                    let _ = writeln!(o, "  (expires at {e}, Unix seconds)");
                }
                None => o.push_str("  (never expires)\n"),
            }
        }
        Request::RemoveKey { .. } => {
            let _ = writeln!(o, "removed; {} keys left", num(&v["entries"]));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routes() {
        assert_eq!(
            Request::Torrents {
                limit: 5,
                offset: 2
            }
            .route(),
            ("GET", "torrents?limit=5&offset=2".into(), None)
        );
        assert_eq!(
            Request::Allow {
                info_hash: [0xab; 20]
            }
            .route()
            .1,
            format!("access-list/{}", "ab".repeat(20))
        );
        assert_eq!(
            Request::AddKey {
                valid_for: Some(60)
            }
            .route()
            .2
            .as_deref(),
            Some("{\"valid_for\": 60}")
        );
        assert_eq!(
            Request::AddKey { valid_for: None }.route().2.as_deref(),
            Some("{}")
        );
    }

    #[test]
    fn interval_lines() {
        let i = json!({"secs": 2400, "workers": [1800, 2400], "base_secs": 1800, "max_secs": 7200, "jitter_percent": 10});
        assert_eq!(
            interval_line(&i),
            "1800-2400 s ±10 % (--interval 1800 s, up to 7200 s under load)"
        );
        let i = json!({"secs": 900, "workers": [900], "base_secs": 900, "max_secs": 900, "jitter_percent": 0});
        assert_eq!(interval_line(&i), "900 s ±0 % (fixed)");
    }

    #[test]
    fn human_lines() {
        let v =
            json!({"info_hash": "ab".repeat(20), "listed": true, "changed": false, "entries": 3});
        assert_eq!(
            human(
                &Request::Allow {
                    info_hash: [0xab; 20]
                },
                &v
            ),
            format!(
                "listed {} (already); the list has 3 entries\n",
                "ab".repeat(20)
            )
        );
        let v = json!({"key": "k".repeat(32), "expires": null, "entries": 1});
        assert_eq!(
            human(&Request::AddKey { valid_for: None }, &v),
            format!("{}  (never expires)\n", "k".repeat(32))
        );
    }

    #[test]
    fn a_url_must_be_http() {
        let e = run("127.0.0.1:6970", "t", &Request::Stats, false).unwrap_err();
        assert!(e.contains("must start with http://"), "{e}");
    }
}
