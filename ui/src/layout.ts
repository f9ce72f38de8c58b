// Where each node of the map goes. A deterministic layout (no physics):
// the same topology always lands in the same place, so a live update never
// makes the map jump, and 500 containers are placed in a few milliseconds.
// Namespaces are blocks, pods are boxes packed in rows inside them,
// containers stand side by side in their pod, processes stack below.

export interface Box {
  w: number;
  h: number;
}

export const CONTAINER: Box = { w: 168, h: 52 };
export const PROCESS: Box = { w: 150, h: 26 };
export const GAP = 56;
const LABEL = 30;

export interface ContainerLayout {
  id: string;
  processes: string[];
}

export interface PodLayout {
  id: string;
  collapsed: boolean;
  containers: ContainerLayout[];
}

export interface GroupLayout {
  id: string;
  collapsed: boolean;
  pods: PodLayout[];
  loose: ContainerLayout[];
}

export type Positions = Map<string, { x: number; y: number }>;

function containerBox(c: ContainerLayout): Box {
  return { w: CONTAINER.w, h: CONTAINER.h + c.processes.length * (PROCESS.h + 8) + (c.processes.length ? 18 : 0) };
}

function placeContainer(c: ContainerLayout, x: number, y: number, pos: Positions): Box {
  const box = containerBox(c);
  if (c.processes.length === 0) {
    pos.set(c.id, { x: x + CONTAINER.w / 2, y: y + CONTAINER.h / 2 });
  } else {
    // A container showing its processes is a compound node: its label sits on
    // top and its size comes from its children.
    c.processes.forEach((p, i) => {
      pos.set(p, { x: x + CONTAINER.w / 2, y: y + LABEL + 8 + i * (PROCESS.h + 8) + PROCESS.h / 2 });
    });
  }
  return box;
}

/** Packs boxes left to right, wrapping at `width`; returns the offsets and the total size. */
function shelf(boxes: Box[], width: number): { at: { x: number; y: number }[]; size: Box } {
  const at: { x: number; y: number }[] = [];
  let x = 0;
  let y = 0;
  let rowH = 0;
  let maxW = 0;
  for (const b of boxes) {
    if (x > 0 && x + b.w > width) {
      x = 0;
      y += rowH + GAP;
      rowH = 0;
    }
    at.push({ x, y });
    x += b.w + GAP;
    rowH = Math.max(rowH, b.h);
    maxW = Math.max(maxW, x - GAP);
  }
  return { at, size: { w: maxW, h: y + rowH } };
}

function podBox(p: PodLayout): Box {
  if (p.collapsed) return { ...CONTAINER };
  const boxes = p.containers.map(containerBox);
  return {
    w: boxes.reduce((s, b) => s + b.w, 0) + GAP * Math.max(0, boxes.length - 1) + 2 * GAP,
    h: Math.max(...boxes.map((b) => b.h), CONTAINER.h) + LABEL + GAP,
  };
}

function placePod(p: PodLayout, x: number, y: number, pos: Positions): void {
  if (p.collapsed) {
    pos.set(p.id, { x: x + CONTAINER.w / 2, y: y + CONTAINER.h / 2 });
    return;
  }
  let cx = x + GAP;
  for (const c of p.containers) {
    const b = placeContainer(c, cx, y + LABEL, pos);
    cx += b.w + GAP;
  }
}

function groupParts(g: GroupLayout): Box[] {
  return [...g.pods.map(podBox), ...g.loose.map(containerBox)];
}

function groupWidth(parts: Box[]): number {
  const area = parts.reduce((s, b) => s + (b.w + GAP) * (b.h + GAP), 0);
  const widest = Math.max(0, ...parts.map((b) => b.w));
  return Math.max(widest, Math.sqrt(area) * 1.6, CONTAINER.w * 2);
}

/** Positions of every leaf node; compound nodes take the bounds of their children. */
export function layout(groups: GroupLayout[], outside: string[]): Positions {
  const pos: Positions = new Map();
  const blocks: { g: GroupLayout; parts: Box[]; inner: ReturnType<typeof shelf> | null; box: Box }[] = [];
  for (const g of groups) {
    if (g.collapsed) {
      blocks.push({ g, parts: [], inner: null, box: { ...CONTAINER } });
      continue;
    }
    const parts = groupParts(g);
    const inner = shelf(parts, groupWidth(parts));
    blocks.push({ g, parts, inner, box: { w: inner.size.w + 2 * GAP, h: inner.size.h + LABEL + GAP } });
  }
  const totalArea = blocks.reduce((s, b) => s + (b.box.w + GAP * 2) * (b.box.h + GAP * 2), 0);
  const widest = Math.max(0, ...blocks.map((b) => b.box.w));
  const outer = shelf(
    blocks.map((b) => ({ w: b.box.w + GAP, h: b.box.h + GAP })),
    Math.max(widest, Math.sqrt(totalArea) * 1.8),
  );
  blocks.forEach((b, i) => {
    const ox = outer.at[i].x;
    const oy = outer.at[i].y;
    if (!b.inner) {
      pos.set(b.g.id, { x: ox + CONTAINER.w / 2, y: oy + CONTAINER.h / 2 });
      return;
    }
    const items: (PodLayout | ContainerLayout)[] = [...b.g.pods, ...b.g.loose];
    items.forEach((item, j) => {
      const x = ox + GAP + b.inner!.at[j].x;
      const y = oy + LABEL + b.inner!.at[j].y;
      if ('containers' in item) placePod(item, x, y, pos);
      else placeContainer(item, x, y, pos);
    });
  });
  // What lies outside the tenant's containers: one column to the right.
  const right = outer.size.w + GAP * 4;
  outside.forEach((id, i) => pos.set(id, { x: right + CONTAINER.w / 2, y: LABEL + i * (CONTAINER.h * 0.8 + GAP) }));
  return pos;
}
