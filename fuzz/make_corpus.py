#!/usr/bin/env python3
"""Writes the seed corpus: a few small valid inputs per fuzz target.

Run from anywhere: `python3 fuzz/make_corpus.py`. The output is committed
(fuzz/corpus/TARGET/NAME), so running the fuzzers needs no Python; rerun this
after changing an input layout in fuzz_targets/ or src/lib.rs.
Layouts are documented at the top of each target.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOCOL_ID = 0x41727101980
HASH_A = b"a" * 20
HASH_B = bytes([0x11] * 20)
PEER_ID = b"-SH0100-fuzzfuzzfuzz"


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- udp_core: now, then records [ctl][len][bytes] ----------------------------
# ctl bits 0-1 kind (0 v4, 1 v6, 2 v4-mapped, 3 link-local v6), bits 2-4 host,
# bit 5 patch the connection id, bits 6-7 clock step (0, 1, 120, 3000 s).
V4, V6, MAPPED, LL6 = 0, 1, 2, 3
PATCH = 0x20


def host(h):
    return h << 2


def record(ctl, datagram):
    assert len(datagram) <= 255
    return bytes([ctl, len(datagram)]) + datagram


def connect(tx=1):
    return struct.pack(">QII", PROTOCOL_ID, 0, tx)


def announce(tx=2, ih=HASH_A, left=0, event=2, num_want=-1, port=6881, options=b""):
    return (
        struct.pack(">QII", 0, 1, tx)
        + ih
        + PEER_ID
        + struct.pack(">QQQIIIiH", 0, left, 0, event, 0, 0x1234, num_want, port)
        + options
    )


def scrape(tx=3, hashes=(HASH_A,)):
    return struct.pack(">QII", 0, 2, tx) + b"".join(hashes)


NOW = struct.pack(">I", 1_000_000)
write("udp_core", "connect_v4", NOW + record(V4, connect()))
write(
    "udp_core",
    "announce_scrape_v4",
    NOW
    + record(V4, connect())
    + record(V4 | PATCH, announce(left=100))
    + record(V4 | host(1) | PATCH, announce(port=7000))
    + record(V4 | PATCH, scrape(hashes=(HASH_A, HASH_B, HASH_A))),
)
write(
    "udp_core",
    "announce_v6_and_mapped",
    NOW
    + record(V6 | PATCH, announce(left=5))
    + record(MAPPED | host(2) | PATCH, announce(num_want=0))
    + record(LL6 | host(3) | PATCH, announce(event=3))
    + record(V6 | host(1) | PATCH, scrape()),
)
write(
    "udp_core",
    "announce_bep41_url_data",
    NOW + record(V4 | PATCH, announce(options=b"\x01\x02\x09/announce\x02\x03?a=\x00")),
)
write(
    "udp_core",
    "expired_id_and_errors",
    NOW
    + record(V4 | PATCH, announce())
    + record(V4 | PATCH | 0x80, announce(tx=9))  # +120 s: the old id must fail
    + record(V4 | PATCH, announce()[:60])  # truncated, answerable
    + record(V4 | PATCH, struct.pack(">QII", 0, 7, 5))  # unknown action
    + record(V4 | 0xC0, announce()),  # +3000 s, no id: dropped
)

# ---- http_core: now, ctl, then the stream the client sent ---------------------
# ctl bits 0-4 as above (source), bit 5 trust X-Forwarded-For, bit 6 unhealthy.
def pct(b):
    return "".join("%{:02X}".format(x) for x in b)


ANN = (
    "/announce?info_hash=" + pct(HASH_A) + "&peer_id=" + pct(PEER_ID)
    + "&port=6881&uploaded=0&downloaded=0&left=100&event=started&numwant=20&key=ABCD"
)
SCR = "/scrape?info_hash=" + pct(HASH_A) + "&info_hash=" + pct(HASH_B)


def get(target, extra="", method="GET", version="1.1"):
    return f"{method} {target} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


write("http_core", "announce_close", NOW + bytes([V4]) + get(ANN, "Connection: close\r\n"))
write(
    "http_core",
    "pipelined_keep_alive",
    NOW
    + bytes([V6])
    + get(ANN)
    + get(ANN.replace("left=100", "left=0") + "&compact=0")
    + get(SCR)
    + get("/health", method="HEAD")
    + get("/metrics")
    + get("/nope")
    + get("/announce", method="POST"),
)
write(
    "http_core",
    "forwarded_for",
    NOW + bytes([MAPPED | 0x20]) + get(ANN, "X-Forwarded-For: 192.0.2.1, 2001:db8::7\r\n"),
)
write("http_core", "unhealthy_http10", NOW + bytes([V4 | 0x40]) + get("/health", version="1.0"))

# ---- client_parsers: raw reply bytes -------------------------------------------
def be_bytes(b):
    return str(len(b)).encode() + b":" + b


write(
    "client_parsers",
    "http_announce_compact",
    b"d8:completei1e10:incompletei2e8:intervali1800e12:min intervali900e5:peers"
    + be_bytes(bytes([10, 0, 0, 1, 0x1A, 0xE1]))
    + b"6:peers6"
    + be_bytes(bytes(15) + bytes([1, 0x1A, 0xE1]))
    + b"e",
)
write(
    "client_parsers",
    "http_announce_dict",
    b"d8:intervali60e5:peersld2:ip9:127.0.0.17:peer id20:"
    + PEER_ID
    + b"4:porti6881eed2:ip3:::14:porti1eee15:warning message2:hie",
)
write(
    "client_parsers",
    "http_scrape",
    b"d5:filesd20:" + HASH_A + b"d8:completei5e10:downloadedi50e10:incompletei10eeee",
)
write("client_parsers", "http_failure", b"d14:failure reason11:bad requeste")
write("client_parsers", "udp_connect", struct.pack(">IIQ", 0, 7, 0x0102030405060708))
write(
    "client_parsers",
    "udp_announce",
    struct.pack(">IIIII", 1, 7, 1800, 1, 2) + bytes([10, 0, 0, 1, 0x1A, 0xE1]),
)
write("client_parsers", "udp_scrape", struct.pack(">IIIII", 2, 7, 1, 2, 3))
write("client_parsers", "udp_error", struct.pack(">II", 3, 7) + b"unknown torrent")

# ---- cluster_batch: ctl, then a batch (src/cluster/batch.rs) --------------------
# ctl bit 0: the target puts the right tag (32 bytes) in place of the last 32.
RESIGN = 1
TAG = bytes(32)


def batch(kind, records, count=None):
    n = len(records) if count is None else count
    head = b"SHCL" + bytes([2, kind, 0, 0]) + struct.pack(">QQQHH", 7, 9, 11 << 16, n, 0)
    return head + b"".join(records) + TAG


def peer(ih, ip16, port, role, flags, stamp):
    return ih + ip16 + struct.pack(">HBBQ", port, role, flags, stamp)


MAPPED_10_0_0_1 = bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1])
LOOP6 = bytes(15) + b"\x01"
KEY = b"abcdefghijklmnopqrstuvwxyzABCDEF"


def access(stamp, op, payload, expiry):
    return struct.pack(">QB", stamp, op) + bytes(7) + payload + struct.pack(">Q", expiry)


write("cluster_batch", "empty", bytes([RESIGN]) + batch(0, []))
write(
    "cluster_batch",
    "one_seeder_completed",
    bytes([RESIGN]) + batch(0, [peer(HASH_B, MAPPED_10_0_0_1, 6881, 1, 1, 12 << 16)]),
)
write(
    "cluster_batch",
    "leecher_and_stop_v6",
    bytes([RESIGN])
    + batch(0, [peer(HASH_A, LOOP6, 1, 0, 0, 5), peer(HASH_A, LOOP6, 1, 2, 0, 6)]),
)
write(
    "cluster_batch",
    "access_changes",
    bytes([RESIGN])
    + batch(
        1,
        [
            access(1, 0, HASH_A + bytes(12), 0),
            access(2, 1, HASH_B + bytes(12), 0),
            access(3, 2, KEY, 1_900_000_000),
            access(4, 2, KEY, 2**64 - 1),
            access(5, 3, KEY, 0),
        ],
    ),
)


# ---- xdp_frame: whole Ethernet frames (the fixtures of src/xdp/frame/tests.rs,
# written by scapy): a BEP 15 connect over IPv4 and IPv6 to port 6969, and an
# IPv4 one padded to the 60-byte minimum frame.
V4_CONNECT = bytes.fromhex(
    "0200000000020200000000010800"
    "4500002c1c46400040110a790a0000010a000002"
    "9c401b3900188a13"
    "000004172710198000000000a1b2c3d4"
)
V6_CONNECT = bytes.fromhex(
    "02000000000202000000000186dd"
    "6000000000181140fd000000000000000000000000000001fd000000000000000000000000000002"
    "9c401b390018a411"
    "000004172710198000000000a1b2c3d4"
)
write("xdp_frame", "v4_connect", V4_CONNECT)
write("xdp_frame", "v4_connect_padded", V4_CONNECT + bytes(2))
write("xdp_frame", "v6_connect", V6_CONNECT)
