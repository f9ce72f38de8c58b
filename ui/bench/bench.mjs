// The web UI's benchmark (scripts/bench-ui.sh runs it): the built UI (ui/dist)
// in Debian's Chromium, against a synthetic crtd served from here, so a tenant
// of 500 containers and a stream of 1 000 events/s need no real node.
// Prints one JSON object of medians over UI_RUNS fresh page loads.
//
// Environment (defaults in brackets): UI_RUNS [5], UI_MAP_N [500], UI_MAP_BASE_N [50],
// UI_TRACE_LINES [100000], UI_TRACE_RATE [1000], UI_TRACE_SECONDS [10],
// CRT_CHROMIUM [/usr/bin/chromium], UI_SCREENSHOTS [none: a directory for a picture of
// each map size at its first render and after Expand all, to judge whether it reads].

import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '@playwright/test';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '..', 'dist');

function whole(key, fallback, min = 1) {
  const raw = process.env[key] ?? String(fallback);
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min) {
    throw new Error(`${key} must be a whole number of at least ${min} (got '${raw}')`);
  }
  return Number(raw);
}
const RUNS = whole('UI_RUNS', 5);
const MAP_N = whole('UI_MAP_N', 500);
const MAP_BASE_N = whole('UI_MAP_BASE_N', 50);
const TRACE_LINES = whole('UI_TRACE_LINES', 100_000);
const TRACE_RATE = whole('UI_TRACE_RATE', 1000);
const TRACE_SECONDS = whole('UI_TRACE_SECONDS', 10);
const CHROMIUM = process.env.CRT_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = process.env.UI_SCREENSHOTS ?? '';
/** A frame this long or longer is one a person notices as a stutter: three refreshes at
 *  60 Hz, which the requestAnimationFrame clock gives as 49.9-50.1 ms, hence the margin. */
const LONG_FRAME_MS = 50;
const LONG_FRAME_FROM = LONG_FRAME_MS - 1;

// The header crtd sends with every response (index.html adds its page's style nonce).
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const log = (msg) => process.stderr.write(`bench-ui: ${msg}\n`);

// --- synthetic data ---------------------------------------------------------------

/** A small seeded generator: the same topology on every page load and every run. */
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = (list) => list[Math.floor(next() * list.length)];
  const hex = (n) => Array.from({ length: n }, () => '0123456789abcdef'[int(0, 15)]).join('');
  const alnum = (n) => Array.from({ length: n }, () => 'bcdfghjklmnpqrstvwxz2456789'[int(0, 25)]).join('');
  /** Picks from [value, weight] pairs. */
  const weighted = (pairs) => {
    let r = next() * pairs.reduce((s, [, w]) => s + w, 0);
    for (const [v, w] of pairs) if ((r -= w) < 0) return v;
    return pairs[pairs.length - 1][0];
  };
  return { next, int, pick, hex, alnum, weighted };
}

const K8S_NAMESPACES = [
  'payments', 'checkout', 'catalog-search', 'identity', 'observability',
  'ingress-nginx', 'data-pipeline', 'notifications', 'recommendations', 'platform-tools',
];
const APP_FIRST = ['order', 'cart', 'inventory', 'pricing', 'session', 'user-profile', 'invoice', 'shipping', 'search', 'ledger', 'fraud', 'email', 'webhook', 'report', 'token', 'media'];
const APP_SECOND = ['api', 'worker', 'service', 'consumer', 'gateway', 'scheduler', 'indexer', 'exporter', 'cache', 'sync'];
const SIDECARS = ['istio-proxy', 'log-shipper', 'config-reloader', 'otel-collector', 'vault-agent'];
const COMMS = {
  api: [['node', ['node', '--enable-source-maps', 'dist/server.js']], ['gunicorn', ['/usr/local/bin/python3.11', '/usr/local/bin/gunicorn', '-w', '4', '-b', '0.0.0.0:8080', 'app.wsgi:application']]],
  worker: [['python3', ['/usr/local/bin/python3.11', '-m', 'celery', '-A', 'tasks', 'worker', '--concurrency=4']]],
  other: [['java', ['/opt/java/openjdk/bin/java', '-XX:MaxRAMPercentage=75', '-jar', '/app/service.jar']], ['server', ['/app/server', '--config', '/etc/app/config.yaml']]],
  sidecar: [['envoy', ['/usr/local/bin/envoy', '-c', '/etc/istio/proxy/envoy-rev.json', '--concurrency', '2']], ['fluent-bit', ['/fluent-bit/bin/fluent-bit', '-c', '/fluent-bit/etc/fluent-bit.conf']]],
};
const NOW = Date.parse('2026-11-28T08:00:00Z');
const iso = (ms) => new Date(ms).toISOString();

