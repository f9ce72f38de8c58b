use std::time::{Duration, Instant};

use crt_tracer::record::{RecordBuilder, KIND_SYSCALL};
use crt_tracer::segment::Position;
use crt_tracer::syscalls;

use super::chunk::BLOCK_RECORDS;
use super::query::{self, Budget, Hit};
use super::*;

fn nr(name: &str) -> u32 {
    syscalls::by_name(name).unwrap().nr
}

/// A syscall record (openat carries `path`), for tests here and elsewhere.
pub(crate) fn rec(ts: u64, tid: u32, name: &str, path: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut b = RecordBuilder::begin(
        &mut buf,
        KIND_SYSCALL,
        ts,
        tid,
        NATIVE,
        nr(name),
        &[0xffff_ff9c, 1, 0, 0, 0, 0],
    );
    b.set_comm(b"app");
    if name == "openat" {
        b.bytes(1, path, false);
    }
    b.finish();
    buf
}

const NATIVE: u32 = crt_tracer::syscalls::NATIVE_AUDIT_ARCH;

/// A stream's meta, with a source trace that exists (so the stream counts
/// as still being written until it ends).
fn meta(ns: &str, id: &str, instance: u64) -> StreamMeta {
    let source = std::env::temp_dir().join(format!(
        "crt-store-test-{}/{ns}/{id}/{instance}",
        std::process::id()
    ));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("meta.json"), b"{}").unwrap();
    StreamMeta {
        namespace: ns.into(),
        container: id.into(),
        instance,
        kubernetes: serde_json::Value::Null,
        source,
    }
}

/// One page of `filter` over `streams`, with an unlimited budget.
fn page(
    streams: &[Arc<Stream>],
    filter: &Filter,
    order: Order,
    limit: usize,
    cursor: Option<&Cursor>,
) -> query::QueryResult {
    query::run(streams, filter, order, limit, cursor, budget()).unwrap()
}

fn budget() -> Budget {
    Budget {
        max_scanned: u64::MAX,
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

fn pos(n: u64) -> Position {
    Position { seq: 1, offset: n }
}

fn ts_of(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.record().ts_ns).collect()
}

#[test]
fn stored_events_come_back_filtered_in_either_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = store.stream(meta("ns", "c1", 1)).unwrap();
    let mut batch = Vec::new();
    for i in 0..1000u64 {
        let name = if i % 10 == 0 { "connect" } else { "openat" };
        let path = format!("/file/{i}");
        batch.extend(rec(1_000 + i, 100 + (i % 3) as u32, name, path.as_bytes()));
    }
    s.append(&batch, pos(1), false, 0).unwrap();

    let all = page(
        std::slice::from_ref(&s),
        &Filter::default(),
        Order::Asc,
        10_000,
        None,
    );
    assert_eq!(all.hits.len(), 1000);
    assert_eq!(ts_of(&all.hits), (1000..2000).collect::<Vec<_>>());

    let f = Filter {
        syscalls: vec![nr("connect")],
        since: Some(1_500),
        until: Some(1_700),
        ..Default::default()
    };
    let r = page(std::slice::from_ref(&s), &f, Order::Desc, 100, None);
    assert_eq!(
        ts_of(&r.hits),
        (1500..1700)
            .rev()
            .filter(|t| (t - 1000) % 10 == 0)
            .collect::<Vec<_>>()
    );

    let f = Filter {
        pids: vec![101],
        text: Some("/file/4".into()),
        ..Default::default()
    };
    let r = page(&[s], &f, Order::Asc, 100, None);
    assert!(!r.hits.is_empty());
    for h in &r.hits {
        let rec = h.record();
        assert_eq!(rec.tid, 101);
        assert!(query::text_of(&rec).contains("/file/4"));
    }
}

#[test]
fn pages_across_merged_streams_return_every_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let a = store.stream(meta("ns", "a", 1)).unwrap();
    let b = store.stream(meta("ns", "b", 1)).unwrap();
    let mut ba = Vec::new();
    let mut bb = Vec::new();
    for i in 0..700u64 {
        ba.extend(rec(2 * i, 1, "openat", b"/a"));
        bb.extend(rec(2 * i + 1, 2, "openat", b"/b"));
    }
    a.append(&ba, pos(1), false, 0).unwrap();
    b.append(&bb, pos(1), false, 0).unwrap();
    for order in [Order::Asc, Order::Desc] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let r = page(
                &[a.clone(), b.clone()],
                &Filter::default(),
                order,
                97,
                cursor.as_ref(),
            );
            if r.hits.is_empty() {
                break;
            }
            seen.extend(ts_of(&r.hits));
            cursor = Some(r.next);
        }
        let mut want: Vec<u64> = (0..1400).collect();
        if order == Order::Desc {
            want.reverse();
        }
        assert_eq!(seen, want, "{order:?}");
    }
}

