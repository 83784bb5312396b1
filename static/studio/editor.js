/* The email editor (templates/admin/email_edit.html): the check and the previews
   follow the typing. On it and on the new-newsletter page (admin/broadcast_new.html)
   a picture from the "Add a picture" panel (admin/_picture_upload.html) goes in where
   the cursor is. Without this file both pages still work: their buttons post the
   whole form. */
(function () {
  "use strict";
  if (!window.fetch || !window.FormData) { return; }

  function post(url, data, token) {
    data.append("csrf_token", token);
    return fetch(url, {method: "POST", body: data, credentials: "same-origin",
                       headers: {"Accept": "application/json"}})
      .then(function (r) {
        if (r.redirected) {  /* to the login page: the session ended */
          return {ok: false, body: {error: "You were logged out. Log in again in another tab; your text is still here."}};
        }
        return r.json().then(function (body) { return {ok: r.ok, body: body}; },
                             function () { return {ok: false, body: {error: "The server answered " + r.status + "."}}; });
      });
  }

  function insertAtCursor(field, text) {
    var start = field.selectionStart, end = field.selectionEnd, v = field.value;
    field.value = v.slice(0, start) + text + v.slice(end);
    field.focus();
    field.setSelectionRange(start + text.length, start + text.length);
    field.dispatchEvent(new Event("input"));  /* the editor's check follows */
  }

  function pictures(panel) {
    var form = panel.closest("form");
    var field = document.getElementById(panel.dataset.target);
    var status = document.getElementById("picture-status");
    document.getElementById("upload-picture").addEventListener("click", function (ev) {
      ev.preventDefault();
      var file = form.elements.picture.files[0];
      var data = new FormData();
      if (file) { data.append("picture", file, file.name); }
      data.append("alt", form.elements.alt.value);
      status.textContent = "Uploading…";
      post(panel.dataset.pictureUrl, data, form.elements.csrf_token.value).then(function (res) {
        if (!res.ok) { status.textContent = res.body.error; status.className = "lvl-error"; return; }
        status.className = "ok";
        status.textContent = "Picture saved as images/" + res.body.name + " and put where the cursor was.";
        form.elements.picture.value = "";
        form.elements.alt.value = "";
        insertAtCursor(field, res.body.snippet);
      }, function () { status.textContent = "Could not reach the server; nothing was uploaded."; });
    });
  }

  function editor(form) {
    var source = form.elements.source;
    var token = form.elements.csrf_token.value;
    var status = document.getElementById("check-status");
    var notes = document.getElementById("notes");
    var frames = document.querySelectorAll("iframe.preview");
    var textPart = document.getElementById("text-part");
    var subject = document.getElementById("preview-subject");
    var preheader = document.getElementById("preview-preheader");
    var renderError = document.getElementById("render-error");
    var timer = null;
    var latest = 0;

    function show(d) {
      var errors = 0, warnings = 0;
      notes.textContent = "";
      d.notes.forEach(function (n) {
        var li = document.createElement("li");
        li.className = "lvl-" + n.level;
        li.textContent = n.display;
        notes.appendChild(li);
        if (n.level === "error") { errors += 1; } else { warnings += 1; }
      });
      status.textContent = d.notes.length ? errors + " error(s), " + warnings + " warning(s)."
                                          : "No problems found.";
      status.className = d.notes.length ? "muted" : "ok";
      renderError.hidden = !d.render_error;
      renderError.textContent = d.render_error;
      subject.textContent = d.subject;
      preheader.textContent = d.preheader;
      textPart.textContent = d.text;
      if (!d.render_error) {
        frames.forEach(function (f) { f.srcdoc = d.html; });
      }
    }

    function check() {
      var mine = ++latest;
      var data = new FormData();
      data.append("source", source.value);
      status.textContent = "Checking…";
      post(form.dataset.checkUrl, data, token).then(function (res) {
        if (mine !== latest) { return; }  /* an older answer than what is on screen */
        if (!res.ok) { status.textContent = res.body.error; status.className = "lvl-error"; return; }
        show(res.body);
      }, function () {
        if (mine === latest) { status.textContent = "Could not reach the server to check; Preview still works."; }
      });
    }

    source.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(check, 400);
    });
  }

  var panel = document.getElementById("picture-upload");
  if (panel) { pictures(panel); }
  var form = document.getElementById("editor");
  if (form) { editor(form); }
}());
