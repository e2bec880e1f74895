/* The collector's page: tap a stop to see it on the map, follow your own position, and
 * record each visit's outcome. Outcomes wait in this browser's storage until the service
 * has them, so a dead zone loses nothing; each carries an id, so a resend is never a
 * second visit. Configuration comes from the page's #dispatch-config JSON. */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";

  var config = JSON.parse(document.getElementById("dispatch-config").textContent);
  var reporting = config.reporting;
  var SENT_STATUS = { 200: true, 201: true };
  // Answers that no resend can change: the report itself is wrong, so it is shown and kept
  // aside rather than sent again forever.
  var REJECTED_STATUS = { 400: true, 409: true, 413: true, 422: true };
  var RETRY_MS = 15000;
  var FRESH_FIX_MS = 120000;
  var lastFix = null;
  var sending = false;

  function map() { return window[config.map]; }

  function byCase(selector, caseId) {
    return document.querySelectorAll(selector + '[data-case="' + CSS.escape(caseId) + '"]');
  }

  // --- the list and the map ------------------------------------------------------------

  function showOnMap(item) {
    var key = item.hasAttribute("data-stop") ? item.getAttribute("data-stop") : "break";
    var marker = window[config.markers[key]];
    if (!map() || !marker) { return; }
    map().setView(marker.getLatLng(), Math.max(map().getZoom(), 17));
    marker.openPopup();
    window.scrollTo({ top: 0, behavior: "smooth" });
  }

  document.querySelectorAll(".dispatch-stops [data-stop], .dispatch-stops [data-break]")
    .forEach(function (item) {
      item.addEventListener("click", function (event) {
        if (event.target.closest("a, button, summary, details")) { return; }
        showOnMap(item);
      });
    });

  // --- the collector's own position ----------------------------------------------------

  var here = null;
  var hereRing = null;

  function showPosition(position) {
    lastFix = position;
    var point = [position.coords.latitude, position.coords.longitude];
    var label = document.getElementById("dispatch-position");
    if (label) {
      label.textContent = "Your position: ±" + Math.round(position.coords.accuracy) + " m";
    }
    if (!map()) { return; }
    if (here === null) {
      hereRing = L.circle(point, { radius: position.coords.accuracy, weight: 1,
        color: "#1a73e8", fillOpacity: 0.12, interactive: false }).addTo(map());
      here = L.circleMarker(point, { radius: 8, weight: 3, color: "#fff",
        fillColor: "#1a73e8", fillOpacity: 1, className: "dispatch-here" })
        .bindTooltip("You are here").addTo(map());
    } else {
      here.setLatLng(point);
      hereRing.setLatLng(point).setRadius(position.coords.accuracy);
    }
  }

  function positionUnavailable() {
    var label = document.getElementById("dispatch-position");
    if (label) { label.textContent = "Your position is not shared"; }
  }

  if (navigator.geolocation) {
    navigator.geolocation.watchPosition(showPosition, positionUnavailable,
      { enableHighAccuracy: true, maximumAge: 30000, timeout: 30000 });
  }

  function currentFix() {
    if (lastFix && Date.now() - lastFix.timestamp < FRESH_FIX_MS) {
      return Promise.resolve(lastFix);
    }
    return new Promise(function (resolve) {
      if (!navigator.geolocation) { resolve(null); return; }
      navigator.geolocation.getCurrentPosition(resolve, function () { resolve(null); },
        { enableHighAccuracy: true, maximumAge: 30000, timeout: 8000 });
    });
  }

  if (!reporting) { return; }

  // --- the outbox ------------------------------------------------------------------------

  function loadOutbox() {
    try {
      return JSON.parse(localStorage.getItem(reporting.storage_key) || "[]");
    } catch (error) {
      return [];
    }
  }

  function saveOutbox(entries) {
    localStorage.setItem(reporting.storage_key, JSON.stringify(entries));
  }

  function newId() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function endpoint() {
    // The page's own link token opens the outcomes of the same itinerary.
    return reporting.endpoint + window.location.search;
  }

  function describe(entry) {
    return reporting.labels[entry.outcome] || entry.outcome;
  }

  function showStatus(caseId, text, state) {
    byCase(".dispatch-status", caseId).forEach(function (element) {
      element.textContent = text;
      element.setAttribute("data-state", state);
    });
    byCase(".dispatch-stop", caseId).forEach(function (element) {
      element.classList.toggle("is-done", state === "sent");
      element.classList.toggle("is-queued", state === "queued");
    });
    byCase("li", caseId).forEach(function (element) {
      element.setAttribute("data-outcome-state", state);
    });
  }

  function showSync(entries) {
    var bar = document.getElementById("dispatch-sync");
    var waiting = entries.length;
    bar.hidden = waiting === 0;
    bar.textContent = waiting === 1
      ? "1 outcome is saved on this phone and will be sent when the connection is back."
      : waiting + " outcomes are saved on this phone and will be sent when the connection is back.";
  }

  function refresh() {
    Object.keys(reporting.reported).forEach(function (caseId) {
      var known = reporting.reported[caseId];
      showStatus(caseId, "Done: " + describe(known), "sent");
    });
    var entries = loadOutbox();
    entries.forEach(function (entry) {
      if (entry.error) {
        showStatus(entry.body.case_id, "Not saved: " + entry.error, "rejected");
      } else {
        showStatus(entry.body.case_id, "Waiting to send: " + describe(entry.body), "queued");
      }
    });
    showSync(entries.filter(function (entry) { return !entry.error; }));
  }

  function send(entry) {
    return fetch(endpoint(), {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(entry.body),
      credentials: "omit",
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        return { status: response.status, answer: answer };
      });
    });
  }

  function flush() {
    if (sending) { return Promise.resolve(); }
    sending = true;
    var pending = loadOutbox().filter(function (entry) { return !entry.error; });
    var chain = Promise.resolve();
    pending.forEach(function (entry) {
      chain = chain.then(function () {
        return send(entry).then(function (result) {
          var entries = loadOutbox();
          var index = entries.findIndex(function (e) { return e.body.id === entry.body.id; });
          if (SENT_STATUS[result.status]) {
            reporting.reported[entry.body.case_id] = {
              outcome: result.answer.outcome, visited_at: result.answer.visited_at };
            if (index >= 0) { entries.splice(index, 1); }
          } else if (REJECTED_STATUS[result.status] && index >= 0) {
            var error = (result.answer && result.answer.error) || {};
            entries[index].error = error.message || ("the service answered " + result.status);
          } else {
            // 401/403 (link expired or revoked), 5xx: keep it for a later try or a new link.
            throw new Error("not accepted now: " + result.status);
          }
          saveOutbox(entries);
          refresh();
        });
      });
    });
    return chain.catch(function () { /* offline or refused for now: try again later */ })
      .then(function () { sending = false; refresh(); });
  }

  function enqueue(body) {
    var entries = loadOutbox().filter(function (entry) {
      // A new report of a stop replaces one the service turned down.
      return !(entry.error && entry.body.case_id === body.case_id);
    });
    entries.push({ body: body });
    saveOutbox(entries);
    refresh();
    return flush();
  }

  // --- the form ----------------------------------------------------------------------------

  var dialog = document.getElementById("dispatch-report");
  var form = document.getElementById("dispatch-report-form");
  var problem = form.querySelector(".dispatch-form-error");

  function localNow() {
    var now = new Date();
    now.setMinutes(now.getMinutes() - now.getTimezoneOffset());
    return now.toISOString().slice(0, 16);
  }

  function showFieldsFor(outcome) {
    form.querySelectorAll("[data-for]").forEach(function (element) {
      var wanted = element.getAttribute("data-for").split(" ").indexOf(outcome) >= 0;
      element.hidden = !wanted;
      element.querySelectorAll("input").forEach(function (input) { input.disabled = !wanted; });
    });
    form.elements.paid.required = outcome === "partial_payment";
    form.elements.promise_due.required = outcome === "promise_to_pay";
  }

  function openForm(caseId) {
    form.reset();
    form.elements.case_id.value = caseId;
    form.elements.visited_at.value = localNow();
    form.querySelector(".dispatch-form-case").textContent = caseId;
    problem.textContent = "";
    showFieldsFor("");
    dialog.showModal();
  }

  function cents(text) {
    return text === "" ? null : Math.round(parseFloat(text) * 100);
  }

  function bodyOf(fix) {
    var values = form.elements;
    var body = {
      id: newId(),
      case_id: values.case_id.value,
      outcome: values.outcome.value,
      visited_at: new Date(values.visited_at.value).toISOString(),
      note: values.note.value,
    };
    if (!values.paid.disabled && values.paid.value !== "") { body.paid_cents = cents(values.paid.value); }
    if (!values.promise_due.disabled) {
      body.promise_due = values.promise_due.value;
      if (values.promise_amount.value !== "") {
        body.promise_amount_cents = cents(values.promise_amount.value);
      }
    }
    if (fix) {
      body.checkin = { lat: fix.coords.latitude, lon: fix.coords.longitude,
        accuracy_m: fix.coords.accuracy };
    }
    return body;
  }

  document.querySelectorAll("button.dispatch-report").forEach(function (button) {
    button.addEventListener("click", function () { openForm(button.getAttribute("data-case")); });
  });
  form.elements.outcome.addEventListener("change", function () {
    showFieldsFor(form.elements.outcome.value);
  });
  form.querySelector("[data-cancel]").addEventListener("click", function () { dialog.close(); });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!form.reportValidity()) { return; }
    var share = form.elements.share_location.checked;
    var submit = form.querySelector("[type=submit]");
    submit.disabled = true;
    (share ? currentFix() : Promise.resolve(null)).then(function (fix) {
      var body = bodyOf(fix);
      dialog.close();
      submit.disabled = false;
      return enqueue(body);
    }).catch(function (error) {
      submit.disabled = false;
      problem.textContent = String(error);
    });
  });

  window.addEventListener("online", flush);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { flush(); }
  });
  setInterval(flush, RETRY_MS);
  refresh();
  flush();
});
