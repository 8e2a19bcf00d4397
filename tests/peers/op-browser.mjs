// oidc-client 1.11.5 (the library WeWeb's OpenID plugin bundles) in a real headless Chromium
// against the broker as an OpenID Provider. A small static server on 127.0.0.1 serves
// op-browser.html, a single-page app set up with the plugin's settings (user kept in cookies);
// playwright-core drives it: signinRedirect through the dev provider's "pick a test user" page,
// signinRedirectCallback with userinfo, signinSilent with the refresh token, the size of the stored
// user, signoutRedirect back to the page, and a new sign-in that must show the login page again.
//
// Environment: BROKER_URL (the issuer), CLIENT_ID (a public client), REDIRECT_URI and
// POST_LOGOUT_REDIRECT_URI (registered for it; both http://127.0.0.1:<port>/…, the page is served
// on that port); optionally CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR (a failure saves
// a screenshot there), DEV_USER (default alice) and DEV_EMAIL (default <DEV_USER>@example.test).
// Progress goes to stderr; stdout gets exactly one line: the JSON result. Exit status 0 on success.
// Never prints a token, code or cookie value.
import http from 'node:http';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const ISSUER = (process.env.BROKER_URL || '').replace(/\/+$/, '');
const CLIENT_ID = process.env.CLIENT_ID || '';
const REDIRECT_URI = process.env.REDIRECT_URI || '';
const POST_LOGOUT_REDIRECT_URI = process.env.POST_LOGOUT_REDIRECT_URI || '';
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || '';
const DEV_USER = process.env.DEV_USER || 'alice';
const DEV_EMAIL = process.env.DEV_EMAIL || `${DEV_USER}@example.test`;
const OIDC_CLIENT_VERSION = '1.11.5';
const STEP_TIMEOUT_MS = 15_000;
/** WeWeb's plugin keeps the user in one cookie below this many characters, else splits it in four. */
const ONE_COOKIE_LIMIT = 3000;

class StepFailure extends Error {}

let current = 'setup';
const steps = [];
const facts = {};

function check(condition, message) {
  if (!condition) throw new StepFailure(message);
}

function ok(message) {
  steps.push(current);
  console.error(`ok   ${current}: ${message}`);
}

// Secrets can ride in URLs, bodies and error text: scrub them before printing.
function redact(text) {
  return String(text)
    .replace(
      /\b(code|state|token|access_token|refresh_token|id_token|id_token_hint|code_verifier|code_challenge|nonce)=[^&\s"'<>]+/gi,
      '$1=…',
    )
    .replace(/\beyJ[\w-]+\.[\w-]+\.[\w-]+/g, '<jwt>');
}

function where(url) {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(no URL)';
  }
}

function fail(message) {
  console.error(`FAIL ${current}: ${message}`);
  console.log(JSON.stringify({ ok: false, library: 'oidc-client', step: current, error: message, steps }));
  process.exit(1);
}

// ---- the app's server ----

function oidcClientScript() {
  const require = createRequire(import.meta.url);
  let pkg;
  try {
    pkg = require('oidc-client/package.json');
  } catch {
    fail('oidc-client is not installed: run `npm ci --prefix tests/peers --ignore-scripts`');
  }
  if (pkg.version !== OIDC_CLIENT_VERSION) {
    fail(`oidc-client ${pkg.version} is installed, not ${OIDC_CLIENT_VERSION}: run \`npm ci --prefix tests/peers --ignore-scripts\``);
  }
  return readFileSync(require.resolve('oidc-client/dist/oidc-client.min.js'));
}

function startApp(app) {
  const script = oidcClientScript();
  const config = JSON.stringify({
    authority: ISSUER,
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI,
  }).replace(/</g, '\\u003c');
  const page = readFileSync(new URL('./op-browser.html', import.meta.url), 'utf8').replace('>__CONFIG__<', () => `>${config}<`);
  const pages = new Set(['/', new URL(REDIRECT_URI).pathname, new URL(POST_LOGOUT_REDIRECT_URI).pathname]);
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, app.origin).pathname;
    res.setHeader('Cache-Control', 'no-store');
    if (req.method !== 'GET') {
      res.writeHead(405).end();
    } else if (path === '/favicon.ico') {
      res.writeHead(204).end();
    } else if (path === '/oidc-client.min.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(script);
    } else if (pages.has(path)) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(page);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new StepFailure(`cannot serve the app on ${app.host}: ${e.message}`)));
    server.listen(Number(app.port), '127.0.0.1', () => resolve(server));
  });
}

// ---- watching the page ----

/** Every request the page (and its frames) makes, with its answer. */
class NetworkLog {
  entries = [];
  failures = [];
  outside = [];
  console = [];
  pageErrors = [];