function makeContainer(r, { ns, id, pod, k8sNs, name, image, sidecar }) {
  const status = r.weighted([['running', 93], ['stopped', 4], ['created', 3]]);
  const running = status === 'running';
  const traced = !sidecar && r.next() < 0.4;
  const kind = sidecar ? 'sidecar' : name.endsWith('-api') || name.endsWith('-gateway') ? 'api' : name.endsWith('-worker') ? 'worker' : 'other';
  const pid = running ? r.int(2000, 4_000_000) : null;
  const processes = [];
  if (running) {
    const [comm, cmdline] = r.pick(COMMS[kind]);
    const count = r.int(1, 3);
    for (let i = 0; i < count; i++) {
      processes.push({
        pid: i === 0 ? pid : pid + r.int(5, 400),
        comm,
        cmdline,
        state: r.weighted([['S', 8], ['R', 2]]),
        syscall_rate: traced ? Math.round(r.next() * 1500) : 0,
      });
    }
  }
  const created = NOW - r.int(600, 30 * 86400) * 1000;
  const rate = processes.reduce((s, p) => s + p.syscall_rate, 0);
  // Drawn from nothing new, so the rest of the seeded data stays as it was.
  const cpuPercent = status === 'running' ? (rate % 4000) / 100 : null;
  return {
    namespace: ns,
    id,
    tenant: 'bench',
    status,
    pid,
    exit_code: status === 'stopped' ? r.pick([0, 137, 1]) : null,
    image,
    clone_of: null,
    traced,
    trace_spec: traced ? r.pick(['%file,%network', 'openat,connect,execve', '%network']) : null,
    kubernetes: pod ? { namespace: k8sNs, pod, container: name } : null,
    created: iso(created),
    exited: status === 'stopped' ? iso(created + r.int(60, 3600) * 1000) : null,
    cpu_usage_ns: status === 'created' ? null : r.int(1e9, 9e12),
    cpu_percent: cpuPercent,
    memory_bytes: status === 'created' ? null : r.int(18, 1600) * 1024 * 1024,
    syscall_rate: rate,
    syscalls_seen: traced ? r.int(1e4, 9e8) : 0,
    events_stored: traced ? r.int(1e4, 5e7) : 0,
    dropped: traced && r.next() < 0.1 ? r.int(1, 5000) : 0,
    storing: { ok: true },
    processes,
    listening: running && !sidecar ? [{ proto: 'tcp', address: '0.0.0.0', port: r.pick([8080, 8443, 9090, 5432, 6379, 3000]) }] : [],
  };
}

