//! Who talks to whom, for `/v1/topology`: each container's listening sockets
//! and the edges (client → server) between a scope's containers and the
//! addresses they talk with, read from their network namespaces' `/proc/net`
//! tables and, for traced containers, from recent `connect`/`sendto` events.
//! Edges are remembered per scope for a while, so a closed one still shows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crt_tracer::record::{CaptureData, Record, KIND_SYSCALL};
use crt_tracer::render::{parse_rfc3339_utc, rfc3339_utc};
use crt_tracer::syscalls;
use serde_json::{json, Value};

use crate::catalog::{container_pids, ContainerView, ProcTable};
use crate::store::query::{self, Budget};
use crate::store::{Filter, Order};
use crate::tenants::Scope;

/// How long an edge is remembered after it was last seen, and how far back
/// traced events are looked for.
pub const EDGE_TTL: Duration = Duration::from_secs(15 * 60);
/// Edges remembered per scope; the longest unseen go first.
pub const EDGES_PER_SCOPE: usize = 20_000;
/// File descriptors looked at per process, and per request: a process with
/// a million open files must not make a topology request slow.
const FDS_PER_PROCESS: usize = 4096;
const FDS_PER_REQUEST: usize = 200_000;
/// What the traced events of one topology request may cost: it is a side
/// dish of the map, never a full history query.
const TRACE_SCAN: u64 = 200_000;
const TRACE_TIME: Duration = Duration::from_millis(150);
const TRACE_HITS: usize = 2000;
/// How long one request may spend reading namespaces' tables.
const TABLES_TIME: Duration = Duration::from_millis(300);

/// `/proc/net/tcp` states (include/net/tcp_states.h).
const TCP_ESTABLISHED: u8 = 0x01;
const TCP_LISTEN: u8 = 0x0A;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One row of `/proc/net/{tcp,tcp6,udp,udp6}`, addresses canonical (an
/// IPv4-mapped IPv6 address is the IPv4 address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub inode: u64,
}

impl Socket {
    /// A TCP socket in LISTEN, or a bound UDP socket with no peer.
    pub fn listening(&self) -> bool {
        match self.proto {
            Proto::Tcp => self.state == TCP_LISTEN,
            Proto::Udp => self.local.port() != 0 && self.remote.port() == 0,
        }
    }

    /// An established TCP connection, or a connected UDP socket.
    pub fn connected(&self) -> bool {
        self.state == TCP_ESTABLISHED && self.remote.port() != 0
    }
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the kernel
/// prints each 32-bit word of the address as a number in its own byte
/// order, the port as a plain number.
fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(canonical(SocketAddr::new(ip, port)))
}

/// The sockets of one `/proc/net/{tcp,tcp6,udp,udp6}` file; the header and
/// lines that do not parse are left out.
pub fn parse_net_table(proto: Proto, text: &str) -> Vec<Socket> {
    text.lines()
        .filter_map(|line| {
            // sl local remote st queues tr retrnsmt uid timeout inode ...
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || !f[0].ends_with(':') {
                return None;
            }
            Some(Socket {
                proto,
                local: parse_hex_addr(f[1])?,
                remote: parse_hex_addr(f[2])?,
                state: u8::from_str_radix(f[3], 16).ok()?,
                inode: f[9].parse().ok()?,
            })
        })
        .collect()
}

/// The IPv4 addresses of a network namespace: the `/32 host LOCAL` entries
/// of its `fib_trie`, each under the `|-- ADDRESS` line it belongs to.
pub fn parse_fib_trie_local(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = a.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last {
                if !out.contains(&IpAddr::V4(a)) {
                    out.push(IpAddr::V4(a));
                }
            }
        }
    }
    out
}

/// The IPv6 addresses of a network namespace (`if_inet6`: the address as
/// 32 hex digits in network order, then index, prefix, scope, flags, name).
pub fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let hex = line.split_whitespace().next()?;
            if hex.len() != 32 {
                return None;
            }
            let n = u128::from_str_radix(hex, 16).ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(n)).to_canonical())
        })
        .collect()
}

/// Either side of an edge: a container of the caller's scope, by
/// `namespace/id`, or a bare address (anything else, whoever it is).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    Container(String),
    Address(IpAddr),
}