  constructor(page, allowedOrigins) {
    page.on('request', (req) => {
      const url = req.url();
      if (/^(data|blob|about|chrome-error):/.test(url)) return;
      if (!allowedOrigins.includes(new URL(url).origin)) this.outside.push(where(url));
      this.entries.push({ req, method: req.method(), url, status: null });
    });
    page.on('response', (res) => {
      const entry = this.entries.find((e) => e.req === res.request());
      if (entry) entry.status = res.status();
    });
    page.on('requestfailed', (req) => {
      this.failures.push(`${req.method()} ${where(req.url())}: ${req.failure()?.errorText}`);
    });
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') this.console.push(`${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (e) => this.pageErrors.push(e.message));
  }

  mark() {
    return this.entries.length;
  }

  since(mark, method, endpoint) {
    return this.entries.slice(mark).filter((e) => e.method === method && where(e.url) === endpoint);
  }

  /** Console errors and failed requests, for a failure message. */
  diagnostics() {
    const lines = [
      ...this.pageErrors.map((m) => `page error: ${m}`),
      ...this.failures.map((m) => `request failed: ${m}`),
      // oidc-client logs these on every load that is not its own callback: expected, not clues.
      ...this.console
        .filter((m) => !/readSigninResponseState: No state in response|readSignoutResponseState: No matching state/.test(m))
        .slice(-8),
    ];
    return lines.length ? `\n  ${lines.map(redact).join('\n  ')}` : '';
  }
}

function formKeys(entry) {
  const params = new URLSearchParams(entry.req.postData() || '');
  return { grant_type: params.get('grant_type'), params: [...new Set(params.keys())].sort() };
}

function queryKeys(url) {
  return [...new Set(new URL(url).searchParams.keys())].sort();
}

async function pageErrorText(page) {
  return page.$eval('#error', (el) => el.textContent.trim()).catch(() => '');
}

async function waitForState(page, net, state, what) {
  try {
    await page.waitForSelector('body[data-ready="true"]', { timeout: STEP_TIMEOUT_MS });
    await page.waitForSelector(`#status[data-state="${state}"]`, { timeout: STEP_TIMEOUT_MS });
  } catch {
    const seen = await page.$eval('#status', (el) => el.dataset.state).catch(() => '(no #status)');
    const error = await pageErrorText(page);
    throw new StepFailure(
      `${what}: the page on ${where(page.url())} never showed ${state} (it shows ${JSON.stringify(seen)}` +
        `${error ? `; #error says ${JSON.stringify(redact(error))}` : ''})${net.diagnostics()}`,
    );
  }
}

async function checkNoPageError(page, net, when) {
  const error = await pageErrorText(page);
  check(!error, `${when}: #error says ${JSON.stringify(redact(error))}${net.diagnostics()}`);
}

const PICK_BUTTON = `button[type="submit"][name="user"][value="${DEV_USER}"]`;

async function waitForPickPage(page, net, what) {
  try {
    await page.waitForSelector(PICK_BUTTON, { timeout: STEP_TIMEOUT_MS });
  } catch {
    const error = await pageErrorText(page);
    throw new StepFailure(
      `${what} did not lead to the dev provider's "Pick a test user" page (the browser is on ` +
        `${where(page.url())}, titled ${JSON.stringify(await page.title().catch(() => ''))}` +
        `${error ? `; #error says ${JSON.stringify(redact(error))}` : ''})${net.diagnostics()}`,
    );
  }
  check(where(page.url()).startsWith(`${ISSUER}/`), `the pick page is not served by the broker (${where(page.url())})`);
}

// ---- the scenario ----

