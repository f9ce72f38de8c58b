//! crtd's history: every event the shims recorded, kept on the node.
//!
//! One *stream* per container instance (`streams/<namespace>/<id>/<created>/`)
//! holds append-only chunk files of event records (the shim's own binary
//! record format, so nothing is re-encoded). Every chunk is summarised in
//! blocks of up to [`BLOCK_RECORDS`] records — time range, syscall set,
//! kinds — kept in memory, so a query reads only the blocks that can match.
//! A checkpoint per stream ties what was stored to where the shim's trace
//! was read, so a crtd that was killed resumes without loss or duplicates.

mod chunk;
mod ended;
pub mod query;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crt_tracer::record;
use crt_tracer::segment::Position;
use serde::{Deserialize, Serialize};

pub use chunk::ChunkIndex;
pub use ended::EndedLog;
pub use query::{Cursor, Filter, Order};

/// A chunk is sealed (and a new one started) at this size.
pub const CHUNK_BYTES: u64 = 8 << 20;

/// What a stream is: one container instance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamMeta {
    pub namespace: String,
    pub container: String,
    /// When the container's trace was created (ns since the epoch): tells
    /// apart two containers that used the same id.
    pub instance: u64,
    /// The Kubernetes identity CRI wrote (namespace, pod, ...), or null.
    #[serde(default)]
    pub kubernetes: serde_json::Value,
    /// The shim's trace directory this stream copies.
    pub source: PathBuf,
}

/// Where ingest stands for a stream: written after the data it covers.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoint {
    pub source_seq: u64,
    pub source_offset: u64,
    pub chunk: u64,
    pub chunk_len: u64,
    /// The source ended (every traced process exited) and all of it is stored.
    #[serde(default)]
    pub ended: bool,
    /// Segments the shim deleted (its own bound) before they were read.
    #[serde(default)]
    pub missed_segments: u64,
}

impl Checkpoint {
    pub fn source(&self) -> Position {
        Position {
            seq: self.source_seq,
            offset: self.source_offset,
        }
    }
}

pub struct Stream {
    pub id: String,
    pub meta: StreamMeta,
    dir: PathBuf,
    pub(crate) chunks: RwLock<Vec<Arc<ChunkIndex>>>,
    appender: Mutex<chunk::Appender>,
    checkpoint: Mutex<Checkpoint>,
    /// Appended to since the last sync (an idle stream costs nothing to sync).
    dirty: std::sync::atomic::AtomicBool,
    /// When crtd began storing this stream (ns since the epoch): a live stream resumed
    /// from a position taken earlier replays a stream begun since then from its start.
    pub stored_since: u64,
}

/// Where a stream's records are: `(chunk, offset)`. The position just past a record
/// is where a reader continues after it.
pub type StorePos = (u64, u64);

fn private_dir(p: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
}

/// Writes `value` as JSON to `path`, whole and 0600 (only crtd reads what
/// it stores; see [`crt_tracer::node_files::write_private`]).
pub(crate) fn write_json_atomic(path: &Path, value: &impl Serialize) -> io::Result<()> {
    crt_tracer::node_files::write_private(path, &serde_json::to_vec(value)?)
}

/// An exclusive hold on something only one crtd may use (its store, its
/// socket): a lock file that names the holder's pid, so that the one refused
/// can say who has it. Released when dropped (or when the holder dies).
pub struct PidLock {
    _file: fs::File,
}

impl PidLock {
    /// Takes the lock file `path`; `what` says what it guards, for the error.
    pub fn take(path: &Path, what: &str) -> io::Result<PidLock> {
        use std::io::{Read, Seek};
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(err);
            }
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another crtd".to_string()
            } else {
                format!("crtd pid {holder}")
            };
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{what} is already in use by {who} (lock {}); one crtd each: stop that one first",
                    path.display()
                ),
            ));
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(PidLock { _file: file })
    }
}

