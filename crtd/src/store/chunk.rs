//! Chunk files and their block summaries.
//!
//! A chunk (`NNNNNNNNNN.chk`) is records back to back. Its index
//! (`NNNNNNNNNN.idx`, written when it is sealed; rebuilt by a scan when
//! missing) summarises every block of up to [`BLOCK_RECORDS`] records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crt_tracer::record::{self, Records};
use crt_tracer::syscalls::NATIVE_AUDIT_ARCH;

/// Records per block.
pub const BLOCK_RECORDS: u32 = 256;
/// Bytes per block at most (a block of long records closes early).
const BLOCK_BYTES: u32 = 64 * 1024;
const INDEX_MAGIC: &[u8; 8] = b"CRTIDX1\0";
const BLOCK_WIRE: usize = 4 + 4 + 4 + 8 + 8 + 64 + 1 + 1;

/// A summary of consecutive records in a chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub offset: u32,
    pub len: u32,
    pub count: u32,
    pub ts_min: u64,
    pub ts_max: u64,
    /// Native syscall numbers present (bit per number below 512).
    pub syscalls: [u64; 8],
    /// Record kinds present (bit 1 << kind).
    pub kinds: u8,
    /// Holds syscalls of another architecture, or numbers beyond the bitmap.
    pub other: bool,
}

impl Block {
    fn starting_at(offset: u32) -> Block {
        Block {
            offset,
            ts_min: u64::MAX,
            ..Default::default()
        }
    }

    fn add(&mut self, rec: &[u8]) {
        let ts = u64::from_le_bytes(rec[8..16].try_into().unwrap());
        let kind = record::kind_of(rec);
        self.count += 1;
        self.len += rec.len() as u32;
        self.ts_min = self.ts_min.min(ts);
        self.ts_max = self.ts_max.max(ts);
        self.kinds |= 1u8.checked_shl(u32::from(kind)).unwrap_or(0);
        if kind == record::KIND_SYSCALL {
            let (arch, nr) = record::syscall_of(rec);
            if arch == NATIVE_AUDIT_ARCH && nr < 512 {
                self.syscalls[(nr / 64) as usize] |= 1 << (nr % 64);
            } else {
                self.other = true;
            }
        }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.ts_min.to_le_bytes());
        out.extend_from_slice(&self.ts_max.to_le_bytes());
        for w in &self.syscalls {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.push(self.kinds);
        out.push(u8::from(self.other));
    }

    fn read_from(b: &[u8]) -> Block {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let mut syscalls = [0u64; 8];
        for (k, w) in syscalls.iter_mut().enumerate() {
            *w = u64_at(28 + k * 8);
        }
        Block {
            offset: u32_at(0),
            len: u32_at(4),
            count: u32_at(8),
            ts_min: u64_at(12),
            ts_max: u64_at(20),
            syscalls,
            kinds: b[92],
            other: b[93] != 0,
        }
    }
}

/// What is known of one chunk without reading it.
#[derive(Clone, Debug, Default)]
pub struct ChunkIndex {
    pub seq: u64,
    pub len: u64,
    pub count: u64,
    pub ts_min: u64,
    pub ts_max: u64,
    pub blocks: Vec<Block>,
}

impl ChunkIndex {
    fn from_blocks(seq: u64, blocks: Vec<Block>) -> ChunkIndex {
        ChunkIndex {
            seq,
            len: blocks.iter().map(|b| u64::from(b.len)).sum(),
            count: blocks.iter().map(|b| u64::from(b.count)).sum(),
            ts_min: blocks.iter().map(|b| b.ts_min).min().unwrap_or(0),
            ts_max: blocks.iter().map(|b| b.ts_max).max().unwrap_or(0),
            blocks,
        }
    }
}

pub fn data_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:010}.chk"))
}

pub fn index_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:010}.idx"))
}

/// The chunk numbers in a stream directory, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut v: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".chk")?.parse().ok())
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// Summarises `data` (whole records) into blocks.
fn scan(data: &[u8]) -> (Vec<Block>, usize) {
    let mut blocks = Vec::new();
    let mut cur = Block::starting_at(0);
    let mut recs = Records::new(data);
    let mut at = 0usize;
    for _ in recs.by_ref() {
        let len = record::record_len(&data[at..]).unwrap_or(0);
        if cur.count >= BLOCK_RECORDS || (cur.count > 0 && cur.len + len as u32 > BLOCK_BYTES) {
            blocks.push(std::mem::replace(&mut cur, Block::starting_at(at as u32)));
        }
        cur.add(&data[at..at + len]);
        at += len;
    }
    if cur.count > 0 {
        blocks.push(cur);
    }
    (blocks, recs.consumed)
}

