//! The record format of segments and snapshots, and a streaming reader for it.
//!
//! A file is a 16-byte header (an 8-byte magic naming the file type, a little-endian `u32`
//! format version, 4 reserved zero bytes) followed by records:
//!
//! ```text
//! +-------------+-------------+----------------------+
//! | len: u32 LE | crc: u32 LE | payload: len bytes   |
//! +-------------+-------------+----------------------+
//! crc = CRC-32 (IEEE) of the 4 length bytes followed by the payload
//! ```
//!
//! The payload is a tag byte then the body: `1` put (bincode of `(key, lattice value)`),
//! `2` forget (bincode of the key: the shard no longer holds it), `3` end of snapshot
//! (`u64` LE count of the put records before it). Any [`LatticeValue`] is logged through
//! its serde form, so a new variant is logged and snapshotted with no change here (add
//! variants at the end of the enum: bincode names a variant by its index).

use crate::ids::Key;
use crate::lattice::LatticeValue;
use std::io::Read;

/// Bytes before the first record of a file.
pub const HEADER_BYTES: usize = 16;
/// Bytes before each record's payload (length and checksum).
pub const FRAME_BYTES: usize = 8;
/// The format version written in each header; a reader refuses any other.
pub const FORMAT_VERSION: u32 = 1;
/// Magic of a log segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"CBKVLOG\0";
/// Magic of a snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"CBKVSNP\0";
/// Largest payload read back: bounds what a damaged length can make a reader claim. Above
/// any value a shard accepts (`kvs.max_value_bytes` is validated against it).
pub const MAX_RECORD_BYTES: usize = 1 << 30;

/// What a put record holds besides its value, at most: the key (the KVS refuses keys above
/// 4 KiB) and the encoding around both, with room to spare.
pub const KEY_AND_FRAMING_BYTES: usize = 64 * 1024;

const TAG_PUT: u8 = 1;
const TAG_FORGET: u8 = 2;
const TAG_END: u8 = 3;

/// One logged change.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// Merge `value` into `key`.
    Put { key: Key, value: LatticeValue },
    /// The shard dropped `key` (handed to its new owners).
    Forget { key: Key },
    /// A snapshot ends here, after `count` puts.
    End { count: u64 },
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// The 16-byte header of a file with `magic`.
pub fn header(magic: [u8; 8]) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..8].copy_from_slice(&magic);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Append `record`, framed, to `buf`.
pub fn encode(record: &Record, buf: &mut Vec<u8>) -> Result<(), String> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_BYTES]);
    match record {
        Record::Put { key, value } => {
            buf.push(TAG_PUT);
            bincode::serde::encode_into_std_write((key, value), buf, bincode_config())
                .map_err(|e| format!("cannot encode a put of `{key}`: {e}"))?;
        }
        Record::Forget { key } => {
            buf.push(TAG_FORGET);
            bincode::serde::encode_into_std_write(key, buf, bincode_config())
                .map_err(|e| format!("cannot encode a forget of `{key}`: {e}"))?;
        }
        Record::End { count } => {
            buf.push(TAG_END);
            buf.extend_from_slice(&count.to_le_bytes());
        }
    }
    let len = buf.len() - start - FRAME_BYTES;
    if len > MAX_RECORD_BYTES {
        buf.truncate(start);
        return Err(format!(
            "a record of {len} bytes is above the maximum of {MAX_RECORD_BYTES}"
        ));
    }
    let len = (len as u32).to_le_bytes();
    let crc = checksum(&len, &buf[start + FRAME_BYTES..]);
    buf[start..start + 4].copy_from_slice(&len);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn checksum(len: &[u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(payload);
    h.finalize()
}

fn decode_payload(payload: &[u8]) -> Result<Record, String> {
    let (tag, body) = payload.split_first().ok_or("empty payload")?;
    let exact = |used: usize| {
        if used == body.len() {
            Ok(())
        } else {
            Err(format!("{} bytes after the record", body.len() - used))
        }
    };
    match *tag {
        TAG_PUT => {
            let ((key, value), used): ((Key, LatticeValue), usize) =
                bincode::serde::decode_from_slice(body, bincode_config())
                    .map_err(|e| format!("undecodable put: {e}"))?;
            exact(used)?;
            Ok(Record::Put { key, value })
        }
        TAG_FORGET => {
            let (key, used): (Key, usize) =
                bincode::serde::decode_from_slice(body, bincode_config())
                    .map_err(|e| format!("undecodable forget: {e}"))?;
            exact(used)?;
            Ok(Record::Forget { key })
        }
        TAG_END => {
            let count: [u8; 8] = body.try_into().map_err(|_| "end record of bad length")?;
            Ok(Record::End {
                count: u64::from_le_bytes(count),
            })
        }
        other => Err(format!("unknown record tag {other}")),
    }
}

/// Why reading stopped before the end of a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The file ends inside a record or a record fails its checksum: what a write cut short
    /// by a crash leaves (a torn tail). `offset` is where the bad record starts.
    Torn { offset: u64, why: String },
    /// A record passes its checksum but cannot be decoded, or the header is wrong: not
    /// something a crash leaves.
    Corrupt { offset: u64, why: String },
    /// The file could not be read.
    Io(String),
}

