//! Queue selection: round robin, skip-failed, and latency fault tolerance (all available, one
//! broker isolated, all isolated so `pick_one_at_least` runs), plus a whole send with one retry.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_benches::route;
use sextant_model::producer::{
    AttemptOutcome, FaultStrategy, SendAttempts, SendIndex, SendPolicy, TopicPublishInfo,
};
use std::hint::black_box;

fn select(c: &mut Criterion) {
    let mut g = c.benchmark_group("select");
    g.throughput(Throughput::Elements(1));
    for brokers in [2usize, 16] {
        let info = TopicPublishInfo::from_route("TopicTest", &route(brokers, 8));
        let mut idx = SendIndex::new(0);
        g.bench_with_input(
            BenchmarkId::new("round_robin", brokers),
            &info,
            |b, info| b.iter(|| black_box(info.select_one(&mut idx)).is_some()),
        );
        let failed = "broker-000";
        g.bench_with_input(
            BenchmarkId::new("skip_failed", brokers),
            &info,
            |b, info| {
                b.iter(|| {
                    black_box(info.select_avoiding(&mut idx, Some(black_box(failed)))).is_some()
                })
            },
        );
        let mut healthy = FaultStrategy::new(true);
        g.bench_with_input(
            BenchmarkId::new("fault_tolerance_healthy", brokers),
            &info,
            |b, info| b.iter(|| black_box(healthy.select(info, None, &mut idx, 1))),
        );
        let mut one_down = FaultStrategy::new(true);
        one_down.update("broker-001", 3_000, true, true, 0);
        g.bench_with_input(
            BenchmarkId::new("fault_tolerance_one_isolated", brokers),
            &info,
            |b, info| b.iter(|| black_box(one_down.select(info, Some("broker-000"), &mut idx, 1))),
        );
        let mut all_down = FaultStrategy::new(true);
        for i in 0..brokers {
            all_down.update(&format!("broker-{i:03}"), 100 + i as u64, true, true, 0);
        }
        g.bench_with_input(
            BenchmarkId::new("fault_tolerance_all_isolated", brokers),
            &info,
            |b, info| b.iter(|| black_box(all_down.select(info, Some("broker-000"), &mut idx, 1))),
        );
    }
    g.finish();
}

fn publish_info(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_info");
    for brokers in [2usize, 128] {
        let r = route(brokers, 8);
        g.throughput(Throughput::Elements(brokers as u64 * 8));
        g.bench_with_input(BenchmarkId::new("from_route", brokers), &r, |b, r| {
            b.iter(|| TopicPublishInfo::from_route("TopicTest", black_box(r)))
        });
    }
    g.finish();
}

fn send_with_retry(c: &mut Criterion) {
    let info = TopicPublishInfo::from_route("TopicTest", &route(4, 8));
    let mut g = c.benchmark_group("send_loop");
    g.throughput(Throughput::Elements(1));
    let mut strategy = FaultStrategy::new(true);
    let mut idx = SendIndex::new(0);
    let mut now = 0u64;
    g.bench_function("first_attempt_fails_then_ok", |b| {
        b.iter(|| {
            // 60 s later every earlier isolation window (10 s) has passed: each iteration starts
            // from the same state, all brokers available.
            now += 60_000;
            let mut send = SendAttempts::new(SendPolicy::default(), now);
            let first = send
                .next_target(&info, &mut strategy, &mut idx, now)
                .unwrap();
            send.on_outcome(&first, AttemptOutcome::Remoting, 3, &mut strategy, now);
            let second = send
                .next_target(&info, &mut strategy, &mut idx, now)
                .unwrap();
            black_box(send.on_outcome(&second, AttemptOutcome::Ok, 3, &mut strategy, now))
        })
    });
    g.finish();
}

criterion_group!(benches, select, publish_info, send_with_retry);
criterion_main!(benches);
