#!/usr/bin/python3
"""End-to-end test of shoal against real BitTorrent clients.

What it proves
--------------
A shoal binary, started as a subprocess on 127.0.0.1 with ephemeral ports, is a working tracker
for unmodified, real-world clients:

1. ``udp-download``   two libtorrent sessions (seeder + leecher) find each other through
                      ``udp://.../announce`` (BEP 15, incl. libtorrent's BEP 41 URL option) and the
                      leecher ends up with a byte-identical copy of a random 1-4 MiB file.
2. ``http-download``  the same through ``http://.../announce`` (BEP 3/23 compact peers).
3. ``udp-scrape`` /   while both sessions are still up, a hand-written BEP 15 scrape and an HTTP
   ``http-scrape``    scrape report, per info-hash: complete == 2, incomplete == 0,
                      downloaded >= 1 (the leecher's ``completed`` event), and zeros for a hash
                      the tracker has never seen.
4. ``stopped``        after the torrents are removed (``event=stopped``), UDP and HTTP scrape show
                      no seeders and no leechers left.
5. ``transmission``   interop: a ``transmission-cli`` leecher and a libtorrent seeder meet through
                      the UDP URL and the file arrives intact (skipped, not failed, when
                      transmission-cli is not installed). transmission 3.00 will not dial
                      loopback peers it learns from a tracker, so it joins first and the
                      libtorrent seeder dials it.
6. ``private-udp``    a second shoal in private mode (``--keys FILE``): a libtorrent seeder and
                      leecher with a private torrent whose tracker URL is
                      ``udp://127.0.0.1:P/announce/KEY`` download the file through it, proving
                      the key travels in libtorrent's BEP 41 URL data and is checked.
7. ``private-wrong-key`` the same with a key the file does not list: both clients get a
                      tracker_error_alert for shoal's error frame (counted as
                      reason="unknown_key"), the tracker stores nothing (scrape zeros) and the
                      leecher gets no peers. libtorrent 2.0.x drops a UDP error frame's text
                      (it reads it from the datagram's start, header included), so the words
                      ``unknown key`` are checked in the alert for the same key over HTTP.
8. ``warm-restart``   a third shoal with ``--state-file``: a libtorrent seeder announces (interval
                      3600 s, so it will not announce again), shoal is stopped with SIGTERM (exit
                      0, the state file written, mode 0600) and started again on the same UDP
                      port with the same file; the scrape shows the seeder, and a new libtorrent
                      leecher downloads the file from it. The seeder was known only from the
                      snapshot: its session sent no announce after the restart (checked).
9. ``cluster``        two instances sharing a swarm through a real redis-server: a seeder on one,
                      a leecher on the other, the file arrives.
10. ``torrust-index`` a shoal with ``--torrust-api``, an allow list and a key file, driven with
                      torrust-index's own requests (its tracker client's paths, ``?token=``, one
                      kept-alive connection): the failure bodies it matches, whitelist the
                      torrent, ``POST key/{secs}``; a libtorrent seeder announces to the URL the
                      index publishes from that key (``/announce/KEY``), a leecher to the
                      passkey-first ``/KEY/announce``, both over HTTP, and the file arrives;
                      each scrapes through the URL libtorrent derives (2 seeders); the index's
                      ``torrent/{ih}`` and 50-hash batch read the swarm back; un-whitelisting
                      makes the seeder's next announce fail with "torrent not allowed"; neither
                      the key nor the token is in shoal's log.
11. ``shutdown``      SIGTERM makes shoal exit with status 0 promptly.

Every torrent is private (no DHT/PEX/LSD), and DHT/LSD/UPnP/NAT-PMP are off in every client, so
the tracker is the only way the peers can discover each other. Each case uses its own random
file, hence its own info-hash, so the counts are per case.

How to run
----------
Needs Debian's ``python3-libtorrent`` (and optionally ``transmission-cli``); this script installs
nothing. Use Debian's interpreter, since another ``python3`` on PATH may lack libtorrent::

    cargo build --release
    /usr/bin/python3 tests/e2e/real_clients.py [--shoal target/release/shoal] [-v]

It prints one ``PASS``/``FAIL``/``SKIP`` line per case and finally ``N passed, M failed``;
exit status is 0 only when nothing failed. Every wait is bounded (about 60 s per download).
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request

try:
    import libtorrent as lt
except ImportError:  # pragma: no cover - environment problem, not a test failure to debug
    sys.exit("error: cannot import libtorrent; run with Debian's /usr/bin/python3 "
             "and install python3-libtorrent (apt-get install python3-libtorrent)")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STARTUP_TIMEOUT = 15      # shoal must log both listening lines within this
ANNOUNCE_TIMEOUT = 30     # first announce of a client must be answered within this
DOWNLOAD_TIMEOUT = 60     # per download
SCRAPE_TIMEOUT = 30       # counters must converge within this (announces are asynchronous)
SHUTDOWN_TIMEOUT = 10     # SIGTERM -> exit
POLL = 0.1                # polling interval of every wait

VERBOSE = False


class Failure(Exception):
    """An assertion about the tracker or the clients did not hold."""


class Skip(Exception):
    """A case cannot run in this environment (missing optional tool)."""


def log(msg):
    if VERBOSE:
        print("  .. " + msg, flush=True)


def wait_for(what, predicate, timeout, on_timeout=None):
    """Poll predicate() every POLL seconds until it returns a truthy value, which is returned.

    Raises Failure after `timeout` seconds; on_timeout() may add diagnostics to the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = on_timeout() if on_timeout else ""
            raise Failure("timed out after %ds waiting for %s%s"
                          % (timeout, what, ("\n" + extra) if extra else ""))
        time.sleep(POLL)


# --------------------------------------------------------------------------------------------
# The tracker under test
# --------------------------------------------------------------------------------------------

