// panva's oidc-provider (a certified OpenID Provider) on loopback, for the interop tests.
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, and optionally POST_LOGOUT_REDIRECT_URI
// and BACKCHANNEL_LOGOUT_URI.
// Prints "READY <issuer>" once it accepts connections.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

const client = {
  client_id: process.env.CLIENT_ID,
  client_secret: process.env.CLIENT_SECRET,
  redirect_uris: [process.env.REDIRECT_URI],
  post_logout_redirect_uris: process.env.POST_LOGOUT_REDIRECT_URI ? [process.env.POST_LOGOUT_REDIRECT_URI] : [],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...(process.env.BACKCHANNEL_LOGOUT_URI
    ? { backchannel_logout_uri: process.env.BACKCHANNEL_LOGOUT_URI, backchannel_logout_session_required: true }
    : {}),
};

const provider = new Provider(issuer, {
  clients: [client],
  pkce: { required: () => true },
  cookies: { keys: ['interop-cookie-key-not-secret'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  // A refresh token with every code grant (not only with offline_access and consent), rotated on use.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  // The broker listens on loopback, which the default SSRF guard refuses for back-channel calls.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  // devInteractions accept any login; the login becomes the subject.
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, email_verified: true, name: `User ${id}`, given_name: 'User', family_name: id };
      },
    };
  },
});

// Quiet the development-only warnings; keep errors.
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('backchannel.error', (ctx, err, client) => console.error('backchannel.error', client.clientId, err.message));
provider.on('backchannel.success', (ctx, client) => console.error('backchannel.success', client.clientId));

provider.listen(port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});