/// Reads records one at a time (memory: one record), tracking the offset of the end of the
/// last good one.
pub struct Reader<R: Read> {
    inner: R,
    offset: u64,
    payload: Vec<u8>,
}

impl<R: Read> Reader<R> {
    /// Check the header (`magic`, version) and position after it. An empty or short file
    /// is torn at 0.
    pub fn open(mut inner: R, magic: [u8; 8]) -> Result<Self, Stop> {
        let mut h = [0u8; HEADER_BYTES];
        match read_full(&mut inner, &mut h) {
            Ok(n) if n < HEADER_BYTES => {
                return Err(Stop::Torn {
                    offset: 0,
                    why: format!("{n} of {HEADER_BYTES} header bytes"),
                })
            }
            Ok(_) => {}
            Err(e) => return Err(Stop::Io(e.to_string())),
        }
        if h[..8] != magic {
            return Err(Stop::Corrupt {
                offset: 0,
                why: "not a file of this kind (bad magic)".into(),
            });
        }
        let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        if version != FORMAT_VERSION {
            return Err(Stop::Corrupt {
                offset: 8,
                why: format!("format version {version}, this build reads {FORMAT_VERSION}"),
            });
        }
        Ok(Reader {
            inner,
            offset: HEADER_BYTES as u64,
            payload: Vec::new(),
        })
    }

    /// End of the last good record (where a torn tail is cut).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record; `Ok(None)` at a clean end of file.
    pub fn next_record(&mut self) -> Result<Option<Record>, Stop> {
        let at = self.offset;
        let torn = |why: String| Stop::Torn { offset: at, why };
        let mut frame = [0u8; FRAME_BYTES];
        match read_full(&mut self.inner, &mut frame) {
            Ok(0) => return Ok(None),
            Ok(n) if n < FRAME_BYTES => return Err(torn(format!("{n}-byte record header"))),
            Ok(_) => {}
            Err(e) => return Err(Stop::Io(e.to_string())),
        }
        let len_bytes = [frame[0], frame[1], frame[2], frame[3]];
        let len = u32::from_le_bytes(len_bytes) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len > MAX_RECORD_BYTES {
            return Err(torn(format!("record length {len} above the maximum")));
        }
        // Read through `take` so a damaged length claims no more memory than the file holds.
        self.payload.clear();
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut self.payload)
            .map_err(|e| Stop::Io(e.to_string()))?;
        if got < len {
            return Err(torn(format!("{got} of {len} payload bytes")));
        }
        if checksum(&len_bytes, &self.payload) != crc {
            return Err(torn("checksum mismatch".into()));
        }
        let record =
            decode_payload(&self.payload).map_err(|why| Stop::Corrupt { offset: at, why })?;
        self.offset += (FRAME_BYTES + len) as u64;
        Ok(Some(record))
    }
}

/// Read until `buf` is full or the end of input; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
