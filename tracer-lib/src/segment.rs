//! Trace segments: the durable, bounded, per-container store of event records.
//!
//! A trace is a directory of numbered segment files (`0000000001.seg`, ...).
//! Each starts with a 16-byte header and then holds whole records back to
//! back; the writer rotates to a new segment when one reaches its size and
//! deletes the oldest segments when the trace would exceed its bound. A reader
//! may follow the trace while it is written: it only ever consumes whole
//! records, and picks up where it stopped.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::record::{self, Record, RecordError};

pub const SEGMENT_MAGIC: &[u8; 8] = b"CRTSEG\0\x01";
pub const SEGMENT_HEADER_LEN: u64 = 16;
const SEGMENT_VERSION: u32 = 1;

/// How large a trace may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
    /// The oldest segments are deleted while the trace holds more than this.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            segment_bytes: 8 << 20,
            max_bytes: 128 << 20,
        }
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:010}.seg"))
}

/// The sequence numbers of the segments in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            name.strip_suffix(".seg")?.parse::<u64>().ok()
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The ledger of deleted segments in a trace directory: one line per
/// segment the bound deleted (`seq records ts_min ts_max`), so a reader that
/// arrives too late can say exactly what it never saw.
pub const EVICTED_LEDGER: &str = "evicted";
/// The ledger is cut back to its newest half beyond this size.
const LEDGER_MAX_BYTES: u64 = 256 << 10;

/// What one segment holds: enough to describe it once it is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SegmentTally {
    seq: u64,
    bytes: u64,
    records: u64,
    ts_min: u64,
    ts_max: u64,
}

impl SegmentTally {
    fn starting(seq: u64) -> SegmentTally {
        SegmentTally {
            seq,
            bytes: SEGMENT_HEADER_LEN,
            ts_min: u64::MAX,
            ..Default::default()
        }
    }

    /// Counts the whole records of `batch` (their headers only).
    fn add(&mut self, batch: &[u8]) {
        let mut off = 0;
        while let Some(head) = batch.get(off..off + 16) {
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&head[8..16]);
            let ts = u64::from_le_bytes(ts);
            self.records += 1;
            self.ts_min = self.ts_min.min(ts);
            self.ts_max = self.ts_max.max(ts);
            if len == 0 {
                break;
            }
            off += len;
        }
        self.bytes += batch.len() as u64;
    }
}

/// Appends record batches to a trace directory.
pub struct SegmentWriter {
    dir: PathBuf,
    limits: Limits,
    current: File,
    current_seq: u64,
    current_len: u64,
    current_tally: SegmentTally,
    /// Closed segments, oldest first.
    closed: VecDeque<SegmentTally>,
    /// Bytes deleted to stay within `max_bytes`.
    evicted_bytes: u64,
}

