// strangler migration dashboard: polls the data endpoint and swaps in the sections
// that changed (server-rendered HTML, escaped by the proxy). No dependencies.
(function () {
  "use strict";
  var body = document.body;
  var source = body.getAttribute("data-source");
  var interval = parseInt(body.getAttribute("data-interval"), 10) || 2000;
  var live = document.getElementById("live");
  var updated = document.getElementById("updated");
  var hashes = {};

  function setState(state, text) {
    live.className = "live " + state;
    live.textContent = text;
  }

  function stamp(seconds) {
    var date = new Date(seconds * 1000);
    return "updated " + date.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function openDetails(element) {
    var open = {};
    element.querySelectorAll("details[id]").forEach(function (d) {
      open[d.id] = d.open;
    });
    return open;
  }

  function swap(name, html, hash) {
    var element = document.querySelector('[data-section="' + name + '"]');
    if (!element || hashes[name] === hash) {
      return;
    }
    var open = openDetails(element);
    element.innerHTML = html;
    element.querySelectorAll("details[id]").forEach(function (d) {
      if (Object.prototype.hasOwnProperty.call(open, d.id)) {
        d.open = open[d.id];
      }
    });
    hashes[name] = hash;
  }

  function apply(payload) {
    Object.keys(payload.html).forEach(function (name) {
      swap(name, payload.html[name], payload.hashes[name]);
    });
    updated.textContent = stamp(payload.data.generated_at);
    updated.setAttribute("data-at", String(payload.data.generated_at));
    body.setAttribute("data-polls", String((parseInt(body.getAttribute("data-polls"), 10) || 0) + 1));
  }

  function poll() {
    fetch(source, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          window.location.reload(); // signed out elsewhere: show the login form
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (payload) {
        if (payload) {
          apply(payload);
          setState("ok", "live");
        }
      })
      .catch(function (error) {
        setState("stale", "stale: " + error.message);
      })
      .then(function () {
        window.setTimeout(poll, interval);
      });
  }

  document.querySelectorAll("[data-section]").forEach(function (element) {
    hashes[element.getAttribute("data-section")] = null;
  });
  window.setTimeout(poll, interval);
})();
