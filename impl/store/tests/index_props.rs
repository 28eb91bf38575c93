//! The message index against a model, through the whole `MessageStore`: any sequence of puts
//! (random topics, `KEYS` with repeats and blanks, `UNIQ_KEY`s, rolled-back transactions, batches)
//! into tiny index files (1–7 slots, 2–12 entries: collisions and rolls everywhere), then a query
//! for every key answers exactly the records stored under that topic with that key — live, after
//! a crash copy with a torn CommitLog tail (slots past the last header repaired, entries undone,
//! the rest re-indexed), after more puts on the recovered store, after a clean reopen and after a
//! rebuild from the whole log. Time ranges and `maxNum` are checked too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use sextant_remoting::message::{MessageView, encode_properties, property, sys_flag};
use sextant_store::{IndexConfig, MessageStore, Put, StoreConfig};

const TOPICS: [&str; 2] = ["A", "B"];
const KEYS: [&str; 5] = ["k0", "k1", "k2", "k3", "u1"];
const ROLLBACK: i32 = sys_flag::TRANSACTION_PREPARED | sys_flag::TRANSACTION_COMMIT;

#[derive(Clone, Debug)]
struct Msg {
    topic: usize,
    /// `KEYS`, as sent (repeats, blanks).
    keys: Option<String>,
    uniq: Option<String>,
    rollback: bool,
    /// Milliseconds after the previous message.
    gap: i64,
}

fn msg() -> impl Strategy<Value = Msg> {
    let keys = prop::collection::vec((0..KEYS.len(), 0..3usize), 0..4).prop_map(|ks| {
        ks.iter()
            .map(|(k, spaces)| format!("{}{}", KEYS[*k], " ".repeat(*spaces)))
            .collect::<String>()
    });
    (
        0..TOPICS.len(),
        prop::option::of(keys),
        prop::option::of(0..6usize),
        prop::bool::weighted(0.1),
        0..2500i64,
    )
        .prop_map(|(topic, keys, uniq, rollback, gap)| Msg {
            topic,
            keys,
            // "u1" is also one of the keys; the others are unique.
            uniq: uniq.map(|u| if u == 0 { "u1".into() } else { format!("U{u}") }),
            rollback,
            gap,
        })
}

/// A stored message as the model sees it.
#[derive(Clone, Debug)]
struct Stored {
    topic: &'static str,
    offset: u64,
    end: u64,
    time: i64,
    /// The keys the index takes: the unique key, then the tokens of `KEYS`, each once, at most
    /// as many as a file holds; none for a rollback.
    keys: Vec<String>,
    /// What the broker-side check accepts: every key of the record, even past what was indexed.
    all_keys: BTreeSet<String>,
}

fn host() -> SocketAddr {
    "127.0.0.1:10911".parse().expect("addr")
}

fn config(dir: &Path, slots: u32, max: u32) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.segment_size = 1 << 20;
    c.cq_entries_per_file = 16;
    // Flushes only when asked (and on open and close): a copy taken meanwhile is what a
    // kill -9 leaves.
    c.cq_flush_interval = Duration::from_secs(3600);
    c.index = IndexConfig {
        enabled: true,
        max_hash_slots: slots,
        max_index_num: max,
    };
    c
}

/// Put `batch` (one put), recording what the model needs.
fn put(store: &MessageStore, batch: &[Msg], now: &mut i64, max: u32, out: &mut Vec<Stored>) {
    let props: Vec<String> = batch
        .iter()
        .map(|m| {
            let mut p = Vec::new();
            if let Some(k) = &m.keys {
                p.push((property::KEYS, k.as_str()));
            }
            if let Some(u) = &m.uniq {
                p.push((property::UNIQ_KEY, u.as_str()));
            }
            encode_properties(p)
        })
        .collect();
    let mut times = Vec::new();
    let mut puts: Vec<Put<'_>> = batch
        .iter()
        .zip(&props)
        .map(|(m, props)| {
            *now += m.gap;
            times.push(*now);
            Put {
                msg: MessageView {
                    queue_id: 0,
                    flag: 0,
                    queue_offset: 0,
                    physical_offset: 0,
                    sys_flag: if m.rollback { ROLLBACK } else { 0 },
                    born_timestamp: *now,
                    born_host: host(),
                    store_timestamp: *now,
                    store_host: host(),
                    reconsume_times: 0,
                    prepared_transaction_offset: 0,
                    body_crc: 0,
                    body: b"body",
                    topic: TOPICS[m.topic],
                    properties: props,
                },
                tags_code: 0,
            }
        })
        .collect();
    let result = store.put(&mut puts).expect("put");
    for ((m, s), time) in batch.iter().zip(&result.stored).zip(times) {
        let mut tokens: Vec<String> = Vec::new();
        for t in m
            .uniq
            .iter()
            .map(String::as_str)
            .chain(m.keys.iter().flat_map(|k| k.split(' ')))
        {
            if !t.is_empty() && !tokens.iter().any(|k| k == t) {
                tokens.push(t.to_owned());
            }
        }
        let all_keys = tokens.iter().cloned().collect();
        tokens.truncate(max as usize - 1);
        if m.rollback {
            tokens.clear();
        }
        out.push(Stored {
            topic: TOPICS[m.topic],
            offset: s.physical_offset,
            end: s.physical_offset + u64::from(s.size),
            time,
            keys: tokens,
            all_keys,
        });
    }
}

