//! Live streams: events handed to subscribers as they are ingested. Each
//! subscriber has a queue bounded in bytes; when a slow reader lets it fill
//! up, events are dropped for that reader alone and counted, so one slow
//! client never holds up ingest or anyone else, and never holds much memory.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crt_tracer::record::Records;
use tokio::sync::Notify;

use crate::store::{Filter, StorePos, Stream};
use crate::tenants::Scope;

/// Bytes a subscriber may have waiting (records plus their queue entries).
pub const QUEUE_BYTES: u64 = 4 << 20;

/// A record handed to a subscriber: its stream, its bytes, and where it ends in the store.
pub type LiveRecord = (Arc<Stream>, Vec<u8>, StorePos);

/// What one queued record costs besides its own bytes.
const ENTRY_BYTES: u64 = std::mem::size_of::<LiveRecord>() as u64;

/// A subscriber's waiting records and what they weigh.
#[derive(Default)]
struct Queue {
    records: VecDeque<LiveRecord>,
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
    pub fn take(&self) -> VecDeque<LiveRecord> {
        let q = std::mem::take(&mut *self.queue.lock().unwrap());
        self.queued_total.fetch_sub(q.bytes, Ordering::Relaxed);
        q.records
    }

    /// Takes the oldest queued records, about `max_bytes` of them (at least one):
    /// a reader turns what it takes into text, so it takes a little at a time.
    pub fn take_some(&self, max_bytes: u64) -> Vec<LiveRecord> {
        let mut q = self.queue.lock().unwrap();
        let mut taken = Vec::new();
        let mut bytes = 0;
        while bytes < max_bytes {
            let Some(r) = q.records.pop_front() else {
                break;
            };
            bytes += r.1.len() as u64 + ENTRY_BYTES;
            taken.push(r);
        }
        q.bytes -= bytes;
        // Counted while the queue is locked, as `publish` does.
        self.queued_total.fetch_sub(bytes, Ordering::Relaxed);
        if q.records.is_empty() {
            // A queue that was full gives its memory back.
            q.records = VecDeque::new();
        }
        taken
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

    /// Whether records of `stream` (owned by `owner`) are for this subscriber.
    pub fn wants(&self, stream: &Stream, owner: Option<&str>) -> bool {
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

    /// Offers a batch of one stream's records, just stored, to every subscriber;
    /// `ends` says where each record ends in the store.
    pub fn publish(
        &self,
        stream: &Arc<Stream>,
        owner: Option<&str>,
        batch: &[u8],
        ends: &[StorePos],
    ) {
        let subs: Vec<Arc<Subscriber>> = self.subs.lock().unwrap().clone();
        for s in subs {
            if !s.wants(stream, owner) {
                continue;
            }
            let mut q = s.queue.lock().unwrap();
            let mut added = 0;
            let mut dropped = 0;
            for (rec, end) in Records::new(batch).zip(ends) {
                if !s.filter.record_matches(&rec) {
                    continue;
                }
                let cost = rec.as_bytes().len() as u64 + ENTRY_BYTES;
                if q.bytes + cost > QUEUE_BYTES {
                    dropped += 1;
                    continue;
                }
                q.records
                    .push_back((Arc::clone(stream), rec.as_bytes().to_vec(), *end));
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
                let who = s.scope.limited_as().unwrap_or_default().to_string();
                *self.dropped.lock().unwrap().entry(who).or_default() += dropped;
            }
        }
    }
}

/// Where a live reader stands, so that it can come back without losing or repeating
/// anything: for each stream it was sent records of, the position just past the last
/// one, and since when it has followed (`at`, ns since the epoch). Every event of a
/// live stream carries it as its SSE `id`, `1:<at>:<stream>=<chunk>.<offset>,...`
/// (stream ids percent-encoded beyond `[A-Za-z0-9._/-]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    pub at: u64,
    pub positions: BTreeMap<String, StorePos>,
}

impl Resume {
    pub fn encode(&self) -> String {
        let mut out = format!("1:{}:", self.at);
        for (i, (id, (chunk, offset))) in self.positions.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for b in id.bytes() {
                if b.is_ascii_alphanumeric() || b"._/-".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out.push_str(&format!("={chunk}.{offset}"));
        }
        out
    }

    /// A live event's `id`, or the `next` cursor of an ascending history query
    /// (whose streams continue after what that query returned); `None` if it is
    /// neither.
    pub fn decode(s: &str) -> Option<Resume> {
        if let Some(rest) = s.strip_prefix("1:") {
            let (at, list) = rest.split_once(':')?;
            let mut positions = BTreeMap::new();
            for item in list.split(',').filter(|i| !i.is_empty()) {
                let (id, pos) = item.rsplit_once('=')?;
                let (chunk, offset) = pos.split_once('.')?;
                positions.insert(
                    percent_decode(id)?,
                    (chunk.parse().ok()?, offset.parse().ok()?),
                );
            }
            return Some(Resume {
                at: at.parse().ok()?,
                positions,
            });
        }
        let c = crate::store::Cursor::decode(s)?;
        if c.order != crate::store::Order::Asc {
            return None;
        }
        Some(Resume {
            // A cursor from before cursors kept their time: streams it does not
            // name continue from now.
            at: c.at.unwrap_or_else(crt_tracer::render::now_ns),
            positions: c.positions,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Stores `batch` in `stream` and offers it to `live`, as ingest does.
#[cfg(test)]
pub fn store_and_publish(live: &Live, stream: &Arc<Stream>, owner: Option<&str>, batch: &[u8]) {
    let next = stream.checkpoint().source();
    let ends = stream.append(batch, next, false, 0).unwrap();
    live.publish(stream, owner, batch, &ends);
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
            store_and_publish(&live, &stream, Some("acme"), &batch);
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
        store_and_publish(
            &live,
            &stream,
            Some("acme"),
            &rec(1, 1, "openat", b"/after"),
        );
        assert_eq!(live.queued_bytes(), 0);
        assert_eq!(live.subscribers(), 0);
    }

    #[test]
    fn a_resume_point_survives_its_text_form_and_odd_names_are_escaped() {
        let r = Resume {
            at: 1_764_000_000_123_456_789,
            positions: BTreeMap::from([
                ("default/web.1/1764".to_string(), (3, 8_388_000)),
                ("n s/c=1,x%/2".to_string(), (1, 0)),
            ]),
        };
        let text = r.encode();
        assert!(
            !text.contains(' ')
                && !text.contains('\n')
                && text.starts_with("1:1764000000123456789:"),
            "{text}"
        );
        assert_eq!(Resume::decode(&text), Some(r));
        assert_eq!(
            Resume::decode("1:5:"),
            Some(Resume {
                at: 5,
                positions: BTreeMap::new()
            })
        );
        for bad in [
            "",
            "1:x:",
            "1:5:a=1",
            "1:5:a=1.x",
            "2:5:",
            "1:5:%zz=1.2",
            "zz",
        ] {
            assert_eq!(Resume::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_ascending_history_cursor_is_a_resume_point_and_a_descending_one_is_not() {
        let f = Filter::default();
        let mut c = crate::store::Cursor::at(
            &f,
            crate::store::Order::Asc,
            BTreeMap::from([("a/b/1".to_string(), (2, 40))]),
        );
        c.at = Some(77);
        let r = Resume::decode(&c.encode()).unwrap();
        assert_eq!(r.at, 77);
        assert_eq!(r.positions, c.positions);
        c.order = crate::store::Order::Desc;
        assert_eq!(Resume::decode(&c.encode()), None);
    }
}
