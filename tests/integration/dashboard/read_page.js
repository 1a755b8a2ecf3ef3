#!/usr/bin/env node
/*
 * Loads patron-api's dashboard in Debian's headless Chromium (playwright-core,
 * no browser of its own) and prints, as JSON on stdout, every element that
 * carries a data-testid: its data-value and its text, plus what went wrong
 * on the way (console errors, page errors, requests that left the API's
 * origin — which are blocked, since the page must need nothing else).
 *
 *   node read_page.js URL [--token TOKEN] [--screenshot PATH] [--timeout-ms 60000]
 *
 * With --token, the page is expected to answer with the login form first
 * (patron-api with PATRON_API_TOKEN): the token is typed into it and sent,
 * and the page it leads to is the one read. What the browser logged before
 * the login (the form's 401) is not counted.
 *
 * Exit 0 with the JSON; 1 (and the reason on stderr) when the page never
 * showed data.
 */
'use strict';

const { chromium } = require('playwright-core');

function parseArgs(argv) {
  const args = { url: null, screenshot: null, timeoutMs: 60000, token: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--screenshot') args.screenshot = argv[++i];
    else if (argv[i] === '--token') args.token = argv[++i];
    else if (argv[i] === '--timeout-ms') args.timeoutMs = Number(argv[++i]);
    else if (!args.url) args.url = argv[i];
    else throw new Error('unexpected argument ' + argv[i]);
  }
  if (!args.url || !(args.timeoutMs > 0)) throw new Error('usage: read_page.js URL [--screenshot PATH]');
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const origin = new URL(args.url).origin;
  const browser = await chromium.launch({
    executablePath: process.env.PATRON_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // root in CI containers: Chromium's sandbox needs user namespaces
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const report = { console_errors: [], page_errors: [], foreign_requests: [], failed_requests: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1 });
    page.on('console', (m) => { if (m.type() === 'error') report.console_errors.push(m.text()); });
    page.on('pageerror', (e) => report.page_errors.push(String(e)));
    page.on('requestfailed', (r) => {
      if (r.url().startsWith(origin)) report.failed_requests.push(r.url() + ' ' + (r.failure() || {}).errorText);
    });
    await page.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(origin + '/') || u === origin) return route.continue();
      report.foreign_requests.push(u);
      return route.abort();
    });

    let resp = await page.goto(args.url, { waitUntil: 'load', timeout: args.timeoutMs });
    if (args.token) {
      report.login_status = resp ? resp.status() : null;
      await page.fill('[data-testid="login-token"]', args.token, { timeout: args.timeoutMs });
      [resp] = await Promise.all([
        page.waitForNavigation({ waitUntil: 'load', timeout: args.timeoutMs }),
        page.click('[data-testid="login-submit"]'),
      ]);
      for (const k of ['console_errors', 'page_errors', 'failed_requests']) report[k] = [];
    }
    report.status = resp ? resp.status() : null;
    report.content_type = resp ? resp.headers()['content-type'] : null;
    await page.waitForSelector('[data-testid="status"][data-state="ok"]', { timeout: args.timeoutMs });

    report.title = await page.title();
    report.elements = await page.$$eval('[data-testid]', (els) => els.map((e) => ({
      testid: e.getAttribute('data-testid'),
      value: e.hasAttribute('data-value') ? e.getAttribute('data-value') : null,
      text: e.textContent.replace(/\s+/g, ' ').trim(),
      hidden: e.closest('[hidden]') !== null,
    })));
    report.cards = await page.$$eval('article.card', (els) => els.map((e) => ({
      campaign: e.getAttribute('data-campaign'),
      variant: e.getAttribute('data-variant'),
    })));
    report.svg_bars = await page.$$eval('svg rect', (els) => els.length);
    if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

main().catch((e) => {
  process.stderr.write('read_page.js: ' + (e && e.stack ? e.stack : String(e)) + '\n');
  process.exit(1);
});
