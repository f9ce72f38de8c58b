// Browser tests in Debian's Chromium (never a downloaded browser), against a
// real crtd and containerd that integration/tests/webui.rs sets up and
// describes in CRT_* environment variables.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: 'tests',
  timeout: 90_000,
  globalTimeout: 840_000,
  expect: { timeout: 15_000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: process.env.CRT_UI_ARTIFACTS ?? '/tmp/crt-ui-artifacts',
  use: {
    baseURL: process.env.CRT_URL,
    viewport: { width: 1400, height: 900 },
    screenshot: 'only-on-failure',
    trace: 'off',
    launchOptions: {
      executablePath: process.env.CRT_CHROMIUM ?? '/usr/bin/chromium',
      // The machine's network is closed: no background connections to Google's hosts.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage',
      ],
    },
  },
});
