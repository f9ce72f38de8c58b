// The web UI's shell: sign-in, the header, and which page shows.

import './csp';
import { ApiError, call, clearToken, setToken, token, type Whoami } from './api';
import { containerPage } from './container';
import { h, replace } from './dom';
import { mapPage } from './map';
import { navigate, parse } from './router';
import './style.css';

const app = document.getElementById('app')!;
let who: Whoami | null = null;
let current: { dispose: () => void } | null = null;

function signInPage(message?: string): HTMLElement {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
  const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'signin-error' }, message ?? '');
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Cloud Runtime Tools'),
    h('p', {}, 'Sign in with your tenant token (or the node operator token).'),
    h('label', { for: 'token' }, 'Token'),
    input,
    button,
    error,
    h('p', { class: 'hint' }, 'The token is kept in this tab only, until you sign out or close it.'),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    button.disabled = true;
    error.textContent = '';
    try {
      const w = await call<Whoami>('GET', '/v1/whoami', t);
      setToken(t);
      who = w;
      input.value = '';
      navigate('#/');
    } catch (err) {
      const e2 = err as ApiError;
      error.textContent =
        e2.status === 401
          ? `This token was refused (${e2.message}). Check the token your platform team gave you.`
          : `Could not sign in: ${e2.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return h('main', { class: 'signin-page' }, form);
}

function header(w: Whoami): HTMLElement {
  const signOut = h('button', { type: 'button' }, 'Sign out');
  signOut.addEventListener('click', () => {
    clearToken();
    who = null;
    navigate('#/signin');
  });
  const identity = w.operator ? 'operator (read-only, all tenants)' : w.root ? 'root' : `tenant ${w.tenant}`;
  return h(
    'header',
    { class: 'top' },
    h('a', { class: 'brand', href: '#/' }, 'CRT'),
    h('nav', { 'aria-label': 'Main' }, h('a', { href: '#/' }, 'Topology')),
    h('span', { class: 'who', 'data-testid': 'who' }, identity),
    signOut,
  );
}

async function show(): Promise<void> {
  current?.dispose();
  current = null;
  const route = parse(location.hash);
  if (!token() || route.page === 'signin') {
    if (token() && route.page === 'signin') {
      navigate('#/');
      return;
    }
    replace(app, signInPage());
    return;
  }
  if (!who) {
    try {
      who = await call<Whoami>('GET', '/v1/whoami');
    } catch (err) {
      const e = err as ApiError;
      if (e.status === 401) clearToken();
      replace(app, signInPage(e.status === 401 ? `Signed out: ${e.message}.` : `crtd did not answer: ${e.message}`));
      return;
    }
  }
  const page = route.page === 'container' ? containerPage(who, route.namespace, route.id) : mapPage(who);
  current = page;
  replace(app, header(who), h('main', { class: `page page-${route.page}` }, page.el));
}

window.addEventListener('hashchange', () => void show());
void show();
