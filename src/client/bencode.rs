//! A small bencode decoder (BEP 3, <https://www.bittorrent.org/beps/bep_0003.html>)
//! for tracker replies read by the HTTP client.
//!
//! [`crate::wire::bencode`] only writes bencode (the tracker never reads it);
//! the client needs the other direction. Guarantees: decoding never panics,
//! whatever the input; nesting is limited to [`MAX_DEPTH`] so hostile input
//! cannot exhaust the stack; values borrow from the input. Memory use is
//! bounded by the input (every value consumes at least one input byte), which
//! the HTTP client caps.
//!
//! Strict where it matters for correctness (integer syntax and range, string
//! lengths, brackets), lenient where real trackers are sloppy: dict keys need
//! not be sorted, and a later duplicate key is ignored by [`Value::get`].

/// Deepest nesting of lists and dicts accepted.
pub const MAX_DEPTH: usize = 32;

/// A decoded value, borrowing its byte strings from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    /// Key-value pairs in input order.
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The first value under `key` in a dict; `None` for a missing key or a non-dict.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        match self {
            Value::Dict(pairs) => pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// Why input is not bencode. `Copy`, with a static message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a value.
    UnexpectedEnd,
    /// A byte that cannot start or continue a value here.
    UnexpectedByte,
    /// `i…e` that is not a canonical decimal integer, or does not fit an `i64`.
    BadInteger,
    /// A string length with bad syntax or beyond the end of the input.
    BadLength,
    /// A dict key that is not a byte string.
    BadKey,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Bytes (other than whitespace) after the value.
    TrailingBytes,
}

