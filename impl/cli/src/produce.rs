//! `sextant produce` and `sextant consume`: send and receive messages on any RocketMQ-compatible
//! cluster, with a summary a person (or a script, by the exit code) can trust.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use sextant_client::{ConsumeFromWhere, ConsumeResult, Message, Producer, PushConsumer};

/// Where the NameServers are (every client command takes it).
#[derive(Debug, Clone, clap::Args)]
pub struct Namesrv {
    /// NameServers, `host:port` separated by `;`.
    #[arg(long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
}

/// Arguments of `sextant produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    ns: Namesrv,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// How many messages.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Body size in bytes (ignored with --body).
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// The tag.
    #[arg(long)]
    tag: Option<String>,
    /// A key (QUERY_MESSAGE finds it).
    #[arg(long)]
    key: Option<String>,
    /// The body text (default: `message-N` padded to --size).
    #[arg(long)]
    body: Option<String>,
    /// The producer group.
    #[arg(long, default_value = "sextant-cli-producer")]
    group: String,
    /// Print each message's ids (`msgId`, the client's `UNIQ_KEY`; `offsetMsgId`, the broker's),
    /// queue and offset.
    #[arg(long)]
    verbose: bool,
}

fn body_of(args: &ProduceArgs, i: u64) -> Vec<u8> {
    match &args.body {
        Some(b) => b.clone().into_bytes(),
        None => {
            let mut b = format!("message-{i}").into_bytes();
            b.resize(args.size.max(b.len()), b'.');
            b
        }
    }
}

/// Run `sextant produce`: exits non-zero if any send failed.
pub fn run_produce(args: &ProduceArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let producer = Producer::builder()
            .producer_group(args.group.clone())
            .namesrv_addr(args.ns.namesrv.clone())
            .trace(crate::tracer())
            .start()
            .await
            .context("starting the producer")?;
        let started = Instant::now();
        let mut handles = Vec::new();
        for i in 0..args.count {
            let mut m = Message::new(args.topic.clone(), body_of(args, i));
            if let Some(t) = &args.tag {
                m = m.with_tags(t.clone());
            }
            if let Some(k) = &args.key {
                m = m.with_keys([k.as_str()]);
            }
            handles.push(producer.send_async(m).await);
        }
        let (mut sent, mut failed) = (0u64, 0u64);
        let mut first_error = None;
        for h in handles {
            let r = match h {
                Ok(h) => h.await,
                Err(e) => Err(e),
            };
            match r {
                Ok(r) => {
                    sent += 1;
                    if args.verbose {
                        writeln!(
                            out,
                            "{}  {}  {}[{}]  offset {}  {:?}",
                            r.msg_id,
                            r.offset_msg_id,
                            r.queue.broker_name,
                            r.queue.queue_id,
                            r.queue_offset,
                            r.status
                        )?;
                    }
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        writeln!(
            out,
            "sent {sent}, failed {failed}, {:.0} msgs/s ({:.3} s)",
            sent as f64 / secs.max(1e-9),
            secs
        )?;
        if let Some(e) = first_error {
            writeln!(out, "first error: {e}")?;
        }
        producer.shutdown().await;
        Ok(failed == 0)
    })
}

/// Arguments of `sextant consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    ns: Namesrv,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// The consumer group.
    #[arg(long)]
    group: String,
    /// Stop after this many distinct messages.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Give up (exit non-zero) after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Where a group new to a queue starts.
    #[arg(long, value_enum, default_value = "last")]
    from: From,
    /// Orderly consumption (one queue at a time, under a broker lock).
    #[arg(long)]
    orderly: bool,
    /// The tag expression (`*`, `TagA || TagB`).
    #[arg(long, default_value = "*")]
    tag: String,
    /// Do not print each message.
    #[arg(long)]
    quiet: bool,
}

/// `consumeFromWhere` as a flag.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum From {
    /// CONSUME_FROM_FIRST_OFFSET.
    First,
    /// CONSUME_FROM_LAST_OFFSET.
    Last,
}

/// Run `sextant consume`: exits non-zero if fewer than --count arrived before --timeout.
pub fn run_consume(args: &ConsumeArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let from = match args.from {
            From::First => ConsumeFromWhere::FirstOffset,
            From::Last => ConsumeFromWhere::LastOffset,
        };
        // The handler takes at most --count distinct messages. Past that it holds the message
        // until the consumer has stopped, then answers "later": the queue is dropped by then, so
        // nothing past what was printed is committed and the group's next run gets it.
        let gate = std::sync::Arc::new(std::sync::Mutex::new((BTreeSet::<String>::new(), 0u64)));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let count = args.count;
        let handler_gate = std::sync::Arc::clone(&gate);
        let consumer = PushConsumer::builder()
            .consumer_group(args.group.clone())
            .namesrv_addr(args.ns.namesrv.clone())
            .trace(crate::tracer())
            .consume_from_where(from)
            .orderly(args.orderly)
            .subscribe(args.topic.clone(), args.tag.clone())
            .start(move |msgs| {
                let tx = tx.clone();
                let gate = std::sync::Arc::clone(&handler_gate);
                let mut stop = stop_rx.clone();
                async move {
                    let mut over = false;
                    {
                        let mut g = gate.lock().unwrap_or_else(|p| p.into_inner());
                        for m in &msgs {
                            if g.0.contains(&m.msg_id) {
                                g.1 += 1;
                            } else if (g.0.len() as u64) < count {
                                g.0.insert(m.msg_id.clone());
                                let _ = tx.send(m.clone());
                            } else {
                                over = true;
                            }
                        }
                    }
                    if over {
                        let _ = stop.wait_for(|s| *s).await;
                        return ConsumeResult::RetryLater;
                    }
                    ConsumeResult::Success
                }
            })
            .await
            .context("starting the consumer")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
        let mut shown = 0u64;
        while shown < args.count {
            let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
                break;
            };
            shown += 1;
            if !args.quiet {
                let body = String::from_utf8_lossy(&m.body);
                let text: String = body.chars().take(60).collect();
                writeln!(
                    out,
                    "{}  {}[{}]  offset {}  tag {}  {}",
                    m.msg_id,
                    m.queue.broker_name,
                    m.queue.queue_id,
                    m.queue_offset,
                    m.tags().unwrap_or("-"),
                    text
                )?;
            }
        }
        consumer.stop_consuming();
        let _ = stop_tx.send(true);
        let (seen, duplicates) = {
            let g = gate.lock().unwrap_or_else(|p| p.into_inner());
            (g.0.clone(), g.1)
        };
        consumer.shutdown().await;
        let ok = seen.len() as u64 >= args.count;
        writeln!(
            out,
            "consumed {}, duplicates {duplicates}{}",
            seen.len(),
            if ok { "" } else { " (timed out)" }
        )?;
        Ok(ok)
    })
}