class Shoal:
    """shoal as a subprocess on ephemeral loopback ports; stderr is drained by a thread."""

    LISTEN_RE = re.compile(r"(?:listening on (udp|http)|serving the (torrust) REST API \(v1\) on http)"
                           r"://(\S+)")
    ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, binary, extra_args=(), udp="127.0.0.1:0", env=None):
        self.cmd = [binary, "--udp", udp, "--http", "127.0.0.1:0", "--http-metrics",
                    "--workers", "1", "--log", "info"] + list(extra_args)
        self.lines = []
        self.addrs = {}
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=dict(os.environ, **(env or {})))
        threading.Thread(target=self._drain, daemon=True).start()
        wait_for("shoal to log 'listening on udp://' and 'listening on http://'",
                 lambda: {"udp", "http"} <= set(self.addrs) or self.proc.poll() is not None,
                 STARTUP_TIMEOUT, self.tail)
        if self.proc.poll() is not None:
            raise Failure("shoal exited with status %s during startup\n%s"
                          % (self.proc.returncode, self.tail()))
        self.udp = self._hostport(self.addrs["udp"])
        self.http = self._hostport(self.addrs["http"])
        self.udp_url = "udp://%s:%d/announce" % self.udp
        self.http_url = "http://%s:%d/announce" % self.http
        self.scrape_url = "http://%s:%d/scrape" % self.http

    def _drain(self):
        for raw in self.proc.stderr:
            line = self.ANSI_RE.sub("", raw.decode("utf-8", "replace").rstrip("\n"))
            self.lines.append(line)
            m = self.LISTEN_RE.search(line)
            if m:
                self.addrs.setdefault(m.group(1) or m.group(2), m.group(3).rstrip("/,;\"'"))

    @staticmethod
    def _hostport(addr):
        host, _, port = addr.rpartition(":")
        return host.strip("[]"), int(port)

    def tail(self, n=25):
        return "--- last shoal log lines ---\n" + "\n".join(self.lines[-n:])

    def alive(self):
        if self.proc.poll() is not None:
            raise Failure("shoal died with status %s\n%s" % (self.proc.returncode, self.tail()))

    def terminate(self):
        """SIGTERM and wait; returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


# --------------------------------------------------------------------------------------------
# Scrape clients (HTTP + BEP 15 UDP) and a tiny bencode decoder
# --------------------------------------------------------------------------------------------

def bdecode(data):
    """Decode one bencoded value (bytes keys/strings); raises ValueError on malformed input."""

    def item(i):
        c = data[i:i + 1]
        if c == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1:end]), end + 1
        if c == b"l":
            out, i = [], i + 1
            while data[i:i + 1] != b"e":
                v, i = item(i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            out, i = {}, i + 1
            while data[i:i + 1] != b"e":
                k, i = item(i)
                if not isinstance(k, bytes):
                    raise ValueError("non-string dict key at %d" % i)
                out[k], i = item(i)
            return out, i + 1
        if c.isdigit():
            colon = data.index(b":", i)
            n = int(data[i:colon])
            if colon + 1 + n > len(data):
                raise ValueError("string runs past end")
            return data[colon + 1:colon + 1 + n], colon + 1 + n
        raise ValueError("unexpected byte %r at %d" % (c, i))

    value, end = item(0)
    if end != len(data):
        raise ValueError("%d trailing bytes" % (len(data) - end))
    return value


def http_scrape(shoal, hashes):
    """GET /scrape for the given 20-byte hashes -> {hash: (complete, downloaded, incomplete)}."""
    query = "&".join("info_hash=" + urllib.parse.quote(h, safe="") for h in hashes)
    try:
        with urllib.request.urlopen(shoal.scrape_url + "?" + query, timeout=5) as resp:
            body = resp.read()
    except OSError as e:   # URLError and HTTPError (non-2xx) are OSErrors
        raise Failure("HTTP scrape: %s" % e)
    try:
        files = bdecode(body)[b"files"]
    except (ValueError, KeyError, TypeError) as e:
        raise Failure("HTTP scrape: bad body %r (%s)" % (body[:200], e))
    out = {}
    for h in hashes:
        if h not in files:
            raise Failure("HTTP scrape: hash %s missing from %r" % (h.hex(), body[:200]))
        d = files[h]
        out[h] = (d.get(b"complete"), d.get(b"downloaded"), d.get(b"incomplete"))
    return out


def udp_scrape(shoal, hashes):
    """BEP 15 connect + scrape -> {hash: (complete, downloaded, incomplete)}.

    UDP scrape rows are (seeders, completed, leechers), in request order.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect(shoal.udp)
        tx = random.getrandbits(32)
        s.send(struct.pack(">QII", 0x41727101980, 0, tx))
        try:
            resp = s.recv(2048)
        except OSError as e:
            raise Failure("UDP connect: no reply (%s)" % e)
        if len(resp) < 16 or struct.unpack(">II", resp[:8]) != (0, tx):
            raise Failure("UDP connect: bad reply %r" % resp)
        conn_id, = struct.unpack(">Q", resp[8:16])
        tx = random.getrandbits(32)
        s.send(struct.pack(">QII", conn_id, 2, tx) + b"".join(hashes))
        try:
            resp = s.recv(2048)
        except OSError as e:
            raise Failure("UDP scrape: no reply (%s)" % e)
    if len(resp) < 8 or struct.unpack(">II", resp[:8]) != (2, tx):
        raise Failure("UDP scrape: bad reply header %r" % resp[:40])
    if len(resp) != 8 + 12 * len(hashes):
        raise Failure("UDP scrape: %d bytes for %d hashes" % (len(resp), len(hashes)))
    return {h: struct.unpack(">III", resp[8 + 12 * i:20 + 12 * i]) for i, h in enumerate(hashes)}


