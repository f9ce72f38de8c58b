//! Live streams: events handed to subscribers as they are ingested. Each
//! subscriber has a bounded queue; when a slow reader lets it fill up,
//! events are dropped for that reader alone and counted, so one slow client
//! never holds up ingest or anyone else.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crt_tracer::record::Records;

use crate::store::{Filter, Stream};
use crate::tenants::Scope;

/// Events a subscriber may have waiting.
const QUEUE: usize = 10_000;

pub struct Subscriber {
    scope: Scope,
    /// Stream ids, or `None` for every stream the scope sees.
    streams: Option<HashSet<String>>,
    /// Only containers whose (namespace, id) match; used for containers
    /// whose streams do not exist yet when subscribing.
    containers: Option<Vec<(String, String)>>,
    filter: Filter,
    queue: Mutex<VecDeque<(Arc<Stream>, Vec<u8>)>>,
    ready: Condvar,
    pub dropped: AtomicU64,
    closed: AtomicBool,
}

impl Subscriber {
    /// Waits up to `timeout` for events; returns what is queued.
    pub fn wait(&self, timeout: Duration) -> Vec<(Arc<Stream>, Vec<u8>)> {
        let q = self.queue.lock().unwrap();
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, timeout, |q| {
                q.is_empty() && !self.closed.load(Ordering::Relaxed)
            })
            .unwrap();
        q.drain(..).collect()
    }

    fn wants(&self, stream: &Stream, owner: Option<&str>) -> bool {
        if !self.scope.sees(owner) {
            return false;
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
}

impl Live {
    pub fn subscribe(
        &self,
        scope: Scope,
        streams: Option<HashSet<String>>,
        containers: Option<Vec<(String, String)>>,
        filter: Filter,
    ) -> Arc<Subscriber> {
        let s = Arc::new(Subscriber {
            scope,
            streams,
            containers,
            filter,
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        self.subs.lock().unwrap().push(Arc::clone(&s));
        s
    }

    pub fn unsubscribe(&self, s: &Arc<Subscriber>) {
        s.closed.store(true, Ordering::Relaxed);
        s.ready.notify_all();
        self.subs.lock().unwrap().retain(|x| !Arc::ptr_eq(x, s));
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
            let mut added = false;
            let mut dropped = 0;
            for rec in Records::new(batch) {
                if !s.filter.record_matches(&rec) {
                    continue;
                }
                if q.len() >= QUEUE {
                    dropped += 1;
                    continue;
                }
                q.push_back((Arc::clone(stream), rec.as_bytes().to_vec()));
                added = true;
            }
            drop(q);
            if added {
                s.ready.notify_all();
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