async function scenario(page, net, meta, app) {
  current = 'open';
  await page.goto(`${app.origin}/`, { waitUntil: 'load' });
  await waitForState(page, net, 'signed-out', 'a fresh browser on the app');
  ok(`the app on ${app.origin}/ loaded oidc-client ${OIDC_CLIENT_VERSION} and shows signed-out`);

  current = 'sign in';
  let mark = net.mark();
  await page.click('#login');
  await waitForPickPage(page, net, 'signinRedirect()');
  const authorize = net.since(mark, 'GET', meta.authorization_endpoint)[0];
  check(authorize, `signinRedirect() reached the pick page without a request to ${meta.authorization_endpoint}`);
  facts.authorize_params = queryKeys(authorize.url);
  ok(`signinRedirect() went to the authorization endpoint (${facts.authorize_params.join(', ')}) and on to the pick page`);

  current = 'callback';
  mark = net.mark();
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(REDIRECT_URI), { timeout: STEP_TIMEOUT_MS }),
    page.click(PICK_BUTTON),
  ]).catch((e) => {
    throw new StepFailure(
      `after picking ${DEV_USER} the browser did not come back to ${REDIRECT_URI} (it is on ${where(page.url())}): ` +
        `${e.message.split('\n')[0]}${net.diagnostics()}`,
    );
  });
  const back = new URL(page.url());
  check(back.searchParams.get('iss') === ISSUER, `the redirect back carries iss=${JSON.stringify(back.searchParams.get('iss'))}, not ${ISSUER}`);
  await waitForState(page, net, 'signed-in', 'signinRedirectCallback()');
  await checkNoPageError(page, net, 'signed in');
  const exchange = net.since(mark, 'POST', meta.token_endpoint);
  check(exchange.length === 1 && exchange[0].status === 200, `the code exchange: ${exchange.length} token requests, status ${exchange[0]?.status}`);
  facts.code_exchange = formKeys(exchange[0]);
  check(facts.code_exchange.grant_type === 'authorization_code', `the code exchange sent grant_type=${facts.code_exchange.grant_type}`);
  const userinfo = net.since(mark, 'GET', meta.userinfo_endpoint);
  check(userinfo.some((e) => e.status === 200), `loadUserInfo: no GET ${meta.userinfo_endpoint} answered 200 (${userinfo.map((e) => e.status).join(', ') || 'none sent'})`);
  const user = await page.evaluate(() => window.testApp.user());
  check(user, 'getUser() returns no user after the callback');
  check(typeof user.profile.sub === 'string' && user.profile.sub, 'the profile has no sub');
  check(user.profile.email === DEV_EMAIL, `profile.email is ${JSON.stringify(user.profile.email)}, not ${DEV_EMAIL} (a value differing between the ID token and userinfo becomes an array)`);
  check(user.access_token && user.id_token, 'the stored user lacks an access token or ID token');
  check(user.refresh_token, 'the stored user has no refresh token although offline_access was asked for');
  check(String(user.scope || '').split(' ').includes('offline_access'), `the stored scope is ${JSON.stringify(user.scope)}`);
  const shown = await page.$eval('#email', (el) => el.textContent.trim());
  check(shown === DEV_EMAIL, `the page shows email ${JSON.stringify(shown)}`);
  ok(`signed in: code exchanged (${facts.code_exchange.params.join(', ')}), userinfo loaded, profile.sub set, profile.email is ${DEV_EMAIL}`);

  current = 'stored user';
  const stored = await page.evaluate(() => ({
    json: window.testApp.storedJson(),
    cookies: window.testApp.userCookies(),
    key: window.testApp.storageKey,
  }));
  check(stored.json, `nothing is stored under ${stored.key}`);
  facts.stored_user_chars = stored.json.length;
  check(
    stored.json.length < ONE_COOKIE_LIMIT,
    `the stored user is ${stored.json.length} characters: at ${ONE_COOKIE_LIMIT} or more WeWeb splits it over four cookies`,
  );
  check(
    stored.cookies.length === 1 && stored.cookies[0] === stored.key,
    `the user is kept in ${JSON.stringify(stored.cookies)}, not in the one cookie ${stored.key}`,
  );
  ok(`the user is one cookie of ${stored.json.length} characters (< ${ONE_COOKIE_LIMIT})`);

  current = 'silent renew';
  mark = net.mark();
  let renewed;
  try {
    renewed = await page.evaluate(() => window.testApp.renew());
  } catch (e) {
    throw new StepFailure(`signinSilent() failed: ${redact(e.message.split('\n')[0])}${net.diagnostics()}`);
  }
  check(renewed, 'signinSilent() returned no user');
  const refreshes = net.since(mark, 'POST', meta.token_endpoint);
  check(refreshes.length === 1, `signinSilent() made ${refreshes.length} token requests, not one`);
  facts.refresh = formKeys(refreshes[0]);
  check(facts.refresh.grant_type === 'refresh_token', `signinSilent() sent grant_type=${facts.refresh.grant_type}, not refresh_token`);
  check(refreshes[0].status === 200, `the refresh answered HTTP ${refreshes[0].status}`);
  check(
    net.since(mark, 'GET', meta.authorization_endpoint).length === 0,
    'signinSilent() also opened the authorization endpoint (an iframe) instead of only using the refresh token',
  );
  check(renewed.access_token && renewed.access_token !== user.access_token, 'signinSilent() kept the old access token');
  check(renewed.refresh_token && renewed.refresh_token !== user.refresh_token, 'signinSilent() stored no new refresh token: the broker must rotate it');
  check(renewed.profile.sub === user.profile.sub, 'the profile sub changed on renewal');
  const after = await page.evaluate(() => ({ json: window.testApp.storedJson(), cookies: window.testApp.userCookies() }));
  const parsed = JSON.parse(after.json);
  check(parsed.refresh_token === renewed.refresh_token, 'the cookie does not hold the new refresh token');
  check(parsed.access_token === renewed.access_token, 'the cookie does not hold the new access token');
  check(after.json.length < ONE_COOKIE_LIMIT && after.cookies.length === 1, `after renewal the user is ${after.json.length} characters in ${after.cookies.length} cookies`);
  facts.stored_user_chars_after_renew = after.json.length;
  await waitForState(page, net, 'signed-in', 'after signinSilent()');
  await checkNoPageError(page, net, 'after signinSilent()');
  ok(`signinSilent() used the refresh_token grant (${facts.refresh.params.join(', ')}); new access and refresh tokens are in the cookie`);

  current = 'sign out';
  mark = net.mark();
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(POST_LOGOUT_REDIRECT_URI), { timeout: STEP_TIMEOUT_MS }),
    page.click('#logout'),
  ]).catch((e) => {
    throw new StepFailure(
      `signoutRedirect() did not come back to ${POST_LOGOUT_REDIRECT_URI} (the browser is on ${where(page.url())}): ` +
        `${e.message.split('\n')[0]}${net.diagnostics()}`,
    );
  });
  const endSession = net.since(mark, 'GET', meta.end_session_endpoint)[0];
  check(endSession, `signoutRedirect() did not go through ${meta.end_session_endpoint}`);
  facts.end_session_params = queryKeys(endSession.url);
  await waitForState(page, net, 'signed-out', 'back from signoutRedirect()');
  await checkNoPageError(page, net, 'signed out');
  const left = await page.evaluate(() => window.testApp.userCookies());
  check(left.length === 0, `the user's cookies are still set after sign-out: ${JSON.stringify(left)}`);
  check((await page.evaluate(() => window.testApp.user())) === null, 'getUser() still returns a user after sign-out');
  ok(`signoutRedirect() went through the end-session endpoint (${facts.end_session_params.join(', ')}) back to the app, signed out`);

  current = 'after sign out';
  await page.click('#login');
  await waitForPickPage(page, net, 'a new signinRedirect() after sign-out (the broker session must be gone)');
  ok('a new signinRedirect() shows the pick page again: the broker session ended');
}

