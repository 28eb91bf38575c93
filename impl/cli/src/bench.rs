//! `sextant bench produce|consume`: a load tool like RocketMQ's benchmark producer and
//! consumer — a live progress line (msgs/s, MB/s, p50/p99/p999 latency, errors), a final summary,
//! and `--json FILE` for scripts.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::json;
use sextant_client::{ConsumeFromWhere, ConsumeResult, Message, Producer, PushConsumer};

use crate::produce::Namesrv;

/// `sextant bench ...`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Send as fast as the mode allows.
    Produce(ProduceBench),
    /// Consume with a push consumer and measure.
    Consume(ConsumeBench),
}

/// How sends are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `--concurrency` tasks, each waiting for its answer before the next send.
    Sync,
    /// A window of `--concurrency` sends in flight (back-pressure).
    Async,
    /// `--concurrency` tasks sending without answers.
    Oneway,
}

/// Arguments of `sextant bench produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceBench {
    #[command(flatten)]
    ns: Namesrv,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// Stop after this many messages.
    #[arg(long, conflicts_with = "duration")]
    messages: Option<u64>,
    /// Stop after this many seconds (default 10 when --messages is not given).
    #[arg(long)]
    duration: Option<u64>,
    /// Body size in bytes.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Sync/oneway tasks, or the async window.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Messages per send (SEND_BATCH_MESSAGE when > 1).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// How sends are made.
    #[arg(long, value_enum, default_value = "async")]
    mode: Mode,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Arguments of `sextant bench consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeBench {
    #[command(flatten)]
    ns: Namesrv,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// The group (default: a new one, reading from the first offset).
    #[arg(long)]
    group: Option<String>,
    /// Stop after this many messages.
    #[arg(long, conflicts_with = "duration")]
    messages: Option<u64>,
    /// Stop after this many seconds (default 10 when --messages is not given).
    #[arg(long)]
    duration: Option<u64>,
    /// With --messages: give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// What a run measured.
struct Stats {
    done: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Stats {
    fn new() -> Arc<Stats> {
        Arc::new(Stats {
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds")),
        })
    }

    fn record(&self, n: u64, bytes: u64, latency: Duration) {
        self.done.fetch_add(n, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let us = (latency.as_micros() as u64).clamp(1, 600_000_000);
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record_n(us, n.max(1));
    }

    fn line(&self, elapsed: f64) -> String {
        let h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let done = self.done.load(Ordering::Relaxed);
        format!(
            "{done} msgs  {:.0} msgs/s  {:.2} MB/s  p50 {} µs  p99 {} µs  p999 {} µs  errors {}",
            done as f64 / elapsed.max(1e-9),
            self.bytes.load(Ordering::Relaxed) as f64 / 1e6 / elapsed.max(1e-9),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            self.errors.load(Ordering::Relaxed)
        )
    }

    fn json(&self, mode: &str, elapsed: f64) -> serde_json::Value {
        let h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let done = self.done.load(Ordering::Relaxed);
        json!({
            "mode": mode,
            "messages": done,
            "errors": self.errors.load(Ordering::Relaxed),
            "elapsed_s": elapsed,
            "msgs_per_s": done as f64 / elapsed.max(1e-9),
            "mb_per_s": self.bytes.load(Ordering::Relaxed) as f64 / 1e6 / elapsed.max(1e-9),
            "latency_us": {
                "p50": h.value_at_quantile(0.5),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
            },
        })
    }
}

/// Print the live line every 250 ms until `stop`.
fn progress(
    stats: Arc<Stats>,
    started: Instant,
) -> (tokio::task::JoinHandle<()>, Arc<tokio::sync::Notify>) {
    let stop = Arc::new(tokio::sync::Notify::new());
    let s = Arc::clone(&stop);
    let bar = indicatif::ProgressBar::new_spinner();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {
                    bar.set_message(stats.line(started.elapsed().as_secs_f64()));
                    bar.tick();
                }
                _ = s.notified() => {
                    bar.finish_and_clear();
                    return;
                }
            }
        }
    });
    (task, stop)
}

fn limits(messages: Option<u64>, duration: Option<u64>) -> (u64, Option<Instant>) {
    match (messages, duration) {
        (Some(n), _) => (n, None),
        (None, d) => (
            u64::MAX,
            Some(Instant::now() + Duration::from_secs(d.unwrap_or(10))),
        ),
    }
}

/// Run `sextant bench ...`.
pub fn run(cmd: &BenchCommand, out: &mut impl Write) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Runtime::new()?;
    match cmd {
        BenchCommand::Produce(a) => rt.block_on(produce(a, out)),
        BenchCommand::Consume(a) => rt.block_on(consume(a, out)),
    }
}

async fn produce(a: &ProduceBench, out: &mut impl Write) -> anyhow::Result<bool> {
    let producer = Producer::builder()
        .producer_group("sextant-bench-producer")
        .namesrv_addr(a.ns.namesrv.clone())
        .back_pressure_for_async_send_num(a.concurrency.max(1))
        .start()
        .await
        .context("starting the producer")?;
    // Learn the route (and create the topic, if the brokers auto-create) before timing.
    producer
        .send(Message::new(a.topic.clone(), vec![b'w'; a.size.max(1)]))
        .await
        .context("the warm-up send")?;
    let (limit, until) = limits(a.messages, a.duration);
    let batch = a.batch.max(1) as u64;
    let stats = Stats::new();
    let issued = Arc::new(AtomicU64::new(0));
    let body = bytes::Bytes::from(vec![b'x'; a.size.max(1)]);
    let started = Instant::now();
    let (bar, stop_bar) = progress(Arc::clone(&stats), started);
    let take = {
        let issued = Arc::clone(&issued);
        move || {
            let before = issued.fetch_add(batch, Ordering::Relaxed);
            before < limit && until.is_none_or(|u| Instant::now() < u)
        }
    };
    let make = |topic: &str| -> Vec<Message> {
        (0..batch)
            .map(|_| Message::new(topic.to_owned(), body.clone()))
            .collect()
    };
    match a.mode {
        Mode::Sync | Mode::Oneway => {
            let mut tasks = Vec::new();
            for _ in 0..a.concurrency.max(1) {
                let p = producer.clone();
                let stats = Arc::clone(&stats);
                let take = take.clone();
                let topic = a.topic.clone();
                let mode = a.mode;
                let msgs = make(&topic);
                tasks.push(tokio::spawn(async move {
                    while take() {
                        let t0 = Instant::now();
                        let r = match (mode, batch) {
                            (Mode::Oneway, _) => p.send_oneway(msgs[0].clone()).await.map(drop),
                            (_, 1) => p.send(msgs[0].clone()).await.map(drop),
                            _ => p.send_batch(msgs.clone()).await.map(drop),
                        };
                        let n = if mode == Mode::Oneway { 1 } else { batch };
                        match r {
                            Ok(()) => stats.record(n, n * msgs[0].body.len() as u64, t0.elapsed()),
                            Err(_) => {
                                stats.errors.fetch_add(n, Ordering::Relaxed);
                            }
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        Mode::Async => {
            let (tx, mut rx) = tokio::sync::mpsc::channel(a.concurrency.max(1) * 2);
            let waiter = {
                let stats = Arc::clone(&stats);
                let size = a.size as u64;
                // Each send's latency when it completes, in whatever order: a finished send
                // never waits behind a slower earlier one.
                tokio::spawn(async move {
                    use futures_util::StreamExt;
                    let mut pending = futures_util::stream::FuturesUnordered::new();
                    let mut open = true;
                    loop {
                        tokio::select! {
                            next = rx.recv(), if open => match next {
                                Some((t0, h)) => {
                                    let (t0, h): (Instant, sextant_client::SendHandle) = (t0, h);
                                    pending.push(async move { (t0, h.await) });
                                }
                                None => open = false,
                            },
                            Some((t0, r)) = pending.next(), if !pending.is_empty() => match r {
                                Ok(_) => stats.record(batch, batch * size, t0.elapsed()),
                                Err(_) => {
                                    stats.errors.fetch_add(batch, Ordering::Relaxed);
                                }
                            },
                            else => break,
                        }
                    }
                })
            };
            while take() {
                let t0 = Instant::now();
                let h = if batch == 1 {
                    producer.send_async(make(&a.topic).remove(0)).await
                } else {
                    producer.send_batch_async(make(&a.topic)).await
                };
                match h {
                    Ok(h) => {
                        if tx.send((t0, h)).await.is_err() {
                            break;
                        }
                    }
                    Err(_) => {
                        stats.errors.fetch_add(batch, Ordering::Relaxed);
                    }
                }
            }
            drop(tx);
            let _ = waiter.await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop_bar.notify_one();
    let _ = bar.await;
    let mode = match (a.mode, a.batch > 1) {
        (Mode::Sync, false) => "sync".to_owned(),
        (Mode::Async, false) => "async".to_owned(),
        (Mode::Oneway, _) => "oneway".to_owned(),
        (m, true) => format!(
            "{}-batch{}",
            if m == Mode::Sync { "sync" } else { "async" },
            a.batch
        ),
    };
    writeln!(out, "produce {mode}: {}", stats.line(elapsed))?;
    if let Some(path) = &a.json {
        std::fs::write(path, stats.json(&mode, elapsed).to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    producer.shutdown().await;
    Ok(stats.errors.load(Ordering::Relaxed) == 0)
}

async fn consume(a: &ConsumeBench, out: &mut impl Write) -> anyhow::Result<bool> {
    let group = a.group.clone().unwrap_or_else(|| {
        format!(
            "sextant-bench-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        )
    });
    let (limit, until) = limits(a.messages, a.duration);
    let stats = Stats::new();
    let first: Arc<Mutex<Option<Instant>>> = Arc::default();
    let done = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let consumer = {
        let stats = Arc::clone(&stats);
        let first = Arc::clone(&first);
        let done = Arc::clone(&done);
        PushConsumer::builder()
            .consumer_group(group)
            .namesrv_addr(a.ns.namesrv.clone())
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .subscribe(a.topic.clone(), "*")
            .start(move |msgs| {
                let stats = Arc::clone(&stats);
                let first = Arc::clone(&first);
                let done = Arc::clone(&done);
                async move {
                    first
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert_with(Instant::now);
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as i64);
                    for m in &msgs {
                        let e2e = (now - m.born_timestamp * 1000).max(1) as u64;
                        stats.record(1, m.body.len() as u64, Duration::from_micros(e2e));
                    }
                    if stats.done.load(Ordering::Relaxed) >= limit {
                        done.notify_one();
                    }
                    ConsumeResult::Success
                }
            })
            .await
            .context("starting the consumer")?
    };
    let (bar, stop_bar) = progress(Arc::clone(&stats), started);
    let until = until.unwrap_or_else(|| Instant::now() + Duration::from_secs(a.timeout));
    let _ = tokio::time::timeout_at(until.into(), done.notified()).await;
    let elapsed = started.elapsed().as_secs_f64();
    stop_bar.notify_one();
    let _ = bar.await;
    let first_ms = first
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .map(|t| t.duration_since(started).as_secs_f64() * 1000.0);
    writeln!(
        out,
        "consume: {} (first message after {})",
        stats.line(elapsed),
        first_ms.map_or("-".into(), |ms| format!("{ms:.1} ms"))
    )?;
    if let Some(path) = &a.json {
        let mut v = stats.json("consume", elapsed);
        v["first_message_ms"] = json!(first_ms);
        std::fs::write(path, v.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    consumer.shutdown().await;
    // With --messages, fewer than asked before the timeout is a failure.
    Ok(a.messages
        .is_none_or(|n| stats.done.load(Ordering::Relaxed) >= n))
}
