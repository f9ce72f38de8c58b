//! Ingest: follows every trace the shims write and copies it into the
//! history store, feeding live subscribers and counters on the way.
//!
//! crtd only reads: a shim never waits for it, and a crtd that was down
//! catches up from each stream's checkpoint. One loop serves every trace
//! round-robin with a budget per turn, so a flooding container cannot starve
//! the others' ingestion.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crt_tracer::render::parse_rfc3339_utc;
use crt_tracer::segment::TraceReader;
use serde_json::Value;

use crate::live::Live;
use crate::stats::Stats;
use crate::store::{Store, Stream, StreamMeta};
use crate::tenants::Tenants;

/// Records read from one trace per turn.
const BUDGET: u64 = 32_768;
/// How often new traces are looked for.
const DISCOVER_EVERY: Duration = Duration::from_millis(250);
const SYNC_EVERY: Duration = Duration::from_secs(2);
const RETENTION_EVERY: Duration = Duration::from_secs(30);

struct Source {
    stream: Arc<Stream>,
    reader: TraceReader,
    owner: Option<String>,
    done: bool,
}

pub struct Ingest {
    pub store: Arc<Store>,
    pub live: Arc<Live>,
    pub stats: Arc<Stats>,
    pub tenants: Arc<Tenants>,
    pub traces_root: PathBuf,
    /// Events stored since start.
    pub stored: AtomicU64,
    pub default_max_age: Duration,
    pub default_max_bytes: u64,
    /// The OTLP exporter's counters, when one runs.
    pub export: Option<Arc<crate::otlp::ExportStats>>,
}

fn read_meta(dir: &Path) -> Option<Value> {
    serde_json::from_slice(&fs::read(dir.join("meta.json")).ok()?).ok()
}

impl Ingest {
    fn owner(&self, meta: &StreamMeta) -> Option<String> {
        self.tenants.owner_of(meta).map(str::to_string)
    }

    /// Finds traces not yet followed.
    fn discover(&self, sources: &mut HashMap<PathBuf, Source>) {
        let Ok(namespaces) = fs::read_dir(&self.traces_root) else {
            return;
        };
        for ns in namespaces.filter_map(|e| e.ok()) {
            let Ok(containers) = fs::read_dir(ns.path()) else {
                continue;
            };
            for c in containers.filter_map(|e| e.ok()) {
                let dir = c.path();
                let Some(meta) = read_meta(&dir) else {
                    continue;
                };
                let instance = meta["created"]
                    .as_str()
                    .and_then(parse_rfc3339_utc)
                    .unwrap_or(0);
                // A re-created container starts a new trace in the same directory.
                if let Some(s) = sources.get(&dir) {
                    if s.stream.meta.instance == instance {
                        continue;
                    }
                }
                let sm = StreamMeta {
                    namespace: meta["namespace"].as_str().unwrap_or_default().to_string(),
                    container: meta["container"].as_str().unwrap_or_default().to_string(),
                    instance,
                    kubernetes: meta["kubernetes"].clone(),
                    source: dir.clone(),
                };
                if self.store.is_retired(&crate::store::stream_id(&sm)) {
                    continue;
                }
                let stream = match self.store.stream(sm) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("ingest: {}: {e}", dir.display());
                        continue;
                    }
                };
                let cp = stream.checkpoint();
                let reader = if cp.source_seq == 0 {
                    TraceReader::open(&dir)
                } else {
                    TraceReader::open_at(&dir, cp.source())
                };
                let owner = self.owner(&stream.meta);
                sources.insert(
                    dir,
                    Source {
                        stream,
                        reader,
                        owner,
                        done: cp.ended,
                    },
                );
            }
        }
        // Traces deleted by the shims' own bound: nothing more will come.
        sources.retain(|dir, _| dir.join("meta.json").exists());
    }

    /// One turn over every trace; returns how many records were stored.
    fn turn(&self, sources: &mut HashMap<PathBuf, Source>, batch: &mut Vec<u8>) -> u64 {
        let mut total = 0;
        for src in sources.values_mut().filter(|s| !s.done) {
            batch.clear();
            let status = match src
                .reader
                .poll_limited(BUDGET, |rec, _| batch.extend_from_slice(rec.as_bytes()))
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("ingest: {}: {e}", src.stream.meta.source.display());
                    continue;
                }
            };
            if batch.is_empty() && status.segments_missed == 0 && !status.ended {
                continue;
            }
            if let Err(e) = src.stream.append(
                batch,
                src.reader.position(),
                status.ended,
                status.segments_missed,
            ) {
                tracing::error!("ingest: storing {}: {e}", src.stream.id);
                continue;
            }
            if status.segments_missed > 0 {
                tracing::warn!(
                    "ingest: {} segments of {} were deleted by the shim before crtd read them",
                    status.segments_missed,
                    src.stream.id
                );
            }
            self.stats.count(&src.stream.id, batch);
            self.live.publish(&src.stream, src.owner.as_deref(), batch);
            total += status.records;
            if status.ended && !status.more {
                src.done = true;
            }
        }
        self.stored.fetch_add(total, Ordering::Relaxed);
        total
    }

    fn retention(&self) {
        self.store.prune_retired();
        let streams = self.store.streams();
        let mut by_tenant: HashMap<Option<String>, Vec<Arc<Stream>>> = HashMap::new();
        for s in streams {
            by_tenant.entry(self.owner(&s.meta)).or_default().push(s);
        }
        for (tenant, streams) in by_tenant {
            let (age, bytes) = tenant
                .as_deref()
                .and_then(|t| self.tenants.get(t))
                .map(|t| (t.max_age, t.max_bytes))
                .unwrap_or((self.default_max_age, self.default_max_bytes));
            let freed = self.store.enforce_retention(&streams, age, bytes);
            if freed > 0 {
                tracing::info!(
                    "retention: freed {freed} bytes of {}",
                    tenant.as_deref().unwrap_or("containers of no tenant")
                );
            }
        }
    }

    /// Runs until `stop` is set.
    pub fn run(self: Arc<Self>, stop: Arc<AtomicBool>) {
        let mut sources: HashMap<PathBuf, Source> = HashMap::new();
        let mut batch = Vec::with_capacity(8 << 20);
        let mut last_discover = Instant::now() - DISCOVER_EVERY;
        let mut last_sync = Instant::now();
        let mut last_retention = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if last_discover.elapsed() >= DISCOVER_EVERY {
                self.discover(&mut sources);
                last_discover = Instant::now();
            }
            let n = self.turn(&mut sources, &mut batch);
            if last_sync.elapsed() >= SYNC_EVERY {
                self.store.sync();
                last_sync = Instant::now();
            }
            if last_retention.elapsed() >= RETENTION_EVERY {
                self.retention();
                last_retention = Instant::now();
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.store.sync();
    }
}
