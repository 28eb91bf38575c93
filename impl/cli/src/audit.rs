//! `sextant audit --namesrv ADDR[;ADDR]`: ask a live RocketMQ-compatible cluster what it holds,
//! read-only, and report what the model's rules find wrong (`sextant_checks::audit` judges).
//!
//! Asked, each on its own: every NameServer (topic list, cluster info, every topic's route);
//! every broker any of them lists (topic table, each queue's min and max offset, every committed
//! consumer offset); every group with committed offsets (its members from a master, and each
//! member's held queues through GET_CONSUMER_RUNNING_INFO). Nothing sent changes the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use sextant_checks::audit::{
    AuditOptions, BrokerSnapshot, GroupSnapshot, NamesrvSnapshot, Snapshot, judge,
};
use sextant_client::admin::Admin;
use sextant_client::{ClientConfig, ClientInstance, MessageQueue};
use sextant_model::route::MASTER_ID;
use sextant_remoting::RemotingCommand;
use sextant_remoting::body::{ConsumerOffsetBody, decode, decode_topic_table};
use sextant_remoting::code::request;

use crate::produce::Namesrv;

/// Arguments of `sextant audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    ns: Namesrv,
    /// A slave queue at most this many messages behind its master's is not a finding.
    #[arg(long, default_value_t = 1_000)]
    max_slave_lag: u64,
    /// How long to wait for each answer, in seconds.
    #[arg(long, default_value_t = 3)]
    timeout: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Run `sextant audit`: whether the cluster is clean (the binary exits 1 when not).
pub fn run(args: &AuditArgs, out: &mut impl Write) -> anyhow::Result<bool> {
    let snap = tokio::runtime::Runtime::new()?.block_on(gather(args))?;
    let report = judge(
        &snap,
        &AuditOptions {
            max_slave_lag: args.max_slave_lag,
        },
    );
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{report}")?;
    }
    Ok(report.clean())
}

async fn gather(args: &AuditArgs) -> anyhow::Result<Snapshot> {
    let t = Duration::from_secs(args.timeout.max(1));
    let instance = ClientInstance::start(ClientConfig {
        namesrv_addr: args.ns.namesrv.clone(),
        instance_name: "sextant-audit".into(),
        mq_client_api_timeout: t,
        connect_timeout: t,
        ..Default::default()
    })
    .await
    .context("starting the audit's client")?;
    let mut snap = Snapshot::default();
    for addr in instance.namesrvs().to_vec() {
        snap.namesrvs.push(namesrv(&instance, &addr, t).await);
    }
    let brokers: BTreeSet<(String, u64, String)> = snap
        .namesrvs
        .iter()
        .flat_map(|n| n.brokers.iter().cloned())
        .collect();
    for (name, id, addr) in brokers {
        snap.brokers
            .push(broker(&instance, name, id, addr, t).await);
    }
    // Groups from the masters' committed offsets: the topics each consumes.
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for b in snap.brokers.iter().filter(|b| b.id == MASTER_ID) {
        for (topic, group) in b.offsets.keys() {
            groups
                .entry(group.clone())
                .or_default()
                .insert(topic.clone());
        }
    }
    let admin = Admin::on(instance.clone());
    for (group, topics) in groups {
        // Every master's member list: members asking different brokers rebalance on these.
        let mut member_views = BTreeMap::new();
        for b in snap
            .brokers
            .iter()
            .filter(|b| b.id == MASTER_ID && b.error.is_none())
        {
            if let Ok(p) = instance.peer(&b.addr).await
                && let Ok(list) = p.consumer_list(&group, t).await
            {
                member_views.insert(b.name.clone(), list);
            }
        }
        let members = member_views.values().next().cloned().unwrap_or_default();
        let mut held = BTreeMap::new();
        let mut locked = BTreeMap::new();
        for m in &members {
            let h = admin
                .held_queues(&group, m)
                .await
                .map_err(|e| e.to_string());
            if let Ok(h) = &h {
                let mine: BTreeSet<MessageQueue> = h
                    .iter()
                    .filter(|h| h.locked)
                    .map(|h| h.queue.clone())
                    .collect();
                if !mine.is_empty() {
                    locked.insert(m.clone(), mine);
                }
            }
            let h: Result<Vec<MessageQueue>, String> =
                h.map(|h| h.into_iter().map(|h| h.queue).collect());
            held.insert(m.clone(), h);
        }
        // Members are read one after another: a lock handed over between two reads looks
        // held twice. A lock claimed twice counts only if both still claim it a second later.
        if claimed_twice(&locked) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (m, mine) in &mut locked {
                let again: BTreeSet<MessageQueue> = match admin.held_queues(&group, m).await {
                    Ok(h) => h
                        .into_iter()
                        .filter(|h| h.locked)
                        .map(|h| h.queue)
                        .collect(),
                    Err(_) => BTreeSet::new(),
                };
                mine.retain(|q| again.contains(q));
            }
        }
        snap.groups.push(GroupSnapshot {
            group,
            topics,
            members,
            member_views,
            held,
            locked,
        });
    }
    instance.shutdown().await;
    Ok(snap)
}