impl SegmentWriter {
    /// Starts a trace in `dir` (which must exist and should be empty).
    pub fn create(dir: &Path, limits: Limits) -> io::Result<Self> {
        let first = list_segments(dir)?.last().map_or(1, |s| s + 1);
        let current = Self::new_segment(dir, first)?;
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            limits,
            current,
            current_seq: first,
            current_len: SEGMENT_HEADER_LEN,
            current_tally: SegmentTally::starting(first),
            closed: VecDeque::new(),
            evicted_bytes: 0,
        })
    }

    fn new_segment(dir: &Path, seq: u64) -> io::Result<File> {
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(segment_path(dir, seq))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        header[..8].copy_from_slice(SEGMENT_MAGIC);
        header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        f.write_all(&header)?;
        Ok(f)
    }

    /// Appends whole records. A batch that would overflow the current segment
    /// is split at a record boundary, so no record ever spans two segments.
    pub fn append(&mut self, mut batch: &[u8]) -> io::Result<()> {
        while !batch.is_empty() {
            let room = self.limits.segment_bytes.saturating_sub(self.current_len);
            let take = if (batch.len() as u64) <= room {
                batch.len()
            } else {
                let fit = whole_records_within(batch, room as usize);
                if fit == 0 && self.current_len > SEGMENT_HEADER_LEN {
                    self.rotate()?;
                    continue;
                }
                // A record larger than a whole segment still goes in, alone.
                fit.max(first_record_len(batch))
            };
            self.current.write_all(&batch[..take])?;
            self.current_tally.add(&batch[..take]);
            self.current_len += take as u64;
            batch = &batch[take..];
            if self.current_len >= self.limits.segment_bytes {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let next = self.current_seq + 1;
        let file = Self::new_segment(&self.dir, next)?;
        let old = std::mem::replace(&mut self.current, file);
        drop(old);
        let mut closed = std::mem::replace(&mut self.current_tally, SegmentTally::starting(next));
        closed.bytes = self.current_len;
        self.closed.push_back(closed);
        self.current_seq = next;
        self.current_len = SEGMENT_HEADER_LEN;
        self.enforce_bound();
        Ok(())
    }

    /// Deletes the oldest closed segments until they and a full current
    /// segment fit in `max_bytes`, so the bound holds at every moment. Each
    /// goes into the ledger first, so nothing is deleted unaccounted for.
    fn enforce_bound(&mut self) {
        let current = self.current_len.max(self.limits.segment_bytes);
        let mut total: u64 = current + self.closed.iter().map(|t| t.bytes).sum::<u64>();
        let mut ledger = String::new();
        let mut gone = Vec::new();
        while total > self.limits.max_bytes {
            let Some(t) = self.closed.pop_front() else {
                break;
            };
            ledger.push_str(&format!(
                "{} {} {} {}\n",
                t.seq,
                t.records,
                if t.records == 0 { 0 } else { t.ts_min },
                t.ts_max
            ));
            gone.push(t.seq);
            total -= t.bytes;
            self.evicted_bytes += t.bytes;
        }
        if gone.is_empty() {
            return;
        }
        // Best effort: a ledger that cannot be written only costs the
        // reader the count and times of the gap, never the bound.
        let _ = append_ledger(&self.dir, ledger.as_bytes());
        for seq in gone {
            let _ = fs::remove_file(segment_path(&self.dir, seq));
        }
    }

    /// Flushes the current segment to stable storage.
    pub fn sync(&mut self) -> io::Result<()> {
        self.current.sync_data()
    }

    /// Bytes deleted so far to keep the trace within its bound.
    pub fn evicted_bytes(&self) -> u64 {
        self.evicted_bytes
    }

    /// Bytes the trace holds now.
    pub fn total_bytes(&self) -> u64 {
        self.current_len + self.closed.iter().map(|t| t.bytes).sum::<u64>()
    }
}

fn append_ledger(dir: &Path, lines: &[u8]) -> io::Result<()> {
    let path = dir.join(EVICTED_LEDGER);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(lines)?;
    if f.metadata()?.len() > LEDGER_MAX_BYTES {
        // Keep the newest half: a reader that far behind learns that
        // segments are gone, if no longer how many records they held.
        let text = fs::read(&path)?;
        let mut cut = text.len() / 2;
        while cut < text.len() && text[cut - 1] != b'\n' {
            cut += 1;
        }
        let tmp = path.with_extension("tmp");
        {
            let mut t = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            t.write_all(&text[cut..])?;
        }
        fs::rename(tmp, path)?;
    }
    Ok(())
}

/// Segments a reader found deleted before it could read them, and what the
/// ledger says they held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gap {
    /// Segments deleted unread.
    pub segments: u64,
    /// Records they held, as far as the ledger knows.
    pub records: u64,
    /// The ledger knew every one of those segments (else `records` is a floor).
    pub complete: bool,
    /// Time range of those records (ns; 0 when unknown): `ts_min` is no
    /// later than the first lost record (the last one read, when the reader
    /// had read part of the first lost segment), `ts_max` the last.
    pub ts_min: u64,
    pub ts_max: u64,
}

