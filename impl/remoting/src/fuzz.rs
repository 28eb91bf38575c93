//! The bodies of the cargo-fuzz targets (`fuzz/fuzz_targets/`), as plain functions, so that a
//! stable test replays the whole committed corpus in `cargo test`. Each must return without
//! panicking whatever the input.

use bytes::BytesMut;

use crate::frame::{DEFAULT_MAX_FRAME, decode_frame, encode_frame};

/// Decode frames from arbitrary bytes until they run out or one fails; every decoded command
/// must encode again and decode to itself.
pub fn frame_decode(data: &[u8]) {
    // The JSON header fast path must agree with the general decoder whenever it answers.
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(fast) = crate::json_fast::decode(text)
    {
        let general = crate::command::RemotingCommand::decode_json_header_general(text)
            .expect("the general decoder accepts what the fast path accepts");
        assert_eq!(fast, general, "JSON header fast path");
    }
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = decode_frame(&mut buf, DEFAULT_MAX_FRAME) {
        typed_headers(&cmd);
        let mut again = BytesMut::new();
        if encode_frame(&cmd, &mut again, DEFAULT_MAX_FRAME).is_ok() {
            let back = decode_frame(&mut again, DEFAULT_MAX_FRAME)
                .expect("an encoded frame decodes")
                .expect("an encoded frame is whole");
            assert_eq!(back, cmd, "frame round trip");
        }
    }
}

/// Decode the typed headers a server would read from `cmd`; each that decodes must encode to
/// fields that decode to it again.
fn typed_headers(cmd: &crate::command::RemotingCommand) {
    use crate::ext::CommandHeader;
    use crate::header::*;
    fn check<H: CommandHeader + PartialEq + std::fmt::Debug>(ext: &crate::ExtFields) {
        if let Ok(h) = H::from_ext(ext) {
            assert_eq!(H::from_ext(&h.to_ext()).ok(), Some(h), "header round trip");
        }
    }
    let Some(ext) = &cmd.ext_fields else {
        return;
    };
    check::<SendMessageRequestHeader>(ext);
    check::<SendMessageRequestHeaderV2>(ext);
    check::<PullMessageRequestHeader>(ext);
    check::<RegisterBrokerRequestHeader>(ext);
    check::<GetRouteInfoRequestHeader>(ext);
    check::<QueryConsumerOffsetRequestHeader>(ext);
    check::<CreateTopicRequestHeader>(ext);
    check::<ConsumerSendMsgBackRequestHeader>(ext);
    check::<UpdateConsumerOffsetRequestHeader>(ext);
    check::<SearchOffsetRequestHeader>(ext);
    check::<UnregisterClientRequestHeader>(ext);
    check::<BrokerPermRequestHeader>(ext);
    check::<DeleteTopicRequestHeader>(ext);
}

/// Decode the other JSON bodies (register-broker, heartbeat, cluster info, lock batch, data
/// version, topic table) from the same bytes; those that decode must round-trip.
fn other_bodies(data: &[u8]) {
    use crate::body::*;
    if let Ok(b) = RegisterBrokerBody::decode(data) {
        assert_eq!(
            RegisterBrokerBody::decode(&b.encode()).ok(),
            Some(b),
            "register body round trip"
        );
    }
    if let Ok(h) = decode::<HeartbeatData>("heartbeat", data) {
        assert_eq!(
            decode::<HeartbeatData>("heartbeat", &encode(&h)).ok(),
            Some(h),
            "heartbeat round trip"
        );
    }
    if let Ok(c) = decode_cluster_info(data) {
        assert_eq!(
            decode_cluster_info(&encode_cluster_info(&c)).ok(),
            Some(c),
            "cluster info round trip"
        );
    }
    if let Ok(l) = decode::<LockBatchRequestBody>("lock", data) {
        assert_eq!(
            decode::<LockBatchRequestBody>("lock", &encode(&l)).ok(),
            Some(l),
            "lock round trip"
        );
    }
    if let Ok(v) = decode_data_version(data) {
        assert_eq!(
            decode_data_version(&encode_data_version(&v)).ok(),
            Some(v),
            "data version round trip"
        );
    }
    if let Ok((v, t)) = decode_topic_table(data) {
        assert_eq!(
            decode_topic_table(&encode_topic_table(&v, &t)).ok(),
            Some((v, t)),
            "topic table round trip"
        );
    }
    // Admin bodies with objects as map keys (`mqTable`, `offsetTable`): what decodes writes
    // back the way the broker writes them and decodes to the same entries.
    if let Ok(text) = std::str::from_utf8(data) {
        for field in ["mqTable", "offsetTable"] {
            if let Ok(entries) = crate::body::object_key_map(text, field) {
                let mut out = format!("{{\"{field}\":").into_bytes();
                crate::body::encode_object_key_map(&mut out, entries.iter().map(|(k, v)| (k, v)));
                out.push(b'}');
                let again = std::str::from_utf8(&out).expect("JSON is UTF-8");
                assert_eq!(
                    crate::body::object_key_map(again, field).ok(),
                    Some(entries),
                    "object-keyed map round trip"
                );
            }
        }
    }
}

/// Decode a route body (and the other JSON bodies) from arbitrary bytes; a decoded route must
/// encode (both key styles) and decode to itself.
pub fn route_decode(data: &[u8]) {
    use crate::route::{KeyStyle, decode_route, encode_route};
    other_bodies(data);
    if let Ok(route) = decode_route(data) {
        for style in [KeyStyle::Quoted, KeyStyle::Unquoted] {
            let again =
                decode_route(&encode_route(&route, style)).expect("an encoded route decodes");
            assert_eq!(again, route, "route round trip ({style:?})");
        }
    }
}

/// Decode stored message records from arbitrary bytes; each decoded record must encode and
/// decode to itself.
pub fn message_decode(data: &[u8]) {
    use crate::message::{MessageView, decode_batch, decode_send_batch};
    let (messages, _) = decode_batch(data);
    for m in messages {
        let mut out = Vec::new();
        if m.encode(&mut out).is_ok() {
            let (back, size) = MessageView::decode(&out).expect("an encoded record decodes");
            assert_eq!(size, out.len());
            // The CRC is recomputed on encode; everything else survives.
            assert_eq!(back.body, m.body);
            assert_eq!(back.topic, m.topic);
            assert_eq!(back.properties, m.properties);
            assert_eq!(back.queue_offset, m.queue_offset);
        }
    }
    let _ = decode_send_batch(data);
}

/// Decode HA chunks and offset reports from arbitrary bytes until they run out or one fails;
/// every decoded chunk must encode to the bytes it came from.
pub fn ha_decode(data: &[u8]) {
    use tokio_util::codec::{Decoder, Encoder};
    let mut codec = crate::ha::ChunkCodec {
        max_body: 64 * 1024,
    };
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        match codec.decode(&mut buf) {
            Ok(Some(chunk)) => {
                let used = before.len() - buf.len();
                let mut again = BytesMut::new();
                codec
                    .encode(chunk, &mut again)
                    .expect("a decoded chunk encodes");
                assert_eq!(&again[..], &before[..used], "HA chunk round trip");
            }
            _ => break,
        }
    }
    let mut buf = BytesMut::from(data);
    while let Ok(Some(offset)) = crate::ha::ReportCodec.decode(&mut buf) {
        assert!(i64::try_from(offset).is_ok());
    }
}
