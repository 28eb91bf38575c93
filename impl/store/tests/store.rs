//! The message store on a temp directory: puts and reads, statuses, tag filters, reopening,
//! rebuilding and re-dispatching ConsumeQueues, SYNC_FLUSH acknowledgements, search by time,
//! queries by key within the answer's size.

use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use sextant_model::broker::GetStatus;
use sextant_model::store::FlushDiskType;
use sextant_remoting::body::java_hash;
use sextant_remoting::message::{MessageView, encode_properties, property};
use sextant_store::{Get, MessageStore, Put, StoreConfig};

fn host() -> SocketAddr {
    "127.0.0.1:10911".parse().expect("addr")
}

fn view<'a>(topic: &'a str, qid: i32, body: &'a [u8], props: &'a str, ts: i64) -> MessageView<'a> {
    MessageView {
        queue_id: qid,
        flag: 0,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: 0,
        born_timestamp: ts,
        born_host: host(),
        store_timestamp: ts,
        store_host: host(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body_crc: 0,
        body,
        topic,
        properties: props,
    }
}

fn put(store: &MessageStore, topic: &str, qid: i32, body: &[u8], tag: &str, ts: i64) -> u64 {
    let props = encode_properties([(property::TAGS, tag)]);
    let mut p = [Put {
        msg: view(topic, qid, body, &props, ts),
        tags_code: i64::from(java_hash(tag)),
    }];
    store.put(&mut p).expect("put").stored[0].queue_offset
}

fn get(topic: &str, queue_id: u32, offset: u64, max_msgs: usize, max_bytes: usize) -> Get<'_> {
    Get {
        topic,
        queue_id,
        offset,
        max_msgs,
        max_bytes,
        correct: true,
    }
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.segment_size = 64 * 1024;
    c.cq_entries_per_file = 16;
    c
}

fn bodies(records: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let (m, n) = MessageView::decode(&records[at..]).expect("record");
        out.push(m.body.to_vec());
        at += n;
    }
    out
}

#[test]
fn put_and_get_with_statuses_and_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, rec) = MessageStore::open(config(dir.path())).expect("open");
    assert_eq!(rec.queues, 0);
    for i in 0..40u64 {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        assert_eq!(
            put(
                &store,
                "T",
                1,
                format!("m{i}").as_bytes(),
                tag,
                1000 + i as i64
            ),
            i
        );
    }
    assert_eq!(store.offsets("T", 1), (0, 40));
    let all = |_: i64| true;
    let r = store.get(&get("T", 1, 5, 3, 1 << 20), &all).expect("get");
    assert_eq!(r.status, GetStatus::Found);
    assert_eq!((r.count, r.next_begin, r.min, r.max), (3, 8, 0, 40));
    assert_eq!(
        bodies(&r.records),
        [b"m5".to_vec(), b"m6".to_vec(), b"m7".to_vec()]
    );
    // Across ConsumeQueue files (16 entries each) and segments.
    let r = store.get(&get("T", 1, 10, 32, 1 << 20), &all).expect("get");
    assert_eq!((r.count, r.next_begin), (30, 40));
    let odd = i64::from(java_hash("odd"));
    let r = store
        .get(&get("T", 1, 0, 4, 1 << 20), &|c| c == odd)
        .expect("get");
    assert_eq!(
        bodies(&r.records),
        [b"m1", b"m3", b"m5", b"m7"].map(|b| b.to_vec())
    );
    assert_eq!(r.next_begin, 8);
    let none = store
        .get(&get("T", 1, 0, 4, 1 << 20), &|_| false)
        .expect("get");
    assert_eq!((none.status, none.count), (GetStatus::NoMatchedMessage, 0));
    assert!(none.next_begin > 0);
    let end = store.get(&get("T", 1, 40, 4, 1 << 20), &all).expect("get");
    assert_eq!(
        (end.status, end.next_begin),
        (GetStatus::OffsetOverflowOne, 40)
    );
    let past = store.get(&get("T", 1, 99, 4, 1 << 20), &all).expect("get");
    assert_eq!(
        (past.status, past.next_begin),
        (GetStatus::OffsetOverflowBadly, 40)
    );
    let empty = store.get(&get("T", 2, 0, 4, 1 << 20), &all).expect("get");
    assert_eq!(empty.status, GetStatus::NoMessageInQueue);
    // A byte limit stops early but always returns one message.
    let small = store.get(&get("T", 1, 0, 32, 10), &all).expect("get");
    assert_eq!((small.count, small.next_begin), (1, 1));
    assert_eq!(store.offset_by_time("T", 1, 1010).expect("search"), 10);
    assert_eq!(store.offset_by_time("T", 1, 0).expect("search"), 0);
    assert_eq!(store.offset_by_time("T", 1, 99_999).expect("search"), 40);
    // A topic name that is not a safe directory name is refused.
    let props = String::new();
    let mut bad = [Put {
        msg: view("../x", 0, b"x", &props, 0),
        tags_code: 0,
    }];
    assert!(store.put(&mut bad).is_err());
}