impl DecodeError {
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeError::UnexpectedEnd => "bencode ends inside a value",
            DecodeError::UnexpectedByte => "unexpected byte in bencode",
            DecodeError::BadInteger => "bad bencode integer",
            DecodeError::BadLength => "bad bencode string length",
            DecodeError::BadKey => "bencode dict key is not a string",
            DecodeError::TooDeep => "bencode nested too deeply",
            DecodeError::TrailingBytes => "trailing bytes after the bencoded value",
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decode one value that makes up all of `input` (trailing ASCII whitespace,
/// which some trackers append, is allowed).
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    let v = d.value(0)?;
    if input[d.pos..].iter().all(u8::is_ascii_whitespace) {
        Ok(v)
    } else {
        Err(DecodeError::TrailingBytes)
    }
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEnd)
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                self.int().map(Value::Int)
            }
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                if depth >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep);
                }
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                if depth >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep);
                }
                self.pos += 1;
                let mut pairs = Vec::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(DecodeError::BadKey);
                    }
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    pairs.push((key, value));
                }
                self.pos += 1;
                Ok(Value::Dict(pairs))
            }
            _ => Err(DecodeError::UnexpectedByte),
        }
    }

    /// The digits of an integer after `i`, through the closing `e`.
    fn int(&mut self) -> Result<i64, DecodeError> {
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'e')
            .ok_or(DecodeError::UnexpectedEnd)?;
        let text = &rest[..end];
        let (negative, digits) = match text.split_first() {
            Some((b'-', d)) => (true, d),
            _ => (false, text),
        };
        let canonical = !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && (digits == b"0" || digits[0] != b'0')
            && !(negative && digits == b"0");
        if !canonical {
            return Err(DecodeError::BadInteger);
        }
        let mut n: i64 = 0;
        for &d in digits {
            let d = i64::from(d - b'0');
            n = n
                .checked_mul(10)
                .and_then(|n| {
                    if negative {
                        n.checked_sub(d)
                    } else {
                        n.checked_add(d)
                    }
                })
                .ok_or(DecodeError::BadInteger)?;
        }
        self.pos += end + 1;
        Ok(n)
    }

    /// `<len>:<bytes>`.
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = &self.input[self.pos..];
        let colon = rest
            .iter()
            .position(|&b| b == b':')
            .ok_or(DecodeError::UnexpectedEnd)?;
        let digits = &rest[..colon];
        if digits.is_empty()
            || digits.len() > 12
            || !digits.iter().all(u8::is_ascii_digit)
            || (digits.len() > 1 && digits[0] == b'0')
        {
            return Err(DecodeError::BadLength);
        }
        // At most 12 digits: fits a u64; a 32-bit usize may still refuse it.
        let len = digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        let len = usize::try_from(len).map_err(|_| DecodeError::BadLength)?;
        let body = rest
            .get(colon + 1..)
            .and_then(|r| r.get(..len))
            .ok_or(DecodeError::BadLength)?;
        self.pos += colon + 1 + len;
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_decode_scalars() {
        assert_eq!(decode(b"i42e"), Ok(Value::Int(42)));
        assert_eq!(decode(b"i-7e"), Ok(Value::Int(-7)));
        assert_eq!(decode(b"i0e"), Ok(Value::Int(0)));
        assert_eq!(decode(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
        assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
        assert_eq!(decode(b"4:spam"), Ok(Value::Bytes(b"spam")));
        assert_eq!(decode(b"0:"), Ok(Value::Bytes(b"")));
        // Trailing newline from a sloppy tracker is fine; other trailing bytes are not.
        assert_eq!(decode(b"i1e\r\n"), Ok(Value::Int(1)));
        assert_eq!(decode(b"i1ei2e"), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn test_decode_bad_input() {
        for (input, err) in [
            (&b""[..], DecodeError::UnexpectedEnd),
            (b"i", DecodeError::UnexpectedEnd),
            (b"ie", DecodeError::BadInteger),
            (b"i-0e", DecodeError::BadInteger),
            (b"i03e", DecodeError::BadInteger),
            (b"i1.5e", DecodeError::BadInteger),
            (b"i9223372036854775808e", DecodeError::BadInteger),
            (b"5:spam", DecodeError::BadLength),
            (b"05:spamx", DecodeError::BadLength),
            (b"99999999999999999999:x", DecodeError::BadLength),
            (b"4spam", DecodeError::UnexpectedEnd),
            (b"l", DecodeError::UnexpectedEnd),
            (b"d3:key", DecodeError::UnexpectedEnd),
            (b"d3:keye", DecodeError::UnexpectedByte),
            (b"di1ei2ee", DecodeError::BadKey),
            (b"x", DecodeError::UnexpectedByte),
        ] {
            assert_eq!(
                decode(input),
                Err(err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let deep = "l".repeat(MAX_DEPTH + 1) + &"e".repeat(MAX_DEPTH + 1);
        assert_eq!(decode(deep.as_bytes()), Err(DecodeError::TooDeep));
        let ok = "l".repeat(MAX_DEPTH) + &"e".repeat(MAX_DEPTH);
        assert!(decode(ok.as_bytes()).is_ok());
    }

    #[test]
    fn test_decode_tracker_reply() {
        // What an HTTP tracker sends: sorted keys, compact peers with binary bytes.
        let mut reply =
            b"d8:completei3e10:incompletei1e8:intervali1800e12:min intervali900e5:peers6:".to_vec();
        reply.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
        reply.extend_from_slice(b"e");
        let v = decode(&reply).unwrap();
        assert_eq!(v.get(b"complete").and_then(Value::as_int), Some(3));
        assert_eq!(v.get(b"min interval").and_then(Value::as_int), Some(900));
        assert_eq!(
            v.get(b"peers").and_then(Value::as_bytes),
            Some(&[127, 0, 0, 1, 0x1a, 0xe1][..])
        );
        assert_eq!(v.get(b"missing"), None);
        // Unsorted keys and nested lists of dicts (non-compact peers).
        let v = decode(b"d5:peersld2:ip9:127.0.0.14:porti80eee8:intervali5ee").unwrap();
        let Some(Value::List(peers)) = v.get(b"peers") else {
            panic!()
        };
        assert_eq!(peers[0].get(b"ip"), Some(&Value::Bytes(b"127.0.0.1")));
        assert_eq!(peers[0].get(b"port"), Some(&Value::Int(80)));
        assert_eq!(v.get(b"interval"), Some(&Value::Int(5)));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        /// Bencode-shaped noise reaches deeper than uniform bytes.
        #[test]
        fn never_panics_on_bencode_alphabet(
            bytes in proptest::collection::vec(
                prop::sample::select(b"dlie0123456789:-x".to_vec()), 0..256)
        ) {
            let _ = decode(&bytes);
        }

        #[test]
        fn ints_round_trip(n in any::<i64>()) {
            let mut out = Vec::new();
            crate::wire::bencode::int(&mut out, n);
            prop_assert_eq!(decode(&out), Ok(Value::Int(n)));
        }

        #[test]
        fn bytes_round_trip(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            crate::wire::bencode::bytes(&mut out, &b);
            prop_assert_eq!(decode(&out), Ok(Value::Bytes(&b[..])));
        }
    }
}
