//! Power loss, not just `kill -9`: the store over [`SimFs`], which keeps what was written but not
//! fsynced apart and drops it when the power goes (all of it, or a random prefix per file and
//! per directory with the next write torn; see `sextant_store::sim`).
//!
//! Each case is a few rounds; a round opens the store over what the last power loss left,
//! checks it, then runs random puts (random topics, queues, sizes, batches) and saves of a
//! consumer-offset file (`config::save_json_in`) until the disk dies after a random number of
//! operations (`SimFs::crash_after`: in the middle of a put, a group commit, a ConsumeQueue or
//! index flush, a checkpoint, a config save, a retention pass deleting segments, ConsumeQueue
//! and index files) or the round ends, and the power goes. After every open:
//! - the store opens (recovery never fails on what a power loss leaves);
//! - every ConsumeQueue entry from the queue's min to its max points at a sound record (size,
//!   magic, CRC) of that topic, queue and queue offset, that some put wrote — never past the
//!   log's end, never at a non-record;
//! - with `SYNC_FLUSH`, every acknowledged message (the put returned and `wait_flushed` said
//!   yes) is there at its queue offset, and found by its key in the message index — unless a
//!   retention pass that returned deleted its segment;
//! - the consumer-offset file is the last save that returned or a later attempted one, never
//!   torn or half-written.
//!
//! Half the cases keep at most two ConsumeQueue files open (`StoreConfig::cq_max_open_files`),
//! so handles are closed — dirty ones after an fsync — and opened again all the time.
//!
//! And the harness has teeth: with `ASYNC_FLUSH` some runs lose acknowledged messages, and so
//! does a store broken on purpose (`StoreConfig::sim_skip_commitlog_fsync`: SYNC_FLUSH without
//! the CommitLog's fsync) — both tests assert that the loss is found.
//!
//! Size: `SEXTANT_POWER_LOSS_CASES` cases of up to three crash points each (default 3 000, about
//! 6 000 crash points, well under a minute in debug `cargo test` on two cores), e.g.
//! `SEXTANT_POWER_LOSS_CASES=20000 cargo test -p sextant-store --test power_loss --release`.
//! `SEXTANT_POWER_LOSS_DEBUG=1` prints each recovery, each retention pass and each lost message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use sextant_model::store::{CleanInput, FlushDiskType};
use sextant_remoting::message::{MessageView, body_crc, encode_properties, property};
use sextant_store::config::{ConsumerOffsets, load_json_in, save_json_in};
use sextant_store::sim::{Loss, SimFs};
use sextant_store::{Get, IndexConfig, MessageStore, Put, StoreConfig};

const TOPICS: [&str; 3] = ["A", "B", "C"];
const DIR: &str = "/s";
/// CommitLog segment size: a put of three messages may roll a segment.
const SEG: u64 = 4096;
const OFFSETS: &str = "/s/config/consumerOffset.json";

/// One put: messages `(topic, queue, body length)`.
#[derive(Clone, Debug)]
struct Step {
    msgs: Vec<(usize, u32, usize)>,
    save_offsets: bool,
    /// A retention pass first, with the disk above 85 %: every segment but the last goes.
    clean: bool,
}

#[derive(Clone, Debug)]
struct Round {
    steps: Vec<Step>,
    crash_after: u64,
    /// 0: only what was synced survives; 1: a random prefix (seeded); 2: everything.
    loss: (u8, u64),
}

#[derive(Clone, Debug)]
struct Case {
    rounds: Vec<Round>,
    /// ConsumeQueues, index and checkpoint flushed every millisecond, else every second.
    fast_cq: bool,
    /// At most two ConsumeQueue files open (of 9 queues' files: handles closed, dirty ones
    /// after an fsync, and opened again all the time), else the default cap.
    few_handles: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::collection::vec((0..3usize, 0..3u32, 0..700usize), 1..=3),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.08),
    )
        .prop_map(|(msgs, save_offsets, clean)| Step {
            msgs,
            save_offsets,
            clean,
        })
}