impl Endpoint {
    fn json(&self) -> Value {
        match self {
            Endpoint::Container(c) => json!({ "container": c }),
            Endpoint::Address(a) => json!({ "address": a.to_string() }),
        }
    }

    fn key(&self) -> String {
        match self {
            Endpoint::Container(c) => format!("c:{c}"),
            Endpoint::Address(a) => format!("a:{a}"),
        }
    }
}

/// What makes an edge one edge: traffic from `from` to port `port` of `to`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub proto: Proto,
    pub from: Endpoint,
    pub to: Endpoint,
    pub port: u16,
}

impl EdgeKey {
    /// Stable across requests: the UI keys its drawing on it.
    pub fn id(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.proto.name(),
            self.from.key(),
            self.to.key(),
            self.port
        )
    }
}

/// A connected socket of a scope's container, in the network namespace
/// (by inode) whose table listed it.
#[derive(Clone, Debug)]
pub struct OwnedSocket {
    pub owner: String,
    pub netns: u64,
    pub socket: Socket,
}

/// Which ports listen where: `(netns, proto, port)` → the containers whose
/// processes hold a listening socket on it.
pub type Listeners = HashMap<(u64, Proto, u16), BTreeSet<String>>;

/// The edges the connected sockets of a scope make, with how many
/// connections each has now.
///
/// Two sockets pair when one's (local, remote) is the other's (remote,
/// local) — in the same network namespace when either address is loopback,
/// and only when exactly one socket matches. Of a pair, the server is the
/// side whose local port a container of its namespace listens on; when both
/// or neither do, the side with the lower port (ephemeral ports are high).
/// A socket with no peer among the scope's talks with an address: inbound
/// (from the peer's address, no port) when its local port listens in its
/// namespace, outbound (to the peer's address and port) otherwise.
pub fn pair_sockets(sockets: &[OwnedSocket], listeners: &Listeners) -> BTreeMap<EdgeKey, u32> {
    type Tuple = (Proto, SocketAddr, SocketAddr, Option<u64>);
    let tuple = |s: &OwnedSocket, local: SocketAddr, remote: SocketAddr| -> Tuple {
        let scoped = local.ip().is_loopback() || remote.ip().is_loopback();
        (s.socket.proto, local, remote, scoped.then_some(s.netns))
    };
    let mut by_tuple: HashMap<Tuple, Vec<usize>> = HashMap::new();
    for (i, s) in sockets.iter().enumerate() {
        if s.socket.connected() {
            by_tuple
                .entry(tuple(s, s.socket.local, s.socket.remote))
                .or_default()
                .push(i);
        }
    }
    let listens =
        |s: &OwnedSocket| listeners.contains_key(&(s.netns, s.socket.proto, s.socket.local.port()));
    let mut edges: BTreeMap<EdgeKey, u32> = BTreeMap::new();
    for (i, s) in sockets.iter().enumerate() {
        if !s.socket.connected() {
            continue;
        }
        let proto = s.socket.proto;
        let peers: Vec<usize> = by_tuple
            .get(&tuple(s, s.socket.remote, s.socket.local))
            .map(|v| v.iter().copied().filter(|&p| p != i).collect())
            .unwrap_or_default();
        // Both ways unique, or each side of a doubled tuple would count apart.
        let alone = by_tuple
            .get(&tuple(s, s.socket.local, s.socket.remote))
            .is_some_and(|v| v.len() == 1);
        let key = if let ([p], true) = (&peers[..], alone) {
            let p = *p;
            let peer = &sockets[p];
            let s_serves = match (listens(s), listens(peer)) {
                (true, false) => true,
                (false, true) => false,
                _ => (s.socket.local.port(), i) < (peer.socket.local.port(), p),
            };
            if s_serves {
                // Counted once, from the client's side.
                continue;
            }
            EdgeKey {
                proto,
                from: Endpoint::Container(s.owner.clone()),
                to: Endpoint::Container(peer.owner.clone()),
                port: peer.socket.local.port(),
            }
        } else if listens(s) {
            EdgeKey {
                proto,
                from: Endpoint::Address(s.socket.remote.ip()),
                to: Endpoint::Container(s.owner.clone()),
                port: s.socket.local.port(),
            }
        } else {
            EdgeKey {
                proto,
                from: Endpoint::Container(s.owner.clone()),
                to: Endpoint::Address(s.socket.remote.ip()),
                port: s.socket.remote.port(),
            }
        };
        *edges.entry(key).or_default() += 1;
    }
    edges
}

