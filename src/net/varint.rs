//! The few bincode primitives the envelope header is made of, written and read by hand
//! (`bincode::config::standard()`: little-endian varints, strings and byte slices as a
//! varint length and the bytes). Going through serde for a handful of header fields cost
//! more than the rest of the frame handling; [`crate::net::frame`] tests that the result is
//! byte-for-byte what bincode writes and reads.
//!
//! Varints: a value up to 250 is one byte; otherwise a marker byte (251, 252, 253) and the
//! value as a little-endian u16, u32 or u64. Like bincode, a reader accepts a wider form
//! than necessary but refuses one wider than the integer type.

use crate::net::error::NetError;

const SINGLE_BYTE_MAX: u8 = 250;
const U16_BYTE: u8 = 251;
const U32_BYTE: u8 = 252;
const U64_BYTE: u8 = 253;

/// Append `v` as a bincode varint.
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    if v <= u64::from(SINGLE_BYTE_MAX) {
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(U16_BYTE);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(U32_BYTE);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(U64_BYTE);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Append `bytes` as bincode writes a `str` or `serde_bytes` slice: length, then bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads bincode primitives from a borrowed buffer; every read checks the bounds.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

fn short() -> NetError {
    NetError::Codec("frame ends inside the envelope".into())
}

fn too_wide(what: &str) -> NetError {
    NetError::Codec(format!("varint too wide for {what}"))
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], NetError> {
        if n > self.buf.len() {
            return Err(short());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], NetError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8, NetError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64, NetError> {
        match self.byte()? {
            b @ 0..=SINGLE_BYTE_MAX => Ok(u64::from(b)),
            U16_BYTE => Ok(u64::from(u16::from_le_bytes(self.array()?))),
            U32_BYTE => Ok(u64::from(u32::from_le_bytes(self.array()?))),
            U64_BYTE => Ok(u64::from_le_bytes(self.array()?)),
            _ => Err(too_wide("u64")),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, NetError> {
        match self.byte()? {
            b @ 0..=SINGLE_BYTE_MAX => Ok(u32::from(b)),
            U16_BYTE => Ok(u32::from(u16::from_le_bytes(self.array()?))),
            U32_BYTE => Ok(u32::from_le_bytes(self.array()?)),
            _ => Err(too_wide("u32")),
        }
    }

    pub(crate) fn u16(&mut self) -> Result<u16, NetError> {
        match self.byte()? {
            b @ 0..=SINGLE_BYTE_MAX => Ok(u16::from(b)),
            U16_BYTE => Ok(u16::from_le_bytes(self.array()?)),
            _ => Err(too_wide("u16")),
        }
    }

    pub(crate) fn bool(&mut self) -> Result<bool, NetError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(NetError::Codec(format!("{b} is not a bool"))),
        }
    }

    /// A length-prefixed byte slice (`serde_bytes`), borrowed.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], NetError> {
        let n = usize::try_from(self.u64()?).map_err(|_| short())?;
        self.take(n)
    }

    /// A length-prefixed UTF-8 string, borrowed.
    pub(crate) fn str(&mut self) -> Result<&'a str, NetError> {
        std::str::from_utf8(self.bytes()?).map_err(NetError::codec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bincode_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("encodes")
    }

    proptest! {
        #[test]
        fn integers_match_bincode(v in any::<u64>(), shift in 0u32..64) {
            let v = v >> shift; // small values as often as large ones
            let mut out = Vec::new();
            put_u64(&mut out, v);
            prop_assert_eq!(&out, &bincode_bytes(&v));
            prop_assert_eq!(Reader::new(&out).u64().ok(), Some(v));
            let narrow = bincode_bytes(&(v as u32));
            prop_assert_eq!(Reader::new(&narrow).u32().ok(), Some(v as u32));
            let narrow = bincode_bytes(&(v as u16));
            prop_assert_eq!(Reader::new(&narrow).u16().ok(), Some(v as u16));
        }

        #[test]
        fn strings_match_bincode(s in ".{0,300}") {
            let mut out = Vec::new();
            put_bytes(&mut out, s.as_bytes());
            prop_assert_eq!(&out, &bincode_bytes(&s));
            prop_assert_eq!(Reader::new(&out).str().ok(), Some(s.as_str()));
        }
    }

    #[test]
    fn too_wide_and_truncated_varints_are_errors() {
        let wide = bincode_bytes(&u64::MAX);
        assert!(Reader::new(&wide).u32().is_err());
        assert!(Reader::new(&wide[..4]).u64().is_err());
        assert!(Reader::new(&[U32_BYTE, 0, 0, 1, 0]).u16().is_err());
        assert!(Reader::new(&[254]).u64().is_err());
        assert!(Reader::new(&[2]).bool().is_err());
        // A declared length beyond the buffer, also one that does not fit a usize.
        assert!(Reader::new(&[5, b'a']).bytes().is_err());
        assert!(
            Reader::new(&[U64_BYTE, 255, 255, 255, 255, 255, 255, 255, 255])
                .bytes()
                .is_err()
        );
        assert!(Reader::new(&[2, 0xff, 0xfe]).str().is_err());
    }
}
