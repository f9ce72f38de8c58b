//! Task events for containerd (`/tasks/create`, `/tasks/exit`, ...), sent
//! from a thread of their own so no RPC ever waits on containerd.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use containerd_shim::event::Event;
use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::context::with_duration;
use containerd_shim::publisher::RemotePublisher;

type Boxed = Box<dyn MessageDyn + Send>;

/// Where task events go.
pub trait EventSink: Send + Sync {
    fn publish(&self, topic: String, event: Boxed);
}

/// Publishes to containerd over its ttrpc events service.
pub struct RemoteSink {
    tx: Mutex<Sender<(String, Boxed)>>,
    /// Events queued but not yet handed to containerd.
    pending: Arc<AtomicUsize>,
}

impl RemoteSink {
    pub fn new(publisher: RemotePublisher, namespace: String) -> Self {
        let (tx, rx) = mpsc::channel::<(String, Boxed)>();
        let pending = Arc::new(AtomicUsize::new(0));
        let left = Arc::clone(&pending);
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for (topic, event) in rx {
                    // containerd's own shims give a publish five seconds.
                    let ctx = with_duration(Duration::from_secs(5));
                    if let Err(e) = publisher.publish(ctx, &topic, &namespace, event) {
                        log::warn!("publish {topic} to containerd: {e}");
                    }
                    left.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .expect("starting the events thread");
        RemoteSink {
            tx: Mutex::new(tx),
            pending,
        }
    }

    /// Waits (bounded) until every queued event has been handed over: the
    /// last ones (exit, delete, oom) come just before the shim exits.
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.pending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl EventSink for RemoteSink {
    fn publish(&self, topic: String, event: Boxed) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.lock().unwrap().send((topic, event)).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Publishes a typed event under its topic.
pub fn send<E: Event + MessageDyn + Send + 'static>(sink: &dyn EventSink, event: E) {
    let topic = event.topic();
    sink.publish(topic, Box::new(event));
}

/// Keeps events in memory, for tests.
#[cfg(test)]
#[derive(Default)]
pub struct RecordingSink {
    pub events: Mutex<Vec<(String, Boxed)>>,
}

#[cfg(test)]
impl EventSink for RecordingSink {
    fn publish(&self, topic: String, event: Boxed) {
        self.events.lock().unwrap().push((topic, event));
    }
}

#[cfg(test)]
impl RecordingSink {
    pub fn topics(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }
}
