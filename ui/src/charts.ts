// Small charts of a container's metrics over the last hour (uPlot: a few
// kilobytes, canvas-drawn, fast to update every few seconds).

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { formatBytes, h } from './dom';
import type { MetricSample } from './api';

export interface Chart {
  el: HTMLElement;
  set(samples: MetricSample[]): void;
  dispose(): void;
}

export function chart(title: string, pick: (s: MetricSample) => number | null, unit: 'rate' | 'percent' | 'bytes'): Chart {
  const holder = h('div', { class: 'chart-plot' });
  const latest = h('span', { class: 'chart-latest' });
  const el = h('figure', { class: 'chart', 'aria-label': title }, h('figcaption', {}, title, ' ', latest), holder);
  const fmt = (v: number | null) =>
    v === null || v === undefined ? '–' : unit === 'bytes' ? formatBytes(v) : unit === 'percent' ? `${v.toFixed(1)}%` : `${v.toFixed(1)}/s`;
  const plot = new uPlot(
    {
      width: 300,
      height: 110,
      legend: { show: false },
      cursor: { show: true, points: { show: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(max, unit === 'percent' ? 1 : 1) * 1.1] } },
      axes: [
        { size: 24, font: '10px system-ui', grid: { show: false } },
        { size: 52, font: '10px system-ui', values: (_u, vals) => vals.map((v) => fmt(v)) },
      ],
      series: [{}, { stroke: '#2b6cb0', fill: 'rgba(43,108,176,0.12)', width: 1.5, spanGaps: false }],
    },
    [[], []],
    holder,
  );
  const ro = new ResizeObserver(() => {
    const w = Math.max(200, holder.clientWidth);
    if (Math.abs(w - plot.width) > 2) plot.setSize({ width: w, height: 110 });
  });
  ro.observe(holder);
  return {
    el,
    set(samples) {
      const xs = samples.map((s) => Date.parse(s.t) / 1000);
      const ys = samples.map((s) => pick(s));
      plot.setData([xs, ys as (number | null)[]]);
      latest.textContent = samples.length ? fmt(ys[ys.length - 1]) : 'no samples yet';
    },
    dispose() {
      ro.disconnect();
      plot.destroy();
    },
  };
}