async function main() {
  check(ISSUER, 'set BROKER_URL to the broker base URL, e.g. http://127.0.0.1:8080');
  check(CLIENT_ID, 'set CLIENT_ID to a public client registered in [clients.*]');
  check(REDIRECT_URI && POST_LOGOUT_REDIRECT_URI, 'set REDIRECT_URI and POST_LOGOUT_REDIRECT_URI (registered for CLIENT_ID)');
  const app = new URL(REDIRECT_URI);
  check(
    app.protocol === 'http:' && app.hostname === '127.0.0.1' && app.port && new URL(POST_LOGOUT_REDIRECT_URI).origin === app.origin,
    'REDIRECT_URI and POST_LOGOUT_REDIRECT_URI must both be http://127.0.0.1:<port>/… (the app is served there)',
  );

  current = 'discovery';
  const res = await fetch(`${ISSUER}/.well-known/openid-configuration`).catch((e) => {
    throw new StepFailure(`cannot reach the broker at ${ISSUER}: ${e.message}`);
  });
  check(res.ok, `discovery answered HTTP ${res.status}`);
  const meta = await res.json();
  for (const field of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'end_session_endpoint']) {
    check(typeof meta[field] === 'string', `discovery has no ${field}`);
    meta[field] = where(meta[field]);
  }

  current = 'setup';
  const server = await startApp(app);
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: EXECUTABLE,
      headless: true,
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
    server.close();
    throw new StepFailure(
      `cannot start Chromium at ${EXECUTABLE}: ${e.message.split('\n')[0]}. ` +
        'Install it with `apt-get install chromium`, or set CHROMIUM to its path.',
    );
  }
  facts.chromium = browser.version();
  console.error(`ok   setup: Chromium ${facts.chromium} started; the app is served on ${app.origin}`);

  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const net = new NetworkLog(page, [app.origin, new URL(ISSUER).origin]);
  let failure = null;
  try {
    await scenario(page, net, meta, app);
    if (net.pageErrors.length) failure = `uncaught errors in the page: ${net.pageErrors.join('; ')}`;
    if (net.outside.length) failure = `requests outside the app and the broker: ${[...new Set(net.outside)].join(', ')}`;
  } catch (e) {
    failure = e instanceof StepFailure ? e.message : `${e.message.split('\n')[0]}${net.diagnostics()}`;
  }
  if (failure && SCREENSHOT_DIR) {
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const file = join(SCREENSHOT_DIR, `op-browser-${current.replace(/\s+/g, '-')}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    failure += `\n  screenshot: ${file}`;
  }
  await browser.close();
  server.close();
  if (failure) throw new StepFailure(failure);
}

main()
  .then(() => {
    console.log(JSON.stringify({ ok: true, library: 'oidc-client', version: OIDC_CLIENT_VERSION, steps, ...facts }));
  })
  .catch((e) => {
    fail(redact(e instanceof StepFailure ? e.message : e.stack || e.message));
  });