#[test]
fn events_stored_after_a_page_appear_on_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = store.stream(meta("ns", "c", 1)).unwrap();
    s.append(&rec(1, 1, "openat", b"/x"), pos(1), false, 0)
        .unwrap();
    let r = page(
        std::slice::from_ref(&s),
        &Filter::default(),
        Order::Asc,
        10,
        None,
    );
    assert_eq!(r.hits.len(), 1);
    s.append(&rec(2, 1, "openat", b"/y"), pos(2), false, 0)
        .unwrap();
    let r2 = page(&[s], &Filter::default(), Order::Asc, 10, Some(&r.next));
    assert_eq!(ts_of(&r2.hits), vec![2]);
}

#[test]
fn a_cursor_from_another_query_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = store.stream(meta("ns", "c", 1)).unwrap();
    s.append(&rec(1, 1, "openat", b"/x"), pos(1), false, 0)
        .unwrap();
    let r = page(
        std::slice::from_ref(&s),
        &Filter::default(),
        Order::Asc,
        10,
        None,
    );
    let other = Filter {
        pids: vec![7],
        ..Default::default()
    };
    assert!(query::run(&[s], &other, Order::Asc, 10, Some(&r.next), budget()).is_err());
    assert_eq!(Cursor::decode(&r.next.encode()), Some(r.next));
    assert_eq!(Cursor::decode("zz"), None);
}

#[test]
fn a_reopened_store_keeps_what_was_checkpointed_and_drops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let s = store.stream(meta("ns", "c", 7)).unwrap();
        let mut batch = Vec::new();
        for i in 0..300u64 {
            batch.extend(rec(i, 1, "openat", b"/p"));
        }
        s.append(&batch, pos(4242), true, 3).unwrap();
        // A crash after writing more data but before its checkpoint.
        let chunk = dir.path().join("streams/ns/c/7/0000000001.chk");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&chunk)
            .unwrap();
        std::io::Write::write_all(&mut f, &rec(999, 1, "openat", b"/lost")).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let s = store.get("ns/c/7").expect("the stream is reloaded");
    let cp = s.checkpoint();
    assert_eq!(cp.source(), pos(4242));
    assert!(cp.ended);
    assert_eq!(cp.missed_segments, 3);
    let r = page(
        std::slice::from_ref(&s),
        &Filter::default(),
        Order::Asc,
        1000,
        None,
    );
    assert_eq!(r.hits.len(), 300);
    // Appending carries on from the checkpoint.
    s.append(&rec(300, 1, "openat", b"/p"), pos(5000), false, 0)
        .unwrap();
    let r = page(&[s], &Filter::default(), Order::Desc, 1, None);
    assert_eq!(ts_of(&r.hits), vec![300]);
}

#[test]
fn chunks_seal_and_their_indexes_reload() {
    let dir = tempfile::tempdir().unwrap();
    let n;
    {
        let store = Store::open(dir.path()).unwrap();
        let s = store.stream(meta("ns", "big", 1)).unwrap();
        let one = rec(0, 1, "openat", b"/some/longer/path/to/fill/chunks");
        let per_chunk = (CHUNK_BYTES as usize / one.len()) + 1;
        n = per_chunk * 2 + 10;
        let mut batch = Vec::with_capacity(n * one.len());
        for i in 0..n as u64 {
            batch.extend(rec(i, 1, "openat", b"/some/longer/path/to/fill/chunks"));
        }
        s.append(&batch, pos(1), false, 0).unwrap();
        assert!(s.chunks.read().unwrap().len() >= 3);
        assert_eq!(s.events(), n as u64);
    }
    let store = Store::open(dir.path()).unwrap();
    let s = store.get("ns/big/1").unwrap();
    assert_eq!(s.events(), n as u64);
    let f = Filter {
        since: Some(n as u64 - 5),
        ..Default::default()
    };
    let r = page(&[s], &f, Order::Asc, 100, None);
    assert_eq!(r.hits.len(), 5);
    // Only the last blocks were read.
    assert!(
        r.scanned <= 2 * u64::from(BLOCK_RECORDS),
        "scanned {}",
        r.scanned
    );
}

