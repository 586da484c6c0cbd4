//! The client tools: `shoal announce`, `scrape`, `rendezvous` and `api`.
//! What each prints and how it exits is a value ([`ToolRun`]) that `main`
//! writes out, so the text and `--json` forms of output and errors are
//! tested without a process.

use super::defs::{AnnounceArgs, ApiArgs, RendezvousAction, RendezvousArgs, ScrapeArgs};
use crate::client::{self, Event};
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

impl RendezvousArgs {
    /// Run the action. `Ok` is the output to print; `Err` the one-line error
    /// (a JSON object with `--json`). Every action registers first: each run
    /// is a fresh UDP port, which the tracker has never seen.
    pub fn run(&self) -> Result<String, String> {
        use crate::rendezvous::client::{ClientReply, RendezvousClient};
        use crate::rendezvous::message::{Announced, Reply};
        let fail = |e: String| {
            if self.json {
                serde_json::json!({ "error": e }).to_string()
            } else {
                e
            }
        };
        let tracker = resolve_rendezvous(&self.url).map_err(|e| fail(e.clone()))?;
        let timeout = Duration::from_secs_f64(self.timeout);
        let mut c = RendezvousClient::new(tracker, timeout)
            .map_err(|e| fail(format!("{}: {e}", self.url)))?;
        let err =
            |e: crate::rendezvous::client::RendezvousError| fail(format!("{}: {e}", self.url));
        let id = c.announce().map_err(err)?;
        let (reply, text): (ClientReply, String) = match self.action {
            RendezvousAction::Announce => (
                Reply::Announced(Announced { share_id: id }),
                format!("share id: {id}"),
            ),
            RendezvousAction::Alive => {
                c.alive().map_err(err)?;
                (Reply::Alived, format!("alived (share id {id})"))
            }
            RendezvousAction::Push => {
                let target = self.share_id.as_deref().unwrap_or_default();
                let peer = c.push(target).map_err(err)?;
                let text = format!("peer {} (share id {})", peer.peer_addr, peer.peer_share_id);
                (Reply::Pushed(peer), text)
            }
        };
        let mut out = if self.json {
            serde_json::to_string(&reply).map_err(|e| fail(e.to_string()))?
        } else {
            text
        };
        out.push('\n');
        Ok(out)
    }
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

impl ApiArgs {
    /// Send it; the text to print, or a one-line error.
    pub fn run(&self) -> Result<String, String> {
        let token = self
            .api_token
            .as_deref()
            .ok_or("no API token: set SHOAL_API_TOKEN (or give --api-token)")?;
        crate::api::client::run(&self.api_url, token, &self.request(), self.json)
    }
}

#[cfg(test)]
mod tests {
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
}
