// Drives the dashboard in headless Chromium (Debian's /usr/bin/chromium)
// with Playwright: signs in with a read token, reads the chart's bars and
// the tables, looks a profile up, keeps a screenshot, and prints what it
// saw, console errors included, as one JSON object.
//   node dashboard.mjs URL TOKEN LOOKUP_EMAIL SCREENSHOT.png
import { chromium } from 'playwright-core';

const [url, token, email, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // No background traffic: this machine's network is closed.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const errors = [];
const requests = [];
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  page.on('request', (r) => requests.push(r.url()));

  await page.goto(url);
  const signInTitle = await page.title();
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL(url), page.click('button[type=submit]')]);

  const bars = await page.$$eval('g.bar', (gs) => gs.map((g) => ({
    month: g.dataset.month,
    identified: Number(g.dataset.identified),
    anonymous: Number(g.dataset.anonymous),
    total: Number(g.querySelector('text.total').textContent),
    // As drawn: a bar that is in the markup but not painted has no box.
    drawn: [...g.querySelectorAll('rect')].map((r) => r.getBoundingClientRect().height),
  })));
  const table = await page.$$eval('table.mau tbody tr', (trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
  const responses = await page.$$eval('table.responses tbody tr', (trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
  const segments = await page.$$eval('table.segments tbody tr', (trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
  await page.screenshot({ path: screenshot, fullPage: true });

  await page.selectOption('select[name=kind]', 'email');
  await page.fill('input[name=value]', email);
  await Promise.all([page.waitForLoadState('load'), page.click('form.lookup button')]);
  await page.waitForSelector('pre.profile');
  const profile = JSON.parse(await page.textContent('pre.profile'));

  console.log(JSON.stringify({ signInTitle, title: await page.title(), bars, table, responses,
                               segments, profile, errors, requests }));
} finally {
  await browser.close();
}
