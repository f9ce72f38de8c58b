//! The binary event record: what the notify loop writes into its queue and
//! what trace segments hold on disk. One layout serves both, so storing a batch
//! is a single write and nothing is re-encoded on the way.
//!
//! A record is a fixed 96-byte header, then its captures. All integers are
//! little-endian.
//!
//! ```text
//! 0   u32  total length of the record in bytes (header + captures)
//! 4   u8   kind (KIND_SYSCALL, KIND_DROPS, KIND_END, KIND_PROCESS, ...)
//! 5   u8   flags (FLAG_*)
//! 6   u16  number of captures
//! 8   u64  wall-clock time, ns since the Unix epoch
//! 16  u32  thread id as the kernel reported it (the shim's pid namespace)
//! 20  u32  audit arch (AUDIT_ARCH_X86_64, ...)
//! 24  u32  syscall number
//! 28  u32  seq: joins a syscall entry to its exit (0: none)
//! 32  6*u64 raw syscall arguments
//! 80  [u8;16] process name (comm), NUL-padded; filled in by the storage side
//! 96  captures: u8 arg index, u8 capture kind, u8 capture flags, u8 0, u32 len, len bytes
//! ```
//!
//! A `Strings` capture's payload is a list of `u16 len` (high bit: this string
//! was cut short) followed by that many bytes.
//!
//! A syscall's result travels as captures too, so records written before
//! results existed read the same: a `CAPTURE_RESULT` capture (argument index
//! [`RESULT_ARG`]) holds `i64 ret, u64 duration_ns`, and `CAPTURE_OUT`
//! captures hold what the syscall wrote to memory (a read's data, a `stat`
//! struct), read at its exit. A syscall stored before its exit was known has
//! [`FLAG_UNFINISHED`]; its result comes later in a syscall record with
//! [`FLAG_RESUMED`] and the same tid and seq, as strace's `<unfinished ...>`
//! / `<... resumed>`. (A resumed record is a syscall record, so whatever
//! selects syscalls by name or number selects it too.)

use std::fmt;

pub const HEADER_LEN: usize = 96;
pub const CAPTURE_HEADER_LEN: usize = 8;
/// Records never exceed this; the notify loop caps its copies to stay under it.
pub const MAX_RECORD_LEN: usize = 64 * 1024;

/// A syscall entry seen by the notify loop.
pub const KIND_SYSCALL: u8 = 1;
/// The count of events dropped so far because storage could not keep up
/// (cumulative, in `args[0]`), and of notify threads that failed so far
/// (panicked or could not be started: their processes kept running, but
/// their later syscalls went unrecorded; cumulative, in `args[1]`), and of
/// syscall results lost (the exit program's buffer was full, or its slot
/// for the thread was taken: those entries stay `= ?`; cumulative, in
/// `args[2]`).
pub const KIND_DROPS: u8 = 2;
/// The trace is complete: every process of the container has exited.
pub const KIND_END: u8 = 3;
/// A process joined the trace (`tid` = its pid, `args[0]` = 1 for the
/// container's init, 0 for an exec; `comm` = its name).
pub const KIND_PROCESS: u8 = 4;
/// A line the container wrote (`args[0]` = 1 stdout, 2 stderr; capture 0 =
/// the line, without its newline; `tid` = the writing process when known, else 0).
pub const KIND_LOG: u8 = 5;
/// The notify round-trip histogram so far (see [`crate::latency`]).
pub const KIND_LATENCY: u8 = 6;
/// Events that were recorded but deleted before the history stored them
/// (the trace's bound, while storage was behind or down): `args[0]` = how
/// many, `args[1]`/`args[2]` = their first and last time (ns; 0: unknown),
/// `args[3]` = segments lost, `args[4]` = 1 when the count is exact. Written
/// by crtd, never by the shim.
pub const KIND_GAP: u8 = 7;

/// The notification was no longer valid after the arguments were copied (the
/// thread died, or the pid was reused): captures are not trustworthy and none
/// are stored.
pub const FLAG_STALE: u8 = 1;

/// The entry was stored before its exit: a [`FLAG_RESUMED`] record with the
/// same tid and seq follows when the syscall returns (if its result is not
/// lost: see the drops record).
pub const FLAG_UNFINISHED: u8 = 2;
/// The exit of a syscall whose entry was stored with [`FLAG_UNFINISHED`]: a
/// `KIND_SYSCALL` record with the entry's tid, arch, nr, seq, args and comm,
/// whose captures are the result and the output data; its time is the exit's.
pub const FLAG_RESUMED: u8 = 4;

