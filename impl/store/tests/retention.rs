//! Retention: `MessageStore::clean` deletes the CommitLog segments the model picks, the
//! ConsumeQueues and the index follow, a read below a queue's new min answers what makes the
//! broker reply OFFSET_MOVED, puts stop on a full disk, and the store reopens (and rebuilds its
//! queues) over a log that starts at a later segment. Time is explicit: no test sleeps.

use std::net::SocketAddr;
use std::path::Path;

use sextant_model::broker::{GetStatus, PullCode, pull_code};
use sextant_model::store::{CleanInput, CleanTrigger};
use sextant_remoting::message::{MessageView, encode_properties, property};
use sextant_store::fs::Fs;
use sextant_store::sim::SimFs;
use sextant_store::{Error, Get, IndexConfig, MessageStore, Put, StoreConfig};

const H: i64 = 3_600_000;
const SEG: u64 = 4096;

fn host() -> SocketAddr {
    "127.0.0.1:10911".parse().expect("addr")
}

fn config(fs: &SimFs) -> StoreConfig {
    let mut c = StoreConfig::new("/store");
    c.fs = fs.shared();
    c.segment_size = SEG;
    c.cq_entries_per_file = 4;
    c.index = IndexConfig {
        enabled: true,
        max_hash_slots: 8,
        max_index_num: 8,
    };
    c
}

/// Put one message of ~500 bytes to `topic`/`qid` stored at `ts`; its queue offset.
fn put(store: &MessageStore, topic: &str, qid: i32, key: &str, ts: i64) -> Result<u64, Error> {
    let body = vec![b'x'; 400];
    let props = encode_properties([(property::KEYS, key)]);
    let mut p = [Put {
        msg: MessageView {
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
            body: &body,
            topic,
            properties: &props,
        },
        tags_code: 0,
    }];
    Ok(store.put(&mut p)?.stored[0].queue_offset)
}

fn get(store: &MessageStore, topic: &str, qid: u32, offset: u64) -> sextant_store::GetResult {
    let req = Get {
        topic,
        queue_id: qid,
        offset,
        max_msgs: 32,
        max_bytes: 1 << 20,
        correct: true,
    };
    store.get(&req, &|_| true).expect("get")
}

/// 40 messages to A/0 at time 0 (about five segments), then 4 to B/0 at 100 h.
fn filled(fs: &SimFs) -> MessageStore {
    let (store, _) = MessageStore::open(config(fs)).expect("open");
    for i in 0..40 {
        put(&store, "A", 0, &format!("old{i}"), 0).expect("put");
    }
    for i in 0..4 {
        put(&store, "B", 0, &format!("new{i}"), 100 * H).expect("put");
    }
    store
}

#[test]
fn expired_segments_go_at_the_delete_hour_and_the_queues_follow() {
    let fs = SimFs::new();
    let store = filled(&fs);
    let (start, end) = store.log_offsets();
    assert_eq!(start, 0);
    let segments = end.div_ceil(SEG);
    assert!(segments >= 5, "{segments} segments");
    // 10 h after the newest: not the delete hour, a roomy disk: nothing.
    let r = store.clean(110 * H, 3).expect("clean");
    assert_eq!(r.plan.trigger, None);
    assert!(r.segments_deleted.is_empty());
    // At 4 o'clock, 73 h after time 0: the segments of A only, at most the batch of 10, never
    // the one being written (which holds B).
    let r = store.clean(73 * H, 4).expect("clean");
    assert_eq!(r.plan.trigger, Some(CleanTrigger::Time));
    assert!(!r.segments_deleted.is_empty());
    assert!(r.segments_deleted.iter().all(|s| *s < end - end % SEG));
    let (start, end2) = store.log_offsets();
    assert_eq!((start, end2), (r.log_start, end));
    assert_eq!(start, *r.segments_deleted.last().unwrap() + SEG);
    assert!(r.cq_files_deleted > 0);
    assert!(r.index_files_deleted > 0);
    // A/0 starts later: a pull from 0 is told to move to the new min.
    let (min, max) = store.offsets("A", 0);
    assert!(min > 0 && min <= max, "[{min}, {max})");
    let g = get(&store, "A", 0, 0);
    assert_eq!(g.status, GetStatus::OffsetTooSmall);
    assert_eq!((g.next_begin, g.min), (min, min));
    assert_eq!(pull_code(g.status, 0), PullCode::OffsetMoved);
    // From the min on, everything left is there.
    if min < max {
        let g = get(&store, "A", 0, min);
        assert_eq!(g.status, GetStatus::Found);
        let (m, _) = MessageView::decode(&g.records).expect("a record");
        assert_eq!(m.queue_offset as u64, min);
        assert!(m.physical_offset as u64 >= start);
    }
    assert_eq!(store.store_time("A", 0, 0).expect("store time"), None);
    // Old keys are gone from the index with their records, new ones found.
    assert_eq!(
        store
            .query_message("A", "old0", 4, 0, i64::MAX)
            .unwrap()
            .count,
        0
    );
    assert_eq!(
        store
            .query_message("B", "new3", 4, 0, i64::MAX)
            .unwrap()
            .count,
        1
    );
    // B untouched.
    assert_eq!(store.offsets("B", 0), (0, 4));
    assert_eq!(get(&store, "B", 0, 0).count, 4);
}