/** A tenant of `n` containers: pods of 1-5 over ten namespaces, a few loose ones, about n/2 edges. */
function topology(n) {
  const r = rng(0xc0ffee ^ n);
  const loose = Math.max(2, Math.round(n * 0.02));
  const pods = [];
  let made = 0;
  while (made < n - loose) {
    const k8sNs = r.pick(K8S_NAMESPACES);
    const app = `${r.pick(APP_FIRST)}-${r.pick(APP_SECOND)}`;
    const podName = `${app}-${r.hex(10)}-${r.alnum(5)}`;
    const size = Math.min(n - loose - made, r.weighted([[1, 30], [2, 35], [3, 20], [4, 10], [5, 5]]));
    const version = `${r.int(1, 4)}.${r.int(0, 30)}.${r.int(0, 12)}`;
    const containers = [];
    for (let i = 0; i < size; i++) {
      const sidecar = i > 0;
      const name = sidecar ? SIDECARS[(i - 1) % SIDECARS.length] : app;
      const image = sidecar ? `docker.io/istio/proxyv2:1.${r.int(18, 23)}.${r.int(0, 6)}` : `registry.example.com/${k8sNs}/${app}:${version}`;
      containers.push(makeContainer(r, { ns: 'k8s.io', id: r.hex(64), pod: podName, k8sNs, name, image, sidecar }));
    }
    made += size;
    pods.push({ namespace: k8sNs, name: podName, syscall_rate: containers.reduce((s, c) => s + c.syscall_rate, 0), containers });
  }
  const looseContainers = Array.from({ length: loose }, () => {
    const job = r.pick(['batch-import', 'nightly-report', 'db-backup']);
    return makeContainer(r, { ns: 'default', id: `${job}-${r.alnum(6)}`, pod: null, name: job, image: `registry.example.com/tools/${job}:${r.int(1, 3)}.${r.int(0, 9)}`, sidecar: false });
  });
  const all = [...pods.flatMap((p) => p.containers), ...looseContainers];
  const servers = all.filter((c) => c.listening.length);
  const key = (c) => `${c.namespace}/${c.id}`;
  const edges = [];
  const edgeOf = (from, to, port, proto, traced) => {
    const active = r.next() < 0.7;
    const age = active ? 0 : r.int(5, 290);
    return {
      id: `e${edges.length}`,
      from,
      to,
      port,
      proto,
      via: traced ? ['sockets', 'trace'] : ['sockets'],
      active,
      connections: r.int(1, 40),
      last_seen: iso(NOW - age * 1000),
      age_s: age,
    };
  };
  for (let i = 0; i < Math.round(n / 2); i++) {
    const from = r.pick(all);
    let to = r.pick(servers);
    if (to === from) to = servers[(servers.indexOf(to) + 1) % servers.length];
    edges.push(edgeOf({ container: key(from) }, { container: key(to) }, to.listening[0].port, 'tcp', from.traced));
  }
  const outside = [['10.96.0.10', 53, 'udp'], ['52.94.236.248', 443, 'tcp'], ['140.82.112.3', 443, 'tcp'], ['10.0.12.40', 5432, 'tcp'], ['172.217.16.206', 443, 'tcp'], ['10.0.30.7', 9092, 'tcp']];
  for (let i = 0; i < Math.max(3, Math.round(n / 20)); i++) {
    const [address, port, proto] = r.pick(outside);
    const from = r.pick(all);
    edges.push(edgeOf({ container: key(from) }, { address }, port, proto, from.traced));
  }
  return { tenant: 'bench', pods, containers: looseContainers, edges };
}

function metrics(r) {
  const samples = [];
  for (let i = 359; i >= 0; i--) {
    samples.push({ t: iso(NOW - i * 10_000), syscall_rate: Math.round(300 + r.next() * 900), cpu_percent: 5 + r.next() * 40, memory_bytes: Math.round((200 + r.next() * 30) * 1024 * 1024) });
  }
  return { interval_s: 10, samples };
}

// Syscall arguments as crt's tracer renders them (strace-like), 60-150 characters each.
const PATHS = [
  '/usr/local/lib/python3.11/site-packages/requests/adapters.py',
  '/app/node_modules/@grpc/grpc-js/build/src/load-balancer-pick-first.js',
  '/var/lib/app/cache/catalog/products/3f/3f9a61c2e8d04b7aa1b0c5d7e2f41a98.json',
  '/etc/ssl/certs/ca-certificates.crt',
  '/proc/self/cgroup',
  '/usr/share/zoneinfo/Europe/Berlin',
  '/opt/java/openjdk/lib/modules',
  '/tmp/upload-6f1d2c7e-4b8a-41f0-9a3e-2d5c8b7e1f04.part',
];
const PAYLOADS = [
  'GET /api/v1/orders/ord_8f2k1x9q/items?expand=sku,price HTTP/1.1\\r\\nHost: order-api.checkout.svc',
  '{\\"event\\":\\"cart.updated\\",\\"cart_id\\":\\"c_71ac02\\",\\"items\\":[{\\"sku\\":\\"SKU-118273\\",\\"qty\\":2}',
  'HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: 1834\\r\\nx-request-id: 9b1f',
  '\\x17\\x03\\x03\\x01\\x2a\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x05\\x8c\\x91\\x4e\\xd2\\x17\\xa9\\x3c\\x0b',
  'SELECT id, sku, price_cents, currency FROM prices WHERE sku = ANY($1) AND valid_until > now()',
];
const ADDRS = ['10.42.3.17', '10.42.7.201', '10.96.0.10', '10.0.12.40', '10.42.1.9'];

