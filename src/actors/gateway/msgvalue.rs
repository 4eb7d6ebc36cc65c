//! A value as the client protocol carries it: one native MessagePack object (nil, bool,
//! int, float, str, bin, array, map; anything else a Python pickle inside extension type
//! [`PICKLE_EXT`]), kept as its encoded bytes. Those bytes are what the KVS stores and what
//! the Python workers decode, so the gateway never interprets a value: it copies a value
//! out of a request frame into bytes ([`MsgValue`]'s `Deserialize`), and back into a
//! response frame (its `Serialize`).
//!
//! Values written by protocol 1 are raw pickles (protocol 2 or later, so they start with
//! the PROTO opcode `0x80`). `0x80` alone is a whole MessagePack object (the empty map), so
//! a longer byte string starting with it cannot be one object: such a stored value is a
//! legacy pickle, and goes to clients wrapped in the pickle extension. (A protocol-1 client
//! could also store empty bytes: they read as an empty bin.)

use bytes::Bytes;
use rmp::decode::{read_marker, RmpRead};
use rmp::Marker;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Error as _, SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The MessagePack extension type of a Python pickle (`pickle.loads` of its data).
pub const PICKLE_EXT: i8 = 1;

/// How deep arrays and maps may nest in a value. Python's msgpack packs at most 511 levels;
/// the bound keeps the walk that copies a value into a response frame off the stack's end.
pub const MAX_DEPTH: usize = 512;

/// How the error of a value nested too deep starts.
pub const TOO_DEEP: &str = "nested deeper than";

/// First byte of every pickle of protocol 2 and later (the PROTO opcode).
const PICKLE_PROTO: u8 = 0x80;

/// One value, as its MessagePack encoding (or a legacy pickle: see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgValue(pub Bytes);

impl MsgValue {
    /// Whether these bytes are a pickle stored by protocol 1 rather than MessagePack.
    pub fn is_legacy_pickle(&self) -> bool {
        is_legacy_pickle(&self.0)
    }

    /// Check that the bytes are one whole MessagePack object (or a legacy pickle, or empty).
    pub fn check(&self) -> Result<(), String> {
        if self.is_legacy_pickle() || self.0.is_empty() {
            return Ok(());
        }
        let mut rd: &[u8] = &self.0;
        skip(&mut rd, MAX_DEPTH)?;
        if rd.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes after the value", rd.len()))
        }
    }
}

/// See the module doc.
pub fn is_legacy_pickle(b: &[u8]) -> bool {
    b.len() > 1 && b[0] == PICKLE_PROTO
}

impl<'de> Deserialize<'de> for MsgValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        d.deserialize_any(Transcode {
            out: &mut out,
            depth: 0,
        })?;
        Ok(MsgValue(Bytes::from(out)))
    }
}

impl Serialize for MsgValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_legacy_pickle() {
            return Ext(PICKLE_EXT, &self.0).serialize(s);
        }
        if self.0.is_empty() {
            // Empty bytes stored by a protocol-1 client of the raw protocol: its bytes.
            return s.serialize_bytes(&[]);
        }
        Raw(&self.0).serialize(s)
    }
}

/// Writes whatever the deserializer visits as MessagePack; `depth` counts the arrays and
/// maps around it.
struct Transcode<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
}