pub const CAPTURE_BYTES: u8 = 0;
pub const CAPTURE_STRINGS: u8 = 1;
pub const CAPTURE_COUNT: u8 = 2;
pub const CAPTURE_UNREADABLE: u8 = 3;
/// The result of the syscall: `i64 ret, u64 duration_ns`, under [`RESULT_ARG`].
pub const CAPTURE_RESULT: u8 = 4;
/// Memory the syscall wrote for output argument `arg`, read at its exit.
pub const CAPTURE_OUT: u8 = 5;
/// The argument index of the result capture.
pub const RESULT_ARG: u8 = 0xff;
/// A duration that was not measured (the syscall was never entered: the
/// notification was interrupted).
pub const DURATION_UNKNOWN: u64 = u64::MAX;

/// More data existed than was copied.
pub const CAPTURE_TRUNCATED: u8 = 1;

const STRING_TRUNCATED_BIT: u16 = 0x8000;
const STRING_LEN_MASK: u16 = 0x7fff;

/// What was copied for one pointer argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptureData<'a> {
    /// Bytes copied from the tracee: a string without its NUL, a buffer, a
    /// sockaddr. `truncated`: the original was longer than what was copied.
    Bytes { bytes: &'a [u8], truncated: bool },
    /// A NULL-terminated array of strings (argv). Each item carries its own
    /// truncation flag; `truncated` says the array had more items.
    Strings { payload: &'a [u8], truncated: bool },
    /// The number of entries of an array (envp).
    Count(u64),
    /// The memory could not be read.
    Unreadable,
}

impl<'a> CaptureData<'a> {
    /// The strings of a `Strings` capture, each with its truncation flag.
    pub fn strings(&self) -> StringsIter<'a> {
        match self {
            CaptureData::Strings { payload, .. } => StringsIter { rest: payload },
            _ => StringsIter { rest: &[] },
        }
    }
}

pub struct StringsIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for StringsIter<'a> {
    type Item = (&'a [u8], bool);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 2 {
            return None;
        }
        let word = u16::from_le_bytes([self.rest[0], self.rest[1]]);
        let len = (word & STRING_LEN_MASK) as usize;
        let body = self.rest.get(2..2 + len)?;
        self.rest = &self.rest[2 + len..];
        Some((body, word & STRING_TRUNCATED_BIT != 0))
    }
}

/// What a syscall returned, from its exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallResult {
    /// The raw return value: negative errno values are errors (-4095..-1).
    pub ret: i64,
    /// From entry to exit, in ns; `None` when not measured.
    pub duration_ns: Option<u64>,
}

impl SyscallResult {
    /// The error number, when the syscall failed.
    pub fn errno(&self) -> Option<i32> {
        crate::errno::errno_of(self.ret)
    }
}

/// One capture, tied to the argument it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture<'a> {
    pub arg: u8,
    pub data: CaptureData<'a>,
}

/// A decoded view of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: u8,
    pub flags: u8,
    pub ts_ns: u64,
    pub tid: u32,
    pub arch: u32,
    pub nr: u32,
    /// Joins an entry to its exit (0: none).
    pub seq: u32,
    pub args: [u64; 6],
    pub comm: [u8; 16],
    captures_raw: &'a [u8],
    ncaptures: u16,
    raw: &'a [u8],
}

impl<'a> Record<'a> {
    /// The whole encoded record.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// The process name, without its NUL padding.
    pub fn comm(&self) -> &[u8] {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(16);
        &self.comm[..end]
    }

    pub fn captures(&self) -> CaptureIter<'a> {
        CaptureIter(self.raw_captures())
    }

    /// The capture for argument `arg`, if one was stored.
    pub fn capture(&self, arg: u8) -> Option<CaptureData<'a>> {
        self.captures().find(|c| c.arg == arg).map(|c| c.data)
    }

    fn raw_captures(&self) -> RawCaptures<'a> {
        RawCaptures {
            rest: self.captures_raw,
            left: self.ncaptures,
        }
    }

    /// The result, when the exit was seen.
    pub fn result(&self) -> Option<SyscallResult> {
        let (_, _, (_, body)) = self
            .raw_captures()
            .find(|&(arg, kind, _)| kind == CAPTURE_RESULT && arg == RESULT_ARG)?;
        if body.len() < 16 {
            return None;
        }
        let duration = u64::from_le_bytes(body[8..16].try_into().unwrap());
        Some(SyscallResult {
            ret: i64::from_le_bytes(body[..8].try_into().unwrap()),
            duration_ns: (duration != DURATION_UNKNOWN).then_some(duration),
        })
    }

    /// What the syscall wrote for output argument `arg`, read at its exit:
    /// the bytes and whether more existed.
    pub fn out_capture(&self, arg: u8) -> Option<(&'a [u8], bool)> {
        self.raw_captures()
            .find(|&(a, kind, _)| kind == CAPTURE_OUT && a == arg)
            .map(|(_, _, (flags, body))| (body, flags & CAPTURE_TRUNCATED != 0))
    }
}