#[test]
fn retention_drops_old_and_excess_chunks_but_never_the_one_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = store.stream(meta("ns", "r", 1)).unwrap();
    let one = rec(1, 1, "openat", b"/0123456789012345678901234567890123456789");
    let per_chunk = CHUNK_BYTES as usize / one.len() + 1;
    let mut batch = Vec::new();
    for _ in 0..per_chunk * 3 {
        batch.extend(&one);
    }
    s.append(&batch, pos(1), false, 0).unwrap();
    let chunks = s.chunks.read().unwrap().len();
    assert!(chunks >= 3, "{chunks} chunks");
    // Everything is from 1970: an age limit removes all sealed chunks.
    let freed = store.enforce_retention(
        std::slice::from_ref(&s),
        Duration::from_secs(3600),
        u64::MAX,
    );
    assert!(freed > 0);
    assert_eq!(s.chunks.read().unwrap().len(), 1);
    // A byte limit on fresh data removes the oldest first.
    let s2 = store.stream(meta("ns", "r2", 1)).unwrap();
    let now = crt_tracer::render::now_ns();
    let mut batch = Vec::new();
    for i in 0..per_chunk * 3 {
        batch.extend(rec(
            now + i as u64,
            1,
            "openat",
            b"/0123456789012345678901234567890123456789",
        ));
    }
    s2.append(&batch, pos(1), false, 0).unwrap();
    store.enforce_retention(
        std::slice::from_ref(&s2),
        Duration::from_secs(3600),
        CHUNK_BYTES + CHUNK_BYTES / 2,
    );
    assert!(s2.bytes() <= CHUNK_BYTES * 2, "{}", s2.bytes());
    let r = page(&[s2], &Filter::default(), Order::Desc, 1, None);
    assert_eq!(ts_of(&r.hits), vec![now + per_chunk as u64 * 3 - 1]);
}

#[test]
fn a_finished_stream_goes_whole_when_it_is_old_or_over_the_bound_and_is_not_taken_in_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Old events, trace ended: the one chunk it has goes, and the stream.
    let old = store.stream(meta("ns", "old", 1)).unwrap();
    old.append(&rec(5, 1, "openat", b"/x"), pos(1), true, 0)
        .unwrap();
    // Old events, still being written: its open chunk stays.
    let running = store.stream(meta("ns", "running", 1)).unwrap();
    running
        .append(&rec(5, 1, "openat", b"/x"), pos(1), false, 0)
        .unwrap();
    let freed = store.enforce_retention(
        &[Arc::clone(&old), Arc::clone(&running)],
        Duration::from_secs(3600),
        u64::MAX,
    );
    assert!(freed > 0);
    assert!(store.get(&old.id).is_none(), "the ended stream is gone");
    assert!(!old.dir().exists());
    assert!(store.get(&running.id).is_some(), "the running one stays");
    assert!(store.is_retired(&old.id));
    // Reopened, the store still knows not to take the trace in again, until
    // the trace itself is gone from the node.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.is_retired(&old.id));
    std::fs::remove_file(old.meta.source.join("meta.json")).unwrap();
    store.prune_retired();
    assert!(!store.is_retired(&old.id));

    // Fresh events, ended, over the byte bound: the whole stream goes too.
    let now = crt_tracer::render::now_ns();
    let done = store.stream(meta("ns", "done", 1)).unwrap();
    done.append(&rec(now, 1, "openat", b"/y"), pos(1), true, 0)
        .unwrap();
    store.enforce_retention(std::slice::from_ref(&done), Duration::from_secs(3600), 0);
    assert!(store.get(&done.id).is_none());
}

#[test]
fn a_second_store_on_the_same_directory_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).err().expect("one crtd per store");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("crtd pid {}", std::process::id())),
        "{msg}"
    );
    assert!(msg.contains("one crtd each"), "{msg}");
    // Released with the store: the next crtd takes over.
    drop(first);
    Store::open(dir.path()).unwrap();
}

