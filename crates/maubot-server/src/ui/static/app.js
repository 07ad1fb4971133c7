// maubot-rs web UI: the live parts. Pages work without this script except for uploads and the
// live log. Requests go to the management API with the session cookie (same origin); nothing
// from the server is ever put into the page as HTML except the server's own pages.
"use strict";

(function () {
  const body = document.body;
  const api = body.dataset.api || "";

  function text(tag, content, className) {
    const element = document.createElement(tag);
    if (content !== undefined) element.textContent = content;
    if (className) element.className = className;
    return element;
  }

  // The API's error message (`error`, and `stacktrace` where there is one), as it is.
  function apiError(xhrStatus, bodyText) {
    try {
      const answer = JSON.parse(bodyText);
      if (answer && typeof answer.error === "string") return answer;
    } catch (_) { /* not JSON */ }
    return { error: "HTTP " + xhrStatus + (bodyText ? ": " + bodyText.slice(0, 300) : ""), errcode: "" };
  }

  // ----- forms: while the server works (starting an instance may take a while), the button
  // says so and cannot be pressed twice -----
  document.querySelectorAll("form[method=post]").forEach((form) => {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      if (!button) return;
      // After the browser has taken the form's data.
      setTimeout(() => {
        button.disabled = true;
        button.dataset.label = button.textContent;
        button.textContent = "Working…";
        form.setAttribute("aria-busy", "true");
      }, 0);
    });
  });
  // Back to a page from the history: the buttons work again.
  window.addEventListener("pageshow", () => {
    document.querySelectorAll("button[data-label]").forEach((button) => {
      button.disabled = false;
      button.textContent = button.dataset.label;
    });
  });

  // ----- plugin uploads: drag and drop or a file picker, with a progress bar -----
  function setupUpload(zone) {
    const input = zone.querySelector("[data-upload-input]");
    const progress = zone.querySelector("progress");
    const status = zone.querySelector(".upload-status");

    function send(file, override) {
      let url = zone.dataset.upload;
      if (override) url += "?allow_override=true";
      const xhr = new XMLHttpRequest();
      xhr.open(zone.dataset.method || "POST", url);
      xhr.setRequestHeader("Content-Type", "application/zip");
      progress.hidden = false;
      progress.value = 0;
      status.replaceChildren(text("span", "Uploading " + file.name + "…"));
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
      };
      xhr.onerror = () => {
        progress.hidden = true;
        status.replaceChildren(text("p", "The upload failed: the server could not be reached.", "error"));
      };
      xhr.onload = () => {
        progress.value = 100;
        if (xhr.status >= 200 && xhr.status < 300) {
          const plugin = JSON.parse(xhr.responseText);
          status.replaceChildren(text("span", "Uploaded " + plugin.id + " v" + plugin.version + "."));
          window.location.assign(zone.dataset.then + encodeURIComponent(plugin.id) + "?ok=uploaded");
          return;
        }
        progress.hidden = true;
        const error = apiError(xhr.status, xhr.responseText);
        const parts = [text("p", "Error: " + error.error, "error")];
        if (error.stacktrace) parts.push(text("pre", error.stacktrace, "log"));
        if (error.errcode === "plugin_exists") {
          const replace = text("button", "Replace the existing plugin with this version", "primary");
          replace.type = "button";
          replace.addEventListener("click", () => send(file, true));
          parts.push(replace);
        }
        status.replaceChildren(...parts);
      };
      xhr.send(file);
    }

    input.addEventListener("change", () => {
      if (input.files.length) send(input.files[0], false);
      input.value = "";
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const file = event.dataTransfer.files[0];
      if (file) send(file, false);
    });
  }
  document.querySelectorAll("[data-upload]").forEach(setupUpload);

  // ----- bot avatars: uploaded as the bot through the API's proxy -----
  const avatarInput = document.querySelector("[data-avatar-upload]");
  if (avatarInput) {
    const field = document.getElementById("avatar_url");
    const status = document.getElementById("avatar-status");
    avatarInput.addEventListener("change", async () => {
      const file = avatarInput.files[0];
      if (!file) return;
      status.textContent = "Uploading " + file.name + "…";
      try {
        const url = avatarInput.dataset.avatarUpload + "?filename=" + encodeURIComponent(file.name);
        const response = await fetch(url, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": file.type || "application/octet-stream" },
          body: file,
        });
        const answer = await response.text();
        if (!response.ok) {
          status.textContent = "Error: " + apiError(response.status, answer).error;
          return;
        }
        const uri = JSON.parse(answer).content_uri;
        field.value = uri;
        status.textContent = "Uploaded. Save to make it the bot's avatar.";
        const preview = document.getElementById("avatar-preview");
        if (preview && uri.startsWith("mxc://")) {
          const img = document.createElement("img");
          img.className = "avatar";
          img.id = "avatar-preview";
          img.alt = "";
          img.src = avatarInput.dataset.download + uri.slice("mxc://".length).split("/").map(encodeURIComponent).join("/");
          preview.replaceWith(img);
        }
      } catch (err) {
        status.textContent = "Error: " + err;
      } finally {
        avatarInput.value = "";
      }
    });
  }

  // ----- the config editor: line numbers, and the line of an error -----
  document.querySelectorAll(".code-editor").forEach((editor) => {
    const area = editor.querySelector("textarea");
    const gutter = editor.querySelector(".gutter");
    const errorLine = parseInt(area.dataset.errorLine || "0", 10);
    function number() {
      const lines = area.value.split("\n").length;
      const items = [];
      for (let i = 1; i <= lines; i++) {
        const span = text("span", String(i), i === errorLine ? "err" : undefined);
        items.push(span, document.createTextNode("\n"));
      }
      gutter.replaceChildren(...items);
      gutter.scrollTop = area.scrollTop;
    }
    area.addEventListener("input", number);
    area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
    number();
    if (errorLine > 0) {
      // Put the cursor on the line of the error.
      const lines = area.value.split("\n");
      let offset = 0;
      for (let i = 0; i < errorLine - 1 && i < lines.length; i++) offset += lines[i].length + 1;
      area.focus();
      area.setSelectionRange(offset, offset + (lines[errorLine - 1] || "").length);
      const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 20;
      area.scrollTop = Math.max(0, (errorLine - 3) * lineHeight);
      gutter.scrollTop = area.scrollTop;
    }
  });

  // ----- the overview: refreshed in place every few seconds -----
  const live = document.querySelector("[data-live]");
  if (live) {
    const every = parseInt(live.dataset.live, 10) * 1000;
    setInterval(async () => {
      if (document.hidden || live.contains(document.activeElement)) return;
      try {
        const response = await fetch(window.location.pathname, { credentials: "same-origin" });
        if (!response.ok || response.redirected) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById(live.id);
        if (fresh) live.replaceChildren(...fresh.childNodes);
      } catch (_) { /* try again next time */ }
    }, every);
  }

  // ----- the live log -----
  const table = document.getElementById("log-lines");
  if (table) {
    const rows = table.querySelector("tbody");
    const status = document.getElementById("log-status");
    const search = document.getElementById("search");
    const pause = document.getElementById("pause");
    const view = table.closest(".log-view");
    const MAX_LINES = 2000;
    let paused = false;
    let held = [];
    let socket = null;
    let retry = 1000;

    function matches(row) {
      const needle = search.value.trim().toLowerCase();
      return !needle || row.dataset.text.includes(needle);
    }

    function add(record) {
      const row = document.createElement("tr");
      const level = String(record.levelname || "");
      row.className = "level-" + level.toLowerCase();
      const time = String(record.time || "");
      const timeCell = text("td", time.slice(11, 23), "time");
      timeCell.title = time;
      let message = String(record.msg || "");
      if (record.exc_info) message += "\n" + String(record.exc_info);
      row.append(timeCell, text("td", level), text("td", String(record.name || ""), "logger"), text("td", message, "msg"));
      row.dataset.text = (String(record.name || "") + " " + message).toLowerCase();
      row.hidden = !matches(row);
      const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - 30;
      rows.append(row);
      while (rows.children.length > MAX_LINES) rows.firstElementChild.remove();
      if (atBottom) view.scrollTop = view.scrollHeight;
    }

    function connect() {
      const params = new URLSearchParams();
      if (table.dataset.level) params.set("level", table.dataset.level);
      if (table.dataset.logger) params.set("logger", table.dataset.logger);
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(scheme + "//" + window.location.host + api + "/logs?" + params);
      socket.onmessage = (event) => {
        const data = JSON.parse(event.data);
        if (data.auth_success === false) {
          status.textContent = "The session has ended: log in again.";
          socket.close();
          return;
        }
        if (data.auth_success) {
          status.textContent = "Live.";
          retry = 1000;
          return;
        }
        if (Array.isArray(data.history)) {
          rows.replaceChildren();
          data.history.forEach(add);
          return;
        }
        if (paused) held.push(data);
        else add(data);
      };
      socket.onclose = (event) => {
        if (event.code === 4000) {
          status.textContent = "Not logged in: log in again to see the log.";
          return;
        }
        status.textContent = "Disconnected; reconnecting…";
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 30000);
      };
    }

    search.addEventListener("input", () => {
      for (const row of rows.children) row.hidden = !matches(row);
    });
    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume" : "Pause";
      status.textContent = paused ? "Paused: new lines are held." : "Live.";
      if (!paused) {
        held.forEach(add);
        held = [];
      }
    });
    document.getElementById("clear").addEventListener("click", () => rows.replaceChildren());
    connect();
  }
})();
