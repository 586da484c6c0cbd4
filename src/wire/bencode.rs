//! Bencode output (BEP 3, <https://www.bittorrent.org/beps/bep_0003.html>).
//!
//! Owns the byte form of the values an HTTP tracker replies with: byte strings
//! (`<len>:<bytes>`), integers (`i<n>e`), and the `d`/`l` … `e` brackets of dicts
//! and lists. Output only: shoal never needs to read bencode.
//!
//! Guarantees: every writer appends to a caller-owned `Vec<u8>` and does nothing
//! else. Digits are written by hand from a stack buffer (no `format!`), so once the
//! caller's buffer has grown to the size of a typical reply (the caller clears and
//! reuses it) writing a reply allocates nothing.
//!
//! The writers do not check structure. The caller opens and closes brackets in
//! matching pairs and writes dict keys **sorted by their raw bytes** with each key
//! followed by exactly one value (BEP 3: "keys must be strings and appear in sorted
//! order"); e.g. `complete` < `incomplete` < `interval` < `min interval` < `peers`
//! < `peers6`.

/// Appends the ASCII decimal digits of `n`, with no framing.
///
/// The building block of [`int`] and [`bytes`]; also used for HTTP header values.
pub fn decimal(out: &mut Vec<u8>, mut n: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends a byte string: `<len>:<bytes>`.
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    decimal(out, b.len() as u64);
    out.push(b':');
    out.extend_from_slice(b);
}

/// Appends an integer: `i<n>e`, with a `-` for negatives and no leading zeros.
pub fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    if n < 0 {
        out.push(b'-');
    }
    decimal(out, n.unsigned_abs());
    out.push(b'e');
}

/// Opens a dict (`d`). Keys must follow in raw-byte order; close with [`end`].
pub fn dict_start(out: &mut Vec<u8>) {
    out.push(b'd');
}

/// Opens a list (`l`). Close with [`end`].
pub fn list_start(out: &mut Vec<u8>) {
    out.push(b'l');
}

/// Closes the innermost open dict or list (`e`).
pub fn end(out: &mut Vec<u8>) {
    out.push(b'e');
}

/// Appends a whole tracker error reply: `d14:failure reason<len>:<message>e`
/// (BEP 3). Clients show the message to the user.
pub fn failure(out: &mut Vec<u8>, message: &str) {
    dict_start(out);
    bytes(out, b"failure reason");
    bytes(out, message.as_bytes());
    end(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn test_emit_decimal() {
        assert_eq!(emit(|o| decimal(o, 0)), b"0");
        assert_eq!(emit(|o| decimal(o, 7)), b"7");
        assert_eq!(emit(|o| decimal(o, 10)), b"10");
        assert_eq!(emit(|o| decimal(o, 1800)), b"1800");
        assert_eq!(emit(|o| decimal(o, u64::MAX)), b"18446744073709551615");
    }

    #[test]
    fn test_emit_int() {
        assert_eq!(emit(|o| int(o, 0)), b"i0e");
        assert_eq!(emit(|o| int(o, 42)), b"i42e");
        assert_eq!(emit(|o| int(o, -3)), b"i-3e");
        assert_eq!(emit(|o| int(o, i64::MAX)), b"i9223372036854775807e");
        assert_eq!(emit(|o| int(o, i64::MIN)), b"i-9223372036854775808e");
    }

    #[test]
    fn test_emit_bytes() {
        assert_eq!(emit(|o| bytes(o, b"")), b"0:");
        assert_eq!(emit(|o| bytes(o, b"spam")), b"4:spam");
        assert_eq!(emit(|o| bytes(o, &[0, 0xff, b':'])), b"3:\x00\xff:");
        let long = [b'x'; 12];
        assert_eq!(emit(|o| bytes(o, &long)), b"12:xxxxxxxxxxxx");
    }

    #[test]
    fn test_emit_nested() {
        // BEP 3's examples: a list and a dict with sorted keys.
        let list = emit(|o| {
            list_start(o);
            bytes(o, b"spam");
            bytes(o, b"eggs");
            end(o);
        });
        assert_eq!(list, b"l4:spam4:eggse");
        let dict = emit(|o| {
            dict_start(o);
            bytes(o, b"cow");
            bytes(o, b"moo");
            bytes(o, b"spam");
            bytes(o, b"eggs");
            end(o);
        });
        assert_eq!(dict, b"d3:cow3:moo4:spam4:eggse");
    }

    #[test]
    fn test_emit_announce_reply() {
        let peer = [127, 0, 0, 1, 0x1a, 0xe1];
        let reply = emit(|o| {
            dict_start(o);
            bytes(o, b"complete");
            int(o, 1);
            bytes(o, b"incomplete");
            int(o, 2);
            bytes(o, b"interval");
            int(o, 1800);
            bytes(o, b"peers");
            bytes(o, &peer);
            end(o);
        });
        assert_eq!(
            reply,
            b"d8:completei1e10:incompletei2e8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e"
        );
    }

    #[test]
    fn test_emit_failure() {
        assert_eq!(
            emit(|o| failure(o, "invalid port")),
            b"d14:failure reason12:invalid porte"
        );
    }

    #[test]
    fn test_appends_to_existing_bytes() {
        let mut out = b"HTTP".to_vec();
        int(&mut out, 5);
        assert_eq!(out, b"HTTPi5e");
    }
}
