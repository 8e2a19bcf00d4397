// oidc-client 1.11.5 (the library WeWeb's OpenID plugin bundles) in a real headless Chromium
// against the broker as an OpenID Provider. A small static server on 127.0.0.1 serves
// op-browser.html, a single-page app set up with the plugin's settings (user kept in cookies);
// playwright-core drives it:
// - with offline_access: signinRedirect through the dev provider's "pick a test user" page,
//   signinRedirectCallback with userinfo, the size of the stored user, signinSilent with the
//   refresh token, signoutRedirect back to the page, and a new sign-in that must show the login
//   page again (the broker session ended);
// - without offline_access (the plugin's default scope has none), when IFRAME_CLIENT_ID is set:
//   no refresh token is issued, so signinSilent renews in a hidden iframe with prompt=none.
//
// Environment: BROKER_URL (the issuer); CLIENT_ID (a public client), REDIRECT_URI and
// POST_LOGOUT_REDIRECT_URI (registered for it; http://127.0.0.1:<port>/…, the page is served on
// that port); optionally IFRAME_CLIENT_ID, IFRAME_REDIRECT_URI and IFRAME_POST_LOGOUT_REDIRECT_URI
// (another public client, same origin, other paths), CHROMIUM (default /usr/bin/chromium),
// SCREENSHOT_DIR (a failure saves a screenshot there), DEV_USER (default alice) and DEV_EMAIL
// (default <DEV_USER>@example.test).
// Progress goes to stderr; stdout gets exactly one line: the JSON result. Exit status 0 on success.
// Never prints a token, code or cookie value.
import http from 'node:http';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const ISSUER = (process.env.BROKER_URL || '').replace(/\/+$/, '');
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || '';
const DEV_USER = process.env.DEV_USER || 'alice';
const DEV_EMAIL = process.env.DEV_EMAIL || `${DEV_USER}@example.test`;
const OIDC_CLIENT_VERSION = '1.11.5';
const STEP_TIMEOUT_MS = 15_000;
/** WeWeb's plugin keeps the user in one cookie below this many characters, else splits it in four. */
const ONE_COOKIE_LIMIT = 3000;

/** The apps served, each a UserManager set up for one registered client. */
const APPS = [
  {
    name: 'refresh token',
    client_id: process.env.CLIENT_ID || '',
    redirect_uri: process.env.REDIRECT_URI || '',
    post_logout_redirect_uri: process.env.POST_LOGOUT_REDIRECT_URI || '',
    scope: 'openid profile email offline_access',
  },
];
if (process.env.IFRAME_CLIENT_ID) {
  APPS.push({
    name: 'iframe',
    client_id: process.env.IFRAME_CLIENT_ID,
    redirect_uri: process.env.IFRAME_REDIRECT_URI || '',
    post_logout_redirect_uri: process.env.IFRAME_POST_LOGOUT_REDIRECT_URI || '',
    scope: 'openid profile email',
  });
}

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

// ---- the apps' server ----

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

/** The first page path of an app: its redirect_uri's folder. */
function home(app) {
  return new URL('./', app.redirect_uri).pathname;
}

/** Serves every app's page (at its home, redirect_uri and post_logout_redirect_uri) on `origin`. */
function startServer(origin) {
  const script = oidcClientScript();
  const template = readFileSync(new URL('./op-browser.html', import.meta.url), 'utf8');
  const pages = new Map();
  for (const app of APPS) {
    const config = JSON.stringify({
      authority: ISSUER,
      client_id: app.client_id,
      redirect_uri: app.redirect_uri,
      post_logout_redirect_uri: app.post_logout_redirect_uri,
      scope: app.scope,
    }).replace(/</g, '\\u003c');
    const page = template.replace('>__CONFIG__<', () => `>${config}<`);
    for (const path of [home(app), new URL(app.redirect_uri).pathname, new URL(app.post_logout_redirect_uri).pathname]) {
      check(!pages.has(path), `two apps would be served at ${path}: give them different paths`);
      pages.set(path, page);
    }
  }
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, origin).pathname;
    res.setHeader('Cache-Control', 'no-store');
    if (req.method !== 'GET') {
      res.writeHead(405).end();
    } else if (path === '/favicon.ico') {
      res.writeHead(204).end();
    } else if (path === '/oidc-client.min.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(script);
    } else if (pages.has(path)) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(pages.get(path));
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
  });
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(new StepFailure(`cannot serve the apps on ${origin}: ${e.message}`)));
    server.listen(Number(port), hostname, () => resolve(server));
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

