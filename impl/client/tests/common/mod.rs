//! A loopback cluster for the client's tests: NameServers and brokers in this process on
//! 127.0.0.1 with OS-assigned ports and temporary directories, millisecond timings, and client
//! configurations that poll, heartbeat and commit in milliseconds.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_broker::BrokerConfig;
use sextant_client::admin::{Admin, TopicSpec, TopicTarget};
use sextant_client::{ClientConfig, MessageExt};
use sextant_model::namesrv::NamesrvConfig;

/// A NameServer on a free port.
pub async fn namesrv() -> sextant_namesrv::Running {
    sextant_namesrv::start("127.0.0.1:0".parse().unwrap(), NamesrvConfig::default())
        .await
        .unwrap()
}

/// A broker config with test timings.
pub fn broker_config(dir: &Path, name: &str, namesrv: SocketAddr) -> BrokerConfig {
    BrokerConfig {
        listen_port: 0,
        broker_name: name.into(),
        namesrv_addr: namesrv.to_string(),
        store_path_root_dir: dir.join(name),
        mapped_file_size_commit_log: 1 << 20,
        flush_consumer_offset_interval: 50,
        register_name_server_period: 1_000,
        channel_expired_timeout: 2_000,
        ..Default::default()
    }
}

/// A broker, registered at once.
pub async fn broker(config: BrokerConfig) -> sextant_broker::Running {
    let b = sextant_broker::start(config).await.unwrap();
    b.register_now().await;
    b
}

/// A client configuration for the cluster at `namesrv`, with millisecond timers.
pub fn client(namesrv: SocketAddr, instance: &str) -> ClientConfig {
    ClientConfig {
        namesrv_addr: namesrv.to_string(),
        instance_name: instance.into(),
        poll_name_server_interval: Duration::from_millis(200),
        heartbeat_broker_interval: Duration::from_millis(200),
        persist_consumer_offset_interval: Duration::from_millis(100),
        mq_client_api_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(1),
        pull_time_delay_when_exception: Duration::from_millis(50),
        ..Default::default()
    }
}

/// Create `topic` with `queues` queues on every broker of DefaultCluster.
pub async fn create_topic(namesrv: SocketAddr, topic: &str, queues: u32) {
    let admin = Admin::start(client(namesrv, "admin")).await.unwrap();
    let spec = TopicSpec {
        topic: topic.into(),
        queues,
        ..Default::default()
    };
    admin
        .create_topic(&spec, &TopicTarget::Cluster("DefaultCluster".into()))
        .await
        .unwrap();
    admin.shutdown().await;
}

/// Wait until `check` holds, at most `timeout`.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// What consumers received: per consumer id, the bodies in arrival order.
#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<BTreeMap<String, Vec<MessageExt>>>>);

impl Received {
    /// Record `msgs` for `who`.
    pub fn add(&self, who: &str, msgs: &[MessageExt]) {
        self.0
            .lock()
            .unwrap()
            .entry(who.to_owned())
            .or_default()
            .extend(msgs.iter().cloned());
    }

    /// Every body received, with how many times.
    pub fn bodies(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for msgs in self.0.lock().unwrap().values() {
            for m in msgs {
                *out.entry(String::from_utf8_lossy(&m.body).into_owned())
                    .or_default() += 1;
            }
        }
        out
    }

    /// The distinct bodies received.
    pub fn distinct(&self) -> BTreeSet<String> {
        self.bodies().into_keys().collect()
    }

    /// Total deliveries.
    pub fn total(&self) -> usize {
        self.bodies().values().sum()
    }
}
