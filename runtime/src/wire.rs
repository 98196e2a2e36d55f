//! Decoding MessagePack from untrusted bytes: a structural check before serde.
//!
//! Every decoder of the runtime that reads bytes from a peer or the disk (envelopes, message
//! payloads, stored values read with [`Ctx::store_get_as`](crate::Ctx::store_get_as), trace
//! files) goes through [`decode`]. It first walks the bytes once ([`check`]), without
//! allocating beyond a small stack, and refuses:
//!
//! - a length field (array, map, string, binary, extension) that claims more elements or
//!   bytes than follow it: an array of `n` elements needs at least `n` bytes, a map of `n`
//!   entries `2n`. serde believes a claimed length up to a cap when it reserves a `Vec` or
//!   a `HashMap` (1 MiB per collection), so without the check a 49-byte message claiming
//!   4 G elements made the node reserve 1 MiB before it noticed the bytes were missing;
//! - nesting deeper than [`MAX_DEPTH`] (rmp-serde's own limit is 1024 levels of recursion);
//! - the reserved marker `0xc1`, and a value cut short.
//!
//! After the check, whatever serde reserves is at most the element size times the input
//! length, so the peak allocation of a decode is proportional to the bytes received. The
//! decoders are fuzzed with a counting allocator (README, "Bad input").

use crate::error::Error;
use serde::de::DeserializeOwned;

/// The deepest nesting of arrays and maps accepted (rasp's own messages nest less than 16).
pub const MAX_DEPTH: usize = 64;

/// Checks that `bytes` begins with one well-formed MessagePack value whose every length field
/// fits in the bytes that follow and whose nesting is at most [`MAX_DEPTH`]; says where and
/// why not. Trailing bytes after the value are not examined (serde ignores them too).
pub fn check(bytes: &[u8]) -> Result<(), String> {
    // Items still to read at each open level; the root level has one.
    let mut open: Vec<u64> = Vec::with_capacity(8);
    open.push(1);
    let mut pos = 0usize;
    while let Some(top) = open.last_mut() {
        if *top == 0 {
            open.pop();
            continue;
        }
        *top -= 1;
        let at = pos;
        let marker = *bytes
            .get(pos)
            .ok_or_else(|| format!("cut short at byte {pos}: a value is missing"))?;
        pos += 1;
        let len_field = |width: usize, pos: &mut usize| -> Result<u64, String> {
            let b = bytes
                .get(*pos..*pos + width)
                .ok_or_else(|| format!("cut short in the length field at byte {at}"))?;
            *pos += width;
            Ok(b.iter().fold(0u64, |n, x| n << 8 | u64::from(*x)))
        };
        // (payload bytes to skip, items of a container: None if not one)
        let (skip, items): (u64, Option<(u64, &str)>) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, None),
            0x80..=0x8f => (0, Some((2 * u64::from(marker & 0x0f), "map"))),
            0x90..=0x9f => (0, Some((u64::from(marker & 0x0f), "array"))),
            0xa0..=0xbf => (u64::from(marker & 0x1f), None),
            0xc1 => return Err(format!("reserved marker 0xc1 at byte {at}")),
            0xc4 | 0xd9 => (len_field(1, &mut pos)?, None),
            0xc5 | 0xda => (len_field(2, &mut pos)?, None),
            0xc6 | 0xdb => (len_field(4, &mut pos)?, None),
            0xc7 => (len_field(1, &mut pos)? + 1, None),
            0xc8 => (len_field(2, &mut pos)? + 1, None),
            0xc9 => (len_field(4, &mut pos)? + 1, None),
            0xca => (4, None),
            0xcb => (8, None),
            0xcc | 0xd0 => (1, None),
            0xcd | 0xd1 => (2, None),
            0xce | 0xd2 => (4, None),
            0xcf | 0xd3 => (8, None),
            0xd4 => (2, None),
            0xd5 => (3, None),
            0xd6 => (5, None),
            0xd7 => (9, None),
            0xd8 => (17, None),
            0xdc => (0, Some((len_field(2, &mut pos)?, "array"))),
            0xdd => (0, Some((len_field(4, &mut pos)?, "array"))),
            0xde => (0, Some((2 * len_field(2, &mut pos)?, "map"))),
            0xdf => (0, Some((2 * len_field(4, &mut pos)?, "map"))),
        };
        let rest_after = bytes.len() - pos;
        if skip > rest_after as u64 {
            return Err(format!(
                "a field at byte {at} claims {skip} bytes, but only {rest_after} follow"
            ));
        }
        pos += skip as usize;
        if let Some((n, kind)) = items {
            if n > rest_after as u64 {
                let n = if kind == "map" { n / 2 } else { n };
                let (article, unit) = if kind == "map" {
                    ("a", "entries")
                } else {
                    ("an", "elements")
                };
                return Err(format!(
                    "{article} {kind} at byte {at} claims {n} {unit}, but only {rest_after} bytes follow"
                ));
            }
            if n > 0 {
                if open.len() > MAX_DEPTH {
                    return Err(format!(
                        "nested deeper than {MAX_DEPTH} levels at byte {at}"
                    ));
                }
                open.push(n);
            }
        }
    }
    Ok(())
}

