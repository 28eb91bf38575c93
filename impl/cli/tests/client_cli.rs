//! Every client command of the `sextant` binary against `sextant standalone`, as processes on
//! 127.0.0.1 with OS-assigned ports: produce, consume, route, cluster, topic create / update /
//! list / status / delete, group, message (by id and by key), bench produce / consume with
//! their JSON summaries.

mod common;

use std::process::{Command, Output};

fn sextant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .env("RUST_LOG", "error")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run sextant")
}

fn ok(args: &[&str]) -> String {
    let out = sextant(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sextant {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn every_client_command_works_against_standalone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, ns) = common::standalone(dir.path(), &[]);
    let ns = ns.to_string();
    let n = ["--namesrv", ns.as_str()];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(n.iter()).map(|s| s.to_string()).collect()
    };
    let run = |args: &[&str]| -> String {
        let a = with(args);
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let created = run(&[
        "topic",
        "create",
        "--topic",
        "CliT",
        "--cluster",
        "DefaultCluster",
        "--queues",
        "3",
    ]);
    assert!(created.contains("topic CliT written on"), "{created}");
    run(&[
        "topic",
        "update",
        "--topic",
        "CliT",
        "--cluster",
        "DefaultCluster",
        "--queues",
        "4",
    ]);
    let route = run(&["route", "CliT"]);
    assert!(
        route.contains("broker-a") && route.contains(" 4 "),
        "{route}"
    );
    let route_json: serde_json::Value =
        serde_json::from_str(&run(&["route", "CliT", "--json"])).unwrap();
    assert_eq!(route_json["queueDatas"][0]["writeQueueNums"], 4);
    let cluster = run(&["cluster"]);
    assert!(
        cluster.contains("DefaultCluster") && cluster.contains("broker-a"),
        "{cluster}"
    );

    let produced = run(&[
        "produce",
        "--topic",
        "CliT",
        "--count",
        "20",
        "--tag",
        "TagA",
        "--key",
        "order-7",
        "--verbose",
    ]);
    assert!(produced.contains("sent 20, failed 0"), "{produced}");
    let first: Vec<&str> = produced
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let (msg_id, offset_id) = (first[0].to_owned(), first[1].to_owned());
    assert_eq!((msg_id.len(), offset_id.len()), (32, 32));
    // The broker's id names the store host and offset: VIEW_MESSAGE_BY_ID finds it.
    let shown = run(&["message", "--id", &offset_id]);
    assert!(
        shown.contains(&format!("msgId:        {msg_id}")),
        "{shown}"
    );
    assert!(
        shown.contains("topic:        CliT") && shown.contains("tags:         TagA"),
        "{shown}"
    );
    assert!(
        shown.contains("keys:         order-7") && shown.contains("body:         message-0"),
        "{shown}"
    );
    // The client's id, by the broker's index (QUERY_MESSAGE with the unique-key flag).
    let by_uniq = run(&["message", "--id", &msg_id, "--topic", "CliT"]);
    assert!(
        by_uniq.contains(&format!("offsetMsgId:  {offset_id}")),
        "{by_uniq}"
    );
    // By key: all 20 carry order-7; an unknown key is an error.
    let by_key = run(&["message", "--key", "order-7", "--topic", "CliT"]);
    assert_eq!(by_key.matches("msgId:").count(), 20, "{by_key}");
    let none = with(&["message", "--key", "no-such-key", "--topic", "CliT"]);
    assert!(
        !sextant(&none.iter().map(String::as_str).collect::<Vec<_>>())
            .status
            .success()
    );
    // Five first: the consumer takes no more than it prints, so what it did not print is not
    // committed and the group's next run gets it — together the runs see all 20.
    let ids = |out: &str| -> std::collections::BTreeSet<String> {
        out.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|w| w.len() == 32)
            .map(str::to_owned)
            .collect()
    };
    let consume = |count: &str, timeout: &str| {
        let a = with(&[
            "consume",
            "--topic",
            "CliT",
            "--group",
            "cli-g",
            "--count",
            count,
            "--from",
            "first",
            "--timeout",
            timeout,
            "--tag",
            "TagA",
        ]);
        let out = sextant(&a.iter().map(String::as_str).collect::<Vec<_>>());
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok5, first5) = consume("5", "20");
    assert!(
        ok5 && first5.contains("consumed 5, duplicates 0"),
        "{first5}"
    );
    let (_, rest) = consume("20", "4");
    let all: std::collections::BTreeSet<String> =
        ids(&first5).union(&ids(&rest)).cloned().collect();
    assert_eq!(
        all.len(),
        20,
        "none of the 20 is lost between runs:\n{first5}\n{rest}"
    );
    // Nothing more to consume: a count that cannot be reached exits non-zero at the timeout.
    let more = sextant(
        &with(&[
            "consume",
            "--topic",
            "CliT",
            "--group",
            "cli-g",
            "--count",
            "1",
            "--timeout",
            "2",
            "--quiet",
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(!more.status.success());
    assert!(String::from_utf8_lossy(&more.stdout).contains("consumed 0"));

    let topics = run(&["topic", "list"]);
    assert!(topics.lines().any(|l| l == "CliT"), "{topics}");
    let status = run(&["topic", "status", "--topic", "CliT", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let total: u64 = status
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["maxOffset"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 20);
    let group = run(&["group", "cli-g", "--topic", "CliT", "--json"]);
    let group: serde_json::Value = serde_json::from_str(&group).unwrap();
    let lag: u64 = group["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["lag"].as_u64().unwrap())
        .sum();
    assert_eq!(lag, 0, "the group consumed everything: {group}");

    let json = dir.path().join("produce.json");
    run(&[
        "bench",
        "produce",
        "--topic",
        "CliB",
        "--messages",
        "2000",
        "--size",
        "128",
        "--mode",
        "async",
        "--json",
        json.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in [
        "mode",
        "messages",
        "errors",
        "elapsed_s",
        "msgs_per_s",
        "mb_per_s",
    ] {
        assert!(!v[key].is_null(), "{key} in {v}");
    }
    assert_eq!(v["errors"], 0);
    assert!(v["messages"].as_u64().unwrap() >= 2000);
    for p in ["p50", "p99", "p999", "max"] {
        assert!(v["latency_us"][p].as_u64().unwrap() > 0, "{p} in {v}");
    }
    for mode in ["sync", "oneway"] {
        run(&[
            "bench",
            "produce",
            "--topic",
            "CliB",
            "--messages",
            "200",
            "--mode",
            mode,
            "--concurrency",
            "4",
        ]);
    }
    run(&[
        "bench",
        "produce",
        "--topic",
        "CliB",
        "--messages",
        "640",
        "--batch",
        "32",
        "--mode",
        "sync",
        "--concurrency",
        "2",
    ]);
    let cjson = dir.path().join("consume.json");
    run(&[
        "bench",
        "consume",
        "--topic",
        "CliB",
        "--messages",
        "2000",
        "--json",
        cjson.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cjson).unwrap()).unwrap();
    assert!(v["messages"].as_u64().unwrap() >= 2000, "{v}");
    assert!(
        v["first_message_ms"].as_f64().unwrap() < 1000.0,
        "the first message within 1 s: {v}"
    );

    let deleted = run(&["topic", "delete", "--topic", "CliB"]);
    assert!(deleted.contains("deleted"), "{deleted}");
    let gone = with(&["route", "CliB"]);
    assert!(
        !sextant(&gone.iter().map(String::as_str).collect::<Vec<_>>())
            .status
            .success(),
        "no route after delete"
    );
    let _ = server.kill();
    let _ = server.wait();
}