/// A container to read: its key (`namespace/id`) and its processes, init first.
pub struct ContainerProcs {
    pub key: String,
    pub pids: Vec<i32>,
}

/// A listening socket as the topology shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listening {
    pub proto: Proto,
    pub address: IpAddr,
    pub port: u16,
}

/// What the network namespaces of a scope's running containers say now.
#[derive(Default)]
pub struct Observed {
    /// Connected sockets, each with the container holding it.
    pub sockets: Vec<OwnedSocket>,
    pub listeners: Listeners,
    /// Each container's listening sockets.
    pub listening: BTreeMap<String, BTreeSet<Listening>>,
    /// Each container's network namespace.
    pub netns_of: HashMap<String, u64>,
    /// The namespaces each non-loopback address is local to.
    pub local_addrs: HashMap<IpAddr, BTreeSet<u64>>,
    /// When each container was created (ns), where known: a traced send
    /// from before then went to whoever had its address at the time.
    pub created_ns: HashMap<String, u64>,
    /// Namespaces whose tables this request read, and those it wanted but
    /// had neither the time to read nor recent tables of.
    pub netns_read: usize,
    pub netns_unread: usize,
    pub fds_read: usize,
}

/// `net:[4026531840]` → 4026531840.
fn netns_of(proc: &Path, pid: i32) -> Option<u64> {
    let link = fs::read_link(proc.join(pid.to_string()).join("ns/net")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// What one network namespace's tables said when they were read.
pub struct NetnsTables {
    /// Listening and connected sockets, by inode.
    pub sockets: HashMap<u64, Socket>,
    /// Its addresses, loopback left out.
    pub local_addrs: Vec<IpAddr>,
}

/// Reads the tables of the namespace `pid` is in.
fn read_tables(proc: &Path, pid: i32) -> NetnsTables {
    let net = proc.join(pid.to_string()).join("net");
    let read = |name: &str| fs::read_to_string(net.join(name)).unwrap_or_default();
    let mut sockets = HashMap::new();
    for (proto, file) in [
        (Proto::Tcp, "tcp"),
        (Proto::Tcp, "tcp6"),
        (Proto::Udp, "udp"),
        (Proto::Udp, "udp6"),
    ] {
        for s in parse_net_table(proto, &read(file)) {
            // Inode 0: no file holds it (TIME_WAIT and the like).
            if s.inode != 0 && (s.listening() || s.connected()) {
                sockets.insert(s.inode, s);
            }
        }
    }
    let local_addrs = parse_fib_trie_local(&read("fib_trie"))
        .into_iter()
        .chain(parse_if_inet6(&read("if_inet6")))
        .filter(|a| !a.is_loopback())
        .collect();
    NetnsTables {
        sockets,
        local_addrs,
    }
}

/// Tables of network namespaces read lately, by namespace inode, shared by
/// every request: reading `tcp` or `tcp6` walks the kernel's whole TCP hash
/// table, whatever the namespace holds (about 5 ms a file on a 24 GB node,
/// more on bigger ones), so a request re-reads only tables older than
/// [`TABLES_FRESH`], the oldest first, for as long as its budget lasts, and
/// uses older ones (up to [`TABLES_KEPT`]) for the rest. Node data, never
/// shown as such: a request only takes the sockets its scope's processes hold.
#[derive(Default)]
pub struct TableCache {
    tables: Mutex<HashMap<u64, (Instant, Arc<NetnsTables>)>>,
}

/// Tables this young are not read again.
pub const TABLES_FRESH: Duration = Duration::from_secs(2);
/// Tables this old are never used.
pub const TABLES_KEPT: Duration = Duration::from_secs(120);
/// Threads reading tables at once for one request.
const TABLE_READERS: usize = 2;

/// The socket inodes processes `pids` hold, in fd order, within `budget`.
fn socket_inodes(proc: &Path, pids: &[i32], budget: &mut usize, fds_read: &mut usize) -> Vec<u64> {
    let mut out = Vec::new();
    for &pid in pids {
        let Ok(entries) = fs::read_dir(proc.join(pid.to_string()).join("fd")) else {
            continue;
        };
        for e in entries.flatten().take(FDS_PER_PROCESS.min(*budget)) {
            *budget -= 1;
            *fds_read += 1;
            let Ok(target) = fs::read_link(e.path()) else {
                continue;
            };
            if let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            {
                out.push(inode);
            }
        }
    }
    out
}

/// The sockets of `containers`, each given to the container whose process
/// holds it; sockets nobody of `containers` holds (the host's, another
/// tenant's) are never looked at again. Each network namespace is read at
/// most once (through the first container found in it), and only if its
/// containers hold a socket at all; fresh tables are read until `deadline`.
pub fn read_proc(
    proc: &Path,
    containers: &[ContainerProcs],
    cache: &TableCache,
    deadline: Instant,
) -> Observed {
    let mut out = Observed::default();
    let mut by_netns: BTreeMap<u64, Vec<(&ContainerProcs, Vec<u64>)>> = BTreeMap::new();
    let mut fd_budget = FDS_PER_REQUEST;
    for c in containers {
        let Some(&init) = c.pids.first() else {
            continue;
        };
        if let Some(ns) = netns_of(proc, init) {
            out.netns_of.insert(c.key.clone(), ns);
            let inodes = socket_inodes(proc, &c.pids, &mut fd_budget, &mut out.fds_read);
            by_netns.entry(ns).or_default().push((c, inodes));
        }
    }
    // Namespaces where someone of the scope holds a socket, by whose init
    // to read them.
    let wanted: Vec<(u64, i32)> = by_netns
        .iter()
        .filter(|(_, members)| members.iter().any(|(_, inodes)| !inodes.is_empty()))
        .map(|(&ns, members)| (ns, members[0].0.pids[0]))
        .collect();
    let now = Instant::now();
    let mut tables: HashMap<u64, Arc<NetnsTables>> = HashMap::new();
    let mut stale: Vec<(Option<Instant>, u64, i32)> = Vec::new();
    {
        let cached = cache.tables.lock().unwrap_or_else(PoisonError::into_inner);
        for &(ns, pid) in &wanted {
            match cached.get(&ns) {
                Some((at, t)) if now.duration_since(*at) < TABLES_FRESH => {
                    tables.insert(ns, Arc::clone(t));
                }
                Some((at, t)) => {
                    if now.duration_since(*at) < TABLES_KEPT {
                        tables.insert(ns, Arc::clone(t));
                    }
                    stale.push((Some(*at), ns, pid));
                }
                None => stale.push((None, ns, pid)),
            }
        }
    }
    // Never read first, then the oldest.
    stale.sort();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let fresh: Mutex<Vec<(u64, NetnsTables)>> = Mutex::new(Vec::new());
    std::thread::scope(|threads| {
        for _ in 0..TABLE_READERS.min(stale.len()) {
            threads.spawn(|| loop {
                if Instant::now() >= deadline {
                    return;
                }
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(_, ns, pid)) = stale.get(i) else {
                    return;
                };
                let t = read_tables(proc, pid);
                fresh
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((ns, t));
            });
        }
    });
    {
        let mut cached = cache.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let read_at = Instant::now();
        cached.retain(|_, (at, _)| read_at.duration_since(*at) < TABLES_KEPT);
        for (ns, t) in fresh.into_inner().unwrap_or_else(PoisonError::into_inner) {
            let t = Arc::new(t);
            cached.insert(ns, (read_at, Arc::clone(&t)));
            tables.insert(ns, t);
            out.netns_read += 1;
        }
    }
    out.netns_unread = wanted.len() - tables.len();
    for (ns, members) in &by_netns {
        let Some(t) = tables.get(ns) else {
            continue;
        };
        for a in &t.local_addrs {
            out.local_addrs.entry(*a).or_default().insert(*ns);
        }
        // The first holder keeps a socket (a socket a process handed on is
        // still one socket).
        let mut taken: HashSet<u64> = HashSet::new();
        for (c, inodes) in members {
            for inode in inodes {
                let Some(s) = t.sockets.get(inode) else {
                    continue;
                };
                if !taken.insert(*inode) {
                    continue;
                }
                if s.listening() {
                    out.listeners
                        .entry((*ns, s.proto, s.local.port()))
                        .or_default()
                        .insert(c.key.clone());
                    out.listening
                        .entry(c.key.clone())
                        .or_default()
                        .insert(Listening {
                            proto: s.proto,
                            address: s.local.ip(),
                            port: s.local.port(),
                        });
                } else {
                    out.sockets.push(OwnedSocket {
                        owner: c.key.clone(),
                        netns: *ns,
                        socket: s.clone(),
                    });
                }
            }
        }
    }
    out
}

/// Where a traced `connect` or `sendto` went, from the sockaddr the tracer
/// copied (AF_INET and AF_INET6 only), canonical.
pub fn sockaddr_inet(bytes: &[u8]) -> Option<SocketAddr> {
    crt_tracer::decode::inet_addr(bytes).map(canonical)
}

/// One traced attempt to talk: who, to where, when (ns), and which
/// protocols it may have used, likeliest first (a `connect` does not say
/// whether its socket is TCP or UDP; a `sendto` with an address is UDP).
#[derive(Clone, Debug)]
pub struct TracedSend {
    pub owner: String,
    pub dest: SocketAddr,
    pub at_ns: u64,
    pub protos: &'static [Proto],
}

/// What a traced record says of a destination, if it is a `connect` or an
/// addressed `sendto` to an IPv4 or IPv6 address.
pub fn traced_send(owner: &str, rec: &Record<'_>) -> Option<TracedSend> {
    if rec.kind != KIND_SYSCALL {
        return None;
    }
    let (arg, protos): (u8, &'static [Proto]) = match syscalls::by_nr(rec.arch, rec.nr)?.name {
        "connect" => (1, &[Proto::Tcp, Proto::Udp]),
        "sendto" => (4, &[Proto::Udp]),
        _ => return None,
    };
    let CaptureData::Bytes { bytes, .. } = rec.capture(arg)? else {
        return None;
    };
    let dest = sockaddr_inet(bytes)?;
    if dest.port() == 0 || dest.ip().is_unspecified() {
        return None;
    }
    Some(TracedSend {
        owner: owner.to_string(),
        dest,
        at_ns: rec.ts_ns,
        protos,
    })
}

/// The edge a traced send makes. Its destination is a container of the
/// scope when the address is local to exactly one of the scope's network
/// namespaces (a loopback address: the sender's own) and a container there,
/// created before the send, listens on the port; otherwise the address. A `connect` to an address
/// counts as UDP only when the sockets show a UDP edge and no TCP one there.
pub fn traced_edge(
    t: &TracedSend,
    observed: &Observed,
    socket_edges: &BTreeMap<EdgeKey, u32>,
) -> EdgeKey {
    let from = Endpoint::Container(t.owner.clone());
    let ip = t.dest.ip();
    let port = t.dest.port();
    let netns = if ip.is_loopback() {
        observed.netns_of.get(&t.owner).copied()
    } else {
        match observed.local_addrs.get(&ip) {
            Some(set) if set.len() == 1 => set.iter().next().copied(),
            _ => None,
        }
    };
    if let Some(ns) = netns {
        for &proto in t.protos {
            let existed = |owner: &&String| {
                observed
                    .created_ns
                    .get(*owner)
                    .is_none_or(|&created| created <= t.at_ns)
            };
            if let Some(owner) = observed
                .listeners
                .get(&(ns, proto, port))
                .and_then(|o| o.iter().find(existed))
            {
                return EdgeKey {
                    proto,
                    from,
                    to: Endpoint::Container(owner.clone()),
                    port,
                };
            }
        }
    }
    let to = Endpoint::Address(ip);
    let seen_as = |proto| {
        socket_edges.contains_key(&EdgeKey {
            proto,
            from: from.clone(),
            to: to.clone(),
            port,
        })
    };
    let proto = t
        .protos
        .iter()
        .copied()
        .find(|&p| seen_as(p))
        .unwrap_or(t.protos[0]);
    EdgeKey {
        proto,
        from,
        to,
        port,
    }
}

const VIA_SOCKET: u8 = 1;
const VIA_TRACE: u8 = 2;

/// An edge as remembered between requests.
#[derive(Clone, Debug, Default)]
struct Remembered {
    /// How it was ever seen while remembered.
    via: u8,
    last_seen_ns: u64,
    /// Connections open at the last request of its scope.
    connections: u32,
}

/// One edge as the topology shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeView {
    pub key: EdgeKey,
    pub via: Vec<&'static str>,
    pub connections: u32,
    pub last_seen_ns: u64,
    pub age_s: f64,
}