// ---- the scenarios ----

async function open(page, net, app) {
  await page.goto(new URL(home(app), app.redirect_uri).href, { waitUntil: 'load' });
  await waitForState(page, net, 'signed-out', 'a fresh browser on the app');
}

/** signinRedirect() through the pick page, back to the app signed in; returns the stored user. */
async function signIn(page, net, meta, app, prefix) {
  current = `${prefix}sign in`;
  let mark = net.mark();
  await page.click('#login');
  await waitForPickPage(page, net, 'signinRedirect()');
  const authorize = net.since(mark, 'GET', meta.authorization_endpoint)[0];
  check(authorize, `signinRedirect() reached the pick page without a request to ${meta.authorization_endpoint}`);
  const authorizeParams = queryKeys(authorize.url);
  ok(`signinRedirect() went to the authorization endpoint (${authorizeParams.join(', ')}) and on to the pick page`);

  current = `${prefix}callback`;
  mark = net.mark();
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(app.redirect_uri), { timeout: STEP_TIMEOUT_MS }),
    page.click(PICK_BUTTON),
  ]).catch((e) => {
    throw new StepFailure(
      `after picking ${DEV_USER} the browser did not come back to ${app.redirect_uri} (it is on ${where(page.url())}): ` +
        `${e.message.split('\n')[0]}${net.diagnostics()}`,
    );
  });
  const back = new URL(page.url());
  check(back.searchParams.get('iss') === ISSUER, `the redirect back carries iss=${JSON.stringify(back.searchParams.get('iss'))}, not ${ISSUER}`);
  await waitForState(page, net, 'signed-in', 'signinRedirectCallback()');
  await checkNoPageError(page, net, 'signed in');
  const exchange = net.since(mark, 'POST', meta.token_endpoint);
  check(exchange.length === 1 && exchange[0].status === 200, `the code exchange: ${exchange.length} token requests, status ${exchange[0]?.status}`);
  const exchangeParams = formKeys(exchange[0]);
  check(exchangeParams.grant_type === 'authorization_code', `the code exchange sent grant_type=${exchangeParams.grant_type}`);
  const userinfo = net.since(mark, 'GET', meta.userinfo_endpoint);
  check(userinfo.some((e) => e.status === 200), `loadUserInfo: no GET ${meta.userinfo_endpoint} answered 200 (${userinfo.map((e) => e.status).join(', ') || 'none sent'})`);
  const user = await page.evaluate(() => window.testApp.user());
  check(user, 'getUser() returns no user after the callback');
  check(typeof user.profile.sub === 'string' && user.profile.sub, 'the profile has no sub');
  check(
    user.profile.email === DEV_EMAIL,
    `profile.email is ${JSON.stringify(user.profile.email)}, not ${DEV_EMAIL} (a value differing between the ID token and userinfo becomes an array)`,
  );
  check(user.access_token && user.id_token, 'the stored user lacks an access token or ID token');
  const shown = await page.$eval('#email', (el) => el.textContent.trim());
  check(shown === DEV_EMAIL, `the page shows email ${JSON.stringify(shown)}`);
  ok(`signed in: code exchanged (${exchangeParams.params.join(', ')}), userinfo loaded, profile.sub set, profile.email is ${DEV_EMAIL}`);
  return { user, authorizeParams, exchangeParams };
}

/** The stored user: one cookie under the limit; returns its size. */
async function checkStoredUser(page) {
  const stored = await page.evaluate(() => ({
    json: window.testApp.storedJson(),
    cookies: window.testApp.userCookies(),
    key: window.testApp.storageKey,
  }));
  check(stored.json, `nothing is stored under ${stored.key}`);
  check(
    stored.json.length < ONE_COOKIE_LIMIT,
    `the stored user is ${stored.json.length} characters: at ${ONE_COOKIE_LIMIT} or more WeWeb splits it over four cookies`,
  );
  check(
    stored.cookies.length === 1 && stored.cookies[0] === stored.key,
    `the user is kept in ${JSON.stringify(stored.cookies)}, not in the one cookie ${stored.key}`,
  );
  return { size: stored.json.length, user: JSON.parse(stored.json) };
}

