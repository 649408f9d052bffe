// Tessera's passkey buttons. Each form marked data-passkey="sign-in",
// "second-factor" or "register" is shown only where WebAuthn exists; on
// submit it asks the server for the ceremony's options, lets the browser
// talk to the authenticator, and posts the answer with the form.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function b64urlToBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }
  function bytesToB64url(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = b64urlToBytes(o.challenge);
    o.user = Object.assign({}, o.user, { id: b64urlToBytes(o.user.id) });
    o.excludeCredentials = (o.excludeCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: b64urlToBytes(c.id) });
    });
    return o;
  }
  function requestOptions(json) {
    var o = Object.assign({}, json);
    o.challenge = b64urlToBytes(o.challenge);
    o.allowCredentials = (o.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: b64urlToBytes(c.id) });
    });
    return o;
  }
  function encode(credential) {
    var r = credential.response, response = {
      clientDataJSON: bytesToB64url(r.clientDataJSON)
    };
    if (r.attestationObject) {
      response.attestationObject = bytesToB64url(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = bytesToB64url(r.authenticatorData);
      response.signature = bytesToB64url(r.signature);
      response.userHandle = r.userHandle ? bytesToB64url(r.userHandle) : null;
    }
    return JSON.stringify({
      id: credential.id,
      rawId: bytesToB64url(credential.rawId),
      type: credential.type,
      response: response,
      extensions: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {}
    });
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    var purpose = form.getAttribute("data-passkey");
    var error = form.querySelector("[data-passkey-error]");
    var button = form.querySelector("button[type=submit]");
    form.hidden = false;
    form.addEventListener("submit", function (event) {
      if (form.elements.credential.value) return; // the answer is in: send it
      event.preventDefault();
      if (error) error.hidden = true;
      button.disabled = true;
      var body = new URLSearchParams();
      body.set("csrf_token", form.elements.csrf_token.value);
      body.set("purpose", purpose);
      fetch("/passkeys/options", { method: "POST", body: body, credentials: "same-origin" })
        .then(function (reply) {
          if (!reply.ok) throw new Error("options " + reply.status);
          return reply.json();
        })
        .then(function (options) {
          form.elements.ceremony.value = options.ceremony;
          return purpose === "register"
            ? navigator.credentials.create({ publicKey: creationOptions(options.publicKey) })
            : navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
        })
        .then(function (credential) {
          form.elements.credential.value = encode(credential);
          form.submit();
        })
        .catch(function () {
          button.disabled = false;
          if (error) {
            error.textContent = "The passkey step did not finish. Try again.";
            error.hidden = false;
          }
        });
    });
  });
})();