/// [`check`]s `bytes`, then decodes them with rmp-serde. `what` names the thing decoded in
/// the error (e.g. a message kind).
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    check(bytes).map_err(|e| Error::decode(what, e))?;
    rmp_serde::from_slice(bytes).map_err(|e| Error::decode(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value with every kind of MessagePack field.
    type Sample = (
        Vec<u32>,
        String,
        Vec<u8>,
        std::collections::BTreeMap<u8, (i64, f64)>,
    );

    #[test]
    fn well_formed_values_pass() {
        let v: Sample = (
            vec![1, 70_000, u32::MAX],
            "hé".repeat(100),
            vec![7; 300],
            [(1, (-5, 1.5)), (2, (i64::MIN, f64::MAX))]
                .into_iter()
                .collect(),
        );
        let bytes = rmp_serde::to_vec(&v).unwrap();
        check(&bytes).unwrap();
        let back: Sample = decode(&bytes, "test").unwrap();
        assert_eq!(back, v);
        check(&[0x90]).unwrap();
        check(&[0x80]).unwrap();
        check(&[0xd4, 1, 2]).unwrap();
    }

    #[test]
    fn claims_beyond_the_input_depth_and_cuts_are_refused() {
        let e = check(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]).unwrap_err();
        assert!(
            e.contains("claims 4294967295 elements, but only 1 bytes follow"),
            "{e}"
        );
        let e = check(&[0x91, 0xdf, 0x00, 0x00, 0x00, 0x02, 1, 2, 3]).unwrap_err();
        assert!(e.contains("map at byte 1 claims 2 entries"), "{e}");
        let e = check(&[0xc6, 0x7f, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(e.contains("claims 2147483647 bytes"), "{e}");
        let e = check(&[0x93, 0xcc, 0x01, 0x02]).unwrap_err();
        assert!(e.contains("cut short at byte 4"), "{e}");
        let e = check(&[0x92, 0xcd, 0x01]).unwrap_err();
        assert!(e.contains("claims 2 bytes, but only 1 follow"), "{e}");
        let e = check(&[0xdb, 0x00]).unwrap_err();
        assert!(e.contains("length field"), "{e}");
        let deep = vec![0x91; 1_000];
        let e = check(&deep).unwrap_err();
        assert!(e.contains("nested deeper than 64"), "{e}");
        let mut ok = vec![0x91; MAX_DEPTH];
        ok.push(0x01);
        check(&ok).unwrap();
        assert!(check(&[0xc1]).is_err());
        assert!(check(&[]).is_err());
    }
}
