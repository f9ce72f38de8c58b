// The home page: the tenant's pods, containers and processes as a live map,
// with the connections crtd saw between them and to addresses outside.
// The map is drawn on a canvas (Cytoscape.js); the panel beside it says the
// same in text (lists of containers and connections) for keyboards, screen
// readers and copying.

import cytoscape from 'cytoscape';
import { get, type Container, type Edge, type Endpoint, type Topology, type Whoami } from './api';
import { formatAge, formatBytes, formatRate, h, replace, shortId } from './dom';
import { layout, type ContainerLayout, type GroupLayout, type PodLayout } from './layout';
import { navigate } from './router';

const POLL_MS = 2000;
/** Above this many containers, pods start collapsed (a click opens one). */
const COLLAPSE_PODS_ABOVE = 60;
/** Above this many, namespaces start collapsed too: the map opens on one box per namespace. */
const COLLAPSE_GROUPS_ABOVE = 200;
/** Connections listed beside the map (the most recent first); the map draws them all. */
const LISTED_CONNECTIONS = 100;
/** Up to this many containers, their processes show without asking. */
const PROCESSES_UP_TO = 12;

interface Filters {
  group: string;
  pod: string;
  tracedOnly: boolean;
  /** Also containers that ended and were deleted (crtd keeps how they ended). */
  ended: boolean;
  text: string;
}

export const containerKey = (c: Container) => `${c.namespace}/${c.id}`;
const processNode = (key: string, pid: number) => `r:${key}/${pid}`;
const containerName = (c: Container) => c.kubernetes?.container ?? shortId(c.id);

interface Shown {
  container: Container;
  podId: string | null;
  groupId: string;
}

