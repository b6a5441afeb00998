/* helpdesk's only script (no inline scripts, so a strict Content-Security-Policy holds).
 *
 * - Live regions: an element with data-live-url is refreshed by polling that URL, which answers
 *   the same element rendered afresh; it is swapped only when its data-version changed, and
 *   never while someone is typing in it or reading a status's meaning there. Its data-announce
 *   text is read out by screen readers.
 * - data-confirm on a submit button asks before sending the form.
 * - data-copy-target on a button copies that field's text.
 * - The top bar's menu button (shown on phones only, by the style sheet) folds the menu away
 *   and opens it again; Escape folds it and gives the button back the focus. Without this
 *   script the button stays hidden and the menu open.
 */
(function () {
  "use strict";

  var MAX_DELAY = 60000;

  // Someone is typing in it, or reading the meaning of a status they opened in it.
  function inUse(element) {
    var active = document.activeElement;
    return active && element.contains(active) && (/^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)
      || (active.tagName === "SUMMARY" && active.parentElement.open));
  }

  function announce(text) {
    var announcer = document.getElementById("live-announcer");
    if (announcer && text) { announcer.textContent = text; }
  }

  function watch(id) {
    var region = document.getElementById(id);
    var every = parseInt(region.getAttribute("data-live-interval"), 10) || 4000;
    var delay = every;

    function schedule() { window.setTimeout(tick, delay); }

    function tick() {
      region = document.getElementById(id);
      if (!region) { return; }
      if (document.hidden) { return schedule(); }
      fetch(region.getAttribute("data-live-url"), {
        credentials: "same-origin",
        headers: { "Accept": "text/html" },
        redirect: "error" // signed out: the answer would be the sign-in page
      }).then(function (response) {
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          throw new Error("stop");
        }
        if (!response.ok) { throw new Error("retry"); }
        return response.text();
      }).then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
        delay = every;
        if (fresh && fresh.getAttribute("data-version") !== region.getAttribute("data-version")
            && !inUse(region)) {
          var before = region.getAttribute("data-announce");
          region.replaceWith(document.adoptNode(fresh));
          if (fresh.getAttribute("data-announce") !== before) {
            announce(fresh.getAttribute("data-announce"));
          }
        }
        schedule();
      }).catch(function (error) {
        if (error.message === "stop") { return; }
        delay = Math.min(delay * 2, MAX_DELAY); // the server is busy or away: back off
        schedule();
      });
    }
    schedule();
  }

  function collapsibleMenu() {
    var button = document.getElementById("menu-button");
    var menu = button && document.getElementById(button.getAttribute("aria-controls"));
    if (!menu) { return; }
    function open(yes) { button.setAttribute("aria-expanded", yes ? "true" : "false"); }
    open(false);
    button.hidden = false;
    button.addEventListener("click", function () {
      open(button.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true"
          && window.getComputedStyle(button).display !== "none") {
        open(false);
        button.focus();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    collapsibleMenu();
    document.querySelectorAll("[data-live-url][id]").forEach(function (region) {
      watch(region.id);
    });
    document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
      if (!navigator.clipboard) { return; }
      button.hidden = false;
      var label = button.textContent;
      button.addEventListener("click", function () {
        var field = document.getElementById(button.getAttribute("data-copy-target"));
        navigator.clipboard.writeText(field.value || field.textContent).then(function () {
          button.textContent = "Copied";
          window.setTimeout(function () { button.textContent = label; }, 2000);
        });
      });
    });
    // Filters nobody has used yet take no phone screen before the list they filter.
    if (window.matchMedia("(max-width: 640px)").matches) {
      document.querySelectorAll("details[data-fold-on-phone]").forEach(function (details) {
        details.open = false;
      });
    }
    // A time zone not chosen yet: suggest the browser's own, when the list has it.
    document.querySelectorAll("select[data-detect]").forEach(function (select) {
      var zone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (Array.prototype.some.call(select.options, function (o) { return o.value === zone; })) {
        select.value = zone;
      }
    });
  });

  // Delegated, so buttons inside refreshed regions keep working.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
})();