impl Stream {
    fn create(root: &Path, meta: StreamMeta) -> io::Result<Stream> {
        let id = stream_id(&meta);
        let dir = root.join(&id);
        private_dir(&dir)?;
        write_json_atomic(&dir.join("stream.json"), &meta)?;
        let appender = chunk::Appender::create(&dir, 1)?;
        let first = appender.index();
        let s = Stream {
            id,
            meta,
            dir,
            chunks: RwLock::new(vec![first]),
            appender: Mutex::new(appender),
            checkpoint: Mutex::new(Checkpoint {
                chunk: 1,
                ..Default::default()
            }),
            dirty: Default::default(),
            stored_since: crt_tracer::render::now_ns(),
        };
        s.write_checkpoint()?;
        Ok(s)
    }

    /// Reopens a stream, dropping anything written after its last checkpoint.
    fn open(dir: &Path, id: String) -> io::Result<Stream> {
        let meta_file = dir.join("stream.json");
        let meta: StreamMeta = serde_json::from_slice(&fs::read(&meta_file)?)?;
        // stream.json is written once, when the stream is created.
        let stored_since = fs::metadata(&meta_file)?
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let cp: Checkpoint = match fs::read(dir.join("checkpoint")) {
            Ok(b) => serde_json::from_slice(&b)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Checkpoint::default(),
            Err(e) => return Err(e),
        };
        let mut seqs = chunk::list(dir)?;
        // Chunks past the checkpoint's hold nothing acknowledged.
        for &s in seqs.iter().filter(|&&s| s > cp.chunk && cp.chunk > 0) {
            let _ = fs::remove_file(chunk::data_path(dir, s));
            let _ = fs::remove_file(chunk::index_path(dir, s));
        }
        seqs.retain(|&s| cp.chunk == 0 || s <= cp.chunk);
        let mut chunks = Vec::new();
        let last = seqs.last().copied();
        for &s in &seqs {
            if Some(s) == last {
                break;
            }
            chunks.push(Arc::new(chunk::load_sealed(dir, s)?));
        }
        let open_seq = last.unwrap_or(1).max(cp.chunk.max(1));
        let appender = chunk::Appender::reopen(dir, open_seq, cp.chunk_len)?;
        chunks.push(appender.index());
        let cp = Checkpoint {
            chunk: open_seq,
            chunk_len: appender.len(),
            ..cp
        };
        Ok(Stream {
            id,
            meta,
            dir: dir.to_path_buf(),
            chunks: RwLock::new(chunks),
            appender: Mutex::new(appender),
            checkpoint: Mutex::new(cp),
            dirty: Default::default(),
            stored_since,
        })
    }

    pub fn checkpoint(&self) -> Checkpoint {
        *self.checkpoint.lock().unwrap()
    }

    fn write_checkpoint(&self) -> io::Result<()> {
        let cp = *self.checkpoint.lock().unwrap();
        write_json_atomic(&self.dir.join("checkpoint"), &cp)
    }

    /// Appends whole records read from the source, then records that the
    /// source has been read up to `next` (and whether it ended). Returns where
    /// each record ends in the store, in order.
    pub fn append(
        &self,
        records: &[u8],
        next: Position,
        ended: bool,
        missed: u64,
    ) -> io::Result<Vec<StorePos>> {
        let mut app = self.appender.lock().unwrap();
        let mut ends = Vec::new();
        let mut rest = records;
        while !rest.is_empty() {
            let len = record::record_len(rest)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            if app.len() >= CHUNK_BYTES {
                let sealed = app.seal()?;
                let next_app = chunk::Appender::create(&self.dir, sealed.seq + 1)?;
                let mut chunks = self.chunks.write().unwrap();
                if let Some(last) = chunks.last_mut() {
                    *last = Arc::new(sealed);
                }
                chunks.push(next_app.index());
                *app = next_app;
            }
            app.push(&rest[..len])?;
            ends.push((app.seq(), app.len()));
            rest = &rest[len..];
        }
        app.flush()?;
        // The checkpoint goes to disk before anything believes it: if it
        // cannot be written, the stream rewinds to the one before.
        let old = self.checkpoint();
        let cp = Checkpoint {
            source_seq: next.seq,
            source_offset: next.offset,
            chunk: app.seq(),
            chunk_len: app.len(),
            ended: old.ended | ended,
            missed_segments: old.missed_segments + missed,
        };
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        write_json_atomic(&self.dir.join("checkpoint"), &cp)?;
        *self
            .checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = cp;
        // Publish the open chunk's new blocks to readers.
        let mut chunks = self.chunks.write().unwrap();
        if let Some(last) = chunks.last_mut() {
            *last = app.index();
        }
        Ok(ends)
    }

