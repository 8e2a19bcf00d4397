// The example page (/example/) driven end to end in a real headless Chromium: sign in through the
// dev provider's "pick a test user" page, see the sign-out warning the page reads from
// /auth/session (the broker runs with an idle timeout under the page's five-minute warning) and
// stay signed in, then sign out again; once in cookie mode and once in token mode.
// Environment: BROKER_URL (the broker's base URL, serving the example page and a `dev` provider);
// optionally CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (a failure saves a screenshot
// there) and SCREENSHOT_STEPS=1 (also save one at each signed-in and signed-out state).
// Prints one line per step; never prints a token, code or cookie value. Exit status 0 on success.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.BROKER_URL || '').replace(/\/+$/, '');
if (!BASE) {
  console.error('FAIL: set BROKER_URL to the broker base URL, e.g. http://127.0.0.1:8080');
  process.exit(2);
}
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || '';
const SCREENSHOT_STEPS = process.env.SCREENSHOT_STEPS === '1';
const STEP_TIMEOUT_MS = 15_000;
const ACCESS_COOKIE = 'ww-auth-access-token';
const REFRESH_COOKIE = 'ww-auth-refresh-token';
const ALICE_EMAIL = 'alice@example.test';

// Secrets can ride in URLs (an authorization code, an id_token_hint); error text is scrubbed.
function redact(text) {
  return String(text).replace(
    /\b(code|state|token|access_token|refresh_token|id_token|id_token_hint|session_state)=[^&\s"'<>]+/gi,
    '$1=…',
  );
}

function pathOf(url) {
  try {
    const u = new URL(url);
    return u.origin === BASE ? u.pathname : `${u.origin}${u.pathname}`;
  } catch {
    return '(no URL)';
  }
}

class StepFailure extends Error {}

function check(condition, message) {
  if (!condition) throw new StepFailure(message);
}

let current = 'setup';
function ok(message) {
  console.log(`ok   ${current}: ${message}`);
}

async function screenshot(page, name) {
  if (!SCREENSHOT_DIR || !page || page.isClosed()) return null;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true }).catch(() => {});
  return file;
}

async function stepShot(page, name) {
  if (SCREENSHOT_STEPS) await screenshot(page, name);
}

/** The selected mode, whether #mode is a <select>/<input> or a group of radio buttons. */
async function modeOf(page) {
  return page.$eval('#mode', (el) => {
    if (el.tagName === 'SELECT' || (el.tagName === 'INPUT' && el.type !== 'radio')) return el.value;
    if (el.tagName === 'INPUT' && el.type === 'radio') {
      const checked = document.querySelector(`input[type=radio][name="${el.name}"]:checked`);
      return checked ? checked.value : null;
    }
    const checked = el.querySelector('input:checked');
    return checked ? checked.value : null;
  });
}

async function waitForState(page, state, what) {
  try {
    await page.waitForSelector(`#status[data-state="${state}"]`, { timeout: STEP_TIMEOUT_MS });
  } catch {
    const seen = await page
      .$eval('#status', (el) => el.getAttribute('data-state'))
      .catch(() => '(no #status element)');
    const error = await errorText(page);
    throw new StepFailure(
      `${what}: #status never reached data-state="${state}" on ${pathOf(page.url())} ` +
        `(it is ${JSON.stringify(seen)}${error ? `; #error says ${JSON.stringify(error)}` : ''})`,
    );
  }
}

async function text(page, selector) {
  return page.$eval(selector, (el) => el.textContent.trim()).catch(() => null);
}

async function errorText(page) {
  return page
    .$eval('#error', (el) => {
      const style = getComputedStyle(el);
      if (el.hidden || style.display === 'none' || style.visibility === 'hidden') return '';
      return el.textContent.trim();
    })
    .catch(() => '');
}

async function checkNoError(page, when) {
  const error = await errorText(page);
  check(!error, `${when}: #error shows ${JSON.stringify(redact(error))}`);
}

