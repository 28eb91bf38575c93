//! Replication over loopback (RocketMQ's classic HA): a NameServer, a master and, in two of the
//! three setups, a slave in this process.
//!
//! - `replication/send_in_flight/1KiB/{no_slave,async_master,sync_master}`: 64 sends of 1 KiB
//!   in flight over 4 connections, side by side in one run (the p50 and p99 of each, and for the
//!   ASYNC_MASTER the slave's lag behind the master sampled during the run, are printed first).
//!   A SYNC_MASTER acknowledges a send only once the slave reported holding it; all the sends
//!   waiting then are acknowledged by one report.
//! - `replication/catch_up/128MiB`: a new slave copying a master's 128 MiB CommitLog (8 MiB in a
//!   smoke run); throughput in bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_broker::{BrokerConfig, Running};
use sextant_model::namesrv::NamesrvConfig;
use sextant_remoting::code::{request, response};
use sextant_remoting::ext::CommandHeader;
use sextant_remoting::header::SendMessageRequestHeaderV2;
use sextant_remoting::transport::Connection;
use sextant_remoting::{FrameCodec, RemotingCommand};
use tokio::runtime::Runtime;

const T: Duration = Duration::from_secs(30);

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn rt() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn config(dir: &std::path::Path, ns: SocketAddr, role: &str, id: i64) -> BrokerConfig {
    BrokerConfig {
        listen_port: 0,
        ha_listen_port: Some(0),
        namesrv_addr: ns.to_string(),
        store_path_root_dir: dir.to_owned(),
        broker_role: role.into(),
        broker_id: id,
        register_name_server_period: 200,
        ha_send_heartbeat_interval: 200,
        ..Default::default()
    }
}

struct Setup {
    _dirs: Vec<tempfile::TempDir>,
    ns: sextant_namesrv::Running,
    master: Running,
    slave: Option<Running>,
    conns: Vec<Connection>,
}