async fn namesrv(instance: &ClientInstance, addr: &str, t: Duration) -> NamesrvSnapshot {
    let mut n = NamesrvSnapshot {
        addr: addr.to_owned(),
        ..Default::default()
    };
    let answer = async {
        let p = instance.peer(addr).await?;
        let info = p.cluster_info(t).await?;
        for b in info.broker_addr_table.values() {
            for (id, a) in &b.broker_addrs {
                n.brokers.insert((b.broker_name.clone(), *id, a.clone()));
            }
        }
        for topic in p.topic_list(t).await? {
            if let Some(r) = p.route(&topic, t).await? {
                n.routes.insert(topic, r);
            }
        }
        Ok::<_, sextant_client::Error>(())
    };
    if let Err(e) = answer.await {
        n.error = Some(e.to_string());
    }
    n
}

async fn broker(
    instance: &ClientInstance,
    name: String,
    id: u64,
    addr: String,
    t: Duration,
) -> BrokerSnapshot {
    let mut b = BrokerSnapshot {
        name,
        id,
        addr: addr.clone(),
        ..Default::default()
    };
    let answer = async {
        let p = instance.peer(&addr).await?;
        let bad = |e: sextant_remoting::Error| sextant_client::Error::BadAnswer {
            addr: addr.clone(),
            reason: e.to_string(),
        };
        let resp = p
            .call_ok(
                RemotingCommand::request(request::GET_ALL_TOPIC_CONFIG, 0),
                t,
            )
            .await?;
        let (_, table) = decode_topic_table(&resp.body).map_err(bad)?;
        for (topic, c) in &table {
            b.topics
                .insert(topic.clone(), (c.read_queue_nums, c.write_queue_nums));
            for qid in 0..c.read_queue_nums.min(sextant_model::route::MAX_QUEUE_NUMS) {
                let mq = MessageQueue::new(topic, &b.name, qid);
                let min = p.min_offset(&mq, t).await?;
                let max = p.max_offset(&mq, t).await?;
                b.queues.insert((topic.clone(), qid), (min, max));
            }
        }
        let resp = p
            .call_ok(
                RemotingCommand::request(request::GET_ALL_CONSUMER_OFFSET, 0),
                t,
            )
            .await?;
        let offsets: ConsumerOffsetBody = decode("consumer offsets", &resp.body).map_err(bad)?;
        for (key, table) in offsets.offset_table {
            let Some((topic, group)) = key.split_once('@') else {
                continue;
            };
            let table = table
                .into_iter()
                .filter_map(|(q, o)| u32::try_from(q).ok().map(|q| (q, o)))
                .collect();
            b.offsets
                .insert((topic.to_owned(), group.to_owned()), table);
        }
        Ok::<_, sextant_client::Error>(())
    };
    if let Err(e) = answer.await {
        b.error = Some(e.to_string());
    }
    b
}

/// Whether two members claim one lock.
fn claimed_twice(locked: &BTreeMap<String, BTreeSet<MessageQueue>>) -> bool {
    let mut seen = BTreeSet::new();
    locked.values().flatten().any(|q| !seen.insert(q))
}