/** `fetch(path)` from the page's own origin; returns the status. */
async function fetchStatus(page, path, bearer) {
  return page.evaluate(
    async ({ path, bearer }) => {
      const headers = { Accept: 'application/json' };
      if (bearer) headers.Authorization = `Bearer ${bearer}`;
      const res = await fetch(path, { headers, credentials: bearer ? 'omit' : 'same-origin' });
      return res.status;
    },
    { path, bearer },
  );
}

async function jsCookie(page, name) {
  return page.evaluate((name) => {
    for (const part of document.cookie.split(';')) {
      const i = part.indexOf('=');
      if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
    }
    return null;
  }, name);
}

/** #expiry, read from /auth/session, warns "You will be signed out in N minutes"; #stay (a real
 * call to the broker) keeps the session and the warning stays in place. */
async function checkExpiryWarning(page) {
  const warning = /^You will be signed out in \d+ minutes? if you do nothing\.$/;
  try {
    await page.waitForFunction(
      (source) => {
        const el = document.getElementById('expiry');
        return !!el && !el.hidden && new RegExp(source).test(el.textContent.trim());
      },
      warning.source,
      { timeout: STEP_TIMEOUT_MS },
    );
  } catch {
    throw new StepFailure(
      `#expiry never said "You will be signed out in N minutes if you do nothing." ` +
        `(it says ${JSON.stringify(await text(page, '#expiry'))}${await errorSuffix(page)})`,
    );
  }
  const said = await text(page, '#expiry');
  const state = await page.$eval('#expiry', (el) => el.dataset.state).catch(() => null);
  check(state === 'warn', `#expiry is in state ${JSON.stringify(state)}, not warn, ${said}`);
  check(await page.isVisible('#stay'), 'the sign-out warning shows no #stay button');
  ok(`#expiry warns: ${JSON.stringify(said)}, with a #stay button`);
  await page.click('#stay');
  try {
    await page.waitForFunction(
      () => /still signed in/i.test(document.getElementById('notice')?.textContent || ''),
      null,
      { timeout: STEP_TIMEOUT_MS },
    );
  } catch {
    throw new StepFailure(`#stay did not say the session is kept${await errorSuffix(page)}`);
  }
  await waitForState(page, 'signed-in', 'after #stay');
  check(warning.test((await text(page, '#expiry')) || ''), '#expiry is gone after #stay');
  await checkNoError(page, 'after #stay');
  ok('#stay kept the session: still signed in, the warning counts down again');
}

/** Opens the example page and lets its first calls finish. */
async function openExample(page, path) {
  let res;
  try {
    res = await page.goto(`${BASE}${path}`, { waitUntil: 'networkidle' });
  } catch (e) {
    const hint = /ERR_HTTP_RESPONSE_CODE_FAILURE/.test(e.message) ? '; is [server] example_app = true?' : '';
    throw new StepFailure(`${path} did not load (${e.message.split('\n')[0]})${hint}`);
  }
  check(res && res.ok(), `${path} answered HTTP ${res && res.status()}; is [server] example_app = true?`);
}

/** From the example page: #login, then Alice on the dev provider's page, back to /example/. */
async function signInAsAlice(page) {
  await page.click('#login');
  const alice = 'button[type="submit"][name="user"][value="alice"]';
  try {
    await page.waitForSelector(alice, { timeout: STEP_TIMEOUT_MS });
  } catch {
    throw new StepFailure(
      `#login did not lead to the dev provider's "Pick a test user" page with an Alice button ` +
        `(the browser is on ${pathOf(page.url())}, titled ${JSON.stringify(await page.title().catch(() => ''))})`,
    );
  }
  const label = await text(page, alice);
  check(/alice/i.test(label || ''), `the dev page's alice button reads ${JSON.stringify(label)}`);
  ok(`#login led to the dev provider's pick page (${pathOf(page.url())})`);
  await stepShot(page, `${current.split(' ')[0]}-1-pick-user`);
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(`${BASE}/example/`), { timeout: STEP_TIMEOUT_MS }),
    page.click(alice),
  ]).catch((e) => {
    throw new StepFailure(`after picking Alice the browser did not come back to /example/ (it is on ${pathOf(page.url())}): ${e.message.split('\n')[0]}`);
  });
  ok('picked Alice; the browser is back on /example/');
}

