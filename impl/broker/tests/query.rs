//! QUERY_MESSAGE against a real NameServer and broker on 127.0.0.1, through raw remoting
//! connections, as `mqadmin queryMsgByKey` / `queryMsgByUniqueKey` and `Admin::query_message`
//! send it: by key and by unique key, only the topic's records with the key (tiny index files,
//! so keys collide and files roll), `maxNum` and its caps, time ranges, QUERY_NOT_FOUND with its
//! header, bad requests, a restart (the index kept), a lost index rebuilt from the log, and a
//! broker with the index off.

mod common;

use common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sextant_broker::{BrokerConfig, start};
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{
    QueryMessageResponseHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use sextant_remoting::message::{MessageView, encode_properties, parse_offset_msg_id};
use sextant_remoting::transport::Connection;
use sextant_remoting::{ExtFields, RemotingCommand};

const T: Duration = Duration::from_secs(10);

fn config(dir: &Path, namesrv: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        // Tiny index files: 7 slots, 15 entries each — collisions in every chain, many rolls.
        max_hash_slot_num: 7,
        max_index_num: 16,
        ..base_config(dir, namesrv)
    }
}

/// Send `body` to `topic` with `KEYS` and `UNIQ_KEY` as a Java producer sets them; its
/// CommitLog offset.
async fn send(conn: &Connection, topic: &str, body: &str, keys: &str, uniq: &str) -> i64 {
    let mut props = vec![("TAGS", "TagA"), ("WAIT", "true")];
    if !keys.is_empty() {
        props.push(("KEYS", keys));
    }
    if !uniq.is_empty() {
        props.push(("UNIQ_KEY", uniq));
    }
    let h = SendMessageRequestHeaderV2 {
        i: Some(encode_properties(props)),
        ..SendMessageRequestHeaderV2::new("pg", topic, 0)
    };
    let req = RemotingCommand::request(request::SEND_MESSAGE_V2, 0)
        .with_ext(h.to_ext())
        .with_body(body.as_bytes().to_vec());
    let r = conn.invoke(req, T).await.unwrap();
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let h = SendMessageResponseHeader::from_ext(r.ext_fields.as_ref().unwrap()).unwrap();
    parse_offset_msg_id(&h.msg_id).unwrap().1
}

/// QUERY_MESSAGE as `MQAdminImpl.queryMessage` writes it.
async fn query(
    conn: &Connection,
    topic: &str,
    key: &str,
    max_num: i32,
    range: (i64, i64),
    unique: bool,
) -> RemotingCommand {
    let mut ext = ExtFields::new();
    ext.insert("topic", topic);
    ext.insert("key", key);
    ext.insert("maxNum", max_num.to_string());
    ext.insert("beginTimestamp", range.0.to_string());
    ext.insert("endTimestamp", range.1.to_string());
    ext.insert("_UNIQUE_KEY_QUERY", unique.to_string());
    let req = RemotingCommand::request(request::QUERY_MESSAGE, 0).with_ext(ext);
    conn.invoke(req, T).await.unwrap()
}

const ALL: (i64, i64) = (0, i64::MAX);

/// The bodies of the records of an answer, checking that they come by offset, each once,
/// under `topic` and with `key` among their keys.
fn bodies(r: &RemotingCommand, topic: &str, key: &str) -> Vec<String> {
    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
    let mut out = Vec::new();
    let mut at = 0;
    let mut last = -1;
    while at < r.body.len() {
        let (m, n) = MessageView::decode(&r.body[at..]).unwrap();
        assert!(m.physical_offset > last, "by offset, each once");
        last = m.physical_offset;
        assert_eq!(m.topic, topic);
        let keys = m.property("KEYS").unwrap_or("");
        assert!(
            keys.split(' ').any(|k| k == key) || m.property("UNIQ_KEY") == Some(key),
            "{keys:?} for {key}"
        );
        out.push(String::from_utf8(m.body.to_vec()).unwrap());
        at += n;
    }
    out
}

fn answer_header(r: &RemotingCommand) -> QueryMessageResponseHeader {
    QueryMessageResponseHeader::from_ext(r.ext_fields.as_ref().expect("a header")).unwrap()
}

