//! The broker under power loss, not just `kill -9`: its store and its config files on
//! `SimFs`, which keeps written-but-unsynced data in memory and can lose it. During sends,
//! offset commits and delayed deliveries the power goes at a seeded moment; the disk as it comes
//! back is opened and checked: no committed consumer offset is past the end of its queue as
//! recovered, and every delayed message a level's cursor has passed has its redelivered copy in
//! the real topic. The broker writes offsets and cursors only after flushing the store; a
//! deliberately broken broker that skips the flush (`Running::break_persist_order`) fails the
//! same check, which the test asserts too.
//!
//! `SEXTANT_POWER_LOSS_ROUNDS` sets the rounds per variant (default 4).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use sextant_broker::{BrokerConfig, start_on};
use sextant_model::broker::SCHEDULE_TOPIC;
use sextant_remoting::RemotingCommand;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::{GetMaxOffsetRequestHeader, UpdateConsumerOffsetRequestHeader};
use sextant_remoting::message::{MessageView, encode_properties, property};
use sextant_store::config::{ConsumerOffsets, load_json_in};
use sextant_store::sim::{Loss, SimFs};
use sextant_store::{Get, MessageStore};

const T: Duration = Duration::from_secs(5);
const TOPIC: &str = "P";

fn config() -> BrokerConfig {
    BrokerConfig {
        listen_port: 0,
        namesrv_addr: String::new(),
        store_path_root_dir: "/b".into(),
        mapped_file_size_commit_log: 1 << 20,
        // The log reaches the disk once a second; offsets and cursors are written every 20 ms.
        flush_interval_commit_log: 1_000,
        flush_interval_consume_queue: 200,
        flush_consumer_offset_interval: 20,
        message_delay_level: "1s 2s".into(),
        ..Default::default()
    }
}

