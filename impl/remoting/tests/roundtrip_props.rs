//! Property tests of the codecs: encoding then decoding gives the same value, for every type;
//! decoding arbitrary bytes never panics.

use std::collections::BTreeMap;

use bytes::BytesMut;
use proptest::prelude::*;
use sextant_model::route::{BrokerData, Perm, QueueData, TopicRouteData};
use sextant_remoting::command::{ExtFields, LanguageCode, RemotingCommand, SerializeType};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::frame::{DEFAULT_MAX_FRAME, decode_frame, encode_frame};
use sextant_remoting::header::{
    PullMessageRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
};
use sextant_remoting::message::{
    BatchItem, MessageView, decode_batch, decode_send_batch, encode_properties, encode_send_batch,
    parse_properties,
};
use sextant_remoting::route::{KeyStyle, decode_route, encode_route};

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including quotes, backslashes and control characters.
    prop::string::string_regex("(?s).{0,12}").unwrap()
}

fn ext() -> impl Strategy<Value = Option<ExtFields>> {
    prop::option::of(
        prop::collection::btree_map(text(), text(), 0..6).prop_map(|m| m.into_iter().collect()),
    )
}

fn command() -> impl Strategy<Value = RemotingCommand> {
    (
        any::<i16>(),
        0u8..14,
        any::<i16>(),
        any::<i32>(),
        0..4i32,
        prop::option::of(text()),
        ext(),
        prop::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(
            |(code, lang, version, opaque, flag, remark, ext, body, binary)| {
                let serialize_type = if binary {
                    SerializeType::RocketMq
                } else {
                    SerializeType::Json
                };
                RemotingCommand {
                    code: i32::from(code),
                    language: LanguageCode(lang),
                    version: i32::from(version),
                    opaque,
                    flag,
                    // The binary form cannot tell an empty remark from none.
                    remark: remark.filter(|r| !(binary && r.is_empty())),
                    ext_fields: ext.filter(|e| !(binary && e.is_empty())),
                    body: body.into(),
                    serialize_type,
                }
            },
        )
}

fn route() -> impl Strategy<Value = TopicRouteData> {
    let broker = (
        text(),
        text(),
        prop::collection::btree_map(0u64..4, text(), 0..3),
        prop::option::of(text()),
        any::<bool>(),
    )
        .prop_map(
            |(cluster, broker_name, broker_addrs, zone_name, enable_acting_master)| BrokerData {
                cluster,
                broker_name,
                broker_addrs,
                zone_name,
                enable_acting_master,
            },
        );
    let queue =
        (text(), 0u32..64, 0u32..64, 0u32..16, 0u32..4).prop_map(|(b, r, w, p, f)| QueueData {
            broker_name: b,
            read_queue_nums: r,
            write_queue_nums: w,
            perm: Perm(p),
            topic_sys_flag: f,
        });
    (
        prop::option::of(text()),
        prop::collection::vec(queue, 0..4),
        prop::collection::vec(broker, 0..4),
        prop::collection::btree_map(text(), prop::collection::vec(text(), 0..3), 0..2),
    )
        .prop_map(
            |(order_topic_conf, queue_datas, broker_datas, filter_server_table)| TopicRouteData {
                order_topic_conf,
                queue_datas,
                broker_datas,
                filter_server_table,
            },
        )
}

proptest! {
    #[test]
    fn frames_round_trip(cmd in command()) {
        let mut buf = BytesMut::new();
        encode_frame(&cmd, &mut buf, DEFAULT_MAX_FRAME).unwrap();
        let back = decode_frame(&mut buf, DEFAULT_MAX_FRAME).unwrap().unwrap();
        prop_assert_eq!(back, cmd);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn routes_round_trip_in_both_key_styles(r in route()) {
        prop_assert_eq!(decode_route(&encode_route(&r, KeyStyle::Quoted)).unwrap(), r.clone());
        prop_assert_eq!(decode_route(&encode_route(&r, KeyStyle::Unquoted)).unwrap(), r);
    }

    #[test]
    fn records_round_trip(
        body in prop::collection::vec(any::<u8>(), 0..256),
        topic in prop::string::string_regex(".{1,140}").unwrap(),
        props in prop::collection::btree_map("[A-Z_]{1,8}", "[a-z0-9 ]{1,8}", 0..4),
        offsets in (any::<i64>(), any::<i64>(), any::<i32>()),
        v6 in any::<bool>(),
    ) {
        let properties = encode_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let host = if v6 { "[2001:db8::1]:10911" } else { "10.1.2.3:10911" };
        let m = MessageView {
            queue_id: offsets.2,
            flag: 7,
            queue_offset: offsets.0,
            physical_offset: offsets.1,
            sys_flag: 0,
            born_timestamp: 1,
            born_host: host.parse().unwrap(),
            store_timestamp: 2,
            store_host: "10.0.0.1:10911".parse().unwrap(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: sextant_remoting::message::body_crc(&body),
            body: &body,
            topic: &topic,
            properties: &properties,
        };
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        m.encode(&mut out).unwrap();
        let (ms, err) = decode_batch(&out);
        prop_assert!(err.is_none());
        prop_assert_eq!(ms.len(), 2);
        let mut expected = m.clone();
        if v6 {
            expected.sys_flag |= sextant_remoting::message::sys_flag::BORNHOST_V6;
        }
        prop_assert_eq!(&ms[0], &expected);
        let parsed: BTreeMap<&str, &str> = parse_properties(ms[1].properties);
        prop_assert_eq!(parsed.len(), props.len());
    }

    #[test]
    fn send_batches_round_trip(items in prop::collection::vec((any::<i32>(), prop::collection::vec(any::<u8>(), 0..64), "[a-z]{0,10}"), 0..5)) {
        let items: Vec<BatchItem<'_>> = items
            .iter()
            .map(|(flag, body, props)| BatchItem { flag: *flag, body, properties: props })
            .collect();
        let mut out = Vec::new();
        encode_send_batch(&items, &mut out).unwrap();
        prop_assert_eq!(decode_send_batch(&out).unwrap(), items);
    }

    #[test]
    fn send_headers_round_trip(
        group in "[a-z]{1,8}", topic in "[A-Za-z]{1,8}", queue in any::<i32>(), ts in any::<i64>(),
        props in prop::option::of("[a-z]{0,8}"), batch in any::<bool>(), retries in prop::option::of(any::<i32>()),
    ) {
        let v1 = SendMessageRequestHeader {
            producer_group: group,
            topic,
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: queue,
            sys_flag: 0,
            born_timestamp: ts,
            flag: 0,
            unit_mode: false,
            batch,
            properties: props,
            reconsume_times: retries,
            max_reconsume_times: None,
        };
        prop_assert_eq!(SendMessageRequestHeader::from_ext(&v1.to_ext()).unwrap(), v1.clone());
        let v2 = SendMessageRequestHeaderV2::from(v1.clone());
        let back = SendMessageRequestHeaderV2::from_ext(&v2.to_ext()).unwrap();
        prop_assert_eq!(SendMessageRequestHeader::from(back), v1);
    }

    #[test]
    fn pull_headers_round_trip(offset in any::<i64>(), max in any::<i32>(), sub in prop::option::of("[a-zA-Z |*]{0,12}")) {
        let h = PullMessageRequestHeader {
            consumer_group: "g".into(),
            topic: "T".into(),
            queue_id: 1,
            queue_offset: offset,
            max_msg_nums: max,
            sys_flag: 3,
            commit_offset: 0,
            suspend_timeout_millis: 15_000,
            sub_version: 0,
            subscription: sub,
            expression_type: Some("TAG".into()),
            max_msg_bytes: None,
        };
        prop_assert_eq!(PullMessageRequestHeader::from_ext(&h.to_ext()).unwrap(), h);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        sextant_remoting::fuzz::frame_decode(&data);
        sextant_remoting::fuzz::route_decode(&data);
        sextant_remoting::fuzz::message_decode(&data);
        let _ = RemotingCommand::decode_json_header(&data);
        let _ = RemotingCommand::decode_binary_header(&data);
    }

    #[test]
    fn arbitrary_json_like_text_never_panics(data in "[{}\\[\\]\":,0-9a-z \\\\-]{0,80}") {
        sextant_remoting::fuzz::route_decode(data.as_bytes());
        let _ = RemotingCommand::decode_json_header(data.as_bytes());
    }
}