#[test]
fn reopen_keeps_everything_and_rebuilds_lost_queues() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (store, _) = MessageStore::open(config(dir.path())).expect("open");
        for i in 0..30 {
            put(&store, "A", 0, format!("a{i}").as_bytes(), "", i);
            put(&store, "B", 3, format!("b{i}").as_bytes(), "", i);
        }
        store.close();
    }
    let (store, rec) = MessageStore::open(config(dir.path())).expect("reopen");
    assert_eq!((rec.queues, rec.redispatched, rec.rebuilt), (2, 0, false));
    // A second opener of the same directory is refused while this one holds it.
    assert!(matches!(
        MessageStore::open(config(dir.path())),
        Err(sextant_store::Error::Locked(_))
    ));
    assert_eq!(store.offsets("B", 3), (0, 30));
    assert_eq!(put(&store, "B", 3, b"b30", "", 30), 30);
    // After close nothing more is stored, and the directory is free again.
    store.close();
    let props = String::new();
    let mut late = [Put {
        msg: view("B", 3, b"late", &props, 31),
        tags_code: 0,
    }];
    assert!(matches!(
        store.put(&mut late),
        Err(sextant_store::Error::Closed)
    ));
    drop(store);

    // Lose the ConsumeQueues entirely: they are rebuilt from the log.
    fs::remove_dir_all(dir.path().join("consumequeue")).expect("rm");
    let (store, rec) = MessageStore::open(config(dir.path())).expect("rebuild");
    assert!(rec.rebuilt);
    assert_eq!(rec.redispatched, 61);
    assert_eq!(store.offsets("A", 0), (0, 30));
    let r = store
        .get(&get("B", 3, 29, 8, 1 << 20), &|_| true)
        .expect("get");
    assert_eq!(bodies(&r.records), [b"b29".to_vec(), b"b30".to_vec()]);
    drop(store);

    // Lose the tail of one queue (a crash before its flush) with an old checkpoint: the missing
    // entries are dispatched again, the present ones verified.
    let q = dir.path().join("consumequeue/A/0/00000000000000000320");
    let len = fs::metadata(&q).expect("cq file").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&q)
        .and_then(|f| f.set_len(len - 40))
        .expect("truncate");
    fs::write(dir.path().join("checkpoint"), 0u64.to_be_bytes()).expect("checkpoint");
    let (store, rec) = MessageStore::open(config(dir.path())).expect("redispatch");
    assert_eq!((rec.rebuilt, rec.redispatched), (false, 2));
    assert_eq!(store.offsets("A", 0), (0, 30));
}

#[test]
fn a_torn_log_tail_cuts_the_queues_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (store, _) = MessageStore::open(config(dir.path())).expect("open");
        for i in 0..5 {
            put(&store, "T", 0, &[b'x'; 100], "", i);
        }
    }
    let seg = dir.path().join("commitlog/00000000000000000000");
    let len = fs::metadata(&seg).expect("segment").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .and_then(|f| f.set_len(len - 10))
        .expect("tear");
    let (store, rec) = MessageStore::open(config(dir.path())).expect("recover");
    assert!(rec.commitlog.truncated.is_some());
    assert_eq!(store.offsets("T", 0), (0, 4));
    assert_eq!(put(&store, "T", 0, b"again", "", 9), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_flush_acknowledges_after_the_fsync_with_group_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.flush = FlushDiskType::SyncFlush;
    c.segment_size = 1 << 20;
    let (store, _) = MessageStore::open(c).expect("open");
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = std::sync::Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let props = String::new();
                let body = format!("{t}-{i}");
                let mut p = [Put {
                    msg: view("S", t, body.as_bytes(), &props, 0),
                    tags_code: 0,
                }];
                let end = store.put(&mut p).expect("put").end;
                assert!(store.wait_flushed(end, Duration::from_secs(5)).await);
                assert!(store.flushed() >= end);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for q in 0..8 {
        assert_eq!(store.offsets("S", q), (0, 50));
    }
}