impl Gap {
    /// Segments `from..to` of the trace in `dir`, as its ledger has them.
    fn of(dir: &Path, from: u64, to: u64) -> Gap {
        let mut g = Gap {
            segments: to.saturating_sub(from),
            ..Default::default()
        };
        let mut known = 0;
        let text = fs::read_to_string(dir.join(EVICTED_LEDGER)).unwrap_or_default();
        for line in text.lines() {
            let f: Vec<u64> = line.split(' ').filter_map(|v| v.parse().ok()).collect();
            let [seq, records, ts_min, ts_max] = f[..] else {
                continue;
            };
            if seq < from || seq >= to {
                continue;
            }
            known += 1;
            g.records += records;
            if records > 0 {
                g.ts_min = if g.ts_min == 0 {
                    ts_min
                } else {
                    g.ts_min.min(ts_min)
                };
                g.ts_max = g.ts_max.max(ts_max);
            }
        }
        g.complete = known == g.segments;
        g
    }

    fn merge(self, o: Gap) -> Gap {
        let min = |a: u64, b: u64| match (a, b) {
            (0, x) | (x, 0) => x,
            (a, b) => a.min(b),
        };
        Gap {
            segments: self.segments + o.segments,
            records: self.records + o.records,
            complete: self.complete && o.complete,
            ts_min: min(self.ts_min, o.ts_min),
            ts_max: self.ts_max.max(o.ts_max),
        }
    }
}

fn first_record_len(batch: &[u8]) -> usize {
    record::record_len(batch).unwrap_or(batch.len())
}

/// The length of the longest prefix of `batch` made of whole records that fits in `room`.
fn whole_records_within(batch: &[u8], room: usize) -> usize {
    let mut used = 0;
    while used < batch.len() {
        let Ok(len) = record::record_len(&batch[used..]) else {
            break;
        };
        if used + len > room {
            break;
        }
        used += len;
    }
    used
}

/// Where a record starts: segment number and byte offset in it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
}

/// What a read of a trace found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadStatus {
    /// Records handed to the callback.
    pub records: u64,
    /// The read stopped at its record budget: there may be more right now.
    pub more: bool,
    /// An END record was seen: the trace is complete.
    pub ended: bool,
    /// Segments that were deleted (bounded storage) before they could be read.
    pub segments_missed: u64,
    /// What those segments held. A gap is always reported before any record
    /// that follows it in the same read: records before a gap end the read.
    pub gap: Option<Gap>,
}

/// Reads a trace from the start, and on later calls, what was added since.
pub struct TraceReader {
    dir: PathBuf,
    seq: u64,
    offset: u64,
    ended: bool,
    /// Records read from segment `seq`, and the time of the last: what a gap
    /// that takes the segment must not count again. `None` when the reader
    /// started in the middle of the segment and cannot know.
    in_segment: Option<(u64, u64)>,
}

const READ_CHUNK: usize = 1 << 20;

impl TraceReader {
    pub fn open(dir: &Path) -> Self {
        TraceReader {
            dir: dir.to_path_buf(),
            seq: 0,
            offset: SEGMENT_HEADER_LEN,
            ended: false,
            in_segment: Some((0, 0)),
        }
    }

    /// Resumes reading at `pos` (as returned by [`Self::position`]).
    pub fn open_at(dir: &Path, pos: Position) -> Self {
        TraceReader {
            dir: dir.to_path_buf(),
            seq: pos.seq,
            offset: pos.offset.max(SEGMENT_HEADER_LEN),
            ended: false,
            in_segment: (pos.offset <= SEGMENT_HEADER_LEN).then_some((0, 0)),
        }
    }

    /// Where the next record will be read from.
    pub fn position(&self) -> Position {
        Position {
            seq: self.seq,
            offset: self.offset,
        }
    }