export function mapPage(who: Whoami): { el: HTMLElement; dispose: () => void } {
  const state = {
    topo: null as Topology | null,
    filters: { group: '', pod: '', tracedOnly: false, ended: false, text: '' } as Filters,
    /** Pods and groups the user opened or closed (overrides the default). */
    podOpen: new Map<string, boolean>(),
    groupOpen: new Map<string, boolean>(),
    processesOpen: new Map<string, boolean>(),
    selected: null as string | null,
    /** "Expand all" / "Collapse all": every pod and namespace, until one is clicked. */
    allOpen: null as boolean | null,
    firstRender: true,
    /** Draws so far (the first included); `data-draws` names the one `data-draw-ms` timed. */
    draws: 0,
    structure: '',
  };

  /** Each pod's name as shown (with a short uid where another pod has its name), by node id. */
  const podLabels = new Map<string, string>();
  const canvas = h('div', { class: 'map-canvas', 'data-testid': 'map' });
  const groupSelect = h('select', { id: 'f-group', 'aria-label': 'Namespace' });
  const podSelect = h('select', { id: 'f-pod', 'aria-label': 'Pod' });
  const traced = h('input', { type: 'checkbox', id: 'f-traced' });
  const ended = h('input', { type: 'checkbox', id: 'f-ended' });
  const search = h('input', { type: 'search', id: 'f-text', placeholder: 'Search names, images, processes', 'aria-label': 'Search' });
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });
  const details = h('section', { class: 'details', 'aria-label': 'Selection' });
  const connections = h('ul', { class: 'connections', 'data-testid': 'connections' });
  const tree = h('ul', { class: 'tree', 'data-testid': 'containers' });
  const status = h('p', { class: 'status' });

  const panel = h(
    'aside',
    { class: 'map-panel' },
    h(
      'div',
      { class: 'filters', role: 'group', 'aria-label': 'Filters' },
      h('label', { for: 'f-group' }, 'Namespace'),
      groupSelect,
      h('label', { for: 'f-pod' }, 'Pod'),
      podSelect,
      h('label', { class: 'check' }, traced, ' Traced only'),
      h('label', { class: 'check' }, ended, ' Ended too'),
      search,
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'button', onclick: () => setAll(true) }, 'Expand all'),
        h('button', { type: 'button', onclick: () => setAll(false) }, 'Collapse all'),
        h('button', { type: 'button', onclick: () => fit() }, 'Fit'),
      ),
    ),
    summary,
    details,
    h('h2', {}, 'Connections'),
    connections,
    h('h2', {}, who.operator || who.root ? 'Containers (all tenants)' : 'Containers'),
    tree,
    status,
  );
  const el = h('div', { class: 'map-page' }, h('h1', { class: 'visually-hidden' }, 'Topology'), canvas, panel);

  const cy = cytoscape({
    container: canvas,
    layout: { name: 'preset' },
    minZoom: 0.05,
    maxZoom: 3,
    boxSelectionEnabled: false,
    autoungrabify: true,
    // Panning and zooming a big map moves a snapshot; edges come back when it rests.
    textureOnViewport: true,
    hideEdgesOnViewport: true,
    style: STYLE,
  });

  for (const [input, key] of [
    [groupSelect, 'group'],
    [podSelect, 'pod'],
  ] as const) {
    input.addEventListener('change', () => {
      state.filters[key] = input.value;
      if (key === 'group') state.filters.pod = '';
      draw();
    });
  }
  traced.addEventListener('change', () => {
    state.filters.tracedOnly = traced.checked;
    draw();
  });
  ended.addEventListener('change', () => {
    state.filters.ended = ended.checked;
    void poll(true);
  });
  search.addEventListener('input', () => {
    state.filters.text = search.value.trim().toLowerCase();
    draw();
  });

  cy.on('tap', 'node', (e) => {
    const n = e.target;
    const kind = n.data('kind');
    const id: string = n.id();
    if (kind === 'pod' || kind === 'group') {
      const map = kind === 'pod' ? state.podOpen : state.groupOpen;
      map.set(id, !n.data('open'));
      draw();
    } else {
      state.selected = id;
      showDetails();
    }
  });
  cy.on('dbltap', 'node[kind = "container"]', (e) => openContainer(e.target.data('key')));

  /** Everything in view, but never larger than life: a small map stays readable, not blown up. */
  function fit() {
    cy.fit(undefined, 30);
    if (cy.zoom() > 1) {
      cy.zoom(1);
      cy.center();
    }
  }

  function openContainer(key: string) {
    const c = allContainers().find((x) => containerKey(x) === key);
    if (c) navigate(`#/c/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.id)}`);
  }

  function allContainers(): Container[] {
    const t = state.topo;
    if (!t) return [];
    return [...t.pods.flatMap((p) => p.containers), ...t.containers];
  }

  function groupOf(c: Container, podNs?: string): { id: string; label: string } {
    const ns = podNs ?? c.kubernetes?.namespace ?? c.namespace;
    const tenant = who.tenant ? '' : (c.tenant ?? '(no tenant)');
    return { id: `g:${tenant}/${ns}`, label: tenant ? `${tenant} · ${ns}` : ns };
  }

  function matches(c: Container, pod: string | null): boolean {
    const f = state.filters;
    if (f.tracedOnly && !c.traced) return false;
    if (f.pod && pod !== f.pod) return false;
    if (!f.text) return true;
    const hay = [c.id, c.namespace, c.image ?? '', pod ?? '', c.kubernetes?.container ?? '',
      ...(c.processes ?? []).flatMap((p) => [p.comm, ...p.cmdline])].join('\n').toLowerCase();
    return hay.includes(f.text);
  }

  function containerLabel(c: Container): string {
    const cpu = c.cpu_percent;
    // How it ended, for those that did (crtd keeps it after CRI deleted the container).
    const ended = (c.status === 'stopped' || c.status === 'gone') && c.exit_code !== null && c.exit_code !== undefined;
    const parts = [ended ? `${c.status} ${c.exit_code}` : c.status, c.traced ? formatRate(c.syscall_rate) : 'untraced'];
    if (cpu !== null && cpu !== undefined) parts.push(`${cpu.toFixed(1)}% cpu`);
    if (c.memory_bytes !== null) parts.push(formatBytes(c.memory_bytes));
    return `${containerName(c)}\n${parts.join(' · ')}`;
  }

  function updateFilterOptions(groups: Map<string, string>, pods: Map<string, string>) {
    const opts = (sel: HTMLSelectElement, entries: [string, string][], all: string, value: string) => {
      // Rebuilt only when the choices change: a list the user has open stays open.
      const key = JSON.stringify([entries, value]);
      if (sel.dataset.key === key) return;
      sel.dataset.key = key;
      replace(sel, h('option', { value: '' }, all), ...entries.map(([v, l]) => h('option', { value: v, selected: v === value }, l)));
    };
    opts(groupSelect, [...groups.entries()].sort((a, b) => a[1].localeCompare(b[1])), 'All namespaces', state.filters.group);
    const podEntries = [...pods.entries()].filter(([v]) => !state.filters.group || v.startsWith(`${state.filters.group}|`));
    opts(podSelect, podEntries.sort((a, b) => a[1].localeCompare(b[1])), 'All pods', state.filters.pod);
  }

  function draw() {
    const t = state.topo;
    if (!t) return;
    const started = performance.now();
    const total = allContainers().length;
    const groups = new Map<string, { label: string; g: GroupLayout }>();
    const groupNames = new Map<string, string>();
    const podNames = new Map<string, string>();
    const shown = new Map<string, Shown>();
    const nodes: cytoscape.ElementDefinition[] = [];
    const group = (id: string, label: string) => {
      let g = groups.get(id);
      if (!g) {
        // A filter on one namespace opens it: that is what the user asked to see.
        const open = state.groupOpen.get(id) ?? state.allOpen ?? (total <= COLLAPSE_GROUPS_ABOVE || state.filters.group === id);
        g = { label, g: { id, collapsed: !open, pods: [], loose: [] } };
        groups.set(id, g);
      }
      return g;
    };
    const showProcesses = (key: string) => state.processesOpen.get(key) ?? total <= PROCESSES_UP_TO;
    /** A container as the layout places it: its node, and its processes' when they show. */
    const placed = (c: Container): ContainerLayout => {
      const key = containerKey(c);
      const procs = showProcesses(key) ? (c.processes ?? []) : [];
      return { id: `c:${key}`, processes: procs.map((pr) => processNode(key, pr.pid)) };
    };

    // A pod is its uid: pods of one name (a StatefulSet pod made again) are told apart by it.
    const namesakes = new Map<string, number>();
    for (const p of t.pods) namesakes.set(`${p.namespace}/${p.name}`, (namesakes.get(`${p.namespace}/${p.name}`) ?? 0) + 1);
    podLabels.clear();
    for (const p of t.pods) {
      const gi = groupOf(p.containers[0] ?? ({} as Container), p.namespace);
      groupNames.set(gi.id, gi.label);
      const podKey = `${gi.id}|${p.name}|${p.uid ?? ''}`;
      const podId = `p:${podKey}`;
      const name = (namesakes.get(`${p.namespace}/${p.name}`) ?? 0) > 1 && p.uid ? `${p.name} · ${p.uid.slice(0, 8)}` : p.name;
      podNames.set(podKey, name);
      podLabels.set(podId, name);
      if (state.filters.group && state.filters.group !== gi.id) continue;
      const visible = p.containers.filter((c) => matches(c, podKey));
      if (!visible.length) continue;
      const g = group(gi.id, gi.label);
      const open = state.podOpen.get(podId) ?? state.allOpen ?? total <= COLLAPSE_PODS_ABOVE;
      const pl: PodLayout = { id: podId, collapsed: !open, containers: [] };
      g.g.pods.push(pl);
      const rate = visible.reduce((s, c) => s + (c.syscall_rate || 0), 0);
      const running = visible.filter((c) => c.status === 'running').length;
      if (!g.g.collapsed) nodes.push({
        data: {
          id: podId,
          parent: g.g.collapsed ? undefined : gi.id,
          kind: 'pod',
          open,
          label: open ? `pod ${name}` : `pod ${name}\n${running}/${visible.length} running · ${formatRate(rate)}`,
        },
        classes: open ? 'pod open' : 'pod closed',
      });
      for (const c of visible) {
        shown.set(containerKey(c), { container: c, podId, groupId: gi.id });
        if (!open || g.g.collapsed) continue;
        pl.containers.push(placed(c));
      }
    }
    for (const c of t.containers) {
      const gi = groupOf(c);
      groupNames.set(gi.id, gi.label);
      if (state.filters.group && state.filters.group !== gi.id) continue;
      if (!matches(c, null)) continue;
      const g = group(gi.id, gi.label);
      shown.set(containerKey(c), { container: c, podId: null, groupId: gi.id });
      if (g.g.collapsed) continue;
      g.g.loose.push(placed(c));
    }
    updateFilterOptions(groupNames, podNames);

    for (const [id, { label, g }] of groups) {
      const count = [...shown.values()].filter((s) => s.groupId === id).length;
      nodes.push({
        data: { id, kind: 'group', open: !g.collapsed, label: g.collapsed ? `${label}\n${count} containers` : label },
        classes: g.collapsed ? 'group closed' : 'group open',
      });
    }
    // Containers (and their processes) that are drawn as themselves.
    const drawn = new Set<string>();
    for (const { g } of groups.values()) {
      const all = [...g.pods.flatMap((p) => p.containers.map((c) => ({ c, parent: p.id }))), ...g.loose.map((c) => ({ c, parent: g.id }))];
      for (const { c: cl, parent } of all) {
        const key = cl.id.slice(2);
        const s = shown.get(key)!;
        const c = s.container;
        drawn.add(key);
        nodes.push({
          data: { id: cl.id, parent, kind: 'container', key, label: containerLabel(c) },
          classes: ['container', `status-${c.status}`, c.traced ? 'traced' : '', c.clone_of ? 'clone' : '', cl.processes.length ? 'with-processes' : '', state.selected === cl.id ? 'selected-node' : ''].join(' '),
        });
        for (const pr of c.processes ?? []) {
          const pid = processNode(key, pr.pid);
          if (!cl.processes.includes(pid)) continue;
          nodes.push({
            data: { id: pid, parent: cl.id, kind: 'process', key, pid: pr.pid, label: `${pr.pid} ${pr.comm}${c.traced ? ` · ${formatRate(pr.syscall_rate)}` : ''}` },
            classes: 'process',
          });
        }
      }
    }

    // Edges, to whatever stands for each end now (a closed pod stands for its containers).
    const endpointNode = (e: Endpoint): string | null => {
      if ('address' in e) return `a:${e.address}`;
      const s = shown.get(e.container);
      if (!s) return null;
      if (drawn.has(e.container)) return `c:${e.container}`;
      const g = groups.get(s.groupId);
      if (g?.g.collapsed) return s.groupId;
      return s.podId;
    };
    // Between boxes that stand for many containers (closed pods and namespaces), one
    // line per pair says how many ports; between containers, one line per port.
    const merged = new Map<string, { source: string; target: string; edge: Edge; count: number; ports: Set<string> }>();
    const outside = new Set<string>();
    const listed: Edge[] = [];
    for (const e of t.edges ?? []) {
      const source = endpointNode(e.from);
      const target = endpointNode(e.to);
      if (!source || !target) continue;
      // An address is drawn only when something visible talks with it.
      if ('address' in e.from && !('container' in e.to && shown.has(e.to.container))) continue;
      if ('address' in e.to && !('container' in e.from && shown.has(e.from.container))) continue;
      listed.push(e);
      if (source === target) continue;
      if (source.startsWith('a:')) outside.add(source);
      if (target.startsWith('a:')) outside.add(target);
      const port = `${e.proto}/${e.port}`;
      const boxes = /^[gp]:/.test(source) || /^[gp]:/.test(target);
      const id = boxes ? `${source}>${target}` : `${source}>${target}:${port}`;
      const m = merged.get(id);
      if (!m) merged.set(id, { source, target, edge: { ...e }, count: Math.max(1, e.connections ?? 1), ports: new Set([port]) });
      else {
        m.count += Math.max(1, e.connections ?? 1);
        m.ports.add(port);
        m.edge.active ||= e.active;
        m.edge.age_s = Math.min(m.edge.age_s, e.age_s);
        m.edge.via = [...new Set([...m.edge.via, ...e.via])];
      }
    }
    const outsideIds = [...outside].sort();
    if (outsideIds.length) nodes.push({ data: { id: 'outside', kind: 'outside', label: 'Outside' }, classes: 'outside' });
    for (const a of outsideIds) nodes.push({ data: { id: a, parent: 'outside', kind: 'address', label: a.slice(2) }, classes: 'address' });
    const edges: cytoscape.ElementDefinition[] = [...merged.entries()].map(([id, m]) => ({
      data: {
        id: `e:${id}`,
        source: m.source,
        target: m.target,
        label: `${m.ports.size === 1 ? [...m.ports][0] : `${m.ports.size} ports`}${m.edge.active ? '' : ` · ${formatAge(m.edge.age_s)}`}`,
        width: Math.min(2 + Math.log2(m.count), 6),
      },
      classes: [m.edge.active ? 'active' : 'recent', m.edge.via.includes('trace') ? 'traced' : ''].join(' '),
    }));

    // Positions for the leaves; compound nodes follow their children.
    const pos = layout(
      [...groups.values()].map((g) => g.g),
      outsideIds,
    );
    for (const n of nodes) {
      const p = pos.get(n.data.id!);
      if (p) n.position = p;
    }
    const structure = nodes.map((n) => `${n.data.id}>${n.data.parent ?? ''}`).join(',') + '|' + edges.map((e) => e.data.id).join(',');
    cy.batch(() => {
      if (structure !== state.structure) {
        cy.elements().remove();
        cy.add([...nodes, ...edges]);
        state.structure = structure;
      } else {
        for (const n of [...nodes, ...edges]) {
          const ele = cy.getElementById(n.data.id!);
          ele.data(n.data);
          ele.classes(n.classes ?? '');
        }
      }
    });
    const drawNo = ++state.draws;
    if (state.firstRender && nodes.length) {
      fit();
      state.firstRender = false;
      cy.one('render', () => {
        canvas.dataset.renderMs = (performance.now() - started).toFixed(1);
      });
    } else {
      // Later draws (a click, a filter, a live update) are timed alike, for
      // scripts/bench-ui.sh; when several land before one render, the render
      // is the latest one's, so the earlier ones leave no figure.
      cy.one('render', () => {
        if (drawNo !== state.draws) return;
        canvas.dataset.drawMs = (performance.now() - started).toFixed(1);
        canvas.dataset.draws = String(drawNo);
      });
    }
    canvas.dataset.nodes = String(cy.nodes().length);
    canvas.dataset.edges = String(cy.edges().length);

    const podsShown = new Set([...shown.values()].map((s) => s.podId).filter(Boolean)).size;
    replace(summary, `${podsShown ? `${podsShown} pods · ` : ''}${shown.size} containers · ${listed.length} connections`);
    drawConnections(listed, shown);
    drawTree(shown);
    showDetails();
  }

  function endpointText(e: Endpoint, shown: Map<string, Shown>): string {
    if ('address' in e) return e.address;
    const s = shown.get(e.container);
    return s ? `${s.container.kubernetes?.pod ? `${s.container.kubernetes.pod}/` : ''}${containerName(s.container)}` : e.container;
  }

  function drawConnections(edges: Edge[], shown: Map<string, Shown>) {
    if (!edges.length) {
      replace(connections, h('li', { class: 'empty' }, 'None seen yet.'));
      return;
    }
    edges.sort((a, b) => a.age_s - b.age_s);
    replace(
      connections,
      ...edges.slice(0, LISTED_CONNECTIONS).map((e) =>
        h(
          'li',
          { class: e.active ? 'active' : 'recent' },
          h('span', { class: 'from' }, endpointText(e.from, shown)),
          ' → ',
          h('span', { class: 'to' }, endpointText(e.to, shown)),
          h('span', { class: 'port' }, ` ${e.proto}/${e.port}`),
          h('span', { class: 'seen' }, e.active ? ' open' : ` ${formatAge(e.age_s)}`),
          h('span', { class: 'via' }, ` (${e.via.join(', ')})`),
        ),
      ),
      edges.length > LISTED_CONNECTIONS ? h('li', { class: 'empty' }, `… and ${edges.length - LISTED_CONNECTIONS} more (filter to see them)`) : null,
    );
  }

  function drawTree(shown: Map<string, Shown>) {
    const byPod = new Map<string, Shown[]>();
    for (const s of shown.values()) {
      const k = s.podId ?? `${s.groupId}|`;
      if (!byPod.has(k)) byPod.set(k, []);
      byPod.get(k)!.push(s);
    }
    const items = [...byPod.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([k, list]) => {
      const podName = list[0].podId ? (podLabels.get(list[0].podId) ?? k.split('|')[1]) : null;
      return h(
        'li',
        {},
        h('span', { class: 'group-name' }, podName ? `pod ${podName}` : groupOf(list[0].container).label),
        h(
          'ul',
          {},
          ...list.map(({ container: c }) =>
            h(
              'li',
              { class: `status-${c.status}` },
              h('a', { href: `#/c/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.id)}` }, containerName(c)),
              h('span', { class: 'meta' }, ` ${c.status}${(c.status === 'stopped' || c.status === 'gone') && c.exit_code != null ? ` ${c.exit_code}` : ''}${c.traced ? ' · traced' : ''}`),
            ),
          ),
        ),
      );
    });
    replace(tree, ...items);
  }

  function showDetails() {
    const id = state.selected;
    if (!id) {
      replace(details, h('p', { class: 'hint' }, 'Click a pod or namespace to open or close it, a container for its details; double-click a container to open it.'));
      return;
    }
    const key = id.startsWith('c:') ? id.slice(2) : id.startsWith('r:') ? id.slice(2, id.lastIndexOf('/')) : null;
    const c = key ? allContainers().find((x) => containerKey(x) === key) : undefined;
    if (!c) {
      replace(details, h('p', {}, id.startsWith('a:') ? `Address ${id.slice(2)} (outside your containers)` : ''));
      return;
    }
    const cpu = c.cpu_percent;
    const procsShown = state.processesOpen.get(key!) ?? allContainers().length <= PROCESSES_UP_TO;
    replace(
      details,
      h('h2', {}, containerName(c)),
      h(
        'dl',
        {},
        h('dt', {}, 'Status'), h('dd', {}, c.status),
        h('dt', {}, 'Image'), h('dd', {}, c.image ?? '–'),
        h('dt', {}, 'Syscalls'), h('dd', {}, c.traced ? formatRate(c.syscall_rate) : 'not traced'),
        h('dt', {}, 'CPU'), h('dd', {}, cpu === null || cpu === undefined ? '–' : `${cpu.toFixed(1)}%`),
        h('dt', {}, 'Memory'), h('dd', {}, formatBytes(c.memory_bytes)),
        h('dt', {}, 'Processes'), h('dd', {}, String(c.processes?.length ?? 0)),
      ),
      h(
        'div',
        { class: 'buttons' },
        h('a', { class: 'button', href: `#/c/${encodeURIComponent(c.namespace)}/${encodeURIComponent(c.id)}` }, 'Open'),
        h('button', { type: 'button', onclick: () => { state.processesOpen.set(key!, !procsShown); draw(); } }, procsShown ? 'Hide processes' : 'Show processes'),
      ),
    );
  }

  function setAll(open: boolean) {
    state.podOpen.clear();
    state.groupOpen.clear();
    state.allOpen = open;
    draw();
  }

  let inFlight = false;
  let stopped = false;
  /** `again`: the answer in flight (if any) asked for something else; ask anew after it. */
  let askAgain = false;
  async function poll(again = false) {
    if (stopped) return;
    if (inFlight) {
      askAgain ||= again;
      return;
    }
    inFlight = true;
    try {
      const all = state.filters.ended;
      const t = await get<Topology>(all ? '/v1/topology?all=true' : '/v1/topology');
      if (stopped || all !== state.filters.ended) return;
      state.topo = t;
      replace(status, `Updated ${new Date().toLocaleTimeString()}`);
      status.classList.remove('error');
      draw();
    } catch (e) {
      replace(status, `Could not update: ${(e as Error).message}`);
      status.classList.add('error');
    } finally {
      inFlight = false;
      if (askAgain) {
        askAgain = false;
        void poll();
      }
    }
  }
  void poll();
  const timer = window.setInterval(() => void poll(), POLL_MS);
  return {
    el,
    dispose: () => {
      stopped = true;
      window.clearInterval(timer);
      cy.destroy();
    },
  };
}

