// snapkeep console: the "more" menus, the restore and delete confirmation dialogs, and live activity
// progress. The pages work without it (menus show inline, Restore opens a confirmation
// page, activity pages say to reload); this only makes them nicer.
"use strict";

function closeMenus(except) {
  document.querySelectorAll(".more-button[aria-expanded='true']").forEach((button) => {
    if (button !== except) {
      button.setAttribute("aria-expanded", "false");
      document.getElementById(button.getAttribute("aria-controls")).hidden = true;
    }
  });
}

function setUpMenus() {
  document.querySelectorAll(".more-button").forEach((button) => {
    const menu = document.getElementById(button.getAttribute("aria-controls"));
    menu.hidden = true;
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      const open = button.getAttribute("aria-expanded") !== "true";
      closeMenus(button);
      button.setAttribute("aria-expanded", String(open));
      menu.hidden = !open;
      if (open) {
        const first = menu.querySelector("[role='menuitem']");
        if (first) first.focus();
      }
    });
    menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        closeMenus();
        button.focus();
      }
    });
  });
  document.addEventListener("click", () => closeMenus());
}

function setUpDialogs() {
  document.querySelectorAll("[data-dialog]").forEach((link) => {
    const dialog = document.getElementById(link.dataset.dialog);
    if (!dialog || typeof dialog.showModal !== "function") return; // keep the page link
    link.addEventListener("click", (event) => {
      event.preventDefault();
      closeMenus();
      dialog.showModal();
      const cancel = dialog.querySelector("[data-close]");
      if (cancel) cancel.focus();
    });
  });
  document.querySelectorAll("dialog [data-close]").forEach((button) => {
    button.addEventListener("click", () => button.closest("dialog").close());
  });
}

function setUpFilters() {
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
}

function formatTime(iso) {
  if (!iso) return "";
  return iso.replace("T", " ").replace(/\+00:00$/, " UTC");
}

function follow(section) {
  const url = section.dataset.activityUrl;
  let after = Number(section.dataset.after || 0);
  const state = document.getElementById("activity-state");
  const bar = document.getElementById("activity-progress");
  const percent = document.getElementById("activity-percent");
  const log = document.getElementById("activity-log");
  const error = document.getElementById("activity-error");
  const done = document.getElementById("activity-done");
  const snapshot = document.getElementById("activity-snapshot");
  const warnings = document.getElementById("activity-warnings");

  async function poll() {
    let data;
    try {
      const response = await fetch(`${url}?after=${after}`, {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        window.location.assign(`/signin?next=${encodeURIComponent(window.location.pathname)}`);
        return;
      }
      data = await response.json();
      if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    } catch (e) {
      state.textContent = "Connection lost, retrying…";
      window.setTimeout(poll, 2000);
      return;
    }
    for (const line of data.log) {
      const item = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = line.at;
      time.textContent = formatTime(line.at);
      item.append(time, ` ${line.message}`);
      log.append(item);
      after = Math.max(after, line.id);
    }
    bar.value = data.completion_percent;
    percent.textContent = `${data.completion_percent} %`;
    const outcome = data.outcome;
    state.textContent = outcome.charAt(0).toUpperCase() + outcome.slice(1);
    state.className = `badge ${outcome}`;
    state.dataset.outcome = outcome;
    section.dataset.state = data.state;
    section.dataset.outcome = outcome;
    if (data.error) {
      error.textContent = data.error;
      error.hidden = false;
    }
    if (warnings && data.warnings && data.warnings.length) {
      const list = warnings.querySelector("ul");
      list.replaceChildren(...data.warnings.map((text) => {
        const item = document.createElement("li");
        item.textContent = text;
        return item;
      }));
      warnings.hidden = false;
    }
    if (data.done) {
      const cancel = document.getElementById("activity-cancel");
      if (cancel) cancel.hidden = true; // nothing left to cancel
      if (outcome === "success") {
        if (snapshot && data.snapshot_id) snapshot.textContent = data.snapshot_id;
        done.hidden = false;
      }
      return;
    }
    window.setTimeout(poll, 1000);
  }

  if (section.dataset.state !== "complete" && section.dataset.state !== "cancelled") {
    window.setTimeout(poll, 1000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setUpMenus();
  setUpDialogs();
  setUpFilters();
  const section = document.getElementById("activity");
  if (section && section.dataset.activityUrl) follow(section);
});
