// A container's page: what it is, its processes, its metrics over the last
// hour, its trace (live, or a time range of history) with its output lines
// interleaved, and the debug clone with a terminal in the browser.

import { call, get, path, withQuery, ApiError, type CloneMade, type Container, type EventsPage, type Metrics, type Whoami } from './api';
import { chart } from './charts';
import { formatBytes, formatRate, h, replace, shortId } from './dom';
import { LiveStream } from './live';
import { shell, type Shell } from './terminal';
import { TraceView } from './traceview';

const REFRESH_MS = 2000;
const METRICS_MS = 5000;
/** Pages of recent history shown before the live stream takes over. */
const BACKFILL_PAGES = 3;

export function containerPage(who: Whoami, namespace: string, id: string): { el: HTMLElement; dispose: () => void } {
  const base = `/v1/containers/${path(namespace, id)}`;
  const readOnly = !!who.operator;
  const disposers: (() => void)[] = [];

  const title = h('h1', {}, shortId(id));
  const badge = h('span', { class: 'badge' });
  const facts = h('dl', { class: 'facts' });
  const notice = h('p', { class: 'notice', role: 'status' });
  const actions = h('div', { class: 'actions' });
  const debugArea = h('section', { class: 'debug', 'aria-label': 'Debug clone' });
  const procBody = h('tbody');
  const procTable = h(
    'table',
    { class: 'processes' },
    h('caption', { class: 'visually-hidden' }, 'Processes'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'PID'), h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Command line'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Syscalls'))),
    procBody,
  );
  const charts = [
    chart('Syscalls per second', (s) => s.syscall_rate, 'rate'),
    chart('CPU', (s) => s.cpu_percent, 'percent'),
    chart('Memory', (s) => s.memory_bytes, 'bytes'),
  ];
  disposers.push(() => charts.forEach((c) => c.dispose()));

  // --- trace ---
  const fSyscall = h('input', { id: 't-syscall', placeholder: 'openat,connect', size: 16 });
  const fPid = h('input', { id: 't-pid', placeholder: 'pid', size: 7, inputmode: 'numeric' });
  const fText = h('input', { id: 't-text', type: 'search', placeholder: 'text in the line', size: 18 });
  const fLogs = h('input', { id: 't-logs', type: 'checkbox', checked: true });
  const fFailed = h('input', { id: 't-failed', type: 'checkbox', 'data-testid': 'failed-only' });
  const fSlower = h('input', { id: 't-slower', placeholder: '1ms', size: 6, 'data-testid': 'slower-than' });
  const resultsNote = h('p', { class: 'results-note', hidden: true, 'data-testid': 'results-unavailable' });
  const fMode = h('select', { id: 't-mode' }, h('option', { value: 'live' }, 'Live'), h('option', { value: 'history' }, 'Time range'));
  const fSince = h('input', { id: 't-since', type: 'datetime-local', step: 1 });
  const fUntil = h('input', { id: 't-until', type: 'datetime-local', step: 1 });
  const range = h('span', { class: 'range', hidden: true }, h('label', { for: 't-since' }, 'From'), fSince, h('label', { for: 't-until' }, 'to'), fUntil, h('span', { class: 'utc' }, '(your local time)'));
  const traceStatus = h('span', { class: 'trace-status', 'data-testid': 'trace-status' });
  const traceCount = h('span', { class: 'trace-count', 'data-testid': 'trace-count' });
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const view = new TraceView('Trace', (n, gone) => {
    traceCount.textContent = `${n.toLocaleString()} lines${gone ? ` (${gone.toLocaleString()} older ones let go)` : ''}`;
  });
  const traceForm = h(
    'form',
    { class: 'trace-filters', 'aria-label': 'Trace filters' },
    h('label', { for: 't-syscall' }, 'Syscalls'), fSyscall,
    h('label', { for: 't-pid' }, 'PID'), fPid,
    h('label', { for: 't-text' }, 'Text'), fText,
    h('label', { class: 'check' }, fLogs, ' Output lines'),
    h('label', { class: 'check' }, fFailed, ' Failed calls only'),
    h('label', { for: 't-slower' }, 'Slower than'), fSlower,
    h('label', { for: 't-mode' }, 'Show'), fMode,
    range,
    h('button', { type: 'submit' }, 'Apply'),
  );
  fMode.addEventListener('change', () => {
    range.hidden = fMode.value !== 'history';
  });

  let live: LiveStream | null = null;
  let historyNext: string | null = null;
  let generation = 0;
  const stopTrace = () => {
    live?.close();
    live = null;
  };
  disposers.push(stopTrace);

  const filterQuery = (): [string, string | undefined][] => [
    ['namespace', namespace],
    ['container', id],
    ['syscall', fSyscall.value.trim() || undefined],
    ['pid', fPid.value.trim() || undefined],
    ['grep', fText.value || undefined],
    ['logs', fLogs.checked ? 'true' : undefined],
    ['failed', fFailed.checked ? 'true' : undefined],
    ['slower_than', fSlower.value.trim() || undefined],
  ];
  const utc = (local: string) => (local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined);

  async function page(query: [string, string | undefined][], gen: number): Promise<EventsPage | null> {
    const p = await get<EventsPage>(withQuery('/v1/events', query));
    if (gen !== generation) return null;
    view.push(p.events);
    return p;
  }

  async function startTrace() {
    const gen = ++generation;
    stopTrace();
    view.clear();
    more.hidden = true;
    traceStatus.classList.remove('error');
    try {
      if (fMode.value === 'history') {
        const since = utc(fSince.value);
        const until = utc(fUntil.value);
        if (!since) throw new Error('choose when the time range starts');
        traceStatus.textContent = 'loading…';
        const p = await page([...filterQuery(), ['since', since], ['until', until], ['order', 'asc'], ['limit', '1000']], gen);
        if (!p) return;
        historyNext = p.more ? p.next : null;
        more.hidden = !p.more;
        traceStatus.textContent = p.truncated ? 'history (the scan stopped early: load more)' : 'history';
        return;
      }
      // Live: the last minute first, then the stream from where that ended, without a hole.
      traceStatus.textContent = 'loading recent events…';
      let cursor: string | undefined;
      let pages = 0;
      let rest = false;
      // One instant for every page: crtd refuses a cursor from a query with
      // other bounds, and a span back from now ("60s") moves with each request.
      const since = new Date(Date.now() - 60_000).toISOString();
      for (;;) {
        const p = await page([...filterQuery(), ['since', since], ['order', 'asc'], ['limit', '1000'], ['cursor', cursor]], gen);
        if (!p) return;
        cursor = p.next;
        if (!p.more) break;
        if (++pages >= BACKFILL_PAGES) {
          rest = true;
          break;
        }
      }
      if (rest) {
        view.push([{ event: 'skipped', ts: new Date().toISOString(), namespace, container: id, tenant: null }]);
        cursor = undefined;
      }
      live = new LiveStream(filterQuery(), {
        onEvents: (events) => view.push(events),
        onStatus: (s, detail) => {
          traceStatus.textContent = s === 'live' ? 'live' : `${s}${detail ? `: ${detail}` : ''}`;
          traceStatus.dataset.state = s;
        },
        onDrops: (n) => {
          traceStatus.textContent = `live — this view missed ${n} events (it fell behind)`;
        },
      }, cursor);
    } catch (e) {
      if (gen !== generation) return;
      traceStatus.textContent = (e as Error).message;
      traceStatus.classList.add('error');
    }
  }
  traceForm.addEventListener('submit', (e) => {
    e.preventDefault();
    void startTrace();
  });
  more.addEventListener('click', async () => {
    if (!historyNext) return;
    const gen = generation;
    try {
      const p = await page([...filterQuery(), ['until', utc(fUntil.value)], ['order', 'asc'], ['limit', '1000'], ['cursor', historyNext]], gen);
      if (!p) return;
      historyNext = p.more ? p.next : null;
      more.hidden = !p.more;
    } catch (e) {
      traceStatus.textContent = (e as Error).message;
    }
  });

  const el = h(
    'div',
    { class: 'container-page' },
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, 'Map'), ' / ', namespace, ' / ', shortId(id)),
    h('header', { class: 'container-head' }, title, badge),
    notice,
    facts,
    actions,
    debugArea,
    h('section', { 'aria-label': 'Metrics' }, h('h2', {}, 'Metrics (last hour)'), h('div', { class: 'charts' }, ...charts.map((c) => c.el))),
    h('section', { 'aria-label': 'Processes' }, h('h2', {}, 'Processes'), procTable),
    h('section', { class: 'trace-section', 'aria-label': 'Trace and output' }, h('h2', {}, 'Trace and output'), traceForm, resultsNote, h('div', { class: 'trace-bar' }, traceStatus, traceCount, more), view.el),
  );

  // --- facts, refreshed ---
  let current: Container | null = null;
  let actionsFor = '';
  async function refresh() {
    try {
      const c = await get<Container>(base);
      current = c;
      drawFacts(c);
    } catch (e) {
      const err = e as ApiError;
      replace(notice, err.status === 404 ? `There is no container ${namespace}/${id} that you can see.` : `Could not load the container: ${err.message}`);
      notice.classList.add('error');
    }
  }

  function drawFacts(c: Container) {
    notice.classList.remove('error');
    replace(notice);
    // Said once, above the trace: why its calls end in `= ?`. Set as text.
    resultsNote.hidden = !(c.traced && c.results_unavailable);
    resultsNote.textContent = c.results_unavailable ? `No return values in this trace: ${c.results_unavailable}` : '';
    title.textContent = c.kubernetes?.container ?? shortId(c.id);
    badge.textContent = c.status;
    badge.className = `badge status-${c.status}`;
    const row = (k: string, v: string | null | undefined) => [h('dt', {}, k), h('dd', {}, v ?? '–')];
    replace(
      facts,
      ...row('Namespace', c.namespace),
      ...row('ID', c.id),
      ...(c.kubernetes?.pod ? row('Pod', `${c.kubernetes.namespace ?? ''}/${c.kubernetes.pod}`) : []),
      ...(c.kubernetes?.pod_uid ? row('Pod uid', c.kubernetes.pod_uid) : []),
      ...(c.tenant && !who.tenant ? row('Tenant', c.tenant) : []),
      ...row('Image', c.image),
      ...row('Trace annotation', c.traced ? (c.trace_spec ?? 'traced') : 'not traced'),
      ...(c.traced && c.results_unavailable ? row('Return values', `not recorded: ${c.results_unavailable}`) : []),
      ...row('Init PID', c.pid ? String(c.pid) : null),
      ...row('Created', c.created),
      ...(c.exited ? row('Exited', `${c.exited} (status ${c.exit_code ?? '?'})`) : []),
      ...row('Syscalls', c.traced ? `${c.syscalls_seen.toLocaleString()} seen · ${formatRate(c.syscall_rate)}` : null),
      ...row('Dropped', c.traced ? c.dropped.toLocaleString() : null),
      ...row('Memory', formatBytes(c.memory_bytes)),
      ...(c.clone_of ? row('Clone of', c.clone_of) : []),
      ...(!c.storing.ok ? row('Storing', `stopped since ${c.storing.since}: ${c.storing.error}`) : []),
    );
    replace(
      procBody,
      ...(c.processes ?? []).map((p) =>
        h('tr', {}, h('td', {}, String(p.pid)), h('td', {}, p.comm), h('td', { class: 'cmdline' }, p.cmdline.join(' ')), h('td', {}, p.state), h('td', {}, c.traced ? formatRate(p.syscall_rate) : '–')),
      ),
    );
    if (!c.processes?.length) replace(procBody, h('tr', {}, h('td', { colspan: 5, class: 'empty' }, c.status === 'running' ? 'No processes seen.' : 'Not running.')));
    const key = `${c.status}|${c.clone_of ?? ''}`;
    if (key !== actionsFor) {
      actionsFor = key;
      drawActions(c);
    }
  }

  function drawActions(c: Container) {
    if (readOnly) {
      replace(actions, h('p', { class: 'hint' }, 'Signed in as an operator: read-only.'));
      return;
    }
    if (c.clone_of) {
      replace(actions, h('button', { type: 'button', onclick: () => openDebug({ namespace: c.namespace, id: c.id }, null) }, 'Open a shell in this clone'));
      return;
    }
    const button = h('button', { type: 'button', class: 'primary', disabled: c.status !== 'running' }, 'Clone and debug');
    button.addEventListener('click', async () => {
      button.disabled = true;
      button.textContent = 'Cloning…';
      try {
        const made = await call<CloneMade>('POST', `${base}/clones`);
        openDebug(made, made);
      } catch (e) {
        replace(debugArea, h('p', { class: 'error', role: 'alert' }, `Could not clone: ${(e as Error).message}`));
      } finally {
        button.disabled = current?.status !== 'running';
        button.textContent = 'Clone and debug';
      }
    });
    replace(actions, button, c.status !== 'running' ? h('span', { class: 'hint' }, ' Only a running container can be cloned.') : null);
  }

  let term: Shell | null = null;
  disposers.push(() => term?.dispose());
  function openDebug(clone: { namespace: string; id: string }, made: CloneMade | null) {
    term?.dispose();
    const cloneName = `${clone.namespace}/${clone.id}`;
    const freeze = made
      ? h('p', { class: 'freeze', 'data-testid': 'freeze' }, `Clone ${cloneName} made. The source was frozen for ${Number(made.freeze_ms).toFixed(1)} ms${typeof made.frozen_bytes === 'number' ? ` (${formatBytes(made.frozen_bytes as number)} copied while frozen)` : ''}; it keeps running, the shell below is in the copy.`)
      : h('p', { class: 'freeze' }, `Shell in clone ${cloneName}.`);
    const imageRef = h('input', { id: 'commit-ref', placeholder: 'registry.example/team/app:debug', size: 34 });
    const push = h('input', { id: 'commit-push', type: 'checkbox' });
    const result = h('p', { class: 'result', role: 'status' });
    const commitForm = h(
      'form',
      { class: 'commit', 'aria-label': 'Commit the clone' },
      h('label', { for: 'commit-ref' }, 'Image'),
      imageRef,
      h('label', { class: 'check' }, push, ' push to the registry'),
      h('button', { type: 'submit' }, 'Commit to an image'),
    );
    commitForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      result.textContent = 'Committing…';
      try {
        const r = await call<Record<string, unknown>>('POST', withQuery(`/v1/clones/${path(clone.namespace, clone.id)}/commit`, [['image', imageRef.value.trim()], ['push', push.checked ? 'true' : undefined]]));
        result.textContent = `Committed ${String(r.image ?? imageRef.value)}${r.digest ? ` (${String(r.digest)})` : ''}${push.checked ? ', pushed' : ''}.`;
      } catch (err) {
        result.textContent = `Could not commit: ${(err as Error).message}`;
      }
    });
    const del = h('button', { type: 'button', class: 'danger' }, 'Delete the clone');
    del.addEventListener('click', async () => {
      del.disabled = true;
      try {
        await call('DELETE', `/v1/clones/${path(clone.namespace, clone.id)}`);
        term?.dispose();
        term = null;
        replace(debugArea, h('p', { role: 'status' }, `Clone ${cloneName} deleted.`));
        if (current?.clone_of) location.hash = '#/';
      } catch (err) {
        del.disabled = false;
        result.textContent = `Could not delete: ${(err as Error).message}`;
      }
    });
    const ended = h('p', { class: 'hint', role: 'status' });
    term = shell(clone.namespace, clone.id, (msg) => {
      ended.textContent = `Terminal: ${msg}.`;
    });
    replace(debugArea, h('h2', {}, 'Debug clone'), freeze, term.el, ended, h('div', { class: 'debug-actions' }, commitForm, del), result);
  }

  async function metrics() {
    try {
      const m = await get<Metrics>(`${base}/metrics`);
      for (const c of charts) c.set(m.samples);
    } catch {
      // The facts above say what is wrong; charts keep what they had.
    }
  }

  void refresh();
  void metrics();
  void startTrace();
  const t1 = window.setInterval(() => void refresh(), REFRESH_MS);
  const t2 = window.setInterval(() => void metrics(), METRICS_MS);
  disposers.push(() => {
    window.clearInterval(t1);
    window.clearInterval(t2);
  });
  return { el, dispose: () => disposers.forEach((d) => d()) };
}
