//! Property tests of producer queue selection.
//!
//! - Publish info lists exactly the write queues of writeable brokers that have a master.
//! - Round-robin selection visits every write queue equally.
//! - Skip-failed selection never returns the failed broker when another writable broker exists.
//! - With latency fault tolerance, an unavailable broker is never picked while an available one
//!   exists, and a retry avoids the broker that just failed while another available one exists.
//! - The send loop never retries on the broker that just failed while another writable broker
//!   is in the route (`no_send_to_expired_broker`, second half).

use proptest::prelude::*;
use sextant_model::producer::{
    AttemptOutcome, FaultStrategy, SendAttempts, SendIndex, SendPolicy, SendStep, TopicPublishInfo,
};
use sextant_model::route::{BrokerData, Perm, QueueData, TopicRouteData};

/// A route of 0..5 brokers with 0..6 queues each, random permissions, some without a master.
fn route() -> impl Strategy<Value = TopicRouteData> {
    prop::collection::vec(
        (
            0..6u32,
            prop::sample::select(vec![6u32, 7, 4, 2, 0, 14]),
            any::<bool>(),
        ),
        0..5,
    )
    .prop_map(|brokers| {
        let mut r = TopicRouteData::default();
        for (i, (nums, perm, master)) in brokers.into_iter().enumerate() {
            let name = format!("broker-{}", (b'a' + i as u8) as char);
            r.queue_datas.push(QueueData {
                broker_name: name.clone(),
                read_queue_nums: nums,
                write_queue_nums: nums,
                perm: Perm(perm),
                topic_sys_flag: 0,
            });
            let mut b = BrokerData {
                broker_name: name.clone(),
                cluster: "C".into(),
                ..Default::default()
            };
            b.broker_addrs
                .insert(if master { 0 } else { 1 }, format!("{name}:10911"));
            r.broker_datas.push(b);
        }
        r
    })
}

/// Fault history: (broker index, latency, isolation, time).
fn faults() -> impl Strategy<Value = Vec<(usize, u64, bool, u64)>> {
    prop::collection::vec(
        (0..5usize, 0..20_000u64, any::<bool>(), 0..60_000u64),
        0..12,
    )
}

