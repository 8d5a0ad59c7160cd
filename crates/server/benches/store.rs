//! What durability costs: lines per second the history store accepts, per
//! sync policy, with one line per transaction (no group commit) and with
//! 64 lines per transaction (what a busy server's batch looks like).
//! Each batch is a real commit to a file in a temporary directory, so the
//! numbers include this machine's fsync.
//!
//! cargo bench -p udpchat-server --bench store -- --warm-up-time 1 --measurement-time 3

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use udpchat_chat::LineKind;
use udpchat_server::store::{Line, SqliteStore, Store, SyncPolicy};

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("store append");
    for (policy, name) in [(SyncPolicy::Full, "full"), (SyncPolicy::Normal, "normal")] {
        for batch in [1usize, 64] {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut store = SqliteStore::open(dir.path(), policy, None).expect("open store");
            let mut seq = 0u64;
            let text = "x".repeat(100);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(format!("sync={name}, {batch} line(s)/commit"), |b| {
                b.iter(|| {
                    let lines: Vec<Line> = (0..batch)
                        .map(|_| {
                            seq += 1;
                            Line {
                                room: udpchat_chat::LOBBY.into(),
                                seq,
                                time_ms: 0,
                                from: "bench".into(),
                                text: text.clone(),
                                kind: LineKind::Normal,
                                history: false,
                            }
                        })
                        .collect();
                    store.append(&mut lines.iter(), &mut std::iter::empty(), &[]).expect("append");
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