def expect_scrape(name, scrape, shoal, expected):
    """Poll `scrape` until every hash matches; expected: {hash: predicate(c, d, i) -> bool}.

    Announces are asynchronous (a client's `completed` may still be in flight when the file is
    done), so this waits for convergence rather than checking once.
    """
    last = {}
    errors = []

    def ok():
        shoal.alive()
        try:
            last.update(scrape(shoal, list(expected)))
        except Failure as e:   # retried until the deadline; the last error is reported
            errors.append(str(e))
            return False
        return all(pred(*last[h]) for h, pred in expected.items())

    def show():
        return "last %s scrape (complete, downloaded, incomplete): %s%s\n%s" % (
            name, {h.hex()[:8]: v for h, v in last.items()},
            ("\nlast error: " + errors[-1]) if errors else "", shoal.tail(10))

    wait_for("%s scrape counts" % name, ok, SCRAPE_TIMEOUT, show)
    log("%s scrape %s" % (name, {h.hex()[:8]: v for h, v in last.items()}))


# --------------------------------------------------------------------------------------------
# libtorrent helpers
# --------------------------------------------------------------------------------------------

def make_torrent(directory, tracker_url):
    """Write a random 1-4 MiB file into `directory`; return (torrent_bytes, v1 info-hash, path).

    The torrent is private and v1-only: a libtorrent 2.x default (hybrid v1+v2) torrent would be
    announced under two info-hashes, and transmission 3.00 does not understand v2.
    """
    name = "payload-%08x.bin" % random.getrandbits(32)
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(os.urandom(random.randint(1 << 20, 4 << 20)))
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, 0, lt.create_torrent.v1_only)
    ct.set_priv(True)
    ct.add_tracker(tracker_url)
    ct.set_creator("shoal e2e test")
    lt.set_piece_hashes(ct, directory)
    data = lt.bencode(ct.generate())
    info = lt.torrent_info(data)
    return data, info.info_hashes().v1.to_bytes(), path


class Client:
    """One libtorrent session on 127.0.0.1 with every peer source but the tracker disabled."""

    SETTINGS = {
        # An ephemeral port on loopback only.
        "listen_interfaces": "127.0.0.1:0",
        # The tracker must be the only way to find peers.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # All peers share 127.0.0.1; without this a second connection from the same IP (e.g.
        # both sides dialling each other at once) is refused as a duplicate.
        "allow_multiple_connections_per_ip": True,
        # Plain TCP between peers: transmission's uTP over loopback is several times slower,
        # and peer transport is not what this test is about.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # libtorrent caches a UDP tracker's connection id per tracker IP, not IP:port, for the
        # whole process: a second tracker on 127.0.0.1 (the private-mode shoal) would be sent
        # the first one's id, which it rightly drops as forged. Expiry 0: connect each time.
        "udp_tracker_token_expiry": 0,
        # Alerts used for waiting and for diagnostics.
        "alert_mask": (lt.alert.category_t.tracker_notification
                       | lt.alert.category_t.error_notification
                       | lt.alert.category_t.status_notification),
        "user_agent": "shoal-e2e/libtorrent-" + lt.__version__,
    }

    def __init__(self, label, **settings):
        self.label = label
        self.session = lt.session(dict(self.SETTINGS, **settings))
        self.alerts = []   # (label, message) of every alert seen, for failure messages

    def add(self, torrent_bytes, save_path, seed_mode=False):
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent_bytes)
        params.save_path = save_path
        if seed_mode:
            # We made the file ourselves: skip the hash check so seeding starts at once.
            params.flags |= lt.torrent_flags.seed_mode
        return self.session.add_torrent(params)

    def pump(self):
        """Collect pending alerts; returns the new ones."""
        new = self.session.pop_alerts()
        for a in new:
            self.alerts.append((type(a).__name__, a.message()))
        return new

    def wait_announced(self, handle):
        """Wait for the tracker's first successful announce reply for `handle`."""
        def replied():
            for a in self.pump():
                if isinstance(a, lt.tracker_reply_alert) and a.handle == handle:
                    return True
            return False
        wait_for("%s's first tracker reply" % self.label, replied, ANNOUNCE_TIMEOUT,
                 self.diagnostics)

    def wait_tracker_error(self, handle, what, accept):
        """Wait for a tracker_error_alert for `handle` that accept(alert) approves; a
        successful tracker reply instead is a failure. Returns the alert's message."""
        def refused():
            for a in self.pump():
                if getattr(a, "handle", None) != handle:
                    continue
                if isinstance(a, lt.tracker_reply_alert):
                    raise Failure("%s: the tracker answered an announce it should refuse"
                                  % self.label)
                if isinstance(a, lt.tracker_error_alert) and accept(a):
                    return a.message()
            return False
        message = wait_for("%s's tracker error (%s)" % (self.label, what), refused,
                           ANNOUNCE_TIMEOUT, self.diagnostics)
        log("%s: %s" % (self.label, message))
        return message

    def diagnostics(self, n=12):
        return "--- last %s alerts ---\n%s" % (
            self.label, "\n".join("%s: %s" % a for a in self.alerts[-n:]))


def check_same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        if fa.read() != fb.read():
            raise Failure("downloaded file %s differs from the original %s" % (b, a))


