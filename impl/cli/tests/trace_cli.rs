//! Tracing through the binary, as processes on 127.0.0.1: `sextant standalone`, `produce` and
//! `consume` append to one trace file (SEXTANT_TRACE), and `sextant check --trace FILE --drained`
//! judges it: every invariant it can judge holds, and it did judge them. A trace with a route
//! listing a broker that never registered makes the same command fail with the violation.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn sextant(args: &[&str], trace: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sextant"));
    cmd.args(args)
        .env("RUST_LOG", "error")
        .env_remove("SEXTANT_TRACE");
    if let Some(t) = trace {
        cmd.env("SEXTANT_TRACE", t);
    }
    cmd.output().expect("run sextant")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The number of checks a verdict line reports, e.g. `held (12 checks)`.
fn checks_of(report: &str, name: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no line for {name}: {report}"));
    assert!(line.contains("held ("), "{line}");
    line.split('(')
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_traced_standalone_run_is_judged_by_check_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("run.jsonl");
    let (mut server, ns) = common::standalone(
        &dir.path().join("data"),
        &[("SEXTANT_TRACE", trace.as_os_str())],
    );
    let ns = ns.to_string();
    let produced = sextant(
        &[
            "produce",
            "--namesrv",
            &ns,
            "--topic",
            "TraceT",
            "--count",
            "200",
        ],
        Some(&trace),
    );
    assert!(produced.status.success(), "{}", text(&produced));
    let consumed = sextant(
        &[
            "consume",
            "--namesrv",
            &ns,
            "--topic",
            "TraceT",
            "--group",
            "tg",
            "--count",
            "200",
            "--from",
            "first",
            "--quiet",
        ],
        Some(&trace),
    );
    assert!(consumed.status.success(), "{}", text(&consumed));
    let _ = server.kill();
    let _ = server.wait();

    let checked = sextant(
        &["check", "--trace", trace.to_str().unwrap(), "--drained"],
        None,
    );
    let report = text(&checked);
    eprintln!("{report}");
    assert!(checked.status.success(), "{report}");
    assert!(checks_of(&report, "route_integrity") >= 2, "{report}");
    assert!(
        checks_of(&report, "no_send_to_expired_broker") >= 200,
        "{report}"
    );
    assert!(checks_of(&report, "queue_owned_once") >= 1, "{report}");
    assert_eq!(checks_of(&report, "acked_not_lost"), 1, "{report}");
    assert!(report.contains("acknowledged 200"), "{report}");
    assert!(report.contains("undelivered at end 0"), "{report}");
}

#[test]
fn check_trace_fails_on_a_route_listing_an_unregistered_broker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let lines = [
        r#"{"v":1,"node":"namesrv@n","seq":1,"ts":1,"ev":"namesrv_started","expiry":120000,"scan":5000,"now":0}"#,
        r#"{"v":1,"node":"namesrv@n","seq":2,"ts":2,"ev":"route_served","topic":"T","route":{"brokers":[{"cluster":"C","name":"a","addrs":[{"id":0,"addr":"127.0.0.1:1"}]}],"queues":[{"broker":"a","read":4,"write":4,"perm":6}]},"now":5}"#,
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = sextant(&["check", "--trace", path.to_str().unwrap()], None);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("route_integrity              VIOLATED 1 of 1"),
        "{report}"
    );
    assert!(report.contains("listed but not registered"), "{report}");
    // Garbage is an error, not a verdict.
    std::fs::write(&path, "not json\n").unwrap();
    let out = sextant(&["check", "--trace", path.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(text(&out).contains("line 1"), "{}", text(&out));
}
