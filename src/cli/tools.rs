//! The tools: `shoal announce`, `scrape`, `rendezvous`, `api` and `bench`.
//! What each prints and how it exits is a value ([`ToolRun`]) that `main`
//! writes out, so the text and `--json` forms of output and errors are
//! tested without a process.

use super::defs::{AnnounceArgs, ApiArgs, BenchArgs, RendezvousAction, RendezvousArgs, ScrapeArgs};
use super::UsageError;
use crate::client::{self, Event};
use crate::rendezvous::client::{ClientReply, RendezvousClient, RendezvousError};
use crate::rendezvous::message::{Announced, Reply};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// What a client tool prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRun {
    pub stdout: String,
    pub stderr: String,
    /// 0: done; 1: the tracker could not be reached or checked; 2: a usage error.
    pub code: u8,
}

impl ToolRun {
    fn ok(stdout: String) -> ToolRun {
        ToolRun {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }

    /// A failure, one line: `shoal: MESSAGE` on stderr, or with `json`
    /// `{"error":"MESSAGE"}` on stdout (where a script reads the reply).
    pub(super) fn error(message: &str, code: u8, json: bool) -> ToolRun {
        if json {
            // Cannot fail: a map of one string.
            let doc = serde_json::json!({ "error": message });
            ToolRun {
                stdout: format!("{doc}\n"),
                stderr: String::new(),
                code,
            }
        } else {
            ToolRun {
                stdout: String::new(),
                stderr: format!("shoal: {message}\n"),
                code,
            }
        }
    }

    /// Writes the output out; the exit status.
    pub fn finish(self) -> ExitCode {
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = std::io::stdout().lock().write_all(self.stdout.as_bytes());
        let _ = std::io::stderr().lock().write_all(self.stderr.as_bytes());
        ExitCode::from(self.code)
    }
}

/// `shoal announce`: the reply as text or JSON. With `--probe`, announce and
/// withdraw; the first reply, then the counts after the `stopped`.
pub fn run_announce(args: &AnnounceArgs) -> ToolRun {
    let json = args.client.json;
    let fail = |e: &dyn std::fmt::Display| ToolRun::error(&format!("{}: {e}", args.url), 1, json);
    let client = args.client.client();
    let params = args.params();
    if !args.probe {
        return match client.announce(&args.url, &params) {
            Ok(r) if json => ToolRun::ok(r.to_json() + "\n"),
            Ok(r) => ToolRun::ok(r.to_text()),
            Err(e) => fail(&e),
        };
    }
    if params.event == Event::Stopped {
        return ToolRun::error(
            "--probe sends the stopped announce itself: give --event started, completed or none",
            2,
            json,
        );
    }
    let probe = match client.probe(&args.url, &params) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let r = &probe.reply;
    match &probe.stopped {
        Ok(after) if json => {
            #[derive(serde::Serialize)]
            struct Counts {
                seeders: u32,
                leechers: u32,
            }
            #[derive(serde::Serialize)]
            struct ProbeJson<'a> {
                #[serde(flatten)]
                reply: &'a client::AnnounceResponse,
                after_stopped: Counts,
            }
            let doc = ProbeJson {
                reply: r,
                after_stopped: Counts {
                    seeders: after.seeders,
                    leechers: after.leechers,
                },
            };
            // Cannot fail: numbers, strings and addresses, no maps with other keys.
            ToolRun::ok(serde_json::to_string(&doc).unwrap_or_default() + "\n")
        }
        Ok(after) => ToolRun::ok(format!(
            "{}after stopped: {} seeders, {} leechers\n",
            r.to_text(),
            after.seeders,
            after.leechers
        )),
        Err(e) => fail(&format_args!(
            "announced ({} seeders, {} leechers, {} peers), but the stopped announce failed \
             (the peer stays until the tracker times it out): {e}",
            r.seeders,
            r.leechers,
            r.peers.len()
        )),
    }
}

/// `shoal scrape`: a table, or JSON.
pub fn run_scrape(args: &ScrapeArgs) -> ToolRun {
    let json = args.client.json;
    match args.client.client().scrape(&args.url, &args.info_hashes) {
        Ok(stats) if json => ToolRun::ok(client::scrape_to_json(&args.info_hashes, &stats) + "\n"),
        Ok(stats) => ToolRun::ok(client::scrape_to_text(&args.info_hashes, &stats)),
        Err(e) => ToolRun::error(&format!("{}: {e}", args.url), 1, json),
    }
}

/// `shoal rendezvous`: the action's reply as text or JSON. Every action
/// registers first: each run is a fresh UDP port, which the tracker has
/// never seen.
pub fn run_rendezvous(args: &RendezvousArgs) -> ToolRun {
    match rendezvous(args) {
        Ok(out) => ToolRun::ok(out),
        Err(message) => ToolRun::error(&message, 1, args.json),
    }
}

fn rendezvous(args: &RendezvousArgs) -> Result<String, String> {
    let tracker = resolve_rendezvous(&args.url)?;
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut c =
        RendezvousClient::new(tracker, timeout).map_err(|e| format!("{}: {e}", args.url))?;
    let err = |e: RendezvousError| format!("{}: {e}", args.url);
    let id = c.announce().map_err(err)?;
    let (reply, text): (ClientReply, String) = match args.action {
        RendezvousAction::Announce => (
            Reply::Announced(Announced { share_id: id }),
            format!("share id: {id}"),
        ),
        RendezvousAction::Alive => {
            c.alive().map_err(err)?;
            (Reply::Alived, format!("alived (share id {id})"))
        }
        RendezvousAction::Push => {
            let target = args.share_id.as_deref().unwrap_or_default();
            let peer = c.push(target).map_err(err)?;
            let text = format!("peer {} (share id {})", peer.peer_addr, peer.peer_share_id);
            (Reply::Pushed(peer), text)
        }
    };
    let mut out = if args.json {
        serde_json::to_string(&reply).map_err(|e| e.to_string())?
    } else {
        text
    };
    out.push('\n');
    Ok(out)
}

