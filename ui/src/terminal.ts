// A terminal in the browser attached to a shell in a debug clone, over
// crtd's exec WebSocket: keystrokes go as binary messages, the shell's
// output comes back as binary messages (first byte: 1 stdout, 2 stderr),
// and the window size follows the terminal's as JSON controls.

import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import { path, socket, withQuery } from './api';
import { h } from './dom';

export interface Shell {
  el: HTMLElement;
  dispose(): void;
}

export function shell(namespace: string, id: string, onEnd: (message: string) => void): Shell {
  const holder = h('div', { class: 'terminal', 'data-testid': 'terminal' });
  const el = h('div', { class: 'terminal-wrap' }, holder);
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
    fontSize: 13,
    scrollback: 5000,
    theme: { background: '#1a202c', foreground: '#e2e8f0' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(holder);
  try {
    fit.fit();
  } catch {
    // Not laid out yet: the observer below fits it once it is.
  }
  const ws = socket(
    withQuery(`/v1/clones/${path(namespace, id)}/exec`, [
      ['tty', 'true'],
      ['cols', term.cols],
      ['rows', term.rows],
    ]),
  );
  const encoder = new TextEncoder();
  let ended = false;
  const end = (msg: string) => {
    if (ended) return;
    ended = true;
    term.write(`\r\n\x1b[2m[${msg}]\x1b[0m\r\n`);
    onEnd(msg);
  };
  ws.onmessage = (m) => {
    if (m.data instanceof ArrayBuffer) {
      const bytes = new Uint8Array(m.data);
      if (bytes.length > 1) term.write(bytes.subarray(1));
      return;
    }
    let msg: { type?: string; code?: number; message?: string };
    try {
      msg = JSON.parse(String(m.data));
    } catch {
      return;
    }
    if (msg.type === 'exit') end(`the shell exited with status ${msg.code}`);
    else if (msg.type === 'error') end(`error: ${msg.message}`);
  };
  ws.onclose = (e) => end(e.code === 1000 || e.code === 1005 ? 'disconnected' : `disconnected (${e.code}${e.reason ? `: ${e.reason}` : ''})`);
  term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
  });
  term.onBinary((d) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const bytes = new Uint8Array(d.length);
    for (let i = 0; i < d.length; i++) bytes[i] = d.charCodeAt(i) & 0xff;
    ws.send(bytes);
  });
  // The shell's window follows the terminal's; the size is sent again once the
  // socket opens, since the terminal may have been fitted before it did.
  const sendSize = () => {
    holder.dataset.cols = String(term.cols);
    holder.dataset.rows = String(term.rows);
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
  };
  ws.onopen = sendSize;
  term.onResize(sendSize);
  const ro = new ResizeObserver(() => {
    try {
      fit.fit();
    } catch {
      // Hidden: nothing to fit.
    }
  });
  ro.observe(holder);
  term.focus();
  return {
    el,
    dispose() {
      ro.disconnect();
      ended = true;
      ws.close();
      term.dispose();
    },
  };
}