impl Transcode<'_> {
    /// Where a nested array or map writes its items.
    fn nested<'b, E: de::Error>(&self, out: &'b mut Vec<u8>) -> Result<Transcode<'b>, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("a value {TOO_DEEP} {MAX_DEPTH}")));
        }
        Ok(Transcode {
            out,
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Transcode<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Writing into a `Vec` cannot fail; a failure would only be a bug in `rmp`.
fn wrote<T, E: fmt::Display, F: de::Error>(r: Result<T, E>) -> Result<(), F> {
    r.map(|_| ()).map_err(F::custom)
}

impl<'de> Visitor<'de> for Transcode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a MessagePack value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        wrote(rmp::encode::write_bool(self.out, v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        wrote(rmp::encode::write_sint(self.out, v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        wrote(rmp::encode::write_uint(self.out, v))
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<(), E> {
        wrote(rmp::encode::write_f32(self.out, v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        wrote(rmp::encode::write_f64(self.out, v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        wrote(rmp::encode::write_str(self.out, v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<(), E> {
        wrote(rmp::encode::write_bin(self.out, v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        wrote(rmp::encode::write_nil(self.out))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        let mut n: u32 = 0;
        while seq.next_element_seed(self.nested(&mut items)?)?.is_some() {
            n += 1;
        }
        wrote(rmp::encode::write_array_len(self.out, n))?;
        self.out.extend_from_slice(&items);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut entries = Vec::new();
        let mut n: u32 = 0;
        while map.next_key_seed(self.nested(&mut entries)?)?.is_some() {
            map.next_value_seed(self.nested(&mut entries)?)?;
            n += 1;
        }
        wrote(rmp::encode::write_map_len(self.out, n))?;
        self.out.extend_from_slice(&entries);
        Ok(())
    }
    /// `rmp_serde` hands an extension over as a newtype holding `(type, data)`.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let (tag, data): (i8, serde_bytes::ByteBuf) = Deserialize::deserialize(d)?;
        wrote(rmp::encode::write_ext_meta(
            self.out,
            data.len() as u32,
            tag,
        ))?;
        self.out.extend_from_slice(&data);
        Ok(())
    }
}

/// One encoded MessagePack object, serialized by walking it.
struct Raw<'a>(&'a [u8]);

/// An extension value, as `rmp_serde` serializes one.
struct Ext<'a>(i8, &'a [u8]);

impl Serialize for Ext<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let body = (self.0, serde_bytes::Bytes::new(self.1));
        s.serialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, &body)
    }
}

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut rd = self.0;
        let marker = read_marker(&mut rd).map_err(|_| S::Error::custom("empty value"))?;
        let bad = |e: String| S::Error::custom(format!("stored value is not MessagePack: {e}"));
        match marker {
            Marker::Null => s.serialize_unit(),
            Marker::True => s.serialize_bool(true),
            Marker::False => s.serialize_bool(false),
            Marker::FixPos(v) => s.serialize_u8(v),
            Marker::FixNeg(v) => s.serialize_i8(v),
            Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64 => {
                s.serialize_u64(read_uint(&mut rd, marker).map_err(bad)?)
            }
            Marker::I8 | Marker::I16 | Marker::I32 | Marker::I64 => {
                s.serialize_i64(read_sint(&mut rd, marker).map_err(bad)?)
            }
            Marker::F32 => s.serialize_f32(rd.read_data_f32().map_err(|e| bad(e.to_string()))?),
            Marker::F64 => s.serialize_f64(rd.read_data_f64().map_err(|e| bad(e.to_string()))?),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let data = take(&mut rd, marker).map_err(bad)?;
                let text = std::str::from_utf8(data).map_err(|e| bad(e.to_string()))?;
                s.serialize_str(text)
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                s.serialize_bytes(take(&mut rd, marker).map_err(bad)?)
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let n = length(&mut rd, marker).map_err(bad)?;
                let mut seq = s.serialize_seq(Some(n))?;
                for _ in 0..n {
                    seq.serialize_element(&Raw(next(&mut rd, MAX_DEPTH).map_err(bad)?))?;
                }
                seq.end()
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let n = length(&mut rd, marker).map_err(bad)?;
                let mut map = s.serialize_map(Some(n))?;
                for _ in 0..n {
                    let k = next(&mut rd, MAX_DEPTH).map_err(bad)?;
                    map.serialize_entry(&Raw(k), &Raw(next(&mut rd, MAX_DEPTH).map_err(bad)?))?;
                }
                map.end()
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                let (tag, data) = take_ext(&mut rd, marker).map_err(bad)?;
                Ext(tag, data).serialize(s)
            }
            Marker::Reserved => Err(bad("reserved marker 0xc1".into())),
        }
    }
}

fn read_uint(rd: &mut &[u8], m: Marker) -> Result<u64, String> {
    let r = match m {
        Marker::U8 => rd.read_data_u8().map(u64::from),
        Marker::U16 => rd.read_data_u16().map(u64::from),
        Marker::U32 => rd.read_data_u32().map(u64::from),
        _ => rd.read_data_u64(),
    };
    r.map_err(|e| e.to_string())
}

fn read_sint(rd: &mut &[u8], m: Marker) -> Result<i64, String> {
    let r = match m {
        Marker::I8 => rd.read_data_i8().map(i64::from),
        Marker::I16 => rd.read_data_i16().map(i64::from),
        Marker::I32 => rd.read_data_i32().map(i64::from),
        _ => rd.read_data_i64(),
    };
    r.map_err(|e| e.to_string())
}

/// The length that follows a str, bin, array, map or ext marker (fixed ones carry it).
fn length(rd: &mut &[u8], m: Marker) -> Result<usize, String> {
    let n = match m {
        Marker::FixStr(n) | Marker::FixArray(n) | Marker::FixMap(n) => return Ok(n.into()),
        Marker::FixExt1 => return Ok(1),
        Marker::FixExt2 => return Ok(2),
        Marker::FixExt4 => return Ok(4),
        Marker::FixExt8 => return Ok(8),
        Marker::FixExt16 => return Ok(16),
        Marker::Str8 | Marker::Bin8 | Marker::Ext8 => rd.read_data_u8().map(u32::from),
        Marker::Str16 | Marker::Bin16 | Marker::Array16 | Marker::Map16 | Marker::Ext16 => {
            rd.read_data_u16().map(u32::from)
        }
        _ => rd.read_data_u32(),
    };
    n.map(|n| n as usize).map_err(|e| e.to_string())
}

/// `n` bytes off the front of `rd`.
fn split<'a>(rd: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if rd.len() < n {
        return Err(format!("{n} bytes announced, {} left", rd.len()));
    }
    let (head, tail) = rd.split_at(n);
    *rd = tail;
    Ok(head)
}

/// The data of a str or bin.
fn take<'a>(rd: &mut &'a [u8], m: Marker) -> Result<&'a [u8], String> {
    let n = length(rd, m)?;
    split(rd, n)
}

/// The type and data of an extension.
fn take_ext<'a>(rd: &mut &'a [u8], m: Marker) -> Result<(i8, &'a [u8]), String> {
    let n = length(rd, m)?;
    let tag = rd.read_data_i8().map_err(|e| e.to_string())?;
    Ok((tag, split(rd, n)?))
}

