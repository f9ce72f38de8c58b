//! Task events for containerd (`/tasks/create`, `/tasks/exit`, ...), sent
//! from a thread of their own so no RPC ever waits on containerd.

use std::sync::mpsc::{self, Sender};
use std::sync::Mutex;
use std::time::Duration;

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
}

impl RemoteSink {
    pub fn new(publisher: RemotePublisher, namespace: String) -> Self {
        let (tx, rx) = mpsc::channel::<(String, Boxed)>();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for (topic, event) in rx {
                    // containerd's own shims give a publish five seconds.
                    let ctx = with_duration(Duration::from_secs(5));
                    if let Err(e) = publisher.publish(ctx, &topic, &namespace, event) {
                        log::warn!("publish {topic} to containerd: {e}");
                    }
                }
            })
            .expect("starting the events thread");
        RemoteSink { tx: Mutex::new(tx) }
    }
}

impl EventSink for RemoteSink {
    fn publish(&self, topic: String, event: Boxed) {
        let _ = self.tx.lock().unwrap().send((topic, event));
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
