//! Sobani rendezvous messages: JSON objects in single UDP datagrams.
//!
//! Owns the wire shapes of the protocol (the `sobani-tracker` README): the
//! request view the server parses ([`Request::parse`], borrowing from the
//! datagram, no allocation) and the replies ([`Reply`]), which the server
//! serialises into a fixed buffer and the client deserialises into owned values.
//!
//! Guarantees: parsing never panics and never allocates (strings are borrowed;
//! an escaped string, which cannot be borrowed, counts as a wrong type); a
//! request field that is not a share id is reported as such, not as garbage, so
//! the handler answers it with an `unknown shareId` error instead of dropping it.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;
use std::net::{SocketAddr, SocketAddrV6};

/// Largest request read; anything longer is dropped unparsed.
pub const MAX_REQUEST: usize = 2048;

/// A share id: 8 lowercase hex characters on the wire, 32 bits inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareId(pub u32);

impl ShareId {
    /// Parse the wire form: exactly 8 lowercase hex digits.
    pub fn parse(s: &str) -> Option<ShareId> {
        let b = s.as_bytes();
        if b.len() != 8 {
            return None;
        }
        let mut v = 0u32;
        for &c in b {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            v = (v << 4) | u32::from(d);
        }
        Some(ShareId(v))
    }

    /// The wire form, without allocating.
    pub fn to_hex(self) -> [u8; 8] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 8];
        for (i, o) in out.iter_mut().enumerate() {
            *o = HEX[((self.0 >> (28 - 4 * i)) & 0xf) as usize];
        }
        out
    }
}

impl fmt::Display for ShareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl Serialize for ShareId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = self.to_hex();
        // Always ASCII hex digits; the fallback is unreachable but panic-free.
        s.serialize_str(std::str::from_utf8(&hex).unwrap_or("00000000"))
    }
}

impl<'de> Deserialize<'de> for ShareId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        ShareId::parse(&s).ok_or_else(|| de::Error::custom("not a share id"))
    }
}

/// A peer address as the protocol writes it: `ip:port`, `[v6]:port`. The
/// address must already be canonical (IPv4-mapped turned into IPv4); flow info
/// and scope id are never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(a) => a.fmt(f),
            SocketAddr::V6(a) => SocketAddrV6::new(*a.ip(), a.port(), 0, 0).fmt(f),
        }
    }
}

impl Serialize for PeerAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // serde_json's collect_str formats straight into the output: no String.
        s.collect_str(self)
    }
}

/// The other side of an introduction: `data` of `pushed` and `income`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer<S, A> {
    #[serde(rename = "peeraddr")]
    pub peer_addr: A,
    #[serde(rename = "peerShareId")]
    pub peer_share_id: S,
}

/// `data` of `announced`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced<S> {
    #[serde(rename = "shareId")]
    pub share_id: S,
}

/// `data` of `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData<S> {
    pub reason: S,
}

/// Every message the tracker sends. The server writes `Reply<ShareId, PeerAddr>`
/// (reason `&'static str`); the client reads `Reply<ShareId, SocketAddr>`
/// (reason `String`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", content = "data", rename_all = "lowercase")]
pub enum Reply<A, R> {
    /// `{"action":"announced","data":{"shareId":"…"}}`
    Announced(Announced<ShareId>),
    /// `{"action":"pushed","data":{"peeraddr":"…","peerShareId":"…"}}`: to the requester.
    Pushed(Peer<ShareId, A>),
    /// `{"action":"income","data":{"peeraddr":"…","peerShareId":"…"}}`: to the requestee.
    Income(Peer<ShareId, A>),
    /// `{"action":"alived"}`
    Alived,
    /// `{"action":"expired"}`: the sender is not (or no longer) registered.
    Expired,
    /// `{"action":"error","data":{"reason":"…"}}`
    Error(ErrorData<R>),
}

/// The reply the server writes.
pub type ServerReply = Reply<PeerAddr, &'static str>;

/// The reason sent for a push naming an unknown or malformed share id.
pub const UNKNOWN_SHARE_ID: &str = "unknown shareId";

/// Write `reply` into `out`; `None` if it does not fit.
pub fn write_reply(reply: &ServerReply, out: &mut [u8]) -> Option<usize> {
    let cap = out.len();
    let mut w: &mut [u8] = out;
    serde_json::to_writer(&mut w, reply).ok()?;
    Some(cap - w.len())
}

/// A request field that should hold a share id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdField<'a> {
    /// A string (maybe not an id: checked by [`ShareId::parse`]).
    Str(&'a str),
    /// Anything else: a number, an object, an escaped string…
    NotAnId,
}

