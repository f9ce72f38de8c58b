//! Tracing a container: the listener socket the runtime hands seccomp fds
//! to (`TraceHub`), and per container a `TraceSession` — its notify loops,
//! its queue and its storage thread.

mod cpu_cgroup;
pub mod exits;
mod join;
pub mod notify_loop;
pub mod queue;
mod retention;
mod writer;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::keeper;
use crt_config::node::TraceConfig;
use crt_seccomp_notify::handoff::{self, HandoffSocket};
use crt_seccomp_notify::listener::same_file;
use crt_seccomp_notify::NotifyListener;
use crt_tracer::latency::{Histogram, Snapshot};
use crt_tracer::record::{self, RecordBuilder, KIND_LOG, KIND_PROCESS};
use crt_tracer::render::now_ns;
use crt_tracer::segment::{Limits, SegmentWriter};

use exits::ExitProbe;
use notify_loop::{read_comm, SyscallSet};
use queue::EventQueue;

/// How long a runtime may take to send its whole hand-off message.
const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything needed to start recording a container.
pub struct SessionOptions<'a> {
    pub namespace: &'a str,
    pub container: &'a str,
    pub dir: PathBuf,
    /// Where every trace of the node lives (`<state_dir>/traces`).
    pub traces_root: PathBuf,
    /// The syscalls to record.
    pub syscalls: Vec<String>,
    pub config: &'a TraceConfig,
    /// Written to `meta.json` beside the segments.
    pub meta: crt_tracer::node_files::TraceMeta,
    /// Where results are recorded: the shim's syscall-exit probe.
    pub exits: Option<Arc<ExitProbe>>,
}

pub struct TraceSession {
    pub namespace: String,
    pub container: String,
    pub dir: PathBuf,
    queue: EventQueue,
    wanted: SyscallSet,
    sync_wakeup: bool,
    state: Mutex<SessionState>,
    changed: Condvar,
    /// One notify round-trip histogram per listener thread.
    latency: Mutex<Vec<Arc<Histogram>>>,
    /// Notify threads that panicked or could not be started (their
    /// listeners were still served, see `serve`); reported in the trace
    /// beside the drops.
    notify_failures: AtomicU64,
    /// The syscall-exit probe, when results are recorded.
    exits: Option<Arc<ExitProbe>>,
}

#[derive(Default)]
struct SessionState {
    listeners: Vec<Arc<NotifyListener>>,
    active: usize,
    seen_init: bool,
    init_exited: bool,
    closing: bool,
    writer_done: bool,
    /// Output streams still feeding the log.
    taps: usize,
}

