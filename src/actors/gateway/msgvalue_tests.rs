//! Values copied from request frames into bytes and back into response frames.

use super::*;
use crate::actors::gateway::protocol::{decode, encode_ok, Reply, Request, WireArg, WireValue};
use proptest::prelude::*;

/// `{"v": 2, "id": 1, "op": "put_object", "key": "k", "value": {"value": <value>}}`
fn put_frame(value: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    rmp::encode::write_map_len(&mut f, 5).unwrap();
    for (k, v) in [("op", "put_object"), ("key", "k")] {
        rmp::encode::write_str(&mut f, k).unwrap();
        rmp::encode::write_str(&mut f, v).unwrap();
    }
    for (k, v) in [("v", 2), ("id", 1)] {
        rmp::encode::write_str(&mut f, k).unwrap();
        rmp::encode::write_uint(&mut f, v).unwrap();
    }
    rmp::encode::write_str(&mut f, "value").unwrap();
    rmp::encode::write_map_len(&mut f, 1).unwrap();
    rmp::encode::write_str(&mut f, "value").unwrap();
    f.extend_from_slice(value);
    f
}

fn put_value(frame: &[u8]) -> Result<MsgValue, String> {
    match decode(frame) {
        Ok((_, Request::PutObject { value, .. })) => match value {
            WireValue::Value(v) => Ok(v),
            other => Err(format!("{other:?}")),
        },
        Ok((_, other)) => Err(format!("{other:?}")),
        Err((_, e)) => Err(e.to_string()),
    }
}

/// Every kind of MessagePack object, encoded as compactly as the encoders do.
fn every_kind() -> Vec<u8> {
    let mut v = Vec::new();
    rmp::encode::write_map_len(&mut v, 3).unwrap();
    rmp::encode::write_str(&mut v, "list").unwrap();
    rmp::encode::write_array_len(&mut v, 12).unwrap();
    rmp::encode::write_nil(&mut v).unwrap();
    rmp::encode::write_bool(&mut v, true).unwrap();
    rmp::encode::write_uint(&mut v, 7).unwrap();
    rmp::encode::write_sint(&mut v, -3).unwrap();
    rmp::encode::write_sint(&mut v, -40_000).unwrap();
    rmp::encode::write_uint(&mut v, (1 << 53) - 1).unwrap();
    rmp::encode::write_uint(&mut v, u64::MAX).unwrap();
    rmp::encode::write_f32(&mut v, 1.5).unwrap();
    rmp::encode::write_f64(&mut v, -0.1).unwrap();
    rmp::encode::write_str(&mut v, "héllo").unwrap();
    rmp::encode::write_bin(&mut v, &[0, 255, 128]).unwrap();
    rmp::encode::write_ext_meta(&mut v, 3, PICKLE_EXT).unwrap();
    v.extend_from_slice(b"\x80\x05N");
    // a map with an integer key, and an empty map
    rmp::encode::write_uint(&mut v, 1).unwrap();
    rmp::encode::write_map_len(&mut v, 0).unwrap();
    rmp::encode::write_str(&mut v, "other ext").unwrap();
    rmp::encode::write_ext_meta(&mut v, 0, -1).unwrap();
    v
}

#[test]
fn every_kind_of_value_is_copied_exactly_both_ways() {
    let value = every_kind();
    let got = put_value(&put_frame(&value)).expect("decodes");
    assert_eq!(got.0.as_ref(), value.as_slice());
    assert_eq!(got.check(), Ok(()));
    let reply = encode_ok(1, &Reply::Value(Some(WireValue::Value(got))));
    // ok is the frame's last field: {"value": <value>}
    assert!(reply.ends_with(&value), "{reply:02x?}");
}

