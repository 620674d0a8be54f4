// Small behaviours the server-rendered pages need. htmx does the rest.
// Every htmx request carries the session's CSRF token from the page's meta tag.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRF-Token"] = meta.content;
  }
});

document.addEventListener("DOMContentLoaded", function () {
  // A <select data-autosubmit> submits its form on change (graph run picker).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // A <pre data-follow="…/logs/stream?…"> appends the try's new log lines as
  // the server sends them, and stops when the server says the try ended
  // (otherwise EventSource would reconnect forever).
  var log = document.querySelector("pre[data-follow]");
  if (log && window.EventSource) {
    var status = document.getElementById("follow-status");
    var source = new EventSource(log.dataset.follow);
    source.onmessage = function (event) {
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.appendChild(document.createTextNode((log.textContent ? "\n" : "") + event.data));
      if (atBottom) { log.scrollTop = log.scrollHeight; }
    };
    source.addEventListener("end", function (event) {
      source.close();
      if (status) { status.textContent = event.data + " (reload for the outcome)"; }
    });
  }
});