fn case() -> impl Strategy<Value = Case> {
    let round = (
        prop::collection::vec(step(), 0..12),
        0..150u64,
        (0..3u8, any::<u64>()),
    )
        .prop_map(|(steps, crash_after, loss)| Round {
            steps,
            crash_after,
            loss,
        });
    (
        prop::collection::vec(round, 1..=3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(rounds, fast_cq, few_handles)| Case {
            rounds,
            fast_cq,
            few_handles,
        })
}

/// How the store under test flushes.
#[derive(Clone, Copy, Debug)]
struct Mode {
    flush: FlushDiskType,
    broken: bool,
}

/// What a case saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Acknowledged messages found missing after a power loss.
    lost: usize,
    /// Messages acknowledged.
    acked: usize,
    /// Rounds whose disk died in the middle (not at the round's end).
    mid_crashes: usize,
}

fn host() -> SocketAddr {
    "127.0.0.1:10911".parse().expect("addr")
}

fn config(fs: &SimFs, mode: Mode, case: &Case) -> StoreConfig {
    let mut c = StoreConfig::new(DIR);
    c.fs = fs.shared();
    c.segment_size = SEG;
    c.cq_entries_per_file = 4;
    c.flush = mode.flush;
    c.flush_interval = Duration::from_millis(20);
    c.cq_flush_interval = Duration::from_millis(if case.fast_cq { 1 } else { 1000 });
    if case.few_handles {
        c.cq_max_open_files = 2;
    }
    c.index = IndexConfig {
        enabled: true,
        max_hash_slots: 8,
        max_index_num: 16,
    };
    c.sim_skip_commitlog_fsync = mode.broken;
    c
}

/// The body of message `id`: its id, then filler.
fn body(id: u64, len: usize) -> Vec<u8> {
    let mut b = format!("m{id:07}").into_bytes();
    b.resize(b.len() + len, b'a' + (id % 26) as u8);
    b
}

fn key(id: u64) -> String {
    format!("k{id}")
}

/// What the test knows: every message put, and where each acknowledged one must be.
#[derive(Default)]
struct Model {
    next_id: u64,
    /// id → (topic, queue, body length).
    msgs: HashMap<u64, (usize, u32, usize)>,
    /// (topic, queue, queue offset) → id and CommitLog offset of the acknowledged message
    /// there (forgotten when retention deletes its segment).
    acked: BTreeMap<(usize, u32, u64), (u64, u64)>,
    /// The last consumer-offset save that returned, and the last attempted.
    saved: u64,
    attempted: u64,
}

