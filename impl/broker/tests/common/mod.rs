//! What the broker's loopback tests share: a NameServer and a broker configuration on
//! 127.0.0.1 with OS-assigned ports and small files, a raw remoting connection, and a wait.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sextant_broker::BrokerConfig;
use sextant_model::namesrv::NamesrvConfig;
use sextant_remoting::FrameCodec;
use sextant_remoting::RemotingCommand;
use sextant_remoting::code::request;
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{PullMessageRequestHeader, SendMessageRequestHeaderV2};
use sextant_remoting::message::MessageView;
use sextant_remoting::transport::Connection;

/// A NameServer with `config` on a free port.
pub async fn namesrv_with(config: NamesrvConfig) -> sextant_namesrv::Running {
    sextant_namesrv::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// A NameServer with the defaults on a free port.
pub async fn namesrv() -> sextant_namesrv::Running {
    namesrv_with(NamesrvConfig::default()).await
}

/// A broker on a free port storing in `dir` (1 MiB CommitLog segments), registering with
/// `namesrv`; the tests set what else they need.
pub fn base_config(dir: &Path, namesrv: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        listen_port: 0,
        namesrv_addr: namesrv.to_string(),
        store_path_root_dir: dir.to_owned(),
        mapped_file_size_commit_log: 1 << 20,
        ..Default::default()
    }
}

/// A raw remoting connection to `addr`.
pub async fn connect(addr: SocketAddr) -> Connection {
    Connection::connect(addr, FrameCodec::default(), None)
        .await
        .unwrap()
}

/// Whether `check` holds within 5 s (polled every 20 ms).
pub async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..250 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Create `group` in the broker's subscription group table (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
/// as `mqadmin updateSubGroup`): offsets are kept only for known groups.
pub async fn create_group(conn: &Connection, group: &str) {
    use sextant_remoting::code::response;
    let body = format!("{{\"groupName\":\"{group}\",\"consumeEnable\":true,\"retryMaxTimes\":16}}");
    let req = RemotingCommand::request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, 0)
        .with_body(body.into_bytes());
    let r = conn
        .invoke(req, Duration::from_secs(5))
        .await
        .expect("create group");
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

/// Create `topic` with `read` / `write` queues (UPDATE_AND_CREATE_TOPIC, as `mqadmin updateTopic`).
pub async fn create_topic(conn: &Connection, topic: &str, read: i32, write: i32) {
    use sextant_remoting::code::response;
    use sextant_remoting::header::CreateTopicRequestHeader;
    let h = CreateTopicRequestHeader {
        topic: topic.into(),
        default_topic: "TBW102".into(),
        read_queue_nums: read,
        write_queue_nums: write,
        perm: 6,
        topic_filter_type: "SINGLE_TAG".into(),
        order: false,
        topic_sys_flag: 0,
        attributes: None,
        force: None,
    };
    let req = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC, 0).with_ext(h.to_ext());
    let r = conn.invoke(req, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
}

/// A SEND_MESSAGE_V2 of `body` to `topic` queue `queue` with properties `props`.
pub fn send_v2(topic: &str, queue: i32, body: &[u8], props: &str) -> RemotingCommand {
    let h = SendMessageRequestHeaderV2 {
        g: 1_700_000_000_000,
        i: Some(props.into()),
        ..SendMessageRequestHeaderV2::new("pg", topic, queue)
    };
    RemotingCommand::request(request::SEND_MESSAGE_V2, 0)
        .with_ext(h.to_ext())
        .with_body(body.to_vec())
}

/// A PULL_MESSAGE of 32 from `offset`, subscribing `*`, held up to `suspend_ms` (0: not held).
pub fn pull_req(
    group: &str,
    topic: &str,
    queue: i32,
    offset: i64,
    suspend_ms: i64,
) -> RemotingCommand {
    let h = PullMessageRequestHeader {
        // FLAG_SUSPEND | FLAG_SUBSCRIPTION
        sys_flag: if suspend_ms > 0 { 2 | 4 } else { 4 },
        suspend_timeout_millis: suspend_ms,
        subscription: Some("*".into()),
        expression_type: Some("TAG".into()),
        ..PullMessageRequestHeader::new(group, topic, queue, offset, 32)
    };
    RemotingCommand::request(request::PULL_MESSAGE, 0).with_ext(h.to_ext())
}

/// The bodies of the records of a pull answer, as text.
pub fn bodies(records: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let (m, n) = MessageView::decode(&records[at..]).unwrap();
        out.push(String::from_utf8(m.body.to_vec()).unwrap());
        at += n;
    }
    out
}
