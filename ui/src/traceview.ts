// The trace view: a virtualised list. Only the rows in sight (and a few
// around them) exist in the DOM, so 100 000 lines scroll as smoothly as 100.
// Each row's text is set with textContent: a traced program's paths, argv and
// log lines are shown as they are, never interpreted.

import { h } from './dom';
import type { TraceEvent } from './api';

export interface Line {
  kind: string;
  text: string;
}

const ROW = 18;
const OVERSCAN = 20;
/** Lines kept; beyond it the oldest tenth goes at once (one copy, not one per line). */
export const MAX_LINES = 200_000;

export class TraceView {
  readonly el: HTMLElement;
  private spacer: HTMLElement;
  private rows: HTMLElement;
  private pool: HTMLElement[] = [];
  private lines: Line[] = [];
  private discarded = 0;
  private follow = true;
  private scheduled = false;
  private onCount: (shown: number, discarded: number) => void;

  constructor(label: string, onCount: (shown: number, discarded: number) => void = () => {}) {
    this.onCount = onCount;
    this.spacer = h('div', { class: 'trace-spacer' });
    this.rows = h('div', { class: 'trace-rows' });
    this.el = h(
      'div',
      { class: 'trace', role: 'region', 'aria-label': label, tabindex: 0, 'data-testid': 'trace' },
      this.spacer,
      this.rows,
    );
    this.el.addEventListener('scroll', () => {
      const atBottom = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - ROW * 2;
      this.follow = atBottom;
      this.schedule();
    });
    new ResizeObserver(() => this.schedule()).observe(this.el);
  }

  clear(): void {
    this.lines = [];
    this.discarded = 0;
    this.follow = true;
    this.schedule();
  }

  push(events: TraceEvent[]): void {
    for (const e of events) this.lines.push(lineOf(e));
    if (this.lines.length > MAX_LINES) {
      const cut = this.lines.length - MAX_LINES + Math.floor(MAX_LINES / 10);
      this.lines = this.lines.slice(cut);
      this.discarded += cut;
    }
    this.schedule();
  }

  /** Lines held now. */
  get length(): number {
    return this.lines.length;
  }

  /** The text of every line held (for copying a trace out). */
  text(): string {
    return this.lines.map((l) => l.text).join('\n');
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  private render(): void {
    const total = this.lines.length;
    this.spacer.style.height = `${total * ROW}px`;
    if (this.follow) this.el.scrollTop = this.el.scrollHeight;
    const top = this.el.scrollTop;
    const height = this.el.clientHeight || 400;
    const start = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const end = Math.min(total, Math.ceil((top + height) / ROW) + OVERSCAN);
    const count = Math.max(0, end - start);
    while (this.pool.length < count) {
      const row = h('div', { class: 'line' });
      this.pool.push(row);
      this.rows.appendChild(row);
    }
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i];
      if (i < count) {
        const line = this.lines[start + i];
        if (row.textContent !== line.text) row.textContent = line.text;
        const cls = `line ${line.kind}`;
        if (row.className !== cls) row.className = cls;
        row.hidden = false;
      } else {
        row.hidden = true;
      }
    }
    this.rows.style.transform = `translateY(${start * ROW}px)`;
    this.onCount(total, this.discarded);
  }
}

/** `08:01:02.123456` from an RFC 3339 time. */
export function clock(ts: string): string {
  const m = /T(\d\d:\d\d:\d\d)(\.\d{1,6})?/.exec(ts);
  if (!m) return ts;
  return m[1] + (m[2] ?? '.').padEnd(7, '0');
}

/** Syscalls whose result is an address, shown in hex as strace does. */
const ADDRESS_RESULTS = new Set(['mmap', 'mremap', 'brk', 'shmat']);

/** A result as strace shows it after `= `: `3`, `0x7f12a000`, `-1 ENOENT`, `?` when unknown. */
export function resultText(e: TraceEvent): string {
  const r = e.ret;
  if (r === null || r === undefined) return '?';
  if (r < 0 && r >= -4095) return `-1 ${e.errno ?? `E??? (errno ${-r})`}`;
  if (ADDRESS_RESULTS.has(e.syscall ?? '')) return `0x${BigInt.asUintN(64, BigInt(r)).toString(16)}`;
  return String(r);
}

/** A duration as strace's -T shows it: `<0.000021>` (seconds, 6 decimals). */
export function durationText(ns: number): string {
  const us = Math.floor(ns / 1000);
  return `<${Math.floor(us / 1_000_000)}.${String(us % 1_000_000).padStart(6, '0')}>`;
}

/** One event as one line, strace-style for syscalls. */
export function lineOf(e: TraceEvent): Line {
  const t = clock(e.ts);
  switch (e.event) {
    case 'syscall': {
      const who = `${t} [pid ${e.pid ?? '?'}] `;
      // As strace -f splits a call another thread interrupted (crt_tracer::render::call_line):
      // `read(0,  <unfinished ...>`, then `<... read resumed>"hi\n", 1024) = 3`.
      const args = e.args ?? [];
      const split = Math.min(e.exit_args ?? args.length, args.length);
      const [entry, exit] = [args.slice(0, split), args.slice(split)];
      if (e.unfinished) {
        const sep = entry.length && exit.length && !e.exit_comma ? ', ' : '';
        return { kind: 'sys', text: `${who}${e.syscall}(${entry.join(', ')}${sep} <unfinished ...>` };
      }
      const call = e.resumed
        ? `<... ${e.syscall} resumed>${exit.length && e.exit_comma ? ', ' : ''}${exit.join(', ')})`
        : `${e.syscall}(${args.join(', ')})`;
      const took = e.duration_ns === null || e.duration_ns === undefined ? '' : ` ${durationText(e.duration_ns)}`;
      const failed = e.ret !== null && e.ret !== undefined && e.ret < 0 && e.ret >= -4095;
      return {
        kind: failed ? 'sys failed' : 'sys',
        text: `${who}${call} = ${resultText(e)}${took}${e.stale ? ' (arguments may have changed)' : ''}`,
      };
    }
    case 'log':
      return { kind: `log ${e.stream === 'stderr' ? 'stderr' : 'stdout'}`, text: `${t} ${e.stream ?? 'log'}| ${e.line ?? ''}${e.cut ? ' [cut]' : ''}` };
    case 'drops': {
      const lost = e.results_lost ? `${e.results_lost} results lost so far: those calls show = ?` : '';
      const dropped = e.dropped || !lost ? `${e.dropped ?? 0} events dropped by the tracer (its queue was full)` : '';
      return { kind: 'note', text: `${t} --- ${[dropped, lost].filter(Boolean).join('; ')} ---` };
    }
    case 'gap':
      return { kind: 'note', text: `${t} --- ${e.lost ?? '?'} events lost from the stored history ---` };
    case 'end':
      return { kind: 'note', text: `${t} --- the container ended ---` };
    case 'process':
      return { kind: 'note', text: `${t} [pid ${e.pid}] +++ ${e.comm ?? ''}: process ${e.init ? 'started (init)' : 'started'} +++` };
    case 'skipped':
      return { kind: 'note', text: `${t} --- more of the last minute than is shown here: choose a time range to see all of it ---` };
    default:
      return { kind: 'note', text: `${t} ${e.event}` };
  }
}