    /// Puts the stream back where its checkpoint says, after a failed
    /// append: what the failure left half-written in the open chunk (or in
    /// a chunk it started) is cut away, so the source can be read again from
    /// the checkpoint and stored exactly once.
    pub fn rewind_to_checkpoint(&self) -> io::Result<()> {
        let cp = self.checkpoint();
        let mut app = self
            .appender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut chunks = self
            .chunks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while chunks.len() > 1 && chunks.last().is_some_and(|c| c.seq > cp.chunk) {
            if let Some(c) = chunks.pop() {
                let _ = fs::remove_file(chunk::data_path(&self.dir, c.seq));
                let _ = fs::remove_file(chunk::index_path(&self.dir, c.seq));
            }
        }
        let reopened = chunk::Appender::reopen(&self.dir, cp.chunk, cp.chunk_len)?;
        // The chunk is open again: a sealed index of it no longer holds.
        let _ = fs::remove_file(chunk::index_path(&self.dir, cp.chunk));
        if let Some(last) = chunks.last_mut() {
            *last = reopened.index();
        }
        *app = reopened;
        Ok(())
    }

    /// Forces stored data and the checkpoint to disk.
    pub fn sync(&self) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let synced = self
            .appender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sync()
            .and_then(|()| self.write_checkpoint());
        if synced.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        synced
    }

    /// Nothing more will be written: the trace ended, or is gone from the node.
    pub fn finished(&self) -> bool {
        self.checkpoint().ended || !self.meta.source.join("meta.json").exists()
    }

    pub fn bytes(&self) -> u64 {
        self.chunks.read().unwrap().iter().map(|c| c.len).sum()
    }

    pub fn events(&self) -> u64 {
        self.chunks.read().unwrap().iter().map(|c| c.count).sum()
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes the oldest sealed chunks while `keep` says no; returns bytes freed.
    fn drop_chunks_while(&self, mut drop_it: impl FnMut(&ChunkIndex) -> bool) -> u64 {
        let mut freed = 0;
        let mut chunks = self.chunks.write().unwrap();
        while chunks.len() > 1 && drop_it(&chunks[0]) {
            let c = chunks.remove(0);
            let _ = fs::remove_file(chunk::data_path(&self.dir, c.seq));
            let _ = fs::remove_file(chunk::index_path(&self.dir, c.seq));
            freed += c.len;
        }
        freed
    }
}

/// `<namespace>/<container>/<instance>`: ids and namespaces are containerd
/// identifiers (no `/`), checked again by [`Store::stream`].
pub fn stream_id(meta: &StreamMeta) -> String {
    format!("{}/{}/{}", meta.namespace, meta.container, meta.instance)
}

fn safe_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
}

/// Whether the store can write: streams whose last append or sync failed,
/// with the error, and failures counted since start. A condition is logged
/// when it starts and when it ends, not at every retry.
#[derive(Default)]
pub struct StoreHealth {
    pub failures: std::sync::atomic::AtomicU64,
    blocked: Mutex<BTreeMap<String, (String, u64)>>,
}

