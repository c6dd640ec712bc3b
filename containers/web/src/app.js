// webstack's page: lists notes from /api/notes, adds one with POST /api/notes, shows the database status.
// Text is set with textContent only, never innerHTML, so a note cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, body };
}

async function showDbStatus() {
  const status = $("db-status");
  try {
    const result = await getJson("/api/health/db");
    status.textContent = result.ok ? "up" : "down";
    status.dataset.state = result.ok ? "up" : "down";
  } catch (error) {
    status.textContent = "down";
    status.dataset.state = "down";
  }
}

async function showNotes() {
  const list = $("notes");
  const result = await getJson("/api/notes").catch(() => ({ ok: false }));
  if (!result.ok || !Array.isArray(result.body)) {
    showError("Could not load the notes.");
    return;
  }
  list.replaceChildren(...result.body.map((note) => {
    const item = document.createElement("li");
    item.textContent = note.text;
    item.dataset.id = String(note.id);
    return item;
  }));
}

function showError(message) {
  const error = $("note-error");
  error.textContent = message;
  error.hidden = !message;
}

async function addNote(event) {
  event.preventDefault();
  const input = $("note-text");
  const text = input.value.trim();
  if (!text) {
    showError("Write something first.");
    return;
  }
  $("note-add").disabled = true;
  try {
    const response = await fetch("/api/notes", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ text }),
    });
    if (response.status !== 201) {
      const body = await response.json().catch(() => ({}));
      showError(body.error || `Saving failed (HTTP ${response.status}).`);
      return;
    }
    input.value = "";
    showError("");
    await showNotes();
  } catch (error) {
    showError("Saving failed: the server did not answer.");
  } finally {
    $("note-add").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("note-form").addEventListener("submit", addNote);
  showDbStatus();
  showNotes();
});
