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

use crt_tracer::node_files::{self, ContainerRecord};
use crt_tracer::record::{self, KIND_GAP};
use crt_tracer::render::parse_rfc3339_utc;
use crt_tracer::segment::{Gap, TraceReader};

use crate::live::Live;
use crate::stats::Stats;
use crate::store::{Store, Stream, StreamMeta};
use crate::tenants::Tenants;

/// Records read from one trace per turn.
const BUDGET: u64 = 32_768;
/// How often new traces are looked for, and the shims' files read again
/// (the catalog crtd answers from is at most this old).
const DISCOVER_EVERY: Duration = Duration::from_millis(250);
const SYNC_EVERY: Duration = Duration::from_secs(2);
const RETENTION_EVERY: Duration = Duration::from_secs(30);

struct Source {
    stream: Arc<Stream>,
    reader: TraceReader,
    owner: Option<String>,
    done: bool,
    /// The store failed to take this trace's records: when to try again,
    /// and how long to wait after that.
    retry: Option<(Instant, Duration)>,
}

/// The first retry after a failed store; doubled up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A reader of a stream's trace, where its checkpoint left off.
fn reader_at_checkpoint(stream: &Stream) -> TraceReader {
    let cp = stream.checkpoint();
    if cp.source_seq == 0 {
        TraceReader::open(&stream.meta.source)
    } else {
        TraceReader::open_at(&stream.meta.source, cp.source())
    }
}

/// The record that marks a gap in a stream's history (see [`KIND_GAP`]).
fn gap_record(g: &Gap) -> Vec<u8> {
    let ts = if g.ts_max > 0 {
        g.ts_max
    } else {
        crt_tracer::render::now_ns()
    };
    record::simple(
        KIND_GAP,
        ts,
        0,
        &[
            g.records,
            g.ts_min,
            g.ts_max,
            g.segments,
            u64::from(g.complete),
            0,
        ],
        b"",
    )
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
    /// The files of `ended/` already taken in (loaded from the store first).
    pub ended_seen: std::sync::Mutex<Option<std::collections::HashSet<String>>>,
    /// The shims' state files and trace metas, as last read.
    pub node: crate::catalog::NodeFiles,
}

impl Ingest {
    fn owner(&self, meta: &StreamMeta) -> Option<String> {
        self.tenants.owner_of(meta).map(str::to_string)
    }

