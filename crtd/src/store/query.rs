//! Queries over streams: filter by time, syscall, pid, kind and text, in
//! time order either way, a page at a time.
//!
//! Each stream is scanned block by block, skipping blocks whose summary
//! cannot match; the streams' matches are merged by time. A cursor holds,
//! per stream, where the next page starts, so pages never repeat or skip an
//! event, and events stored after a page was served appear on the next.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crt_tracer::decode;
use crt_tracer::node_files::fnv1a64;
use crt_tracer::record::{self, Record, Records, KIND_SYSCALL};
use crt_tracer::syscalls::NATIVE_AUDIT_ARCH;
use serde::{Deserialize, Serialize};

use super::chunk::{self, Block, ChunkIndex};
use super::Stream;

/// Which events a query wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Wall-clock bounds, ns since the epoch: `since <= ts < until`.
    pub since: Option<u64>,
    pub until: Option<u64>,
    /// Native syscall numbers (empty: any).
    pub syscalls: Vec<u32>,
    /// Thread ids (empty: any).
    pub pids: Vec<u32>,
    /// Record kinds, as a bit set of `1 << kind` (0: syscalls only).
    pub kinds: u8,
    /// A substring of the rendered event (syscall name, arguments, process name).
    pub text: Option<String>,
    /// Conditions on syscalls' results (any set: syscalls without a result
    /// are left out; other kinds are not affected).
    pub result: ResultFilter,
    /// How the matching events' arguments are shown (`strings`,
    /// `string_limit`); it selects nothing.
    pub render: crt_tracer::decode::RenderOptions,
}

pub use crt_tracer::results::ResultFilter;

/// The result conditions as text for the cursor digest (empty when none, so
/// cursors of filters without them keep their digest).
fn result_canonical(r: &ResultFilter) -> String {
    if r.is_empty() {
        return String::new();
    }
    let errnos: Vec<String> = r.errnos.iter().map(i32::to_string).collect();
    format!(
        ", result: {{ failed: {}, succeeded: {}, errnos: [{}], min_duration_ns: {:?} }}",
        r.failed,
        r.succeeded,
        errnos.join(", "),
        r.min_duration_ns
    )
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    #[default]
    #[serde(rename = "asc")]
    Asc,
    #[serde(rename = "desc")]
    Desc,
}

/// Where each stream's next page starts: `(chunk, offset)` of the first
/// record not yet returned (ascending) or of the last one returned
/// (descending, exclusive).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub order: Order,
    pub positions: BTreeMap<String, (u64, u64)>,
    /// A digest of the filter, so a cursor is not reused with another.
    pub filter: u64,
    /// When the query that made it ran (ns since the epoch; absent in cursors made
    /// before it was kept): a live stream resumed from this cursor takes streams
    /// stored since then from their start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
}

impl Cursor {
    /// A cursor for `filter` that starts each stream at `positions`.
    pub fn at(filter: &Filter, order: Order, positions: BTreeMap<String, (u64, u64)>) -> Cursor {
        Cursor {
            order,
            positions,
            filter: digest(filter, order),
            at: None,
        }
    }

    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        json.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        if !s.len().is_multiple_of(2) || s.len() > 1 << 20 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..s.len() / 2)
            .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        serde_json::from_slice(&bytes?).ok()
    }
}

/// One event found.
pub struct Hit {
    pub stream: Arc<Stream>,
    pub record: Vec<u8>,
    /// Where the record ends in its stream.
    pub end: super::StorePos,
}

impl Hit {
    pub fn record(&self) -> Record<'_> {
        record::decode(&self.record)
            .expect("stored records are whole")
            .0
    }
}

pub struct QueryResult {
    pub hits: Vec<Hit>,
    /// Where the next page starts (also after the last page: new events
    /// stored later will be found from there).
    pub next: Cursor,
    /// The query stopped at its scan budget before the page was full.
    pub truncated: bool,
    /// Records examined.
    pub scanned: u64,
}

fn digest(f: &Filter, order: Order) -> u64 {
    fnv1a64(canonical(f, order).as_bytes())
}

