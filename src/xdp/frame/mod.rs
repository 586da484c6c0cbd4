//! Ethernet frames carrying the tracker's UDP datagrams, for the AF_XDP path.
//!
//! With AF_XDP the kernel's IP and UDP layers are bypassed: a worker gets
//! whole Ethernet frames and must hand back whole frames. This module owns
//! those layouts: [`parse`] reads an Ethernet II frame holding an IPv4 or
//! IPv6 UDP datagram addressed to one of the tracker's ports, and
//! [`Datagram::write`] writes the headers of a frame around a payload already
//! in place, so the tracker core writes its reply straight into the frame.
//!
//! What is accepted is what the XDP program redirects (`src/xdp/prog.c`
//! mirrors these rules; anything else stays with the kernel): untagged
//! Ethernet, IPv4 without options and not fragmented, with a valid header
//! checksum, or IPv6 whose next header is UDP (no extension headers, so no
//! fragments), a UDP length that agrees with the IP length, a source that can
//! be answered (a unicast MAC, a unicast or non-broadcast IP, a non-zero port).
//!
//! The UDP checksum of a received datagram is not verified: on a veth or a
//! NIC with receive offload the frame may carry only the pseudo-header sum
//! (`CHECKSUM_PARTIAL`), the link's CRC has already guarded the bytes, and the
//! tracker core refuses what it cannot read. Replies always carry a UDP
//! checksum (mandatory for IPv6, RFC 8200 §8.1; computed for IPv4 too).
//!
//! Guarantees: parsing never panics, never allocates, and borrows the payload
//! from the frame; writing never writes past the buffer and returns `None`
//! when the frame does not fit. All integers on the wire are big-endian.

use byteorder::{BigEndian, ByteOrder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A MAC address.
pub type Mac = [u8; 6];

/// Byte ranges of the headers, from the start of the frame (smoltcp's
/// `mod field` shape). The IP header starts at [`eth::END`]; the UDP header at
/// [`ipv4::END`] or [`ipv6::END`].
pub mod field {
    use core::ops::Range;

    /// A fixed-size field.
    pub type Field = Range<usize>;

    /// Ethernet II (no 802.1Q tag).
    pub mod eth {
        use super::Field;
        pub const DST: Field = 0..6;
        pub const SRC: Field = 6..12;
        pub const ETHERTYPE: Field = 12..14;
        pub const END: usize = 14;
    }

    /// IPv4 without options (RFC 791).
    pub mod ipv4 {
        use super::Field;
        /// Version (high nibble) and header length in 32-bit words (low nibble).
        pub const VER_IHL: usize = 14;
        pub const TOS: usize = 15;
        pub const TOTAL_LEN: Field = 16..18;
        pub const IDENT: Field = 18..20;
        /// Flags (reserved, DF, MF) and the fragment offset.
        pub const FLAGS_FRAG: Field = 20..22;
        pub const TTL: usize = 22;
        pub const PROTOCOL: usize = 23;
        pub const CHECKSUM: Field = 24..26;
        pub const SRC: Field = 26..30;
        pub const DST: Field = 30..34;
        pub const HEADER: Field = 14..34;
        pub const END: usize = 34;
    }

    /// IPv6 fixed header (RFC 8200).
    pub mod ipv6 {
        use super::Field;
        /// Version, traffic class and flow label.
        pub const VER_TC_FLOW: Field = 14..18;
        pub const PAYLOAD_LEN: Field = 18..20;
        pub const NEXT_HEADER: usize = 20;
        pub const HOP_LIMIT: usize = 21;
        pub const SRC: Field = 22..38;
        pub const DST: Field = 38..54;
        pub const END: usize = 54;
    }

    /// UDP (RFC 768), relative to the start of the UDP header.
    pub mod udp {
        use super::Field;
        pub const SRC_PORT: Field = 0..2;
        pub const DST_PORT: Field = 2..4;
        pub const LEN: Field = 4..6;
        pub const CHECKSUM: Field = 6..8;
        pub const HEADER: usize = 8;
    }
}

use field::{eth, ipv4, ipv6, udp};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
pub const IPPROTO_UDP: u8 = 17;
/// Frame headers before a UDP payload, IPv4 and IPv6.
pub const HEADERS_V4: usize = ipv4::END + udp::HEADER;
pub const HEADERS_V6: usize = ipv6::END + udp::HEADER;
/// The shortest Ethernet frame without its CRC; shorter replies are padded.
pub const MIN_FRAME: usize = 60;
/// TTL / hop limit of replies (Linux's default).
const HOP_LIMIT: u8 = 64;
/// IPv4 flags of replies: don't fragment (replies are sized to the MTU).
const DONT_FRAGMENT: u16 = 0x4000;

/// Why a frame is not a datagram for the tracker. `Copy`, with a static
/// message: refusing garbage allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Shorter than the headers it announces.
    Truncated,
    /// Not IPv4 or IPv6 in an untagged Ethernet II frame.
    NotIp,
    /// The IP version nibble disagrees with the ethertype.
    BadVersion,
    /// IPv4 options or IPv6 extension headers.
    IpOptions,
    /// An IPv4 fragment (MF or an offset) or an IPv6 fragment header.
    Fragment,
    /// Not UDP.
    NotUdp,
    /// IP and UDP lengths that disagree with each other or the frame.
    BadLength,
    /// A wrong IPv4 header checksum, or an IPv6 UDP checksum of zero.
    BadChecksum,
    /// Not addressed to one of the tracker's ports.
    OtherPort,
    /// A source that cannot be answered: multicast or broadcast, an
    /// unspecified address, port 0.
    BadSource,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Truncated => "truncated",
            Skip::NotIp => "not_ip",
            Skip::BadVersion => "bad_version",
            Skip::IpOptions => "ip_options",
            Skip::Fragment => "fragment",
            Skip::NotUdp => "not_udp",
            Skip::BadLength => "bad_length",
            Skip::BadChecksum => "bad_checksum",
            Skip::OtherPort => "other_port",
            Skip::BadSource => "bad_source",
        }
    }
}

