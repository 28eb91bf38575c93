//! # sextant-benches — fixtures shared by Sextant's criterion benchmarks
//!
//! The benchmarks live in `benches/benches/` (one file per area); this library builds the inputs
//! they measure so every benchmark uses the same shapes. Run them with `cargo bench -p
//! sextant-benches`; `cargo test --workspace --benches` runs each once as a smoke test.

use sextant_model::route::{MessageQueue, TopicRouteData};

/// A route of `brokers` master-only broker groups with `queues` read/write queues each.
pub fn route(brokers: usize, queues: u32) -> TopicRouteData {
    let names: Vec<(String, String)> = (0..brokers)
        .map(|b| (format!("broker-{b:03}"), format!("127.0.0.1:{}", 10911 + b)))
        .collect();
    TopicRouteData::of_masters(
        "DefaultCluster",
        names.iter().map(|(n, a)| (n.as_str(), a.as_str())),
        queues,
    )
}

/// `n` queues of topic `TopicTest` spread over 8 brokers in 2 rooms (`roomK@broker-NNN`).
pub fn queues(n: usize) -> Vec<MessageQueue> {
    let brokers = 8;
    (0..n)
        .map(|i| {
            let b = i % brokers;
            MessageQueue::new(
                "TopicTest",
                &format!("room{}@broker-{b:03}", b % 2),
                (i / brokers) as u32,
            )
        })
        .collect()
}

/// `n` consumer ids shaped like RocketMQ client ids, in 2 rooms.
pub fn consumers(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("room{}@10.0.{}.{}@{}", i % 2, i / 250, i % 250, 20_000 + i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_have_the_requested_sizes() {
        assert_eq!(route(3, 4).queue_datas.len(), 3);
        assert_eq!(queues(1024).len(), 1024);
        let mut q = queues(64);
        q.sort();
        q.dedup();
        assert_eq!(q.len(), 64, "queues are distinct");
        assert_eq!(consumers(512).len(), 512);
    }
}
