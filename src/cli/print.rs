//! `--print-config`: the effective configuration as environment lines.

use crate::access::Mode;
use crate::limit::Cidr;
use crate::server::Config;
use std::net::SocketAddr;

/// `redis://user:secret@host` as `redis://user:***@host`: `--print-config`
/// output ends up in tickets and chat, the password must not.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

/// The effective configuration as `SHOAL_X=value  # --x` lines, one per
/// server setting, that read back (as the environment of another `shoal`)
/// give the same configuration. A setting that is off is a commented line.
pub fn print_config(config: &Config, log: Option<&str>) -> String {
    let access = &config.access;
    fn list(addrs: &[SocketAddr]) -> String {
        addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
    let t = &config.tracker;
    let off = |v: &str| (!v.is_empty()).then(|| v.to_string());
    // The built-in UDP addresses stay implicit: written out, a host without
    // IPv6 would fail on [::] instead of skipping it.
    let udp = (!config.listen.defaults).then(|| list(&config.listen.udp));
    let mut lines: Vec<(&str, &str, Option<String>)> = vec![
        ("SHOAL_UDP", "--udp", udp.and_then(|u| off(&u))),
        (
            "SHOAL_NO_UDP",
            "--no-udp",
            Some(config.listen.udp.is_empty().to_string()),
        ),
        ("SHOAL_HTTP", "--http", off(&list(&config.listen.http))),
        (
            "SHOAL_METRICS",
            "--metrics",
            off(&list(&config.listen.metrics)),
        ),
        (
            "SHOAL_HTTP_METRICS",
            "--http-metrics",
            Some(config.http.metrics_on_tracker_port.to_string()),
        ),
        (
            "SHOAL_HTTP_MAX_CONNECTIONS",
            "--http-max-connections",
            Some(config.http.max_connections.to_string()),
        ),
        (
            "SHOAL_HTTP_IDLE_TIMEOUT",
            "--http-idle-timeout",
            Some(config.http.idle_timeout.as_secs().to_string()),
        ),
        (
            "SHOAL_HTTP_CLIENT_IP_HEADER",
            "--http-client-ip-header",
            config.http.client_ip_header.clone(),
        ),
        (
            "SHOAL_WORKERS",
            "--workers",
            Some(config.workers.to_string()),
        ),
        ("SHOAL_INTERVAL", "--interval", Some(t.interval.to_string())),
        (
            "SHOAL_PEER_TIMEOUT",
            "--peer-timeout",
            Some(t.peer_timeout.to_string()),
        ),
        (
            "SHOAL_DEFAULT_NUMWANT",
            "--default-numwant",
            Some(t.default_numwant.to_string()),
        ),
        (
            "SHOAL_MAX_NUMWANT",
            "--max-numwant",
            Some(t.max_numwant.to_string()),
        ),
        (
            "SHOAL_MAX_SCRAPE",
            "--max-scrape",
            Some(t.max_scrape.to_string()),
        ),
        (
            "SHOAL_CONNECTION_ID_LIFETIME",
            "--connection-id-lifetime",
            Some(t.connection_id_lifetime.to_string()),
        ),
        (
            "SHOAL_MAX_PEERS",
            "--max-peers",
            Some(t.max_peers.to_string()),
        ),
        (
            "SHOAL_MAX_MEMORY",
            "--max-memory",
            Some(t.max_memory.to_string()),
        ),
        (
            "SHOAL_MAX_TORRENT_SHARE",
            "--max-torrent-share",
            Some(t.max_torrent_share.to_string()),
        ),
        (
            "SHOAL_STATS_INTERVAL",
            "--stats-interval",
            Some(config.stats_interval.map_or(0, |d| d.as_secs()).to_string()),
        ),
        ("SHOAL_SHARDS", "--shards", Some(t.shards.to_string())),
        (
            "SHOAL_SOCKET_BUFFER",
            "--socket-buffer",
            Some(config.socket_buffer.to_string()),
        ),
        (
            "SHOAL_RENDEZVOUS",
            "--rendezvous",
            off(&list(&config.listen.rendezvous)),
        ),
    ];
    lines.push(("SHOAL_API", "--api", off(&list(&config.listen.api))));
    let r = &config.rendezvous;
    lines.extend([
        (
            "SHOAL_RENDEZVOUS_TIMEOUT",
            "--rendezvous-timeout",
            Some(r.timeout.to_string()),
        ),
        (
            "SHOAL_RENDEZVOUS_MAX",
            "--rendezvous-max",
            Some(r.max.to_string()),
        ),
        (
            "SHOAL_RENDEZVOUS_PUSH_RATE",
            "--rendezvous-push-rate",
            Some(r.push_rate.to_string()),
        ),
    ]);
    let cluster = config.cluster.as_ref();
    lines.extend([
        (
            "SHOAL_CLUSTER",
            "--cluster",
            cluster.map(|c| redact_url_password(&c.url)),
        ),
        (
            "SHOAL_CLUSTER_NAME",
            "--cluster-name",
            Some(cluster.map_or("shoal".into(), |c| c.name.clone())),
        ),
    ]);
    let l = &config.limits;
    lines.extend([
        (
            "SHOAL_HTTP_TRUSTED_PROXY",
            "--http-trusted-proxy",
            Some(
                l.trusted_proxies
                    .iter()
                    .map(Cidr::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ),
        (
            "SHOAL_HTTP_MAX_CONNECTIONS_PER_IP",
            "--http-max-connections-per-ip",
            Some(l.http_max_connections_per_ip.to_string()),
        ),
        (
            "SHOAL_RATE_LIMIT",
            "--rate-limit",
            Some(l.rate_limit.to_string()),
        ),
        (
            "SHOAL_RATE_BURST",
            "--rate-burst",
            l.rate_burst.map(|b| b.to_string()),
        ),
    ]);
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let state_file = config.state.as_ref().map(|s| s.path.clone());
    let state_interval = config
        .state
        .as_ref()
        .map_or(300, |s| s.interval.map_or(0, |d| d.as_secs()));
    lines.extend([
        ("SHOAL_STATE_FILE", "--state-file", path(&state_file)),
        (
            "SHOAL_STATE_INTERVAL",
            "--state-interval",
            Some(state_interval.to_string()),
        ),
    ]);
    let list = access.list.as_ref().map(|(p, _)| p.clone());
    let mode = match access.list.as_ref().map(|(_, m)| *m) {
        Some(Mode::Deny) => "deny",
        _ => "allow",
    };
    lines.extend([
        ("SHOAL_ACCESS_LIST", "--access-list", path(&list)),
        ("SHOAL_ACCESS_MODE", "--access-mode", Some(mode.to_string())),
        ("SHOAL_KEYS", "--keys", path(&access.keys)),
        (
            "SHOAL_PRIVATE_SCRAPE",
            "--private-scrape",
            Some(access.private_scrape.to_string()),
        ),
        ("SHOAL_LOG", "--log", log.map(str::to_string)),
    ]);
    let mut out = String::new();
    for (env, flag, value) in lines {
        match value {
            Some(v) => out.push_str(&format!("{env}={v}  # {flag}\n")),
            None => out.push_str(&format!("# {env}=  # {flag} (not set)\n")),
        }
    }
    // The token itself is a secret: never printed.
    out.push_str(match config.api.token {
        Some(_) => "# SHOAL_API_TOKEN=  # --api-token (set; not shown: give it again)\n",
        None => "# SHOAL_API_TOKEN=  # --api-token (not set)\n",
    });
    out
}
