//! The Redis stream the cluster's batches travel on: appending with a
//! time-bounded length, reading on from a position, and the replies taken
//! apart without trusting their shape.
//!
//! Each entry has one field, `b`, holding one batch. Entries are trimmed by
//! age (`XADD … MINID ~ <now − backlog>`), using the Redis server's own clock
//! (the millisecond part of the id it just assigned), so the instances'
//! clocks do not decide what is kept. Needs Redis ≥ 6.2 or any Valkey.

use std::fmt;

/// The field an entry's batch is stored under.
pub const FIELD: &str = "b";

/// A stream entry's id: `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// Before every entry.
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    pub fn parse(s: &[u8]) -> Option<StreamId> {
        let s = std::str::from_utf8(s).ok()?;
        let (ms, seq) = s.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Append `batch` to `key`, dropping entries older than `backlog_ms` before
/// `last` (the id of our previous append, in the server's clock). The id
/// assigned.
pub fn append(
    con: &mut redis::Connection,
    key: &str,
    last: StreamId,
    backlog_ms: u64,
    batch: &[u8],
) -> redis::RedisResult<StreamId> {
    let min = last.ms.saturating_sub(backlog_ms);
    let id: Vec<u8> = redis::cmd("XADD")
        .arg(key)
        .arg("MINID")
        .arg("~")
        .arg(min)
        .arg("*")
        .arg(FIELD)
        .arg(batch)
        .query(con)?;
    StreamId::parse(&id).ok_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Parse, "XADD returned no stream id"))
    })
}

/// One entry read: its id and its batch (`None`: the entry has no `b`
/// field, so it is not ours).
pub type Entry = (StreamId, Option<Vec<u8>>);

/// Up to `count` entries of `key` after `after`, waiting up to `block_ms`
/// for the first.
pub fn read(
    con: &mut redis::Connection,
    key: &str,
    after: StreamId,
    count: usize,
    block_ms: u64,
    out: &mut Vec<Entry>,
) -> redis::RedisResult<()> {
    let reply: redis::Value = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(block_ms)
        .arg("STREAMS")
        .arg(key)
        .arg(after.to_string())
        .query(con)?;
    entries_of_read(reply, out);
    Ok(())
}

/// The id of the first entry of `key` (`None`: the stream is empty).
pub fn first_id_of(con: &mut redis::Connection, key: &str) -> redis::RedisResult<Option<StreamId>> {
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query(con)?;
    Ok(first_id(reply))
}

fn first_id(reply: redis::Value) -> Option<StreamId> {
    let mut out = Vec::new();
    entries(reply, &mut out);
    out.first().map(|e| e.0)
}

/// The elements of an array (RESP2) or set/push (RESP3) reply.
fn items(v: redis::Value) -> Vec<redis::Value> {
    match v {
        redis::Value::Array(v) | redis::Value::Set(v) => v,
        _ => Vec::new(),
    }
}

fn bytes(v: redis::Value) -> Option<Vec<u8>> {
    match v {
        redis::Value::BulkString(b) => Some(b),
        redis::Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// An XREAD reply: `[[key, [entry, …]]]` (RESP2) or `{key: [entry, …]}`
/// (RESP3); nil on a timeout.
fn entries_of_read(reply: redis::Value, out: &mut Vec<Entry>) {
    match reply {
        redis::Value::Map(pairs) => {
            for (_, list) in pairs {
                entries(list, out);
            }
        }
        other => {
            for stream in items(other) {
                if let Some(list) = items(stream).into_iter().nth(1) {
                    entries(list, out);
                }
            }
        }
    }
}

/// A list of entries `[[id, [field, value, …]], …]`; entries without a
/// parsable id are skipped (they cannot be resumed from anyway).
fn entries(list: redis::Value, out: &mut Vec<Entry>) {
    for entry in items(list) {
        let mut parts = items(entry).into_iter();
        let Some(id) = parts
            .next()
            .and_then(bytes)
            .and_then(|b| StreamId::parse(&b))
        else {
            continue;
        };
        let mut batch = None;
        let mut fields = parts.next().map(items).unwrap_or_default().into_iter();
        while let (Some(f), Some(v)) = (fields.next(), fields.next()) {
            if bytes(f).as_deref() == Some(FIELD.as_bytes()) {
                batch = bytes(v);
                break;
            }
        }
        out.push((id, batch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value::{Array, BulkString, Map, Nil};

    fn bs(s: &str) -> redis::Value {
        BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn ids_parse_order_and_print() {
        let a = StreamId::parse(b"1700000000000-3").unwrap();
        assert_eq!(
            a,
            StreamId {
                ms: 1_700_000_000_000,
                seq: 3
            }
        );
        assert_eq!(a.to_string(), "1700000000000-3");
        assert!(a < StreamId::parse(b"1700000000000-4").unwrap());
        assert!(a < StreamId::parse(b"1700000000001-0").unwrap());
        for bad in [&b""[..], b"12", b"a-1", b"1-", b"-1", b"1-2-3"] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn read_replies_are_taken_apart_whatever_their_shape() {
        let entry = |id: &str, fields: Vec<redis::Value>| Array(vec![bs(id), Array(fields)]);
        let list = Array(vec![
            entry("5-0", vec![bs("b"), bs("batch")]),
            entry("6-0", vec![bs("other"), bs("x")]),
            entry("bad", vec![bs("b"), bs("y")]),
            Array(vec![]),
            bs("junk"),
            entry("7-1", vec![bs("x"), bs("1"), bs("b"), bs("late")]),
        ]);
        let mut out = Vec::new();
        entries_of_read(Array(vec![Array(vec![bs("k"), list.clone()])]), &mut out);
        let want = vec![
            (StreamId { ms: 5, seq: 0 }, Some(b"batch".to_vec())),
            (StreamId { ms: 6, seq: 0 }, None),
            (StreamId { ms: 7, seq: 1 }, Some(b"late".to_vec())),
        ];
        assert_eq!(out, want);
        out.clear();
        entries_of_read(Map(vec![(bs("k"), list)]), &mut out);
        assert_eq!(out, want, "RESP3");
        out.clear();
        entries_of_read(Nil, &mut out);
        entries_of_read(bs("junk"), &mut out);
        assert!(out.is_empty());
        assert_eq!(
            first_id(Array(vec![entry("9-9", vec![])])),
            Some(StreamId { ms: 9, seq: 9 })
        );
        assert_eq!(first_id(Array(vec![])), None);
    }
}