/// The two ends of a UDP datagram on an Ethernet link: MACs, addresses and
/// ports, both of one IP family (the type has no other states).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    src_mac: Mac,
    dst_mac: Mac,
    ips: Ips,
    src_port: u16,
    dst_port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ips {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

impl Datagram {
    /// From `src` to `dst`; `None` if they are of different families.
    pub fn new(src_mac: Mac, dst_mac: Mac, src: SocketAddr, dst: SocketAddr) -> Option<Self> {
        let ips = match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Ips::V4 {
                src: s.octets(),
                dst: d.octets(),
            },
            (IpAddr::V6(s), IpAddr::V6(d)) => Ips::V6 {
                src: s.octets(),
                dst: d.octets(),
            },
            _ => return None,
        };
        Some(Datagram {
            src_mac,
            dst_mac,
            ips,
            src_port: src.port(),
            dst_port: dst.port(),
        })
    }

    pub fn src_mac(&self) -> Mac {
        self.src_mac
    }

    pub fn dst_mac(&self) -> Mac {
        self.dst_mac
    }

    /// The sender: what the tracker core is given as the request's source.
    pub fn src(&self) -> SocketAddr {
        match self.ips {
            Ips::V4 { src, .. } => SocketAddrV4::new(Ipv4Addr::from(src), self.src_port).into(),
            Ips::V6 { src, .. } => {
                SocketAddrV6::new(Ipv6Addr::from(src), self.src_port, 0, 0).into()
            }
        }
    }

    pub fn dst(&self) -> SocketAddr {
        match self.ips {
            Ips::V4 { dst, .. } => SocketAddrV4::new(Ipv4Addr::from(dst), self.dst_port).into(),
            Ips::V6 { dst, .. } => {
                SocketAddrV6::new(Ipv6Addr::from(dst), self.dst_port, 0, 0).into()
            }
        }
    }

    /// The way back: MACs, addresses and ports swapped.
    pub fn reply(&self) -> Datagram {
        Datagram {
            src_mac: self.dst_mac,
            dst_mac: self.src_mac,
            ips: match self.ips {
                Ips::V4 { src, dst } => Ips::V4 { src: dst, dst: src },
                Ips::V6 { src, dst } => Ips::V6 { src: dst, dst: src },
            },
            src_port: self.dst_port,
            dst_port: self.src_port,
        }
    }

    /// Bytes of headers before the payload in a frame this writes.
    pub fn header_len(&self) -> usize {
        match self.ips {
            Ips::V4 { .. } => HEADERS_V4,
            Ips::V6 { .. } => HEADERS_V6,
        }
    }

    /// Writes the Ethernet, IP and UDP headers into `frame[..header_len()]`
    /// around the `payload_len` bytes already at `frame[header_len()..]`,
    /// checksums included, and pads the frame to [`MIN_FRAME`] with zeros.
    /// Returns the frame's length, or `None` if it does not fit in `frame`
    /// or in the IP and UDP length fields.
    pub fn write(&self, frame: &mut [u8], payload_len: usize) -> Option<usize> {
        let at = self.header_len();
        let udp_len = u16::try_from(udp::HEADER + payload_len).ok()?;
        let end = at + payload_len;
        let len = end.max(MIN_FRAME);
        if len > frame.len() {
            return None;
        }
        frame[eth::DST].copy_from_slice(&self.dst_mac);
        frame[eth::SRC].copy_from_slice(&self.src_mac);
        // The UDP checksum's pseudo-header (RFC 768 / RFC 8200 §8.1): the
        // addresses, the protocol and the UDP length.
        let pseudo = match &self.ips {
            Ips::V4 { src, dst } => {
                let total = u16::try_from(ipv4::END - eth::END + usize::from(udp_len)).ok()?;
                BigEndian::write_u16(&mut frame[eth::ETHERTYPE], ETHERTYPE_IPV4);
                frame[ipv4::VER_IHL] = 0x45;
                frame[ipv4::TOS] = 0;
                BigEndian::write_u16(&mut frame[ipv4::TOTAL_LEN], total);
                BigEndian::write_u16(&mut frame[ipv4::IDENT], 0);
                BigEndian::write_u16(&mut frame[ipv4::FLAGS_FRAG], DONT_FRAGMENT);
                frame[ipv4::TTL] = HOP_LIMIT;
                frame[ipv4::PROTOCOL] = IPPROTO_UDP;
                BigEndian::write_u16(&mut frame[ipv4::CHECKSUM], 0);
                frame[ipv4::SRC].copy_from_slice(src);
                frame[ipv4::DST].copy_from_slice(dst);
                let sum = checksum(&frame[ipv4::HEADER]);
                BigEndian::write_u16(&mut frame[ipv4::CHECKSUM], sum);
                sum_words(src, sum_words(dst, 0))
            }
            Ips::V6 { src, dst } => {
                BigEndian::write_u16(&mut frame[eth::ETHERTYPE], ETHERTYPE_IPV6);
                // Version 6, traffic class 0, flow label 0.
                BigEndian::write_u32(&mut frame[ipv6::VER_TC_FLOW], 6 << 28);
                BigEndian::write_u16(&mut frame[ipv6::PAYLOAD_LEN], udp_len);
                frame[ipv6::NEXT_HEADER] = IPPROTO_UDP;
                frame[ipv6::HOP_LIMIT] = HOP_LIMIT;
                frame[ipv6::SRC].copy_from_slice(src);
                frame[ipv6::DST].copy_from_slice(dst);
                sum_words(src, sum_words(dst, 0))
            }
        };
        let u = &mut frame[at - udp::HEADER..end];
        BigEndian::write_u16(&mut u[udp::SRC_PORT], self.src_port);
        BigEndian::write_u16(&mut u[udp::DST_PORT], self.dst_port);
        BigEndian::write_u16(&mut u[udp::LEN], udp_len);
        BigEndian::write_u16(&mut u[udp::CHECKSUM], 0);
        let sum = fold(sum_words(
            u,
            pseudo + u64::from(IPPROTO_UDP) + u64::from(udp_len),
        ));
        // A computed 0 is sent as all ones: 0 means "no checksum" (RFC 768).
        let sum = if sum == 0 { 0xFFFF } else { sum };
        BigEndian::write_u16(&mut u[udp::CHECKSUM], sum);
        frame[end..len].fill(0);
        Some(len)
    }
}

