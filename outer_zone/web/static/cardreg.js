/*
 * Card registration: the /certificates page reads the officer's certificate from their card through
 * the local signing service on their own PC (GET /v1/certificate, no PIN) and puts its PEM in
 * the registration form; the officer then sends the form as with a file. The service's address
 * is kept in this browser (localStorage "tgw.signerUrl"). The CSP of this page allows
 * connect-src http://127.0.0.1:* for it, and nothing else off the portal. Messages are built with
 * textContent only, never innerHTML: the certificate's names come from outside the portal.
 * The texts, in the page's language, are the page's JSON block #tgw-texts ({name} marks a value).
 */
(function () {
  "use strict";

  var KEY = "tgw.signerUrl";
  var DEFAULT_URL = "http://127.0.0.1:61200";
  var TAIPEI_OFFSET_MS = 8 * 3600 * 1000;  // Taiwan keeps no daylight saving time

  var part = document.getElementById("card-part");
  if (!part) { return; }
  var urlField = document.getElementById("signer-url");
  var readButton = document.getElementById("card-read");
  var statusLine = document.getElementById("card-status");
  var shown = document.getElementById("card-cert");
  var pemField = document.getElementById("certificate_pem");
  var fileInput = document.getElementById("certificate");
  var role = document.getElementById("role");
  var kind = document.getElementById("kind");
  var replaces = document.getElementById("replaces");
  var textBlock = document.getElementById("tgw-texts");
  var TEXTS = textBlock ? JSON.parse(textBlock.textContent) : {};

  function text(key, values) {
    var out = String(TEXTS[key] || key);
    Object.keys(values || {}).forEach(function (name) { out = out.split("{" + name + "}").join(String(values[name])); });
    return out;
  }

  function say(state, text) {
    statusLine.textContent = text;
    part.setAttribute("data-state", state);
  }

  // The service answers 127.0.0.1:PORT only (it refuses any other Host), so nothing else is tried.
  function signerUrl(text) {
    var url = String(text || "").trim().replace(/\/+$/, "");
    return /^http:\/\/127\.0\.0\.1:[0-9]{1,5}$/.test(url) ? url : null;
  }

  function storedUrl() {
    try {
      return signerUrl(window.localStorage.getItem(KEY)) || DEFAULT_URL;
    } catch (error) {
      return DEFAULT_URL;  // storage disabled by the browser's settings
    }
  }

  function saveUrl() {
    var url = signerUrl(urlField.value);
    if (!url) {
      say("bad-url", text("bad_url"));
      return null;
    }
    urlField.value = url;
    try { window.localStorage.setItem(KEY, url); } catch (error) { /* kept for this page only */ }
    return url;
  }

  function taipeiTime(iso) {
    var when = Date.parse(iso);
    if (isNaN(when)) { return String(iso); }
    return new Date(when + TAIPEI_OFFSET_MS).toISOString().slice(0, 19).replace("T", " ");
  }

  function forget() {
    pemField.value = "";
    shown.hidden = true;
  }

  function show(cert) {
    document.getElementById("card-subject").textContent = cert.subject;
    document.getElementById("card-issuer").textContent = cert.issuer;
    document.getElementById("card-not-after").textContent = taipeiTime(cert.not_after);
    document.getElementById("card-fingerprint").textContent = cert.sha256;
    pemField.value = cert.pem;
    fileInput.value = "";  // one certificate per request: the card's replaces a chosen file
    shown.hidden = false;
    say("read", text("read", {token: cert.token}));
  }

  function refused(status, body) {
    var code = (body && body.error) || ("HTTP " + status);
    var message = (body && body.message) || "";
    say("refused", text("refused", {code: code}) + (message ? " — " + message : ""));
  }

  function read() {
    var url = saveUrl();
    if (!url) { return; }
    forget();
    readButton.disabled = true;
    say("reading", text("reading"));
    fetch(url + "/v1/certificate", {credentials: "omit", cache: "no-store"})
      .then(function (response) {
        return response.json().then(function (body) {
          if (response.ok && body && body.pem) { show(body); } else { refused(response.status, body); }
        }, function () { refused(response.status, null); });
      }, function () {
        say("unreachable", text("unreachable", {url: url}));
      })
      .then(function () { readButton.disabled = false; });
  }

  // The choice of certificate to replace lists only the chosen role's registrations.
  function matchReplaces() {
    var options = replaces.options;
    for (var i = 1; i < options.length; i++) {
      options[i].hidden = options[i].getAttribute("data-role") !== role.value;
      if (options[i].hidden && options[i].selected) { replaces.selectedIndex = 0; }
    }
    replaces.disabled = kind.value !== "replace";
  }

  urlField.value = storedUrl();
  urlField.addEventListener("change", function () {
    if (saveUrl()) { say("saved", text("saved")); }
  });
  readButton.addEventListener("click", read);
  fileInput.addEventListener("change", function () {
    if (fileInput.files.length) { forget(); say("file", ""); }
  });
  role.addEventListener("change", matchReplaces);
  kind.addEventListener("change", matchReplaces);
  matchReplaces();
  part.hidden = false;
}());
