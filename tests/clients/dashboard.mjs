// Drives the dashboard in headless Chromium (Debian's /usr/bin/chromium)
// with Playwright: signs in with a read token, reads the chart's bars and
// the tables, looks a profile up, keeps a screenshot, signs out and puts
// the old cookie back; then, as another site (http://evil.example, served
// by Playwright itself), frames the dashboard and posts the sign-in form.
// Prints what it saw, console errors included, as one JSON object.
//   node dashboard.mjs URL TOKEN LOOKUP_EMAIL SCREENSHOT.png
import { chromium } from 'playwright-core';

const [url, token, email, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // No background traffic: this machine's network is closed. Local network
  // access checks off: they would stop "another site" from framing the
  // loopback server at all, and the frame test must see the dashboard's
  // own headers refuse it, as on a public address.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--disable-features=LocalNetworkAccessChecks'],
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
  const title = await page.title();

  // The session cookie as the browser keeps it, then signing out.
  const context = page.context();
  const kept = (await context.cookies()).find((c) => c.name === 'idfold_session');
  const cookie = kept && { value: kept.value, httpOnly: kept.httpOnly, sameSite: kept.sameSite,
                           secure: kept.secure };
  await Promise.all([page.waitForURL(url), page.click('header form button')]);
  const signedOut = await page.locator('input[name=token]').count() === 1;
  // A copy of the old cookie, put back, opens nothing (the 401 is logged
  // to the console: kept apart from the page's own errors).
  const errorsBefore = errors.length;
  await context.addCookies([{ name: 'idfold_session', value: kept.value, url }]);
  const reopened = await page.goto(url);
  const oldCookie = { status: reopened.status(),
                      signInForm: await page.locator('input[name=token]').count() === 1,
                      errors: errors.splice(errorsBefore) };

  // Another site, in a browser of its own (nothing it does is counted above).
  const other = await browser.newContext();
  const evil = await other.newPage();
  const foreign = [];
  evil.on('console', (m) => { if (m.type() === 'error') foreign.push(m.text()); });
  await other.route('http://evil.example/**', (route) => route.fulfill({
    contentType: 'text/html',
    body: route.request().url().endsWith('/frame.html')
      ? `<iframe src="${url}"></iframe>`
      : `<form method="post" action="${new URL('/dashboard/session', url)}">
           <input name="token" value="${token}"></form>
         <script>document.forms[0].submit()</script>`,
  }));
  await evil.goto('http://evil.example/frame.html');
  const frame = evil.frames()[1];
  const framed = frame ? { url: frame.url(),
                           form: await frame.locator('input[name=token]').count() > 0 } : null;
  const [posted] = await Promise.all([
    evil.waitForResponse((r) => r.url().endsWith('/dashboard/session')),
    evil.goto('http://evil.example/csrf.html'),
  ]);
  const csrf = { status: posted.status(), body: await posted.json().catch(() => null) };
  await evil.goto(url);
  csrf.signedIn = await evil.locator('input[name=token]').count() === 0;
  await other.close();

  console.log(JSON.stringify({ signInTitle, title, bars, table, responses, segments, profile,
                               errors, requests, cookie, signedOut, oldCookie, framed, csrf,
                               foreign }));
} finally {
  await browser.close();
}