const STYLE: cytoscape.StylesheetJson = [
  {
    selector: 'node',
    style: {
      label: 'data(label)',
      'font-family': 'system-ui, sans-serif',
      'font-size': 11,
      color: '#1d2733',
      'text-wrap': 'wrap',
      'text-max-width': '160px',
      'text-valign': 'center',
      'text-halign': 'center',
      // Labels too small to read are not drawn (zoomed far out): faster, and no grey smudge.
      'min-zoomed-font-size': 7,
    },
  },
  {
    selector: 'node.container',
    style: {
      shape: 'round-rectangle',
      width: 168,
      height: 52,
      'background-color': '#ffffff',
      'border-width': 2,
      'border-color': '#8795a1',
    },
  },
  { selector: 'node.container.status-running', style: { 'border-color': '#2f855a' } },
  { selector: 'node.container.status-created', style: { 'border-color': '#b7791f' } },
  { selector: 'node.container.status-stopped, node.container.status-gone', style: { 'border-color': '#a0aec0', color: '#4a5568', 'background-color': '#f1f3f5' } },
  { selector: 'node.container.traced', style: { 'border-width': 3, 'border-style': 'double' } },
  { selector: 'node.container.clone', style: { 'background-color': '#fff8e6' } },
  { selector: 'node.container.selected-node, node:selected', style: { 'overlay-color': '#2b6cb0', 'overlay-opacity': 0.15 } },
  {
    selector: 'node.container.with-processes',
    style: { 'text-valign': 'top', 'compound-sizing-wrt-labels': 'include', 'text-margin-y': -6, padding: '10px', 'background-color': '#ffffff' },
  },
  {
    selector: 'node.process',
    style: { shape: 'round-rectangle', width: 150, height: 26, 'background-color': '#edf2f7', 'border-width': 1, 'border-color': '#cbd5e0', 'font-size': 10 },
  },
  {
    selector: 'node.pod',
    style: {
      shape: 'round-rectangle',
      'background-color': '#ebf4ff',
      'background-opacity': 0.6,
      'border-width': 1,
      'border-color': '#90cdf4',
      'text-valign': 'top',
      'text-halign': 'center',
      'compound-sizing-wrt-labels': 'include',
      'text-margin-y': -6,
      'font-weight': 'bold',
      padding: '14px',
    },
  },
  { selector: 'node.pod.closed', style: { width: 168, height: 52, 'text-valign': 'center', 'text-margin-y': 0, 'font-weight': 'normal', 'border-width': 2 } },
  {
    selector: 'node.group',
    style: {
      shape: 'round-rectangle',
      'background-color': '#f7fafc',
      'border-width': 1,
      'border-style': 'dashed',
      'border-color': '#718096',
      'text-valign': 'top',
      'text-halign': 'center',
      'compound-sizing-wrt-labels': 'include',
      'text-margin-y': -8,
      'font-size': 13,
      'font-weight': 'bold',
      padding: '18px',
    },
  },
  { selector: 'node.group.closed', style: { width: 168, height: 52, 'text-valign': 'center', 'text-margin-y': 0, 'border-style': 'solid' } },
  {
    selector: 'node.outside',
    style: { shape: 'round-rectangle', 'background-color': '#fffaf0', 'border-width': 1, 'border-style': 'dotted', 'border-color': '#c05621', 'text-valign': 'top', 'compound-sizing-wrt-labels': 'include', 'text-margin-y': -8, padding: '16px', 'font-weight': 'bold' },
  },
  { selector: 'node.address', style: { shape: 'round-rectangle', width: 150, height: 30, 'background-color': '#fefcbf', 'border-width': 1, 'border-color': '#c05621' } },
  {
    selector: 'edge',
    style: {
      width: 'data(width)',
      'curve-style': 'bezier',
      'line-color': '#2b6cb0',
      'target-arrow-color': '#2b6cb0',
      'target-arrow-shape': 'triangle',
      label: 'data(label)',
      'font-size': 10,
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.85,
      'text-background-padding': '2px',
      'text-rotation': 'autorotate',
      // Above the line, not on it: a short line between neighbours stays visible.
      'text-margin-y': -9,
      'arrow-scale': 1.3,
      'min-zoomed-font-size': 7,
      // Over the boxes, not under them: a line between neighbours stays in sight.
      'z-compound-depth': 'top',
    },
  },
  { selector: 'edge.recent', style: { 'line-style': 'dashed', 'line-color': '#a0aec0', 'target-arrow-color': '#a0aec0' } },
  { selector: 'edge.traced', style: { 'line-color': '#6b46c1', 'target-arrow-color': '#6b46c1' } },
];
