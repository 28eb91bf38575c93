//! `sextant broker` (one broker until Ctrl-C or SIGTERM) and `sextant standalone` (a NameServer
//! and broker `broker-a` in one process, the embedded default a new user starts with).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use sextant_broker::BrokerConfig;
use sextant_model::namesrv::NamesrvConfig;

use crate::namesrv::shutdown_signal;

/// Arguments of `sextant broker`. Flags override the config file.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// NameServers, separated by `;` (RocketMQ's `namesrvAddr`).
    #[arg(long)]
    namesrv: Option<String>,
    /// Where to listen (and what to advertise); port 0 picks a free one.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The broker name (`brokerName`).
    #[arg(long)]
    name: Option<String>,
    /// The cluster (`brokerClusterName`).
    #[arg(long)]
    cluster: Option<String>,
    /// The broker id (`brokerId`): 0 = master.
    #[arg(long)]
    id: Option<i64>,
    /// The store directory (`storePathRootDir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `flushDiskType`: ASYNC_FLUSH or SYNC_FLUSH.
    #[arg(long)]
    flush: Option<String>,
    /// `brokerRole`: ASYNC_MASTER, SYNC_MASTER or SLAVE.
    #[arg(long)]
    role: Option<String>,
    /// `haListenPort`: where a master takes its slaves (default: the listen port + 1).
    #[arg(long)]
    ha_port: Option<u16>,
    /// `haMasterAddress`: the master's HA address a slave follows (default: what the
    /// NameServer answers its registration with).
    #[arg(long)]
    ha_master: Option<String>,
    /// A TOML file with RocketMQ's key names (flushDiskType, brokerRole, autoCreateTopicEnable, ...).
    #[arg(long)]
    config: Option<PathBuf>,
}

impl Args {
    /// The configuration: the file's (or the defaults), then the flags.
    pub fn broker_config(&self) -> anyhow::Result<BrokerConfig> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                BrokerConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => BrokerConfig::default(),
        };
        if let Some(v) = &self.namesrv {
            c.namesrv_addr = v.clone();
        }
        if let Some(a) = self.listen {
            c.broker_ip1 = a.ip();
            c.listen_port = a.port();
        }
        if let Some(v) = &self.name {
            c.broker_name = v.clone();
        }
        if let Some(v) = &self.cluster {
            c.broker_cluster_name = v.clone();
        }
        if let Some(v) = self.id {
            c.broker_id = v;
            if v != 0 && self.role.is_none() {
                c.broker_role = "SLAVE".into();
            }
        }
        if let Some(v) = &self.data_dir {
            c.store_path_root_dir = v.clone();
        }
        if let Some(v) = &self.flush {
            c.flush_disk_type = v.clone();
        }
        if let Some(v) = &self.role {
            c.broker_role = v.clone();
        }
        if let Some(v) = self.ha_port {
            c.ha_listen_port = Some(v);
        }
        if let Some(v) = &self.ha_master {
            c.ha_master_address = Some(v.clone());
        }
        c.settings()?;
        Ok(c)
    }
}

/// Run `sextant broker` until Ctrl-C or SIGTERM.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let config = args.broker_config()?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let running = sextant_broker::start_traced(config, crate::tracer()).await?;
        eprintln!("broker listening on {}", running.local_addr);
        shutdown_signal().await;
        tracing::info!("stopping");
        running.shutdown().await;
        Ok(())
    })
}

/// Arguments of `sextant standalone`.
#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// The store directory (broker-a's store in `broker-a/`, its slave's in `broker-a-slave/`).
    #[arg(long, default_value = "./sextant-data")]
    data_dir: PathBuf,
    /// Where the NameServer listens.
    #[arg(long, default_value = "127.0.0.1:9876")]
    namesrv_listen: SocketAddr,
    /// Where broker-a listens (its HA port for slaves is the next one).
    #[arg(long, default_value = "127.0.0.1:10911")]
    broker_listen: SocketAddr,
    /// `flushDiskType` of broker-a: ASYNC_FLUSH or SYNC_FLUSH.
    #[arg(long, default_value = "ASYNC_FLUSH")]
    flush: String,
    /// `brokerRole` of broker-a: ASYNC_MASTER or SYNC_MASTER.
    #[arg(long, default_value = "ASYNC_MASTER")]
    role: String,
    /// Also start a slave of broker-a (brokerId 1), replicating from the master's HA port.
    /// Type `stop` (or `start`) and Enter to stop (or start again) the master and watch
    /// consumers fail over to the slave and back.
    #[arg(long)]
    with_slave: bool,
    /// Where the slave listens.
    #[arg(long, default_value = "127.0.0.1:10921")]
    slave_listen: SocketAddr,
}