impl<'de: 'a, 'a> Deserialize<'de> for IdField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IdFieldVisitor(PhantomData))
    }
}

struct IdFieldVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for IdFieldVisitor<'a> {
    type Value = IdField<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(IdField::Str(v))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(IdField::NotAnId)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(IdField::NotAnId)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(IdField::NotAnId)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(IdField::NotAnId)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(IdField::NotAnId)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Self::Value, S::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(IdField::NotAnId)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(IdField::NotAnId)
    }
}

/// The request's `data` field: an object (maybe holding `shareId`) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataField<'a> {
    Object(Option<IdField<'a>>),
    NotAnObject,
}

impl<'de: 'a, 'a> Deserialize<'de> for DataField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DataVisitor(PhantomData))
    }
}

struct DataVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for DataVisitor<'a> {
    type Value = DataField<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
        let mut id = None;
        while let Some(key) = m.next_key::<KeyName>()? {
            match key {
                KeyName::ShareId => id = m.next_value::<Option<IdField<'a>>>()?,
                KeyName::Other => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(DataField::Object(id))
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut s: S) -> Result<Self::Value, S::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(DataField::NotAnObject)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(DataField::NotAnObject)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(DataField::NotAnObject)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(DataField::NotAnObject)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(DataField::NotAnObject)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(DataField::NotAnObject)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(DataField::NotAnObject)
    }
}

/// A key of the `data` object: only `shareId` matters.
enum KeyName {
    ShareId,
    Other,
}

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(if v == "shareId" {
                    KeyName::ShareId
                } else {
                    KeyName::Other
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The top-level request object as parsed; every other field is ignored.
#[derive(Debug, Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    action: &'a str,
    #[serde(rename = "shareId", default, borrow)]
    share_id: Option<IdField<'a>>,
    #[serde(default, borrow)]
    data: Option<DataField<'a>>,
}

/// A parsed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    Announce,
    Alive,
    /// `push` naming this field: top-level `shareId` if present, else `data.shareId`.
    Push(IdField<'a>),
}

/// Why a datagram is dropped without a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Over [`MAX_REQUEST`] bytes.
    TooLarge,
    /// Not a JSON object with a string `action` (or not UTF-8, or escaped `action`).
    NotJson,
    /// An `action` this protocol does not have.
    UnknownAction,
    /// A `push` without a share id field, or with `data` that is not an object.
    BadPush,
    /// The replies would exceed the amplification bound (see [`super::SOURCE_FACTOR`]).
    Amplification,
    /// No free share id for this address (every candidate taken: practically never).
    NoFreeId,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::TooLarge,
        DropReason::NotJson,
        DropReason::UnknownAction,
        DropReason::BadPush,
        DropReason::Amplification,
        DropReason::NoFreeId,
    ];

    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooLarge => "too_large",
            DropReason::NotJson => "not_json",
            DropReason::UnknownAction => "unknown_action",
            DropReason::BadPush => "bad_push",
            DropReason::Amplification => "amplification",
            DropReason::NoFreeId => "no_free_id",
        }
    }
}