async function cookieMode(page, context) {
  await openExample(page, '/example/');
  await waitForState(page, 'signed-out', 'a fresh browser on /example/');
  const mode = await modeOf(page).catch(() => '(no #mode element)');
  if (mode !== 'cookie') {
    // Select cookie mode if the page does not start there.
    await page.selectOption('#mode', 'cookie').catch(() => page.check('#mode [value="cookie"]'));
  }
  check((await modeOf(page)) === 'cookie', `#mode cannot be set to cookie (it shows ${JSON.stringify(await modeOf(page))})`);
  ok('/example/ shows signed-out, #mode is cookie');
  await stepShot(page, 'cookie-0-signed-out');

  await signInAsAlice(page);
  await waitForState(page, 'signed-in', 'after the login round trip');
  const email = await text(page, '#user-email');
  check(email === ALICE_EMAIL, `#user-email shows ${JSON.stringify(email)}, not ${ALICE_EMAIL}`);
  const id = await text(page, '#user-id');
  check(!!id, '#user-id is empty');
  await checkNoError(page, 'signed in');
  ok(`signed in: #user-email is ${ALICE_EMAIL}, #user-id is filled`);

  await page.waitForSelector('#sessions li[data-handle]', { timeout: STEP_TIMEOUT_MS }).catch(() => {});
  const handles = await page.$$eval('#sessions li[data-handle]', (lis) => lis.map((li) => li.dataset.handle));
  check(handles.length >= 1 && handles.every((h) => h), `#sessions lists ${handles.length} sessions with a data-handle`);
  ok(`#sessions lists ${handles.length} session(s) with a data-handle`);

  const visible = await page.evaluate(() => document.cookie);
  check(!/broker_/.test(visible), 'document.cookie shows a broker cookie: the session cookie must be HttpOnly');
  const all = await context.cookies(BASE);
  const session = all.find((c) => c.name === 'broker_session' || c.name === '__Host-broker_session');
  check(!!session, `the browser holds no broker_session cookie (it holds: ${all.map((c) => c.name).join(', ') || 'none'})`);
  check(session.httpOnly === true, `${session.name} is not HttpOnly`);
  check(session.path === '/', `${session.name} has Path=${session.path}, not /`);
  check(session.sameSite === 'Lax', `${session.name} has SameSite=${session.sameSite}, not Lax`);
  for (const c of all.filter((c) => /broker_/.test(c.name))) {
    check(c.httpOnly, `${c.name} is not HttpOnly`);
  }
  ok(`${session.name} is set, HttpOnly, SameSite=${session.sameSite}; document.cookie does not show it`);

  const me = await fetchStatus(page, '/auth/me');
  check(me === 200, `fetch('/auth/me') while signed in answered ${me}, not 200`);
  ok("fetch('/auth/me') answers 200 while signed in");
  await checkExpiryWarning(page);
  await stepShot(page, 'cookie-2-signed-in');

  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(`${BASE}/auth/logged-out`), { timeout: STEP_TIMEOUT_MS }),
    page.click('#logout'),
  ]).catch((e) => {
    throw new StepFailure(`#logout did not take the browser through the provider's end-session to /auth/logged-out (it is on ${pathOf(page.url())}): ${e.message.split('\n')[0]}`);
  });
  ok('#logout went through the dev provider\'s end-session to /auth/logged-out');
  await stepShot(page, 'cookie-3-logged-out-page');

  await openExample(page, '/example/');
  const after = await fetchStatus(page, '/auth/me');
  check(after === 401, `fetch('/auth/me') after logout answered ${after}, not 401`);
  await waitForState(page, 'signed-out', 'back on /example/ after logout');
  await checkNoError(page, 'signed out');
  check(!(await page.isVisible('#expiry')), '#expiry still shows a deadline after logout');
  ok("back on /example/: fetch('/auth/me') answers 401 and #status is signed-out");
  await stepShot(page, 'cookie-4-signed-out');
}

