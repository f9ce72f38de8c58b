//! Live streams: events handed to subscribers as they are ingested. Each
//! subscriber has a queue bounded in bytes; when a slow reader lets it fill
//! up, events are dropped for that reader alone and counted, so one slow
//! client never holds up ingest or anyone else, and never holds much memory.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crt_tracer::record::Records;
use tokio::sync::Notify;

use crate::store::{Filter, Stream};
use crate::tenants::Scope;

/// Bytes a subscriber may have waiting (records plus their queue entries).
pub const QUEUE_BYTES: u64 = 4 << 20;

/// What one queued record costs besides its own bytes.
const ENTRY_BYTES: u64 = std::mem::size_of::<(Arc<Stream>, Vec<u8>)>() as u64;

/// A subscriber's waiting records and what they weigh.
#[derive(Default)]
struct Queue {
    records: VecDeque<(Arc<Stream>, Vec<u8>)>,
    bytes: u64,
}

pub struct Subscriber {
    scope: Scope,
    /// Stream ids, or `None` for every stream the scope sees.
    streams: Option<HashSet<String>>,
    /// Only containers whose (namespace, id) match; used for containers
    /// whose streams do not exist yet when subscribing.
    containers: Option<Vec<(String, String)>>,
    /// Only streams of this containerd or Kubernetes namespace.
    namespace: Option<String>,
    filter: Filter,
    queue: Mutex<Queue>,
    /// Woken when records are queued (a permit waits if nobody does).
    ready: Notify,
    /// Bytes queued for every subscriber, shared with [`Live`].
    queued_total: Arc<AtomicU64>,
    pub dropped: AtomicU64,
}

impl Subscriber {
    /// Takes every record queued so far (the queue's memory goes with them).
    pub fn take(&self) -> VecDeque<(Arc<Stream>, Vec<u8>)> {
        let q = std::mem::take(&mut *self.queue.lock().unwrap());
        self.queued_total.fetch_sub(q.bytes, Ordering::Relaxed);
        q.records
    }

    /// Returns once records may have been queued since the last `take`.
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Bytes waiting for this subscriber.
    #[cfg(test)]
    pub fn queued_bytes(&self) -> u64 {
        self.queue.lock().unwrap().bytes
    }

    fn wants(&self, stream: &Stream, owner: Option<&str>) -> bool {
        if !self.scope.sees(owner) {
            return false;
        }
        if let Some(ns) = &self.namespace {
            let k8s = stream
                .meta
                .kubernetes
                .get("namespace")
                .and_then(serde_json::Value::as_str);
            if *ns != stream.meta.namespace && k8s != Some(ns.as_str()) {
                return false;
            }
        }
        if let Some(ids) = &self.streams {
            if ids.contains(&stream.id) {
                return true;
            }
        }
        match &self.containers {
            Some(cs) => cs.iter().any(|(ns, id)| {
                (ns.is_empty() || *ns == stream.meta.namespace) && *id == stream.meta.container
            }),
            None => self.streams.is_none(),
        }
    }
}

#[derive(Default)]
pub struct Live {
    subs: Mutex<Vec<Arc<Subscriber>>>,
    /// Events dropped for slow readers, by the reader's tenant ("" for root).
    dropped: Mutex<BTreeMap<String, u64>>,
    /// Bytes queued for all subscribers together.
    queued: Arc<AtomicU64>,
}

impl Live {
    pub fn subscribe(
        &self,
        scope: Scope,
        streams: Option<HashSet<String>>,
        containers: Option<Vec<(String, String)>>,
        namespace: Option<String>,
        filter: Filter,
    ) -> Arc<Subscriber> {
        let s = Arc::new(Subscriber {
            scope,
            streams,
            containers,
            namespace,
            filter,
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            queued_total: Arc::clone(&self.queued),
            dropped: AtomicU64::new(0),
        });
        self.subs.lock().unwrap().push(Arc::clone(&s));
        s
    }