/// Every capture as stored: (arg, kind, (flags, body)).
struct RawCaptures<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for RawCaptures<'a> {
    type Item = (u8, u8, (u8, &'a [u8]));
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.rest.len() < CAPTURE_HEADER_LEN {
            return None;
        }
        let (arg, kind, flags) = (self.rest[0], self.rest[1], self.rest[2]);
        let len = u32::from_le_bytes(self.rest[4..8].try_into().unwrap()) as usize;
        let body = self
            .rest
            .get(CAPTURE_HEADER_LEN..CAPTURE_HEADER_LEN + len)?;
        self.rest = &self.rest[CAPTURE_HEADER_LEN + len..];
        self.left -= 1;
        Some((arg, kind, (flags, body)))
    }
}

/// The captures of a syscall's arguments at entry (results and output
/// captures have their own accessors).
pub struct CaptureIter<'a>(RawCaptures<'a>);

impl<'a> Iterator for CaptureIter<'a> {
    type Item = Capture<'a>;
    fn next(&mut self) -> Option<Capture<'a>> {
        let (arg, kind, (flags, body)) = self
            .0
            .find(|&(_, kind, _)| kind != CAPTURE_RESULT && kind != CAPTURE_OUT)?;
        let truncated = flags & CAPTURE_TRUNCATED != 0;
        let data = match kind {
            CAPTURE_BYTES => CaptureData::Bytes {
                bytes: body,
                truncated,
            },
            CAPTURE_STRINGS => CaptureData::Strings {
                payload: body,
                truncated,
            },
            CAPTURE_COUNT if body.len() == 8 => {
                CaptureData::Count(u64::from_le_bytes(body.try_into().unwrap()))
            }
            _ => CaptureData::Unreadable,
        };
        Some(Capture { arg, data })
    }
}

/// Why a byte range is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the record says it has: a write still in progress, or
    /// a tail cut short by a crash.
    Incomplete { need: usize, have: usize },
    /// The length field cannot be right.
    BadLength(usize),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Incomplete { need, have } => {
                write!(f, "record cut short: {have} of {need} bytes")
            }
            RecordError::BadLength(n) => write!(f, "record length {n} is out of range"),
        }
    }
}

impl std::error::Error for RecordError {}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The length of the record at the start of `buf`, checked against what `buf` holds.
pub fn record_len(buf: &[u8]) -> Result<usize, RecordError> {
    if buf.len() < 4 {
        return Err(RecordError::Incomplete {
            need: HEADER_LEN,
            have: buf.len(),
        });
    }
    let len = u32_at(buf, 0) as usize;
    if !(HEADER_LEN..=MAX_RECORD_LEN).contains(&len) {
        return Err(RecordError::BadLength(len));
    }
    if buf.len() < len {
        return Err(RecordError::Incomplete {
            need: len,
            have: buf.len(),
        });
    }
    Ok(len)
}

/// Decodes the record at the start of `buf`; returns it and its length.
pub fn decode(buf: &[u8]) -> Result<(Record<'_>, usize), RecordError> {
    let len = record_len(buf)?;
    let b = &buf[..len];
    let mut args = [0u64; 6];
    for (i, a) in args.iter_mut().enumerate() {
        *a = u64_at(b, 32 + i * 8);
    }
    let mut comm = [0u8; 16];
    comm.copy_from_slice(&b[80..96]);
    Ok((
        Record {
            kind: b[4],
            flags: b[5],
            ncaptures: u16::from_le_bytes([b[6], b[7]]),
            ts_ns: u64_at(b, 8),
            tid: u32_at(b, 16),
            arch: u32_at(b, 20),
            nr: u32_at(b, 24),
            seq: u32_at(b, 28),
            args,
            comm,
            captures_raw: &b[HEADER_LEN..],
            raw: b,
        },
        len,
    ))
}

