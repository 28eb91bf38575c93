//! ConsumeQueue file handles are bounded: a store with 3 000 queues holds at most
//! `cq_max_open_files` of their files open (counted in `/proc/self/fd`), and every message stays
//! readable — through handles closed and opened again — before and after a reopen. The same
//! store without the cap holds one descriptor per queue: the count catches a cache that does
//! not close.
//!
//! One test, so that no other test of this binary opens files meanwhile.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sextant_model::broker::GetStatus;
use sextant_remoting::message::MessageView;
use sextant_store::{Get, MessageStore, Put, StoreConfig};

/// Descriptors the store holds besides ConsumeQueue files (lock, segment, index, checkpoint
/// writes) and what the test harness opens meanwhile.
const SLACK: usize = 24;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn host() -> SocketAddr {
    "127.0.0.1:10911".parse().expect("addr")
}

fn body(q: u32) -> Vec<u8> {
    format!("message of queue {q}").into_bytes()
}

/// Topic and queue id of queue `q` (100 queues a topic).
fn queue(q: u32) -> (String, u32) {
    (format!("T{}", q / 100), q % 100)
}

fn config(dir: &Path, cap: usize) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.segment_size = 1 << 20;
    c.cq_entries_per_file = 1000;
    c.cq_max_open_files = cap;
    // The test flushes; a timed flush would hold handles of its own for a moment.
    c.cq_flush_interval = Duration::from_secs(3600);
    c.index.enabled = false;
    c
}

fn put_one(store: &MessageStore, q: u32) {
    let (topic, qid) = queue(q);
    let b = body(q);
    let msg = MessageView {
        queue_id: qid as i32,
        flag: 0,
        queue_offset: 0,
        physical_offset: 0,
        sys_flag: 0,
        born_timestamp: 1,
        born_host: host(),
        store_timestamp: 1,
        store_host: host(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body_crc: 0,
        body: &b,
        topic: &topic,
        properties: "",
    };
    let stored = store.put(&mut [Put { msg, tags_code: 0 }]).expect("put");
    assert_eq!(stored.stored[0].queue_offset, 0);
}

fn check_all(store: &MessageStore, queues: u32) {
    for q in 0..queues {
        let (topic, queue_id) = queue(q);
        let get = Get {
            topic: &topic,
            queue_id,
            offset: 0,
            max_msgs: 32,
            max_bytes: 1 << 20,
            correct: true,
        };
        let r = store.get(&get, &|_| true).expect("get");
        assert_eq!((r.status, r.count), (GetStatus::Found, 1), "queue {q}");
        let (m, _) = MessageView::decode(&r.records).expect("a record");
        assert_eq!(m.body, body(q), "queue {q}");
    }
}

/// Puts one message into each of `queues` queues with at most `cap` handles, reads them all,
/// reopens the store and reads them again; returns the most descriptors held at once over
/// the count before the store opened (measured after the puts, the reads and the reopen).
fn run(dir: &Path, queues: u32, cap: usize) -> usize {
    let before = open_fds();
    let mut most = 0;
    {
        let (store, _) = MessageStore::open(config(dir, cap)).expect("open");
        for q in 0..queues {
            put_one(&store, q);
        }
        store.flush().expect("flush");
        most = most.max(open_fds() - before);
        check_all(&store, queues);
        most = most.max(open_fds() - before);
    }
    let (store, rec) = MessageStore::open(config(dir, cap)).expect("reopen");
    assert_eq!(rec.queues, queues as usize);
    assert!(!rec.rebuilt);
    most = most.max(open_fds() - before);
    check_all(&store, queues);
    most.max(open_fds() - before)
}

/// A temporary directory on tmpfs when there is one (the store fsyncs every new queue's file
/// and directories: thousands of journal commits on a disk), else the default.
fn temp_dir() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").expect("tempdir"),
        false => tempfile::tempdir().expect("tempdir"),
    }
}

#[test]
fn consume_queue_handles_stay_under_the_cap_and_every_message_stays_readable() {
    let cap = 256;
    let dir = temp_dir();
    let held = run(dir.path(), 3000, cap);
    eprintln!("3000 queues, cap {cap}: at most {held} more descriptors");
    assert!(held <= cap + SLACK, "{held} descriptors held, cap {cap}");

    // Without the cap every queue's file stays open: the count sees it.
    let dir = temp_dir();
    let queues = 900;
    let held = run(dir.path(), queues, usize::MAX);
    eprintln!("{queues} queues, no cap: at most {held} more descriptors");
    assert!(
        held >= queues as usize,
        "{held} descriptors for {queues} queues"
    );
    assert!(held > cap + SLACK);
}