#[test]
fn a_put_of_many_messages_is_one_write_or_rolls_record_by_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.segment_size = 4096;
    let (store, _) = MessageStore::open(c).expect("open");
    let props = String::new();
    let body = [b'b'; 300];
    // Mixed queues in one put: offsets are consecutive per queue.
    let mut puts: Vec<Put<'_>> = [("A", 0), ("A", 0), ("B", 1), ("A", 0)]
        .iter()
        .map(|(t, q)| Put {
            msg: view(t, *q, &body, &props, 1),
            tags_code: 0,
        })
        .collect();
    let r = store.put(&mut puts).expect("put");
    let qos: Vec<u64> = r.stored.iter().map(|s| s.queue_offset).collect();
    assert_eq!(qos, [0, 1, 0, 2]);
    assert_eq!(store.offsets("A", 0), (0, 3));
    assert_eq!(store.offsets("B", 1), (0, 1));
    // A batch larger than the rest of the segment rolls over, record by record.
    let mut big: Vec<Put<'_>> = (0..12)
        .map(|_| Put {
            msg: view("A", 0, &body, &props, 2),
            tags_code: 0,
        })
        .collect();
    let r = store.put(&mut big).expect("put");
    assert!(r.stored.last().expect("stored").physical_offset >= 4096);
    let got = store
        .get(&get("A", 0, 0, 32, 1 << 20), &|_| true)
        .expect("get");
    assert_eq!(got.count, 15);
    for (i, s) in r.stored.iter().enumerate() {
        let rec = store.read_record(s.physical_offset).expect("record");
        let (m, _) = MessageView::decode(&rec).expect("decodes");
        assert_eq!(m.queue_offset as u64, 3 + i as u64);
        assert_eq!(m.physical_offset as u64, s.physical_offset);
    }
    drop(store);
    // Everything recovers as written.
    let (store, rec) = MessageStore::open({
        let mut c = config(dir.path());
        c.segment_size = 4096;
        c
    })
    .expect("reopen");
    assert_eq!(rec.commitlog.records, 16);
    assert_eq!(store.offsets("A", 0), (0, 15));
}

#[test]
fn a_queue_with_a_hole_past_the_checkpoint_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (store, _) = MessageStore::open(config(dir.path())).expect("open");
        for i in 0..5 {
            put(&store, "T", 0, b"x", "", i);
        }
    }
    // Keep entries 0 and 1 of the queue, and claim that everything before record 4 is indexed:
    // records 2 and 3 are missing from a queue the checkpoint says is complete.
    let q = dir.path().join("consumequeue/T/0/00000000000000000000");
    let e4 = fs::read(&q).expect("cq")[80..88].to_vec();
    fs::OpenOptions::new()
        .write(true)
        .open(&q)
        .and_then(|f| f.set_len(40))
        .expect("cut");
    fs::write(dir.path().join("checkpoint"), &e4).expect("checkpoint");
    let err = match MessageStore::open(config(dir.path())) {
        Ok(_) => panic!("opened a store with a hole"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("T/0 ends at 2"), "{err}");
    assert!(err.contains("to rebuild"), "{err}");
    // Following the advice rebuilds it.
    fs::remove_dir_all(dir.path().join("consumequeue")).expect("rm");
    let (store, rec) = MessageStore::open(config(dir.path())).expect("rebuilt");
    assert!(rec.rebuilt);
    assert_eq!(store.offsets("T", 0), (0, 5));
}

#[test]
fn store_times_and_log_offsets_read_record_heads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = MessageStore::open(config(dir.path())).expect("open");
    assert_eq!(store.log_offsets(), (0, 0));
    assert_eq!(store.earliest_store_time().expect("earliest"), None);
    assert_eq!(store.store_time("T", 0, 0).expect("time"), None);
    put(&store, "T", 0, b"first", "", 1_000);
    // A born host on IPv6 makes the head 12 bytes longer before the store timestamp.
    let props = String::new();
    let mut v6 = view("T", 0, b"second", &props, 2_000);
    v6.born_host = "[::1]:4000".parse().expect("v6 addr");
    v6.store_timestamp = 2_500;
    let mut p = [Put {
        msg: v6,
        tags_code: 0,
    }];
    let stored = store.put(&mut p).expect("put v6");
    assert_eq!(stored.stored[0].queue_offset, 1);
    assert_eq!(store.store_time("T", 0, 0).expect("time"), Some(1_000));
    assert_eq!(store.store_time("T", 0, 1).expect("time"), Some(2_500));
    assert_eq!(store.store_time("T", 0, 2).expect("time"), None);
    assert_eq!(store.store_time("T", 1, 0).expect("time"), None);
    assert_eq!(store.earliest_store_time().expect("earliest"), Some(1_000));
    let first = store.read_record(0).expect("record").len() as u64;
    assert_eq!(
        store.log_offsets(),
        (0, first + u64::from(stored.stored[0].size))
    );
}

