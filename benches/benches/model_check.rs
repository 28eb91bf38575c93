//! Model-checking throughput: states per second of an exhaustive BFS over two of `sextant check`'s
//! default models, by stateright's checker (one thread, as `sextant check` runs a model with an
//! `eventually` property) and, side by side, by a bare breadth-first walk of the same model
//! (`checks::models::fold_states`: a hash set of state fingerprints and a queue, no paths, no
//! properties). The gap is what the checker costs per state beyond the model's own steps.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_checks::models::fold_states;
use sextant_checks::models::rebalance::{LockBug, RebalanceModelCfg};
use sextant_checks::models::routing::RoutingModelCfg;
use stateright::{Checker, Model};
use std::hint::black_box;

/// Benchmarks one model both ways; its state count is the throughput's unit.
fn both<M>(c: &mut Criterion, name: &str, model: impl Fn() -> M)
where
    M: Model + Send + Sync + 'static,
    M::State: Clone + std::fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
    M::Action: Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static,
{
    let (_, states) = fold_states(&model(), (), |(), _| ());
    let mut group = c.benchmark_group("model_check");
    group.sample_size(10);
    group.throughput(Throughput::Elements(states as u64));
    group.bench_function(BenchmarkId::new("stateright_bfs", name), |b| {
        b.iter(|| {
            let checker = model().checker().threads(1).spawn_bfs().join();
            assert_eq!(checker.unique_state_count(), states);
            black_box(checker.unique_state_count())
        })
    });
    group.bench_function(BenchmarkId::new("bare_bfs", name), |b| {
        b.iter(|| black_box(fold_states(&model(), 0u64, |n, _| n + 1)))
    });
    group.finish();
}

fn model_check(c: &mut Criterion) {
    both(c, "routing_default", || {
        RoutingModelCfg::default().into_model()
    });
    both(c, "rebalance_orderly_default", || {
        RebalanceModelCfg {
            orderly: true,
            lock_bug: LockBug::None,
            ..RebalanceModelCfg::default()
        }
        .into_model()
    });
}

criterion_group!(benches, model_check);
criterion_main!(benches);