impl EdgeView {
    pub fn json(&self) -> Value {
        json!({
            "id": self.key.id(),
            "from": self.key.from.json(),
            "to": self.key.to.json(),
            "port": self.key.port,
            "proto": self.key.proto.name(),
            "via": self.via,
            "active": self.connections > 0,
            "connections": self.connections,
            "last_seen": rfc3339_utc(self.last_seen_ns),
            "age_s": self.age_s,
        })
    }
}

/// The edges each scope saw lately, so one that closed a moment ago still
/// shows. Kept per scope: a request only ever reads and writes its own
/// scope's edges, so one tenant never sees what another's request learned.
#[derive(Default)]
pub struct EdgeMemory {
    scopes: Mutex<HashMap<String, HashMap<EdgeKey, Remembered>>>,
}

impl EdgeMemory {
    /// Folds what a request saw into its scope's memory and returns every
    /// edge remembered there, sorted by id. `sockets`: edges with their
    /// connections open now; `traced`: edges with when they were last traced
    /// (ns); `known`: whether an endpoint may be shown to the scope (a
    /// container that left the scope since is forgotten with its edges).
    pub fn update(
        &self,
        scope: &Scope,
        now_ns: u64,
        sockets: &BTreeMap<EdgeKey, u32>,
        traced: &BTreeMap<EdgeKey, u64>,
        known: impl Fn(&Endpoint) -> bool,
    ) -> Vec<EdgeView> {
        // Every distinct scope its own memory, whatever kinds of scope
        // there are: a shared one could only ever show more, never less.
        let key = format!("{scope:?}");
        let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        let edges = scopes.entry(key).or_default();
        for r in edges.values_mut() {
            r.connections = 0;
        }
        for (k, &n) in sockets {
            let r = edges.entry(k.clone()).or_default();
            r.via |= VIA_SOCKET;
            r.last_seen_ns = r.last_seen_ns.max(now_ns);
            r.connections = n;
        }
        for (k, &at) in traced {
            let r = edges.entry(k.clone()).or_default();
            r.via |= VIA_TRACE;
            r.last_seen_ns = r.last_seen_ns.max(at);
        }
        let ttl = EDGE_TTL.as_nanos() as u64;
        edges.retain(|k, r| {
            now_ns.saturating_sub(r.last_seen_ns) <= ttl && known(&k.from) && known(&k.to)
        });
        if edges.len() > EDGES_PER_SCOPE {
            let mut by_age: Vec<(u64, EdgeKey)> = edges
                .iter()
                .map(|(k, r)| (r.last_seen_ns, k.clone()))
                .collect();
            by_age.sort();
            for (_, k) in by_age.into_iter().take(edges.len() - EDGES_PER_SCOPE) {
                edges.remove(&k);
            }
        }
        let mut out: Vec<EdgeView> = edges
            .iter()
            .map(|(k, r)| EdgeView {
                key: k.clone(),
                via: [(VIA_SOCKET, "socket"), (VIA_TRACE, "trace")]
                    .into_iter()
                    .filter(|(bit, _)| r.via & bit != 0)
                    .map(|(_, name)| name)
                    .collect(),
                connections: r.connections,
                last_seen_ns: r.last_seen_ns,
                age_s: (now_ns.saturating_sub(r.last_seen_ns) as f64 / 1e8).round() / 10.0,
            })
            .collect();
        out.sort_by_cached_key(|e| e.key.id());
        out
    }
}