#[test]
fn a_full_disk_stops_puts_and_deletes_unexpired_segments_but_not_the_active_one() {
    let fs = SimFs::new();
    let store = filled(&fs);
    let (_, end) = store.log_offsets();
    fs.set_used_ratio(0.95);
    assert_eq!(store.check_disk().expect("measure"), 0.95);
    match put(&store, "A", 0, "late", 1) {
        Err(Error::DiskFull { used_ratio }) => assert_eq!(used_ratio, 0.95),
        other => panic!("a put on a full disk: {other:?}"),
    }
    // Reads go on.
    assert_eq!(get(&store, "B", 0, 0).count, 4);
    // Any hour, nothing expired yet: forcibly, all but the segment being written (batch 10).
    let r = store.clean(1, 12).expect("clean");
    assert_eq!(r.plan.trigger, Some(CleanTrigger::Space));
    assert!(r.plan.forcibly);
    assert_eq!(r.log_start, end - end % SEG);
    assert_eq!(store.log_offsets(), (end - end % SEG, end));
    // Nothing more to delete: the last segment stays.
    assert!(
        store
            .clean(1, 12)
            .expect("clean")
            .segments_deleted
            .is_empty()
    );
    // The disk freed: puts again, at the queue's next offset.
    fs.set_used_ratio(0.5);
    store.check_disk().expect("measure");
    assert_eq!(put(&store, "A", 0, "late", 1).expect("put"), 40);
    let (min, max) = store.offsets("A", 0);
    assert_eq!(max, 41);
    assert!(min <= 40);
}

#[test]
fn needed_offsets_hold_segments_back() {
    let fs = SimFs::new();
    let store = filled(&fs);
    let r = store
        .clean_with(CleanInput {
            now_ms: 1000 * H,
            hour_of_day: 4,
            disk_used_ratio: 0.1,
            manual: false,
            min_needed_offset: 2 * SEG,
        })
        .expect("clean");
    assert_eq!(r.segments_deleted, [0, SEG]);
}

#[test]
fn the_store_reopens_and_rebuilds_over_a_log_that_starts_later() {
    let fs = SimFs::new();
    let store = filled(&fs);
    let r = store.clean(73 * H, 4).expect("clean");
    let before = (
        store.offsets("A", 0),
        store.offsets("B", 0),
        store.log_offsets(),
    );
    let a_min = before.0.0;
    drop(store);
    // Reopened: the same offsets, the same records, puts go on.
    let (store, rec) = MessageStore::open(config(&fs)).expect("reopen");
    assert!(!rec.rebuilt);
    assert_eq!(
        (
            store.offsets("A", 0),
            store.offsets("B", 0),
            store.log_offsets()
        ),
        before
    );
    assert_eq!(get(&store, "A", 0, 0).status, GetStatus::OffsetTooSmall);
    assert_eq!(put(&store, "A", 0, "after", 200 * H).expect("put"), 40);
    drop(store);
    // Without a checkpoint every queue is rebuilt from a log whose first records are gone:
    // the queues start where the log does.
    fs.remove_file(Path::new("/store/checkpoint"))
        .expect("remove");
    let (store, rec) = MessageStore::open(config(&fs)).expect("rebuild");
    assert!(rec.rebuilt);
    assert_eq!(store.log_offsets().0, r.log_start);
    let (min, max) = store.offsets("A", 0);
    assert_eq!((min, max), (a_min, 41));
    let g = get(&store, "A", 0, min);
    let (m, _) = MessageView::decode(&g.records).expect("a record");
    assert_eq!(m.queue_offset as u64, min);
    assert_eq!(get(&store, "A", 0, 0).status, GetStatus::OffsetTooSmall);
    assert_eq!(store.offsets("B", 0), (0, 4));
    drop(store);
    // And once more, over the rebuilt queues (placeholders below the min are not read).
    let (store, _) = MessageStore::open(config(&fs)).expect("reopen");
    assert_eq!(store.offsets("A", 0), (a_min, 41));
    assert_eq!(get(&store, "A", 0, a_min).status, GetStatus::Found);
}

#[test]
fn a_queue_wholly_below_the_log_start_is_empty_at_its_max() {
    let fs = SimFs::new();
    let (store, _) = MessageStore::open(config(&fs)).expect("open");
    for i in 0..3 {
        put(&store, "Idle", 1, &format!("i{i}"), 0).expect("put");
    }
    for i in 0..30 {
        put(&store, "Busy", 0, &format!("b{i}"), 100 * H).expect("put");
    }
    // A disk above 85 %: every segment but the one written to.
    let r = store
        .clean_with(CleanInput {
            now_ms: 1,
            hour_of_day: 12,
            disk_used_ratio: 0.86,
            manual: false,
            min_needed_offset: u64::MAX,
        })
        .expect("clean");
    assert!(r.plan.forcibly && r.segments_deleted.len() >= 3);
    // Its only file stays (it is the one written to) but no entry points into the log.
    assert_eq!(store.offsets("Idle", 1), (3, 3));
    let g = get(&store, "Idle", 1, 1);
    assert_eq!((g.status, g.next_begin), (GetStatus::OffsetTooSmall, 3));
    assert_eq!(
        get(&store, "Idle", 1, 3).status,
        GetStatus::OffsetOverflowOne
    );
    assert_eq!(put(&store, "Idle", 1, "i3", 101 * H).expect("put"), 3);
    assert_eq!(get(&store, "Idle", 1, 3).count, 1);
}

#[test]
fn retention_on_the_real_disk_measures_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = StoreConfig::new(dir.path());
    c.segment_size = SEG;
    // Whatever this machine's disk holds, puts go on.
    c.retention.disk_warning_ratio = 1.0;
    let (store, _) = MessageStore::open(c).expect("open");
    let used = store.check_disk().expect("statvfs");
    assert!((0.0..=1.0).contains(&used), "{used}");
    put(&store, "A", 0, "k", 0).expect("put");
    let r = store.clean(73 * H, 4).expect("clean");
    assert!((0.0..=1.0).contains(&r.disk_used_ratio));
    assert!(
        r.segments_deleted.is_empty(),
        "the only segment is written to"
    );
}
