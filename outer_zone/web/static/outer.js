/*
 * The upload page's drag and drop. Loaded from the portal itself (CSP script-src 'self');
 * builds its messages with textContent only, never innerHTML. The file is posted as the
 * request body, exactly as the API takes it, with the CSRF token in a header; without
 * script the form still works as an ordinary multipart upload. Its words come from the page
 * (the JSON block #tgw-texts, in the page's language).
 */
(function () {
  "use strict";

  var form = document.getElementById("upload-form");
  if (!form) { return; }
  var input = document.getElementById("envelope");
  var zone = document.getElementById("drop-zone");
  var chosen = document.getElementById("chosen-file");
  var result = document.getElementById("upload-result");
  var progress = document.getElementById("upload-progress");
  var button = document.getElementById("upload-submit");
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var dropped = null;
  var block = document.getElementById("tgw-texts");
  var texts = block ? JSON.parse(block.textContent) : {};

  function text(key) { return texts[key] || key; }

  function describe(file) {
    chosen.textContent = file ? file.name + " (" + file.size.toLocaleString() + " " + text("bytes") + ")" : "";
  }

  function element(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) { el.className = cls; }
    if (text !== undefined) { el.textContent = text; }
    return el;
  }

  function show(status, body) {
    while (result.firstChild) { result.removeChild(result.firstChild); }
    var box;
    if (status === 202) {
      box = element("div", "result ok");
      box.setAttribute("data-state", "accepted");
      box.appendChild(element("h2", null, text("accepted")));
      var dl = element("dl");
      [[text("tracking_id"), body.tracking_id, "tracking-id"], ["SHA-256", body.sha256],
       [text("received"), body.received_at]].forEach(function (pair) {
        dl.appendChild(element("dt", null, pair[0]));
        var dd = element("dd", "mono", pair[1]);
        if (pair[2]) { dd.id = pair[2]; }
        dl.appendChild(dd);
      });
      box.appendChild(dl);
    } else {
      box = element("div", "result error");
      box.setAttribute("data-state", "refused");
      var reason = (body && body.reason) || "ERROR";
      box.setAttribute("data-reason", reason);
      var h = element("h2", null, text("refused") + " ");
      h.appendChild(element("span", "code", reason));
      box.appendChild(h);
      box.appendChild(element("p", null, (body && body.message) || ("HTTP " + status)));
    }
    result.appendChild(box);
  }

  zone.addEventListener("dragover", function (event) {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      dropped = event.dataTransfer.files[0];
      describe(dropped);
    }
  });
  input.addEventListener("change", function () {
    dropped = null;
    describe(input.files[0] || null);
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = dropped || (input.files && input.files[0]);
    if (!file) {
      show(400, {reason: "EMPTY_UPLOAD", message: text("choose_first")});
      return;
    }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { progress.value = Math.round(100 * e.loaded / e.total); }
    });
    xhr.addEventListener("load", function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (ignored) { body = null; }
      button.disabled = false;
      progress.hidden = true;
      show(xhr.status, body);
    });
    xhr.addEventListener("error", function () {
      button.disabled = false;
      progress.hidden = true;
      show(0, {reason: "NETWORK", message: text("network")});
    });
    button.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    xhr.send(file);
  });
}());
