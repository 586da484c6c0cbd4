//! `/metrics` against the Prometheus text exposition format 0.0.4, strictly:
//! a scraper (Prometheus, VictoriaMetrics, the Datadog agent) that meets a
//! malformed line drops the whole scrape, so a format slip is an outage of the
//! operator's dashboards, not a cosmetic bug. The checker is written here from
//! the format's rules (names, labels and escaping, one HELP and one TYPE per
//! family before its samples, families not split, counters named `_total`, no
//! duplicate series, float values, final newline), tested on bad inputs so it
//! can fail, then run on a live server that has seen UDP and HTTP traffic.
//! `tests/promtool.sh` runs Prometheus's own linter on the same endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{get, pct, start, Client};
use shoal::server::Config;
use shoal::wire::udp::Event;
use std::collections::{HashMap, HashSet};

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, and `__` is reserved for Prometheus itself.
fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !s.starts_with("__")
}

/// A sample value: a Go `ParseFloat` float, or NaN / +Inf / -Inf.
fn is_value(s: &str) -> bool {
    matches!(s, "NaN" | "+Inf" | "-Inf" | "Inf")
        || (!s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
            && s.parse::<f64>().is_ok_and(f64::is_finite))
}

/// A sample's labels, sorted by name: (name, unescaped value).
type Labels = Vec<(String, String)>;

/// Parse `{name="value",...}` (the part after the metric name) into sorted
/// (name, unescaped value) pairs and the rest of the line.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    let mut labels = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            rest = r;
            break;
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut chars = rest[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {name} value is not quoted"));
        }
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {name}: unterminated value")),
                Some((i, '"')) => break eq + 1 + i + 1,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("label {name}: bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err(format!("label {name}: raw newline")),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.iter().any(|(n, _)| *n == name) {
            return Err(format!("label {name} given twice"));
        }
        labels.push((name.to_string(), value));
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
    labels.sort();
    Ok((labels, rest))
}

/// Every violation of the 0.0.4 text format in `body`, one line each
/// (empty: the body is valid).
fn check_exposition(body: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if !body.ends_with('\n') {
        errs.push("body does not end with a newline".into());
    }
    // family name → (help seen, type)
    let mut help: HashSet<String> = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series: HashSet<(String, Labels)> = HashSet::new();
    let mut sampled: HashSet<String> = HashSet::new();
    // Leaving one family for another closes it: a later sample of it is a split.
    let mut enter =
        |family: &str, current: &mut Option<String>, errs: &mut Vec<String>, n: usize| {
            if current.as_deref() != Some(family) {
                if let Some(prev) = current.take() {
                    finished.insert(prev);
                }
                if finished.contains(family) {
                    errs.push(format!("line {n}: family {family} is split"));
                }
                *current = Some(family.to_string());
            }
        };
    for (i, line) in body.lines().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            let (kw, name, rest) = (words.next(), words.next(), words.next());
            match (kw, name) {
                (Some("HELP"), Some(name)) => {
                    if !is_metric_name(name) {
                        errs.push(format!("line {n}: bad name in HELP: {name:?}"));
                    }
                    enter(name, &mut current, &mut errs, n);
                    if !help.insert(name.to_string()) {
                        errs.push(format!("line {n}: second HELP for {name}"));
                    }
                    if sampled.contains(name) {
                        errs.push(format!("line {n}: HELP for {name} after its samples"));
                    }
                    let doc = rest.unwrap_or("");
                    let mut it = doc.chars();
                    while let Some(c) = it.next() {
                        if c == '\\' && !matches!(it.next(), Some('\\' | 'n')) {
                            errs.push(format!("line {n}: bad escape in HELP text"));
                        }
                    }
                }
                (Some("TYPE"), Some(name)) => {
                    if !is_metric_name(name) {
                        errs.push(format!("line {n}: bad name in TYPE: {name:?}"));
                    }
                    enter(name, &mut current, &mut errs, n);
                    let kind = rest.unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        errs.push(format!("line {n}: unknown type {kind:?}"));
                    }
                    if kind == "counter" && !name.ends_with("_total") {
                        errs.push(format!("line {n}: counter {name} does not end in _total"));
                    }
                    if types.insert(name.to_string(), kind.to_string()).is_some() {
                        errs.push(format!("line {n}: second TYPE for {name}"));
                    }
                    if sampled.contains(name) {
                        errs.push(format!("line {n}: TYPE for {name} after its samples"));
                    }
                }
                (Some("HELP" | "TYPE"), None) => errs.push(format!("line {n}: {line:?}")),
                _ => {} // any other comment is allowed
            }
            continue;
        }
        // A sample: name, optional {labels}, one space, value, optional timestamp.
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !is_metric_name(name) {
            errs.push(format!("line {n}: bad metric name {name:?}"));
            continue;
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            match parse_labels(&line[name_end..]) {
                Ok(x) => x,
                Err(e) => {
                    errs.push(format!("line {n}: {e}: {line:?}"));
                    continue;
                }
            }
        } else {
            (Vec::new(), &line[name_end..])
        };
        let fields: Vec<&str> = match rest.strip_prefix(' ') {
            Some(r) => r.split(' ').collect(),
            None => {
                errs.push(format!(
                    "line {n}: no single space before the value: {line:?}"
                ));
                continue;
            }
        };
        match fields.as_slice() {
            [v] if is_value(v) => {}
            [v, ts] if is_value(v) && ts.parse::<i64>().is_ok() => {}
            _ => errs.push(format!("line {n}: bad value/timestamp {rest:?}")),
        }
        // The family: the name itself, or for histograms and summaries the
        // name without its _bucket/_sum/_count suffix.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|base| {
                matches!(
                    types.get(*base).map(String::as_str),
                    Some("histogram" | "summary")
                )
            })
            .unwrap_or(name)
            .to_string();
        if !help.contains(&family) {
            errs.push(format!(
                "line {n}: sample of {family} before (or without) its HELP"
            ));
        }
        if !types.contains_key(&family) {
            errs.push(format!(
                "line {n}: sample of {family} before (or without) its TYPE"
            ));
        }
        enter(&family, &mut current, &mut errs, n);
        sampled.insert(family);
        if !series.insert((name.to_string(), labels)) {
            errs.push(format!("line {n}: duplicate series {line:?}"));
        }
    }
    for family in help.symmetric_difference(&types.keys().cloned().collect()) {
        errs.push(format!("family {family} has HELP or TYPE but not both"));
    }
    errs
}