    /// Hands every whole record not yet seen to `f`, oldest first.
    pub fn poll(&mut self, mut f: impl FnMut(&Record<'_>)) -> io::Result<ReadStatus> {
        self.poll_limited(u64::MAX, |r, _| f(r))
    }

    /// Like [`Self::poll`], but stops after `budget` records (so one busy
    /// trace cannot hold a reader that serves many) and tells `f` where each
    /// record starts.
    pub fn poll_limited(
        &mut self,
        budget: u64,
        mut f: impl FnMut(&Record<'_>, Position),
    ) -> io::Result<ReadStatus> {
        let mut status = ReadStatus {
            ended: self.ended,
            ..Default::default()
        };
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let seqs = match list_segments(&self.dir) {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(status),
                Err(e) => return Err(e),
            };
            let Some(&oldest) = seqs.first() else {
                return Ok(status);
            };
            // Where to read next, if our segment is gone (deleted unread).
            let skip_to = if self.seq < oldest {
                Some(oldest)
            } else if !seqs.contains(&self.seq) {
                match seqs.iter().copied().find(|&s| s > self.seq) {
                    Some(n) => Some(n),
                    None => return Ok(status),
                }
            } else {
                None
            };
            if let Some(next) = skip_to {
                // A reader that starts on a trace whose first segments are
                // gone (it came late) missed them just the same.
                let from = self.seq.max(1);
                if next > from {
                    // The caller places a gap marker between what it has and
                    // what follows: records before the gap go back first.
                    if status.records > 0 {
                        return Ok(status);
                    }
                    status.segments_missed += next - from;
                    let mut g = Gap::of(&self.dir, from, next);
                    if self.offset > SEGMENT_HEADER_LEN {
                        // Part of the first lost segment was read already.
                        match self.in_segment {
                            Some((read, last_ts)) => {
                                g.records = g.records.saturating_sub(read);
                                g.ts_min = g.ts_min.max(last_ts);
                            }
                            None => g.complete = false,
                        }
                    }
                    status.gap = Some(match status.gap {
                        Some(prev) => prev.merge(g),
                        None => g,
                    });
                }
                self.seq = next;
                self.offset = SEGMENT_HEADER_LEN;
                self.in_segment = Some((0, 0));
            }
            let has_newer = seqs.iter().any(|&s| s > self.seq);
            match self.read_segment(&mut buf, &mut status, budget, &mut f) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            if status.more {
                return Ok(status);
            }
            if has_newer {
                self.seq += 1;
                self.offset = SEGMENT_HEADER_LEN;
                self.in_segment = Some((0, 0));
                continue;
            }
            return Ok(status);
        }
    }

    fn read_segment(
        &mut self,
        buf: &mut Vec<u8>,
        status: &mut ReadStatus,
        budget: u64,
        f: &mut impl FnMut(&Record<'_>, Position),
    ) -> io::Result<()> {
        let mut file = File::open(segment_path(&self.dir, self.seq))?;
        if self.offset == SEGMENT_HEADER_LEN {
            let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
            match file.read_exact(&mut header) {
                Ok(()) => {}
                // The writer has created the file but not yet written its header.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            if &header[..8] != SEGMENT_MAGIC {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a CRT trace segment",
                        segment_path(&self.dir, self.seq).display()
                    ),
                ));
            }
        }
        file.seek(SeekFrom::Start(self.offset))?;
        loop {
            buf.clear();
            let n = Read::by_ref(&mut file)
                .take(READ_CHUNK as u64)
                .read_to_end(buf)?;
            if n == 0 {
                return Ok(());
            }
            let mut records = record::Records::new(buf);
            let mut consumed = 0;
            while status.records < budget {
                let Some(rec) = records.next() else {
                    break;
                };
                if rec.kind == record::KIND_END {
                    self.ended = true;
                    status.ended = true;
                }
                status.records += 1;
                if let Some((n, last)) = &mut self.in_segment {
                    *n += 1;
                    *last = rec.ts_ns;
                }
                let pos = Position {
                    seq: self.seq,
                    offset: self.offset + consumed as u64,
                };
                consumed = records.consumed;
                f(&rec, pos);
            }
            if status.records >= budget && !buf[consumed..].is_empty() {
                self.offset += consumed as u64;
                status.more = true;
                return Ok(());
            }
            if status.records >= budget {
                self.offset += consumed as u64;
                status.more = true;
                return Ok(());
            }
            if let Some(RecordError::BadLength(len)) = records.error {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is corrupt at offset {}: record length {len}",
                        segment_path(&self.dir, self.seq).display(),
                        self.offset + consumed as u64
                    ),
                ));
            }
            self.offset += consumed as u64;
            if consumed == 0 || n < READ_CHUNK {
                // The rest is a record still being written: come back later.
                return Ok(());
            }
            file.seek(SeekFrom::Start(self.offset))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{simple, RecordBuilder, KIND_END, KIND_SYSCALL};

    fn syscall_record(tid: u32, path: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut b = RecordBuilder::begin(&mut buf, KIND_SYSCALL, 1, tid, 0xc000_003e, 257, &[0; 6]);
        b.bytes(1, path, false);
        b.finish();
        buf
    }

    fn read_all(dir: &Path) -> (Vec<u32>, ReadStatus) {
        let mut tids = Vec::new();
        let st = TraceReader::open(dir).poll(|r| tids.push(r.tid)).unwrap();
        (tids, st)
    }

    #[test]
    fn records_written_are_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), Limits::default()).unwrap();
        let mut batch = Vec::new();
        for tid in 1..=100 {
            batch.extend(syscall_record(tid, b"/etc/hosts"));
        }
        w.append(&batch).unwrap();
        w.append(&simple(KIND_END, 2, 0, &[0; 6], b"")).unwrap();
        let (tids, st) = read_all(dir.path());
        assert_eq!(tids.len(), 101);
        assert_eq!(&tids[..100], (1..=100).collect::<Vec<_>>().as_slice());
        assert!(st.ended);
    }

    #[test]
    fn segments_rotate_at_record_boundaries_and_stay_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            segment_bytes: 4096,
            max_bytes: 16384,
        };
        let mut w = SegmentWriter::create(dir.path(), limits).unwrap();
        for tid in 0..2000 {
            w.append(&syscall_record(tid, b"/some/path/that/takes/room"))
                .unwrap();
        }
        let on_disk: u64 = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| fs::metadata(segment_path(dir.path(), *s)).unwrap().len())
            .sum();
        assert!(on_disk <= limits.max_bytes, "{on_disk} bytes on disk");
        assert!(w.evicted_bytes() > 0);
        // What is left reads cleanly and ends with the newest record.
        let (tids, st) = read_all(dir.path());
        assert!(!tids.is_empty());
        assert_eq!(*tids.last().unwrap(), 1999);
        assert!(tids.windows(2).all(|p| p[1] == p[0] + 1));
        // What the bound deleted is said, not hidden.
        assert!(st.segments_missed > 0);
        assert_eq!(st.gap.map(|g| g.records), Some(2000 - tids.len() as u64));
    }

    #[test]
    fn a_follower_sees_only_new_records_and_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(
            dir.path(),
            Limits {
                segment_bytes: 1024,
                max_bytes: 1 << 20,
            },
        )
        .unwrap();
        let mut reader = TraceReader::open(dir.path());
        w.append(&syscall_record(1, b"a")).unwrap();
        let mut seen = Vec::new();
        reader.poll(|r| seen.push(r.tid)).unwrap();
        assert_eq!(seen, vec![1]);
        for tid in 2..40 {
            w.append(&syscall_record(tid, b"b")).unwrap();
        }
        let st = reader.poll(|r| seen.push(r.tid)).unwrap();
        assert_eq!(seen, (1..40).collect::<Vec<_>>());
        assert!(!st.ended);
        w.append(&simple(KIND_END, 2, 0, &[0; 6], b"")).unwrap();
        assert!(reader.poll(|_| {}).unwrap().ended);
    }

    #[test]
    fn a_half_written_record_is_left_for_later() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), Limits::default()).unwrap();
        let rec = syscall_record(7, b"/x");
        w.append(&rec).unwrap();
        // Simulate a write in progress: half a record at the end of the file.
        let path = segment_path(dir.path(), 1);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        Write::write_all(&mut f, &rec[..20]).unwrap();
        let mut reader = TraceReader::open(dir.path());
        let mut seen = Vec::new();
        reader.poll(|r| seen.push(r.tid)).unwrap();
        assert_eq!(seen, vec![7]);
        Write::write_all(&mut f, &rec[20..]).unwrap();
        reader.poll(|r| seen.push(r.tid)).unwrap();
        assert_eq!(seen, vec![7, 7]);
    }

    #[test]
    fn a_reader_with_a_budget_resumes_exactly_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(
            dir.path(),
            Limits {
                segment_bytes: 1024,
                max_bytes: 1 << 20,
            },
        )
        .unwrap();
        for tid in 0..50 {
            w.append(&syscall_record(tid, b"/p")).unwrap();
        }
        let mut r = TraceReader::open(dir.path());
        let mut seen = Vec::new();
        let mut positions = Vec::new();
        let st = r
            .poll_limited(7, |rec, pos| {
                seen.push(rec.tid);
                positions.push(pos);
            })
            .unwrap();
        assert_eq!(st.records, 7);
        assert!(st.more);
        // A new reader opened at the saved position carries on from there.
        let mut r2 = TraceReader::open_at(dir.path(), r.position());
        r2.poll_limited(u64::MAX, |rec, pos| {
            seen.push(rec.tid);
            positions.push(pos);
        })
        .unwrap();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert!(positions.windows(2).all(|p| p[0] < p[1]));
        // Reopening at any record's position starts with that record.
        let mut r3 = TraceReader::open_at(dir.path(), positions[23]);
        let mut first = None;
        r3.poll_limited(1, |rec, _| first = Some(rec.tid)).unwrap();
        assert_eq!(first, Some(23));
    }

    fn timed_record(ts: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut b = RecordBuilder::begin(
            &mut buf,
            KIND_SYSCALL,
            ts,
            ts as u32,
            0xc000_003e,
            257,
            &[0; 6],
        );
        b.bytes(1, b"/some/path/that/takes/room", false);
        b.finish();
        buf
    }

    #[test]
    fn a_reader_that_falls_behind_the_bound_is_told_exactly_what_it_missed() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            segment_bytes: 4096,
            max_bytes: 16384,
        };
        let mut w = SegmentWriter::create(dir.path(), limits).unwrap();
        let mut reader = TraceReader::open(dir.path());
        for ts in 1..=10 {
            w.append(&timed_record(ts)).unwrap();
        }
        let mut seen = Vec::new();
        reader.poll(|r| seen.push(r.ts_ns)).unwrap();
        assert_eq!(seen, (1..=10).collect::<Vec<_>>());
        // The reader stops; the writer goes on past its bound.
        for ts in 11..=2000 {
            w.append(&timed_record(ts)).unwrap();
        }
        let mut after = Vec::new();
        let st = reader.poll(|r| after.push(r.ts_ns)).unwrap();
        let g = st.gap.expect("a gap is reported");
        let first_after = after[0];
        // Every record is either read or counted in the gap, with its times.
        assert_eq!(10 + g.records + after.len() as u64, 2000, "{g:?}");
        assert!(g.complete, "{g:?}");
        // The lost records lie after the last one read (ts 10).
        assert_eq!((g.ts_min, g.ts_max), (10, first_after - 1), "{g:?}");
        assert_eq!(g.segments, st.segments_missed);
        assert_eq!(*after.last().unwrap(), 2000);
    }

    #[test]
    fn records_before_a_gap_end_the_read_so_the_gap_sits_between() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            segment_bytes: 4096,
            max_bytes: 1 << 20,
        };
        let mut w = SegmentWriter::create(dir.path(), limits).unwrap();
        for ts in 1..=200 {
            w.append(&timed_record(ts)).unwrap();
        }
        let mut reader = TraceReader::open(dir.path());
        let mut seen = Vec::new();
        reader.poll_limited(5, |r, _| seen.push(r.ts_ns)).unwrap();
        // Segment 2 goes while segment 1 is still being read (the writer's
        // bound racing the reader), ledger first, as the writer does it.
        let seg2 = segment_path(dir.path(), 2);
        let data = fs::read(&seg2).unwrap();
        let lost: Vec<u64> = record::Records::new(&data[SEGMENT_HEADER_LEN as usize..])
            .map(|r| r.ts_ns)
            .collect();
        let line = format!("2 {} {} {}\n", lost.len(), lost[0], lost[lost.len() - 1]);
        append_ledger(dir.path(), line.as_bytes()).unwrap();
        fs::remove_file(&seg2).unwrap();
        // The rest of segment 1 comes back alone...
        let st = reader.poll(|r| seen.push(r.ts_ns)).unwrap();
        assert!(st.gap.is_none());
        assert_eq!(*seen.last().unwrap(), lost[0] - 1);
        // ...then the gap, before what follows it.
        let st = reader.poll(|r| seen.push(r.ts_ns)).unwrap();
        let g = st.gap.expect("the gap");
        assert_eq!(
            (g.records, g.segments, g.complete),
            (lost.len() as u64, 1, true)
        );
        assert_eq!((g.ts_min, g.ts_max), (lost[0], lost[lost.len() - 1]));
        assert_eq!(seen.len() as u64 + g.records, 200);
        assert_eq!(*seen.last().unwrap(), 200);
    }

    #[test]
    fn a_reader_that_arrives_after_the_first_segments_went_is_told_too() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            segment_bytes: 4096,
            max_bytes: 16384,
        };
        let mut w = SegmentWriter::create(dir.path(), limits).unwrap();
        for ts in 1..=2000 {
            w.append(&timed_record(ts)).unwrap();
        }
        let mut seen = Vec::new();
        let st = TraceReader::open(dir.path())
            .poll(|r| seen.push(r.ts_ns))
            .unwrap();
        let g = st.gap.expect("the start of the trace is gone");
        assert_eq!((g.ts_min, g.ts_max), (1, seen[0] - 1), "{g:?}");
        assert_eq!(g.records + seen.len() as u64, 2000);
        assert!(g.complete);
        // A trace that lost nothing reports nothing.
        let fresh = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(fresh.path(), limits).unwrap();
        w.append(&timed_record(1)).unwrap();
        assert!(TraceReader::open(fresh.path())
            .poll(|_| {})
            .unwrap()
            .gap
            .is_none());
    }

    #[test]
    fn the_ledger_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let line = "1234567890 1234567 1795694400000000000 1795694400000000000\n";
        for _ in 0..(2 * LEDGER_MAX_BYTES as usize / line.len()) {
            append_ledger(dir.path(), line.as_bytes()).unwrap();
        }
        let len = fs::metadata(dir.path().join(EVICTED_LEDGER)).unwrap().len();
        assert!(len <= LEDGER_MAX_BYTES + line.len() as u64, "{len}");
        let text = fs::read_to_string(dir.path().join(EVICTED_LEDGER)).unwrap();
        assert!(
            text.lines().all(|l| l.len() == line.len() - 1),
            "whole lines only"
        );
    }

    #[test]
    fn a_missing_trace_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (tids, st) = read_all(&dir.path().join("nope"));
        assert!(tids.is_empty());
        assert!(!st.ended);
    }
}