/// Creates `dir` and its missing parents, private to root.
fn private_dirs(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// What the container writes goes into its trace beside its syscalls
/// (through the same bounded queue: a chatty container drops and counts).
impl crate::stdio::LineSink for TraceSession {
    fn line(&self, stream: u8, line: &[u8], cut: bool) {
        let mut buf =
            Vec::with_capacity(record::HEADER_LEN + record::CAPTURE_HEADER_LEN + line.len());
        let mut b = RecordBuilder::begin(
            &mut buf,
            KIND_LOG,
            now_ns(),
            0,
            0,
            0,
            &[u64::from(stream), u64::from(cut), 0, 0, 0, 0],
        );
        b.bytes(0, line, cut);
        b.finish();
        self.queue.push(&buf);
    }

    fn opened(&self) {
        self.state().taps += 1;
    }

    fn closed(&self) {
        self.state().taps -= 1;
        self.queue.kick();
    }
}

impl TraceSession {
    /// Prepares the trace directory (a container re-created under the same
    /// id starts a fresh trace) and starts the storage thread.
    pub fn start(opts: SessionOptions<'_>) -> io::Result<Arc<TraceSession>> {
        if opts.dir.exists() {
            fs::remove_dir_all(&opts.dir)?;
        }
        private_dirs(&opts.dir)?;
        // Whole or not at all: a reader of a half-written meta.json would
        // take the trace for another one, or for one without a shim.
        crt_tracer::node_files::write_private(
            &opts.dir.join(crt_tracer::node_files::META_FILE),
            &serde_json::to_vec_pretty(&opts.meta)?,
        )?;
        let segments = SegmentWriter::create(
            &opts.dir,
            Limits {
                segment_bytes: opts.config.segment_bytes,
                max_bytes: opts.config.max_trace_bytes,
            },
        )?;
        let session = Arc::new(TraceSession {
            namespace: opts.namespace.to_string(),
            container: opts.container.to_string(),
            dir: opts.dir,
            queue: EventQueue::new(opts.config.queue_bytes as usize),
            wanted: SyscallSet::new(&opts.syscalls),
            sync_wakeup: opts.config.sync_wakeup,
            state: Mutex::new(SessionState::default()),
            changed: Condvar::new(),
            latency: Mutex::new(Vec::new()),
            notify_failures: AtomicU64::new(0),
            exits: opts.exits,
        });
        let for_writer = Arc::clone(&session);
        std::thread::Builder::new()
            .name(format!("trace-{}", short(&session.container)))
            .spawn(move || writer::run(for_writer, segments))?;
        // Keep the node's trace store bounded, off the Create path.
        let root = opts.traces_root;
        let max_total = opts.config.max_total_bytes;
        let _ = std::thread::Builder::new()
            .name("trace-retention".into())
            .spawn(move || {
                for d in retention::enforce(&root, max_total) {
                    log::info!(
                        "deleted the trace {} to keep the trace store within trace.max_total_bytes",
                        d.display()
                    );
                }
            });
        Ok(session)
    }

    /// The session's bookkeeping. A notify thread that panicked holding the
    /// lock must not take every other thread down with it: each update is a
    /// few plain field writes, consistent whenever the lock is free.
    fn state(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notify threads that panicked or could not be started so far.
    pub fn notify_failures(&self) -> u64 {
        self.notify_failures.load(Ordering::Relaxed)
    }

    /// Starts serving a listener the runtime handed over for process `pid`;
    /// `slot` is its slot with the keeper, if the keeper holds a copy.
    pub fn serve(self: &Arc<Self>, listener: NotifyListener, pid: i64, slot: Option<keeper::Slot>) {
        let listener = Arc::new(listener);
        let init = {
            let mut st = self.state();
            if let Some(existing) = st.listeners.iter().find(|l| same_file(*l, &*listener)) {
                // The same filter twice: the copy we already serve keeps it
                // alive, so dropping this one cannot fail any syscall.
                log::warn!(
                    "container {}: the runtime handed over the same listener twice (pid {pid}); serving it once (fd {})",
                    self.container,
                    std::os::fd::AsRawFd::as_raw_fd(&**existing)
                );
                return;
            }
            st.listeners.push(Arc::clone(&listener));
            st.active += 1;
            let init = !st.seen_init;
            st.seen_init = true;
            init
        };
        if self.sync_wakeup {
            if let Err(e) = listener.set_sync_wakeup() {
                log::debug!("synchronous wake-ups unavailable ({e}); using plain wake-ups");
            }
        }
        // crun reports pid 0 for execs: the process is then recorded without one.
        let pid = u32::try_from(pid).unwrap_or(0);
        let comm = if pid > 0 {
            read_comm(pid)
        } else {
            *b"?\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
        };
        log::info!(
            "container {}: serving the seccomp listener of {} (pid {pid})",
            self.container,
            if init { "its init" } else { "an exec" }
        );
        self.queue.push(&record::simple(
            KIND_PROCESS,
            now_ns(),
            pid,
            &[u64::from(init), 0, 0, 0, 0, 0],
            &comm,
        ));
        let me = Arc::clone(self);
        let for_thread = Arc::clone(&listener);
        let spawned = std::thread::Builder::new()
            .name(format!("notify-{pid}"))
            .spawn(move || me.run_listener(&for_thread, pid, slot));
        if let Err(e) = spawned {
            // No thread for this listener. Closing it would fail every
            // notified syscall of the process with ENOSYS, and leaving it
            // open unserved would block them forever; so the calling thread
            // (the hand-off thread of this one listener, which has nothing
            // else to do) serves it itself, recording as usual, and does the
            // same bookkeeping at the end as a notify thread would. Retrying
            // the spawn instead would leave the process blocked meanwhile.
            // (The keeper slot went with the failed closure: the keeper still
            // holds the listener, it just cannot see the notification in hand.)
            self.notify_failures.fetch_add(1, Ordering::Relaxed);
            log::error!(
                "container {}: cannot start a notify thread for pid {pid}: {e}; serving its listener on the hand-off thread",
                self.container
            );
            self.run_listener(&listener, pid, None);
        }
    }

    /// Serves one listener until no process uses it, then lets storage know.
    fn run_listener(&self, listener: &Arc<NotifyListener>, pid: u32, slot: Option<keeper::Slot>) {
        let own = AtomicU64::new(0);
        let unanswered = slot.as_ref().map_or(&own, keeper::Slot::word);
        let latency = Arc::new(Histogram::default());
        self.latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&latency));
        let served = notify_loop::serve_guarded(
            listener,
            &self.wanted,
            Some(&self.queue),
            Some(&latency),
            self.exits.as_deref(),
            unanswered,
        );
        if served.panicked {
            self.notify_failures.fetch_add(1, Ordering::Relaxed);
        }
        log::debug!(
            "container {} listener for pid {pid} done: {served:?}",
            self.container
        );
        let mut st = self.state();
        st.listeners.retain(|l| !Arc::ptr_eq(l, listener));
        st.active -= 1;
        drop(st);
        self.changed.notify_all();
        self.queue.kick();
    }

    /// The container's init exited: once its listeners close, the trace ends.
    pub fn init_exited(&self) {
        self.state().init_exited = true;
        self.queue.kick();
    }

    /// Storage may write END: no process is left to notify us.
    fn finished(&self) -> bool {
        let st = self.state();
        // Lines still in the output pipes belong before the end; Delete
        // (closing) does not wait for a stream someone else holds open.
        st.active == 0 && ((st.init_exited && st.taps == 0) || st.closing)
    }

    /// The notify round trips of every listener so far.
    fn latency(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for h in self
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            h.add_to(&mut s);
        }
        s
    }

    fn writer_done(&self) {
        self.state().writer_done = true;
        self.changed.notify_all();
    }

    /// Ends the trace (at Delete); waits up to `wait` for storage to finish.
    /// Listeners that still have processes keep being served regardless.
    pub fn close(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut st = self.state();
        st.closing = true;
        self.queue.kick();
        while !st.writer_done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The shim's listener socket and the sessions it hands fds to.
#[derive(Default)]
pub struct TraceHub {
    sessions: Mutex<HashMap<String, Arc<TraceSession>>>,
    socket: Mutex<Option<PathBuf>>,
}

impl TraceHub {
    /// The listener socket path, binding it and starting its accept thread
    /// on first use.
    pub fn listener_path(self: &Arc<Self>, dir: &Path, name: &str) -> io::Result<PathBuf> {
        let mut socket = self.socket.lock().unwrap();
        if let Some(p) = socket.as_ref() {
            return Ok(p.clone());
        }
        let path = dir.join(format!("{name}.sock"));
        let bound = HandoffSocket::bind(&path)?;
        // Started now, before any traced container runs, rather than when
        // its first listener arrives and its init is waiting to be served.
        keeper::get();
        let hub = Arc::clone(self);
        std::thread::Builder::new()
            .name("listener-accept".into())
            .spawn(move || hub.accept_loop(bound))?;
        *socket = Some(path.clone());
        Ok(path)
    }

    /// Removes the listener socket file (at shim exit).
    pub fn remove_socket(&self) {
        if let Some(p) = self.socket.lock().unwrap().take() {
            let _ = fs::remove_file(p);
        }
    }

    pub fn register(&self, session: Arc<TraceSession>) {
        self.sessions
            .lock()
            .unwrap()
            .insert(session.container.clone(), session);
    }

    pub fn remove(&self, container: &str) -> Option<Arc<TraceSession>> {
        self.sessions.lock().unwrap().remove(container)
    }

    pub fn get(&self, container: &str) -> Option<Arc<TraceSession>> {
        self.sessions.lock().unwrap().get(container).cloned()
    }

    fn accept_loop(self: Arc<Self>, socket: HandoffSocket) {
        loop {
            match socket.accept() {
                Ok(stream) => {
                    // A failed spawn drops its closure and with it the
                    // connection, whose queued message may carry a listener:
                    // a second handle on the socket keeps it for handling here.
                    let kept = stream.try_clone();
                    let hub = Arc::clone(&self);
                    let spawned = std::thread::Builder::new()
                        .name("listener-handoff".into())
                        .spawn(move || hub.handle(stream));
                    if let Err(e) = spawned {
                        log::error!("cannot start a thread for a listener hand-off: {e}; handling it on the accept thread");
                        match kept {
                            Ok(stream) => self.handle(stream),
                            Err(e) => log::error!("the listener hand-off is lost: {e}"),
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!(
                        "listener socket {}: accept failed: {e}",
                        socket.path().display()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn handle(&self, stream: UnixStream) {
        match handoff::receive(&stream, HANDOFF_TIMEOUT) {
            Ok(h) => {
                let id = if h.state.state.id.is_empty() {
                    h.state.metadata.clone().unwrap_or_default()
                } else {
                    h.state.state.id.clone()
                };
                let listener = match NotifyListener::new(h.seccomp_fd) {
                    Ok(l) => l,
                    Err(e) => {
                        log::error!(
                            "container {id}: the runtime's seccompFd is not a seccomp listener ({e}); ignored"
                        );
                        return;
                    }
                };
                // First of all a copy to the keeper: from now on a crash
                // of the shim cannot fail this process's syscalls.
                let slot = keeper::get().and_then(|k| k.hold(&listener));
                match self.get(&id) {
                    Some(session) => session.serve(listener, h.state.pid, slot),
                    None => {
                        log::error!(
                            "a runtime handed over a listener for unknown container {id:?}; serving it without recording so its syscalls continue"
                        );
                        serve_unrecorded(listener, slot);
                    }
                }
            }
            Err(e) => {
                log::error!("{e}; the message is ignored");
                for fd in e.into_fds() {
                    // A real listener must never be dropped while in use.
                    if let Ok(l) = NotifyListener::new(fd) {
                        log::error!("the refused message carried a seccomp listener; serving it without recording");
                        let slot = keeper::get().and_then(|k| k.hold(&l));
                        serve_unrecorded(l, slot);
                    }
                }
            }
        }
    }
}

/// Continues every syscall of a listener we cannot account to a container.
fn serve_unrecorded(listener: NotifyListener, slot: Option<keeper::Slot>) {
    let listener = Arc::new(listener);
    let for_thread = Arc::clone(&listener);
    let serve = move |slot: Option<keeper::Slot>| {
        let own = AtomicU64::new(0);
        let unanswered = slot.as_ref().map_or(&own, keeper::Slot::word);
        notify_loop::serve_guarded(
            &for_thread,
            &SyscallSet::none(),
            None,
            None,
            None,
            unanswered,
        );
    };
    let spawned = std::thread::Builder::new()
        .name("notify-orphan".into())
        .spawn(move || serve(slot));
    if let Err(e) = spawned {
        // As in TraceSession::serve: serve it here rather than close it.
        log::error!(
            "cannot start a notify thread: {e}; serving the listener on the hand-off thread"
        );
        let own = AtomicU64::new(0);
        notify_loop::serve_guarded(&listener, &SyscallSet::none(), None, None, None, &own);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crt_seccomp_notify::testutil::spawn_traced_reporting;
    use crt_tracer::record::KIND_DROPS;
    use crt_tracer::segment::TraceReader;
    use notify_loop::tests::{open_dev_null_repeatedly, OPENS};
    use std::os::fd::AsFd;

    #[test]
    fn a_notify_thread_that_panics_keeps_the_child_correct_and_is_counted_in_the_trace() {
        let dir = tempfile::tempdir().unwrap();
        let config = TraceConfig::default();
        let session = TraceSession::start(SessionOptions {
            namespace: "ns",
            container: "c1",
            dir: dir.path().join("traces/ns/c1"),
            traces_root: dir.path().join("traces"),
            syscalls: vec!["openat".into()],
            config: &config,
            meta: Default::default(),
            exits: None,
        })
        .unwrap();
        // serve() pushes the process record first; the 10th push is an openat.
        session.queue.panic_on_push(10);
        let child = spawn_traced_reporting(&[libc::SYS_openat], open_dev_null_repeatedly).unwrap();
        let served = NotifyListener::new(child.listener.as_fd().try_clone_to_owned().unwrap());
        session.serve(served.unwrap(), i64::from(child.pid), None);
        child.go();
        let report = child.report(Duration::from_secs(60));
        if report.is_err() {
            child.kill();
        }
        assert_eq!(
            report.unwrap(),
            OPENS,
            "opens of /dev/null that returned an fd"
        );
        session.init_exited();
        assert!(
            session.close(Duration::from_secs(30)),
            "the trace did not end"
        );
        assert_eq!(session.notify_failures(), 1);
        assert_eq!(session.state().active, 0);
        assert!(session.state().listeners.is_empty());
        let mut reported = None;
        TraceReader::open(&session.dir)
            .poll(|r| {
                if r.kind == KIND_DROPS {
                    reported = Some(r.args[1]);
                }
            })
            .unwrap();
        assert_eq!(
            reported,
            Some(1),
            "notify failures in the trace's drops record"
        );
    }
}
