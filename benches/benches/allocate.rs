//! Allocation: every strategy for 8 queues / 3 consumers, 1024 / 64 and 16384 / 512 (one member's
//! share, as each consumer computes it), the group view (sort + dedup of the inputs), and the
//! rebalance plan.

use std::collections::BTreeSet;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_benches::{consumers, queues};
use sextant_model::consumer::{
    AllocateStrategy, Averagely, AveragelyByCircle, ByConfig, ByMachineRoom, ConsistentHash,
    GroupView, MachineRoomNearby, RebalancePlan,
};
use std::hint::black_box;

const SIZES: [(usize, usize); 3] = [(8, 3), (1024, 64), (16384, 512)];

fn strategies(view: &GroupView) -> Vec<(&'static str, Box<dyn AllocateStrategy>)> {
    // Config: the group's configuration is what averagely would give.
    let by_config = ByConfig {
        assignments: view.allocate_all(&Averagely).expect("non-empty view"),
    };
    vec![
        ("averagely", Box::new(Averagely)),
        ("circle", Box::new(AveragelyByCircle)),
        ("config", Box::new(by_config)),
        (
            "machine-room",
            Box::new(ByMachineRoom {
                consumer_idcs: ["room0".to_string()].into(),
            }),
        ),
        (
            "machine-room-nearby",
            Box::new(MachineRoomNearby::new(Box::new(Averagely))),
        ),
        ("consistent-hash", Box::new(ConsistentHash::default())),
    ]
}

fn allocate(c: &mut Criterion) {
    let mut g = c.benchmark_group("allocate");
    for (nq, nc) in SIZES {
        let view = GroupView::new(queues(nq), consumers(nc));
        // The middle member: a typical share, not the first or last block.
        let me = view.consumers()[nc / 2].clone();
        g.throughput(Throughput::Elements(nq as u64));
        for (name, s) in strategies(&view) {
            g.bench_with_input(
                BenchmarkId::new(name, format!("{nq}q_{nc}c")),
                &view,
                |b, view| b.iter(|| black_box(s.allocate(view, &me)).map(|v| v.len())),
            );
        }
    }
    g.finish();
}

fn view(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_view");
    for (nq, nc) in SIZES {
        let (qs, cs) = (queues(nq), consumers(nc));
        g.throughput(Throughput::Elements((nq + nc) as u64));
        g.bench_function(BenchmarkId::new("new", format!("{nq}q_{nc}c")), |b| {
            b.iter(|| {
                GroupView::new(
                    black_box(&qs).iter().cloned(),
                    black_box(&cs).iter().cloned(),
                )
            })
        });
    }
    g.finish();
}

fn rebalance_plan(c: &mut Criterion) {
    let mut g = c.benchmark_group("rebalance_plan");
    for (nq, nc) in SIZES {
        // One member joins: the middle member's share before and after.
        let before = GroupView::new(queues(nq), consumers(nc));
        let after = GroupView::new(queues(nq), consumers(nc + 1));
        let me = before.consumers()[nc / 2].clone();
        let held: BTreeSet<_> = Averagely
            .allocate(&before, &me)
            .unwrap()
            .into_iter()
            .collect();
        let share = Averagely.allocate(&after, &me).unwrap();
        let expired = BTreeSet::new();
        g.throughput(Throughput::Elements(held.len().max(1) as u64));
        g.bench_function(
            BenchmarkId::new("member_joins", format!("{nq}q_{nc}c")),
            |b| b.iter(|| RebalancePlan::compute(black_box(&held), black_box(&share), &expired)),
        );
    }
    g.finish();
}

criterion_group!(benches, allocate, view, rebalance_plan);
criterion_main!(benches);
