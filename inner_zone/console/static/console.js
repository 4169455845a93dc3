/*
 * The console's only script, served from the console itself (CSP script-src 'self').
 * - The dashboard refreshes itself: it fetches the page again with the X-Console-Refresh
 *   header (so the refresh does not count as activity and an idle session still times
 *   out) and swaps the #dashboard element; a page that went to the login form reloads.
 * - The quarantine list's "select all" box.
 * - A destructive button asks for confirmation, in the words of the page's JSON block.
 * Nothing is built with innerHTML from data: the new dashboard is the server's own
 * escaped HTML, parsed by DOMParser and moved in as nodes.
 */
(function () {
  "use strict";

  var board = document.getElementById("dashboard");
  if (board) {
    var seconds = parseInt(board.getAttribute("data-refresh"), 10) || 30;
    var refresh = function () {
      fetch(window.location.href, {headers: {"X-Console-Refresh": "1"}, credentials: "same-origin",
                                   cache: "no-store"})
        .then(function (response) {
          if (!response.ok || response.url.indexOf("/login") !== -1) {
            window.location.reload();
            return null;
          }
          return response.text();
        })
        .then(function (text) {
          if (!text) { return; }
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.getElementById("dashboard");
          var current = document.getElementById("dashboard");
          if (fresh && current) {
            current.replaceWith(document.importNode(fresh, true));
          }
        })
        .catch(function () { /* the server is restarting: try again next time */ });
    };
    window.setInterval(refresh, seconds * 1000);
  }

  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      var boxes = document.querySelectorAll("input.pick");
      for (var i = 0; i < boxes.length; i++) { boxes[i].checked = all.checked; }
    });
  }

  // The page's texts for the script (base.html, id "tgw-texts"), in the page's language.
  var block = document.getElementById("tgw-texts");
  var texts = block ? JSON.parse(block.textContent) : {};

  // A destructive button asks once more; the server still requires the note and the role.
  var dangers = document.querySelectorAll("button.danger");
  for (var j = 0; j < dangers.length; j++) {
    dangers[j].addEventListener("click", function (event) {
      if (!window.confirm(texts.confirm || "Are you sure? This is recorded in the audit log.")) {
        event.preventDefault();
      }
    });
  }
}());