/// Loads a sealed chunk's index, rebuilding it when the sidecar is missing
/// or does not match the data.
pub fn load_sealed(dir: &Path, seq: u64) -> io::Result<ChunkIndex> {
    let data_len = fs::metadata(data_path(dir, seq))?.len();
    if let Ok(b) = fs::read(index_path(dir, seq)) {
        if b.len() >= 12 && &b[..8] == INDEX_MAGIC {
            let n = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
            if b.len() == 12 + n * BLOCK_WIRE {
                let blocks: Vec<Block> = (0..n)
                    .map(|i| Block::read_from(&b[12 + i * BLOCK_WIRE..12 + (i + 1) * BLOCK_WIRE]))
                    .collect();
                let idx = ChunkIndex::from_blocks(seq, blocks);
                if idx.len == data_len {
                    return Ok(idx);
                }
            }
        }
    }
    let mut data = Vec::new();
    File::open(data_path(dir, seq))?.read_to_end(&mut data)?;
    let (blocks, _) = scan(&data);
    let idx = ChunkIndex::from_blocks(seq, blocks);
    write_index(dir, &idx)?;
    Ok(idx)
}

fn write_index(dir: &Path, idx: &ChunkIndex) -> io::Result<()> {
    let mut out = Vec::with_capacity(12 + idx.blocks.len() * BLOCK_WIRE);
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&(idx.blocks.len() as u32).to_le_bytes());
    for b in &idx.blocks {
        b.write_to(&mut out);
    }
    crt_tracer::node_files::write_private(&index_path(dir, idx.seq), &out)
}

/// Reads `len` bytes at `offset` of a chunk.
pub fn read_at(dir: &Path, seq: u64, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let f = File::open(data_path(dir, seq))?;
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = f.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            buf.truncate(done);
            break;
        }
        done += n;
    }
    Ok(buf)
}

/// The chunk being written. It holds no open file between writes: a node
/// with thousands of stored containers must not hold thousands of
/// descriptors (at the limit crtd could neither store nor accept anyone).
/// A flush opens, appends and closes, once per batch.
pub struct Appender {
    dir: PathBuf,
    seq: u64,
    len: u64,
    blocks: Vec<Block>,
    pending: Block,
    buf: Vec<u8>,
}

impl Appender {
    pub fn create(dir: &Path, seq: u64) -> io::Result<Appender> {
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(data_path(dir, seq))?;
        Ok(Appender {
            dir: dir.to_path_buf(),
            seq,
            len: 0,
            blocks: Vec::new(),
            pending: Block::starting_at(0),
            buf: Vec::new(),
        })
    }

    /// Reopens the chunk being written, cut back to `len` (what the
    /// checkpoint acknowledged) and to whole records.
    pub fn reopen(dir: &Path, seq: u64, len: u64) -> io::Result<Appender> {
        let path = data_path(dir, seq);
        if !path.exists() {
            return Appender::create(dir, seq);
        }
        let mut data = Vec::new();
        File::open(&path)?.read_to_end(&mut data)?;
        data.truncate(len.min(data.len() as u64) as usize);
        let (mut blocks, whole) = scan(&data);
        OpenOptions::new()
            .write(true)
            .open(&path)?
            .set_len(whole as u64)?;
        let pending = match blocks.pop() {
            Some(b) if b.count < BLOCK_RECORDS => b,
            Some(b) => {
                let next = Block::starting_at(b.offset + b.len);
                blocks.push(b);
                next
            }
            None => Block::starting_at(0),
        };
        Ok(Appender {
            dir: dir.to_path_buf(),
            seq,
            len: whole as u64,
            blocks,
            pending,
            buf: Vec::new(),
        })
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn push(&mut self, rec: &[u8]) -> io::Result<()> {
        let len = rec.len() as u32;
        if self.pending.count >= BLOCK_RECORDS
            || (self.pending.count > 0 && self.pending.len + len > BLOCK_BYTES)
        {
            let next = Block::starting_at(self.len as u32);
            self.blocks.push(std::mem::replace(&mut self.pending, next));
        }
        self.pending.add(rec);
        self.buf.extend_from_slice(rec);
        self.len += u64::from(len);
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(())
    }

    fn open(&self) -> io::Result<File> {
        OpenOptions::new()
            .append(true)
            .open(data_path(&self.dir, self.seq))
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.open()?.write_all(&self.buf)?;
            // Given back, not kept: a node stores hundreds of containers,
            // most of them idle between batches.
            self.buf = Vec::new();
        }
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.open()?.sync_data()
    }

    /// A snapshot of what readers may see (everything flushed).
    pub fn index(&self) -> Arc<ChunkIndex> {
        let mut blocks = self.blocks.clone();
        if self.pending.count > 0 {
            blocks.push(self.pending.clone());
        }
        Arc::new(ChunkIndex::from_blocks(self.seq, blocks))
    }

    /// Finishes the chunk: its index is written beside it.
    pub fn seal(&mut self) -> io::Result<ChunkIndex> {
        self.sync()?;
        let mut blocks = std::mem::take(&mut self.blocks);
        if self.pending.count > 0 {
            blocks.push(std::mem::replace(&mut self.pending, Block::starting_at(0)));
        }
        let idx = ChunkIndex::from_blocks(self.seq, blocks);
        write_index(&self.dir, &idx)?;
        Ok(idx)
    }
}
