//! The storage side of a container's trace: takes batches from the queue and
//! appends them to the segment files, records drops (and notify threads
//! that failed), and closes the trace
//! with an END record once every traced process is gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crt_tracer::record::{self, KIND_DROPS, KIND_END};
use crt_tracer::render::now_ns;
use crt_tracer::segment::SegmentWriter;

use super::join::Joiner;
use super::TraceSession;

/// How long storage waits for events before checking for the end.
const POLL: Duration = Duration::from_millis(20);
/// How long it waits while records are held back for their results.
const HOLDING_POLL: Duration = Duration::from_millis(2);
/// How often written data is forced to disk.
const SYNC_EVERY: Duration = Duration::from_secs(2);
/// How often the notify round-trip histogram is written (when it changed).
const LATENCY_EVERY: Duration = Duration::from_secs(1);

pub fn run(session: Arc<TraceSession>, mut segments: SegmentWriter) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut completed: Vec<u8> = Vec::new();
    let mut joiner = session.exits.clone().map(Joiner::new);
    let mut reported = (0u64, 0u64, 0u64);
    let mut storage_lost = 0u64;
    let mut last_sync = Instant::now();
    let mut dirty = false;
    let mut failing = false;
    let mut latency_count = 0u64;
    let mut last_latency = Instant::now();
    loop {
        // Decide before draining, so nothing pushed before the end is missed.
        let finished = session.finished();
        let wait = if finished {
            Duration::ZERO
        } else if joiner.as_ref().is_some_and(Joiner::holding) {
            HOLDING_POLL
        } else {
            POLL
        };
        session.queue.take(&mut batch, wait);
        if let Some(j) = joiner.as_mut() {
            completed.clear();
            // At the end every process is gone: every exit that will ever
            // come has come.
            j.complete(&batch, &mut completed, finished);
            std::mem::swap(&mut batch, &mut completed);
        }
        if !batch.is_empty() {
            match segments.append(&batch) {
                Ok(()) => {
                    dirty = true;
                    failing = false;
                }
                Err(e) => {
                    let n = record::Records::new(&batch).count() as u64;
                    storage_lost += n;
                    if !failing {
                        log::error!(
                            "trace {}/{}: cannot write to {}: {e}; counting events as dropped",
                            session.namespace,
                            session.container,
                            session.dir.display()
                        );
                        failing = true;
                    }
                }
            }
            batch.clear();
        }
        let dropped = session.queue.dropped() + storage_lost;
        let failures = session.notify_failures();
        let results_lost = joiner.as_ref().map_or(0, Joiner::lost);
        if (dropped, failures, results_lost) != reported {
            let rec = record::simple(
                KIND_DROPS,
                now_ns(),
                0,
                &[dropped, failures, results_lost, 0, 0, 0],
                b"",
            );
            if segments.append(&rec).is_ok() {
                reported = (dropped, failures, results_lost);
                dirty = true;
            }
        }
        if finished || last_latency.elapsed() >= LATENCY_EVERY {
            last_latency = Instant::now();
            let snap = session.latency();
            if snap.count() != latency_count && segments.append(&snap.to_record(now_ns())).is_ok() {
                latency_count = snap.count();
                dirty = true;
            }
        }
        if dirty && last_sync.elapsed() >= SYNC_EVERY {
            let _ = segments.sync();
            dirty = false;
            last_sync = Instant::now();
        }
        if finished && session.queue.is_empty() {
            let end = record::simple(KIND_END, now_ns(), 0, &[0; 6], b"");
            if let Err(e) = segments.append(&end).and_then(|_| segments.sync()) {
                log::error!("trace {}: cannot close: {e}", session.dir.display());
            }
            log::info!(
                "trace {}/{} complete: {} events recorded, {} dropped, {} bytes evicted to stay within the bound, {} results lost",
                session.namespace,
                session.container,
                session.queue.pushed(),
                dropped,
                segments.evicted_bytes(),
                results_lost
            );
            if let Some(p) = &session.exits {
                log::info!(
                    "this shim's syscall-exit program could not pass on {} exits so far (its buffer was full)",
                    p.lost()
                );
            }
            break;
        }
    }
    session.writer_done();
}