/// Check the store as recovered; returns how many acknowledged messages are missing.
fn check(store: &MessageStore, fs: &SimFs, model: &Model) -> Result<usize, String> {
    let mut queues: BTreeSet<(usize, u32)> = model.acked.keys().map(|(t, q, _)| (*t, *q)).collect();
    for (topic, qids) in store.topics() {
        let t = TOPICS
            .iter()
            .position(|n| *n == topic)
            .ok_or_else(|| format!("a queue of unknown topic {topic}"))?;
        queues.extend(qids.into_iter().map(|q| (t, q)));
    }
    let (log_start, log_end) = store.log_offsets();
    let mut lost = 0;
    for (t, q) in queues {
        let (min, max) = store.offsets(TOPICS[t], q);
        let mut found: BTreeMap<u64, u64> = BTreeMap::new();
        let mut pos = min;
        while pos < max {
            let get = Get {
                topic: TOPICS[t],
                queue_id: q,
                offset: pos,
                max_msgs: 64,
                max_bytes: usize::MAX,
                correct: false,
            };
            let r = store
                .get(&get, &|_| true)
                .map_err(|e| format!("{}/{q} at {pos}: {e}", TOPICS[t]))?;
            if r.count == 0 {
                return Err(format!(
                    "{}/{q} [{min}, {max}): nothing at {pos} ({:?})",
                    TOPICS[t], r.status
                ));
            }
            let mut at = 0;
            while at < r.records.len() {
                let (m, n) = MessageView::decode(&r.records[at..])
                    .map_err(|e| format!("{}/{q} at {pos}: not a record: {e}", TOPICS[t]))?;
                at += n;
                let phys = m.physical_offset as u64;
                if phys < log_start || phys + n as u64 > log_end {
                    return Err(format!(
                        "record at {phys} outside the log [{log_start}, {log_end})"
                    ));
                }
                if m.body_crc != body_crc(m.body) {
                    return Err(format!("{}/{q} at {pos}: bad CRC", TOPICS[t]));
                }
                if m.topic != TOPICS[t] || m.queue_id as u32 != q || m.queue_offset as u64 != pos {
                    return Err(format!(
                        "{}/{q} at {pos} holds {}/{} at {}",
                        TOPICS[t], m.topic, m.queue_id, m.queue_offset
                    ));
                }
                let id: u64 = std::str::from_utf8(&m.body[1..8.min(m.body.len())])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("{}/{q} at {pos}: a body never put", TOPICS[t]))?;
                let (mt, mq, len) = *model
                    .msgs
                    .get(&id)
                    .ok_or_else(|| format!("message {id} was never put"))?;
                if (mt, mq) != (t, q) || m.body != body(id, len).as_slice() {
                    return Err(format!(
                        "{}/{q} at {pos}: message {id} is not as put",
                        TOPICS[t]
                    ));
                }
                found.insert(pos, id);
                pos += 1;
            }
        }
        for ((_, _, o), (id, _)) in model.acked.range((t, q, 0)..=(t, q, u64::MAX)) {
            if found.get(o) != Some(id) {
                if std::env::var("SEXTANT_POWER_LOSS_DEBUG").is_ok() {
                    eprintln!(
                        "lost {}/{q}@{o} id {id}: queue [{min}, {max}), found {:?}, log [{log_start}, {log_end})",
                        TOPICS[t],
                        found.get(o)
                    );
                }
                lost += 1;
            }
        }
    }
    if lost == 0 {
        for ((t, _, _), (id, _)) in &model.acked {
            let r = store
                .query_message(TOPICS[*t], &key(*id), 4, 0, i64::MAX)
                .map_err(|e| format!("query of {id}: {e}"))?;
            if r.count != 1 {
                return Err(format!(
                    "the index finds acknowledged message {id} {} times",
                    r.count
                ));
            }
        }
    }
    match load_json_in::<ConsumerOffsets>(fs, Path::new(OFFSETS)) {
        Err(e) => return Err(format!("the consumer offsets are torn: {e}")),
        Ok(None) if model.saved > 0 => return Err("the consumer offsets are gone".into()),
        Ok(None) => {}
        Ok(Some(o)) => {
            let v = o.get("T", "G", 0).unwrap_or(0);
            if v < model.saved || v > model.attempted {
                return Err(format!(
                    "consumer offsets at version {v}: saved {}, attempted {}",
                    model.saved, model.attempted
                ));
            }
        }
    }
    Ok(lost)
}

