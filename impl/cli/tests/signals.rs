//! Real process faults judged by the trace checker: a NameServer and two brokers run as
//! `sextant` child processes, each tracing to its own file (SEXTANT_TRACE); an in-process
//! producer and two push consumers trace to a fourth. While the producer sends, one broker gets
//! a real `kill -9` and is restarted on the same port and directory, and the other a real
//! SIGSTOP held past the NameServer's expiry, then SIGCONT. The merged trace must hold every
//! invariant, those this cluster exercises judged (the expiry and the restart really happened),
//! and every acknowledged message must have been delivered.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sextant_checks::trace::{DRAINED, Options, check_files};
use sextant_client::admin::{Admin, TopicSpec, TopicTarget};
use sextant_client::{
    ClientConfig, ConsumeFromWhere, ConsumeResult, Message, Producer, PushConsumer,
};
use sextant_trace::{Event, Sink, Tracer};

const TOPIC: &str = "SignalT";
const EXPIRY_MS: u64 = 1500;

/// A child process that cannot outlive the test: dropped (a panic included), it is continued
/// if stopped, killed and reaped.
struct Proc(Child);

impl Proc {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    fn stop(&mut self) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.0.try_wait().expect("wait").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} ignored SIGTERM for 10 s", self.0.id());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.0.id().to_string()])
                .status();
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn broker(
    ns: SocketAddr,
    name: &str,
    listen: &str,
    dir: &Path,
    trace: &Path,
) -> (Proc, SocketAddr) {
    let config = dir.join("broker.toml");
    // Heartbeats well inside the expiry, so only a stopped broker expires.
    std::fs::write(
        &config,
        "registerNameServerPeriod = 200\nflushIntervalCommitLog = 50\n",
    )
    .unwrap();
    let data = dir.join("store");
    let (child, addr) = common::spawn_with(
        &[
            "broker",
            "--namesrv",
            &ns.to_string(),
            "--listen",
            listen,
            "--name",
            name,
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            // Any free HA port: the listen port + 1 may be taken when it restarts.
            "--ha-port",
            "0",
        ],
        "broker",
        &[("SEXTANT_TRACE", trace.as_os_str())],
    );
    (Proc(child), addr)
}