async function renew(page, net) {
  try {
    return await page.evaluate(() => window.testApp.renew());
  } catch (e) {
    const error = await pageErrorText(page);
    throw new StepFailure(
      `signinSilent() failed: ${redact(e.message.split('\n')[0])}` +
        `${error ? `; #error says ${JSON.stringify(redact(error))}` : ''}${net.diagnostics()}`,
    );
  }
}

/** signoutRedirect() through the end-session endpoint back to the app, signed out. */
async function signOut(page, net, meta, app) {
  const mark = net.mark();
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(app.post_logout_redirect_uri), { timeout: STEP_TIMEOUT_MS }),
    page.click('#logout'),
  ]).catch((e) => {
    throw new StepFailure(
      `signoutRedirect() did not come back to ${app.post_logout_redirect_uri} (the browser is on ${where(page.url())}): ` +
        `${e.message.split('\n')[0]}${net.diagnostics()}`,
    );
  });
  const endSession = net.since(mark, 'GET', meta.end_session_endpoint)[0];
  check(endSession, `signoutRedirect() did not go through ${meta.end_session_endpoint}`);
  await waitForState(page, net, 'signed-out', 'back from signoutRedirect()');
  await checkNoPageError(page, net, 'signed out');
  const left = await page.evaluate(() => window.testApp.userCookies());
  check(left.length === 0, `the user's cookies are still set after sign-out: ${JSON.stringify(left)}`);
  check((await page.evaluate(() => window.testApp.user())) === null, 'getUser() still returns a user after sign-out');
  return queryKeys(endSession.url);
}

/** Renewal with the refresh token (the scope has offline_access). */
async function refreshTokenApp(page, net, meta, app) {
  current = 'open';
  await open(page, net, app);
  ok(`the app on ${where(page.url())} loaded oidc-client ${OIDC_CLIENT_VERSION} and shows signed-out`);

  const { user, authorizeParams, exchangeParams } = await signIn(page, net, meta, app, '');
  facts.authorize_params = authorizeParams;
  facts.code_exchange = exchangeParams;
  check(user.refresh_token, 'the stored user has no refresh token although offline_access was asked for');
  check(String(user.scope || '').split(' ').includes('offline_access'), `the stored scope is ${JSON.stringify(user.scope)}`);

  current = 'stored user';
  const stored = await checkStoredUser(page);
  facts.stored_user_chars = stored.size;
  ok(`the user is one cookie of ${stored.size} characters (< ${ONE_COOKIE_LIMIT})`);

  current = 'silent renew';
  const mark = net.mark();
  const renewed = await renew(page, net);
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
  const after = await checkStoredUser(page);
  check(after.user.refresh_token === renewed.refresh_token, 'the cookie does not hold the new refresh token');
  check(after.user.access_token === renewed.access_token, 'the cookie does not hold the new access token');
  facts.stored_user_chars_after_renew = after.size;
  await waitForState(page, net, 'signed-in', 'after signinSilent()');
  await checkNoPageError(page, net, 'after signinSilent()');
  ok(`signinSilent() used the refresh_token grant (${facts.refresh.params.join(', ')}); new access and refresh tokens are in the cookie (${after.size} characters)`);

  current = 'sign out';
  facts.end_session_params = await signOut(page, net, meta, app);
  ok(`signoutRedirect() went through the end-session endpoint (${facts.end_session_params.join(', ')}) back to the app, signed out`);

  current = 'after sign out';
  await page.click('#login');
  await waitForPickPage(page, net, 'a new signinRedirect() after sign-out (the broker session must be gone)');
  ok('a new signinRedirect() shows the pick page again: the broker session ended');
}

