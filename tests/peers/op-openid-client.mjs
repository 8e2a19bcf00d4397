// panva's openid-client (v6, a certified Relying Party library) against the broker as an OpenID
// Provider: discovery, authorization code with PKCE (the browser part driven over HTTP with a
// cookie jar, through the dev provider's "pick a test user" page), the code exchange with the ID
// token validated by the library, userinfo, refresh with rotation, RFC 7009 revocation of the
// refresh token, and RP-initiated logout back to the registered post_logout_redirect_uri.
//
// Environment: BROKER_URL (the issuer), CLIENT_ID (a public client), REDIRECT_URI and
// POST_LOGOUT_REDIRECT_URI (both registered for it, nothing needs to listen there); optionally
// DEV_USER (default alice) and DEV_EMAIL (default <DEV_USER>@example.test).
// Progress goes to stderr; stdout gets exactly one line: the JSON result. Exit status 0 on success.
// Never prints a token, code or cookie value.
import crypto from 'node:crypto';
import * as client from 'openid-client';

const ISSUER = (process.env.BROKER_URL || '').replace(/\/+$/, '');
const CLIENT_ID = process.env.CLIENT_ID || '';
const REDIRECT_URI = process.env.REDIRECT_URI || '';
const POST_LOGOUT_REDIRECT_URI = process.env.POST_LOGOUT_REDIRECT_URI || '';
const DEV_USER = process.env.DEV_USER || 'alice';
const DEV_EMAIL = process.env.DEV_EMAIL || `${DEV_USER}@example.test`;
const SCOPE = 'openid profile email offline_access';
const MAX_HOPS = 20;

class StepFailure extends Error {}

let current = 'setup';
const steps = [];
const notes = {};

function check(condition, message) {
  if (!condition) throw new StepFailure(message);
}

function ok(message) {
  steps.push(current);
  console.error(`ok   ${current}: ${message}`);
}