fn client_config(ns: SocketAddr, instance: &str, tracer: &Tracer) -> ClientConfig {
    sextant_checks::scenario::run::client_config(&ns.to_string(), instance, tracer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_sigstop_on_real_processes_hold_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let traces = ["namesrv", "broker-a", "broker-b", "clients"]
        .map(|n| dir.path().join(format!("{n}.jsonl")));
    let (ns_child, ns) = common::spawn_with(
        &[
            "namesrv",
            "--listen",
            "127.0.0.1:0",
            "--broker-expiry-ms",
            &EXPIRY_MS.to_string(),
            "--scan-interval-ms",
            "100",
        ],
        "NameServer",
        &[("SEXTANT_TRACE", traces[0].as_os_str())],
    );
    let mut ns_child = Proc(ns_child);
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let (mut a, addr_a) = broker(ns, "broker-a", "127.0.0.1:0", &dir_a, &traces[1]);
    let (mut b, addr_b) = broker(ns, "broker-b", "127.0.0.1:0", &dir_b, &traces[2]);

    let sink = Sink::file(&traces[3]).unwrap();
    let tracer = sink.tracer("test");
    let admin = Admin::start(client_config(ns, "admin", &Tracer::off()))
        .await
        .unwrap();
    for addr in [addr_a, addr_b] {
        admin
            .create_topic(
                &TopicSpec {
                    topic: TOPIC.into(),
                    queues: 4,
                    ..Default::default()
                },
                &TopicTarget::Broker(addr.to_string()),
            )
            .await
            .unwrap();
    }
    admin.shutdown().await;

    let delivered: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut consumers = Vec::new();
    for name in ["c0", "c1"] {
        let seen = Arc::clone(&delivered);
        let c = PushConsumer::builder()
            .consumer_group("signal_cg")
            .client_config(client_config(ns, name, &tracer))
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .rebalance_interval(Duration::from_millis(200))
            .subscribe(TOPIC, "*")
            .start(move |msgs| {
                let seen = Arc::clone(&seen);
                async move {
                    let mut s = seen.lock().unwrap();
                    for m in &msgs {
                        s.insert(String::from_utf8_lossy(&m.body).into_owned());
                    }
                    ConsumeResult::Success
                }
            })
            .await
            .unwrap();
        consumers.push(c);
    }
    let producer = Arc::new(
        Producer::builder()
            .producer_group("signal_pg")
            .client_config(client_config(ns, "producer", &tracer))
            .send_msg_timeout(Duration::from_millis(400))
            .send_latency_fault_enable(true)
            .start()
            .await
            .unwrap(),
    );
    let sending = Arc::new(AtomicBool::new(true));
    let sender = tokio::spawn({
        let (producer, sending) = (Arc::clone(&producer), Arc::clone(&sending));
        async move {
            let mut acked = BTreeSet::new();
            let mut i = 0u64;
            while sending.load(Ordering::Relaxed) {
                let body = format!("m{i}");
                i += 1;
                if producer
                    .send(Message::new(TOPIC, body.clone()))
                    .await
                    .is_ok()
                {
                    acked.insert(body);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        }
    });

    // kill -9 broker-a, and restart it 500 ms later on the same port and store.
    tokio::time::sleep(Duration::from_millis(800)).await;
    a.signal("-KILL");
    a.0.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (a2, again) = broker(ns, "broker-a", &addr_a.to_string(), &dir_a, &traces[1]);
    a = a2;
    assert_eq!(again, addr_a);

    // SIGSTOP broker-b past the expiry: the NameServer drops it; SIGCONT brings it back.
    tokio::time::sleep(Duration::from_millis(800)).await;
    b.signal("-STOP");
    tokio::time::sleep(Duration::from_millis(EXPIRY_MS + 1000)).await;
    b.signal("-CONT");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    sending.store(false, Ordering::Relaxed);
    let acked = sender.await.unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) && !acked.is_subset(&delivered.lock().unwrap()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracer.emit(|| Event::Mark {
        label: DRAINED.into(),
    });
    for c in consumers {
        c.shutdown().await;
    }
    if let Ok(p) = Arc::try_unwrap(producer) {
        p.shutdown().await;
    }
    for child in [&mut a, &mut b, &mut ns_child] {
        child.stop();
    }

    let missing: Vec<_> = acked
        .difference(&delivered.lock().unwrap())
        .cloned()
        .collect();
    assert!(acked.len() > 200, "sends were sustained: {}", acked.len());
    assert!(
        missing.is_empty(),
        "{} acknowledged, never delivered: {missing:?}",
        missing.len()
    );

    let report = check_files(&traces, &Options::default()).unwrap();
    eprintln!("{report}");
    assert!(report.ok(), "{report}");
    assert!(report.nodes >= 6, "{report}");
    assert!(
        report.restarts >= 1,
        "broker-a's restart is in its trace: {report}"
    );
    for name in [
        "route_integrity",
        "expiry_bounded",
        "no_send_to_expired_broker",
        "queue_owned_once",
        "acked_not_lost",
        "ack_after_durable",
        "offsets_monotonic",
        "offset_not_past_unconsumed",
        "slave_read_only",
    ] {
        let v = report.verdict(name).unwrap();
        assert!(v.judged > 0, "{name} never judged: {report}");
    }
    // The kill and the stop were felt: attempts failed, and the NameServer expired broker-b.
    assert!(report.measured.failed_attempts > 0, "{report}");
    let ns_trace = std::fs::read_to_string(&traces[0]).unwrap();
    let b_expired = ns_trace
        .lines()
        .any(|l| l.contains("\"ev\":\"broker_expired\"") && l.contains(&format!("\"{addr_b}\"")));
    assert!(b_expired, "the stopped broker-b ({addr_b}) expired");
}
