//! The remoting codecs: route bodies (2 and 128 brokers, both key styles), a typical send
//! request's header (JSON and binary) and whole frame, and a pull response of 32 × 1 KiB
//! messages.

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_benches::{pull_body, route, send_request};
use sextant_remoting::command::{RemotingCommand, SerializeType};
use sextant_remoting::frame::{DEFAULT_MAX_FRAME, decode_frame, encode_frame};
use sextant_remoting::message::decode_batch;
use sextant_remoting::route::{KeyStyle, decode_route, encode_route};
use std::hint::black_box;

fn routes(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    for brokers in [2usize, 128] {
        let r = route(brokers, 8);
        for (style, name) in [
            (KeyStyle::Quoted, "quoted"),
            (KeyStyle::Unquoted, "unquoted"),
        ] {
            let body = encode_route(&r, style);
            g.throughput(Throughput::Bytes(body.len() as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("decode_{name}"), brokers),
                &body,
                |b, body| b.iter(|| decode_route(black_box(body)).expect("decodes")),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("encode_{name}"), brokers),
                &r,
                |b, r| b.iter(|| encode_route(black_box(r), style)),
            );
        }
    }
    g.finish();
}

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_header");
    g.throughput(Throughput::Elements(1));
    for (ty, name) in [
        (SerializeType::Json, "json"),
        (SerializeType::RocketMq, "binary"),
    ] {
        let mut cmd = send_request(0);
        cmd.serialize_type = ty;
        let mut header = Vec::new();
        cmd.encode_header(&mut header).expect("encodes");
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut out = Vec::with_capacity(512);
            b.iter(|| {
                out.clear();
                black_box(&cmd).encode_header(&mut out).expect("encodes");
            })
        });
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| {
                RemotingCommand::decode_header(ty, black_box(&header), bytes::Bytes::new())
                    .expect("decodes")
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("send_frame_1KiB");
    for (ty, name) in [
        (SerializeType::Json, "json"),
        (SerializeType::RocketMq, "binary"),
    ] {
        let mut cmd = send_request(1024);
        cmd.serialize_type = ty;
        let mut frame = BytesMut::new();
        encode_frame(&cmd, &mut frame, DEFAULT_MAX_FRAME).expect("encodes");
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut out = BytesMut::with_capacity(4096);
            b.iter(|| {
                out.clear();
                encode_frame(black_box(&cmd), &mut out, DEFAULT_MAX_FRAME).expect("encodes");
            })
        });
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| {
                let mut buf = frame.clone();
                decode_frame(&mut buf, DEFAULT_MAX_FRAME).expect("decodes")
            })
        });
    }
    g.finish();
}

fn messages(c: &mut Criterion) {
    let mut g = c.benchmark_group("pull_batch");
    let body = pull_body(32, 1024);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("decode_32x1KiB", |b| {
        b.iter(|| {
            let (ms, err) = decode_batch(black_box(&body));
            assert!(err.is_none());
            ms.len()
        })
    });
    g.finish();
}

criterion_group!(benches, routes, headers, messages);
criterion_main!(benches);