// Secrets can ride in URLs and error text: scrub them before printing.
function redact(text) {
  return String(text)
    .replace(
      /\b(code|state|token|access_token|refresh_token|id_token|id_token_hint|code_verifier|nonce)=[^&\s"'<>]+/gi,
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

function withoutQuery(url) {
  const u = new URL(url);
  u.search = '';
  u.hash = '';
  return u.href;
}

/** The error code of an openid-client failure, when the server answered one. */
function oauthError(e) {
  return e?.error || e?.cause?.error || null;
}

function describe(e) {
  if (e instanceof StepFailure) return e.message;
  const parts = [e?.message || String(e)];
  if (e?.code) parts.push(`(${e.code})`);
  if (e?.error) parts.push(`error=${e.error}`);
  if (e?.error_description) parts.push(`error_description=${JSON.stringify(e.error_description)}`);
  if (e?.status) parts.push(`HTTP ${e.status}`);
  if (e?.cause && typeof e.cause === 'object' && !(e.cause instanceof Response)) {
    const c = e.cause;
    const detail = c.message || c.error || JSON.stringify(c);
    if (detail && detail !== '{}') parts.push(`cause: ${detail}`);
  }
  return parts.join(' ');
}

// ---- a browser over HTTP: a cookie jar, redirects followed by hand ----

class CookieJar {
  #cookies = new Map(); // `${name};${path}` -> { name, value, path, expires }

  store(url, response) {
    const now = Date.now();
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = '/';
      let expires = null;
      for (const attr of attrs) {
        const [k, ...v] = attr.split('=');
        const key = k.trim().toLowerCase();
        const val = v.join('=').trim();
        if (key === 'path' && val.startsWith('/')) path = val;
        if (key === 'max-age') expires = now + Number(val) * 1000;
        if (key === 'expires' && expires === null) expires = Date.parse(val);
      }
      const id = `${name};${path}`;
      if (expires !== null && expires <= now) this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path, expires });
    }
  }

  header(url) {
    const { pathname } = new URL(url);
    const now = Date.now();
    return [...this.#cookies.values()]
      .filter((c) => (c.expires === null || c.expires > now) && pathMatches(pathname, c.path))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

function pathMatches(requestPath, cookiePath) {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

const jar = new CookieJar();

async function request(url, { method = 'GET', body } = {}) {
  const headers = { Accept: 'text/html,application/xhtml+xml', 'User-Agent': 'op-interop (openid-client)' };
  const cookie = jar.header(url);
  if (cookie) headers.Cookie = cookie;
  if (body) headers['Content-Type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(url, { method, headers, body, redirect: 'manual' });
  jar.store(url, res);
  return res;
}

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (m, e) => {
    const lower = e.toLowerCase();
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return String.fromCodePoint(parseInt(lower.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[lower];
  });
}

function attr(tag, name) {
  const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`, 'i'));
  return m ? decodeEntities(m[1] ?? m[2]) : null;
}

/** The dev provider's "pick a test user" form on a page, with the button for `user`, or null. */
function pickForm(html, pageUrl, user) {
  for (const m of html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)) {
    const form = m[0];
    const open = form.match(/^<form\b[^>]*>/i)[0];
    const buttons = [...form.matchAll(/<button\b[^>]*>/gi)].map((b) => b[0]);
    const pick = buttons.find((b) => attr(b, 'name') === 'user' && attr(b, 'value') === user);
    if (!pick) continue;
    const fields = new URLSearchParams();
    for (const input of form.matchAll(/<input\b[^>]*>/gi)) {
      const name = attr(input[0], 'name');
      if (name) fields.append(name, attr(input[0], 'value') ?? '');
    }
    fields.append('user', user);
    return {
      action: new URL(attr(open, 'action') || pageUrl, pageUrl).href,
      method: (attr(open, 'method') || 'get').toUpperCase(),
      fields,
      users: buttons.map((b) => attr(b, 'value')).filter(Boolean),
    };
  }
  return null;
}

function titleOf(html) {
  const m = html.match(/<title>([\s\S]*?)<\/title>/i);
  return m ? decodeEntities(m[1].trim()) : '';
}

/**
 * Follows a browser navigation from `start` until a redirect leaves for a URL starting with
 * `stopAt` (returned, not fetched). On the dev provider's pick page it picks `user`; with
 * `user: null` it stops there instead and reports it. Returns { url, trail, loginPage }.
 */
async function navigate(start, stopAt, { user = DEV_USER } = {}) {
  let url = start;
  let method = 'GET';
  let body;
  const trail = [];
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    trail.push(`${method} ${where(url)}`);
    const res = await request(url, { method, body });
    if ([301, 302, 303, 307, 308].includes(res.status)) {
      const location = res.headers.get('location');
      check(location, `${where(url)} answered ${res.status} without a Location header`);
      const next = new URL(location, url).href;
      await res.arrayBuffer();
      if (next.startsWith(stopAt)) return { url: next, trail, loginPage: false };
      if (res.status !== 307 && res.status !== 308) {
        method = 'GET';
        body = undefined;
      }
      url = next;
      continue;
    }
    const html = await res.text();
    check(
      res.status === 200,
      `${method} ${where(url)} answered HTTP ${res.status} (${redact(html.slice(0, 300))}); trail: ${trail.join(' → ')}`,
    );
    const form = pickForm(html, url, user ?? DEV_USER);
    if (form && user === null) return { url, trail, loginPage: true };
    check(
      form,
      `${where(url)} is a page (titled ${JSON.stringify(titleOf(html))}) with no form to pick ${JSON.stringify(user)}; ` +
        `trail: ${trail.join(' → ')}`,
    );
    url = form.action;
    method = form.method;
    body = form.method === 'POST' ? form.fields.toString() : undefined;
    if (form.method === 'GET') {
      const u = new URL(url);
      for (const [k, v] of form.fields) u.searchParams.append(k, v);
      url = u.href;
    }
  }
  throw new StepFailure(`more than ${MAX_HOPS} hops without reaching ${stopAt}: ${trail.join(' → ')}`);
}

// ---- JWT helpers (the library validates ID tokens; access tokens are checked here) ----

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

async function verifyJwt(jwt, jwksUri) {
  const parts = jwt.split('.');
  check(parts.length === 3, 'the access token is not a compact JWS (three dot-separated parts)');
  const header = b64json(parts[0]);
  check(header.alg === 'RS256', `the access token is signed with ${header.alg}, not RS256`);
  const res = await fetch(jwksUri);
  check(res.ok, `jwks_uri answered HTTP ${res.status}`);
  const { keys } = await res.json();
  const jwk = keys.find((k) => k.kid === header.kid) || (keys.length === 1 && !header.kid ? keys[0] : null);
  check(jwk, `no key in jwks_uri has the access token's kid ${JSON.stringify(header.kid)}`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const valid = crypto.verify(
    'RSA-SHA256',
    Buffer.from(`${parts[0]}.${parts[1]}`),
    key,
    Buffer.from(parts[2], 'base64url'),
  );
  check(valid, 'the access token signature does not verify with the key from jwks_uri');
  return b64json(parts[1]);
}

// ---- CORS, as a single-page app's browser sees it ----

/** A browser app on the redirect_uri's origin reads these; any other origin must not. */
async function checkCors(meta) {
  const app = new URL(REDIRECT_URI).origin;
  const stranger = 'https://stranger.example';
  const form = (fields) => ({
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  const readable = async (what, url, init, origin) => {
    const res = await fetch(url, { ...init, headers: { ...(init?.headers || {}), Origin: origin } });
    await res.arrayBuffer();
    const acao = res.headers.get('access-control-allow-origin');
    const credentials = res.headers.get('access-control-allow-credentials');
    return { res, acao, credentials, what };
  };
  const mustAllow = ({ res, acao, credentials, what }) => {
    check(acao === app, `${what} from ${app} (HTTP ${res.status}): Access-Control-Allow-Origin is ${JSON.stringify(acao)}, not ${app}`);
    check(credentials !== 'true', `${what}: Access-Control-Allow-Credentials is true (the OpenID endpoints take tokens, never cookies)`);
  };
  const mustRefuse = ({ res, acao, what }) => {
    check(!acao, `${what} from ${stranger}, an unregistered origin (HTTP ${res.status}): Access-Control-Allow-Origin is ${JSON.stringify(acao)}`);
  };
  const discovery = `${ISSUER}/.well-known/openid-configuration`;
  mustAllow(await readable('GET discovery', discovery, {}, app));
  mustRefuse(await readable('GET discovery', discovery, {}, stranger));
  mustAllow(await readable('GET jwks_uri', meta.jwks_uri, {}, app));
  // An error answer must be readable too, or a browser app sees a network error instead of it.
  const tokenError = await readable(
    'POST token_endpoint with an unknown refresh token',
    meta.token_endpoint,
    form({ grant_type: 'refresh_token', refresh_token: 'not-a-refresh-token', client_id: CLIENT_ID }),
    app,
  );
  check(tokenError.res.status === 400, `a refresh with an unknown token answered HTTP ${tokenError.res.status}, not 400`);
  mustAllow(tokenError);
  mustRefuse(
    await readable(
      'POST token_endpoint',
      meta.token_endpoint,
      form({ grant_type: 'refresh_token', refresh_token: 'not-a-refresh-token', client_id: CLIENT_ID }),
      stranger,
    ),
  );
  mustAllow(
    await readable(
      'POST revocation_endpoint with an unknown token',
      meta.revocation_endpoint,
      form({ token: 'not-a-token', token_type_hint: 'refresh_token', client_id: CLIENT_ID }),
      app,
    ),
  );
  // userinfo takes an Authorization header: the browser asks first.
  const preflight = await readable(
    'OPTIONS userinfo_endpoint (preflight)',
    meta.userinfo_endpoint,
    {
      method: 'OPTIONS',
      headers: { 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
    },
    app,
  );
  check(preflight.res.status >= 200 && preflight.res.status < 300, `the userinfo preflight answered HTTP ${preflight.res.status}`);
  mustAllow(preflight);
  const allowHeaders = (preflight.res.headers.get('access-control-allow-headers') || '').toLowerCase();
  check(
    allowHeaders.split(',').map((h) => h.trim()).includes('authorization'),
    `the userinfo preflight allows headers ${JSON.stringify(allowHeaders)}: it must name authorization (a * does not cover it)`,
  );
  const allowMethods = (preflight.res.headers.get('access-control-allow-methods') || '').toUpperCase();
  check(allowMethods.includes('GET') || allowMethods === '*', `the userinfo preflight allows methods ${JSON.stringify(allowMethods)}`);
  mustRefuse(
    await readable(
      'OPTIONS userinfo_endpoint (preflight)',
      meta.userinfo_endpoint,
      {
        method: 'OPTIONS',
        headers: { 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
      },
      stranger,
    ),
  );
}

// ---- the scenario ----

async function main() {
  check(ISSUER, 'set BROKER_URL to the broker base URL, e.g. http://127.0.0.1:8080');
  check(CLIENT_ID, 'set CLIENT_ID to a public client registered in [clients.*]');
  check(REDIRECT_URI && POST_LOGOUT_REDIRECT_URI, 'set REDIRECT_URI and POST_LOGOUT_REDIRECT_URI (registered for CLIENT_ID)');

  current = 'discovery';
  const config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
  const meta = config.serverMetadata();
  check(meta.issuer === ISSUER, `issuer is ${JSON.stringify(meta.issuer)}, not ${ISSUER}`);
  for (const field of [
    'authorization_endpoint',
    'token_endpoint',
    'userinfo_endpoint',
    'end_session_endpoint',
    'revocation_endpoint',
    'jwks_uri',
  ]) {
    check(typeof meta[field] === 'string' && meta[field].startsWith(`${ISSUER}/`), `${field} is ${JSON.stringify(meta[field])}`);
  }
  const has = (field, value) => Array.isArray(meta[field]) && meta[field].includes(value);
  check(has('response_types_supported', 'code'), `response_types_supported is ${JSON.stringify(meta.response_types_supported)}`);
  check(has('code_challenge_methods_supported', 'S256'), `code_challenge_methods_supported is ${JSON.stringify(meta.code_challenge_methods_supported)}`);
  check(
    has('grant_types_supported', 'authorization_code') && has('grant_types_supported', 'refresh_token'),
    `grant_types_supported is ${JSON.stringify(meta.grant_types_supported)}`,
  );
  check(has('id_token_signing_alg_values_supported', 'RS256'), `id_token_signing_alg_values_supported is ${JSON.stringify(meta.id_token_signing_alg_values_supported)}`);
  check(has('subject_types_supported', 'public'), `subject_types_supported is ${JSON.stringify(meta.subject_types_supported)}`);
  check(
    has('token_endpoint_auth_methods_supported', 'none'),
    `token_endpoint_auth_methods_supported is ${JSON.stringify(meta.token_endpoint_auth_methods_supported)}: ` +
      'it must list "none" for public clients',
  );
  for (const s of SCOPE.split(' ')) check(has('scopes_supported', s), `scopes_supported lacks ${s}: ${JSON.stringify(meta.scopes_supported)}`);
  check(meta.authorization_response_iss_parameter_supported === true, 'authorization_response_iss_parameter_supported is not true');
  ok(`issuer ${ISSUER}; every endpoint the flow needs is advertised`);

  current = 'cors';
  await checkCors(meta);
  ok(`discovery, JWKS, token (errors too), userinfo (preflight) and revoke answer CORS for ${new URL(REDIRECT_URI).origin} only, without credentials`);

  current = 'authorize';
  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authorizeUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const login = await navigate(authorizeUrl.href, REDIRECT_URI);
  const callback = new URL(login.url);
  check(withoutQuery(callback.href) === REDIRECT_URI, `landed on ${where(callback.href)}, not the registered ${REDIRECT_URI}`);
  const error = callback.searchParams.get('error');
  check(!error, `the authorization answered error=${error} (${callback.searchParams.get('error_description')})`);
  check(callback.searchParams.get('code'), 'the redirect to redirect_uri carries no code');
  check(callback.searchParams.get('state') === state, 'the redirect to redirect_uri does not carry the state that was sent');
  check(callback.searchParams.get('iss') === ISSUER, `the redirect's iss is ${JSON.stringify(callback.searchParams.get('iss'))}, not ${ISSUER}`);
  ok(`${login.trail.length} hops (${login.trail.map((t) => new URL(t.split(' ')[1]).pathname).join(' → ')}); code, state and iss are back`);

  current = 'code exchange';
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  check(tokens.access_token, 'no access_token');
  check(tokens.id_token, 'no id_token');
  check(tokens.refresh_token, 'no refresh_token although offline_access was asked for');
  check(String(tokens.token_type).toLowerCase() === 'bearer', `token_type is ${JSON.stringify(tokens.token_type)}`);
  check(Number.isInteger(tokens.expires_in) && tokens.expires_in > 0, `expires_in is ${JSON.stringify(tokens.expires_in)}`);
  const granted = String(tokens.scope || '').split(' ');
  check(granted.includes('openid') && granted.includes('offline_access'), `scope is ${JSON.stringify(tokens.scope)}`);
  const claims = tokens.claims();
  check(claims.sub, 'the ID token has no sub');
  check(claims.aud === CLIENT_ID || (Array.isArray(claims.aud) && claims.aud.includes(CLIENT_ID)), `the ID token's aud is ${JSON.stringify(claims.aud)}`);
  check(claims.azp === undefined || claims.azp === CLIENT_ID, `the ID token's azp is ${JSON.stringify(claims.azp)}`);
  check(claims.nonce === nonce, 'the ID token does not carry the nonce that was sent');
  check(typeof claims.sid === 'string' && claims.sid, 'the ID token has no sid');
  check(Number.isInteger(claims.auth_time), `the ID token's auth_time is ${JSON.stringify(claims.auth_time)}`);
  check(typeof claims.at_hash === 'string', 'the ID token has no at_hash');
  const atHash = crypto.createHash('sha256').update(tokens.access_token).digest().subarray(0, 16).toString('base64url');
  check(claims.at_hash === atHash, "the ID token's at_hash does not match the access token");
  check(claims.email === DEV_EMAIL, `the ID token's email is ${JSON.stringify(claims.email)}, not ${DEV_EMAIL}`);
  check(claims.email_verified === true, `the ID token's email_verified is ${JSON.stringify(claims.email_verified)}`);
  check(typeof claims.name === 'string' && claims.name, 'the ID token has no name although profile was asked for');
  const access = await verifyJwt(tokens.access_token, meta.jwks_uri);
  check(access.iss === ISSUER, `the access token's iss is ${JSON.stringify(access.iss)}`);
  check(access.sub === claims.sub, "the access token's sub is not the ID token's");
  check(access.sid === claims.sid, "the access token's sid is not the ID token's");
  check(access.client_id === CLIENT_ID, `the access token's client_id is ${JSON.stringify(access.client_id)}`);
  check(access.aud === CLIENT_ID || (Array.isArray(access.aud) && access.aud.includes(CLIENT_ID)), `the access token's aud is ${JSON.stringify(access.aud)} (default audience: the client_id)`);
  check(String(access.scope || '').split(' ').includes('openid'), `the access token's scope is ${JSON.stringify(access.scope)}`);
  ok(`ID token validated by openid-client (sub, aud, nonce, sid, auth_time, at_hash, email, name); access token is an RS256 JWT for ${CLIENT_ID}`);

  current = 'userinfo';
  const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  check(info.sub === claims.sub, 'userinfo sub differs from the ID token sub');
  check(info.email === DEV_EMAIL, `userinfo email is ${JSON.stringify(info.email)}, not ${DEV_EMAIL}`);
  check(info.email_verified === true, `userinfo email_verified is ${JSON.stringify(info.email_verified)}`);
  check(info.name === claims.name, `userinfo name is ${JSON.stringify(info.name)}, the ID token says ${JSON.stringify(claims.name)}`);
  ok('userinfo answers sub, email, email_verified and name for the access token');

  current = 'refresh';
  const first = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(first.access_token && first.access_token !== tokens.access_token, 'the refresh did not return a new access token');
  check(first.refresh_token, 'the refresh returned no refresh token: rotation must issue a new one');
  check(first.refresh_token !== tokens.refresh_token, 'the refresh returned the same refresh token: it must rotate');
  if (first.id_token) {
    const c = first.claims();
    check(c.sub === claims.sub, "the refreshed ID token's sub differs");
    check(c.sid === claims.sid, "the refreshed ID token's sid differs");
    check(c.auth_time === claims.auth_time, `the refreshed ID token's auth_time ${c.auth_time} differs from the original ${claims.auth_time}`);
    check(c.azp === claims.azp, "the refreshed ID token's azp differs from the original's");
  }
  const second = await client.refreshTokenGrant(config, first.refresh_token);
  check(second.refresh_token && second.refresh_token !== first.refresh_token, 'the second refresh did not rotate the refresh token');
  check(second.access_token && second.access_token !== first.access_token, 'the second refresh did not return a new access token');
  const renewedInfo = await client.fetchUserInfo(config, second.access_token, claims.sub);
  check(renewedInfo.email === DEV_EMAIL, 'userinfo with the refreshed access token does not answer the same user');
  notes.refreshed_id_token = Boolean(first.id_token);
  ok(`two refreshes, each with a new refresh token and access token${first.id_token ? ' (ID token kept sub, sid, auth_time, azp)' : ''}`);

  // Two tabs of one app share the stored refresh token and renew at the same moment: both must
  // succeed, and whichever answer is stored last must go on working.
  current = 'concurrent refresh';
  const [tabA, tabB] = await Promise.all([
    client.refreshTokenGrant(config, second.refresh_token),
    client.refreshTokenGrant(config, second.refresh_token),
  ]).catch((e) => {
    throw new StepFailure(`two refreshes at once with the same refresh token: one failed (${describe(e)})`);
  });
  check(tabA.refresh_token && tabB.refresh_token, 'a concurrent refresh returned no refresh token');
  check(tabA.refresh_token !== second.refresh_token, 'the concurrent refresh did not rotate the refresh token');
  notes.concurrent_refresh_same_token = tabA.refresh_token === tabB.refresh_token;
  const latest = await client.refreshTokenGrant(config, tabB.refresh_token).catch((e) => {
    throw new StepFailure(`the refresh token from the second of two concurrent refreshes is refused (${describe(e)})`);
  });
  check(latest.refresh_token && latest.refresh_token !== tabB.refresh_token, 'the refresh after the concurrent ones did not rotate');
  ok(
    `two refreshes at once with one token both succeeded (${notes.concurrent_refresh_same_token ? 'with the same new refresh token' : 'with different new refresh tokens'}); ` +
      'the one stored last refreshes again',
  );

  current = 'revocation';
  await client.tokenRevocation(config, latest.refresh_token, { token_type_hint: 'refresh_token' });
  let refused = null;
  try {
    await client.refreshTokenGrant(config, latest.refresh_token);
  } catch (e) {
    refused = e;
  }
  check(refused, 'the revoked refresh token still refreshes');
  check(oauthError(refused) === 'invalid_grant', `a refresh with the revoked token failed with ${JSON.stringify(oauthError(refused))} (${describe(refused)}), not invalid_grant`);
  ok('RFC 7009 revocation answered 200; the revoked refresh token is then refused with invalid_grant');

  current = 'code reuse';
  let reused = null;
  try {
    await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: codeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
  } catch (e) {
    reused = e;
  }
  check(reused, 'the authorization code was accepted a second time');
  check(oauthError(reused) === 'invalid_grant', `a second exchange of the code failed with ${JSON.stringify(oauthError(reused))} (${describe(reused)}), not invalid_grant`);
  ok('a second exchange of the same code is refused with invalid_grant');

  current = 'logout';
  const logoutState = client.randomState();
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI,
    state: logoutState,
  });
  const out = await navigate(endSession.href, POST_LOGOUT_REDIRECT_URI);
  const landed = new URL(out.url);
  check(withoutQuery(landed.href) === POST_LOGOUT_REDIRECT_URI, `logout landed on ${where(landed.href)}, not ${POST_LOGOUT_REDIRECT_URI}`);
  check(landed.searchParams.get('state') === logoutState, 'logout landed on post_logout_redirect_uri without the state that was sent');
  ok(`${out.trail.length} hops (${out.trail.map((t) => new URL(t.split(' ')[1]).pathname).join(' → ')}) to post_logout_redirect_uri with state`);

  current = 'after logout';
  const silentState = client.randomState();
  const silent = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state: silentState,
    prompt: 'none',
  });
  const none = await navigate(silent.href, REDIRECT_URI, { user: null });
  check(!none.loginPage, `prompt=none showed a login page (${where(none.url)}) instead of answering login_required`);
  const noneUrl = new URL(none.url);
  check(
    noneUrl.searchParams.get('error') === 'login_required',
    `prompt=none after logout answered ${noneUrl.searchParams.get('error') ? `error=${noneUrl.searchParams.get('error')}` : 'a code'}, not error=login_required: the broker session is still alive`,
  );
  check(noneUrl.searchParams.get('state') === silentState, 'the login_required error does not carry the state');
  check(noneUrl.searchParams.get('iss') === ISSUER, `the login_required error's iss is ${JSON.stringify(noneUrl.searchParams.get('iss'))}`);
  const again = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state: client.randomState(),
  });
  const relogin = await navigate(again.href, REDIRECT_URI, { user: null });
  check(relogin.loginPage, 'an authorization after logout went straight back with a code: the broker session is still alive');
  ok('the broker session is gone: prompt=none answers login_required (with state and iss), a new authorization shows the pick page');

  return { sub: claims.sub };
}

main()
  .then((facts) => {
    console.log(JSON.stringify({ ok: true, library: 'openid-client', steps, ...notes, ...facts }));
  })
  .catch((e) => {
    const message = redact(describe(e));
    console.error(`FAIL ${current}: ${message}`);
    if (!(e instanceof StepFailure) && e?.stack) console.error(redact(e.stack));
    console.log(JSON.stringify({ ok: false, library: 'openid-client', step: current, error: message, steps }));
    process.exit(1);
  });
