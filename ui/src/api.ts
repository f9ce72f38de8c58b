// crtd's API as the UI uses it: JSON requests with the bearer token, and
// WebSockets (live events, debug shells) that carry the token in their
// subprotocol, since a browser cannot set headers on a WebSocket.
// The token lives in sessionStorage only: never in a URL or a cookie.

const TOKEN_KEY = 'crt.token';

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t: string): void {
  sessionStorage.setItem(TOKEN_KEY, t);
}

export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Calls crtd; `Err` carries crtd's own message (`{"error": ...}`). */
export async function call<T>(method: string, path: string, tokenOverride?: string): Promise<T> {
  const t = tokenOverride ?? token();
  let resp: Response;
  try {
    resp = await fetch(path, {
      method,
      headers: t ? { Authorization: `Bearer ${t}` } : {},
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, `crtd cannot be reached (${(e as Error).message})`);
  }
  const text = await resp.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const msg =
      body && typeof body === 'object' && 'error' in body
        ? String((body as { error: unknown }).error)
        : `${resp.status} ${resp.statusText}`;
    throw new ApiError(resp.status, msg);
  }
  return body as T;
}

export const get = <T>(path: string) => call<T>('GET', path);

/** `/v1/x?a=1&b=2` from pairs (repeated keys kept; empty values left out). */
export function withQuery(path: string, query: [string, string | number | boolean | undefined][]): string {
  const q = new URLSearchParams();
  for (const [k, v] of query) if (v !== undefined && v !== '') q.append(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

function base64url(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A WebSocket to crtd, authenticated by the subprotocol `crt.bearer.<token>`. */
export function socket(path: string): WebSocket {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}${path}`, ['crt.v1', `crt.bearer.${base64url(token() ?? '')}`]);
  ws.binaryType = 'arraybuffer';
  return ws;
}

export const path = (...parts: string[]) => parts.map(encodeURIComponent).join('/');

// --- what crtd answers -------------------------------------------------------

export interface Whoami {
  root: boolean;
  operator?: boolean;
  tenant: string | null;
}

export interface Process {
  pid: number;
  comm: string;
  cmdline: string[];
  state: string;
  syscall_rate: number;
}

export interface Listening {
  proto: string;
  address: string;
  port: number;
}

export interface Container {
  namespace: string;
  id: string;
  tenant: string | null;
  status: string;
  pid: number | null;
  exit_code: number | null;
  image: string | null;
  clone_of: string | null;
  traced: boolean;
  trace_spec?: string | null;
  /** Why the trace has no return values (its calls show `= ?`), as its shim said. */
  results_unavailable?: string | null;
  kubernetes: { namespace?: string; pod?: string; pod_uid?: string; container?: string; [k: string]: unknown } | null;
  created: string | null;
  exited: string | null;
  cpu_usage_ns: number | null;
  /** CPU between crtd's last two usage samples, in percent of one core. */
  cpu_percent: number | null;
  memory_bytes: number | null;
  syscall_rate: number;
  syscalls_seen: number;
  events_stored: number;
  dropped: number;
  storing: { ok: boolean; error?: string; since?: string };
  processes?: Process[];
  listening?: Listening[];
}

export interface Pod {
  namespace: string;
  name: string;
  /** Who the pod is: a pod made again under the same name (a StatefulSet's) has a new uid. */
  uid: string;
  syscall_rate: number;
  containers: Container[];
}

export type Endpoint = { container: string } | { address: string };

export interface Edge {
  id: string;
  from: Endpoint;
  to: Endpoint;
  port: number;
  proto: string;
  via: string[];
  active: boolean;
  connections?: number;
  last_seen: string;
  age_s: number;
}

export interface Topology {
  tenant: string | null;
  pods: Pod[];
  containers: Container[];
  edges?: Edge[];
}

export interface MetricSample {
  t: string;
  syscall_rate: number;
  cpu_percent: number | null;
  memory_bytes: number | null;
}

export interface Metrics {
  interval_s: number;
  samples: MetricSample[];
}

export interface TraceEvent {
  event: string;
  ts: string;
  namespace: string;
  container: string;
  tenant: string | null;
  pid?: number;
  comm?: string;
  syscall?: string;
  args?: string[];
  /** The raw return value (negative: an error); null when unknown. */
  ret?: number | null;
  /** The error's name (ENOENT) when the call failed. */
  errno?: string | null;
  /** Entry to exit, ns; null when unknown. */
  duration_ns?: number | null;
  /** The index in `args` of the first argument strace prints at the exit. */
  exit_args?: number;
  /** The arguments from `exit_args` on are named ones only the exit adds (`clone`). */
  exit_comma?: boolean;
  /** Stored before it returned: its result comes in a later `resumed` event. */
  unfinished?: boolean;
  /** The exit of an unfinished call, with its result. */
  resumed?: boolean;
  stale?: boolean;
  stream?: string;
  line?: string;
  cut?: boolean;
  dropped?: number;
  results_lost?: number;
  lost?: number;
  init?: boolean;
}

export interface EventsPage {
  events: TraceEvent[];
  next: string;
  more: boolean;
  truncated: boolean;
}

export interface CloneMade {
  namespace: string;
  id: string;
  freeze_ms?: number;
  [k: string]: unknown;
}