/// Iterates the whole records of a buffer; stops at the first incomplete or bad one.
pub struct Records<'a> {
    rest: &'a [u8],
    /// Bytes consumed by the records returned so far.
    pub consumed: usize,
    /// Set when iteration stopped on something other than the end of the buffer.
    pub error: Option<RecordError>,
}

impl<'a> Records<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Records {
            rest: buf,
            consumed: 0,
            error: None,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;
    fn next(&mut self) -> Option<Record<'a>> {
        if self.rest.is_empty() || self.error.is_some() {
            return None;
        }
        match decode(self.rest) {
            Ok((rec, len)) => {
                self.rest = &self.rest[len..];
                self.consumed += len;
                Some(rec)
            }
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// Writes the comm field of the record starting at `rec` in place.
pub fn set_comm(rec: &mut [u8], comm: &[u8; 16]) {
    rec[80..96].copy_from_slice(comm);
}

/// The thread id of the record starting at `rec`.
pub fn tid_of(rec: &[u8]) -> u32 {
    u32_at(rec, 16)
}

/// The kind byte of the record starting at `rec`.
pub fn kind_of(rec: &[u8]) -> u8 {
    rec[4]
}

/// The arch and number of the record starting at `rec`.
pub fn syscall_of(rec: &[u8]) -> (u32, u32) {
    (u32_at(rec, 20), u32_at(rec, 24))
}

/// Builds one record in a caller-owned buffer without allocating (once the
/// buffer has grown to its working size). Used on the notify hot path.
pub struct RecordBuilder<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    ncaptures: u16,
}

