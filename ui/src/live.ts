// A live event stream over crtd's WebSocket that survives a dropped
// connection: it remembers the id of the last event it got and reconnects
// with `after=<id>`, so crtd replays what was missed and sends nothing twice.

import { socket, withQuery, type TraceEvent } from './api';

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'closed' | 'error';

export interface LiveHandlers {
  onEvents(events: TraceEvent[]): void;
  onStatus(status: LiveStatus, detail?: string): void;
  /** Events crtd had to drop for this reader (it was too slow), counted since it connected. */
  onDrops?(dropped: number): void;
}

export class LiveStream {
  private ws: WebSocket | null = null;
  private lastId: string | null = null;
  private stopped = false;
  private retry = 0;
  private timer: number | undefined;
  private pending: TraceEvent[] = [];
  private flushScheduled = false;

  constructor(
    private query: [string, string | undefined][],
    private handlers: LiveHandlers,
    after?: string,
  ) {
    this.lastId = after ?? null;
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    const q: [string, string | undefined][] = [...this.query];
    if (this.lastId) q.push(['after', this.lastId]);
    const ws = socket(withQuery('/v1/events/stream', q));
    this.ws = ws;
    this.handlers.onStatus(this.retry === 0 ? 'connecting' : 'reconnecting');
    ws.onopen = () => {
      this.retry = 0;
      this.handlers.onStatus('live');
    };
    ws.onmessage = (m) => {
      if (typeof m.data !== 'string') return;
      let msg: { type: string; id?: string; data?: unknown };
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      if (msg.type === 'event' && msg.data) {
        if (msg.id) this.lastId = msg.id;
        this.pending.push(msg.data as TraceEvent);
        this.scheduleFlush();
      } else if (msg.type === 'drops' && msg.data && this.handlers.onDrops) {
        this.handlers.onDrops(Number((msg.data as { dropped?: number }).dropped ?? 0));
      }
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      // 1008 / 4xx-like closes and failed upgrades (code 1006 before open) are retried
      // with backoff; crtd's own refusals show once the page reloads its data.
      this.retry++;
      const wait = Math.min(250 * 2 ** Math.min(this.retry, 5), 8000);
      this.handlers.onStatus('reconnecting', e.reason || undefined);
      this.timer = window.setTimeout(() => this.connect(), wait);
    };
  }

  /** Hands events over once per frame, so a burst costs one render. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    requestAnimationFrame(() => {
      this.flushScheduled = false;
      const batch = this.pending;
      this.pending = [];
      if (batch.length) this.handlers.onEvents(batch);
    });
  }

  /** The id to resume after (the last event received). */
  position(): string | null {
    return this.lastId;
  }

  close(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this.handlers.onStatus('closed');
  }
}