    /// Stops offering `s` records and frees what it still had queued.
    pub fn unsubscribe(&self, s: &Arc<Subscriber>) {
        self.subs.lock().unwrap().retain(|x| !Arc::ptr_eq(x, s));
        drop(s.take());
    }

    /// Bytes queued for all subscribers together.
    pub fn queued_bytes(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Events dropped for slow readers so far, by tenant ("" for root).
    pub fn dropped(&self) -> Vec<(String, u64)> {
        self.dropped
            .lock()
            .unwrap()
            .iter()
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }

    pub fn subscribers(&self) -> usize {
        self.subs.lock().unwrap().len()
    }

    /// Offers a batch of one stream's records to every subscriber.
    pub fn publish(&self, stream: &Arc<Stream>, owner: Option<&str>, batch: &[u8]) {
        let subs: Vec<Arc<Subscriber>> = self.subs.lock().unwrap().clone();
        for s in subs {
            if !s.wants(stream, owner) {
                continue;
            }
            let mut q = s.queue.lock().unwrap();
            let mut added = 0;
            let mut dropped = 0;
            for rec in Records::new(batch) {
                if !s.filter.record_matches(&rec) {
                    continue;
                }
                let cost = rec.as_bytes().len() as u64 + ENTRY_BYTES;
                if q.bytes + cost > QUEUE_BYTES {
                    dropped += 1;
                    continue;
                }
                q.records
                    .push_back((Arc::clone(stream), rec.as_bytes().to_vec()));
                q.bytes += cost;
                added += cost;
            }
            // Counted while the queue is locked, so a `take` never subtracts first.
            self.queued.fetch_add(added, Ordering::Relaxed);
            drop(q);
            if added > 0 {
                s.ready.notify_one();
            }
            if dropped > 0 {
                s.dropped.fetch_add(dropped, Ordering::Relaxed);
                let who = match &s.scope {
                    Scope::Root => String::new(),
                    Scope::Tenant(t) => t.clone(),
                };
                *self.dropped.lock().unwrap().entry(who).or_default() += dropped;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::rec;
    use crate::store::{Store, StreamMeta};

    #[test]
    fn a_reader_that_never_reads_holds_a_bounded_queue_freed_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stream = store
            .stream(StreamMeta {
                namespace: "acme".into(),
                container: "c1".into(),
                instance: 1,
                kubernetes: serde_json::Value::Null,
                source: "/nowhere".into(),
            })
            .unwrap();
        let live = Live::default();
        let sub = live.subscribe(Scope::Root, None, None, None, Filter::default());
        // 20 MB of events, in batches as ingest hands them over, and nobody reading.
        let path = vec![b'x'; 2000];
        let mut offered = 0u64;
        for batch_no in 0..100u64 {
            let mut batch = Vec::new();
            for i in 0..100 {
                batch.extend(rec(batch_no * 100 + i, 1, "openat", &path));
            }
            offered += 100;
            live.publish(&stream, Some("acme"), &batch);
            assert!(sub.queued_bytes() <= QUEUE_BYTES, "{}", sub.queued_bytes());
        }
        assert!(sub.queued_bytes() > QUEUE_BYTES / 2, "the queue was used");
        assert_eq!(live.queued_bytes(), sub.queued_bytes());
        let dropped = sub.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0 && dropped < offered, "{dropped} of {offered}");
        assert_eq!(live.dropped(), vec![(String::new(), dropped)]);
        // The reader goes: nothing stays queued, and new events are not offered to it.
        live.unsubscribe(&sub);
        assert_eq!(sub.queued_bytes(), 0);
        assert_eq!(live.queued_bytes(), 0);
        live.publish(&stream, Some("acme"), &rec(1, 1, "openat", b"/after"));
        assert_eq!(live.queued_bytes(), 0);
        assert_eq!(live.subscribers(), 0);
    }
}
