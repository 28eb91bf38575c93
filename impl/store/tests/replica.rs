//! Replication between two stores, as the broker's HA streams it (the decisions are
//! `sextant_model::ha`'s): a slave that follows the master's chunks, of any size and cut
//! anywhere in records, ends with the master's log byte for byte and the same ConsumeQueues; a
//! new slave starts at the master's last segment; a restarted slave resumes from its own end;
//! chunks at the wrong offset, garbage, bad CRCs, wrong offsets inside records and chunks past
//! the limit are refused with the slave's log as it was, and streaming then goes on.

use std::net::SocketAddr;

use proptest::prelude::*;
use sextant_model::ha::{MAX_CHUNK, next_chunk, transfer_start};
use sextant_remoting::message::{MessageView, encode_properties, property};
use sextant_store::{Error, Get, MessageStore, Put, StoreConfig};

const SEGMENT: u64 = 64 * 1024;
const TOPICS: [&str; 3] = ["orders", "audit", "x"];

fn host() -> SocketAddr {
    "127.0.0.1:10911".parse().expect("addr")
}

fn config(dir: &std::path::Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.segment_size = SEGMENT;
    c.cq_entries_per_file = 64;
    c
}

/// Put message `i` (its body says `i`; sizes vary from 20 B to ~9 KB).
fn put(store: &MessageStore, i: u64) {
    let topic = TOPICS[(i % 3) as usize];
    let body = format!("{i:08}-").repeat(1 + (i as usize * 37) % 1000);
    let props = encode_properties([(property::TAGS, "t"), (property::KEYS, &format!("k{i}"))]);
    let mut p = [Put {
        msg: MessageView {
            queue_id: (i % 4) as i32,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000 + i as i64,
            born_host: host(),
            store_timestamp: 1_700_000_000_000 + i as i64,
            store_host: host(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
            body: body.as_bytes(),
            topic,
            properties: &props,
        },
        tags_code: 1,
    }];
    store.put(&mut p).expect("put");
}

/// Stream from the master to the slave in chunks of `sizes` (cycled), as the HA connection
/// does, until the slave has everything. Returns the chunks sent.
fn follow(master: &MessageStore, slave: &MessageStore, sizes: &[usize]) -> usize {
    let m = master.master_log();
    let mut from = transfer_start(slave.replica_end(), m).expect("streamable");
    let mut n = 0;
    while let Some((start, len)) = next_chunk(from, m, sizes[n % sizes.len()]) {
        let bytes = master.read_log(start, len).expect("read");
        assert_eq!(bytes.len(), len);
        let done = slave.replicate(start, &bytes).expect("replicate");
        from = start + len as u64;
        assert_eq!(done.end, from, "the slave reports what it received");
        n += 1;
    }
    n
}

/// The slave holds exactly the master's log from where it starts, and the same queues.
fn assert_same(master: &MessageStore, slave: &MessageStore) {
    let (ms, me) = master.log_offsets();
    let (ss, se) = slave.log_offsets();
    assert_eq!(se, me, "log ends");
    assert!(ss >= ms);
    let mut at = ss;
    while at < se {
        let a = master.read_log(at, 7_919).expect("master");
        let b = slave.read_log(at, 7_919).expect("slave");
        assert_eq!(a, b, "bytes at {at}");
        at += a.len() as u64;
    }
    for topic in TOPICS {
        for q in 0..4 {
            let (mmin, mmax) = master.offsets(topic, q);
            let (smin, smax) = slave.offsets(topic, q);
            assert_eq!(smax, mmax, "{topic}/{q} max");
            if ss == ms {
                assert_eq!(smin, mmin, "{topic}/{q} min");
            }
            let get = |s: &MessageStore, from| {
                s.get(
                    &Get {
                        topic,
                        queue_id: q,
                        offset: from,
                        max_msgs: 10_000,
                        max_bytes: 64 << 20,
                        correct: false,
                    },
                    &|_| true,
                )
                .expect("get")
                .records
            };
            if smax > smin {
                assert_eq!(get(slave, smin), get(master, smin), "{topic}/{q} records");
            }
        }
    }
}

#[test]
fn a_slave_from_the_start_holds_the_masters_log_and_queues() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (master, _) = MessageStore::open(config(dirs.0.path())).expect("master");
    let (slave, _) = MessageStore::open(config(dirs.1.path())).expect("slave");
    assert_eq!(slave.replica_end(), 0);
    for i in 0..200 {
        put(&master, i);
        if i % 50 == 49 {
            follow(&master, &slave, &[32 * 1024]);
        }
    }
    follow(&master, &slave, &[32 * 1024]);
    let (_, end) = master.log_offsets();
    assert!(end > 4 * SEGMENT, "several segments: {end}");
    assert_same(&master, &slave);
    // Reopened, the slave has the same, and reports its end.
    drop(slave);
    let (slave, _) = MessageStore::open(config(dirs.1.path())).expect("reopen");
    assert_eq!(slave.replica_end(), end);
    assert_same(&master, &slave);
}