fn names(prefix: &str, ids: impl IntoIterator<Item = usize>) -> Vec<String> {
    ids.into_iter().map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_key_and_unique_key_across_restarts() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let conn = connect(broker.local_addr).await;

    // Nothing indexed yet: not found, with zeros for the index.
    let r = query(&conn, "Q", "order-0", 32, ALL, false).await;
    assert_eq!(
        (r.code, r.remark.as_deref()),
        (
            response::QUERY_NOT_FOUND,
            Some("can not find message, maybe time range not correct")
        )
    );
    assert_eq!(
        answer_header(&r),
        QueryMessageResponseHeader {
            index_last_update_timestamp: 0,
            index_last_update_phyoffset: 0,
        }
    );
    assert!(r.body.is_empty());

    for i in 0..10 {
        let keys = format!("order-{} all", i % 3);
        send(&conn, "Q", &format!("m{i}"), &keys, &format!("UNIQ{i}")).await;
    }
    // The same key on another topic, and a message without keys.
    send(&conn, "R", "r0", "order-0", "UNIQR0").await;
    send(&conn, "Q", "plain", "", "").await;
    let last_keyed = send(&conn, "Q", "late", "late", "").await;
    send(&conn, "Q", "plain2", "", "").await;

    let r = query(&conn, "Q", "order-0", 32, ALL, false).await;
    assert_eq!(bodies(&r, "Q", "order-0"), names("m", [0, 3, 6, 9]));
    // The header: the newest index file's end, the last record with a key.
    let h = answer_header(&r);
    assert_eq!(h.index_last_update_phyoffset, last_keyed);
    let view = {
        let mut ext = ExtFields::new();
        ext.insert("offset", last_keyed.to_string());
        RemotingCommand::request(request::VIEW_MESSAGE_BY_ID, 0).with_ext(ext)
    };
    let viewed = conn.invoke(view, T).await.unwrap();
    let stored_at = MessageView::decode(&viewed.body).unwrap().0.store_timestamp;
    assert_eq!(h.index_last_update_timestamp, stored_at);
    assert_eq!(
        bodies(
            &query(&conn, "R", "order-0", 32, ALL, false).await,
            "R",
            "order-0"
        ),
        ["r0"]
    );
    // maxNum: the newest that many, by offset.
    let r = query(&conn, "Q", "all", 3, ALL, false).await;
    assert_eq!(bodies(&r, "Q", "all"), names("m", 7..10));
    // By unique key, as queryMsgByUniqueKey asks.
    let r = query(&conn, "Q", "UNIQ4", 32, ALL, true).await;
    assert_eq!(bodies(&r, "Q", "UNIQ4"), ["m4"]);
    // Not found: another key, a key of another topic, a time range after every message.
    for (topic, key, range) in [
        ("Q", "order-9", ALL),
        ("Q", "UNIQR0", ALL),
        ("Q", "order-0", (stored_at + 60_000, i64::MAX)),
        ("Q", "order-0", (0, 1_000)),
    ] {
        let r = query(&conn, topic, key, 32, range, false).await;
        assert_eq!(r.code, response::QUERY_NOT_FOUND, "{key} {range:?}");
        assert_eq!(
            answer_header(&r),
            h,
            "the header also when nothing is found"
        );
    }
    // A time range around everything finds everything.
    let r = query(
        &conn,
        "Q",
        "all",
        32,
        (stored_at - 60_000, stored_at + 60_000),
        false,
    )
    .await;
    assert_eq!(bodies(&r, "Q", "all"), names("m", 0..10));
    // A field missing: refused, naming it.
    let mut ext = ExtFields::new();
    ext.insert("topic", "Q");
    ext.insert("key", "all");
    let r = conn
        .invoke(
            RemotingCommand::request(request::QUERY_MESSAGE, 0).with_ext(ext),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r.code, response::SYSTEM_ERROR);
    assert!(r.remark.unwrap_or_default().contains("maxNum"));

    // The caps: 64 at most (maxMsgsNumBatch), 32 for a query by unique key (defaultQueryMaxNum)
    // whatever it asks.
    for i in 0..70 {
        send(&conn, "Q", &format!("n{i}"), "many", "").await;
    }
    let r = query(&conn, "Q", "many", 1000, ALL, false).await;
    assert_eq!(bodies(&r, "Q", "many"), names("n", 6..70));
    let r = query(&conn, "Q", "many", 1, ALL, true).await;
    assert_eq!(bodies(&r, "Q", "many"), names("n", 38..70));
    let r = query(&conn, "Q", "many", 0, ALL, false).await;
    assert_eq!(r.code, response::QUERY_NOT_FOUND);

    // A clean restart: the index is kept, nothing indexed again.
    drop(conn);
    broker.shutdown().await;
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    let rec = &broker.recovery;
    // 15 entries a file: m0..m4 and m5..m9 (3 keys each), then r0, late and 12 of the 70,
    // three files of 15 more, and the last 13.
    assert_eq!(rec.index.files, 7, "{rec:?}");
    assert_eq!((rec.index.removed, rec.indexed), (0, 0), "{rec:?}");
    let conn = connect(broker.local_addr).await;
    let check = async |conn: &Connection| {
        let r = query(conn, "Q", "order-2", 32, ALL, false).await;
        assert_eq!(bodies(&r, "Q", "order-2"), names("m", [2, 5, 8]));
        let r = query(conn, "Q", "UNIQ9", 32, ALL, true).await;
        assert_eq!(bodies(&r, "Q", "UNIQ9"), ["m9"]);
        let r = query(conn, "Q", "many", 5, ALL, false).await;
        assert_eq!(bodies(&r, "Q", "many"), names("n", 65..70));
    };
    check(&conn).await;
    // Indexing goes on after the restart.
    send(&conn, "Q", "m10", "order-1", "UNIQ10").await;
    let r = query(&conn, "Q", "order-1", 32, ALL, false).await;
    assert_eq!(bodies(&r, "Q", "order-1"), names("m", [1, 4, 7, 10]));
    drop(conn);
    broker.shutdown().await;

    // The index lost: rebuilt from the CommitLog on start.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let broker = start(config(dir.path(), ns.local_addr)).await.unwrap();
    // 10 + 1 + 1 + 70 + 1 messages with keys.
    assert_eq!(broker.recovery.indexed, 83, "{:?}", broker.recovery);
    let conn = connect(broker.local_addr).await;
    check(&conn).await;
    let r = query(&conn, "Q", "order-1", 32, ALL, false).await;
    assert_eq!(bodies(&r, "Q", "order-1"), names("m", [1, 4, 7, 10]));
    drop(conn);
    broker.shutdown().await;
    ns.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_off_finds_nothing_and_keeps_no_files() {
    let ns = namesrv().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = start(BrokerConfig {
        message_index_enable: false,
        ..config(dir.path(), ns.local_addr)
    })
    .await
    .unwrap();
    let conn = connect(broker.local_addr).await;
    send(&conn, "Q", "m0", "k", "U0").await;
    let r = query(&conn, "Q", "k", 32, ALL, false).await;
    assert_eq!(r.code, response::QUERY_NOT_FOUND);
    assert_eq!(answer_header(&r).index_last_update_phyoffset, 0);
    assert!(!dir.path().join("index").exists());
    drop(conn);
    broker.shutdown().await;
    ns.shutdown().await;
}