def libtorrent_swarm(shoal, workdir, tracker_url, tag):
    """Seeder + leecher over `tracker_url`; returns (seeder, leecher, handles, info-hash).

    Sessions are left running so that later cases can scrape the live swarm.
    """
    seed_dir = os.path.join(workdir, tag + "-seed")
    leech_dir = os.path.join(workdir, tag + "-leech")
    os.makedirs(seed_dir)
    os.makedirs(leech_dir)
    torrent, info_hash, original = make_torrent(seed_dir, tracker_url)
    log("%s: torrent %s, %d bytes" % (tag, info_hash.hex(), os.path.getsize(original)))

    seeder = Client(tag + " seeder")
    leecher = Client(tag + " leecher")
    sh = seeder.add(torrent, seed_dir, seed_mode=True)
    # Register the seeder first, so the leecher's first announce already returns it.
    seeder.wait_announced(sh)
    lh = leecher.add(torrent, leech_dir)

    def done():
        shoal.alive()
        seeder.pump()
        leecher.pump()
        return lh.status().is_seeding

    def why():
        st = lh.status()
        return "leecher progress %.1f%%, %d peers, state %s\n%s\n%s\n%s" % (
            st.progress * 100, st.num_peers, st.state, leecher.diagnostics(),
            seeder.diagnostics(), shoal.tail(10))

    wait_for("%s leecher to finish downloading" % tag, done, DOWNLOAD_TIMEOUT, why)
    check_same_file(original, os.path.join(leech_dir, os.path.basename(original)))
    return seeder, leecher, (sh, lh), info_hash


# --------------------------------------------------------------------------------------------
# Private mode: keys in the UDP announce URL (BEP 41)
# --------------------------------------------------------------------------------------------

def random_key():
    """A key in shoal's key-file format: 32 characters of [A-Za-z0-9]."""
    alphabet = string.ascii_letters + string.digits
    return "".join(random.choice(alphabet) for _ in range(32))


def start_private_shoal(binary, workdir):
    """A second shoal with `--keys FILE` listing one fresh key; returns (shoal, key)."""
    key = random_key()
    keys_file = os.path.join(workdir, "keys.txt")
    with open(keys_file, "w") as f:
        f.write("# shoal e2e: one key, no expiry\n%s\n" % key)
    return Shoal(binary, ["--keys", keys_file]), key


def private_url(shoal, key):
    return "udp://%s:%d/announce/%s" % (shoal.udp[0], shoal.udp[1], key)


