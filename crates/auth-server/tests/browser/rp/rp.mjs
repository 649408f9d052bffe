// openid-client (v6) as a relying party against the real tessera binary.
// The browser tests (pytest + Chromium) drive it one step at a time:
//
//   node rp.mjs start  '<json>'  -> {url, code_verifier, state, nonce}
//   node rp.mjs finish '<json>'  -> what the RP learned (claims, userinfo, ...)
//
// Everything it knows about the server comes from discovery on the issuer
// URL; `allowInsecureRequests` only because the test issuer is plain http.
import * as client from "openid-client";

const [command, input] = process.argv.slice(2);
const args = JSON.parse(input);

async function configuration() {
  return client.discovery(
    new URL(args.issuer),
    args.client_id,
    {
      client_secret: args.client_secret,
      id_token_signed_response_alg: args.alg,
    },
    client.ClientSecretBasic(args.client_secret),
    { execute: [client.allowInsecureRequests] },
  );
}

function header(jwt) {
  return JSON.parse(Buffer.from(jwt.split(".")[0], "base64url").toString());
}

async function start() {
  const config = await configuration();
  const code_verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: args.redirect_uri,
    scope: "openid email profile offline_access",
    code_challenge: await client.calculatePKCECodeChallenge(code_verifier),
    code_challenge_method: "S256",
    state,
    nonce,
    max_age: String(args.max_age),
  });
  return { url: url.href, code_verifier, state, nonce };
}

async function finish() {
  const config = await configuration();
  const tokens = await client.authorizationCodeGrant(config, new URL(args.callback_url), {
    pkceCodeVerifier: args.code_verifier,
    expectedState: args.state,
    expectedNonce: args.nonce,
    maxAge: args.max_age,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  const end_session_url = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token ?? tokens.id_token,
    post_logout_redirect_uri: args.post_logout_redirect_uri,
    state: "rp-logout-state",
  });
  return {
    id_token_header: header(tokens.id_token),
    claims,
    userinfo,
    refreshed_claims: refreshed.claims() ?? null,
    refreshed_access_token: refreshed.access_token,
    access_token: tokens.access_token,
    end_session_url: end_session_url.href,
  };
}

const commands = { start, finish };
try {
  const result = await commands[command]();
  process.stdout.write(JSON.stringify(result));
} catch (error) {
  process.stderr.write(`${error.name}: ${error.message}\n${JSON.stringify(error.cause ?? {})}\n`);
  process.exit(1);
}
