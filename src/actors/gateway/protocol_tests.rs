//! Unit tests of the client protocol's decoding and encoding.

use super::*;
use serde_json::json;

fn pack(v: serde_json::Value) -> Vec<u8> {
    rmp_serde::to_vec_named(&v).unwrap()
}

#[derive(Serialize)]
struct Put<'a> {
    v: u32,
    id: u64,
    op: &'a str,
    key: &'a str,
    value: WireValue,
}

#[test]
fn put_object_with_binary_value_decodes() {
    let frame = rmp_serde::to_vec_named(&Put {
        v: 2,
        id: 9,
        op: "put_object",
        key: "k",
        value: WireValue::Value(MsgValue(Bytes::from_static(b"\xc4\x02hi"))),
    })
    .unwrap();
    let (id, req) = decode(&frame).unwrap();
    assert_eq!(id, 9);
    match req {
        Request::PutObject { key, value } => {
            assert_eq!(key, "k");
            assert_eq!(
                value,
                WireValue::Value(MsgValue(Bytes::from_static(b"\xc4\x02hi")))
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn call_dag_defaults_apply() {
    let frame = pack(json!({"v": 2, "id": 3, "op": "call_dag", "dag": "d",
        "args": {"f": [{"ref": "k"}]}}));
    let (_, req) = decode(&frame).unwrap();
    match req {
        Request::CallDag {
            dag,
            args,
            consistency,
            direct,
            output_key,
            timeout_ms,
            retries,
            retry_errors,
            call,
            resent,
        } => {
            assert_eq!(dag, "d");
            assert_eq!(call, None, "the gateway mints the id");
            assert!(!resent, "a first request");
            assert_eq!(args["f"], vec![WireArg::Ref("k".into())]);
            assert_eq!(consistency, WireConsistency::Lww);
            assert!(!direct);
            assert_eq!(output_key, None);
            assert_eq!((timeout_ms, retries, retry_errors), (None, None, None));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn call_options_and_cancel_decode() {
    let frame = pack(
        json!({"v": 2, "id": 4, "op": "call_function", "function": "f", "args": [],
        "timeout_ms": 1500, "retries": 0, "retry_errors": true, "call": 9_007_199_254_740_991u64,
        "resent": true}),
    );
    let (_, req) = decode(&frame).unwrap();
    let Request::CallFunction {
        timeout_ms,
        retries,
        retry_errors,
        call,
        resent,
        ..
    } = req
    else {
        panic!("unexpected {req:?}");
    };
    assert_eq!(
        (timeout_ms, retries, retry_errors, call, resent),
        (Some(1500), Some(0), Some(true), Some((1 << 53) - 1), true)
    );
    let frame = pack(json!({"v": 2, "id": 5, "op": "cancel", "call": 42}));
    assert!(matches!(
        decode(&frame).unwrap().1,
        Request::Cancel { call: 42 }
    ));
}

#[test]
fn garbage_is_malformed_without_id() {
    let (id, err) = decode(b"\xc1\xff not msgpack").unwrap_err();
    assert_eq!(id, None);
    assert_eq!(err.code(), "malformed_frame");
    let (id, err) = decode(&pack(json!([1, 2, 3]))).unwrap_err();
    assert_eq!((id, err.code().as_str()), (None, "malformed_frame"));
}

#[test]
fn errors_keep_the_request_id() {
    let (id, err) = decode(&pack(json!({"v": 2, "id": 5, "op": "fly"}))).unwrap_err();
    assert_eq!((id, err.code().as_str()), (Some(5), "unknown_op"));
    let (id, err) = decode(&pack(json!({"v": 3, "id": 6, "op": "ping"}))).unwrap_err();
    assert_eq!((id, err.code().as_str()), (Some(6), "unsupported_version"));
    // A protocol-1 client (pickled values) is told what changed.
    let (_, err) = decode(&pack(json!({"v": 1, "id": 6, "op": "ping"}))).unwrap_err();
    assert_eq!(err.code(), "unsupported_version");
    assert!(err.to_string().contains("native MessagePack"), "{err}");
    let (id, err) = decode(&pack(json!({"v": 2, "id": 7, "op": "get_object"}))).unwrap_err();
    assert_eq!((id, err.code().as_str()), (Some(7), "invalid_request"));
    assert!(err.to_string().contains("key"), "{err}");
    let (id, err) = decode(&pack(json!({"v": 2, "op": "ping"}))).unwrap_err();
    assert_eq!((id, err.code().as_str()), (None, "malformed_frame"));
}

#[derive(Deserialize, Debug)]
struct Decoded {
    v: u32,
    id: Option<u64>,
    #[serde(default)]
    ok: Option<serde_json::Value>,
    #[serde(default)]
    err: Option<serde_json::Value>,
}

#[test]
fn responses_encode_as_documented_maps() {
    let ok: Decoded = rmp_serde::from_slice(&encode_ok(4, &Reply::Done(()))).unwrap();
    assert_eq!((ok.v, ok.id), (2, Some(4)));
    let raw: BTreeMap<String, serde_json::Value> =
        rmp_serde::from_slice(&encode_ok(4, &Reply::Done(()))).unwrap();
    assert_eq!(
        raw.get("ok"),
        Some(&serde_json::Value::Null),
        "ok: nil is present"
    );
    let names = encode_ok(4, &Reply::Names(vec!["a".into()]));
    let names: Decoded = rmp_serde::from_slice(&names).unwrap();
    assert_eq!(names.ok, Some(json!(["a"])));
    let fut = encode_ok(
        4,
        &Reply::Future {
            call: 77,
            key: "r".into(),
        },
    );
    let fut: Decoded = rmp_serde::from_slice(&fut).unwrap();
    assert_eq!(fut.ok, Some(json!({"call": 77, "key": "r"})));
    let err = encode_err(None, &GatewayError::UnknownOp("x".into()).body());
    let err: Decoded = rmp_serde::from_slice(&err).unwrap();
    assert_eq!(err.id, None);
    let body = err.err.unwrap();
    assert_eq!(body["code"], "unknown_op");
    assert_eq!(body["traceback"], serde_json::Value::Null);
}

#[test]
fn values_encode_as_single_entry_maps() {
    let a = MsgValue(Bytes::from_static(b"\xa1a"));
    let v = rmp_serde::to_vec_named(&WireValue::Set(vec![a])).unwrap();
    // fixmap(1), fixstr "set", fixarray(1), fixstr "a"
    assert_eq!(v, b"\x81\xa3set\x91\xa1a");
}