#[test]
fn arguments_are_values_too() {
    let frame = rmp_serde::to_vec_named(&serde_json::json!({"v": 2, "id": 3,
        "op": "call_function", "function": "f", "args": [{"value": [1, "a"]}, {"ref": "k"}]}))
    .unwrap();
    match decode(&frame) {
        Ok((_, Request::CallFunction { args, .. })) => {
            assert_eq!(
                args[0],
                WireArg::Value(MsgValue(Bytes::from_static(b"\x92\x01\xa1a")))
            );
            assert_eq!(args[1], WireArg::Ref("k".into()));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn legacy_pickles_go_out_as_the_pickle_extension() {
    let pickle = MsgValue(Bytes::from_static(b"\x80\x04K\x07."));
    assert!(pickle.is_legacy_pickle());
    assert_eq!(pickle.check(), Ok(()));
    let out = rmp_serde::to_vec(&pickle).unwrap();
    // ext8, 5 bytes, type 1, the pickle
    assert_eq!(out, b"\xc7\x05\x01\x80\x04K\x07.");
    // empty bytes (stored by a protocol-1 raw client) read as an empty bin
    let empty = MsgValue(Bytes::new());
    assert_eq!(empty.check(), Ok(()));
    assert_eq!(rmp_serde::to_vec(&empty).unwrap(), b"\xc4\x00");
    // the empty map alone is MessagePack, not a pickle
    let empty = MsgValue(Bytes::from_static(b"\x80"));
    assert!(!empty.is_legacy_pickle());
    assert_eq!(rmp_serde::to_vec(&empty).unwrap(), b"\x80");
}

#[test]
fn broken_values_are_refused_by_check() {
    let bad: &[(&[u8], &str)] = &[
        (b"\x92\x01", "truncated"),
        (b"\x01\x02", "after the value"),
        (b"\xc1", "reserved"),
        (b"\xa2\xff\xfe", "utf-8"),
        (b"\xc4\x05ab", "announced"),
        (b"\xdd\xff\xff\xff\xff", "truncated"),
    ];
    for (bytes, why) in bad {
        let e = MsgValue(Bytes::from_static(bytes)).check().unwrap_err();
        assert!(e.to_lowercase().contains(why), "{bytes:02x?}: {e}");
    }
    let deep = |n: usize| [vec![0x91; n], vec![0xc0]].concat();
    assert_eq!(MsgValue(Bytes::from(deep(MAX_DEPTH))).check(), Ok(()));
    let e = MsgValue(Bytes::from(deep(MAX_DEPTH + 1)))
        .check()
        .unwrap_err();
    assert!(e.contains("deeper"), "{e}");
}

#[test]
fn a_request_value_nested_too_deep_is_an_invalid_request() {
    let deep = |n: usize| [vec![0x91; n], vec![0xc0]].concat();
    put_value(&put_frame(&deep(MAX_DEPTH))).expect("at the limit");
    let (_, e) = decode(&put_frame(&deep(MAX_DEPTH + 1))).unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    assert!(e.to_string().contains("deeper"), "{e}");
    // Far deeper still: refused the same way, the stack intact (on a thread with the
    // default 2 MiB stack, as the gateway's).
    let far = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || decode(&put_frame(&deep(100_000))).map(|_| ()))
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(far.unwrap_err().1.code(), "invalid_request");
    // The deepest value accepted goes back out on such a thread too.
    let out = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let v = put_value(&put_frame(&deep(MAX_DEPTH))).expect("decodes");
            encode_ok(1, &Reply::Value(Some(WireValue::Value(v)))).len()
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(out > MAX_DEPTH);
}

proptest! {
    /// Whatever the bytes, `check` answers, and what it accepts can be written out.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let v = MsgValue(Bytes::from(bytes));
        if v.check().is_ok() {
            prop_assert!(rmp_serde::to_vec(&v).is_ok());
        }
        let _ = put_value(&put_frame(&v.0));
    }

    /// Accepted values come back out byte for byte (for values encoded compactly).
    #[test]
    fn values_round_trip(items in proptest::collection::vec(any::<(i64, String, Vec<u8>)>(), 0..8)) {
        let mut value = Vec::new();
        rmp::encode::write_array_len(&mut value, 3 * items.len() as u32).unwrap();
        for (i, s, b) in &items {
            rmp::encode::write_sint(&mut value, *i).unwrap();
            rmp::encode::write_str(&mut value, s).unwrap();
            rmp::encode::write_bin(&mut value, b).unwrap();
        }
        let got = put_value(&put_frame(&value)).unwrap();
        prop_assert_eq!(got.0.as_ref(), value.as_slice());
        prop_assert_eq!(rmp_serde::to_vec(&got).unwrap(), value);
    }
}