/// The bytes of the next whole object in `rd`, which moves past it.
fn next<'a>(rd: &mut &'a [u8], max_depth: usize) -> Result<&'a [u8], String> {
    let start = *rd;
    skip(rd, max_depth)?;
    Ok(&start[..start.len() - rd.len()])
}

/// Move past one whole object, without recursion; arrays and maps may nest at most
/// `max_depth` deep.
fn skip(rd: &mut &[u8], max_depth: usize) -> Result<(), String> {
    // Objects still to read at each open level.
    let mut open: Vec<u64> = vec![1];
    while let Some(left) = open.last_mut() {
        if *left == 0 {
            open.pop();
            continue;
        }
        *left -= 1;
        let m = read_marker(rd).map_err(|_| "truncated value".to_string())?;
        let children = match m {
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => length(rd, m)? as u64,
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => 2 * length(rd, m)? as u64,
            _ => {
                skip_scalar(rd, m)?;
                continue;
            }
        };
        if open.len() > max_depth {
            return Err(format!("{TOO_DEEP} {max_depth}"));
        }
        open.push(children);
    }
    Ok(())
}

fn skip_scalar(rd: &mut &[u8], m: Marker) -> Result<(), String> {
    let fixed = match m {
        Marker::Null | Marker::True | Marker::False | Marker::FixPos(_) | Marker::FixNeg(_) => 0,
        Marker::U8 | Marker::I8 => 1,
        Marker::U16 | Marker::I16 => 2,
        Marker::U32 | Marker::I32 | Marker::F32 => 4,
        Marker::U64 | Marker::I64 | Marker::F64 => 8,
        Marker::Reserved => return Err("reserved marker 0xc1".into()),
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
            let text = take(rd, m)?;
            return std::str::from_utf8(text)
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => return take(rd, m).map(|_| ()),
        _ => return take_ext(rd, m).map(|_| ()),
    };
    split(rd, fixed).map(|_| ())
}

/// A request's fields named `v`, `id` and `op`, read from the frame's top-level map without
/// recursion; every other field is skipped, and may nest at most `max_depth` deep. The
/// error (not a map, truncated; or a field nested too deep, whose message starts with
/// [`TOO_DEEP`]) comes with the `id` if it was read before the fault.
pub fn read_header(frame: &[u8], max_depth: usize) -> Result<FrameHeader, (Option<u64>, String)> {
    let mut rd = frame;
    let mut h = FrameHeader::default();
    let n = match read_marker(&mut rd) {
        Ok(m @ (Marker::FixMap(_) | Marker::Map16 | Marker::Map32)) => {
            length(&mut rd, m).map_err(|e| (None, e))?
        }
        _ => return Err((None, "a request is a MessagePack map".into())),
    };
    for _ in 0..n {
        let key = next(&mut rd, max_depth).map_err(|e| (h.id, e))?;
        let value = next(&mut rd, max_depth).map_err(|e| (h.id, e))?;
        let mut v = value;
        match key {
            b"\xa1v" => h.v = Some(read_u64(&mut v).map_err(|e| (h.id, format!("`v`: {e}")))?),
            b"\xa2id" => h.id = Some(read_u64(&mut v).map_err(|e| (None, format!("`id`: {e}")))?),
            b"\xa2op" => match read_marker(&mut v) {
                Ok(m @ (Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32)) => {
                    let text = take(&mut v, m).map_err(|e| (h.id, e))?;
                    let text = std::str::from_utf8(text).map_err(|e| (h.id, e.to_string()))?;
                    h.op = Some(text.to_string());
                }
                _ => return Err((h.id, "`op` is not a string".into())),
            },
            _ => {}
        }
    }
    Ok(h)
}

/// What [`read_header`] found.
#[derive(Debug, Default)]
pub struct FrameHeader {
    pub v: Option<u64>,
    pub id: Option<u64>,
    pub op: Option<String>,
}

/// An unsigned integer of any width.
fn read_u64(rd: &mut &[u8]) -> Result<u64, String> {
    match read_marker(rd).map_err(|_| "truncated".to_string())? {
        Marker::FixPos(v) => Ok(v.into()),
        m @ (Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64) => read_uint(rd, m),
        _ => Err("not an unsigned integer".into()),
    }
}

#[cfg(test)]
#[path = "msgvalue_tests.rs"]
mod tests;
