//! Run ids: unique within the process, and increasing in the order a worker's runs start,
//! whichever runtime thread each run starts on.

use std::collections::HashSet;
use std::time::Duration;

use worker_core::{Host, Worker};

const WORKERS: usize = 8;
/// Runs each worker makes before the ids are read: the recent runs a worker keeps.
const RUNS: u64 = 20;

#[test]
fn run_ids_increase_per_worker_in_start_order_across_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let workers = (0..WORKERS).map(|i| {
            Worker::builder(format!("w{i}"))
                .every(Duration::from_millis(1))
                // Yields, so runs move between the runtime's threads.
                .handler(|| async { tokio::task::yield_now().await })
        });
        let host = Host::builder()
            .workers(workers)
            .config_env(Vec::<(String, String)>::new())
            .build()
            .unwrap();
        let handle = host.handle();
        let watcher = handle.clone();
        host.run_until(async move {
            loop {
                let done = watcher
                    .workers()
                    .iter()
                    .all(|w| w.runs.values().sum::<u64>() >= RUNS);
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        let mut seen = HashSet::new();
        for i in 0..WORKERS {
            let runs = handle.runs(&format!("w{i}")).unwrap();
            assert!(runs.len() >= 10, "w{i}: {} runs", runs.len());
            for pair in runs.windows(2) {
                assert!(
                    pair[0].run_id < pair[1].run_id,
                    "w{i}: run {} started before run {}",
                    pair[0].run_id,
                    pair[1].run_id
                );
                assert!(pair[0].started_at <= pair[1].started_at, "w{i}");
            }
            for run in &runs {
                assert!(seen.insert(run.run_id), "run id {} given twice", run.run_id);
            }
        }
    });
}