impl StoreHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, u64)>> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stream `id` could not be written; true when this starts a condition
    /// for the store as a whole (nothing was failing this way before): a
    /// full disk is one line in the log, however many streams wait.
    pub fn failed(&self, id: &str, error: &io::Error) -> bool {
        self.failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text = error.to_string();
        let mut b = self.lock();
        let new_condition = !b.values().any(|(e, _)| *e == text);
        if b.get(id).is_none_or(|(e, _)| *e != text) {
            b.insert(id.to_string(), (text, crt_tracer::render::now_ns()));
        }
        new_condition
    }

    /// Stream `id` was written: when its trouble began, if it had any. The
    /// end of the whole condition (nothing in trouble any more) is logged
    /// here, once, whichever stream or path ends it.
    pub fn recovered(&self, id: &str) -> Option<u64> {
        let mut b = self.lock();
        if b.is_empty() {
            return None;
        }
        let since = b.remove(id).map(|(_, since)| since)?;
        if b.is_empty() {
            Self::over(since);
        }
        Some(since)
    }

    fn over(since: u64) {
        let secs = crt_tracer::render::now_ns().saturating_sub(since) / 1_000_000_000;
        tracing::info!(
            "store: the store takes events again (after {secs} s); every trace catches up from the shim's"
        );
    }

    /// Why stream `id` is not being stored, and since when (ns).
    pub fn blocked(&self, id: &str) -> Option<(String, u64)> {
        self.lock().get(id).cloned()
    }

    pub fn blocked_streams(&self) -> usize {
        self.lock().len()
    }

    /// Forgets the troubles of things `exists` says are gone (a trace that
    /// failed to become a stream, then was deleted): nobody will retry them.
    pub fn forget_gone(&self, exists: impl Fn(&str) -> bool) {
        let mut b = self.lock();
        let Some(since) = b.values().map(|(_, since)| *since).min() else {
            return;
        };
        b.retain(|k, _| exists(k));
        if b.is_empty() {
            Self::over(since);
        }
    }
}

pub struct Store {
    _lock: PidLock,
    pub health: StoreHealth,
    /// Containers that are gone: how and when each ended.
    pub ended: EndedLog,
    root: PathBuf,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Streams retention deleted whole, by id, with the trace they came
    /// from: that trace is not taken in again while it exists.
    retired: Mutex<BTreeMap<String, PathBuf>>,
    retired_file: PathBuf,
}

impl Store {
    /// Opens (or creates) the store under `dir`, reloading every stream.
    pub fn open(dir: &Path) -> io::Result<Store> {
        private_dir(dir)?;
        let lock = PidLock::take(&dir.join("lock"), &format!("the store {}", dir.display()))?;
        let root = dir.join("streams");
        private_dir(&root)?;
        let mut streams = BTreeMap::new();
        for ns in fs::read_dir(&root)?.filter_map(|e| e.ok()) {
            for c in fs::read_dir(ns.path())?.filter_map(|e| e.ok()) {
                for inst in fs::read_dir(c.path())?.filter_map(|e| e.ok()) {
                    let id = format!(
                        "{}/{}/{}",
                        ns.file_name().to_string_lossy(),
                        c.file_name().to_string_lossy(),
                        inst.file_name().to_string_lossy()
                    );
                    match Stream::open(&inst.path(), id.clone()) {
                        Ok(s) => {
                            streams.insert(id, Arc::new(s));
                        }
                        Err(e) => tracing::error!("store: cannot open stream {id}: {e}; skipped"),
                    }
                }
            }
        }
        let retired_file = dir.join("retired.json");
        let retired = match fs::read(&retired_file) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(
                    "store: {} is unreadable ({e}); starting it afresh",
                    retired_file.display()
                );
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Ok(Store {
            _lock: lock,
            health: StoreHealth::default(),
            ended: EndedLog::open(dir)?,
            root,
            streams: RwLock::new(streams),
            retired: Mutex::new(retired),
            retired_file,
        })
    }

    /// Retention deleted this stream's history: its trace is not taken in again.
    pub fn is_retired(&self, id: &str) -> bool {
        self.retired.lock().unwrap().contains_key(id)
    }

    /// Forgets retired streams whose trace is gone from the node.
    pub fn prune_retired(&self) {
        let mut r = self.retired.lock().unwrap();
        let before = r.len();
        r.retain(|_, source| source.join("meta.json").exists());
        if r.len() != before {
            let _ = write_json_atomic(&self.retired_file, &*r);
        }
    }