    /// Takes in the records shims leave for containers they deleted (see
    /// the shim's `StateDir::retire`), each once. The files stay: the shims
    /// keep the newest few thousand, for every reader of the node.
    fn take_ended(&self) {
        let dir = self.traces_root.with_file_name(node_files::ENDED_DIR);
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        let mut seen = self
            .ended_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.is_none() {
            *seen = Some(self.store.ended.files());
        }
        let Some(seen) = seen.as_mut() else {
            return;
        };
        for name in &names {
            if seen.contains(name) {
                continue;
            }
            let Ok(rec) = node_files::read_json::<ContainerRecord>(&dir.join(name)) else {
                // Not a whole record: looked at again next time.
                continue;
            };
            match self.store.ended.add(name, rec) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    tracing::warn!("ingest: {}: {e}; skipped", dir.join(name).display());
                }
                // The store cannot take it now: tried again next time.
                Err(e) => {
                    if self.store.health.failed("ended containers", &e) {
                        tracing::warn!("ingest: cannot keep the end of a container: {e}");
                    }
                    return;
                }
            }
            seen.insert(name.clone());
        }
        // Only names that can come again need remembering.
        seen.retain(|n| names.binary_search(n).is_ok());
        self.store.health.recovered("ended containers");
    }

    /// Reads again the shims' files that changed: the catalog's source.
    pub fn read_node_files(&self) {
        if let Some(state_dir) = self.traces_root.parent() {
            self.node.rescan(state_dir);
        }
    }

    /// [`Ingest::read_node_files`], only if a shim wrote or removed a state
    /// file or started a trace since: what a request calls, so that a new
    /// container or a status change shows at once, and an unchanged node
    /// costs a few `stat`s.
    pub fn read_node_files_if_changed(&self) {
        if let Some(state_dir) = self.traces_root.parent() {
            if self.node.changed(state_dir) {
                self.node.rescan(state_dir);
            }
        }
    }

    /// Finds traces not yet followed.
    fn discover(&self, sources: &mut HashMap<PathBuf, Source>) {
        // State files before ended ones: a container deleted in between is
        // then seen twice for a moment, never missed.
        self.read_node_files();
        self.take_ended();
        let node = self.node.snapshot();
        for (dir, meta) in &node.traces {
            let instance = meta.created_ns;
            // A re-created container starts a new trace in the same directory.
            if let Some(s) = sources.get(dir) {
                if s.stream.meta.instance == instance {
                    continue;
                }
            }
            let sm = StreamMeta {
                namespace: meta.namespace.clone(),
                container: meta.container.clone(),
                instance,
                // Stored only where it can be believed, so nothing
                // downstream (pods, export, retention) sees a forgery.
                kubernetes: self
                    .tenants
                    .trusted_identity(&meta.namespace, meta.kubernetes.as_ref()),
                source: dir.clone(),
            };
            if self.store.is_retired(&crate::store::stream_id(&sm)) {
                continue;
            }
            let stream = match self.store.stream(sm) {
                Ok(s) => s,
                Err(e) => {
                    // Tried again at every discovery; said once.
                    if self.store.health.failed(&dir.to_string_lossy(), &e) {
                        tracing::warn!("ingest: {}: {e}", dir.display());
                    }
                    continue;
                }
            };
            self.store.health.recovered(&dir.to_string_lossy());
            let cp = stream.checkpoint();
            let reader = reader_at_checkpoint(&stream);
            let owner = self.owner(&stream.meta);
            sources.insert(
                dir.clone(),
                Source {
                    stream,
                    reader,
                    owner,
                    done: cp.ended,
                    retry: None,
                },
            );
        }
        // Traces deleted by the shims' own bound: nothing more will come.
        sources.retain(|dir, _| dir.join("meta.json").exists());
        // Troubles of traces or streams that are gone are over.
        self.store.health.forget_gone(|key| {
            if key.starts_with('/') {
                Path::new(key).join("meta.json").exists()
            } else {
                self.store.get(key).is_some()
            }
        });
    }

    /// One turn over every trace; returns how many records were stored.
    fn turn(&self, sources: &mut HashMap<PathBuf, Source>, batch: &mut Vec<u8>) -> u64 {
        let mut total = 0;
        let now = Instant::now();
        for src in sources.values_mut().filter(|s| !s.done) {
            match src.retry {
                Some((at, _)) if now < at => continue,
                // Whatever the failed append left half-written goes first.
                Some(_) => {
                    if let Err(e) = src.stream.rewind_to_checkpoint() {
                        self.store_failed(src, &e);
                        continue;
                    }
                }
                None => {}
            }
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
            // What the shim deleted before it was stored is marked where it
            // was: a reader's gap always comes before the records of its read.
            if let Some(g) = &status.gap {
                let marker = gap_record(g);
                batch.splice(0..0, marker);
            }
            let ends = match src.stream.append(
                batch,
                src.reader.position(),
                status.ended,
                status.segments_missed,
            ) {
                Ok(ends) => ends,
                Err(e) => {
                    self.store_failed(src, &e);
                    continue;
                }
            };
            if let Some(since) = self.store.health.recovered(&src.stream.id) {
                let secs = crt_tracer::render::now_ns().saturating_sub(since) / 1_000_000_000;
                tracing::debug!("ingest: storing {} again after {secs} s", src.stream.id);
            }
            src.retry = None;
            if let Some(g) = &status.gap {
                tracing::warn!(
                    "ingest: {}: {}{} events in {} segments were deleted by the shim before crtd stored them; marked in the history",
                    src.stream.id,
                    if g.complete { "" } else { "at least " },
                    g.records,
                    g.segments,
                );
            }
            self.stats.count(&src.stream.id, batch);
            self.live
                .publish(&src.stream, src.owner.as_deref(), batch, &ends);
            total += status.records;
            if status.ended && !status.more {
                src.done = true;
            }
        }
        self.stored.fetch_add(total, Ordering::Relaxed);
        total
    }

    /// The store refused a batch (a full disk, say). Nothing read is
    /// skipped: the stream goes back to its checkpoint and the trace is read
    /// again from there once the store takes records again, with a backoff
    /// between tries. Logged once per condition.
    fn store_failed(&self, src: &mut Source, e: &std::io::Error) {
        if self.store.health.failed(&src.stream.id, e) {
            tracing::error!(
                "ingest: cannot store events ({e}, first for {}); they stay in the shims' traces and are stored once the store takes them (retrying with backoff; see crtd_store_blocked_streams)",
                src.stream.id
            );
        } else {
            tracing::debug!("ingest: cannot store {}: {e}", src.stream.id);
        }
        src.reader = reader_at_checkpoint(&src.stream);
        let wait = match src.retry {
            None => RETRY_FIRST,
            Some((_, w)) => (w * 2).min(RETRY_MAX),
        };
        src.retry = Some((Instant::now() + wait, wait));
    }

    fn retention(&self) {
        self.store.prune_retired();
        let now = crt_tracer::render::now_ns();
        let forgot = self.store.ended.retain(|rec| {
            let ns = rec.namespace.as_str();
            let k8s = self.tenants.trusted_identity(ns, rec.kubernetes.as_ref());
            let age = self
                .tenants
                .owner(ns, k8s["namespace"].as_str())
                .and_then(|t| self.tenants.get(t))
                .map(|t| t.max_age)
                .unwrap_or(self.default_max_age);
            let ended = rec
                .exited
                .as_deref()
                .and_then(parse_rfc3339_utc)
                .unwrap_or(now);
            now.saturating_sub(ended) <= age.as_nanos() as u64
        });
        if let Err(e) = forgot {
            tracing::warn!("retention: ended containers: {e}");
        }
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