fn faulty(
    enabled: bool,
    info: &TopicPublishInfo,
    history: &[(usize, u64, bool, u64)],
    v4: bool,
) -> FaultStrategy {
    let mut s = FaultStrategy::new(enabled);
    if v4 {
        s.tables = sextant_model::producer::LatencyTables::rocketmq_4();
    }
    let brokers: Vec<String> = info.brokers().map(str::to_owned).collect();
    let mut history = history.to_vec();
    history.sort_by_key(|h| h.3);
    for (b, latency, isolation, at) in history {
        let name = brokers
            .get(b)
            .cloned()
            .unwrap_or_else(|| format!("other-{b}"));
        s.update(&name, latency, isolation, true, at);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn publish_info_has_exactly_writable_master_queues(r in route()) {
        let info = TopicPublishInfo::from_route("T", &r);
        let expected: u32 = r.queue_datas.iter()
            .filter(|qd| qd.perm.is_writeable() && r.broker(&qd.broker_name).unwrap().master_addr().is_some())
            .map(|qd| qd.write_queue_nums)
            .sum();
        prop_assert_eq!(info.message_queues.len() as u32, expected);
        for mq in &info.message_queues {
            let qd = r.queue_datas.iter().find(|qd| *qd.broker_name == *mq.broker_name).unwrap();
            prop_assert!(qd.perm.is_writeable() && mq.queue_id < qd.write_queue_nums);
            prop_assert!(r.broker(&qd.broker_name).unwrap().master_addr().is_some());
        }
        let mut sorted = info.message_queues.clone();
        sorted.sort();
        prop_assert_eq!(sorted, info.message_queues.clone());
    }

    #[test]
    fn round_robin_visits_every_queue_equally(r in route(), seed in any::<u32>(), rounds in 1..4usize) {
        let info = TopicPublishInfo::from_route("T", &r);
        prop_assume!(info.ok());
        let mut idx = SendIndex::new(seed);
        let mut counts = vec![0usize; info.message_queues.len()];
        for _ in 0..rounds * counts.len() {
            let mq = info.select_one(&mut idx).unwrap();
            counts[info.message_queues.iter().position(|q| q == mq).unwrap()] += 1;
        }
        // Around the 2^31 wrap of the masked index the cycle restarts once; away from it, exact.
        if seed < 0x7FFF_0000 {
            prop_assert!(counts.iter().all(|c| *c == rounds), "{:?}", counts);
        }
    }

    #[test]
    fn skip_failed_never_returns_the_failed_broker(r in route(), seed in any::<u32>(), failed in 0..5usize) {
        let info = TopicPublishInfo::from_route("T", &r);
        prop_assume!(info.ok());
        let brokers: Vec<&str> = info.brokers().collect();
        let failed = brokers[failed % brokers.len()];
        let mut idx = SendIndex::new(seed);
        let mut off = FaultStrategy::new(false);
        for _ in 0..8 {
            let a = info.select_avoiding(&mut idx, Some(failed)).unwrap();
            let b = off.select(&info, Some(failed), &mut idx, 0).unwrap();
            if brokers.len() > 1 {
                prop_assert_ne!(&*a.broker_name, failed);
                prop_assert_ne!(&*b.broker_name, failed);
            }
        }
    }

    #[test]
    fn fault_tolerance_prefers_available_brokers(
        r in route(), seed in any::<u32>(), history in faults(), now in 0..120_000u64,
        last in prop::option::of(0..5usize), v4 in any::<bool>(),
    ) {
        let info = TopicPublishInfo::from_route("T", &r);
        prop_assume!(info.ok());
        let mut s = faulty(true, &info, &history, v4);
        let brokers: Vec<String> = info.brokers().map(str::to_owned).collect();
        let last = last.map(|l| brokers[l % brokers.len()].clone());
        let available: Vec<&String> = brokers.iter().filter(|b| s.tolerance.is_available(b, now)).collect();
        let mut idx = SendIndex::new(seed);
        let mq = s.select(&info, last.as_deref(), &mut idx, now).unwrap();
        prop_assert!(mq.queue_id < info.write_queue_nums(&mq.broker_name), "selected queue exists");
        // An available broker wins; only under 5.x tables, when the one available broker is
        // the one that just failed, a reachable other one wins (RocketMQ 5.1.4+'s order).
        let other_available = available.iter().any(|b| Some(b.as_str()) != last.as_deref());
        if !available.is_empty() && (v4 || other_available) {
            prop_assert!(s.tolerance.is_available(&mq.broker_name, now), "picked unavailable {:?}", mq);
        }
        if available.iter().any(|b| Some(b.as_str()) != last.as_deref()) {
            prop_assert_ne!(Some(&*mq.broker_name), last.as_deref());
        }
    }

    #[test]
    fn send_retries_avoid_the_failed_broker(
        r in route(), seed in any::<u32>(), enabled in any::<bool>(), dead in 0..5usize,
    ) {
        let info = TopicPublishInfo::from_route("T", &r);
        prop_assume!(info.ok());
        let brokers: Vec<&str> = info.brokers().collect();
        let dead = brokers[dead % brokers.len()];
        let mut s = FaultStrategy::new(enabled);
        let mut idx = SendIndex::new(seed);
        let mut now = 0;
        for _ in 0..6 {
            let mut send = SendAttempts::new(SendPolicy::default(), now);
            let mut previous: Option<String> = None;
            loop {
                let mq = send.next_target(&info, &mut s, &mut idx, now).unwrap();
                if let Some(prev) = &previous && brokers.len() > 1 {
                    prop_assert_ne!(&*mq.broker_name, prev.as_str(), "retry went back to the failed broker");
                }
                now += 10;
                let outcome = if &*mq.broker_name == dead { AttemptOutcome::Remoting } else { AttemptOutcome::Ok };
                match send.on_outcome(&mq, outcome, 10, &mut s, now) {
                    SendStep::Retry => previous = Some(mq.broker_name.to_string()),
                    SendStep::Done => break,
                    SendStep::Failed(_) => { prop_assert_eq!(brokers.len(), 1); break; }
                }
            }
        }
    }
}