function syscallArgs(r) {
  const fd = String(r.int(3, 64));
  switch (r.weighted([['openat', 18], ['read', 20], ['write', 14], ['connect', 8], ['sendto', 10], ['recvfrom', 10], ['newfstatat', 8], ['epoll_wait', 6], ['execve', 2], ['futex', 4]])) {
    case 'openat':
      return ['openat', ['AT_FDCWD', `"${r.pick(PATHS)}"`, r.pick(['O_RDONLY|O_CLOEXEC', 'O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644', 'O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY'])], String(r.int(3, 64))];
    case 'read':
      return ['read', [fd, `"${r.pick(PAYLOADS)}"...`, r.pick(['4096', '8192', '65536'])], String(r.int(200, 4096))];
    case 'write':
      return ['write', [fd, `"${r.pick(PAYLOADS)}"...`, String(r.int(300, 2000))], String(r.int(300, 2000))];
    case 'connect':
      return ['connect', [fd, `{sa_family=AF_INET, sin_port=htons(${r.pick([5432, 6379, 8080, 443, 9092])}), sin_addr=inet_addr("${r.pick(ADDRS)}")}`, '16'], r.pick(['0', '-115 (EINPROGRESS)'])];
    case 'sendto':
      return ['sendto', [fd, `"${r.pick(PAYLOADS)}"...`, String(r.int(80, 1400)), 'MSG_NOSIGNAL', 'NULL', '0'], String(r.int(80, 1400))];
    case 'recvfrom':
      return ['recvfrom', [fd, `"${r.pick(PAYLOADS)}"...`, '65536', '0', 'NULL', 'NULL'], String(r.int(60, 9000))];
    case 'newfstatat':
      return ['newfstatat', ['AT_FDCWD', `"${r.pick(PATHS)}"`, '0x7ffd3c9a1e40', 'AT_SYMLINK_NOFOLLOW'], '0'];
    case 'epoll_wait':
      return ['epoll_wait', [fd, '[{events=EPOLLIN, data={u32=3120, u64=140237118091320}}]', '1024', String(r.int(100, 30000))], '1'];
    case 'execve':
      return ['execve', ['"/usr/local/bin/python3.11"', '["python3", "-m", "app.jobs.reindex", "--shard", "7", "--since", "2026-11-28T07:00:00Z"]', '0x7ffd0000 /* 23 vars */'], '0'];
    default:
      return ['futex', ['0x7f3c2a1b9e48', 'FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME', '0', '{tv_sec=1796457662, tv_nsec=123456789}', 'NULL', 'FUTEX_BITSET_MATCH_ANY'], '-110 (ETIMEDOUT)'];
  }
}

/** Event bodies to stream (a time stamp is added as each is sent): mostly syscalls, some output lines. */
function eventPool(c, count) {
  const r = rng(0x7ace);
  const pool = [];
  while (pool.length < count) {
    const proc = r.pick(c.processes);
    if (r.next() < 0.1) {
      pool.push({ event: 'log', namespace: c.namespace, container: c.id, tenant: 'bench', stream: r.weighted([['stdout', 8], ['stderr', 2]]), line: `level=info ts=2026-11-28T08:01:02.${r.int(100, 999)}Z caller=http.go:${r.int(40, 400)} msg="request served" method=GET path=/api/v1/orders/ord_${r.alnum(8)} status=200 duration_ms=${(r.next() * 40).toFixed(1)}` });
      continue;
    }
    const [syscall, args, ret] = syscallArgs(r);
    const len = args.join(', ').length;
    if (len < 60 || len > 150) continue;
    pool.push({ event: 'syscall', namespace: c.namespace, container: c.id, tenant: 'bench', pid: proc.pid, comm: proc.comm, syscall, args, ret });
  }
  return pool;
}

// --- the server: ui/dist, the API, and the event stream's WebSocket -------------------

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml', '.woff2': 'font/woff2', '.png': 'image/png' };