async function tokenMode(page) {
  await openExample(page, '/example/?mode=token');
  await waitForState(page, 'signed-out', 'a fresh browser on /example/?mode=token');
  const mode = await modeOf(page).catch(() => '(no #mode element)');
  check(mode === 'token', `?mode=token did not select token mode (#mode shows ${JSON.stringify(mode)})`);
  await page.waitForSelector('#refresh', { state: 'attached', timeout: STEP_TIMEOUT_MS }).catch(() => {
    throw new StepFailure('token mode has no #refresh control');
  });
  ok('/example/?mode=token shows signed-out, #mode is token');
  await stepShot(page, 'token-0-signed-out');

  await signInAsAlice(page);
  await waitForState(page, 'signed-in', 'after the login round trip and the code exchange');
  await page
    .waitForURL((u) => !u.searchParams.has('code'), { timeout: STEP_TIMEOUT_MS })
    .catch(() => {
      throw new StepFailure('the address bar still has code= after the exchange');
    });
  check(!page.url().includes('code='), 'the address bar still has code= after the exchange');
  ok('the page traded the code at /auth/token; the address bar no longer has code=');
  const email = await text(page, '#user-email');
  check(email === ALICE_EMAIL, `#user-email shows ${JSON.stringify(email)}, not ${ALICE_EMAIL}`);
  check(!!(await text(page, '#user-id')), '#user-id is empty');
  await checkNoError(page, 'signed in');
  ok(`signed in: #user-email is ${ALICE_EMAIL}, #user-id is filled`);

  const access = await jsCookie(page, ACCESS_COOKIE);
  const refresh = await jsCookie(page, REFRESH_COOKIE);
  check(!!access, `no ${ACCESS_COOKIE} cookie readable by the page`);
  check(!!refresh, `no ${REFRESH_COOKIE} cookie readable by the page`);
  ok(`${ACCESS_COOKIE} and ${REFRESH_COOKIE} are stored, readable by the page`);
  const bearerMe = await fetchStatus(page, '/auth/me', access);
  check(bearerMe === 200, `/auth/me with the access token as Bearer answered ${bearerMe}, not 200`);
  ok('/auth/me with the access token as Bearer answers 200');
  await checkExpiryWarning(page);
  await stepShot(page, 'token-2-signed-in');

  await page.click('#refresh');
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let renewed = access;
  while (Date.now() < deadline) {
    renewed = await jsCookie(page, ACCESS_COOKIE);
    if (renewed && renewed !== access) break;
    await page.waitForTimeout(100);
  }
  check(!!renewed, `#refresh left no ${ACCESS_COOKIE} cookie${await errorSuffix(page)}`);
  check(renewed !== access, `#refresh stored no new access token within ${STEP_TIMEOUT_MS / 1000} s${await errorSuffix(page)}`);
  await waitForState(page, 'signed-in', 'after #refresh');
  const emailAfter = await text(page, '#user-email');
  check(emailAfter === ALICE_EMAIL, `after #refresh #user-email shows ${JSON.stringify(emailAfter)}`);
  await checkNoError(page, 'after #refresh');
  const renewedMe = await fetchStatus(page, '/auth/me', renewed);
  check(renewedMe === 200, `/auth/me with the new access token answered ${renewedMe}, not 200`);
  ok('#refresh stored a new access token (different from the first); still signed in as Alice');

  // #logout may stay on the page or go through the provider's end-session to /auth/logged-out.
  await page.click('#logout');
  await Promise.race([
    page.waitForURL((u) => u.href.startsWith(`${BASE}/auth/logged-out`), { timeout: STEP_TIMEOUT_MS }),
    page.waitForSelector('#status[data-state="signed-out"]', { timeout: STEP_TIMEOUT_MS }),
  ]).catch(() => {});
  // A page that shows signed-out and then follows logout_url is still navigating: let it finish.
  await page.waitForLoadState('networkidle').catch(() => {});
  if (page.url().startsWith(`${BASE}/auth/logged-out`)) {
    ok('#logout went through the dev provider\'s end-session to /auth/logged-out');
    await stepShot(page, 'token-3-logged-out-page');
    await openExample(page, '/example/?mode=token');
  }
  await waitForState(page, 'signed-out', 'after #logout');
  await checkNoError(page, 'signed out');
  check(!(await jsCookie(page, ACCESS_COOKIE)), `${ACCESS_COOKIE} is still stored after logout`);
  check(!(await jsCookie(page, REFRESH_COOKIE)), `${REFRESH_COOKIE} is still stored after logout`);
  ok('signed out: #status is signed-out and both token cookies are gone');
  for (const [what, token] of [['first', access], ['refreshed', renewed]]) {
    const status = await fetchStatus(page, '/auth/me', token);
    check(status === 401, `/auth/me with the ${what} access token as Bearer after logout answered ${status}, not 401`);
  }
  ok('/auth/me with the old access tokens as Bearer answers 401');
  await stepShot(page, 'token-4-signed-out');
}