/// Run one case: the violations are errors, the losses of acknowledged messages counted.
fn run(case: &Case, mode: Mode, rt: &tokio::runtime::Runtime) -> Result<Outcome, String> {
    let mut fs = SimFs::new();
    let mut model = Model::default();
    let mut out = Outcome::default();
    for (r, round) in case.rounds.iter().enumerate() {
        let (store, rec) = MessageStore::open(config(&fs, mode, case))
            .map_err(|e| format!("round {r}: open failed: {e}"))?;
        if std::env::var("SEXTANT_POWER_LOSS_DEBUG").is_ok() {
            eprintln!("round {r} open: {rec:?} log {:?}", store.log_offsets());
        }
        out.lost += check(&store, &fs, &model).map_err(|e| format!("round {r}: {e}"))?;
        fs.crash_after(round.crash_after);
        'steps: for step in &round.steps {
            if step.clean {
                // A pass cut short by the power still deletes what it got to: every segment
                // but the one written to may go (at a segment's end, the next may exist, empty).
                let (_, end) = store.log_offsets();
                let last_start = end / SEG * SEG;
                let pass = store.clean_with(CleanInput {
                    now_ms: 1,
                    hour_of_day: 12,
                    disk_used_ratio: 0.86,
                    manual: false,
                    min_needed_offset: u64::MAX,
                });
                match pass {
                    Ok(r) => {
                        if std::env::var("SEXTANT_POWER_LOSS_DEBUG").is_ok() {
                            eprintln!("clean: {r:?}");
                        }
                        model.acked.retain(|_, (_, phys)| *phys >= r.log_start)
                    }
                    Err(_) => {
                        model.acked.retain(|_, (_, phys)| *phys >= last_start);
                        break 'steps;
                    }
                }
            }
            if step.save_offsets {
                model.attempted += 1;
                let mut o = ConsumerOffsets::default();
                o.commit("T", "G", 0, model.attempted);
                // Padding, so that a torn write is not a valid JSON prefix by chance.
                for i in 0..20 {
                    o.commit("T", "Pad", i, model.attempted * 1000 + u64::from(i));
                }
                match save_json_in(&fs, Path::new(OFFSETS), &o) {
                    Ok(()) => model.saved = model.attempted,
                    Err(_) => break 'steps,
                }
            }
            let ids: Vec<u64> = step
                .msgs
                .iter()
                .map(|_| {
                    model.next_id += 1;
                    model.next_id
                })
                .collect();
            let bodies: Vec<Vec<u8>> = step
                .msgs
                .iter()
                .zip(&ids)
                .map(|((_, _, len), id)| body(*id, *len))
                .collect();
            let props: Vec<String> = ids
                .iter()
                .map(|id| encode_properties([(property::KEYS, key(*id).as_str())]))
                .collect();
            let mut puts: Vec<Put<'_>> = step
                .msgs
                .iter()
                .zip(&bodies)
                .zip(&props)
                .map(|(((t, q, _), body), props)| Put {
                    msg: MessageView {
                        queue_id: *q as i32,
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
                        body,
                        topic: TOPICS[*t],
                        properties: props,
                    },
                    tags_code: 0,
                })
                .collect();
            for (m, id) in step.msgs.iter().zip(&ids) {
                model.msgs.insert(*id, *m);
            }
            let ops_before = fs.ops();
            let put = store.put(&mut puts);
            let ops_put = fs.ops();
            let Ok(result) = put else {
                break 'steps;
            };
            let acked = match mode.flush {
                FlushDiskType::SyncFlush => {
                    rt.block_on(store.wait_flushed(result.end, Duration::from_secs(10)))
                }
                FlushDiskType::AsyncFlush => true,
            };
            if std::env::var("SEXTANT_POWER_LOSS_DEBUG").is_ok() {
                eprintln!(
                    "put {ids:?} {:?} end {} acked {acked} ops {ops_before}/{ops_put}/{} dead {} flushed {}",
                    result
                        .stored
                        .iter()
                        .map(|s| (s.physical_offset, s.queue_offset))
                        .collect::<Vec<_>>(),
                    result.end,
                    fs.ops(),
                    fs.is_dead(),
                    store.flushed()
                );
            }
            if !acked {
                break 'steps;
            }
            for ((t, q, _), (s, id)) in step.msgs.iter().zip(result.stored.iter().zip(&ids)) {
                model
                    .acked
                    .insert((*t, *q, s.queue_offset), (*id, s.physical_offset));
                out.acked += 1;
            }
            if fs.is_dead() {
                break 'steps;
            }
        }
        let loss = match round.loss.0 {
            0 => Loss::Unsynced,
            1 => Loss::Prefix { seed: round.loss.1 },
            _ => Loss::Nothing,
        };
        out.mid_crashes += usize::from(fs.is_dead());
        let next = fs.power_loss(loss);
        drop(store);
        fs = next;
    }
    let (store, rec) = MessageStore::open(config(&fs, mode, case))
        .map_err(|e| format!("last open failed: {e}"))?;
    if std::env::var("SEXTANT_POWER_LOSS_DEBUG").is_ok() {
        eprintln!("last open: {rec:?}\nacked {:?}", model.acked);
    }
    out.lost += check(&store, &fs, &model).map_err(|e| format!("last open: {e}"))?;
    Ok(out)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