fn rounds() -> u64 {
    std::env::var("SEXTANT_POWER_LOSS_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(4)
}

/// Every body in `topic` queue `queue`, and the queue's range.
fn bodies_of(store: &MessageStore, topic: &str, queue: u32) -> Vec<String> {
    let (min, max) = store.offsets(topic, queue);
    let mut out = Vec::new();
    let mut at = min;
    while at < max {
        let got = store
            .get(
                &Get {
                    topic,
                    queue_id: queue,
                    offset: at,
                    max_msgs: 256,
                    max_bytes: 8 << 20,
                    correct: false,
                },
                &|_| true,
            )
            .expect("get");
        if got.count == 0 {
            break;
        }
        let mut i = 0;
        while i < got.records.len() {
            let (m, n) = MessageView::decode(&got.records[i..]).expect("record");
            out.push(String::from_utf8_lossy(m.body).into_owned());
            i += n;
        }
        at = got.next_begin;
    }
    out
}

/// What the disk says after the power came back, or the broken promises (the first offset
/// past its queue's end, the first delivered-and-passed message without its copy).
fn check(disk: &SimFs) -> Result<String, Vec<String>> {
    let mut broken = Vec::new();
    let what = check_into(disk, &mut broken).map_err(|e| vec![e])?;
    if broken.is_empty() {
        Ok(what)
    } else {
        Err(broken)
    }
}

fn check_into(disk: &SimFs, broken: &mut Vec<String>) -> Result<String, String> {
    let cfg = config();
    let mut store_config = cfg.store_config(&cfg.settings().expect("valid"));
    store_config.fs = disk.shared();
    let (store, _) = MessageStore::open(store_config).map_err(|e| format!("recovery: {e}"))?;
    let root = Path::new("/b/config");
    let offsets: ConsumerOffsets = load_json_in(&*disk.shared(), &root.join("consumerOffset.json"))
        .map_err(|e| format!("offsets: {e}"))?
        .unwrap_or_default();
    let mut committed = 0;
    for (key, queues) in &offsets.offset_table {
        let topic = key.split('@').next().unwrap_or_default();
        for (q, offset) in queues {
            let (_, max) = store.offsets(topic, *q);
            if *offset > max && !broken.iter().any(|b| b.starts_with("offset")) {
                broken.push(format!(
                    "offset: {key} queue {q}: committed {offset}, the queue ends at {max}"
                ));
            }
            committed += offset;
        }
    }
    let delivered: BTreeSet<String> = (0..4).flat_map(|q| bodies_of(&store, TOPIC, q)).collect();
    let cursors: serde_json::Value = load_json_in(&*disk.shared(), &root.join("delayOffset.json"))
        .map_err(|e| format!("cursors: {e}"))?
        .unwrap_or_default();
    let cursor = cursors["offsetTable"]["1"].as_u64().unwrap_or(0);
    let (min, _) = store.offsets(SCHEDULE_TOPIC, 0);
    let scheduled = bodies_of(&store, SCHEDULE_TOPIC, 0);
    for (i, body) in scheduled.iter().enumerate() {
        if min + (i as u64) < cursor && !delivered.contains(body) {
            broken.push(format!(
                "cursor: delayed {body} is below level 1's cursor {cursor} but was never delivered"
            ));
            break;
        }
    }
    Ok(format!(
        "{} messages, offsets summing to {committed}, delay cursor {cursor} of {}",
        delivered.len(),
        scheduled.len()
    ))
}

/// One run: sends (a tenth of them delayed), commits of every queue's end, power lost after
/// `run_ms`.
async fn power_loss_after(run_ms: u64, seed: u64, broken: bool) -> Result<String, Vec<String>> {
    let sim = SimFs::new();
    let broker = start_on(config(), sim.shared()).await.expect("a broker");
    if broken {
        broker.break_persist_order();
    }
    let conn = connect(broker.local_addr).await;
    create_topic(&conn, TOPIC, 4, 4).await;
    create_group(&conn, "g").await;
    let delay = encode_properties([(property::DELAY, "1")]);
    let started = std::time::Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_millis(run_ms) {
        let q = (i % 4) as i32;
        let (body, props) = if i.is_multiple_of(10) {
            (format!("d{seed}-{i}"), delay.as_str())
        } else {
            (format!("m{seed}-{i}"), "")
        };
        let r = conn
            .invoke(send_v2(TOPIC, q, body.as_bytes(), props), T)
            .await
            .expect("send");
        assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
        if i % 8 == 7 {
            for q in 0..4 {
                let max = conn
                    .invoke(
                        RemotingCommand::request(request::GET_MAX_OFFSET, 0).with_ext(
                            GetMaxOffsetRequestHeader {
                                topic: TOPIC.into(),
                                queue_id: q,
                                committed: None,
                            }
                            .to_ext(),
                        ),
                        T,
                    )
                    .await
                    .expect("max");
                let max: i64 = max.ext("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
                let h = UpdateConsumerOffsetRequestHeader {
                    consumer_group: "g".into(),
                    topic: TOPIC.into(),
                    queue_id: q,
                    commit_offset: max,
                };
                let r = conn
                    .invoke(
                        RemotingCommand::request(request::UPDATE_CONSUMER_OFFSET, 0)
                            .with_ext(h.to_ext()),
                        T,
                    )
                    .await
                    .expect("commit");
                assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
            }
        }
        i += 1;
        if i.is_multiple_of(50) {
            tokio::time::sleep(Duration::from_millis(seed % 7)).await;
        }
    }
    let disk = sim.power_loss(Loss::Unsynced);
    // The broker's disk is gone: its shutdown fails to write anything, and says so.
    broker.shutdown().await;
    check(&disk)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_delay_cursors_never_pass_what_survived_a_power_loss() {
    for seed in 0..rounds() {
        let run_ms = 1_200 + seed * 397 % 900;
        match power_loss_after(run_ms, seed, false).await {
            Ok(what) => eprintln!("round {seed} ({run_ms} ms): {what}"),
            Err(why) => panic!("round {seed} ({run_ms} ms): {why:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_writing_offsets_before_its_flush_is_caught() {
    let (mut offsets, mut cursors) = (0, 0);
    for seed in 0..rounds() {
        let run_ms = 1_200 + seed * 397 % 900;
        if let Err(why) = power_loss_after(run_ms, seed, true).await {
            eprintln!("broken, round {seed}: {why:?}");
            offsets += why.iter().filter(|w| w.starts_with("offset")).count();
            cursors += why.iter().filter(|w| w.starts_with("cursor")).count();
        }
    }
    assert!(
        offsets > 0,
        "no round caught offsets written before the flush"
    );
    assert!(
        cursors > 0,
        "no round caught delay cursors written before the flush"
    );
}