/// `udp://host:port`, `host:port` or `[v6]:port`, resolved (first address).
fn resolve_rendezvous(url: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let rest = match url.split_once("://") {
        Some(("udp", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "{url}: a rendezvous tracker is udp://host:port, not {scheme}://"
            ))
        }
        None => url,
    };
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    host_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: the host has no address"))
}

/// `shoal api`: the API's reply as text, or its JSON with `--json`.
pub fn run_api(args: &ApiArgs) -> ToolRun {
    let Some(token) = args.api_token.as_deref() else {
        return ToolRun::error(
            "no API token: set SHOAL_API_TOKEN (or give --api-token)",
            1,
            args.json,
        );
    };
    match crate::api::client::run(&args.api_url, token, &args.request(), args.json) {
        Ok(out) => ToolRun::ok(out),
        Err(message) => ToolRun::error(&message, 1, args.json),
    }
}

/// `shoal bench`: the report as text or JSON. Errors are plain lines on
/// stderr even with `--json` (the report is the JSON). A run without a
/// single reply still prints its report (what was sent and lost), and fails.
pub fn run_bench(args: &BenchArgs) -> ToolRun {
    if args.shed {
        return run_shed(args);
    }
    let config = match args.to_config() {
        Ok(c) => c,
        Err(e) => return ToolRun::error(e.message(), UsageError::EXIT_CODE, false),
    };
    let report = match crate::bench::run(&config) {
        Ok(r) => r,
        Err(message) => return ToolRun::error(&message, 1, false),
    };
    let stdout = if args.json {
        report.to_json() + "\n"
    } else {
        report.to_text()
    };
    if report.replies_total() == 0 {
        return ToolRun {
            stdout,
            stderr: format!(
                "shoal: {}: no replies (is a UDP tracker listening there?)\n",
                report.target
            ),
            code: 1,
        };
    }
    ToolRun::ok(stdout)
}

/// `shoal bench --shed`: the model's report as text or JSON.
fn run_shed(args: &BenchArgs) -> ToolRun {
    let config = match args.to_shed() {
        Ok(c) => c,
        Err(e) => return ToolRun::error(e.message(), UsageError::EXIT_CODE, false),
    };
    match crate::bench::shed::run(&config) {
        Ok(r) if args.json => ToolRun::ok(r.to_json() + "\n"),
        Ok(r) => ToolRun::ok(r.to_text()),
        Err(message) => ToolRun::error(&message, 1, false),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::*;

    #[test]
    fn rendezvous_urls() {
        let v4 = SocketAddr::from(([127, 0, 0, 1], 7000));
        assert_eq!(resolve_rendezvous("udp://127.0.0.1:7000"), Ok(v4));
        assert_eq!(resolve_rendezvous("udp://127.0.0.1:7000/"), Ok(v4));
        assert_eq!(resolve_rendezvous("127.0.0.1:7000"), Ok(v4));
        assert_eq!(
            resolve_rendezvous("[::1]:7000"),
            Ok(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 7000)))
        );
        assert!(resolve_rendezvous("http://127.0.0.1:7000")
            .unwrap_err()
            .contains("udp://"));
        assert!(resolve_rendezvous("127.0.0.1").is_err(), "a port is needed");
    }

    #[test]
    fn tool_errors_are_one_line_in_either_form() {
        let text = ToolRun::error("udp://h:1: no reply", 1, false);
        assert_eq!(
            (text.stdout.as_str(), text.stderr.as_str(), text.code),
            ("", "shoal: udp://h:1: no reply\n", 1)
        );
        let json = ToolRun::error("say \"hi\"\n", 1, true);
        assert_eq!(
            (json.stdout.as_str(), json.stderr.as_str(), json.code),
            ("{\"error\":\"say \\\"hi\\\"\\n\"}\n", "", 1)
        );
    }

    fn command(args: &[&str]) -> Command {
        let args = std::iter::once("shoal").chain(args.iter().copied());
        super::super::try_parse_from(args).unwrap()
    }

    #[test]
    fn tools_that_cannot_start_say_why_in_the_asked_form() {
        // A bad bench setting is a usage error, before anything runs; plain
        // text even with --json (the report is the JSON).
        let Command::Bench(b) = command(&["bench", "--workers", "0", "--json"]) else {
            panic!()
        };
        let run = run_bench(&b);
        assert_eq!((run.code, run.stdout.as_str()), (2, ""));
        assert!(run.stderr.starts_with("shoal: --workers"), "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1);
        // A rendezvous tracker is UDP: refused before a socket exists.
        for json in [false, true] {
            let mut args = vec!["rendezvous", "http://127.0.0.1:1", "announce"];
            if json {
                args.push("--json");
            }
            let Command::Rendezvous(r) = command(&args) else {
                panic!()
            };
            let run = run_rendezvous(&r);
            assert_eq!(run.code, 1);
            let out = if json { &run.stdout } else { &run.stderr };
            assert!(out.contains("is udp://host:port, not http://"), "{run:?}");
            assert_eq!(out.starts_with("{\"error\":"), json, "{run:?}");
        }
        // The API needs its token; nothing is sent without one.
        let Command::Api(a) = command(&["api", "stats", "--json"]) else {
            panic!()
        };
        let a = ApiArgs {
            api_token: None,
            ..a
        };
        let run = run_api(&a);
        assert_eq!(run.code, 1);
        assert!(run.stdout.contains("no API token"), "{run:?}");
    }
}