#[test]
fn a_new_slave_starts_at_the_masters_last_segment() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (master, _) = MessageStore::open(config(dirs.0.path())).expect("master");
    let (slave, _) = MessageStore::open(config(dirs.1.path())).expect("slave");
    for i in 0..150 {
        put(&master, i);
    }
    follow(&master, &slave, &[32 * 1024]);
    let (_, end) = master.log_offsets();
    let (start, _) = slave.log_offsets();
    assert_eq!(start, end - end % SEGMENT);
    assert!(start > 0);
    for i in 150..190 {
        put(&master, i);
    }
    follow(&master, &slave, &[5_000]);
    assert_same(&master, &slave);
    // Its queues start where the master's records in that window are.
    let (min, max) = slave.offsets("orders", 0);
    assert!(min > 0 && max == master.offsets("orders", 0).1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Chunks of any sizes, cut anywhere in records and blank padding, with slave restarts
    /// between: the slave ends with the master's log.
    #[test]
    fn any_chunking_and_restarts_give_the_same_log(
        sizes in proptest::collection::vec(1usize..12_000, 1..6),
        restarts in proptest::collection::vec(any::<bool>(), 4),
    ) {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (master, _) = MessageStore::open(config(dirs.0.path())).expect("master");
        let (mut slave, _) = MessageStore::open(config(dirs.1.path())).expect("slave");
        for (round, restart) in restarts.iter().enumerate() {
            for i in round as u64 * 40..(round as u64 + 1) * 40 {
                put(&master, i);
            }
            // Half a round: the slave may stop in the middle of a record.
            let m = master.master_log();
            let mut from = transfer_start(slave.replica_end(), m).expect("streamable");
            for size in &sizes {
                let Some((start, len)) = next_chunk(from, m, *size) else { break };
                slave.replicate(start, &master.read_log(start, len).unwrap()).expect("replicate");
                from = start + len as u64;
            }
            if *restart {
                drop(slave);
                slave = MessageStore::open(config(dirs.1.path())).expect("reopen").0;
            }
            follow(&master, &slave, &sizes);
        }
        assert_same(&master, &slave);
    }
}

#[test]
fn bad_chunks_are_refused_and_leave_the_slave_as_it_was() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (master, _) = MessageStore::open(config(dirs.0.path())).expect("master");
    let (slave, _) = MessageStore::open(config(dirs.1.path())).expect("slave");
    put(&master, 0);
    follow(&master, &slave, &[3_000]);
    for i in 1..20 {
        put(&master, i);
    }
    follow(&master, &slave, &[3_000]);
    for i in 20..30 {
        put(&master, i);
    }
    let end = slave.replica_end();
    let good = master.read_log(end, 20_000).expect("read");
    let refused = |r: Result<_, Error>| {
        assert!(r.is_err(), "accepted");
        assert_eq!(slave.replica_end(), end, "the slave moved");
        assert_eq!(slave.log_offsets().1, end, "the slave's log changed");
    };
    // At the wrong offsets: behind (divergence) and ahead (a gap).
    let behind = slave.replicate(end - 10, &good[..100]);
    assert!(matches!(behind, Err(Error::Replica(_))));
    assert!(behind.unwrap_err().to_string().contains("diverged"));
    refused(slave.replicate(end + 10, &good[..100]));
    // Over the size limit.
    refused(slave.replicate(end, &vec![0; MAX_CHUNK + 1]));
    // Garbage: a size no record has.
    refused(slave.replicate(end, &[0xff; 64]));
    // A record whose body does not match its CRC.
    let mut bad_crc = good.clone();
    let (_, len) = MessageView::decode(&good).expect("a record");
    // The body's first byte (after 88 bytes of fixed fields with IPv4 hosts).
    bad_crc[88] ^= 1;
    refused(slave.replicate(end, &bad_crc[..len]));
    // A record that says it belongs elsewhere in the log.
    let mut moved = good.clone();
    moved[28..36].copy_from_slice(&(end as i64 + 1).to_be_bytes());
    refused(slave.replicate(end, &moved[..len]));
    // A record cut in half is kept in memory, not written; a bad second half drops both.
    let half = len / 2;
    assert!(half > 88 && half + 10 < len - 100, "the cut is in the body");
    slave.replicate(end, &good[..half]).expect("half");
    assert_eq!(slave.replica_end(), end + half as u64);
    assert_eq!(slave.log_offsets().1, end);
    let mut rest = good[half..len].to_vec();
    rest[10] ^= 1;
    assert!(slave.replicate(end + half as u64, &rest).is_err());
    assert_eq!(slave.replica_end(), end);
    // The master's real bytes are taken after all that.
    follow(&master, &slave, &[1_000]);
    assert_same(&master, &slave);
}

