//! crtd's OTLP export, received by a collector stand-in that decodes what
//! arrives with the official OpenTelemetry protocol definitions
//! (opentelemetry-proto): the real crtd, real shims, real containers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crt_integration::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

const ALPHA: (&str, &str, &str) = TENANTS[0];
const BETA: (&str, &str, &str) = TENANTS[1];

/// One exported log record, flattened: its resource's and its own attributes.
#[derive(Debug, Clone)]
struct Got {
    resource: HashMap<String, String>,
    attrs: HashMap<String, String>,
    body: String,
    time_ns: u64,
}

fn flat(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Any::StringValue(s)) => s.clone(),
                Some(Any::IntValue(i)) => i.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

/// A collector: answers the first `fail_first` requests with 503, then 200,
/// on kept-alive connections.
struct Collector {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Collector {
    fn start(fail_first: usize) -> Collector {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (g, r) = (Arc::clone(&got), Arc::clone(&requests));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(c) = conn else { continue };
                let (g, r) = (Arc::clone(&g), Arc::clone(&r));
                std::thread::spawn(move || Self::serve(c, fail_first, &g, &r));
            }
        });
        Collector {
            port,
            got,
            requests,
        }
    }

    /// Requests on one connection, until the client closes it.
    fn serve(
        mut c: TcpStream,
        fail_first: usize,
        got: &Mutex<Vec<Got>>,
        requests: &Mutex<Vec<String>>,
    ) {
        let mut reader = BufReader::new(c.try_clone().unwrap());
        loop {
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let n = {
                let mut r = requests.lock().unwrap();
                r.push(head.clone());
                r.len() - 1
            };
            if n < fail_first {
                let _ =
                    c.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
                continue;
            }
            // Compressed, as the header says (checked by the test): a
            // body that is not gzip is answered 400 and never counted.
            let mut pb = Vec::new();
            let unzipped = body.starts_with(&[0x1f, 0x8b])
                && flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut pb)
                    .is_ok();
            let Some(req) = unzipped
                .then(|| ExportLogsServiceRequest::decode(&pb[..]).ok())
                .flatten()
            else {
                let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
                continue;
            };
            {
                let mut out = got.lock().unwrap();
                for rl in req.resource_logs {
                    let resource = flat(&rl.resource.map(|r| r.attributes).unwrap_or_default());
                    for sl in rl.scope_logs {
                        assert_eq!(sl.scope.as_ref().map(|s| s.name.as_str()), Some("crt"));
                        for lr in sl.log_records {
                            let body = match lr.body.and_then(|b| b.value) {
                                Some(Any::StringValue(s)) => s,
                                other => format!("{other:?}"),
                            };
                            out.push(Got {
                                resource: resource.clone(),
                                attrs: flat(&lr.attributes),
                                body,
                                time_ns: lr.time_unix_nano,
                            });
                        }
                    }
                }
            }
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n");
        }
    }

    fn records(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

#[test]
fn events_and_logs_reach_an_otlp_collector_with_their_resource() {
    // The collector is down for the first two requests: nothing is lost.
    let collector = Collector::start(2);
    let crtd = Crtd::start_with(
        "otlp",
        &format!(
            // The pod's identity counts only in the CRI namespace: here
            // alpha's, standing in for k8s.io.
            "[kubernetes]\ncri_namespace = \"{}\"\n\n[export.otlp]\nendpoint = \"http://127.0.0.1:{}\"\ntenants = [\"alpha\"]\nheaders = {{ x-crt-test = \"k1\" }}\n",
            ALPHA.1,
            collector.port
        ),
    );
    let a = id("otlp-a");
    let b = id("otlp-b");
    run_in(
        ALPHA.1,
        &[
            "run",
            "--rm",
            "--null-io",
            "--runtime",
            CRT,
            "--annotation",
            "crt.dev/trace=openat",
            "--annotation",
            &format!("io.kubernetes.cri.sandbox-namespace={}", ALPHA.1),
            "--annotation",
            "io.kubernetes.cri.sandbox-name=web-otlp",
            "--annotation",
            "io.kubernetes.cri.container-name=app",
            IMAGE,
            &a,
            "sh",
            "-c",
            "cat /etc/crt-test-release >/dev/null; echo hello-otlp; echo oops >&2",
        ],
    )
    .ok();
    // Another tenant's container, not in the export's tenants.
    run_in(
        BETA.1,
        &[
            "run",
            "--rm",
            "--null-io",
            "--runtime",
            CRT,
            "--annotation",
            "crt.dev/trace=openat",
            IMAGE,
            &b,
            "sh",
            "-c",
            "cat /etc/crt-test-release >/dev/null; echo beta-secret",
        ],
    )
    .ok();
    // Everything crtd holds for the container (syscalls, lines, drops) goes out.
    let mine = |g: &Got| g.resource.get("container.id") == Some(&a);
    let mut v = serde_json::Value::Null;
    let complete = wait_for(Duration::from_secs(60), || {
        (_, v) = crtd.root_get(&format!(
            "/v1/events?namespace={}&container={a}&logs=true&limit=1000",
            ALPHA.1
        ));
        let want = v["events"]
            .as_array()
            .map(|e| e.iter().filter(|e| e["event"] != "end").count())
            .unwrap_or(0);
        let got = collector.records().iter().filter(|g| mine(g)).count();
        want > 0
            && got == want
            && v["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == "end")
    });
    let got = collector.records();
    assert!(complete, "{} exported: {got:#?}\nstored: {v}", got.len());
    let recs: Vec<&Got> = got.iter().filter(|g| mine(g)).collect();

    let hello = recs
        .iter()
        .find(|g| g.body == "hello-otlp")
        .expect("the stdout line");
    assert_eq!(hello.attrs["crt.event"], "log");
    assert_eq!(hello.attrs["log.iostream"], "stdout");
    assert!(hello.time_ns > 0);
    let r = &hello.resource;
    assert_eq!(r["k8s.namespace.name"], ALPHA.1);
    assert_eq!(r["k8s.pod.name"], "web-otlp");
    assert_eq!(r["k8s.container.name"], "app");
    assert_eq!(r["crt.tenant"], "alpha");
    assert_eq!(r["crt.containerd.namespace"], ALPHA.1);
    let oops = recs
        .iter()
        .find(|g| g.body == "oops")
        .expect("the stderr line");
    assert_eq!(oops.attrs["log.iostream"], "stderr");
    let open = recs
        .iter()
        .find(|g| g.body.contains("\"/etc/crt-test-release\""))
        .expect("the openat");
    assert_eq!(open.attrs["crt.event"], "syscall");
    assert_eq!(open.attrs["crt.syscall.name"], "openat");
    assert!(open.body.starts_with("openat(AT_FDCWD, "), "{}", open.body);
    assert!(open.attrs["thread.id"].parse::<u32>().unwrap() > 0);

    // The other tenant's container never left the node.
    assert!(
        !got.iter()
            .any(|g| g.resource.get("container.id") == Some(&b) || g.body.contains("beta-secret")),
        "{got:#?}"
    );
    // The collector's headers were sent; the two refused requests were retried.
    let requests = collector.requests.lock().unwrap().clone();
    assert!(requests.len() >= 3, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|h| h.starts_with("POST /v1/logs HTTP/1.1")
                && h.contains("x-crt-test: k1")
                && h.to_ascii_lowercase()
                    .contains("content-encoding: gzip\r\n")),
        "{requests:?}"
    );
    let (_, metrics) = crtd.root_get_text("/metrics");
    assert!(
        metrics.contains("crtd_otlp_failed_requests_total 2"),
        "{metrics}"
    );
    // Every body was gzip the collector could read: none refused.
    assert!(
        metrics.contains("crtd_otlp_rejected_records_total 0"),
        "{metrics}"
    );
}