#[test]
fn checker_accepts_valid_exposition() {
    let good = "# HELP a_total Things, with \\\\ and \\n escaped.\n\
        # TYPE a_total counter\n\
        a_total{k=\"v\",q=\"say \\\"hi\\\"\\n\\\\\"} 1\n\
        a_total{k=\"w\"} 2 1700000000000\n\
        # a free comment\n\
        # HELP g A gauge.\n\
        # TYPE g gauge\n\
        g NaN\n\
        # HELP h A histogram.\n\
        # TYPE h histogram\n\
        h_bucket{le=\"1\"} 1\n\
        h_bucket{le=\"+Inf\"} 2\n\
        h_sum 3.5e0\n\
        h_count 2\n";
    assert_eq!(check_exposition(good), Vec::<String>::new());
}

#[test]
fn checker_rejects_each_kind_of_violation() {
    let head = "# HELP x_total X.\n# TYPE x_total counter\n";
    let cases: &[(&str, String)] = &[
        ("no final newline", format!("{head}x_total 1")),
        ("bad metric name", format!("{head}x-total 1\n")),
        ("bad label name", format!("{head}x_total{{1k=\"v\"}} 1\n")),
        ("reserved label", format!("{head}x_total{{__k=\"v\"}} 1\n")),
        ("unquoted label", format!("{head}x_total{{k=v}} 1\n")),
        ("bad escape", format!("{head}x_total{{k=\"a\\tb\"}} 1\n")),
        ("unterminated", format!("{head}x_total{{k=\"v}} 1\n")),
        ("repeated label", format!("{head}x_total{{k=\"a\",k=\"b\"}} 1\n")),
        ("bad value", format!("{head}x_total one\n")),
        ("two spaces", format!("{head}x_total  1\n")),
        ("bad timestamp", format!("{head}x_total 1 now\n")),
        (
            "duplicate",
            format!("{head}x_total{{k=\"a\"}} 1\nx_total{{k=\"a\"}} 2\n"),
        ),
        ("no HELP/TYPE", "y 1\n".into()),
        ("TYPE only", "# TYPE y gauge\ny 1\n".into()),
        ("HELP after samples", "# TYPE y gauge\ny 1\n# HELP y Y.\n".into()),
        ("second TYPE", format!("{head}# TYPE x_total counter\nx_total 1\n")),
        ("counter without _total", "# HELP c C.\n# TYPE c counter\nc 1\n".into()),
        ("unknown type", "# HELP c C.\n# TYPE c meter\nc 1\n".into()),
        (
            "split family",
            format!("{head}x_total{{k=\"a\"}} 1\n# HELP g G.\n# TYPE g gauge\ng 1\nx_total{{k=\"b\"}} 1\n"),
        ),
    ];
    for (what, body) in cases {
        assert!(
            !check_exposition(body).is_empty(),
            "checker accepted a body with {what}:\n{body}"
        );
    }
}