/// The filter and order as the text their digest is taken of. Written out
/// here, not by `Debug`, so that a change to `Filter` or to derived output
/// cannot invalidate cursors saved on disk (the OTLP export's) or held by
/// clients. The layout is the one `Debug` printed when cursors were first
/// saved, so those stay valid; a field added later must be left out while
/// it has its default value, for the same reason.
fn canonical(f: &Filter, order: Order) -> String {
    let opt = |v: Option<u64>| v.map_or("None".to_string(), |n| format!("Some({n})"));
    let list = |v: &[u32]| {
        let items: Vec<String> = v.iter().map(u32::to_string).collect();
        format!("[{}]", items.join(", "))
    };
    let text = f.text.as_deref().map_or("None".to_string(), |t| {
        let mut quoted = String::with_capacity(t.len() + 8);
        for c in t.chars() {
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                '\n' => quoted.push_str("\\n"),
                '\r' => quoted.push_str("\\r"),
                '\t' => quoted.push_str("\\t"),
                '\0' => quoted.push_str("\\0"),
                c if c.is_control() => quoted.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => quoted.push(c),
            }
        }
        format!("Some(\"{quoted}\")")
    });
    let order = match order {
        Order::Asc => "Asc",
        Order::Desc => "Desc",
    };
    format!(
        "Filter {{ since: {}, until: {}, syscalls: {}, pids: {}, kinds: {}, text: {text}{} }}{order}",
        opt(f.since),
        opt(f.until),
        list(&f.syscalls),
        list(&f.pids),
        f.kinds,
        result_canonical(&f.result)
    )
}

impl Filter {
    fn kinds(&self) -> u8 {
        if self.kinds == 0 {
            1 << KIND_SYSCALL
        } else {
            self.kinds
        }
    }

    fn bitmap(&self) -> Option<[u64; 8]> {
        if self.syscalls.is_empty() {
            return None;
        }
        let mut m = [0u64; 8];
        for &nr in &self.syscalls {
            if nr < 512 {
                m[(nr / 64) as usize] |= 1 << (nr % 64);
            }
        }
        Some(m)
    }

    fn block_may_match(&self, b: &Block, bitmap: &Option<[u64; 8]>) -> bool {
        if self.since.is_some_and(|s| b.ts_max < s) || self.until.is_some_and(|u| b.ts_min >= u) {
            return false;
        }
        let kinds = self.kinds();
        if b.kinds & kinds == 0 {
            return false;
        }
        let syscall_bit = 1u8 << KIND_SYSCALL;
        // Other kinds in the block may match regardless of syscalls.
        if b.kinds & kinds & !syscall_bit != 0 {
            return true;
        }
        match bitmap {
            None => true,
            Some(m) => b.other || m.iter().zip(b.syscalls.iter()).any(|(a, b)| a & b != 0),
        }
    }

    pub(crate) fn record_matches(&self, rec: &Record<'_>) -> bool {
        if self.since.is_some_and(|s| rec.ts_ns < s) || self.until.is_some_and(|u| rec.ts_ns >= u) {
            return false;
        }
        if self.kinds() & (1u8.checked_shl(u32::from(rec.kind)).unwrap_or(0)) == 0 {
            return false;
        }
        if rec.kind == KIND_SYSCALL {
            if !self.syscalls.is_empty()
                && (rec.arch != NATIVE_AUDIT_ARCH || !self.syscalls.contains(&rec.nr))
            {
                return false;
            }
            if !self.pids.is_empty() && !self.pids.contains(&rec.tid) {
                return false;
            }
            if !self.result.matches(rec) {
                return false;
            }
        } else if !self.pids.is_empty() && rec.tid != 0 && !self.pids.contains(&rec.tid) {
            return false;
        }
        if let Some(t) = &self.text {
            if rec.kind == KIND_SYSCALL || rec.kind == record::KIND_LOG {
                return text_of(rec).contains(t.as_str());
            }
        }
        true
    }
}