impl<'a> Request<'a> {
    /// Parse one datagram.
    pub fn parse(bytes: &'a [u8]) -> Result<Request<'a>, DropReason> {
        if bytes.len() > MAX_REQUEST {
            return Err(DropReason::TooLarge);
        }
        // serde_json boxes every error it reports: turn away what cannot be an
        // object before it gets there, so random garbage costs no allocation
        // (malformed JSON that does look like an object still costs one Box).
        let t = bytes.trim_ascii();
        if t.first() != Some(&b'{') || t.last() != Some(&b'}') {
            return Err(DropReason::NotJson);
        }
        let w: Wire<'a> = serde_json::from_slice(bytes).map_err(|_| DropReason::NotJson)?;
        match w.action {
            "announce" => Ok(Request::Announce),
            "alive" => Ok(Request::Alive),
            "push" => match (w.share_id, w.data) {
                (Some(id), _) => Ok(Request::Push(id)),
                (None, Some(DataField::Object(Some(id)))) => Ok(Request::Push(id)),
                _ => Err(DropReason::BadPush),
            },
            _ => Err(DropReason::UnknownAction),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(r: &ServerReply) -> String {
        let mut buf = [0u8; 256];
        let n = write_reply(r, &mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn test_parse() {
        assert_eq!(
            Request::parse(br#"{"action":"announce"}"#),
            Ok(Request::Announce)
        );
        assert_eq!(
            Request::parse(br#"{"id":"x","action":"announce","data":7}"#),
            Ok(Request::Announce),
            "other fields are ignored"
        );
        assert_eq!(
            Request::parse(br#" {"action":"alive"} "#),
            Ok(Request::Alive)
        );
        assert_eq!(
            Request::parse(br#"{"action":"push","shareId":"abcdef01"}"#),
            Ok(Request::Push(IdField::Str("abcdef01")))
        );
        assert_eq!(
            Request::parse(br#"{"action":"push","data":{"x":[1],"shareId":"abcdef01"}}"#),
            Ok(Request::Push(IdField::Str("abcdef01")))
        );
        assert_eq!(
            Request::parse(br#"{"action":"push","shareId":12}"#),
            Ok(Request::Push(IdField::NotAnId))
        );
        assert_eq!(
            Request::parse(br#"{"action":"push","shareId":"\u0061bcdef01"}"#),
            Ok(Request::Push(IdField::NotAnId))
        );
        assert_eq!(
            Request::parse(br#"{"action":"push"}"#),
            Err(DropReason::BadPush)
        );
        assert_eq!(
            Request::parse(br#"{"action":"push","data":"abcdef01"}"#),
            Err(DropReason::BadPush)
        );
        assert_eq!(
            Request::parse(br#"{"action":"pull"}"#),
            Err(DropReason::UnknownAction)
        );
        for bad in [
            &b"announce"[..],
            b"",
            b"{}",
            b"[]",
            br#"{"action":1}"#,
            br#"{"action":"announce"} x"#,
            br#"{"action":"announce","action":"alive"}"#,
            b"{\"action\":\"\xff\"}",
        ] {
            assert_eq!(Request::parse(bad), Err(DropReason::NotJson), "{bad:?}");
        }
        let mut big = br#"{"action":"announce","pad":""#.to_vec();
        big.resize(MAX_REQUEST, b' ');
        assert_eq!(Request::parse(&big), Err(DropReason::NotJson));
        big.push(b' ');
        assert_eq!(Request::parse(&big), Err(DropReason::TooLarge));
    }

    #[test]
    fn test_emit() {
        let id = ShareId(0x0a1b_2c3d);
        assert_eq!(
            write(&Reply::Announced(Announced { share_id: id })),
            r#"{"action":"announced","data":{"shareId":"0a1b2c3d"}}"#
        );
        let peer = |a: &str| Peer {
            peer_addr: PeerAddr(a.parse().unwrap()),
            peer_share_id: id,
        };
        assert_eq!(
            write(&Reply::Pushed(peer("1.2.3.4:23333"))),
            r#"{"action":"pushed","data":{"peeraddr":"1.2.3.4:23333","peerShareId":"0a1b2c3d"}}"#
        );
        assert_eq!(
            write(&Reply::Income(peer("[2001:db8::1%7]:80"))),
            r#"{"action":"income","data":{"peeraddr":"[2001:db8::1]:80","peerShareId":"0a1b2c3d"}}"#,
            "no scope id"
        );
        assert_eq!(write(&Reply::Alived), r#"{"action":"alived"}"#);
        assert_eq!(write(&Reply::Expired), r#"{"action":"expired"}"#);
        assert_eq!(
            write(&Reply::Error(ErrorData {
                reason: UNKNOWN_SHARE_ID
            })),
            r#"{"action":"error","data":{"reason":"unknown shareId"}}"#
        );
        assert_eq!(write_reply(&Reply::Alived, &mut [0u8; 10]), None);
    }

    #[test]
    fn client_reads_what_server_writes() {
        let r: Reply<SocketAddr, String> = serde_json::from_str(
            r#"{"action":"pushed","data":{"peeraddr":"[::1]:5","peerShareId":"00000001"}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Reply::Pushed(Peer {
                peer_addr: "[::1]:5".parse().unwrap(),
                peer_share_id: ShareId(1)
            })
        );
        let r: Reply<SocketAddr, String> = serde_json::from_str(r#"{"action":"alived"}"#).unwrap();
        assert_eq!(r, Reply::Alived);
    }

    #[test]
    fn share_id_hex() {
        for s in ["00000000", "ffffffff", "0a1b2c3d"] {
            assert_eq!(ShareId::parse(s).unwrap().to_hex(), s.as_bytes());
        }
        for s in [
            "",
            "0a1b2c3",
            "0a1b2c3d4",
            "0A1B2C3D",
            "0a1b2c3g",
            "1.2.3.4:5",
        ] {
            assert_eq!(ShareId::parse(s), None, "{s}");
        }
    }
}
