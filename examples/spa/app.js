// Example app for oidc-broker: the calls a WeWeb app makes, in cookie mode or token mode.
// All behaviour lives in this file because the broker serves the page under the CSP
// `default-src 'self'` (no inline scripts, styles or event handlers).
'use strict';

const params = new URLSearchParams(location.search);
// Served by the broker itself at /example/, the broker is this origin; served from anywhere
// else, open the page with ?broker=https://auth.example.com.
const broker = (params.get('broker') || location.origin).replace(/\/+$/, '');
const MODE_KEY = 'broker-example-mode';
// WeWeb's Token Based Auth plugin keeps its tokens in these JS-readable cookies, for a year.
const ACCESS = 'ww-auth-access-token';
const REFRESH = 'ww-auth-refresh-token';
const YEAR = 365 * 24 * 3600;

const HELP = {
  cookie: "Cookie mode: the broker's HttpOnly session cookie goes with every call; the page never sees a token.",
  token: 'Token mode, as in WeWeb\'s Token Based Auth plugin: broker tokens in the ww-auth-* cookies, sent as a Bearer header.',
};

const $ = (id) => document.getElementById(id);
let mode = 'cookie';

// ---- cookies, addresses and calls ---------------------------------------------------------

function getCookie(name) {
  const hit = document.cookie.split('; ').find((c) => c.startsWith(name + '='));
  return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
}

function setCookie(name, value, maxAge) {
  // Secure only on https: browsers drop Secure cookies set from plain-http pages.
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = `${name}=${encodeURIComponent(value)}; Path=/; Max-Age=${maxAge}; SameSite=Lax${secure}`;
}

function forgetTokens() {
  setCookie(ACCESS, '', 0);
  setCookie(REFRESH, '', 0);
}

// This page's address without the one-time `code`, for return_to.
function pageUrl() {
  const url = new URL(location.href);
  url.searchParams.delete('code');
  url.hash = '';
  return url.toString();
}

// The broker's error bodies carry a readable `message`; never show more than that.
function messageOf(res) {
  return (res.data && (res.data.message || res.data.error)) || `The broker answered HTTP ${res.status}.`;
}

