//! Property tests of what the broker admits and the bounds of its client-keyed tables
//! (`broker::admit`, `broker::pull`, `broker::tables`, `LockTable::prune`).
//!
//! - `admit_send` refuses every not-allowed topic, every transaction bit and every body over the
//!   limit, and takes a valid plain send.
//! - `send_topic` never creates past the cap, never creates a group topic of an unknown group,
//!   and returns the existing config when there is one.
//! - `plan_pull` reads only queues the topic has, clamps count, bytes and hold, commits only on
//!   a master and never a negative offset.
//! - The subscription group table never holds more than its cap, whatever is asked.
//! - After `prune`, every lock left is live; `lockable` grants only existing queues of this
//!   broker, and nothing for a group without a live member.
//! - `admit_commit` keeps only queue ids below the read queue count; `redelivery_target` never
//!   targets a topic closed to sends or a queue the topic lacks; `plan_send_back` counts one
//!   more reconsume and dead-letters exactly as `send_back_target` says.

use proptest::prelude::*;
use sextant_model::broker::admit::{
    NOT_ALLOWED_SEND_TOPICS, SendBackRequest, SendRequest, SendTopic, SentBack, TopicLookup,
    admit_send, plan_send_back, redelivery_target, send_topic,
};
use sextant_model::broker::pull::{
    MAX_SUSPEND_MS, PULL_MAX_BYTES, PULL_MAX_MSGS, PullBroker, PullRequest, plan_pull,
};
use sextant_model::broker::tables::{SubscriptionGroups, admit_commit, lockable};
use sextant_model::broker::{
    LockTable, Refusal, SendBackTarget, auto_create_template, send_back_target,
};
use sextant_model::namesrv::TopicConfig;
use sextant_model::route::{MessageQueue, Perm};

fn topic_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z][A-Za-z0-9_-]{0,12}",
        prop::sample::select(NOT_ALLOWED_SEND_TOPICS.to_vec()).prop_map(str::to_owned),
        "%RETRY%[a-z]{1,4}",
        "%DLQ%[a-z]{1,4}",
        "[ a-z!]{0,4}",
    ]
}