/// A NameServer, a master with `role`, and a slave unless `role` is `None`, connected.
fn setup(rt: &Runtime, role: Option<&str>) -> Setup {
    rt.block_on(async {
        let ns = sextant_namesrv::start("127.0.0.1:0".parse().unwrap(), NamesrvConfig::default())
            .await
            .expect("a NameServer");
        let dirs = vec![tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let master = sextant_broker::start(config(
            dirs[0].path(),
            ns.local_addr,
            role.unwrap_or("ASYNC_MASTER"),
            0,
        ))
        .await
        .expect("a master");
        let slave = match role {
            None => None,
            Some(_) => {
                let s = sextant_broker::start(config(dirs[1].path(), ns.local_addr, "SLAVE", 1))
                    .await
                    .expect("a slave");
                while master.broker.slaves_connected() == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Some(s)
            }
        };
        let mut conns = Vec::new();
        for _ in 0..4 {
            conns.push(
                Connection::connect(master.local_addr, FrameCodec::default(), None)
                    .await
                    .expect("connects"),
            );
        }
        Setup {
            _dirs: dirs,
            ns,
            master,
            slave,
            conns,
        }
    })
}

fn send_req(queue: i32) -> RemotingCommand {
    let h = SendMessageRequestHeaderV2 {
        g: 1_700_000_000_000,
        ..SendMessageRequestHeaderV2::new("bench", "Repl", queue)
    };
    RemotingCommand::request(request::SEND_MESSAGE_V2, 0)
        .with_ext(h.to_ext())
        .with_body(vec![b'x'; 1024])
}

/// 64 tasks over the 4 connections, `per_task` sends each; the wall time and every latency.
fn in_flight(rt: &Runtime, conns: &[Connection], per_task: u64) -> (Duration, Vec<Duration>) {
    let conns = conns.to_vec();
    rt.block_on(async move {
        let start = Instant::now();
        let mut hs = Vec::new();
        for t in 0..64 {
            let conn = conns[t % conns.len()].clone();
            hs.push(tokio::spawn(async move {
                let req = send_req((t % 4) as i32);
                let mut lat = Vec::with_capacity(per_task as usize);
                for _ in 0..per_task {
                    let s = Instant::now();
                    let r = conn.invoke(req.clone(), T).await.expect("answers");
                    assert_eq!(r.code, response::SUCCESS, "{:?}", r.remark);
                    lat.push(s.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for h in hs {
            all.extend(h.await.expect("task"));
        }
        (start.elapsed(), all)
    })
}

fn sends(c: &mut Criterion) {
    let rt = rt();
    let setups: Vec<(&str, Setup)> = [
        ("no_slave", None),
        ("async_master", Some("ASYNC_MASTER")),
        ("sync_master", Some("SYNC_MASTER")),
    ]
    .into_iter()
    .map(|(name, role)| (name, setup(&rt, role)))
    .collect();
    let per_task = if measuring() { 500 } else { 5 };
    for (name, s) in &setups {
        // The slave's lag behind the master, sampled every millisecond during the run.
        let sampling = Arc::new(AtomicBool::new(true));
        let lags = s.slave.as_ref().map(|slave| {
            let (m, sl) = (Arc::clone(&s.master.broker), Arc::clone(&slave.broker));
            let on = Arc::clone(&sampling);
            std::thread::spawn(move || {
                let mut v = Vec::new();
                while on.load(Ordering::Relaxed) {
                    let lag = m
                        .store()
                        .log_offsets()
                        .1
                        .saturating_sub(sl.store().replica_end());
                    v.push(lag);
                    std::thread::sleep(Duration::from_millis(1));
                }
                v
            })
        });
        let (wall, mut lat) = in_flight(&rt, &s.conns, per_task);
        sampling.store(false, Ordering::Relaxed);
        lat.sort();
        let n = lat.len();
        print!(
            "replication/{name}: {n} sends of 1 KiB, 64 in flight: {:.0} msgs/s, p50 {:?}, p99 {:?}",
            n as f64 / wall.as_secs_f64(),
            lat[n / 2],
            lat[n * 99 / 100]
        );
        match lags.map(|h| h.join().expect("sampler")) {
            Some(mut l) if !l.is_empty() => {
                l.sort();
                println!(
                    "; slave lag p50 {} B, p99 {} B, max {} B",
                    l[l.len() / 2],
                    l[l.len() * 99 / 100],
                    l[l.len() - 1]
                );
            }
            _ => println!(),
        }
    }
    let mut g = c.benchmark_group("replication");
    g.throughput(Throughput::Elements(64));
    for (name, s) in &setups {
        g.bench_function(BenchmarkId::new("send_in_flight/1KiB", name), |b| {
            b.iter_custom(|iters| in_flight(&rt, &s.conns, iters).0)
        });
    }
    g.finish();
    for (_, s) in setups {
        rt.block_on(async {
            if let Some(sl) = s.slave {
                sl.shutdown().await;
            }
            s.master.shutdown().await;
            s.ns.shutdown().await;
        });
    }
}

fn catch_up(c: &mut Criterion) {
    let rt = rt();
    let s = setup(&rt, None);
    let mib: u64 = if measuring() { 128 } else { 8 };
    // Fill the master: `mib` MiB of 1 KiB messages (each record ~1.1 KiB).
    let per_task = mib * 1024 * 1024 / 1100 / 64;
    in_flight(&rt, &s.conns, per_task);
    let bytes = s.master.broker.store().log_offsets().1;
    let ha = s.master.broker.ha_addr().expect("an HA port").to_string();
    let mut g = c.benchmark_group("replication");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(BenchmarkId::new("catch_up", format!("{mib}MiB")), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                total += rt.block_on(async {
                    let start = Instant::now();
                    let slave = sextant_broker::start(BrokerConfig {
                        ha_master_address: Some(ha.clone()),
                        ..config(dir.path(), s.ns.local_addr, "SLAVE", 1)
                    })
                    .await
                    .expect("a slave");
                    while slave.broker.store().replica_end() < bytes {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let took = start.elapsed();
                    slave.shutdown().await;
                    took
                });
            }
            total
        })
    });
    g.finish();
    rt.block_on(async {
        s.master.shutdown().await;
        s.ns.shutdown().await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = sends, catch_up
}
criterion_main!(benches);