/// A record as a RocketMQ master stores it at `at`: `sys_flag`, `queue_id`, `queue_offset`.
fn record(at: u64, sys_flag: i32, queue_id: i32, queue_offset: i64) -> Vec<u8> {
    let mut out = Vec::new();
    MessageView {
        queue_id,
        flag: 0,
        queue_offset,
        physical_offset: at as i64,
        sys_flag,
        born_timestamp: 1_700_000_000_000,
        born_host: host(),
        store_timestamp: 1_700_000_000_000,
        store_host: host(),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        body_crc: 0,
        body: b"half",
        topic: "orders",
        properties: "",
    }
    .encode(&mut out)
    .expect("encodes");
    out
}

#[test]
fn a_refusal_forgets_the_incomplete_record_and_a_refused_new_slave_follows_any_master() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (master, _) = MessageStore::open(config(dirs.0.path())).expect("master");
    let (slave, _) = MessageStore::open(config(dirs.1.path())).expect("slave");
    // A new slave refuses garbage at 0 (the segment it opened for it is still "nothing").
    assert!(slave.replicate(0, &[0xee; 100]).is_err());
    assert_eq!(slave.replica_end(), 0);
    // The master grows past its first segment: the slave follows it from its last one.
    for i in 0..60 {
        put(&master, i);
    }
    let (_, end) = master.log_offsets();
    assert!(end > SEGMENT);
    follow(&master, &slave, &[4_000]);
    assert_eq!(slave.log_offsets(), (end - end % SEGMENT, end));
    // Half a record pending, then a refused chunk: the half is forgotten, the slave reports
    // the end of what it wrote.
    put(&master, 60);
    let next = master.read_log(end, 100).expect("read");
    slave.replicate(end, &next[..50]).expect("half");
    assert_eq!(slave.replica_end(), end + 50);
    assert!(slave.replicate(end + 7, &next[57..60]).is_err());
    assert_eq!(slave.replica_end(), end);
    // And so does a new connection.
    slave.replicate(end, &next[..50]).expect("half");
    slave.replica_restart();
    assert_eq!(slave.replica_end(), end);
    follow(&master, &slave, &[333]);
    assert_eq!(slave.log_offsets().1, master.log_offsets().1);
}

#[test]
fn transaction_halves_are_stored_unqueued_and_bad_queue_ids_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (slave, _) = MessageStore::open(config(dir.path())).expect("slave");
    // RocketMQ stores a prepared half with queue offset 0 and no ConsumeQueue entry, then the
    // ordinary messages of the queue from offset 0.
    let mut at = 0;
    for (flag, qo) in [(0x4, 0), (0, 0), (0xC, 0), (0, 1)] {
        let r = record(at, flag, 0, qo);
        slave.replicate(at, &r).expect("a RocketMQ record");
        at += r.len() as u64;
    }
    assert_eq!(slave.offsets("orders", 0), (0, 2));
    // A queue id past 1024, or a queue offset no ConsumeQueue can hold, is refused.
    for r in [record(at, 0, 5_000, 0), record(at, 0, 1, i64::MAX / 2)] {
        assert!(slave.replicate(at, &r).is_err());
        assert_eq!(slave.replica_end(), at);
    }
    // Rebuilt from the log, the queues are the same.
    drop(slave);
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    let (slave, rec) = MessageStore::open(config(dir.path())).expect("reopen");
    assert!(rec.rebuilt);
    assert_eq!(slave.offsets("orders", 0), (0, 2));
}