async function call(path, { method = 'GET', body, token, csrf = false } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  if (csrf) headers['X-CSRF'] = '1';
  let res;
  try {
    res = await fetch(broker + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // Cookie mode rides on the broker's cookie. Token mode sends none, so it shows that the
      // bearer token alone is enough (as it must be for an app on another site).
      credentials: mode === 'cookie' ? 'include' : 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new Error(
      `The broker at ${broker} could not be reached (network error, or this page's origin is not in its allowed_origins).`,
    );
  }
  const data = await res.json().catch(() => null);
  return { status: res.status, ok: res.ok, data };
}

// ---- token mode: what WeWeb's plugin does ----------------------------------------------------

// Renews the access token. Like the plugin, it always sends the refresh token stored at sign-in
// and keeps only the new access token from the answer.
async function renewAccess() {
  const refreshToken = getCookie(REFRESH);
  if (!refreshToken) {
    forgetTokens();
    return { ok: false, message: 'No refresh token is stored; sign in again.' };
  }
  const res = await call('/auth/token/refresh', { method: 'POST', body: { refresh_token: refreshToken } });
  if (res.ok && res.data && typeof res.data.access_token === 'string') {
    setCookie(ACCESS, res.data.access_token, YEAR);
    return { ok: true };
  }
  forgetTokens();
  return { ok: false, message: messageOf(res) };
}

// The plugin's axios interceptor: on a 401, renew the access token and retry the call once.
async function tokenCall(path, opts = {}) {
  const first = await call(path, { ...opts, token: getCookie(ACCESS) });
  if (first.status !== 401) return first;
  const renewed = await renewAccess();
  if (!renewed.ok) return first;
  return call(path, { ...opts, token: getCookie(ACCESS) });
}

const api = (path, opts) => (mode === 'token' ? tokenCall(path, opts) : call(path, opts));

// Back from a token-mode sign-in: trade the one-time code for tokens.
async function exchangeCode() {
  const code = params.get('code');
  if (!code) return;
  // The code must not linger in the address bar, the history or a bookmark.
  const clean = new URL(location.href);
  clean.searchParams.delete('code');
  history.replaceState(null, '', clean);
  const verifier = sessionStorage.getItem(VERIFIER);
  sessionStorage.removeItem(VERIFIER);
  const res = await call('/auth/token', { method: 'POST', body: { code, code_verifier: verifier } });
  if (!res.ok || !res.data || typeof res.data.access_token !== 'string') {
    throw new Error(`Sign-in could not be completed: ${messageOf(res)}`);
  }
  setCookie(ACCESS, res.data.access_token, YEAR);
  if (res.data.refresh_token) setCookie(REFRESH, res.data.refresh_token, YEAR);
}

// ---- rendering -----------------------------------------------------------------------------

function setStatus(state, sentence) {
  $('status').dataset.state = state;
  $('status').textContent = sentence;
}

function showSignedOut(sentence = 'You are signed out.') {
  stopExpiry();
  setStatus('signed-out', sentence);
  $('user').hidden = true;
  $('login').hidden = false;
  $('logout').hidden = true;
  for (const id of ['user-name', 'user-email', 'user-id', 'user-provider']) $(id).textContent = '';
  $('sessions').replaceChildren();
}

function showUser(user) {
  setStatus('signed-in', `You are signed in as ${user.name || user.email || user.id}.`);
  $('user-name').textContent = user.name || '';
  $('user-email').textContent = user.email || '';
  $('user-id').textContent = user.id || '';
  $('user-provider').textContent = user.provider || '';
  $('user').hidden = false;
  $('login').hidden = true;
  $('logout').hidden = false;
}

// A timestamp from the broker (RFC 3339) in the reader's own words.
function when(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? String(iso) : t.toLocaleString();
}

async function showSessions(currentSession) {
  const list = $('sessions');
  list.replaceChildren();
  const res = await api('/auth/sessions');
  if (res.status === 404) return; // this broker does not list sessions
  if (!res.ok) throw new Error(messageOf(res));
  const sessions = res.data && Array.isArray(res.data.sessions) ? res.data.sessions : [];
  for (const s of sessions) {
    const current =
      typeof s.current === 'boolean' ? s.current : Boolean(currentSession && s.handle === currentSession.handle);
    const parts = [s.provider || 'unknown provider'];
    if (s.created_at != null) parts.push(`signed in ${when(s.created_at)}`);
    if (typeof s.device === 'string' && s.device) parts.push(s.device);
    const li = document.createElement('li');
    li.dataset.handle = s.handle || '';
    li.textContent = parts.join(' · ') + (current ? ' (this device)' : '');
    if (current) li.classList.add('current');
    list.append(li);
  }
}

async function refreshView() {
  // Like the plugin: without a stored access token nobody is signed in.
  if (mode === 'token' && !getCookie(ACCESS)) return showSignedOut();
  const me = await api('/auth/me');
  if (me.status === 401) return showSignedOut();
  if (!me.ok || !me.data || !me.data.user) {
    showSignedOut('The session could not be checked.');
    throw new Error(messageOf(me));
  }
  showUser(me.data.user);
  await showSessions(me.data.session);
  await startExpiry();
}

// ---- when the session ends: GET /auth/session ----------------------------------------------

// /auth/session answers when the session ends without counting as activity: polling it lets an
// idle session end, where polling /auth/me would keep it alive forever. The page counts down from
// `idle_expires_in` (seconds), so its own clock does not matter; it asks again now and then, since
// activity in another tab moves the deadline.
const POLL_MS = 60_000;
const WARN_SECONDS = 5 * 60; // this close to the end, warn and offer to stay signed in
const GRACE_MS = 2_000; // past the local deadline, ask the broker rather than guess
const expiry = { endsAt: null, poll: null, tick: null, checking: false };

function stopExpiry() {
  clearInterval(expiry.poll);
  clearInterval(expiry.tick);
  Object.assign(expiry, { endsAt: null, poll: null, tick: null });
  $('expiry').hidden = true;
  $('expiry').textContent = '';
  $('stay').hidden = true;
}

function inWords(seconds) {
  if (seconds < 60) return seconds === 1 ? '1 second' : `${seconds} seconds`;
  const minutes = Math.ceil(seconds / 60);
  return minutes === 1 ? '1 minute' : `${minutes} minutes`;
}

function renderExpiry() {
  if (expiry.endsAt === null) return;
  const left = Math.max(0, Math.ceil((expiry.endsAt - Date.now()) / 1000));
  const warn = left <= WARN_SECONDS;
  $('expiry').dataset.state = warn ? 'warn' : 'ok';
  $('expiry').textContent = `You will be signed out in ${inWords(left)} if you do nothing.`;
  $('expiry').hidden = false;
  $('stay').hidden = !warn;
}

// Polls and timers report failures without clearing what the last action said.
async function quietly(action) {
  try {
    await action();
  } catch (e) {
    $('error').textContent = e instanceof Error ? e.message : String(e);
  }
}

async function checkExpiry() {
  const token = mode === 'token' ? getCookie(ACCESS) : undefined;
  if (mode === 'token' && !token) return showSignedOut();
  // Straight to the broker, never through tokenCall: renewing the access token is activity.
  const res = await call('/auth/session', { token });
  if (res.ok && res.data && typeof res.data.idle_expires_in === 'number') {
    expiry.endsAt = Date.now() + res.data.idle_expires_in * 1000;
    return renderExpiry();
  }
  if (res.status === 401 && mode === 'token' && res.data && res.data.error === 'invalid_token') {
    // The access token expired (they live minutes), not necessarily the session. The deadline
    // only moves with activity, which renews the token, so keep counting down from the last
    // answer; once that has passed, a real check decides.
    if (expiry.endsAt === null) {
      $('expiry').hidden = true;
      return;
    }
    if (Date.now() < expiry.endsAt + GRACE_MS) return renderExpiry();
    stopExpiry();
    return refreshView();
  }
  if (res.status === 401) return showSignedOut('Your session has ended. Sign in again to continue.');
  throw new Error(messageOf(res));
}

function tickExpiry() {
  if (expiry.endsAt === null || expiry.checking) return;
  renderExpiry();
  if (Date.now() < expiry.endsAt + GRACE_MS) return;
  expiry.checking = true;
  quietly(checkExpiry).finally(() => {
    expiry.checking = false;
  });
}

async function startExpiry() {
  stopExpiry();
  expiry.tick = setInterval(tickExpiry, 1000);
  expiry.poll = setInterval(() => quietly(checkExpiry), POLL_MS);
  await checkExpiry();
}

// A real call to the broker is activity: the idle deadline starts again.
async function staySignedIn() {
  await refreshView();
  if ($('status').dataset.state === 'signed-in') $('notice').textContent = 'You are still signed in.';
}

// ---- actions -------------------------------------------------------------------------------

// The mode: ?mode= in the address, else the last choice on this browser, else cookie.
function readMode() {
  const fromUrl = params.get('mode');
  if (fromUrl === 'token' || fromUrl === 'cookie') return fromUrl;
  try {
    return localStorage.getItem(MODE_KEY) === 'token' ? 'token' : 'cookie';
  } catch {
    return 'cookie'; // storage disabled
  }
}

function setMode(next) {
  mode = next === 'token' ? 'token' : 'cookie';
  try {
    localStorage.setItem(MODE_KEY, mode);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
  $('mode').value = mode;
  $('mode-help').textContent = HELP[mode];
  $('refresh').hidden = mode !== 'token';
  // An explicit ?mode= in the address would override the choice on reload: keep it in step.
  const url = new URL(location.href);
  if (url.searchParams.has('mode')) {
    url.searchParams.set('mode', mode);
    history.replaceState(null, '', url);
  }
}

const VERIFIER = 'broker-example-code-verifier';

const base64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

// Token mode binds the one-time code to this tab with PKCE (RFC 7636): a code planted in
// someone else's address bar is useless without the verifier kept here.
async function pkceChallenge() {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  sessionStorage.setItem(VERIFIER, verifier);
  return base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
}

async function login() {
  const returnTo = encodeURIComponent(pageUrl());
  let query = `return_to=${returnTo}`;
  if (mode === 'token') {
    query = `mode=token&code_challenge=${await pkceChallenge()}&code_challenge_method=S256&${query}`;
  }
  location.assign(`${broker}/auth/login?${query}`);
}

async function logout() {
  if (mode === 'token' && !getCookie(ACCESS)) return showSignedOut();
  // X-CSRF is what the broker asks of state-changing calls; harmless with a bearer token.
  const res = await api('/auth/logout', { method: 'POST', csrf: true });
  if (mode === 'token' && res.status === 401) {
    forgetTokens();
    return showSignedOut('You were already signed out.');
  }
  if (!res.ok || !res.data || !res.data.logout_url) throw new Error(messageOf(res));
  // The broker session is gone; forget the tokens, then let the provider end its own session.
  if (mode === 'token') forgetTokens();
  location.assign(res.data.logout_url);
}

async function renewNow() {
  const renewed = await renewAccess();
  if (!renewed.ok) {
    showSignedOut();
    throw new Error(`The access token could not be renewed: ${renewed.message}`);
  }
  $('notice').textContent = 'The access token was renewed.';
  await refreshView();
}

// Runs one action; its failure becomes the readable message in #error.
async function run(action) {
  $('error').textContent = '';
  $('notice').textContent = '';
  try {
    await action();
  } catch (e) {
    $('error').textContent = e instanceof Error ? e.message : String(e);
  }
}

async function start() {
  let failure = null;
  try {
    await exchangeCode();
  } catch (e) {
    failure = e;
  }
  await refreshView();
  if (failure) throw failure;
}

$('broker-url').textContent = broker;
// A `code` in the address only ever comes back from a token-mode sign-in.
setMode(params.has('code') ? 'token' : readMode());
$('mode').addEventListener('change', (e) =>
  run(async () => {
    setMode(e.target.value);
    await refreshView();
  }),
);
$('login').addEventListener('click', () => run(async () => login()));
$('logout').addEventListener('click', () => run(logout));
$('refresh').addEventListener('click', () => run(renewNow));
$('stay').addEventListener('click', () => run(staySignedIn));
document.addEventListener('visibilitychange', () => {
  // Timers in hidden tabs are slowed down: catch up when the tab is shown again.
  if (document.visibilityState === 'visible' && expiry.poll !== null) quietly(checkExpiry);
});
run(start);