/// What the network map keeps between requests.
#[derive(Default)]
pub struct NetMemory {
    pub edges: EdgeMemory,
    pub tables: TableCache,
}

/// The network side of one topology answer.
pub struct NetMap {
    listening: BTreeMap<String, BTreeSet<Listening>>,
    pub edges: Vec<EdgeView>,
}

impl NetMap {
    /// The `listening` array of container `namespace/id`.
    pub fn listening_json(&self, namespace: &str, id: &str) -> Value {
        let list = self
            .listening
            .get(&key_of(namespace, id))
            .into_iter()
            .flatten()
            .map(|l| json!({"proto": l.proto.name(), "address": l.address.to_string(), "port": l.port}))
            .collect();
        Value::Array(list)
    }

    pub fn edges_json(&self) -> Value {
        Value::Array(self.edges.iter().map(EdgeView::json).collect())
    }
}

fn key_of(namespace: &str, id: &str) -> String {
    format!("{namespace}/{id}")
}

/// The network map of `containers` (every container the scope sees):
/// sockets of the running ones, traced sends of the last [`EDGE_TTL`], and
/// what the scope's memory still holds.
pub fn observe(memory: &NetMemory, scope: &Scope, containers: &[ContainerView]) -> NetMap {
    let now = crt_tracer::render::now_ns();
    let table = ProcTable::recent();
    let running: Vec<ContainerProcs> = containers
        .iter()
        .filter(|c| c.status == "running")
        .filter_map(|c| {
            let init = c.record()?.pid;
            let pids = container_pids(&table, (init > 0).then_some(init)?);
            (!pids.is_empty()).then(|| ContainerProcs {
                key: key_of(&c.namespace, &c.id),
                // init first: its namespace is the container's.
                pids: std::iter::once(init)
                    .chain(pids.into_iter().filter(|&p| p != init))
                    .collect(),
            })
        })
        .collect();
    let mut observed = read_proc(
        Path::new("/proc"),
        &running,
        &memory.tables,
        Instant::now() + TABLES_TIME,
    );
    if observed.netns_unread > 0 {
        tracing::debug!(
            "topology: {} network namespaces left unread this time (their tables are read by the next requests)",
            observed.netns_unread
        );
    }
    observed.created_ns = containers
        .iter()
        .filter_map(|c| {
            let created = parse_rfc3339_utc(&c.record()?.created)?;
            Some((key_of(&c.namespace, &c.id), created))
        })
        .collect();
    let sockets = pair_sockets(&observed.sockets, &observed.listeners);

    let mut traced: BTreeMap<EdgeKey, u64> = BTreeMap::new();
    let streams: Vec<_> = containers
        .iter()
        .flat_map(|c| c.streams.iter().cloned())
        .collect();
    if !streams.is_empty() {
        let filter = Filter {
            since: Some(now.saturating_sub(EDGE_TTL.as_nanos() as u64)),
            syscalls: ["connect", "sendto"]
                .into_iter()
                .filter_map(syscalls::by_name)
                .map(|s| s.nr)
                .collect(),
            kinds: 1 << KIND_SYSCALL,
            ..Filter::default()
        };
        let found = query::run(
            &streams,
            &filter,
            Order::Desc,
            TRACE_HITS,
            None,
            Budget {
                max_scanned: TRACE_SCAN,
                deadline: Instant::now() + TRACE_TIME,
            },
        );
        match found {
            Ok(result) => {
                for h in &result.hits {
                    let owner = key_of(&h.stream.meta.namespace, &h.stream.meta.container);
                    if let Some(t) = traced_send(&owner, &h.record()) {
                        let at = traced
                            .entry(traced_edge(&t, &observed, &sockets))
                            .or_default();
                        *at = (*at).max(t.at_ns);
                    }
                }
            }
            Err(e) => tracing::warn!("topology: reading traced connects failed: {e}"),
        }
    }

    let known: HashSet<String> = containers
        .iter()
        .map(|c| key_of(&c.namespace, &c.id))
        .collect();
    let edges = memory
        .edges
        .update(scope, now, &sockets, &traced, |e| match e {
            Endpoint::Container(c) => known.contains(c),
            Endpoint::Address(_) => true,
        });
    NetMap {
        listening: observed.listening,
        edges,
    }
}

#[cfg(test)]
mod tests;