/// What a text filter searches: process name, syscall, arguments, log text.
pub fn text_of(rec: &Record<'_>) -> String {
    if rec.kind == KIND_SYSCALL {
        let (name, args) = decode::render_args(rec);
        format!(
            "{} {name}({})",
            String::from_utf8_lossy(rec.comm()),
            args.join(", ")
        )
    } else {
        rec.captures()
            .filter_map(|c| match c.data {
                record::CaptureData::Bytes { bytes, .. } => {
                    Some(String::from_utf8_lossy(bytes).into_owned())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Scans one stream in order, yielding matching records.
struct StreamScan {
    stream: Arc<Stream>,
    chunks: Vec<Arc<ChunkIndex>>,
    /// Next chunk/block to read (ascending: forward; descending: backward).
    chunk_i: isize,
    block_i: isize,
    /// Start (asc, inclusive) or end (desc, exclusive) position.
    bound: Option<(u64, u64)>,
    order: Order,
    ready: VecDeque<(u64, u64, Vec<u8>, u64)>,
    /// The position to resume from once `ready` is drained.
    resume: (u64, u64),
    done: bool,
}

impl StreamScan {
    fn new(stream: Arc<Stream>, order: Order, bound: Option<(u64, u64)>) -> StreamScan {
        let chunks = stream.chunks.read().unwrap().clone();
        let (chunk_i, block_i) = match order {
            Order::Asc => (0, 0),
            Order::Desc => {
                let last = chunks.len() as isize - 1;
                let blocks = chunks.last().map_or(0, |c| c.blocks.len() as isize);
                (last, blocks - 1)
            }
        };
        let resume = match order {
            Order::Asc => bound.unwrap_or((0, 0)),
            Order::Desc => bound.unwrap_or((u64::MAX, u64::MAX)),
        };
        StreamScan {
            stream,
            chunks,
            chunk_i,
            block_i,
            bound,
            order,
            ready: VecDeque::new(),
            resume,
            done: false,
        }
    }

    /// The next block to read, advancing the scan; `None` at the end.
    fn next_block(&mut self) -> Option<(Arc<ChunkIndex>, Block)> {
        loop {
            if self.chunk_i < 0 || self.chunk_i as usize >= self.chunks.len() {
                return None;
            }
            let c = Arc::clone(&self.chunks[self.chunk_i as usize]);
            if self.block_i < 0 || self.block_i as usize >= c.blocks.len() {
                match self.order {
                    Order::Asc => {
                        self.chunk_i += 1;
                        self.block_i = 0;
                    }
                    Order::Desc => {
                        self.chunk_i -= 1;
                        self.block_i = if self.chunk_i >= 0 {
                            self.chunks[self.chunk_i as usize].blocks.len() as isize - 1
                        } else {
                            -1
                        };
                    }
                }
                continue;
            }
            let b = c.blocks[self.block_i as usize].clone();
            match self.order {
                Order::Asc => self.block_i += 1,
                Order::Desc => self.block_i -= 1,
            }
            return Some((c, b));
        }
    }

    fn block_in_bound(&self, seq: u64, b: &Block) -> bool {
        let Some((bc, bo)) = self.bound else {
            return true;
        };
        let start = u64::from(b.offset);
        let end = start + u64::from(b.len);
        match self.order {
            Order::Asc => (seq, end) > (bc, bo),
            Order::Desc => (seq, start) < (bc, bo),
        }
    }

    /// Refills `ready` with the matches of the next blocks; false at the end.
    fn fill(&mut self, f: &Filter, bitmap: &Option<[u64; 8]>, scanned: &mut u64) -> bool {
        while self.ready.is_empty() {
            let Some((c, b)) = self.next_block() else {
                self.done = true;
                return false;
            };
            if !self.block_in_bound(c.seq, &b) || !f.block_may_match(&b, bitmap) {
                // Skipped whole: the resume point moves past it.
                self.resume = match self.order {
                    Order::Asc => (c.seq, u64::from(b.offset + b.len)).max(self.resume),
                    Order::Desc => (c.seq, u64::from(b.offset)).min(self.resume),
                };
                continue;
            }
            let Ok(data) = chunk::read_at(
                self.stream.dir(),
                c.seq,
                u64::from(b.offset),
                b.len as usize,
            ) else {
                continue;
            };
            let mut found = Vec::new();
            let mut recs = Records::new(&data);
            let mut at = 0u64;
            while let Some(rec) = recs.next() {
                let off = u64::from(b.offset) + at;
                let end = u64::from(b.offset) + recs.consumed as u64;
                at = recs.consumed as u64;
                *scanned += 1;
                let pos = (c.seq, off);
                let inside = match (self.bound, self.order) {
                    (None, _) => true,
                    (Some(bd), Order::Asc) => pos >= bd,
                    (Some(bd), Order::Desc) => pos < bd,
                };
                if inside && f.record_matches(&rec) {
                    found.push((
                        c.seq,
                        off,
                        data[off as usize - b.offset as usize..end as usize - b.offset as usize]
                            .to_vec(),
                        rec.ts_ns,
                    ));
                }
            }
            match self.order {
                Order::Asc => {
                    self.resume = (c.seq, u64::from(b.offset + b.len)).max(self.resume);
                    self.ready.extend(found);
                }
                Order::Desc => {
                    self.resume = (c.seq, u64::from(b.offset)).min(self.resume);
                    self.ready.extend(found.into_iter().rev());
                }
            }
        }
        true
    }

    fn peek_ts(&self) -> Option<u64> {
        self.ready.front().map(|r| r.3)
    }

    /// Where this stream's next page starts, given what was taken.
    fn position(&self) -> (u64, u64) {
        match (self.ready.front(), self.order) {
            (Some(r), Order::Asc) => (r.0, r.1),
            // The next (older) record to return is before this one's end.
            (Some(r), Order::Desc) => (r.0, r.1 + r.2.len() as u64),
            (None, _) => self.resume,
        }
    }
}

/// Budget of one query.
pub struct Budget {
    pub max_scanned: u64,
    pub deadline: Instant,
}

/// Runs `filter` over `streams`, returning up to `limit` events in `order`.
pub fn run(
    streams: &[Arc<Stream>],
    filter: &Filter,
    order: Order,
    limit: usize,
    cursor: Option<&Cursor>,
    budget: Budget,
) -> Result<QueryResult, String> {
    let dig = digest(filter, order);
    // Taken before any stream is read: whatever is stored later is after it.
    let at = crt_tracer::render::now_ns();
    if let Some(c) = cursor {
        if c.filter != dig || c.order != order {
            return Err("the cursor belongs to another query; repeat the query without it".into());
        }
    }
    let bitmap = filter.bitmap();
    let mut scans: Vec<StreamScan> = streams
        .iter()
        .map(|s| {
            let bound = cursor.and_then(|c| c.positions.get(&s.id).copied());
            StreamScan::new(Arc::clone(s), order, bound)
        })
        .collect();
    let mut scanned = 0u64;
    let mut truncated = false;
    // (ts, stream index): a min-heap for ascending, max-heap for descending.
    let mut asc: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut desc: BinaryHeap<(u64, usize)> = BinaryHeap::new();
    for (i, s) in scans.iter_mut().enumerate() {
        if s.fill(filter, &bitmap, &mut scanned) {
            let ts = s.peek_ts().unwrap_or(0);
            match order {
                Order::Asc => asc.push(Reverse((ts, i))),
                Order::Desc => desc.push((ts, i)),
            }
        }
    }
    let mut hits = Vec::new();
    while hits.len() < limit {
        if scanned > budget.max_scanned || Instant::now() > budget.deadline {
            truncated = true;
            break;
        }
        let i = match order {
            Order::Asc => asc.pop().map(|Reverse((_, i))| i),
            Order::Desc => desc.pop().map(|(_, i)| i),
        };
        let Some(i) = i else {
            break;
        };
        let s = &mut scans[i];
        let (chunk, offset, record, _) = s
            .ready
            .pop_front()
            .expect("a stream in the heap has a record");
        let end = (chunk, offset + record.len() as u64);
        hits.push(Hit {
            stream: Arc::clone(&s.stream),
            record,
            end,
        });
        if s.fill(filter, &bitmap, &mut scanned) {
            let ts = s.peek_ts().unwrap_or(0);
            match order {
                Order::Asc => asc.push(Reverse((ts, i))),
                Order::Desc => desc.push((ts, i)),
            }
        }
    }
    let positions = scans
        .iter()
        .map(|s| (s.stream.id.clone(), s.position()))
        .collect();
    Ok(QueryResult {
        hits,
        next: Cursor {
            order,
            positions,
            filter: dig,
            at: Some(at),
        },
        truncated,
        scanned,
    })
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    /// The digests below are what cursors saved before the digest was
    /// written out by hand carry (taken of `Debug` then): they must keep
    /// matching, or saved OTLP export positions and clients' cursors break.
    #[test]
    fn cursor_digests_stay_those_already_saved() {
        let full = Filter {
            since: Some(1_700_000_000_000_000_000),
            until: Some(1_800_000_000_000_000_000),
            syscalls: vec![257, 2],
            pids: vec![42],
            kinds: 5,
            text: Some("a \"q\" \\ b\n\té\u{1}".into()),
            result: Default::default(),
            // How events are shown selects nothing: not in the digest.
            render: crt_tracer::decode::RenderOptions {
                strings: crt_tracer::escape::StringStyle::AllHex,
                string_limit: 300,
            },
        };
        let export = Filter {
            since: Some(1_700_000_000_000_000_000),
            kinds: 154,
            ..Default::default()
        };
        for (f, order, want) in [
            (&Filter::default(), Order::Asc, 0x5a32_ba2b_0a47_7f48),
            (&Filter::default(), Order::Desc, 0x6ee5_fc0a_7497_825a),
            (&full, Order::Asc, 0xe1dd_eed3_fb64_4111),
            (&full, Order::Desc, 0x0487_5650_8d3a_b799),
            (&export, Order::Asc, 0x539a_0b91_d698_17d3),
        ] {
            assert_eq!(digest(f, order), want, "{}", canonical(f, order));
        }
    }

    #[test]
    fn filters_that_differ_have_different_digests() {
        let a = Filter {
            text: Some("open".into()),
            ..Default::default()
        };
        let b = Filter {
            text: Some("open\"".into()),
            ..Default::default()
        };
        let c = Filter {
            pids: vec![1],
            ..Default::default()
        };
        let d = Filter {
            syscalls: vec![1],
            ..Default::default()
        };
        let e = Filter {
            result: ResultFilter {
                failed: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let f = Filter {
            result: ResultFilter {
                min_duration_ns: Some(1_000_000),
                ..Default::default()
            },
            ..Default::default()
        };
        let all = [&a, &b, &c, &d, &e, &f, &Filter::default()];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(digest(x, Order::Asc), digest(y, Order::Asc));
            }
            assert_ne!(digest(x, Order::Asc), digest(x, Order::Desc));
        }
    }
}
