// Headless Debian Chromium for the browser tests, driven by playwright-core. CI installs Chromium
// (.ci/run); elsewhere, without it, a browser test says so and skips.
import { existsSync } from 'node:fs';
import type { Test } from 'tap';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

/** Headless Debian Chromium, closed in teardown; undefined (and the test skipped) where it is missing outside CI. */
export async function launch(t: Test) {
  if (!existsSync(CHROMIUM)) {
    if (process.env['CI']) t.fail(`${CHROMIUM} is missing: .ci/run must install chromium`);
    else t.plan(0, `no ${CHROMIUM}: apt-get install chromium to run the browser test`);
    return undefined;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  t.teardown(() => browser.close());
  return browser;
}