def metric(shoal, sample):
    """The value of one /metrics sample line, e.g. 'shoal_rejected_total{reason="x"}'."""
    with urllib.request.urlopen("http://%s:%d/metrics" % shoal.http, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(sample + " "):
                return int(line.split()[-1])
    raise Failure("no %s in /metrics" % sample)


def udp_tracker_failure(alert):
    """A BEP 15 error frame as libtorrent reports it. libtorrent 2.0.x builds the failure text
    from the whole datagram, header included, so the text is cut at the header's first zero
    byte and arrives empty; a libtorrent that reads it correctly must show "unknown key"."""
    reason = alert.failure_reason()
    return ("unknown key" in reason
            or (reason == "" and alert.error.message() == "tracker sent a failure message"))


def private_wrong_key(shoal, workdir):
    """Seeder and leecher with a key the tracker does not list: refused, no peers.

    Over UDP the refusal arrives as an error frame (which libtorrent 2.0.x reports without its
    text, see udp_tracker_failure) and is counted as reason="unknown_key"; the same wrong key
    over HTTP shows the words themselves in libtorrent's tracker_error_alert.
    """
    seed_dir = os.path.join(workdir, "wrongkey-seed")
    leech_dir = os.path.join(workdir, "wrongkey-leech")
    os.makedirs(seed_dir)
    os.makedirs(leech_dir)
    wrong = random_key()
    torrent, info_hash, _ = make_torrent(seed_dir, private_url(shoal, wrong))
    seeder = Client("wrong-key seeder")
    leecher = Client("wrong-key leecher")
    sh = seeder.add(torrent, seed_dir, seed_mode=True)
    seeder.wait_tracker_error(sh, "UDP error frame", udp_tracker_failure)
    lh = leecher.add(torrent, leech_dir)
    leecher.wait_tracker_error(lh, "UDP error frame", udp_tracker_failure)
    shoal.alive()
    # Nothing was stored for either (UDP scrape needs no key without --private-scrape) ...
    counts = udp_scrape(shoal, [info_hash])[info_hash]
    if counts != (0, 0, 0):
        raise Failure("scrape after refused announces: %r, want zeros" % (counts,))
    # ... so the leecher has nobody to download from.
    st = lh.status()
    if st.num_peers != 0 or st.progress > 0:
        raise Failure("leecher with a wrong key has %d peers, progress %.1f%%"
                      % (st.num_peers, st.progress * 100))
    refused = metric(shoal, 'shoal_rejected_total{reason="unknown_key"}')
    if refused < 2:
        raise Failure("shoal_rejected_total{reason=\"unknown_key\"} is %d, want >= 2" % refused)
    log("wrong key: refused %d announces, scrape %r" % (refused, counts))

    # The words themselves reach the client over HTTP (a bencoded failure reason).
    http_dir = os.path.join(workdir, "wrongkey-http")
    os.makedirs(http_dir)
    url = "http://%s:%d/announce/%s" % (shoal.http[0], shoal.http[1], wrong)
    torrent, _, _ = make_torrent(http_dir, url)
    client = Client("wrong-key HTTP seeder")
    ch = client.add(torrent, http_dir, seed_mode=True)
    client.wait_tracker_error(ch, '"unknown key"',
                              lambda a: a.failure_reason() == "unknown key")


# --------------------------------------------------------------------------------------------
# torrust-index's calls (--torrust-api), then real clients with the key they hand out
# --------------------------------------------------------------------------------------------

# Made as the README makes one (base64): `+`, `/` and `=` reach shoal percent-encoded, as
# torrust-index's reqwest client encodes a query value.
TORRUST_TOKEN = "e2e+torrust/token0123456789=="


class TorrustIndex:
    """The requests torrust-index's tracker client (src/tracker/api.rs) sends, on one kept-alive
    connection as its pooled reqwest client does: the token as ``?token=``, no body."""

    def __init__(self, addr, token=TORRUST_TOKEN):
        host, _, port = addr.rpartition(":")
        self.conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
        self.token = token

    def call(self, method, path, query=(), token=True):
        """(status, body text) of METHOD /api/v1/PATH?token=T&QUERY."""
        params = ([("token", self.token)] if token else []) + list(query)
        target = "/api/v1/%s" % path
        if params:
            target += "?" + urllib.parse.urlencode(params)
        # reqwest sends `content-length: 0` with a bodiless POST or DELETE.
        headers = {"Content-Length": "0"} if method in ("POST", "DELETE") else {}
        self.conn.request(method, target, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")

    def ok(self, method, path, query=()):
        status, body = self.call(method, path, query)
        if status != 200:
            raise Failure("%s %s: %d %s" % (method, path, status, body))
        return body

    def close(self):
        self.conn.close()


def index_announce_url(tracker_url, key):
    """What torrust-index publishes for a user (service.rs: `tracker_url.join(key)`, RFC 3986
    reference resolution): the key replaces the last path segment."""
    return urllib.parse.urljoin(tracker_url, key)


def scrape_counts(client, handle):
    """libtorrent's own scrape (it derives the scrape URL from the announce URL): (complete,
    incomplete) of the reply, or a Failure with the tracker's error."""
    client.pump()
    handle.scrape_tracker()
    found = {}

    def replied():
        for a in client.pump():
            if getattr(a, "handle", None) != handle:
                continue
            if isinstance(a, lt.scrape_reply_alert):
                found["counts"] = (a.complete, a.incomplete)
                return True
            if isinstance(a, lt.scrape_failed_alert):
                raise Failure("%s: scrape failed: %s (%s)" % (client.label, a.message(), a.error.message()))
        return False
    wait_for("%s's scrape reply" % client.label, replied, ANNOUNCE_TIMEOUT, client.diagnostics)
    return found["counts"]


def torrust_index(binary, workdir, running):
    """shoal as torrust-index's private tracker, driven as the index drives it.

    The index whitelists the torrent and makes a user's key through ``--torrust-api``; a
    libtorrent seeder announces with the URL the index publishes (``/announce/KEY``), a leecher
    with the passkey-first form (``/KEY/announce``), both over HTTP; the file arrives intact.
    Each scrapes through the URL it derives from its announce URL; the index's importer reads
    the torrent and the batch; the index un-whitelists it and the next announce is refused.
    """
    allow = os.path.join(workdir, "torrust-allow.txt")
    keys = os.path.join(workdir, "torrust-keys.txt")
    for path in (allow, keys):
        open(path, "w").close()
    ts = running["torrust"] = Shoal(
        binary, ["--access-list", allow, "--access-mode", "allow", "--keys", keys,
                 "--torrust-api", "127.0.0.1:0"],
        env={"SHOAL_API_TOKEN": TORRUST_TOKEN})
    wait_for("shoal to log the torrust REST API's address", lambda: "torrust" in ts.addrs,
             STARTUP_TIMEOUT, ts.tail)
    index = TorrustIndex(ts.addrs["torrust"])
    try:
        # The failures the index tells apart by their bodies (service.rs).
        want = (500, 'Unhandled rejection: Err { reason: "unauthorized" }')
        got = index.call("GET", "torrents", token=False)
        if got != want:
            raise Failure("without a token: %r, want %r" % (got, want))
        wrong = TorrustIndex(ts.addrs["torrust"], token="not-the-token-0000000000")
        want = (500, 'Unhandled rejection: Err { reason: "token not valid" }')
        got = wrong.call("POST", "whitelist/" + "ab" * 20)
        wrong.close()
        if got != want:
            raise Failure("with a wrong token: %r, want %r" % (got, want))

        seed_dir = os.path.join(workdir, "torrust-seed")
        leech_dir = os.path.join(workdir, "torrust-leech")
        os.makedirs(seed_dir)
        os.makedirs(leech_dir)
        # The index's `[tracker] url`, with the trailing slash the README asks for.
        tracker_url = "http://%s:%d/announce/" % ts.http
        torrent, info_hash, original = make_torrent(seed_dir, tracker_url)
        ih = info_hash.hex()

        # Upload: the index whitelists the torrent.
        index.ok("POST", "whitelist/" + ih)
        # Download: the index makes the user's key (its default validity, 12 weeks).
        before = int(time.time())
        made = json.loads(index.ok("POST", "key/7257600"))
        key, until = made["key"], made["valid_until"]
        if not (re.fullmatch(r"[0-9A-Za-z]{32}", key) and isinstance(until, int)
                and before + 7257600 <= until <= int(time.time()) + 7257600):
            raise Failure("POST key/7257600 answered %r" % made)

        published = index_announce_url(tracker_url, key)
        if published != "http://%s:%d/announce/%s" % (ts.http + (key,)):
            raise Failure("the index would publish %s" % published)
        first = "http://%s:%d/%s/announce" % (ts.http + (key,))
        # libtorrent's SSRF mitigation refuses a request to a tracker on loopback whose path
        # does not start with /announce (so /KEY/announce, and either scrape URL); a tracker
        # anywhere else is not restricted, so it is off here.
        seeder = Client("torrust seeder (/announce/KEY)", ssrf_mitigation=False)
        leecher = Client("torrust leecher (/KEY/announce)", ssrf_mitigation=False)
        sh = seeder.add(with_tracker(torrent, published), seed_dir, seed_mode=True)
        seeder.wait_announced(sh)
        lh = leecher.add(with_tracker(torrent, first), leech_dir)
        wait_downloaded("the leecher (/KEY/announce) to download from the seeder "
                        "(/announce/KEY)", seeder, leecher, lh, [ts], original, leech_dir)

        # Both URL forms scrape: libtorrent replaces `announce` with `scrape` in either.
        # The leecher's `completed` announce may still be on its way: wait for 2 seeders.
        for client, handle in ((seeder, sh), (leecher, lh)):
            counts = {}

            def two_seeders():
                counts["last"] = scrape_counts(client, handle)
                return counts["last"] == (2, 0)
            wait_for("%s's scrape to show 2 seeders" % client.label, two_seeders,
                     SCRAPE_TIMEOUT, lambda: "last %r" % (counts.get("last"),))

        # The importer: one torrent, then a batch of 50 with the others unknown.
        info = json.loads(index.ok("GET", "torrent/" + ih))
        addrs = sorted(p["peer_addr"] for p in info["peers"])
        if (info["info_hash"], info["seeders"], info["leechers"], len(addrs)) != (ih, 2, 0, 2):
            raise Failure("torrent/%s: %r" % (ih, info))
        if info["completed"] < 1:
            raise Failure("torrent/%s: the leecher's download is not counted: %r" % (ih, info))
        batch_query = [("info_hash", h) for h in [ih] + [os.urandom(20).hex() for _ in range(49)]]
        batch = json.loads(index.ok("GET", "torrents", batch_query))
        if [(t["info_hash"], t["seeders"], t["leechers"]) for t in batch] != [(ih, 2, 0)]:
            raise Failure("torrents?info_hash=... (50): %r" % batch)
        log("torrust importer: %d peers %s, completed %d" % (len(addrs), addrs, info["completed"]))

        # Delete: the index un-whitelists the torrent; the next announce is refused.
        index.ok("DELETE", "whitelist/" + ih)
        seeder.pump()
        # Now, not at the tracker's min interval.
        sh.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
        seeder.wait_tracker_error(sh, '"torrent not allowed"',
                                  lambda a: a.failure_reason() == "torrent not allowed")
        seeder.session.remove_torrent(sh)
        leecher.session.remove_torrent(lh)
    finally:
        index.close()
    # No key and no token reached the log.
    for secret in (key, TORRUST_TOKEN):
        if any(secret in line for line in ts.lines):
            raise Failure("a key or the token is in shoal's log")


# --------------------------------------------------------------------------------------------
# Warm restart: --state-file
# --------------------------------------------------------------------------------------------

def wait_downloaded(what, seeder, leecher, handle, shoals, original, leech_dir):
    """Pump both sessions until the leecher's `handle` is seeding (every shoal still alive),
    then check the file it wrote is the original."""
    def done():
        for s in shoals:
            s.alive()
        seeder.pump()
        leecher.pump()
        return handle.status().is_seeding

    def why():
        st = handle.status()
        return "leecher progress %.1f%%, %d peers, state %s\n%s\n%s\n%s" % (
            st.progress * 100, st.num_peers, st.state, leecher.diagnostics(),
            seeder.diagnostics(), "\n".join(s.tail(10) for s in shoals))

    wait_for(what, done, DOWNLOAD_TIMEOUT, why)
    check_same_file(original, os.path.join(leech_dir, os.path.basename(original)))


def warm_restart(binary, workdir, running):
    """A seeder known only from the snapshot serves a leecher that joins after a restart.

    `running["restart"]` holds the shoal of the moment, so the runner can stop it whatever
    happens here.
    """
    state = os.path.join(workdir, "shoal.state")
    args = ["--state-file", state, "--interval", "3600", "--peer-timeout", "5400"]
    first = Shoal(binary, args)
    running["restart"] = first
    seed_dir = os.path.join(workdir, "restart-seed")
    leech_dir = os.path.join(workdir, "restart-leech")
    os.makedirs(seed_dir)
    os.makedirs(leech_dir)
    torrent, info_hash, original = make_torrent(seed_dir, first.udp_url)
    seeder = Client("restart seeder")
    sh = seeder.add(torrent, seed_dir, seed_mode=True)
    seeder.wait_announced(sh)
    expect_scrape("UDP", udp_scrape, first,
                  {info_hash: lambda c, d, i: (c, i) == (1, 0)})
    before = udp_scrape(first, [info_hash])[info_hash]

    status = first.terminate()
    if status != 0:
        raise Failure("shoal exited with status %s on SIGTERM\n%s" % (status, first.tail()))
    if not any("state written to" in l for l in first.lines):
        raise Failure("no 'state written to' line at exit\n%s" % first.tail())
    mode = os.stat(state).st_mode & 0o777
    if mode != 0o600:
        raise Failure("state file mode %o, want 600 (it holds the connection-id key)" % mode)
    seeder.pump()
    mark = len(seeder.alerts)

    # Same UDP port (the URL in the torrent), same state file.
    second = Shoal(binary, args, udp="%s:%d" % first.udp)
    running["restart"] = second
    loaded = [l for l in second.lines if "state loaded from" in l]
    if not loaded or "1 peers" not in loaded[0]:
        raise Failure("no 'state loaded ... 1 peers' line\n%s" % second.tail())
    log(loaded[0])
    after = udp_scrape(second, [info_hash])[info_hash]
    if after != before:
        raise Failure("scrape after the restart %r, before it %r" % (after, before))

    leecher = Client("restart leecher")
    lh = leecher.add(torrent, leech_dir)
    wait_downloaded("the leecher to download from the restored seeder", seeder, leecher, lh,
                    [second], original, leech_dir)
    seeder.pump()
    again = [m for kind, m in seeder.alerts[mark:] if kind == "tracker_announce_alert"]
    if again:
        raise Failure("the seeder announced again after the restart (%s): the snapshot was not "
                      "what the leecher found" % again[0])
    seeder.session.remove_torrent(sh)
    leecher.session.remove_torrent(lh)


# --------------------------------------------------------------------------------------------
# Cluster: two instances sharing one swarm view through a real redis-server
# --------------------------------------------------------------------------------------------

class Redis:
    """A throwaway redis-server on a free loopback port, persistence off."""

    def __init__(self, workdir):
        binary = shutil.which(os.environ.get("SHOAL_TEST_REDIS_SERVER", "redis-server"))
        if binary is None:
            raise Failure("redis-server is not on PATH (apt-get install redis-server; CI: .ci/run)")
        self.port = free_tcp_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("redis-server to answer PING", self._pong, STARTUP_TIMEOUT)
        self.url = "redis://127.0.0.1:%d" % self.port

    def _pong(self):
        if self.proc.poll() is not None:
            raise Failure("redis-server exited with status %s" % self.proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                c.sendall(b"PING\r\n")
                return c.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(SHUTDOWN_TIMEOUT)


def with_tracker(torrent_bytes, url):
    """The same torrent (the info dict, so the info hash, untouched) announcing to `url`."""
    meta = lt.bdecode(torrent_bytes)
    meta[b"announce"] = url.encode()
    meta.pop(b"announce-list", None)
    return lt.bencode(meta)


def cluster_download(binary, workdir, running):
    """A libtorrent seeder announces only to instance A, a leecher only to instance B; the
    leecher learns the seeder through Redis and the file arrives intact."""
    redis = running["redis"] = Redis(workdir)
    args = ["--cluster", redis.url, "--cluster-name", "e2e-%08x" % random.getrandbits(32),
            "--interval", "3600", "--peer-timeout", "5400"]
    a = running["a"] = Shoal(binary, args)
    b = running["b"] = Shoal(binary, args)
    for inst in (a, b):
        wait_for("an instance to connect to Redis",
                 lambda: metric(inst, "shoal_cluster_connected") == 1, STARTUP_TIMEOUT, inst.tail)
    seed_dir = os.path.join(workdir, "cluster-seed")
    leech_dir = os.path.join(workdir, "cluster-leech")
    os.makedirs(seed_dir)
    os.makedirs(leech_dir)
    torrent_a, info_hash, original = make_torrent(seed_dir, a.udp_url)
    torrent_b = with_tracker(torrent_a, b.udp_url)
    if lt.torrent_info(torrent_b).info_hashes().v1.to_bytes() != info_hash:
        raise Failure("re-pointing the torrent at B changed its info hash")
    seeder = Client("cluster seeder")
    sh = seeder.add(torrent_a, seed_dir, seed_mode=True)
    seeder.wait_announced(sh)
    # B has never heard from the seeder: only the cluster can tell it.
    expect_scrape("UDP (instance B)", udp_scrape, b,
                  {info_hash: lambda c, d, i: (c, i) == (1, 0)})
    leecher = Client("cluster leecher")
    lh = leecher.add(torrent_b, leech_dir)
    wait_downloaded("the leecher on B to download from the seeder on A", seeder, leecher, lh,
                    [a, b], original, leech_dir)
    seeder.session.remove_torrent(sh)
    leecher.session.remove_torrent(lh)


# --------------------------------------------------------------------------------------------
# transmission-cli
# --------------------------------------------------------------------------------------------

def free_tcp_port():
    """A currently unused loopback port (transmission-cli has no 'port 0')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def transmission_interop(shoal, workdir):
    """libtorrent seeder -> transmission-cli leecher through shoal's UDP URL.

    transmission 3.00 treats 127.0.0.0/8 as a "martian" address and never dials a loopback
    peer it got from a tracker; it does accept incoming loopback connections. So the
    leecher joins first and the seeder, whose first announce then returns the leecher,
    dials it. That still needs the tracker to carry transmission's announce to libtorrent.
    """
    exe = shutil.which("transmission-cli")
    if not exe:
        raise Skip("transmission-cli not installed")
    seed_dir = os.path.join(workdir, "tr-seed")
    leech_dir = os.path.join(workdir, "tr-leech")
    conf_dir = os.path.join(workdir, "tr-config")   # keeps transmission away from $HOME
    for d in (seed_dir, leech_dir, conf_dir):
        os.makedirs(d)
    torrent, info_hash, original = make_torrent(seed_dir, shoal.udp_url)
    torrent_file = os.path.join(workdir, "tr.torrent")
    with open(torrent_file, "wb") as f:
        f.write(torrent)
    with open(original, "rb") as f:
        want = f.read()
    target = os.path.join(leech_dir, os.path.basename(original))

    out_path = os.path.join(workdir, "transmission.log")
    env = dict(os.environ, HOME=conf_dir)   # belt and braces next to -g
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [exe, "-g", conf_dir, "-w", leech_dir, "-p", str(free_tcp_port()),
             "-M",        # no NAT-PMP/UPnP
             "-D", "-U",  # no speed limits
             torrent_file],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    seeder = None
    try:
        def transmission_output():
            with open(out_path, "rb") as f:
                tail = f.read()[-1500:].decode("utf-8", "replace")
            lines = [l.strip() for l in tail.replace("\r", "\n").split("\n") if l.strip()]
            return "--- transmission-cli output ---\n" + "\n".join(lines[-8:])

        def running():
            shoal.alive()
            if proc.poll() is not None:
                raise Failure("transmission-cli exited early with status %d\n%s"
                              % (proc.returncode, transmission_output()))

        # 1. transmission's announce reaches the swarm (seen through a UDP scrape).
        def registered():
            running()
            return udp_scrape(shoal, [info_hash])[info_hash][2] >= 1
        wait_for("transmission-cli's announce to show up as a leecher", registered,
                 ANNOUNCE_TIMEOUT, lambda: transmission_output() + "\n" + shoal.tail(10))
        log("transmission-cli registered with the tracker")

        # 2. The seeder's announce returns transmission's address; it connects and uploads.
        seeder = Client("transmission-case seeder")
        sh = seeder.add(torrent, seed_dir, seed_mode=True)

        def complete():
            running()
            seeder.pump()
            # transmission preallocates, so compare contents, not just the size.
            try:
                with open(target, "rb") as f:
                    return f.read() == want
            except FileNotFoundError:
                return False

        def why():
            return "%s\n%s\n%s" % (transmission_output(), seeder.diagnostics(), shoal.tail(10))

        wait_for("transmission-cli to download the file", complete, DOWNLOAD_TIMEOUT, why)
        log("transmission-cli downloaded %d bytes" % len(want))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if seeder is not None:
            seeder.session.remove_torrent(sh)


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------

def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shoal", default=os.path.join(REPO_ROOT, "target", "release", "shoal"),
                    help="path to the shoal binary (default: target/release/shoal)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print progress details")
    ap.add_argument("--case", action="append", metavar="NAME",
                    help="run only this case (repeatable); the others are not reported")
    args = ap.parse_args()
    VERBOSE = args.verbose

    if not (os.path.isfile(args.shoal) and os.access(args.shoal, os.X_OK)):
        print("error: shoal binary not found or not executable: %s "
              "(build it with `cargo build --release` or pass --shoal)" % args.shoal)
        print("0 passed, 1 failed")
        return 1

    results = []

    def case(name, fn):
        if args.case and name not in args.case:
            return
        start = time.monotonic()
        try:
            fn()
        except Skip as e:
            print("SKIP %-14s %s" % (name, e), flush=True)
            return
        except Failure as e:
            results.append(False)
            print("FAIL %-14s %s" % (name, e), flush=True)
            return
        except Exception:  # a bug or an unexpected client error: report, keep going
            results.append(False)
            print("FAIL %-14s unexpected error:\n%s" % (name, traceback.format_exc()), flush=True)
            return
        results.append(True)
        print("PASS %-14s (%.1fs)" % (name, time.monotonic() - start), flush=True)

    workdir = tempfile.mkdtemp(prefix="shoal-e2e-")
    shoal = None
    swarms = {}   # tag -> (seeder, leecher, handles, info_hash)
    private = {}  # the private-mode shoal and its one key, started by the first private case
    restart = {}  # the warm-restart case's shoal of the moment
    cluster = {}  # the cluster case's redis-server and two instances
    torrust = {}  # the torrust-index case's shoal
    try:
        try:
            shoal = Shoal(args.shoal)
        except Failure as e:
            print("FAIL %-14s %s" % ("startup", e))
            results.append(False)
            return 1
        log("shoal: %s and %s" % (shoal.udp_url, shoal.http_url))

        def download(tag, url):
            swarms[tag] = libtorrent_swarm(shoal, workdir, url, tag)

        case("udp-download", lambda: download("udp", shoal.udp_url))
        case("http-download", lambda: download("http", shoal.http_url))

        # Both swarms are live: 2 seeders each, the leecher's `completed` counted.
        unknown = os.urandom(20)

        def scrape_live(scrape, name):
            if not swarms:
                raise Skip("no swarm to scrape (downloads failed)")
            expected = {sw[3]: (lambda c, d, i: c == 2 and i == 0 and d >= 1)
                        for sw in swarms.values()}
            expected[unknown] = lambda c, d, i: (c, d, i) == (0, 0, 0)
            expect_scrape(name, scrape, shoal, expected)

        case("udp-scrape", lambda: scrape_live(udp_scrape, "UDP"))
        case("http-scrape", lambda: scrape_live(http_scrape, "HTTP"))

        def stopped():
            if not swarms:
                raise Skip("no swarm to stop (downloads failed)")
            # remove_torrent() announces event=stopped for each handle.
            for seeder, leecher, (sh, lh), _ in swarms.values():
                seeder.session.remove_torrent(sh)
                leecher.session.remove_torrent(lh)
            # `downloaded` is not checked here: a tracker may forget an empty swarm entirely.
            expected = {sw[3]: (lambda c, d, i: c == 0 and i == 0) for sw in swarms.values()}
            expect_scrape("UDP", udp_scrape, shoal, expected)
            expect_scrape("HTTP", http_scrape, shoal, expected)

        case("stopped", stopped)
        case("transmission", lambda: transmission_interop(shoal, workdir))

        def private_shoal():
            if "shoal" not in private:
                private["shoal"], private["key"] = start_private_shoal(args.shoal, workdir)
                log("private shoal: %s" % private_url(private["shoal"], "KEY"))
            return private["shoal"], private["key"]

        def private_download():
            ps, key = private_shoal()
            seeder, leecher, (sh, lh), _ = libtorrent_swarm(ps, workdir, private_url(ps, key),
                                                              "private")
            seeder.session.remove_torrent(sh)
            leecher.session.remove_torrent(lh)

        case("private-udp", private_download)
        case("private-wrong-key", lambda: private_wrong_key(private_shoal()[0], workdir))
        case("warm-restart", lambda: warm_restart(args.shoal, workdir, restart))
        case("cluster", lambda: cluster_download(args.shoal, workdir, cluster))
        case("torrust-index", lambda: torrust_index(args.shoal, workdir, torrust))

        def shutdown():
            shoal.alive()
            t0 = time.monotonic()
            status = shoal.terminate()
            if status is None:
                raise Failure("shoal ignored SIGTERM for %ds (killed)" % SHUTDOWN_TIMEOUT)
            if status != 0:
                raise Failure("shoal exited with status %d on SIGTERM\n%s"
                              % (status, shoal.tail()))
            log("shoal exited 0 after %.2fs" % (time.monotonic() - t0))

        case("shutdown", shutdown)
    finally:
        swarms.clear()   # drop sessions before deleting their files
        if shoal is not None:
            shoal.terminate()
        if "shoal" in private:
            private["shoal"].terminate()
        if "restart" in restart:
            restart["restart"].terminate()
        for inst in ("a", "b"):
            if inst in cluster:
                cluster[inst].terminate()
        if "redis" in cluster:
            cluster["redis"].stop()
        if "torrust" in torrust:
            torrust["torrust"].terminate()
        shutil.rmtree(workdir, ignore_errors=True)
        passed = sum(results)
        print("%d passed, %d failed" % (passed, len(results) - passed), flush=True)
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