/// The offsets (and store times) a query for `key` of `topic` answers, all of them.
fn query(store: &MessageStore, topic: &str, key: &str, begin: i64, end: i64) -> Vec<(u64, i64)> {
    let r = store
        .query_message(topic, key, 10_000, begin, end)
        .expect("query");
    let mut out = Vec::new();
    let mut at = 0;
    while at < r.records.len() {
        let (m, n) = MessageView::decode(&r.records[at..]).expect("a record");
        assert_eq!(m.topic, topic);
        out.push((m.physical_offset as u64, m.store_timestamp));
        at += n;
    }
    assert_eq!(out.len(), r.count);
    out
}

/// What the model says a query over all time answers: the records stored under `topic`
/// indexed with `key` whose whole record is below `log_end`, by offset.
fn expected(model: &[Stored], topic: &str, key: &str, log_end: u64) -> Vec<(u64, i64)> {
    model
        .iter()
        .filter(|s| s.topic == topic && s.end <= log_end && s.keys.iter().any(|k| k == key))
        .map(|s| (s.offset, s.time))
        .collect()
}

fn check_all(store: &MessageStore, model: &[Stored], log_end: u64, when: &str) {
    for topic in TOPICS {
        for key in KEYS.iter().copied().chain(["U2", "U5", "nope"]) {
            let got = query(store, topic, key, 0, i64::MAX);
            let want = expected(model, topic, key, log_end);
            assert_eq!(got, want, "{when}: {topic}#{key}");
            // Everything answered has the key, for the broker's check as for the client's.
            for (offset, _) in &got {
                let s = model.iter().find(|s| s.offset == *offset).expect("stored");
                assert!(s.all_keys.contains(key));
            }
        }
    }
}