impl<'b> RecordBuilder<'b> {
    /// Starts a record at the end of `buf`.
    pub fn begin(
        buf: &'b mut Vec<u8>,
        kind: u8,
        ts_ns: u64,
        tid: u32,
        arch: u32,
        nr: u32,
        args: &[u64; 6],
    ) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&[0u8; 8]);
        buf.extend_from_slice(&ts_ns.to_le_bytes());
        buf.extend_from_slice(&tid.to_le_bytes());
        buf.extend_from_slice(&arch.to_le_bytes());
        buf.extend_from_slice(&nr.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        for a in args {
            buf.extend_from_slice(&a.to_le_bytes());
        }
        buf.extend_from_slice(&[0u8; 16]);
        buf[start + 4] = kind;
        RecordBuilder {
            buf,
            start,
            ncaptures: 0,
        }
    }

    /// Bytes the record holds so far.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn set_flags(&mut self, flags: u8) {
        self.buf[self.start + 5] = flags;
    }

    pub fn set_seq(&mut self, seq: u32) {
        self.buf[self.start + 28..self.start + 32].copy_from_slice(&seq.to_le_bytes());
    }

    /// Continues the finished record that starts at `start` in `buf`, to add
    /// captures (a result, output data) to it; [`Self::finish`] again after.
    pub fn extend(buf: &'b mut Vec<u8>, start: usize) -> Self {
        let ncaptures = u16::from_le_bytes([buf[start + 6], buf[start + 7]]);
        RecordBuilder {
            buf,
            start,
            ncaptures,
        }
    }

    /// Appends the syscall's result.
    pub fn result(&mut self, ret: i64, duration_ns: Option<u64>) {
        self.capture_header(RESULT_ARG, CAPTURE_RESULT, 0, 16);
        self.buf.extend_from_slice(&ret.to_le_bytes());
        self.buf
            .extend_from_slice(&duration_ns.unwrap_or(DURATION_UNKNOWN).to_le_bytes());
    }

    /// Appends what the syscall wrote for output argument `arg`.
    pub fn out_bytes(&mut self, arg: u8, bytes: &[u8], truncated: bool) {
        let flags = if truncated { CAPTURE_TRUNCATED } else { 0 };
        self.capture_header(arg, CAPTURE_OUT, flags, bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    pub fn set_comm(&mut self, comm: &[u8]) {
        let n = comm.len().min(16);
        let at = self.start + 80;
        self.buf[at..at + 16].fill(0);
        self.buf[at..at + n].copy_from_slice(&comm[..n]);
    }

    fn capture_header(&mut self, arg: u8, kind: u8, flags: u8, len: usize) {
        self.buf.extend_from_slice(&[arg, kind, flags, 0]);
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        self.ncaptures += 1;
    }

    /// Appends a byte capture.
    pub fn bytes(&mut self, arg: u8, bytes: &[u8], truncated: bool) {
        let flags = if truncated { CAPTURE_TRUNCATED } else { 0 };
        self.capture_header(arg, CAPTURE_BYTES, flags, bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// Reserves a byte capture of up to `max` bytes and returns the space to
    /// fill; call [`Self::finish_reserved`] with how much was used.
    pub fn reserve_bytes(&mut self, arg: u8, max: usize) -> ReservedCapture {
        let header_at = self.buf.len();
        self.capture_header(arg, CAPTURE_BYTES, 0, 0);
        let data_at = self.buf.len();
        self.buf.resize(data_at + max, 0);
        ReservedCapture { header_at, data_at }
    }

    /// The writable space of a reserved capture.
    pub fn reserved_mut(&mut self, r: &ReservedCapture) -> &mut [u8] {
        &mut self.buf[r.data_at..]
    }

    /// Shrinks a reserved capture to `used` bytes and sets its kind and flag.
    pub fn finish_reserved(&mut self, r: ReservedCapture, used: usize, kind: u8, truncated: bool) {
        self.buf.truncate(r.data_at + used);
        self.buf[r.header_at + 1] = kind;
        self.buf[r.header_at + 2] = if truncated { CAPTURE_TRUNCATED } else { 0 };
        self.buf[r.header_at + 4..r.header_at + 8].copy_from_slice(&(used as u32).to_le_bytes());
    }

    pub fn count(&mut self, arg: u8, n: u64) {
        self.capture_header(arg, CAPTURE_COUNT, 0, 8);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    pub fn unreadable(&mut self, arg: u8) {
        self.capture_header(arg, CAPTURE_UNREADABLE, 0, 0);
    }

    /// Drops every capture added so far (used when the notification turned
    /// out to be stale).
    pub fn clear_captures(&mut self) {
        self.buf.truncate(self.start + HEADER_LEN);
        self.ncaptures = 0;
    }

    /// Writes the length and capture count; the record is complete.
    pub fn finish(self) -> usize {
        let len = self.buf.len() - self.start;
        self.buf[self.start..self.start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[self.start + 6..self.start + 8].copy_from_slice(&self.ncaptures.to_le_bytes());
        len
    }

    /// Abandons the record, leaving the buffer as it was before `begin`.
    pub fn abandon(self) {
        self.buf.truncate(self.start);
    }
}

/// A capture whose bytes are being filled in place.
pub struct ReservedCapture {
    header_at: usize,
    data_at: usize,
}

/// Encodes one entry of a `Strings` payload.
pub fn push_string_entry(payload: &mut Vec<u8>, s: &[u8], truncated: bool) {
    let len = s.len().min(STRING_LEN_MASK as usize);
    let mut word = len as u16;
    if truncated || len < s.len() {
        word |= STRING_TRUNCATED_BIT;
    }
    payload.extend_from_slice(&word.to_le_bytes());
    payload.extend_from_slice(&s[..len]);
}

/// Starts, at the end of `buf`, the [`FLAG_RESUMED`] record of `entry` (a
/// syscall stored unfinished): its identity and arguments, no captures yet.
pub fn begin_exit<'b>(buf: &'b mut Vec<u8>, entry: &Record<'_>, ts_ns: u64) -> RecordBuilder<'b> {
    let mut b = RecordBuilder::begin(
        buf,
        KIND_SYSCALL,
        ts_ns,
        entry.tid,
        entry.arch,
        entry.nr,
        &entry.args,
    );
    b.set_seq(entry.seq);
    b.set_comm(&entry.comm);
    b.set_flags(FLAG_RESUMED);
    b
}

/// Builds a simple record with no captures (drops, end, process markers).
pub fn simple(kind: u8, ts_ns: u64, tid: u32, args: &[u64; 6], comm: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_LEN);
    let mut b = RecordBuilder::begin(&mut buf, kind, ts_ns, tid, 0, 0, args);
    b.set_comm(comm);
    b.finish();
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_and_output_data_added_to_a_finished_entry_read_back_apart_from_its_arguments() {
        let mut buf = Vec::new();
        let args = [3, 0x7ffd_0000, 32, 0, 0, 0];
        let mut b = RecordBuilder::begin(&mut buf, KIND_SYSCALL, 5, 42, 0xc000_003e, 0, &args);
        b.set_seq(77);
        b.bytes(2, b"in", false);
        b.finish();
        assert_eq!(decode(&buf).unwrap().0.result(), None);
        let mut b = RecordBuilder::extend(&mut buf, 0);
        b.result(5, Some(1200));
        b.out_bytes(1, b"hello", false);
        b.finish();
        let (rec, len) = decode(&buf).unwrap();
        assert_eq!(len, buf.len());
        assert_eq!(rec.seq, 77);
        assert_eq!(
            rec.result(),
            Some(SyscallResult {
                ret: 5,
                duration_ns: Some(1200)
            })
        );
        assert_eq!(rec.out_capture(1), Some((&b"hello"[..], false)));
        assert_eq!(rec.out_capture(2), None);
        // The argument captures are only the entry's.
        assert_eq!(rec.captures().count(), 1);
        assert_eq!(rec.capture(1), None);

        let mut exit = Vec::new();
        let mut b = begin_exit(&mut exit, &rec, 9);
        b.result(-2, None);
        b.finish();
        let (x, _) = decode(&exit).unwrap();
        assert_eq!(
            (x.kind, x.flags, x.tid, x.nr, x.seq, x.args),
            (KIND_SYSCALL, FLAG_RESUMED, 42, 0, 77, args)
        );
        let r = x.result().unwrap();
        assert_eq!((r.errno(), r.duration_ns), (Some(2), None));
        assert_eq!(
            SyscallResult {
                ret: -4096,
                duration_ns: None
            }
            .errno(),
            None
        );
    }

    #[test]
    fn a_record_round_trips_with_all_capture_kinds() {
        let mut buf = Vec::new();
        let args = [0xffff_ff9c, 0x7ffd_0000, 0x80000, 0, 0, 0];
        let mut b = RecordBuilder::begin(&mut buf, KIND_SYSCALL, 123, 42, 0xc000_003e, 257, &args);
        b.bytes(1, b"/etc/hosts", false);
        let mut payload = Vec::new();
        push_string_entry(&mut payload, b"sh", false);
        push_string_entry(&mut payload, b"-c", true);
        b.bytes(2, b"", false);
        b.count(3, 12);
        b.unreadable(4);
        let r = b.reserve_bytes(5, 16);
        b.reserved_mut(&r)[..3].copy_from_slice(b"abc");
        b.finish_reserved(r, 3, CAPTURE_STRINGS, true);
        b.set_comm(b"cat");
        let len = b.finish();
        assert_eq!(len, buf.len());

        let (rec, used) = decode(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(rec.kind, KIND_SYSCALL);
        assert_eq!(rec.tid, 42);
        assert_eq!(rec.nr, 257);
        assert_eq!(rec.args, args);
        assert_eq!(rec.comm(), b"cat");
        let caps: Vec<_> = rec.captures().collect();
        assert_eq!(caps.len(), 5);
        assert_eq!(
            caps[0].data,
            CaptureData::Bytes {
                bytes: b"/etc/hosts",
                truncated: false
            }
        );
        assert_eq!(rec.capture(3), Some(CaptureData::Count(12)));
        assert_eq!(rec.capture(4), Some(CaptureData::Unreadable));
        assert!(matches!(
            rec.capture(5),
            Some(CaptureData::Strings {
                truncated: true,
                ..
            })
        ));
    }

    #[test]
    fn strings_payload_iterates_each_item_with_its_flag() {
        let mut payload = Vec::new();
        push_string_entry(&mut payload, b"sh", false);
        push_string_entry(&mut payload, b"-c", true);
        let data = CaptureData::Strings {
            payload: &payload,
            truncated: false,
        };
        let items: Vec<_> = data.strings().collect();
        assert_eq!(items, vec![(&b"sh"[..], false), (&b"-c"[..], true)]);
    }

    #[test]
    fn a_cut_short_record_is_reported_incomplete_not_misread() {
        let rec = simple(KIND_END, 1, 0, &[0; 6], b"");
        let err = decode(&rec[..50]).unwrap_err();
        assert_eq!(
            err,
            RecordError::Incomplete {
                need: HEADER_LEN,
                have: 50
            }
        );
        let mut iter = Records::new(&rec[..HEADER_LEN - 1]);
        assert!(iter.next().is_none());
        assert!(iter.error.is_some());
    }

    #[test]
    fn a_garbage_length_is_rejected() {
        let mut rec = simple(KIND_END, 1, 0, &[0; 6], b"");
        rec[0..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(decode(&rec).unwrap_err(), RecordError::BadLength(3));
    }

    #[test]
    fn abandon_leaves_the_buffer_untouched() {
        let mut buf = b"xyz".to_vec();
        let b = RecordBuilder::begin(&mut buf, KIND_SYSCALL, 1, 1, 1, 1, &[0; 6]);
        b.abandon();
        assert_eq!(buf, b"xyz");
    }
}