#[test]
fn live_metrics_are_valid_exposition_format() {
    let server = start({
        let mut c = Config::for_udp("127.0.0.1:0".parse().unwrap());
        c.listen.http = vec!["127.0.0.1:0".parse().unwrap()];
        c.listen.metrics = vec!["127.0.0.1:0".parse().unwrap()];
        c
    });
    let http = server.http_addrs()[0];
    let operator = server.metrics_addrs()[0];
    // Traffic of every kind, so labelled series carry non-zero values.
    let mut c = Client::new("127.0.0.1:0", server.udp_addrs()[0]);
    c.connect();
    c.announce([1; 20], Event::Started, 0, 10);
    c.announce([2; 20], Event::None, 100, 10);
    c.scrape(&[[1; 20], [3; 20]]);
    c.sock.send_to(b"not a tracker request", c.server).unwrap();
    let announce = format!(
        "/announce?info_hash={}&peer_id={}&port=6881&uploaded=0&downloaded=0&left=5",
        pct(&[4; 20]),
        pct(b"-TR3000-mmmmmmmmmmmm")
    );
    assert_eq!(get(http, &announce).status, 200);
    let scrape = format!("/scrape?info_hash={}", pct(&[4; 20]));
    assert_eq!(get(http, &scrape).status, 200);
    // Malformed: whatever the reply, it is one HTTP/1.1 response.
    get(http, "/announce?info_hash=short");
    assert_eq!(get(http, "/nowhere").status, 404);

    assert_eq!(get(operator, "/health").status, 200);
    let metrics = get(operator, "/metrics");
    server.stop();
    assert_eq!(metrics.status, 200, "{}", metrics.head);
    let content_type = metrics
        .head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type").then(|| v.trim())
        })
        .expect("a Content-Type");
    assert_eq!(content_type, "text/plain; version=0.0.4");
    let body = metrics.text();
    let errs = check_exposition(&body);
    assert!(errs.is_empty(), "{}\n--- body ---\n{body}", errs.join("\n"));
    // The traffic above is in there (the checker did not pass an empty body).
    for needle in [
        "shoal_requests_total{protocol=\"udp\",family=\"ipv4\",kind=\"announce\"} 2",
        // The malformed announce counts as one too.
        "shoal_requests_total{protocol=\"http\",family=\"ipv4\",kind=\"announce\"} 2",
        "shoal_torrents 3",
        "shoal_requests_total{protocol=\"http\",family=\"ipv4\",kind=\"health\"} 1",
        "shoal_requests_total{protocol=\"http\",family=\"ipv4\",kind=\"metrics\"} 1",
        &format!(
            "shoal_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        ),
        "shoal_max_peers 20000000\n",
        // The worker's interval before jitter: --interval while calm.
        "shoal_announce_interval_seconds{worker=\"0\"} 1800\n",
        "\nshoal_worker_busy_seconds_total{worker=\"0\"} ",
        "\nshoal_udp_receive_drops_total ",
        "\nprocess_cpu_seconds_total ",
        "\nprocess_resident_memory_bytes ",
        "\nprocess_start_time_seconds ",
        "\nprocess_open_fds ",
    ] {
        assert!(body.contains(needle), "missing {needle} in\n{body}");
    }
}

/// The kernel's receive drops for shoal's sockets reach /metrics: a bound
/// server whose workers are not yet running queues datagrams in a minimal
/// receive buffer, and the kernel drops the rest of a burst.
#[cfg(target_os = "linux")]
#[test]
fn kernel_receive_drops_are_counted() {
    let config = Config {
        socket_buffer: 4096, // the kernel rounds up to its minimum
        ..Config::for_udp("127.0.0.1:0".parse().unwrap())
    };
    let server = shoal::server::Server::bind(config).unwrap();
    let drops = |server: &shoal::server::Server| -> u64 {
        let mut text = String::new();
        let totals = server.tracker().swarm().totals();
        server.registry().render_prometheus(&mut text, &totals, 0);
        text.lines()
            .find_map(|l| l.strip_prefix("shoal_udp_receive_drops_total "))
            .unwrap_or_else(|| panic!("no drops series in\n{text}"))
            .parse()
            .unwrap()
    };
    let before = drops(&server);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..500 {
        client
            .send_to(&[0u8; 512], server.addrs(shoal::net::Role::Udp)[0])
            .unwrap();
    }
    let after = drops(&server);
    assert!(
        after > before,
        "500 datagrams into a 4 KiB buffer: {before} -> {after} drops"
    );
}