/** Renewal in a hidden iframe with prompt=none (no offline_access, so no refresh token). */
async function iframeApp(page, net, meta, app) {
  current = 'iframe: open';
  await open(page, net, app);
  ok(`the app on ${where(page.url())} (scope ${JSON.stringify(app.scope)}) shows signed-out`);

  const { user } = await signIn(page, net, meta, app, 'iframe: ');
  check(!user.refresh_token, 'a refresh token was issued although offline_access was not asked for');

  current = 'iframe: silent renew';
  const mark = net.mark();
  const renewed = await renew(page, net);
  check(renewed, 'signinSilent() returned no user');
  const authorize = net.since(mark, 'GET', meta.authorization_endpoint);
  check(authorize.length === 1, `signinSilent() made ${authorize.length} requests to the authorization endpoint, not one (in its iframe)`);
  const query = new URL(authorize[0].url).searchParams;
  check(query.get('prompt') === 'none', `the iframe's authorization request has prompt=${query.get('prompt')}`);
  facts.iframe_authorize_params = queryKeys(authorize[0].url);
  const exchange = net.since(mark, 'POST', meta.token_endpoint);
  check(exchange.length === 1 && formKeys(exchange[0]).grant_type === 'authorization_code', 'the iframe renewal did not exchange one code');
  check(exchange[0].status === 200, `the iframe renewal's code exchange answered HTTP ${exchange[0].status}`);
  check(renewed.access_token && renewed.access_token !== user.access_token, 'signinSilent() kept the old access token');
  check(renewed.profile.sub === user.profile.sub, 'the profile sub changed on renewal');
  check(renewed.profile.email === DEV_EMAIL, `after renewal profile.email is ${JSON.stringify(renewed.profile.email)}`);
  const after = await checkStoredUser(page);
  check(after.user.access_token === renewed.access_token, 'the cookie does not hold the new access token');
  await waitForState(page, net, 'signed-in', 'after signinSilent()');
  await checkNoPageError(page, net, 'after signinSilent()');
  ok(`signinSilent() renewed in a hidden iframe (${facts.iframe_authorize_params.join(', ')}) and exchanged its code`);

  current = 'iframe: sign out';
  await signOut(page, net, meta, app);
  ok('signoutRedirect() went back to the app, signed out');
}

async function main() {
  check(ISSUER, 'set BROKER_URL to the broker base URL, e.g. http://127.0.0.1:8080');
  for (const app of APPS) {
    check(app.client_id, `set the ${app.name} app's client id (CLIENT_ID / IFRAME_CLIENT_ID)`);
    check(app.redirect_uri && app.post_logout_redirect_uri, `set the ${app.name} app's redirect and post-logout URIs`);
  }
  const origin = new URL(APPS[0].redirect_uri).origin;
  check(
    origin.startsWith('http://127.0.0.1:') &&
      APPS.every((a) => new URL(a.redirect_uri).origin === origin && new URL(a.post_logout_redirect_uri).origin === origin),
    'every redirect and post-logout URI must be on one http://127.0.0.1:<port> origin (the apps are served there)',
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
  const server = await startServer(origin);
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
  console.error(`ok   setup: Chromium ${facts.chromium} started; the apps are served on ${origin}`);

  const scenarios = [[refreshTokenApp, APPS[0]]];
  if (APPS[1]) scenarios.push([iframeApp, APPS[1]]);
  let failure = null;
  for (const [scenario, app] of scenarios) {
    // A fresh browser profile each: no broker session or cookie carries over.
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    const net = new NetworkLog(page, [origin, new URL(ISSUER).origin]);
    try {
      await scenario(page, net, meta, app);
      if (net.pageErrors.length) failure = `uncaught errors in the page: ${net.pageErrors.join('; ')}`;
      if (net.outside.length) failure = `requests outside the app and the broker: ${[...new Set(net.outside)].join(', ')}`;
    } catch (e) {
      failure = e instanceof StepFailure ? e.message : `${e.message.split('\n')[0]}${net.diagnostics()}`;
    }
    if (failure && SCREENSHOT_DIR) {
      mkdirSync(SCREENSHOT_DIR, { recursive: true });
      const file = join(SCREENSHOT_DIR, `op-browser-${current.replace(/[^\w]+/g, '-')}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      failure += `\n  screenshot: ${file}`;
    }
    await context.close();
    if (failure) break;
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
