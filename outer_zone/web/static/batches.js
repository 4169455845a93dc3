/*
 * The batch pages' script (CSP script-src 'self'; text set with textContent, never innerHTML).
 * Rows of an entry form are added and removed here without a round trip; every such button
 * is also a plain submit button, so the form works without script (the server does the same).
 */
(function () {
  "use strict";

  var ROW_MARK = "__i__";
  var RENAMED = ["name", "id", "for", "value", "data-row", "data-field"];

  function renumber(root, index) {
    var nodes = root.querySelectorAll("*");
    for (var n = 0; n < nodes.length; n++) {
      for (var a = 0; a < RENAMED.length; a++) {
        var value = nodes[n].getAttribute(RENAMED[a]);
        if (value !== null && value.indexOf(ROW_MARK) !== -1) {
          nodes[n].setAttribute(RENAMED[a], value.split(ROW_MARK).join(String(index)));
        }
      }
    }
  }

  function addRow(button) {
    var group = button.closest("[data-rows]");
    var template = group.querySelector("template[data-row-template]");
    var body = group.querySelector("tbody");
    // Row numbers only need to be unique: the server renumbers the rows in order.
    var index = Number(group.getAttribute("data-next") || body.rows.length);
    group.setAttribute("data-next", String(index + 1));
    var fragment = template.content.cloneNode(true);
    renumber(fragment, index);
    var row = fragment.querySelector("tr");
    body.appendChild(fragment);
    var first = row.querySelector("input, select");
    if (first) { first.focus(); }
  }

  function removeRow(button) {
    var row = button.closest("tr");
    var body = row.parentNode;
    if (body.rows.length > 1) {
      body.removeChild(row);
      return;
    }
    // The last row stays, emptied: an array needs at least its one row to type into.
    var inputs = row.querySelectorAll("input, select");
    for (var i = 0; i < inputs.length; i++) { inputs[i].value = ""; }
  }

  // --- signing with the officer's card through the local signing service (docs/agency-workflow.md)
  var SIGNER_KEY = "tgw.signerUrl";
  var SIGNER_DEFAULT = "http://127.0.0.1:61200";
  // The page's CSP lets it connect to loopback addresses only; anything else is refused here first.
  var LOOPBACK = /^http:\/\/(127\.0\.0\.1|localhost):[0-9]{1,5}$/;
  var POLL_MS = 1000;
  // The page's texts in its language (templates/batches/_actions.html); {name} marks a value.
  var textBlock = document.getElementById("tgw-texts");
  var TEXTS = textBlock ? JSON.parse(textBlock.textContent) : {};
  var PROBLEMS = {PIN_INCORRECT: TEXTS.PIN_INCORRECT, CARD_ERROR: TEXTS.CARD_ERROR};

  function say(key, values) {
    var text = String(TEXTS[key] || key);
    Object.keys(values || {}).forEach(function (name) { text = text.split("{" + name + "}").join(String(values[name])); });
    return text;
  }
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  function signerInput() { return document.getElementById("signer-url"); }

  function signerUrl() {
    var input = signerInput();
    var url = (input ? input.value : "").trim().replace(/\/+$/, "");
    return LOOPBACK.test(url) ? url : null;
  }

  function setupSigner() {
    var input = signerInput();
    if (!input) { return; }
    var saved = null;
    try { saved = window.localStorage.getItem(SIGNER_KEY); } catch (e) { saved = null; }
    input.value = saved || SIGNER_DEFAULT;
    input.addEventListener("change", function () {
      if (signerUrl()) {
        try { window.localStorage.setItem(SIGNER_KEY, signerUrl()); } catch (e) { /* private mode: not kept */ }
      }
    });
  }

  function progress(state, text) {
    var shown = document.getElementById("sign-progress");
    shown.setAttribute("data-state", state);
    shown.textContent = text;
  }

  function toBase64(bytes) {
    var parts = [];
    for (var i = 0; i < bytes.length; i += 0x8000) {
      parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)));
    }
    return window.btoa(parts.join(""));
  }

  function fromBase64(text) {
    var raw = window.atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  function refusalText(status, body) {
    if (body && body.reason) {
      var message = body.message || "";
      // reason_title: the reason's title in the request's language, when the portal sends it.
      return body.reason_title ? say("refusal", {title: body.reason_title, message: message, code: body.reason})
                               : message + " [" + body.reason + "]";
    }
    return say("portal_http", {status: status});
  }

  function Stop(state, text) { this.state = state; this.text = text; }

  async function portalJson(response) {
    try { return await response.json(); } catch (e) { return null; }
  }

  async function fetchToSign(box) {
    var response = await fetch(box.getAttribute("data-source"),
                               {credentials: "same-origin", headers: {"Accept": "application/json"}});
    if (!response.ok) { throw new Stop("refused", refusalText(response.status, await portalJson(response))); }
    return new Uint8Array(await response.arrayBuffer());
  }

  async function callSigner(signer, path, init) {
    try {
      var response = await fetch(signer + path, init);
      return {status: response.status, body: await portalJson(response)};
    } catch (e) {
      throw new Stop("failed", say("unreachable", {url: signer, error: e}));
    }
  }

  async function askSigner(signer, box, bytes) {
    var request = {role: box.getAttribute("data-role")};
    request[box.getAttribute("data-mode") === "release" ? "sealed" : "payload"] = toBase64(bytes);
    var asked = await callSigner(signer, "/v1/sign", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(request)
    });
    if (asked.status !== 202 || !asked.body || !asked.body.request_id) {
      var code = (asked.body && asked.body.error) || ("HTTP " + asked.status);
      throw new Stop("refused", say("signer_refused", {code: code}));
    }
    return asked.body;
  }

  function showConfirmPage(signer, url) {
    // Only the service's own page is opened: the officer types the PIN there, never here.
    if (typeof url !== "string" || url.indexOf(signer + "/") !== 0) {
      throw new Stop("refused", say("confirm_elsewhere"));
    }
    var link = document.getElementById("confirm-link");
    link.href = url;
    link.hidden = false;
    window.open(url, "_blank", "noopener");
  }

  async function waitForOfficer(signer, requestId) {
    for (;;) {
      var answer = await callSigner(signer, "/v1/requests/" + encodeURIComponent(requestId), {});
      var body = answer.body || {};
      if (answer.status !== 200) { throw new Stop("failed", say("request_gone")); }
      if (body.state === "signed") { return body.result; }
      if (body.state === "declined") { throw new Stop("declined", say("declined")); }
      if (body.state === "expired") { throw new Stop("expired", say("expired")); }
      progress("pending", body.last_error ? (PROBLEMS[body.last_error] || body.last_error) + " [" + body.last_error + "]"
                                          : say("check_and_pin"));
      await new Promise(function (done) { setTimeout(done, POLL_MS); });
    }
  }

  async function handBack(box, der) {
    var response = await fetch(box.getAttribute("data-target"), {
      method: "POST", credentials: "same-origin", body: der,
      headers: {"Content-Type": "application/pkcs7-mime", "Accept": "application/json", "X-CSRFToken": csrf}
    });
    var body = await portalJson(response);
    if (!response.ok) { throw new Stop("refused", refusalText(response.status, body)); }
    return body;
  }

  function released(answer) {
    var box = document.getElementById("release-result");
    var link = document.getElementById("release-tracking");
    link.textContent = answer.tracking_id;
    link.href = answer.status_url;
    box.hidden = false;
    // Nothing is left to do on this batch: its step controls go (a reload shows it released).
    var done = document.querySelectorAll("#actions form, #sign-box, #edit-link, #edit-note, .signer-settings");
    for (var i = 0; i < done.length; i++) { done[i].hidden = true; }
    progress("released", say("released"));
  }

  async function sign(button) {
    var box = button.closest("#sign-box");
    var signer = signerUrl();
    if (!signer) {
      progress("failed", say("bad_address"));
      return;
    }
    button.disabled = true;
    try {
      progress("fetching", say("fetching"));
      var bytes = await fetchToSign(box);
      progress("asking", say("asking"));
      var asked = await askSigner(signer, box, bytes);
      showConfirmPage(signer, asked.confirm_url);
      var result = await waitForOfficer(signer, asked.request_id);
      progress("sending", say("sending"));
      var answer = await handBack(box, fromBase64(result));
      if (box.getAttribute("data-mode") === "release") {
        released(answer);
      } else {
        progress("signed", say("signed"));
        window.location.reload();
      }
    } catch (problem) {
      if (!(problem instanceof Stop)) { problem = new Stop("failed", String(problem)); }
      progress(problem.state, problem.text);
      button.disabled = false;
    }
  }

  setupSigner();

  document.addEventListener("click", function (event) {
    var target = event.target.closest("button");
    if (!target) { return; }
    if (target.hasAttribute("data-add-row")) {
      event.preventDefault();
      addRow(target);
    } else if (target.hasAttribute("data-remove-row")) {
      event.preventDefault();
      removeRow(target);
    } else if (target.hasAttribute("data-start-signing")) {
      event.preventDefault();
      sign(target);
    } else if (target.hasAttribute("data-print")) {
      event.preventDefault();
      window.print();
    } else if (target.hasAttribute("data-confirm") && !window.confirm(target.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
}());
