//! `sextant route`, `topic`, `cluster`, `group` and `message`: what `mqadmin` shows, as tables
//! for people and `--json` for scripts.

use std::io::Write;

use anyhow::Context;
use serde_json::json;
use sextant_client::admin::{Admin, TopicSpec, TopicTarget};
use sextant_client::{ClientConfig, MessageExt};

use crate::produce::Namesrv;

async fn admin(ns: &Namesrv) -> anyhow::Result<Admin> {
    Admin::start(ClientConfig {
        namesrv_addr: ns.namesrv.clone(),
        instance_name: "sextant-cli-admin".into(),
        ..Default::default()
    })
    .await
    .context("starting the admin client")
}

fn block<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Runtime::new()?.block_on(f)
}

/// Arguments of `sextant route`.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {
    #[command(flatten)]
    ns: Namesrv,
    /// The topic.
    topic: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `sextant route TOPIC`.
pub fn run_route(args: &RouteArgs, out: &mut impl Write) -> anyhow::Result<()> {
    block(async {
        let a = admin(&args.ns).await?;
        let r = a.route(&args.topic).await?;
        if args.json {
            let v = json!({
                "queueDatas": r.queue_datas.iter().map(|q| json!({
                    "brokerName": q.broker_name, "readQueueNums": q.read_queue_nums,
                    "writeQueueNums": q.write_queue_nums, "perm": q.perm.0,
                })).collect::<Vec<_>>(),
                "brokerDatas": r.broker_datas.iter().map(|b| json!({
                    "brokerName": b.broker_name, "cluster": b.cluster,
                    "brokerAddrs": b.broker_addrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{:<20} {:<16} {:>5} {:>5} {:<5} addresses",
                "broker", "cluster", "read", "write", "perm"
            )?;
            for q in &r.queue_datas {
                let b = r.broker(&q.broker_name);
                let addrs = b
                    .map(|b| {
                        b.broker_addrs
                            .iter()
                            .map(|(id, a)| format!("{id}={a}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<20} {:<16} {:>5} {:>5} {:<5} {addrs}",
                    q.broker_name,
                    b.map(|b| b.cluster.as_str()).unwrap_or("?"),
                    q.read_queue_nums,
                    q.write_queue_nums,
                    q.perm.to_string()
                )?;
            }
        }
        a.shutdown().await;
        Ok(())
    })
}

/// Arguments of `sextant cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    ns: Namesrv,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `sextant cluster`.
pub fn run_cluster(args: &ClusterArgs, out: &mut impl Write) -> anyhow::Result<()> {
    block(async {
        let a = admin(&args.ns).await?;
        let info = a.cluster_info().await?;
        let mut rows = Vec::new();
        for (cluster, names) in &info.cluster_addr_table {
            for n in names {
                if let Some(b) = info.broker_addr_table.get(n) {
                    for (id, addr) in &b.broker_addrs {
                        rows.push((cluster.clone(), n.clone(), *id, addr.clone()));
                    }
                }
            }
        }
        if args.json {
            let v: Vec<_> = rows
                .iter()
                .map(|(c, n, id, a)| json!({"cluster": c, "brokerName": n, "brokerId": id, "addr": a}))
                .collect();
            writeln!(out, "{}", serde_json::Value::Array(v))?;
        } else {
            writeln!(
                out,
                "{:<16} {:<20} {:>3} address",
                "cluster", "broker", "id"
            )?;
            for (c, n, id, a) in rows {
                writeln!(out, "{c:<16} {n:<20} {id:>3} {a}")?;
            }
        }
        a.shutdown().await;
        Ok(())
    })
}

/// `sextant topic ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TopicCommand {
    /// Create a topic on every master of a cluster or on one broker.
    Create(TopicWrite),
    /// Update a topic (the same request as create).
    Update(TopicWrite),
    /// Delete a topic from a cluster's masters and from the NameServers.
    Delete {
        #[command(flatten)]
        ns: Namesrv,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The cluster.
        #[arg(long, default_value = "DefaultCluster")]
        cluster: String,
    },
    /// Every topic the NameServer knows.
    List {
        #[command(flatten)]
        ns: Namesrv,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Min and max offset of each queue.
    Status {
        #[command(flatten)]
        ns: Namesrv,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `topic create|update` writes.
#[derive(Debug, clap::Args)]
pub struct TopicWrite {
    #[command(flatten)]
    ns: Namesrv,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// On every master of this cluster.
    #[arg(long, conflicts_with = "broker", required_unless_present = "broker")]
    cluster: Option<String>,
    /// On the broker at this address.
    #[arg(long)]
    broker: Option<String>,
    /// Read and write queues per broker.
    #[arg(long, default_value_t = 8)]
    queues: u32,
    /// Permission bits (6 = read and write, 4 = read only, 2 = write only).
    #[arg(long, default_value_t = 6)]
    perm: u32,
    /// An ordered topic.
    #[arg(long)]
    order: bool,
}

/// `sextant topic ...`.
pub fn run_topic(cmd: &TopicCommand, out: &mut impl Write) -> anyhow::Result<()> {
    block(async {
        match cmd {
            TopicCommand::Create(w) | TopicCommand::Update(w) => {
                let a = admin(&w.ns).await?;
                let target = match (&w.cluster, &w.broker) {
                    (Some(c), _) => TopicTarget::Cluster(c.clone()),
                    (None, Some(b)) => TopicTarget::Broker(b.clone()),
                    (None, None) => anyhow::bail!("--cluster or --broker"),
                };
                let spec = TopicSpec {
                    topic: w.topic.clone(),
                    queues: w.queues,
                    perm: w.perm,
                    order: w.order,
                };
                let brokers = a.create_topic(&spec, &target).await?;
                writeln!(out, "topic {} written on {}", w.topic, brokers.join(", "))?;
                a.shutdown().await;
            }
            TopicCommand::Delete { ns, topic, cluster } => {
                let a = admin(ns).await?;
                a.delete_topic(topic, cluster).await?;
                writeln!(
                    out,
                    "topic {topic} deleted from {cluster} and the NameServers"
                )?;
                a.shutdown().await;
            }
            TopicCommand::List { ns, json } => {
                let a = admin(ns).await?;
                let topics = a.topics().await?;
                if *json {
                    writeln!(out, "{}", json!(topics))?;
                } else {
                    for t in topics {
                        writeln!(out, "{t}")?;
                    }
                }
                a.shutdown().await;
            }
            TopicCommand::Status { ns, topic, json } => {
                let a = admin(ns).await?;
                let status = a.topic_status(topic).await?;
                if *json {
                    let v: Vec<_> = status
                        .iter()
                        .map(|s| json!({"brokerName": &*s.queue.broker_name, "queueId": s.queue.queue_id, "minOffset": s.min_offset, "maxOffset": s.max_offset}))
                        .collect();
                    writeln!(out, "{}", serde_json::Value::Array(v))?;
                } else {
                    writeln!(
                        out,
                        "{:<20} {:>5} {:>12} {:>12}",
                        "broker", "queue", "min", "max"
                    )?;
                    for s in status {
                        writeln!(
                            out,
                            "{:<20} {:>5} {:>12} {:>12}",
                            &*s.queue.broker_name, s.queue.queue_id, s.min_offset, s.max_offset
                        )?;
                    }
                }
                a.shutdown().await;
            }
        }
        Ok(())
    })
}

/// Arguments of `sextant group`.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    #[command(flatten)]
    ns: Namesrv,
    /// The consumer group.
    group: String,
    /// The topics it consumes (default: its retry topic only; name the others).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `sextant group GROUP`: members, the queues each owns, lag per queue.
pub fn run_group(args: &GroupArgs, out: &mut impl Write) -> anyhow::Result<()> {
    block(async {
        let a = admin(&args.ns).await?;
        // A group with no live member still has offsets and lag to show.
        let members = match a.group_members(&args.group).await {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(error = %e, "no member list");
                Vec::new()
            }
        };
        let mut topics = args.topics.clone();
        topics.push(sextant_model::broker::retry_topic(&args.group));
        let progress = a.consumer_progress(&args.group, &topics).await?;
        if args.json {
            let v = json!({
                "members": members,
                "queues": progress.iter().map(|p| json!({
                    "topic": &*p.queue.topic, "brokerName": &*p.queue.broker_name, "queueId": p.queue.queue_id,
                    "brokerOffset": p.broker_offset, "consumerOffset": p.consumer_offset, "lag": p.lag(), "owner": p.owner,
                })).collect::<Vec<_>>(),
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "group {} — {} member(s)", args.group, members.len())?;
            for m in &members {
                let owned: Vec<String> = progress
                    .iter()
                    .filter(|p| p.owner.as_deref() == Some(m))
                    .map(|p| {
                        format!(
                            "{}:{}:{}",
                            p.queue.topic, p.queue.broker_name, p.queue.queue_id
                        )
                    })
                    .collect();
                writeln!(
                    out,
                    "  {m}  owns {}",
                    if owned.is_empty() {
                        "-".into()
                    } else {
                        owned.join(" ")
                    }
                )?;
            }
            writeln!(
                out,
                "{:<24} {:<16} {:>5} {:>10} {:>10} {:>8}  owner",
                "topic", "broker", "queue", "broker", "consumer", "lag"
            )?;
            for p in &progress {
                writeln!(
                    out,
                    "{:<24} {:<16} {:>5} {:>10} {:>10} {:>8}  {}",
                    &*p.queue.topic,
                    &*p.queue.broker_name,
                    p.queue.queue_id,
                    p.broker_offset,
                    p.consumer_offset.map_or("-".into(), |o| o.to_string()),
                    p.lag(),
                    p.owner.as_deref().unwrap_or("-")
                )?;
            }
        }
        a.shutdown().await;
        Ok(())
    })
}

/// Arguments of `sextant message`.
#[derive(Debug, clap::Args)]
pub struct MessageArgs {
    #[command(flatten)]
    ns: Namesrv,
    /// A message id: the broker's (`offsetMsgId`), or with --topic the client's (`msgId`, the
    /// `UNIQ_KEY`).
    #[arg(long, conflicts_with = "key", required_unless_present = "key")]
    id: Option<String>,
    /// A key (`KEYS`), with --topic.
    #[arg(long, requires = "topic")]
    key: Option<String>,
    /// The topic of --key, or of a client --id.
    #[arg(long)]
    topic: Option<String>,
}

fn print_message(out: &mut impl Write, m: &MessageExt) -> std::io::Result<()> {
    writeln!(out, "msgId:        {}", m.msg_id)?;
    writeln!(out, "offsetMsgId:  {}", m.offset_msg_id)?;
    writeln!(out, "topic:        {}", m.topic)?;
    writeln!(
        out,
        "queue:        {} offset {}",
        m.queue.queue_id, m.queue_offset
    )?;
    writeln!(out, "tags:         {}", m.tags().unwrap_or("-"))?;
    writeln!(
        out,
        "keys:         {}",
        m.keys().collect::<Vec<_>>().join(" ")
    )?;
    writeln!(out, "reconsumed:   {}", m.reconsume_times)?;
    writeln!(
        out,
        "born:         {} from {}",
        m.born_timestamp, m.born_host
    )?;
    writeln!(
        out,
        "stored:       {} on {}",
        m.store_timestamp, m.store_host
    )?;
    writeln!(out, "properties:   {:?}", m.properties())?;
    writeln!(out, "body:         {}", String::from_utf8_lossy(&m.body))
}

/// `sextant message --id ID | --key K --topic T`.
pub fn run_message(args: &MessageArgs, out: &mut impl Write) -> anyhow::Result<()> {
    block(async {
        let a = admin(&args.ns).await?;
        if let (Some(id), Some(t)) = (&args.id, &args.topic) {
            // A client id is looked up by the index (QUERY_MESSAGE with the unique-key flag);
            // failing that, it may be a broker id after all.
            let msgs = a.query_unique(t, id).await?;
            match msgs.first() {
                Some(m) => print_message(out, m)?,
                None => print_message(out, &a.view_message(id).await?)?,
            }
        } else if let Some(id) = &args.id {
            let m = a.view_message(id).await?;
            print_message(out, &m)?;
        } else if let (Some(k), Some(t)) = (&args.key, &args.topic) {
            let msgs = a.query_message(t, k, 64).await?;
            if msgs.is_empty() {
                anyhow::bail!("no message of {t} with key {k}");
            }
            for m in &msgs {
                print_message(out, m)?;
                writeln!(out)?;
            }
        }
        a.shutdown().await;
        Ok(())
    })
}