#[test]
fn stored_files_are_readable_by_crtd_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = store.stream(meta("ns", "c", 1)).unwrap();
    let mut batch = Vec::new();
    for i in 0..2000u64 {
        batch.extend(rec(i, 1, "openat", &vec![b'x'; 4096]));
    }
    s.append(&batch, pos(1), false, 0).unwrap();
    s.sync().unwrap();
    let mut seen = 0;
    let mut dirs = vec![dir.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            if e.file_type().unwrap().is_dir() {
                assert_eq!(mode, 0o700, "{}", e.path().display());
                dirs.push(e.path());
            } else {
                assert_eq!(mode, 0o600, "{}", e.path().display());
                seen += 1;
            }
        }
    }
    // The lock, the stream's metadata and checkpoint, chunks and a sealed index.
    assert!(seen >= 6, "{seen} files");
}

/// A syscall record with its result (`ret`, `duration_ns`) read at the exit.
pub(crate) fn rec_with_result(
    ts: u64,
    tid: u32,
    name: &str,
    path: &[u8],
    ret: i64,
    duration_ns: Option<u64>,
) -> Vec<u8> {
    let mut buf = rec(ts, tid, name, path);
    let mut b = RecordBuilder::extend(&mut buf, 0);
    b.result(ret, duration_ns);
    b.finish();
    buf
}

/// The exit of an entry stored unfinished: a syscall record with
/// FLAG_RESUMED and the result.
pub(crate) fn exit_rec(ts: u64, tid: u32, name: &str, ret: i64, duration_ns: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut b = RecordBuilder::begin(&mut buf, KIND_SYSCALL, ts, tid, NATIVE, nr(name), &[0; 6]);
    b.set_comm(b"app");
    b.set_flags(crt_tracer::record::FLAG_RESUMED);
    b.result(ret, Some(duration_ns));
    b.finish();
    buf
}

#[test]
fn results_filter_failed_succeeded_errno_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let s = store.stream(meta("ns", "results", 1)).unwrap();
    let mut batch = Vec::new();
    // ts 1: no result (no BPF); 2: ENOENT fast; 3: fd 3 slow; 4: EACCES slow;
    // 5: an exit (of an unfinished read) that returned 5 after 2 ms.
    batch.extend(rec(1, 7, "openat", b"/a"));
    batch.extend(rec_with_result(2, 7, "openat", b"/b", -2, Some(1_000)));
    batch.extend(rec_with_result(3, 7, "openat", b"/c", 3, Some(5_000_000)));
    batch.extend(rec_with_result(4, 7, "openat", b"/d", -13, Some(2_000_000)));
    batch.extend(exit_rec(5, 7, "read", 5, 2_000_000));
    s.append(&batch, pos(1), false, 0).unwrap();
    let ts = |result: query::ResultFilter, syscalls: Vec<u32>| {
        let f = Filter {
            result,
            syscalls,
            ..Default::default()
        };
        ts_of(&page(std::slice::from_ref(&s), &f, Order::Asc, 100, None).hits)
    };
    use query::ResultFilter as R;
    // The exit is a syscall event: found by its syscall's name too.
    assert_eq!(ts(R::default(), vec![]), vec![1, 2, 3, 4, 5]);
    assert_eq!(ts(R::default(), vec![nr("read")]), vec![5]);
    let failed = R {
        failed: true,
        ..Default::default()
    };
    assert_eq!(ts(failed.clone(), vec![]), vec![2, 4]);
    let ok = R {
        succeeded: true,
        ..Default::default()
    };
    assert_eq!(ts(ok, vec![]), vec![3, 5]);
    let enoent = R {
        errnos: vec![2],
        ..Default::default()
    };
    assert_eq!(ts(enoent, vec![]), vec![2]);
    let slow = R {
        min_duration_ns: Some(2_000_000),
        ..Default::default()
    };
    assert_eq!(ts(slow.clone(), vec![]), vec![3, 4, 5]);
    let slow_failed = R {
        failed: true,
        min_duration_ns: Some(2_000_000),
        ..Default::default()
    };
    assert_eq!(ts(slow_failed, vec![]), vec![4]);
    assert_eq!(ts(slow, vec![nr("openat")]), vec![3, 4]);

    // A cursor of one result filter is refused by another.
    let f = Filter {
        result: failed,
        ..Default::default()
    };
    let first = page(std::slice::from_ref(&s), &f, Order::Asc, 1, None);
    let other = Filter::default();
    assert!(query::run(
        std::slice::from_ref(&s),
        &other,
        Order::Asc,
        1,
        Some(&first.next),
        budget()
    )
    .is_err());
}