fn cases() -> u32 {
    std::env::var("SEXTANT_POWER_LOSS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

const SYNC: Mode = Mode {
    flush: FlushDiskType::SyncFlush,
    broken: false,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// SYNC_FLUSH: no acknowledged message is lost, nothing recovered is corrupt, no config
    /// file is torn, over every crash point.
    #[test]
    fn sync_flush_loses_no_acknowledged_message(case in case()) {
        let rt = runtime();
        let out = run(&case, SYNC, &rt).map_err(TestCaseError::fail)?;
        prop_assert_eq!(out.lost, 0, "acknowledged messages lost");
    }
}

/// Run `n` cases from a fixed seed in `mode`: every violation fails the test; returns the
/// cases that lost acknowledged messages and the messages acknowledged in all.
fn losses(mode: Mode, n: usize) -> (usize, usize) {
    let mut mid = 0;
    let rt = runtime();
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let (mut lossy, mut acked) = (0, 0);
    for _ in 0..n {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        match run(&case, mode, &rt) {
            Ok(out) => {
                lossy += usize::from(out.lost > 0);
                acked += out.acked;
                mid += out.mid_crashes;
            }
            Err(e) => panic!("{mode:?}: {e}\n{case:?}"),
        }
    }
    eprintln!("{mode:?}: {n} cases, {mid} crashes in the middle of a round");
    (lossy, acked)
}

#[test]
fn async_flush_loses_acknowledged_messages_in_some_runs() {
    let (lossy, acked) = losses(
        Mode {
            flush: FlushDiskType::AsyncFlush,
            broken: false,
        },
        150,
    );
    eprintln!("ASYNC_FLUSH: {acked} acknowledged messages in 150 cases, {lossy} cases lost some");
    assert!(acked > 0);
    assert!(lossy > 0, "ASYNC_FLUSH never lost an acknowledged message");
}

#[test]
fn a_sync_flush_without_the_commitlog_fsync_is_caught() {
    let (lossy, acked) = losses(
        Mode {
            flush: FlushDiskType::SyncFlush,
            broken: true,
        },
        150,
    );
    eprintln!(
        "broken SYNC_FLUSH: {acked} acknowledged messages in 150 cases, {lossy} cases lost some"
    );
    assert!(acked > 0);
    assert!(lossy > 0, "the broken store was not caught");
}

#[test]
fn the_same_cases_lose_nothing_with_the_fsync() {
    let (lossy, acked) = losses(SYNC, 150);
    eprintln!("SYNC_FLUSH: {acked} acknowledged messages in 150 cases, {lossy} cases lost any");
    assert!(acked > 0);
    assert_eq!(lossy, 0);
}

/// A torn temporary file never shows: the save that returned stays, over every crash point of
/// the save itself.
#[test]
fn a_config_save_is_old_or_new_at_every_crash_point() {
    for n in 0..8 {
        for loss in [Loss::Unsynced, Loss::Prefix { seed: n }, Loss::Nothing] {
            let fs = SimFs::new();
            let path = Path::new(OFFSETS);
            let mut o = ConsumerOffsets::default();
            o.commit("T", "G", 0, 1);
            save_json_in(&fs, path, &o).expect("first save");
            o.commit("T", "G", 0, 2);
            fs.crash_after(n);
            let second = save_json_in(&fs, path, &o).is_ok();
            let back = fs.power_loss(loss);
            let v = load_json_in::<ConsumerOffsets>(&back, path)
                .expect("never torn")
                .expect("the first save stays")
                .get("T", "G", 0);
            if second {
                assert_eq!(v, Some(2), "crash after {n} ops, {loss:?}");
            } else {
                assert!(matches!(v, Some(1 | 2)));
            }
        }
    }
}
