//! Watcher latency benchmark: `cargo run --release --example watch_latency [SAVES]`.
//!
//! Runs the engine on a temporary folder (watcher on, periodic rescan off), saves a file every
//! 300 ms and measures the time from the save returning to the file's new version being in the
//! index. Prints the median, 90th percentile and maximum.

use std::time::{Duration, Instant};

use peerfold::config::{Config, FolderConfig};
use peerfold::db::Index;
use peerfold::engine::Engine;
use peerfold::identity::DeviceId;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let saves: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(30);
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("folder");
    std::fs::create_dir(&root)?;
    for i in 0..1000 {
        std::fs::write(root.join(format!("existing-{i}")), b"x")?;
    }
    let mut config = Config::default();
    config.options.rescan_interval_s = 0;
    config.folders.push(FolderConfig {
        watch: Some(true),
        ..FolderConfig::new("bench".parse()?, root.canonicalize()?)
    });
    let index = Index::open(&dir.path().join("index.db")).await?;
    let folder = index.register_folder("bench").await?;
    let engine = Engine::start(&config, index.clone(), DeviceId::from_bytes([1; 32]));
    // Let the start-up scan finish.
    while index.local_file(folder, "existing-999").await?.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut latencies = Vec::with_capacity(saves);
    for i in 0..saves {
        let name = format!("saved-{i}.txt");
        let content = format!("save number {i}\n");
        std::fs::write(root.join(&name), &content)?;
        let saved = Instant::now();
        loop {
            if let Some(f) = index.local_file(folder, &name).await?
                && f.size == content.len() as u64
            {
                break;
            }
            if saved.elapsed() > Duration::from_secs(30) {
                return Err(format!("{name} never reached the index").into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(saved.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    engine.shutdown().await;
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "saved file → index, {saves} saves: median {:.0} ms, p90 {:.0} ms, max {:.0} ms (debounce {} ms)",
        ms(latencies[saves / 2]),
        ms(latencies[saves * 9 / 10]),
        ms(latencies[saves - 1]),
        config.options.watch_delay_ms
    );
    Ok(())
}