function startServer() {
  const topologies = new Map();
  const topo = (n) => {
    if (!topologies.has(n)) topologies.set(n, topology(n));
    return topologies.get(n);
  };
  /** Per token (one per page load): which tenant size it sees, and how many topology polls it made. */
  const sessions = new Map();
  const held = new Set();
  const sockets = new Set();
  let streamWaiter = null;

  const send = (res, status, body, type = 'application/json', csp = CSP) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Security-Policy': csp, 'Cache-Control': 'no-store' });
    res.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://bench');
    if (!url.pathname.startsWith('/v1/')) {
      const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname).replace(/^\/+/, '');
      const file = path.join(dist, rel);
      if (!file.startsWith(dist + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) return send(res, 404, 'not found', 'text/plain');
      if (rel === 'index.html') {
        // As crtd does: a fresh style nonce per page, in the page and in the policy.
        const nonce = crypto.randomBytes(16).toString('base64');
        const page = fs.readFileSync(file, 'utf8').replace('__CRT_STYLE_NONCE__', nonce);
        return send(res, 200, page, 'text/html; charset=utf-8', CSP.replace("style-src 'self';", `style-src 'self' 'nonce-${nonce}';`));
      }
      return send(res, 200, fs.readFileSync(file), TYPES[path.extname(file)] ?? 'application/octet-stream');
    }
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const session = token && sessions.get(token);
    if (!session) return send(res, 401, { error: 'invalid bearer token' });
    if (url.pathname === '/v1/whoami') return send(res, 200, { root: false, operator: false, tenant: 'bench' });
    if (url.pathname === '/v1/topology') {
      // Only the first poll is answered: a live update landing inside a timed
      // redraw would be timed instead of it.
      if (session.polls++ > 0 && session.holdPolls) {
        held.add(res);
        res.on('close', () => held.delete(res));
        return;
      }
      return send(res, 200, topo(session.n));
    }
    if (url.pathname === '/v1/events') return send(res, 200, { events: [], next: '0', more: false, truncated: false });
    const m = /^\/v1\/containers\/([^/]+)\/([^/]+)(\/metrics)?$/.exec(url.pathname);
    if (m) {
      const t = topo(session.n);
      const c = [...t.pods.flatMap((p) => p.containers), ...t.containers].find((x) => x.namespace === decodeURIComponent(m[1]) && x.id === decodeURIComponent(m[2]));
      if (!c) return send(res, 404, { error: `no container ${m[1]}/${m[2]}` });
      return send(res, 200, m[3] ? metrics(rng(7)) : c);
    }
    return send(res, 404, { error: `no endpoint ${url.pathname}` });
  });

  // The event stream: a WebSocket, authenticated by its subprotocol as crtd does.
  server.on('upgrade', (req, socket) => {
    const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    const bearer = protocols.find((p) => p.startsWith('crt.bearer.'));
    const token = bearer && Buffer.from(bearer.slice('crt.bearer.'.length), 'base64url').toString();
    if (!new URL(req.url, 'http://bench').pathname.startsWith('/v1/events/stream') || !token || !sessions.has(token)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const accept = crypto.createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: crt.v1\r\n\r\n`);
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // The page only ever closes (opcode 8); anything else it might send is ignored.
    socket.on('data', (d) => {
      if ((d[0] & 0x0f) === 8) socket.end(Buffer.from([0x88, 0]));
    });
    streamWaiter?.(socket);
    streamWaiter = null;
  });

  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        topo,
        session(n, holdPolls) {
          const token = `bench-${crypto.randomBytes(8).toString('hex')}`;
          sessions.set(token, { n, holdPolls, polls: 0 });
          return token;
        },
        nextStream() {
          return new Promise((res) => {
            streamWaiter = res;
          });
        },
        close() {
          for (const r of held) r.destroy();
          for (const s of sockets) s.destroy();
          return new Promise((res) => server.close(res));
        },
      });
    });
  });
}

/** One unmasked text frame (server to client). */
function frame(text) {
  const body = Buffer.from(text);
  const n = body.length;
  const head = n < 126 ? Buffer.from([0x81, n]) : n < 65536 ? Buffer.from([0x81, 126, n >> 8, n & 255]) : Buffer.concat([Buffer.from([0x81, 127, 0, 0, 0, 0]), Buffer.from([n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255])]);
  return Buffer.concat([head, body]);
}

class Feed {
  constructor(socket, pool) {
    this.socket = socket;
    this.pool = pool;
    this.sent = 0;
  }

  message() {
    const id = ++this.sent;
    const now = Date.now();
    const us = String(Math.floor((performance.now() % 1) * 1000)).padStart(3, '0');
    // crtd's times carry microseconds; these only need to look like them.
    const ts = new Date(now).toISOString().replace('Z', `${us}Z`);
    return JSON.stringify({ type: 'event', id: String(id), data: { ...this.pool[id % this.pool.length], ts } });
  }

  /** `count` events as fast as the socket takes them. */
  async burst(count) {
    while (count > 0) {
      const n = Math.min(count, 500);
      count -= n;
      const frames = [];
      for (let i = 0; i < n; i++) frames.push(frame(this.message()));
      if (!this.socket.write(Buffer.concat(frames))) await new Promise((res) => this.socket.once('drain', res));
    }
  }

  /** `rate` events a second for `seconds`, in 5 ms ticks; `at(s)` runs once per whole second. */
  steady(rate, seconds, at = () => {}) {
    return new Promise((resolve) => {
      const start = performance.now();
      const first = this.sent;
      let second = 0;
      const timer = setInterval(() => {
        const elapsed = (performance.now() - start) / 1000;
        const due = Math.min(Math.floor(rate * Math.min(elapsed, seconds)), rate * seconds) - (this.sent - first);
        const frames = [];
        for (let i = 0; i < due; i++) frames.push(frame(this.message()));
        if (frames.length) this.socket.write(Buffer.concat(frames));
        if (Math.floor(elapsed) > second) {
          second = Math.floor(elapsed);
          at(second);
        }
        if (elapsed >= seconds) {
          clearInterval(timer);
          resolve({ sent: this.sent - first, seconds: elapsed });
        }
      }, 5);
    });
  }
}

// --- measurements ------------------------------------------------------------------

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const round1 = (x) => (x === null ? null : Math.round(x * 10) / 10);
const summary = (xs) => ({ median: round1(median(xs)), min: round1(Math.min(...xs)), max: round1(Math.max(...xs)), runs: xs.map(round1) });

/** CSP violations seen on any page, by directive and what was blocked (reported, not fatal). */
const cspViolations = new Set();

async function newPage(browser, token) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (text.startsWith('crt-bench CSP violation: ')) cspViolations.add(text.slice('crt-bench CSP violation: '.length));
    else if (m.type() === 'error' && !text.includes('Content Security Policy')) problems.push(`console error: ${text}`);
  });
  await page.addInitScript((t) => {
    sessionStorage.setItem('crt.token', t);
    document.addEventListener('securitypolicyviolation', (e) => console.log(`crt-bench CSP violation: ${e.violatedDirective} ${e.blockedURI} (from ${e.sourceFile ? new URL(e.sourceFile).pathname : 'the page'})`));
  }, token);
  return { context, page, problems };
}

/** A page that threw or logged an error is not measured as if it worked. */
function assertClean(problems, what) {
  if (problems.length) throw new Error(`${what}: the page reported problems:\n${problems.join('\n')}`);
}

/** Clicks a button of the map and waits for the map's next frame: that draw's figures. */
function clickAndDraw(page, label) {
  return page.evaluate(
    (label) =>
      new Promise((resolve, reject) => {
        const map = document.querySelector('[data-testid=map]');
        const button = [...document.querySelectorAll('button')].find((b) => b.textContent === label);
        if (!button) return reject(new Error(`no "${label}" button`));
        const before = map.dataset.draws;
        const t0 = performance.now();
        button.click();
        const wait = () => {
          if (map.dataset.draws !== before) resolve({ drawMs: Number(map.dataset.drawMs), wallMs: performance.now() - t0, nodes: Number(map.dataset.nodes), edges: Number(map.dataset.edges) });
          else if (performance.now() - t0 > 60_000) reject(new Error(`no frame drawn within 60 s of "${label}"`));
          else requestAnimationFrame(wait);
        };
        requestAnimationFrame(wait);
      }),
    label,
  );
}

/** One fresh page load of the map of `n` containers: its first render, then Collapse all and Expand all. */
async function mapRun(browser, server, n, shoot) {
  const { context, page, problems } = await newPage(browser, server.session(n, true));
  try {
    await page.goto(`${server.url}/#/`);
    const wall = await (
      await page.waitForFunction(
        () => {
          const m = document.querySelector('[data-testid=map]');
          return m && m.dataset.renderMs ? performance.now() : 0;
        },
        null,
        { polling: 'raf', timeout: 60_000 },
      )
    ).jsonValue();
    const first = await page.locator('[data-testid=map]').evaluate((m) => ({ renderMs: Number(m.dataset.renderMs), nodes: Number(m.dataset.nodes), edges: Number(m.dataset.edges) }));
    if (shoot) await page.screenshot({ path: path.join(SCREENSHOTS, `map-${n}.png`) });
    // Both sizes close everything first, so "Expand all" opens as much for each
    // (at 60 containers or fewer, pods start open).
    await clickAndDraw(page, 'Collapse all');
    const expand = await clickAndDraw(page, 'Expand all');
    if (shoot) await page.screenshot({ path: path.join(SCREENSHOTS, `map-${n}-expanded.png`) });
    assertClean(problems, `map of ${n}`);
    return { ...first, wallMs: wall, expand };
  } finally {
    await context.close();
  }
}

/** Frame intervals (rAF) in the page for `ms`, while `during` runs. */
async function frames(page, during) {
  await page.evaluate(() => {
    const w = window;
    w.__frames = [];
    w.__stopFrames = false;
    let last = null;
    const tick = (t) => {
      if (last !== null) w.__frames.push(t - last);
      last = t;
      if (!w.__stopFrames) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const extra = await during();
  const deltas = await page.evaluate(() => {
    window.__stopFrames = true;
    return window.__frames;
  });
  return {
    p50: percentile(deltas, 50),
    p99: percentile(deltas, 99),
    long: deltas.filter((d) => d >= LONG_FRAME_FROM).length,
    frames: deltas.length,
    worst: Math.max(...deltas),
    ...extra,
  };
}

const lineCount = (page) =>
  page.getByTestId('trace-count').evaluate((e) => Number((e.textContent ?? '').split(' ')[0].replace(/[^0-9]/g, '') || 0));

/** A point half-way down the trace: the rows there are drawn and hold trace lines. */
async function scrollCheck(page) {
  return page.getByTestId('trace').evaluate(
    (el) =>
      new Promise((resolve) => {
        el.scrollTop = Math.floor(el.scrollHeight / 2);
        requestAnimationFrame(() =>
          requestAnimationFrame(() => {
            const box = el.getBoundingClientRect();
            const rows = [...el.querySelectorAll('.line')].filter((r) => {
              if (r.hidden) return false;
              const b = r.getBoundingClientRect();
              return b.bottom > box.top && b.top < box.bottom;
            });
            const shaped = rows.filter((r) => /^\d\d:\d\d:\d\d\.\d{6} /.test(r.textContent ?? ''));
            resolve({ scrollTop: el.scrollTop, scrollHeight: el.scrollHeight, visibleRows: rows.length, rowsWithTraceLines: shaped.length, ok: rows.length > 0 && shaped.length === rows.length });
          }),
        );
      }),
  );
}

/** One fresh page load of a container page: fill the trace, then idle, then stream. */
async function traceRun(browser, server, n, target, pool) {
  const { context, page, problems } = await newPage(browser, server.session(n, false));
  try {
    const stream = server.nextStream();
    await page.goto(`${server.url}/#/c/${encodeURIComponent(target.namespace)}/${encodeURIComponent(target.id)}`);
    const feed = new Feed(await stream, pool);
    await page.getByTestId('trace-status').filter({ hasText: 'live' }).waitFor({ timeout: 30_000 });
    const t0 = performance.now();
    await feed.burst(TRACE_LINES);
    await page.waitForFunction((want) => {
      const t = document.querySelector('[data-testid=trace-count]')?.textContent ?? '';
      return Number(t.split(' ')[0].replace(/[^0-9]/g, '')) >= want;
    }, TRACE_LINES, { timeout: 120_000, polling: 100 });
    const fillMs = performance.now() - t0;
    await page.waitForTimeout(1000);
    const idle = await frames(page, async () => {
      await page.waitForTimeout(TRACE_SECONDS * 1000);
      return {};
    });
    const before = await lineCount(page);
    let check = null;
    const checking = [];
    const streaming = await frames(page, async () => {
      const got = await feed.steady(TRACE_RATE, TRACE_SECONDS, (s) => {
        if (s === Math.floor(TRACE_SECONDS / 2)) checking.push(scrollCheck(page).then((c) => (check = c)));
      });
      await Promise.all(checking);
      return got;
    });
    // Every event sent reached the view (none were lost on the way).
    await page.waitForFunction((want) => {
      const t = document.querySelector('[data-testid=trace-count]')?.textContent ?? '';
      return Number(t.split(' ')[0].replace(/[^0-9]/g, '')) >= want;
    }, before + streaming.sent, { timeout: 30_000, polling: 100 });
    assertClean(problems, 'container page');
    return { fillMs, idle, streaming, linesAfter: await lineCount(page), check };
  } finally {
    await context.close();
  }
}

async function main() {
  if (!fs.existsSync(path.join(dist, 'index.html'))) throw new Error(`${dist}/index.html is missing: build the UI first (scripts/build-ui.sh)`);
  if (SCREENSHOTS) fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const server = await startServer();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // The machine's network is closed: no background connections to Google's hosts.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  try {
    const map = { [MAP_N]: [], [MAP_BASE_N]: [] };
    for (let round = 0; round < RUNS; round++) {
      // The two sizes alternate, in a rotating order, so drift on the machine hits both.
      const order = round % 2 ? [MAP_BASE_N, MAP_N] : [MAP_N, MAP_BASE_N];
      for (const n of order) {
        const r = await mapRun(browser, server, n, SCREENSHOTS !== '' && round < 2);
        log(`map of ${n}, run ${round + 1}/${RUNS}: render ${r.renderMs} ms, ${Math.round(r.wallMs)} ms from navigation, ${r.nodes} nodes/${r.edges} edges; expand all ${r.expand.drawMs} ms (${r.expand.nodes} nodes)`);
        map[n].push(r);
      }
    }
    const topo = server.topo(MAP_N);
    const target = topo.pods.flatMap((p) => p.containers).find((c) => c.traced && c.status === 'running' && c.processes.length === 3);
    if (!target) throw new Error(`the synthetic topology of ${MAP_N} has no traced running container with 3 processes`);
    const pool = eventPool(target, 5000);
    const poolLens = pool.filter((e) => e.event === 'syscall').map((e) => e.args.join(', ').length);
    const trace = [];
    for (let round = 0; round < RUNS; round++) {
      const r = await traceRun(browser, server, MAP_N, target, pool);
      log(`trace, run ${round + 1}/${RUNS}: ${TRACE_LINES} lines in ${Math.round(r.fillMs)} ms; idle p50 ${r.idle.p50.toFixed(1)} p99 ${r.idle.p99.toFixed(1)} ms, ${r.idle.long} long; streaming ${r.streaming.sent} events in ${r.streaming.seconds.toFixed(1)} s: p50 ${r.streaming.p50.toFixed(1)} p99 ${r.streaming.p99.toFixed(1)} ms, ${r.streaming.long} long; mid-scroll ${r.check?.visibleRows} rows ok=${r.check?.ok}`);
      trace.push(r);
    }
    const mapOf = (n) => ({
      containers: n,
      renderMs: summary(map[n].map((r) => r.renderMs)),
      wallMs: summary(map[n].map((r) => r.wallMs)),
      nodes: map[n][0].nodes,
      edges: map[n][0].edges,
      expandDrawMs: summary(map[n].map((r) => r.expand.drawMs)),
      expandWallMs: summary(map[n].map((r) => r.expand.wallMs)),
      expandedNodes: map[n][0].expand.nodes,
      expandedEdges: map[n][0].expand.edges,
    });
    const side = (key) => ({
      p50: summary(trace.map((r) => r[key].p50)),
      p99: summary(trace.map((r) => r[key].p99)),
      long: summary(trace.map((r) => r[key].long)),
      worst: summary(trace.map((r) => r[key].worst)),
      frames: summary(trace.map((r) => r[key].frames)),
    });
    const out = {
      runs: RUNS,
      chromium: execFileSync(CHROMIUM, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(),
      browserVersion: browser.version(),
      map: { subject: mapOf(MAP_N), baseline: mapOf(MAP_BASE_N) },
      trace: {
        container: `${target.namespace}/${target.id}`,
        lines: TRACE_LINES,
        rate: TRACE_RATE,
        seconds: TRACE_SECONDS,
        longFrameMs: LONG_FRAME_MS,
        longFrameFrom: LONG_FRAME_FROM,
        argChars: { min: Math.min(...poolLens), median: median(poolLens), max: Math.max(...poolLens) },
        fillMs: summary(trace.map((r) => r.fillMs)),
        idle: side('idle'),
        streaming: side('streaming'),
        sentPerRun: trace.map((r) => r.streaming.sent),
        linesAfter: trace.map((r) => r.linesAfter),
        scrollChecks: trace.map((r) => r.check),
        scrollOk: trace.every((r) => r.check?.ok === true),
      },
      cspViolations: [...cspViolations],
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } finally {
    await browser.close();
    await server.close();
  }
}

main().catch((e) => {
  process.stderr.write(`bench-ui: error: ${e.stack ?? e}\n`);
  process.exit(1);
});