/// The header of every index file in `dir`, by name.
fn index_headers(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| {
            let e = e.expect("entry");
            let bytes = fs::read(e.path()).expect("read");
            (
                e.file_name().into_string().expect("name"),
                bytes[..40].to_vec(),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "lock" {
            fs::copy(e.path(), &target).expect("copy");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn queries_answer_exactly_the_records_with_the_key(
        slots in 1u32..=7,
        max in 2u32..=12,
        batches in prop::collection::vec(prop::collection::vec(msg(), 1..=3), 1..30),
        more in prop::collection::vec(msg(), 0..8),
        cut in 0.0f64..=1.2,
        range in (0i64..80_000, 0i64..80_000),
        max_num in 1usize..6,
        flush_after in 0usize..30,
        flush_gap in 1usize..3,
        torn_flush: bool,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = dir.path().join("live");
        let (store, _) = MessageStore::open(config(&live, slots, max)).expect("open");
        let start = 1_700_000_000_000i64;
        let mut now = start;
        let mut model = Vec::new();
        let mut before_flush = BTreeMap::new();
        // With `torn_flush` the second flush is the last thing done, and the copy is taken as
        // if it had stopped after its slot writes.
        let n = batches.len();
        let first_flush = if torn_flush {
            n.saturating_sub(1 + flush_gap)
        } else {
            flush_after % n
        };
        for (i, b) in batches.iter().enumerate() {
            put(&store, b, &mut now, max, &mut model);
            // Two flushes part way: the copy below then holds a header older than its entries,
            // and (`torn_flush`) the headers the second flush found.
            if i == first_flush {
                store.flush().expect("flush");
            }
            if i == first_flush + flush_gap {
                before_flush = index_headers(&live.join("index"));
                store.flush().expect("flush");
            }
        }
        let end = store.log_offsets().1;
        check_all(&store, &model, end, "live");

        // A time range: nothing stored outside it (an entry keeps whole seconds, so up to
        // 999 ms past its end), everything stored at least a second inside it.
        let (b, e) = (start + range.0.min(range.1), start + range.0.max(range.1));
        for topic in TOPICS {
            for key in KEYS {
                let got = query(&store, topic, key, b, e);
                let all = expected(&model, topic, key, end);
                for g in &got {
                    prop_assert!(all.contains(g));
                    prop_assert!(g.1 >= b && g.1 <= e + 999, "{g:?} for [{b}, {e}]");
                }
                for s in all.iter().filter(|s| s.1 >= b + 999 && s.1 <= e) {
                    prop_assert!(got.contains(s), "{s:?} missing for [{b}, {e}]");
                }
            }
        }

        // maxNum: the newest that many, by offset.
        for topic in TOPICS {
            for key in KEYS {
                let r = store.query_message(topic, key, max_num, 0, i64::MAX).expect("query");
                let all = expected(&model, topic, key, end);
                prop_assert_eq!(r.count, all.len().min(max_num));
                let mut at = 0;
                for want in &all[all.len() - r.count..] {
                    let (m, n) = MessageView::decode(&r.records[at..]).expect("record");
                    prop_assert_eq!(m.physical_offset as u64, want.0);
                    at += n;
                }
            }
        }

        // A kill -9 copy (entries written, slots and headers as the last flush left them),
        // with the CommitLog's tail torn at `cut` of its length.
        let crashed = dir.path().join("crashed");
        copy_dir(&live, &crashed);
        if torn_flush
            && let Some((name, header)) = before_flush.last_key_value()
            && index_headers(&crashed.join("index")).last_key_value().map(|l| l.0) == Some(name)
        {
            // The crash came in that flush after its slot writes, before its header: the
            // newest file has the slots of the flush and the header from before it.
            let f = fs::OpenOptions::new()
                .write(true)
                .open(crashed.join("index").join(name))
                .expect("index file");
            std::os::unix::fs::FileExt::write_all_at(&f, header, 0).expect("header");
        }
        let kept = ((end as f64) * cut).min(end as f64) as u64;
        let segment = crashed.join("commitlog").join(format!("{:020}", 0));
        if end > 0 {
            fs::OpenOptions::new()
                .write(true)
                .open(&segment)
                .expect("segment")
                .set_len(kept)
                .expect("truncate");
        }
        let (recovered, rec) = MessageStore::open(config(&crashed, slots, max)).expect("reopen");
        let log_end = recovered.log_offsets().1;
        prop_assert!(log_end <= kept);
        prop_assert_eq!(model.iter().filter(|s| s.end <= log_end).count() as u64,
            rec.commitlog.records);
        check_all(&recovered, &model, log_end, "crashed");

        // More puts on the recovered store land at the offsets the lost ones had.
        let mut model2: Vec<Stored> = model.iter().filter(|s| s.end <= log_end).cloned().collect();
        for m in &more {
            put(&recovered, std::slice::from_ref(m), &mut now, max, &mut model2);
        }
        let end2 = recovered.log_offsets().1;
        check_all(&recovered, &model2, end2, "recovered and written");
        recovered.close();
        drop(recovered);
        let (reopened, rec) = MessageStore::open(config(&crashed, slots, max)).expect("reopen");
        prop_assert_eq!(rec.indexed, 0);
        prop_assert_eq!(rec.index.entries_undone, 0);
        check_all(&reopened, &model2, end2, "reopened");

        // The index deleted: rebuilt from the whole log.
        reopened.close();
        drop(reopened);
        fs::remove_dir_all(crashed.join("index")).expect("rm index");
        let (rebuilt, rec) = MessageStore::open(config(&crashed, slots, max)).expect("rebuild");
        let with_keys = model2.iter().filter(|s| !s.keys.is_empty()).count() as u64;
        prop_assert_eq!(rec.indexed, with_keys);
        check_all(&rebuilt, &model2, end2, "rebuilt");
    }
}