async function errorSuffix(page) {
  const error = await errorText(page);
  return error ? ` (#error says ${JSON.stringify(redact(error))})` : '';
}

/** Runs one scenario in a fresh browser context; uncaught page errors and requests that leave the
 * broker's origin fail it too. Returns true when it passed. */
async function run(browser, name, scenario) {
  current = name;
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught error in the page on ${pathOf(page.url())}: ${e.message}`));
  page.on('request', (req) => {
    const url = req.url();
    if (/^(data|blob|about):/.test(url)) return;
    if (!url.startsWith(`${BASE}/`)) problems.push(`request outside the broker: ${pathOf(url)}`);
  });
  let failure = null;
  try {
    await scenario(page, context);
  } catch (e) {
    failure = e instanceof StepFailure ? e.message : e.message.split('\n')[0];
  }
  if (problems.length) failure = [failure, ...problems].filter(Boolean).join('; ');
  if (failure) {
    console.log(`FAIL ${name}: ${redact(failure)}`);
    const shot = await screenshot(page, `${name.replace(/\s+/g, '-')}-failure`);
    if (shot) console.log(`     screenshot: ${shot}`);
  } else {
    console.log(`PASS ${name}`);
  }
  await context.close();
  return !failure;
}

async function main() {
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: EXECUTABLE,
      headless: true,
      // Playwright starts Chromium with a fresh temporary --user-data-dir of its own.
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (e) {
    console.log(`FAIL setup: cannot start Chromium at ${EXECUTABLE}: ${e.message.split('\n')[0]}`);
    console.log('Install it with `apt-get install chromium`, or set CHROMIUM to its path.');
    process.exit(1);
  }
  ok(`Chromium ${browser.version()} started`);
  const cookie = await run(browser, 'cookie mode', cookieMode);
  const token = await run(browser, 'token mode', tokenMode);
  await browser.close();
  if (!cookie || !token) {
    console.log('FAIL: the example page did not sign in and out in a real browser');
    process.exit(1);
  }
  console.log('PASS: both modes signed in and out in a real browser');
}

main().catch((e) => {
  console.error(`FAIL: ${redact(e.stack || e.message)}`);
  process.exit(1);
});
