// The web UI in Debian's Chromium against a real crtd and containerd.
import { test, expect, type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { env } from './env';

const ns = () => env('CRT_NS');
const shots = (name: string) => join(env('CRT_SCREENSHOTS'), name);

async function signIn(page: Page, token: string) {
  await page.goto('/');
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('who')).toBeVisible();
}

/** axe-core on the page as it stands: nothing serious or critical. */
async function accessible(page: Page) {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
}

/** Every CSP violation the page reports. */
async function watchCsp(page: Page): Promise<() => Promise<string[]>> {
  await page.addInitScript(() => {
    (window as unknown as { __csp: string[] }).__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { __csp: string[] }).__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return () => page.evaluate(() => (window as unknown as { __csp: string[] }).__csp);
}

test('pods of one name are told apart by uid, and a deleted container keeps how it ended', async ({ page }) => {
  const name = env('CRT_POD_NAME');
  const [oldUid, newUid] = [env('CRT_POD_OLD_UID'), env('CRT_POD_NEW_UID')];
  await signIn(page, env('CRT_ALPHA_TOKEN'));
  const list = page.getByTestId('containers');
  // What runs now: one pod of that name, needing no uid to tell it apart.
  await expect(list.getByText(`pod ${name}`, { exact: true })).toBeVisible();
  // With the ended containers, the old pod comes back beside the new one, each named with a short uid.
  await page.getByLabel('Ended too').check();
  // However long the list beside it, the map stays within the window.
  await expect(list.getByText(/^pod /).first()).toBeVisible();
  const box = (await page.getByTestId('map').boundingBox())!;
  expect(box.y + box.height).toBeLessThanOrEqual(page.viewportSize()!.height);
  const pod = (uid: string) => list.locator('li', { has: page.getByText(`pod ${name} · ${uid.slice(0, 8)}`, { exact: true }) });
  await expect(pod(oldUid)).toBeVisible();
  await expect(pod(newUid)).toBeVisible();
  await expect(pod(oldUid)).toContainText('gone 3');
  await expect(pod(newUid)).toContainText('running');
  await expect(pod(newUid)).not.toContainText('gone');
  // The picture shows just those two pods, not the rest of the node's history.
  await page.getByLabel('Search').fill(name);
  await expect(pod(oldUid)).toBeVisible();
  await expect(pod(newUid)).toBeVisible();
  await expect(list.getByText(/^pod /)).toHaveCount(2);
  // (A node with a long history starts with its namespaces closed.)
  await page.getByRole('button', { name: 'Expand all' }).click();
  await page.getByRole('button', { name: 'Fit' }).click();
  await expect(page.getByTestId('map')).toHaveAttribute('data-nodes', /^[1-9]/);
  // Cytoscape draws on animation frames: let two pass before the picture.
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  await page.screenshot({ path: shots('pods-of-one-name.png') });
  // The deleted container's page says how it ended, and whose pod it was.
  await pod(oldUid).getByRole('link').click();
  await expect(page.getByText(oldUid, { exact: true })).toBeVisible();
  await expect(page.getByText(/\(status 3\)/)).toBeVisible();
});

test('a wrong token is refused with a clear message and nothing is kept', async ({ page }) => {
  await page.goto('/');
  await accessible(page);
  await page.getByLabel('Token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('signin-error')).toContainText('This token was refused');
  await expect(page.getByTestId('signin-error')).toContainText('invalid bearer token');
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  expect(await page.evaluate(() => document.cookie)).toBe('');
});

test('the page is served under a strict Content-Security-Policy', async ({ page }) => {
  const resp = await page.goto('/');
  const csp = resp!.headers()['content-security-policy'];
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("default-src 'none'");
  expect(csp).not.toContain('unsafe-inline');
  expect(csp).not.toContain('unsafe-eval');
});

test('a tenant sees its pods and the edge between its containers, and nothing of another tenant', async ({ page }) => {
  const beta = [env('CRT_BETA_ID'), env('CRT_BETA_NS')];
  const seen: string[] = [];
  page.on('response', async (r) => {
    if (new URL(r.url()).pathname.startsWith('/v1/')) seen.push(`${r.url()}\n${await r.text().catch(() => '')}`);
  });
  page.on('websocket', (ws) => ws.on('framereceived', (f) => seen.push(String(f.payload))));
  const csp = await watchCsp(page);
  await signIn(page, env('CRT_ALPHA_TOKEN'));
  await expect(page.getByTestId('who')).toHaveText('tenant alpha');
  const list = page.getByTestId('containers');
  for (const id of [env('CRT_SERVER'), env('CRT_CLIENT'), env('CRT_PAYLOAD_CONTAINER')]) {
    await expect(list.getByRole('link', { name: id, exact: true })).toBeVisible();
  }
  // client → server on 8080, learned from the sockets; beta's server only as an address.
  const edges = page.getByTestId('connections');
  await expect(edges.locator('li', { hasText: `${env('CRT_CLIENT')} → ${env('CRT_SERVER')} tcp/8080` })).toBeVisible({ timeout: 30_000 });
  await expect(edges.locator('li', { hasText: `${env('CRT_CLIENT')} → ${env('CRT_BETA_ADDR')} tcp/8080` })).toBeVisible({ timeout: 30_000 });
  await expect(page.getByTestId('map')).toHaveAttribute('data-edges', /[1-9]/);
  await page.waitForTimeout(2500); // a live update or two more
  await page.screenshot({ path: shots('map.png') });
  const dom = await page.content();
  for (const name of beta) {
    expect(dom, `the page names ${name}`).not.toContain(name);
    for (const s of seen) expect(s, `a response names ${name}`).not.toContain(name);
  }
  await accessible(page);
  expect(await csp()).toEqual([]);
});

test('a live trace line appears within 2 s of the syscall', async ({ page }) => {
  await signIn(page, env('CRT_ALPHA_TOKEN'));
  await page.goto(`/#/c/${ns()}/${env('CRT_CLIENT')}`);
  await expect(page.getByTestId('trace-status')).toHaveText('live');
  const nonce = `crt-ui-${Date.now()}`;
  const r = spawnSync('ctr', ['-n', ns(), 'tasks', 'exec', '--exec-id', nonce, env('CRT_CLIENT'), 'cat', `/${nonce}`]);
  expect(r.stderr.toString()).toContain('No such file');
  await expect(page.getByTestId('trace')).toContainText(`openat(AT_FDCWD, "/${nonce}"`, { timeout: 2000 });
});

test('calls show their results, failed calls can be shown alone, and a trace without results says why', async ({ page, request }) => {
  const token = env('CRT_ALPHA_TOKEN');
  const client = env('CRT_CLIENT');
  const auth = { Authorization: `Bearer ${token}` };
  const info = await (await request.get(`/v1/containers/${ns()}/${client}`, { headers: auth })).json();
  const why: string | null = info.results_unavailable ?? null;
  await signIn(page, token);
  await page.goto(`/#/c/${ns()}/${client}`);
  await expect(page.getByTestId('trace')).toContainText('connect(');
  const note = page.getByTestId('results-unavailable');
  if (why) {
    // Said once, above the trace, as the shim said it; every call ends in `= ?`.
    await expect(note).toHaveText(`No return values in this trace: ${why}`);
    await expect(page.locator('.facts')).toContainText(`not recorded: ${why}`);
  } else {
    await expect(note).toBeHidden();
  }
  await page.getByTestId('failed-only').check();
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.getByTestId('trace-status')).toHaveText('live');
  // A call that fails: cat of a file that does not exist (ENOENT).
  const nonce = `crt-ui-failed-${Date.now()}`;
  const r = spawnSync('ctr', ['-n', ns(), 'tasks', 'exec', '--exec-id', nonce, client, 'cat', `/${nonce}`]);
  expect(r.stderr.toString()).toContain('No such file');
  // The view keeps a pool of rows; those not in use are hidden.
  const sys = page.getByTestId('trace').locator('.line.sys:not([hidden])');
  if (why) {
    // Stored (the history has it), yet not shown: nothing is known to have failed.
    await expect
      .poll(async () => {
        const q = `/v1/events?namespace=${ns()}&container=${client}&grep=${nonce}`;
        return (await (await request.get(q, { headers: auth })).json()).events.length;
      })
      .toBeGreaterThan(0);
    await expect(sys).toHaveCount(0);
    await page.locator('section.trace-section').screenshot({ path: shots('trace-no-results.png') });
  } else {
    await expect(page.getByTestId('trace')).toContainText(`openat(AT_FDCWD, "/${nonce}", O_RDONLY) = -1 ENOENT`);
    for (const text of await sys.allTextContents()) expect(text).toMatch(/ = -1 E[A-Z0-9]+( <\d+\.\d{6}>)?$/);
    await expect(page.locator('.line.sys.failed').first()).toBeVisible();
    await page.locator('section.trace-section').screenshot({ path: shots('trace-failed-calls.png') });
  }
  await accessible(page);
});

test('the container page shows the trace, output, processes and metrics', async ({ page }) => {
  const csp = await watchCsp(page);
  await signIn(page, env('CRT_ALPHA_TOKEN'));
  await page.goto(`/#/c/${ns()}/${env('CRT_CLIENT')}`);
  await expect(page.getByRole('heading', { name: env('CRT_CLIENT') })).toBeVisible();
  await expect(page.getByTestId('trace')).toContainText('connect(');
  await expect(page.locator('.facts')).toContainText('%network,%file');
  await expect(page.locator('table.processes')).toContainText('wget');
  await page.waitForTimeout(6000); // a metrics sample or two
  await page.screenshot({ path: shots('container.png'), fullPage: true });
  await accessible(page);
  expect(await csp()).toEqual([]);
});

test('what a container controls is shown as text and runs no script', async ({ page }) => {
  const payload = env('CRT_PAYLOAD');
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await signIn(page, env('CRT_ALPHA_TOKEN'));
  await page.goto(`/#/c/${ns()}/${env('CRT_PAYLOAD_CONTAINER')}`);
  // The process name (15 bytes of it: the kernel's limit), its argv, its output and the paths it opens, verbatim.
  await expect(page.locator('table.processes')).toContainText(payload.slice(0, 15));
  await expect(page.locator('table.processes')).toContainText(`/tmp/${payload}`);
  await expect(page.getByTestId('trace')).toContainText(`stdout| ${payload} tick`);
  // And the program's own path, opened by it (a traced openat).
  await expect(page.getByTestId('trace')).toContainText(`openat(AT_FDCWD, "/tmp/${payload}", O_RDONLY`);
  // On the map too, in the details of the container.
  await page.goto('/#/');
  await page.getByPlaceholder('Search names, images, processes').fill(payload.slice(0, 10));
  await expect(page.getByTestId('containers').getByRole('link', { name: env('CRT_PAYLOAD_CONTAINER'), exact: true })).toBeVisible();
  expect(await page.locator('img').count()).toBe(0);
  expect(dialogs).toEqual([]);
});

test('live events go on after the connection drops, none lost and none twice', async ({ page }) => {
  const ticks: number[] = [];
  let drops = 0;
  let connections = 0;
  await page.routeWebSocket(/\/v1\/events\/stream/, (ws) => {
    connections++;
    const server = ws.connectToServer();
    let forwarded = 0;
    server.onMessage((m) => {
      const text = String(m);
      const match = /tick (\d+)/.exec(text);
      if (match) ticks.push(Number(match[1]));
      ws.send(m);
      // The first connection is cut after 15 events: the page must resume where it stood.
      if (connections === 1 && ++forwarded === 15) {
        drops++;
        void server.close();
      }
    });
  });
  await signIn(page, env('CRT_ALPHA_TOKEN'));
  await page.goto(`/#/c/${ns()}/${env('CRT_PAYLOAD_CONTAINER')}`);
  await expect.poll(() => connections, { timeout: 20_000 }).toBeGreaterThanOrEqual(2);
  await expect.poll(() => ticks.length, { timeout: 20_000 }).toBeGreaterThan(40);
  expect(drops).toBe(1);
  const sorted = [...ticks];
  for (let i = 1; i < sorted.length; i++) {
    expect(sorted[i], `tick after ${sorted[i - 1]} (all: ${sorted.join(',')})`).toBe(sorted[i - 1] + 1);
  }
});

test('the terminal in a clone runs echo and shows its output; the clone is committed and deleted', async ({ page }) => {
  const csp = await watchCsp(page);
  await signIn(page, env('CRT_ALPHA_TOKEN'));
  await page.goto(`/#/c/${ns()}/${env('CRT_SERVER')}`);
  await page.getByRole('button', { name: 'Clone and debug' }).click();
  await expect(page.getByTestId('freeze')).toContainText('The source was frozen for', { timeout: 60_000 });
  const term = page.getByTestId('terminal');
  await expect(term.locator('.xterm-rows')).toContainText('#', { timeout: 20_000 });
  await term.click();
  // The shell's window is the terminal's, and follows it when the page is resized.
  const size = async () => `${await term.getAttribute('data-rows')} ${await term.getAttribute('data-cols')}`;
  await page.keyboard.type('clear; stty size\n');
  await expect(term.locator('.xterm-rows')).toContainText(await size());
  await page.keyboard.type('echo crt-$((6*7))-ok\n');
  // The shell's output, not the typed line: 42 is computed in the clone.
  await expect(term.locator('.xterm-rows')).toContainText('crt-42-ok', { timeout: 10_000 });
  await page.screenshot({ path: shots('terminal.png'), fullPage: false });
  const before = await size();
  await page.setViewportSize({ width: 900, height: 900 });
  await expect.poll(size).not.toBe(before);
  await page.keyboard.type('clear; stty size\n');
  await expect(term.locator('.xterm-rows')).toContainText(await size());
  await accessible(page);
  // The clone, with a file the shell made, becomes an image.
  await page.keyboard.type('echo from-the-browser > /made-in-the-clone\n');
  await page.getByLabel('Image').fill(env('CRT_COMMIT_REF'));
  await page.getByRole('button', { name: 'Commit to an image' }).click();
  await expect(page.locator('.debug .result')).toContainText(`Committed ${env('CRT_COMMIT_REF')} (sha256:`, { timeout: 60_000 });
  await page.getByRole('button', { name: 'Delete the clone' }).click();
  await expect(page.locator('.debug')).toContainText('deleted');
  expect(await csp()).toEqual([]);
});

test('the operator sees every tenant, read-only', async ({ page }) => {
  await signIn(page, env('CRT_OPERATOR_TOKEN'));
  await expect(page.getByTestId('who')).toContainText('operator');
  const list = page.getByTestId('containers');
  await expect(list.getByRole('link', { name: env('CRT_SERVER'), exact: true })).toBeVisible();
  await expect(list.getByRole('link', { name: env('CRT_BETA_ID'), exact: true })).toBeVisible();
  await page.goto(`/#/c/${env('CRT_BETA_NS')}/${env('CRT_BETA_ID')}`);
  await expect(page.getByText('Signed in as an operator: read-only.')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Clone and debug' })).toHaveCount(0);
});

test('signing out forgets the token', async ({ page }) => {
  await signIn(page, env('CRT_ALPHA_TOKEN'));
  expect(await page.evaluate(() => sessionStorage.getItem('crt.token'))).toBe(env('CRT_ALPHA_TOKEN'));
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByLabel('Token')).toBeVisible();
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  // A reload keeps it signed out, and the map asks for the token again.
  await page.goto('/#/');
  await expect(page.getByLabel('Token')).toBeVisible();
});