/// Reads `frame` as a UDP datagram to one of `ports`: the two ends and the
/// payload (borrowed from `frame`), or why it is not one.
pub fn parse<'f>(frame: &'f [u8], ports: &[u16]) -> Result<(Datagram, &'f [u8]), Skip> {
    if frame.len() < HEADERS_V4 {
        return Err(Skip::Truncated);
    }
    let mut src_mac = [0; 6];
    let mut dst_mac = [0; 6];
    src_mac.copy_from_slice(&frame[eth::SRC]);
    dst_mac.copy_from_slice(&frame[eth::DST]);
    let (ips, at, ip_payload) = match BigEndian::read_u16(&frame[eth::ETHERTYPE]) {
        ETHERTYPE_IPV4 => {
            let ver_ihl = frame[ipv4::VER_IHL];
            if ver_ihl >> 4 != 4 {
                return Err(Skip::BadVersion);
            }
            match ver_ihl & 0x0F {
                5 => {}
                0..5 => return Err(Skip::BadLength),
                _ => return Err(Skip::IpOptions),
            }
            let total = usize::from(BigEndian::read_u16(&frame[ipv4::TOTAL_LEN]));
            if total < ipv4::END - eth::END + udp::HEADER || eth::END + total > frame.len() {
                return Err(Skip::BadLength);
            }
            // MF set or a non-zero offset: a piece of a larger datagram.
            if BigEndian::read_u16(&frame[ipv4::FLAGS_FRAG]) & 0x3FFF != 0 {
                return Err(Skip::Fragment);
            }
            if frame[ipv4::PROTOCOL] != IPPROTO_UDP {
                return Err(Skip::NotUdp);
            }
            if checksum(&frame[ipv4::HEADER]) != 0 {
                return Err(Skip::BadChecksum);
            }
            let mut src = [0; 4];
            let mut dst = [0; 4];
            src.copy_from_slice(&frame[ipv4::SRC]);
            dst.copy_from_slice(&frame[ipv4::DST]);
            let s = Ipv4Addr::from(src);
            if s.is_broadcast() || s.is_multicast() || s.is_unspecified() {
                return Err(Skip::BadSource);
            }
            (
                Ips::V4 { src, dst },
                ipv4::END,
                total - (ipv4::END - eth::END),
            )
        }
        ETHERTYPE_IPV6 => {
            if frame.len() < HEADERS_V6 {
                return Err(Skip::Truncated);
            }
            if frame[ipv6::VER_TC_FLOW.start] >> 4 != 6 {
                return Err(Skip::BadVersion);
            }
            match frame[ipv6::NEXT_HEADER] {
                IPPROTO_UDP => {}
                44 => return Err(Skip::Fragment),
                // Hop-by-hop, routing, destination options, AH, mobility,
                // HIP, shim6: extension headers before a possible UDP header.
                0 | 43 | 60 | 51 | 135 | 139 | 140 => return Err(Skip::IpOptions),
                _ => return Err(Skip::NotUdp),
            }
            let payload = usize::from(BigEndian::read_u16(&frame[ipv6::PAYLOAD_LEN]));
            if payload < udp::HEADER || ipv6::END + payload > frame.len() {
                return Err(Skip::BadLength);
            }
            let mut src = [0; 16];
            let mut dst = [0; 16];
            src.copy_from_slice(&frame[ipv6::SRC]);
            dst.copy_from_slice(&frame[ipv6::DST]);
            let s = Ipv6Addr::from(src);
            if s.is_multicast() || s.is_unspecified() {
                return Err(Skip::BadSource);
            }
            (Ips::V6 { src, dst }, ipv6::END, payload)
        }
        _ => return Err(Skip::NotIp),
    };
    let u = &frame[at..at + ip_payload];
    if usize::from(BigEndian::read_u16(&u[udp::LEN])) != ip_payload {
        return Err(Skip::BadLength);
    }
    let dst_port = BigEndian::read_u16(&u[udp::DST_PORT]);
    if !ports.contains(&dst_port) {
        return Err(Skip::OtherPort);
    }
    if matches!(ips, Ips::V6 { .. }) && BigEndian::read_u16(&u[udp::CHECKSUM]) == 0 {
        return Err(Skip::BadChecksum);
    }
    let src_port = BigEndian::read_u16(&u[udp::SRC_PORT]);
    // A group MAC (the I/G bit) or port 0 cannot be answered.
    if src_port == 0 || src_mac[0] & 1 != 0 {
        return Err(Skip::BadSource);
    }
    let datagram = Datagram {
        src_mac,
        dst_mac,
        ips,
        src_port,
        dst_port,
    };
    Ok((datagram, &u[udp::HEADER..]))
}

/// The Internet checksum (RFC 1071) of `bytes`: 0 over a header whose
/// checksum field is right.
pub fn checksum(bytes: &[u8]) -> u16 {
    fold(sum_words(bytes, 0))
}

/// Adds `bytes` as big-endian 16-bit words (an odd last byte padded with a
/// zero) to `acc`. Summing 32-bit words is the same sum modulo 0xFFFF
/// (2^16 ≡ 1), with half the additions; a u64 cannot overflow for any frame.
fn sum_words(bytes: &[u8], mut acc: u64) -> u64 {
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(BigEndian::read_u32(w));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(BigEndian::read_u16(p));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// The one's complement of the one's complement sum folded to 16 bits.
fn fold(mut acc: u64) -> u16 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
mod tests;