impl StandaloneArgs {
    fn master_config(&self, namesrv: SocketAddr) -> BrokerConfig {
        BrokerConfig {
            namesrv_addr: namesrv.to_string(),
            broker_ip1: self.broker_listen.ip(),
            listen_port: self.broker_listen.port(),
            store_path_root_dir: self.data_dir.join("broker-a"),
            flush_disk_type: self.flush.clone(),
            broker_role: self.role.clone(),
            auto_create_topic_enable: true,
            ..Default::default()
        }
    }

    fn slave_config(&self, namesrv: SocketAddr) -> BrokerConfig {
        BrokerConfig {
            broker_id: 1,
            broker_role: "SLAVE".into(),
            broker_ip1: self.slave_listen.ip(),
            listen_port: self.slave_listen.port(),
            store_path_root_dir: self.data_dir.join("broker-a-slave"),
            ..self.master_config(namesrv)
        }
    }
}

/// Run `sextant standalone` until Ctrl-C or SIGTERM.
pub fn run_standalone(args: &StandaloneArgs) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(async {
        let ns = sextant_namesrv::start_traced(args.namesrv_listen, NamesrvConfig::default(), crate::tracer()).await?;
        let mut master = Some(start_master(args, ns.local_addr).await?);
        let slave = match args.with_slave {
            false => None,
            true => {
                let slave = sextant_broker::start_traced(args.slave_config(ns.local_addr), crate::tracer()).await?;
                slave.register_now().await;
                Some(slave)
            }
        };
        eprintln!("NameServer listening on {}", ns.local_addr);
        if let Some(m) = &master {
            describe("broker-a (master, brokerId 0)", m);
        }
        if let Some(s) = &slave {
            describe("broker-a (slave, brokerId 1)", s);
            eprintln!(
                "type `stop` + Enter to stop the master (consumers read the slave), `start` to start it again"
            );
        }
        eprintln!("ready: point any RocketMQ client at {}", ns.local_addr);
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
        let signal = shutdown_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => break,
                line = lines.next_line(), if slave.is_some() => match line {
                    Ok(Some(l)) if l.trim() == "stop" => match master.take() {
                        Some(m) => {
                            m.shutdown().await;
                            eprintln!("master stopped: producers to broker-a get errors, consumers read the slave");
                        }
                        None => eprintln!("the master is already stopped"),
                    },
                    Ok(Some(l)) if l.trim() == "start" => match master {
                        Some(_) => eprintln!("the master is already running"),
                        None => {
                            let m = start_master(args, ns.local_addr).await?;
                            describe("broker-a (master, brokerId 0) is back", &m);
                            master = Some(m);
                        }
                    },
                    Ok(Some(l)) if !l.trim().is_empty() => eprintln!("`stop` or `start`"),
                    Ok(Some(_)) => {}
                    // No terminal: keep running until a signal.
                    Ok(None) | Err(_) => std::future::pending::<()>().await,
                },
            }
        }
        tracing::info!("stopping");
        if let Some(s) = slave {
            s.shutdown().await;
        }
        if let Some(m) = master {
            m.shutdown().await;
        }
        ns.shutdown().await;
        Ok(())
    })
}

async fn start_master(
    args: &StandaloneArgs,
    namesrv: SocketAddr,
) -> anyhow::Result<sextant_broker::Running> {
    let broker = sextant_broker::start_traced(args.master_config(namesrv), crate::tracer()).await?;
    // Register at once so that routes exist before the first client asks.
    broker.register_now().await;
    Ok(broker)
}

fn describe(what: &str, b: &sextant_broker::Running) {
    match b.broker.ha_addr() {
        Some(ha) => eprintln!("{what} listening on {}, HA port {ha}", b.local_addr),
        None => eprintln!("{what} listening on {}", b.local_addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.toml");
        std::fs::write(
            &path,
            "brokerName = \"from-file\"\nflushDiskType = \"SYNC_FLUSH\"\nautoCreateTopicEnable = false\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "broker",
            "--config",
            path.to_str().unwrap(),
            "--name",
            "from-flag",
            "--listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        let c = cli.args.broker_config().unwrap();
        assert_eq!(c.broker_name, "from-flag");
        assert_eq!(c.flush_disk_type, "SYNC_FLUSH");
        assert!(!c.auto_create_topic_enable);
        assert_eq!(c.listen_port, 0);
        let cli = Cli::try_parse_from(["broker", "--id", "1"]).unwrap();
        assert_eq!(cli.args.broker_config().unwrap().broker_role, "SLAVE");
        let cli = Cli::try_parse_from(["broker", "--flush", "NEVER"]).unwrap();
        assert!(cli.args.broker_config().is_err());
    }
}