    /// The stream for a container instance, created on first use.
    pub fn stream(&self, meta: StreamMeta) -> io::Result<Arc<Stream>> {
        if !safe_component(&meta.namespace) || !safe_component(&meta.container) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{:?}/{:?} is not a container name",
                    meta.namespace, meta.container
                ),
            ));
        }
        let id = stream_id(&meta);
        if let Some(s) = self.streams.read().unwrap().get(&id) {
            return Ok(Arc::clone(s));
        }
        let mut streams = self.streams.write().unwrap();
        if let Some(s) = streams.get(&id) {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(Stream::create(&self.root, meta)?);
        streams.insert(id, Arc::clone(&s));
        Ok(s)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Stream>> {
        self.streams.read().unwrap().get(id).cloned()
    }

    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.read().unwrap().values().cloned().collect()
    }

    /// Applies a retention policy to a set of streams (one tenant's): events
    /// older than `max_age`, then the oldest beyond `max_bytes`. The chunk
    /// being written is kept. Returns the bytes freed.
    pub fn enforce_retention(
        &self,
        streams: &[Arc<Stream>],
        max_age: Duration,
        max_bytes: u64,
    ) -> u64 {
        let now_ns = crt_tracer::render::now_ns();
        let horizon = now_ns.saturating_sub(max_age.as_nanos() as u64);
        let mut freed = 0;
        // Each stream, and whether nothing more will be written to it
        // (asked once: it looks at the trace on disk).
        let mut live: Vec<(Arc<Stream>, bool)> = Vec::new();
        for s in streams {
            let finished = s.finished();
            if finished {
                // Nothing more will be written: its last chunk may go too,
                // and with it the whole stream.
                let newest = s.chunks.read().unwrap().iter().map(|c| c.ts_max).max();
                if newest.is_none_or(|t| t < horizon) {
                    freed += self.remove_stream(s);
                    continue;
                }
            }
            freed += s.drop_chunks_while(|c| c.count == 0 || c.ts_max < horizon);
            live.push((Arc::clone(s), finished));
        }
        let mut total: u64 = live.iter().map(|(s, _)| s.bytes()).sum();
        while total > max_bytes {
            // The stream whose oldest chunk is oldest gives it up; the chunk
            // a stream is still being written to stays.
            let oldest = live
                .iter()
                .filter_map(|(s, finished)| {
                    let chunks = s.chunks.read().unwrap();
                    let first = chunks.first()?;
                    (chunks.len() > 1 || *finished).then(|| (first.ts_min, Arc::clone(s)))
                })
                .min_by_key(|(ts, _)| *ts);
            let Some((_, s)) = oldest else {
                break;
            };
            let f = if s.chunks.read().unwrap().len() == 1 {
                live.retain(|(x, _)| !Arc::ptr_eq(x, &s));
                self.remove_stream(&s)
            } else {
                let mut once = true;
                s.drop_chunks_while(|_| std::mem::take(&mut once))
            };
            if f == 0 {
                break;
            }
            freed += f;
            total = total.saturating_sub(f);
        }
        freed
    }

    /// Deletes a stream whole (it is not taken in again); returns its bytes.
    fn remove_stream(&self, s: &Arc<Stream>) -> u64 {
        let bytes = s.bytes().max(1);
        self.streams.write().unwrap().remove(&s.id);
        let _ = fs::remove_dir_all(s.dir());
        let mut r = self.retired.lock().unwrap();
        r.insert(s.id.clone(), s.meta.source.clone());
        if let Err(e) = write_json_atomic(&self.retired_file, &*r) {
            tracing::warn!("store: cannot record {} as deleted: {e}", s.id);
        }
        bytes
    }

    /// Forces every stream to disk.
    pub fn sync(&self) {
        for s in self.streams() {
            match s.sync() {
                Err(e) => {
                    if self.health.failed(&s.id, &e) {
                        tracing::warn!("store: sync {}: {e}", s.id);
                    }
                }
                Ok(()) => {
                    self.health.recovered(&s.id);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