#[test]
fn a_deleted_topic_loses_its_queues_not_its_log_and_starts_again_at_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (store, _) = MessageStore::open(config(dir.path())).expect("open");
        for i in 0..3 {
            put(&store, "T", 0, format!("old{i}").as_bytes(), "", i);
            put(&store, "T", 1, b"old", "", i);
            put(&store, "U", 0, format!("u{i}").as_bytes(), "", i);
        }
        let (_, end) = store.log_offsets();
        assert!(store.delete_topic("T").expect("delete"));
        assert!(!store.delete_topic("T").expect("again"));
        assert!(!store.delete_topic("NEVER").expect("unknown"));
        assert!(!dir.path().join("consumequeue/T").exists());
        // The checkpoint covers everything stored before the deletion.
        assert_eq!(
            fs::read(dir.path().join("checkpoint")).expect("checkpoint"),
            end.to_be_bytes()
        );
        assert_eq!(store.offsets("T", 0), (0, 0));
        assert!(!store.topics().contains_key("T"));
        assert_eq!(store.offsets("U", 0), (0, 3));
        // The records themselves stay in the CommitLog.
        let record = store.read_record(0).expect("record");
        let (m, _) = MessageView::decode(&record).expect("decode");
        assert_eq!((m.topic, m.body), ("T", &b"old0"[..]));
        // Created again, the topic starts at 0.
        assert_eq!(put(&store, "T", 0, b"new0", "", 10), 0);
        assert_eq!(put(&store, "T", 0, b"new1", "", 11), 1);
        store.close();
    }
    let reads = |store: &MessageStore| {
        let r = store
            .get(&get("T", 0, 0, 32, 1 << 20), &|_| true)
            .expect("get");
        bodies(&r.records)
    };
    let new = [b"new0".to_vec(), b"new1".to_vec()];
    // A normal reopen.
    let (store, rec) = MessageStore::open(config(dir.path())).expect("reopen");
    assert!(!rec.rebuilt);
    assert_eq!(reads(&store), new);
    assert_eq!(store.offsets("T", 1), (0, 0));
    drop(store);
    // A rebuild from the whole log: the queue restarting at 0 is the new topic; a queue the new
    // topic never wrote comes back with the old messages (the log still holds them).
    fs::remove_file(dir.path().join("checkpoint")).expect("rm checkpoint");
    let (store, rec) = MessageStore::open(config(dir.path())).expect("rebuild");
    assert!(rec.rebuilt);
    assert_eq!(reads(&store), new);
    assert_eq!(store.offsets("T", 1), (0, 3));
    assert_eq!(store.offsets("U", 0), (0, 3));
}

#[test]
fn a_query_answers_the_newest_that_fit_4_mib_by_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.segment_size = 16 << 20;
    let (store, _) = MessageStore::open(c).expect("open");
    let big = vec![b'b'; 1 << 20];
    let mut offsets = Vec::new();
    for i in 0..6 {
        let props = encode_properties([(property::KEYS, "big"), (property::UNIQ_KEY, "U")]);
        let mut p = [Put {
            msg: view("T", 0, &big, &props, 1_000 + i),
            tags_code: 0,
        }];
        offsets.push(store.put(&mut p).expect("put").stored[0].physical_offset);
    }
    let r = store
        .query_message("T", "big", 64, 0, i64::MAX)
        .expect("query");
    // Three records of 1 MiB and a little fit 4 MiB: the newest three, by offset.
    assert_eq!(r.count, 3);
    assert!(r.records.len() <= sextant_store::MAX_QUERY_BYTES);
    let mut at = 0;
    for want in &offsets[3..] {
        let (m, n) = MessageView::decode(&r.records[at..]).expect("record");
        assert_eq!(m.physical_offset as u64, *want);
        at += n;
    }
    assert_eq!(
        (
            r.index_last_update_phy_offset as u64,
            r.index_last_update_timestamp
        ),
        (offsets[5], 1_005)
    );
    // One record is answered whatever its size; another topic's or key's are not.
    let r = store
        .query_message("T", "U", 1, 0, i64::MAX)
        .expect("query");
    assert_eq!(r.count, 1);
    assert_eq!(
        store
            .query_message("X", "big", 64, 0, i64::MAX)
            .expect("query")
            .count,
        0
    );
    assert_eq!(
        store
            .query_message("T", "bi", 64, 0, i64::MAX)
            .expect("query")
            .count,
        0
    );
}