proptest! {
    #[test]
    fn admit_send_refuses_what_it_must(
        topic in topic_name(),
        sys_flag in 0i32..0x20,
        prepared: bool,
        batch: bool,
        body_len in 0usize..300,
        count in 1usize..5,
    ) {
        let req = SendRequest {
            topic: &topic,
            sys_flag,
            transaction_prepared: prepared,
            batch,
            body_len,
            count,
            max_message_size: 200,
        };
        let r = admit_send(&req);
        if NOT_ALLOWED_SEND_TOPICS.contains(&topic.as_str()) {
            prop_assert!(matches!(r, Err(Refusal::NoPermission(_))));
        }
        if sys_flag & 0xC != 0 || prepared || body_len > 200 {
            prop_assert!(r.is_err());
        }
        if r.is_ok() {
            prop_assert!(sextant_model::broker::invalid_topic(&topic).is_none());
            prop_assert!(!(batch && topic.starts_with("%RETRY%")));
        }
        let plain = topic.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && !NOT_ALLOWED_SEND_TOPICS.contains(&topic.as_str())
            && sextant_model::broker::invalid_topic(&topic).is_none();
        if plain && sys_flag & 0xC == 0 && !prepared && body_len <= 200 {
            prop_assert!(r.is_ok(), "{r:?}");
        }
    }

    #[test]
    fn send_topic_respects_the_cap_and_known_groups(
        topic in topic_name(),
        exists: bool,
        group_known: bool,
        count in 0usize..12,
        queues in -3i32..20,
    ) {
        let template = auto_create_template(true);
        let existing = TopicConfig::new(&topic, 3);
        let lookup = TopicLookup {
            existing: exists.then_some(&existing),
            template: Some(&template),
            group_known,
            topic_count: count,
            max_topics: 10,
        };
        match send_topic(&topic, &lookup, queues) {
            Ok(SendTopic::Existing(c)) => prop_assert!(exists && c == existing),
            Ok(SendTopic::Create(c)) => {
                prop_assert!(!exists);
                prop_assert!(count < 10);
                prop_assert!(c.write_queue_nums >= 1 && c.write_queue_nums <= template.write_queue_nums);
                if topic.starts_with("%RETRY%") || topic.starts_with("%DLQ%") {
                    prop_assert!(group_known);
                }
            }
            Err(_) => prop_assert!(!exists),
        }
    }

    #[test]
    fn a_pull_plan_stays_inside_the_topic_and_the_limits(
        read_queues in 1u32..16,
        queue_id in -4i32..20,
        queue_offset in -10i64..1000,
        sys_flag in 0i32..8,
        commit_offset in -10i64..1000,
        max_msg_nums in -5i32..5000,
        max_msg_bytes in proptest::option::of(-5i32..i32::MAX),
        suspend in -5i64..1_000_000,
        master: bool,
        readable: bool,
    ) {
        let mut t = TopicConfig::new("T", read_queues);
        if !readable {
            t.perm = Perm(Perm::WRITE);
        }
        let req = PullRequest {
            topic: "T",
            queue_id,
            queue_offset,
            sys_flag,
            commit_offset,
            max_msg_nums,
            max_msg_bytes,
            suspend_timeout_ms: suspend,
        };
        let broker = PullBroker {
            permission: Perm::READ_WRITE,
            master,
            offset_check_in_slave: false,
            long_polling: true,
            short_polling_ms: 1000,
        };
        match plan_pull(&req, Some(&t), &broker, "c") {
            Ok(p) => {
                prop_assert!(readable);
                prop_assert!(p.queue_id < read_queues && i64::from(p.queue_id) == i64::from(queue_id));
                prop_assert!((1..=PULL_MAX_MSGS).contains(&p.max_msgs));
                prop_assert!(p.max_bytes >= 1 && p.max_bytes <= PULL_MAX_BYTES);
                prop_assert!(p.hold_ms <= MAX_SUSPEND_MS);
                if let Some(c) = p.commit {
                    prop_assert!(master && sys_flag & 1 != 0 && c as i64 == commit_offset);
                }
                prop_assert_eq!(p.correct, master);
            }
            Err(_) => prop_assert!(!readable || queue_id < 0 || queue_id as u32 >= read_queues),
        }
        prop_assert!(plan_pull(&req, None, &broker, "c").is_err());
    }

    #[test]
    fn the_group_table_never_passes_its_cap(
        asks in proptest::collection::vec("[a-z]{1,3}", 0..200),
        cap in 0usize..30,
    ) {
        let mut t = SubscriptionGroups::new(cap, true);
        for g in &asks {
            let before = t.contains(g);
            let found = t.find_or_create(g).is_ok();
            prop_assert!(t.len() <= cap);
            if before {
                prop_assert!(found, "a known group is always found");
            }
        }
    }

    #[test]
    fn pruned_locks_are_live_and_lockable_queues_exist(
        ops in proptest::collection::vec((0u8..3, 0u32..6, 0u8..3, 0u64..50), 0..80),
        expire in 1u64..30,
    ) {
        let mut table = LockTable::new(expire);
        let mut now = 0;
        for (group, q, client, dt) in ops {
            now += dt;
            let g = format!("g{group}");
            let c = format!("c{client}");
            table.try_lock_batch(&g, &[MessageQueue::new("T", "b", q)], &c, now);
            table.prune(now);
            // Every lock left after pruning has a live holder.
            let live: usize = (0..3u8)
                .flat_map(|gg| (0..6).map(move |qq| (gg, qq)))
                .filter(|(gg, qq)| {
                    table
                        .holder(&format!("g{gg}"), &MessageQueue::new("T", "b", *qq), now)
                        .is_some()
                })
                .count();
            prop_assert_eq!(live, table.len());
        }
        let t = TopicConfig::new("T", 3);
        let asked: Vec<MessageQueue> = (0..6)
            .flat_map(|q| [MessageQueue::new("T", "b", q), MessageQueue::new("X", "b", q), MessageQueue::new("T", "o", q)])
            .collect();
        let got = lockable(&asked, "b", true, |n| (n == "T").then_some(&t));
        prop_assert!(got.iter().all(|m| &*m.topic == "T" && &*m.broker_name == "b" && m.queue_id < 3));
        prop_assert_eq!(got.len(), 3);
        prop_assert!(lockable(&asked, "b", false, |n| (n == "T").then_some(&t)).is_empty());
    }

    #[test]
    fn commits_redeliveries_and_send_backs_are_bounded(
        queues in 1u32..10,
        queue_id in -3i32..15,
        offset in -3i64..100,
        known: bool,
        real in topic_name(),
        real_qid in "[0-9]{1,2}|x",
        reconsumed in 0i32..20,
        max in proptest::option::of(0i32..20),
        delay in -2i32..20,
    ) {
        let t = TopicConfig::new("T", queues);
        if let Ok((q, o)) = admit_commit("g", known, "T", Some(&t), queue_id, offset) {
            prop_assert!(known && q < queues && o as i64 == offset);
        }
        let rt = TopicConfig::new(&real, queues);
        if let Ok((name, q)) = redelivery_target(Some(&real), Some(&real_qid), Some(&rt)) {
            prop_assert!(!NOT_ALLOWED_SEND_TOPICS.contains(&name.as_str()));
            prop_assert!(q < queues);
        }
        let req = SendBackRequest { group: "g", delay_level: delay, max_reconsume_times: max, origin_msg_id: None };
        let msg = SentBack { topic: "T", reconsume_times: reconsumed, retry_topic: None, origin_msg_id: None, uniq_key: None, offset_msg_id: "O" };
        match plan_send_back(&req, &msg, known) {
            Ok(p) => {
                prop_assert!(known);
                prop_assert_eq!(p.reconsume_times, reconsumed + 1);
                let target = send_back_target(reconsumed, max.unwrap_or(16), delay);
                prop_assert_eq!(p.dead_letter, target == SendBackTarget::DeadLetter);
                prop_assert_eq!(p.topic.starts_with("%DLQ%"), p.dead_letter);
                prop_assert_eq!(p.origin_msg_id.as_deref(), Some("O"));
            }
            Err(r) => prop_assert!(!known && matches!(r, Refusal::SubscriptionGroupNotExist(_))),
        }
    }
}
