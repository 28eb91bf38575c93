//! # sextant-benches — fixtures shared by Sextant's criterion benchmarks
//!
//! The benchmarks live in `benches/benches/` (one file per area); this library builds the inputs
//! they measure so every benchmark uses the same shapes. Run them with `cargo bench -p
//! sextant-benches`; `cargo test --workspace --benches` runs each once as a smoke test.

use sextant_model::route::{MessageQueue, TopicRouteData};

/// A route of `brokers` master-only broker groups with `queues` read/write queues each.
pub fn route(brokers: usize, queues: u32) -> TopicRouteData {
    let names: Vec<(String, String)> = (0..brokers)
        .map(|b| (format!("broker-{b:03}"), format!("127.0.0.1:{}", 10911 + b)))
        .collect();
    TopicRouteData::of_masters(
        "DefaultCluster",
        names.iter().map(|(n, a)| (n.as_str(), a.as_str())),
        queues,
    )
}

/// `n` queues of topic `TopicTest` spread over 8 brokers in 2 rooms (`roomK@broker-NNN`).
pub fn queues(n: usize) -> Vec<MessageQueue> {
    let brokers = 8;
    (0..n)
        .map(|i| {
            let b = i % brokers;
            MessageQueue::new(
                "TopicTest",
                &format!("room{}@broker-{b:03}", b % 2),
                (i / brokers) as u32,
            )
        })
        .collect()
}

/// `n` consumer ids shaped like RocketMQ client ids, in 2 rooms.
pub fn consumers(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("room{}@10.0.{}.{}@{}", i % 2, i / 250, i % 250, 20_000 + i))
        .collect()
}

/// The SEND_MESSAGE_V2 request a Java producer sends for a tagged message with keys (13
/// extFields), with a body of `body_len` bytes.
pub fn send_request(body_len: usize) -> sextant_remoting::RemotingCommand {
    use sextant_remoting::ext::CommandHeader;
    use sextant_remoting::header::SendMessageRequestHeaderV2;
    let header = SendMessageRequestHeaderV2 {
        a: "please_rename_unique_group_name".into(),
        b: "TopicTest".into(),
        c: "TBW102".into(),
        d: 4,
        e: 3,
        f: 0,
        g: 1_700_000_000_000,
        h: 0,
        i: Some("KEYS\u{1}order-1234\u{2}TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}UNIQ_KEY\u{1}7F0000010F2A18B4AAC2720E3A0B0000\u{2}".into()),
        j: Some(0),
        k: Some(false),
        l: None,
        m: Some(false),
        n: Some("broker-a".into()),
    };
    sextant_remoting::RemotingCommand::request(sextant_remoting::code::request::SEND_MESSAGE_V2, 42)
        .with_ext(header.to_ext())
        .with_body(vec![b'x'; body_len])
}

/// A stored message of `TopicTest` queue 1 with `body` and `properties`, as a Java producer's
/// arrives (born and store hosts and times filled in, offsets 0).
pub fn sample_message<'a>(
    body: &'a [u8],
    properties: &'a str,
) -> sextant_remoting::message::MessageView<'a> {
    sextant_remoting::message::MessageView {
        queue_id: 1,
        flag: 0,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        born_host: "10.0.0.5:54321".parse().expect("address"),
        store_timestamp: 1_700_000_000_001,
        store_host: "10.0.0.1:10911".parse().expect("address"),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body_crc: sextant_remoting::message::body_crc(body),
        body,
        topic: "TopicTest",
        properties,
    }
}

/// The properties of [`sample_message`]s: a tag and a unique key.
pub fn sample_properties() -> String {
    sextant_remoting::message::encode_properties([
        ("TAGS", "TagA"),
        ("UNIQ_KEY", "7F0000010F2A18B4AAC2720E3A0B0000"),
    ])
}

/// A pull response body: `n` stored records of `body_len`-byte bodies.
pub fn pull_body(n: usize, body_len: usize) -> Vec<u8> {
    let body = vec![b'y'; body_len];
    let props = sample_properties();
    let mut out = Vec::with_capacity(n * (body_len + 200));
    for i in 0..n {
        let mut m = sample_message(&body, &props);
        m.queue_offset = i as i64;
        m.physical_offset = (i * (body_len + 200)) as i64;
        m.encode(&mut out).expect("a valid record");
    }
    out
}
