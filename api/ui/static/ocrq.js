// ocrq web page: upload files, follow their jobs, read the text beside the page.
// Plain JavaScript, no build step. Every URL is relative to this page (/ui/), so the page
// works behind a proxy that serves the API under a prefix.
"use strict";

const API = new URL("..", document.baseURI);
const KEY_STORE = "ocrq.apiKey"; // sessionStorage only: gone when the tab closes
const JOBS_STORE = "ocrq.jobs";
// lines the engine scored below this are marked for checking (UI_LOW_SCORE, config.json)
const LOW_SCORE_DEFAULT = 0.9;
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const FORMATS = {
  json: "json", markdown: "md", text: "txt", pdf: "pdf", hocr: "hocr", alto: "alto.xml",
};

// Human words for every error code the service can answer or fail a job with
// (shared/error_codes.py; tests/unit/api/test_ui_page.py checks none is missing).
const ERROR_WORDS = {
  internal_error: "The server ran into a problem of its own. Try again; if it keeps happening, tell the people who run it.",
  invalid_request: "The server could not read the request.",
  validation_error: "The server could not read the request.",
  unauthorized: "This server needs a valid API key: enter it in the API key box above.",
  not_found: "The server does not offer this (an older or newer version?).",
  method_not_allowed: "The server does not offer this (an older or newer version?).",
  http_400: "The server could not read the request.",
  http_403: "The server refused the request.",
  http_413: "The upload is too large for the server.",
  http_error: "The server refused the request.",
  request_timeout: "The upload took too long and the server gave up: check the connection and try again.",
  headers_too_large: "The request was too large for the server.",
  empty_file: "The file is empty.",
  file_missing: "No file was sent.",
  file_too_large: "The file is too large for this server.",
  form_too_large: "The options sent with the file are too long.",
  unsupported_media_type: "This kind of file is not supported: upload a PDF or an image (PNG, JPEG, TIFF, WebP, BMP).",
  invalid_option: "One of the options is not valid.",
  invalid_callback_url: "The callback address is not valid or is not allowed.",
  engine_not_served: "No reader for this kind of document is running right now: try again in a few minutes.",
  storage_unavailable: "The server cannot reach its file storage right now: try again in a few minutes.",
  worker_unresponsive: "The server's reader stopped answering and is being restarted: try again in a few minutes.",
  too_many_pages: "The document has more pages than this server reads: choose fewer pages.",
  idempotency_key_in_use: "The same upload is still in progress: try again in a moment.",
  idempotency_key_reused: "The server saw a different upload under the same key.",
  queue_full: "The server is busy: too many documents are waiting. Try again in a minute.",
  invalid_source_url: "That document address is not allowed or not valid.",
  file_and_source_url: "Send either a file or a document address, not both.",
  source_unreachable: "The document could not be fetched from its address.",
  source_too_large: "The document at that address is too large for this server.",
  quota_exceeded: "This API key has reached one of its limits, so the file was not accepted.",
  queue_unavailable: "The server cannot reach its job queue right now. Try again in a minute.",
  job_not_found: "The server no longer knows this job: it expired or was removed.",
  image_not_found: "That picture is not stored with the result.",
  page_not_found: "That page is not in the result.",
  result_not_ready: "The document is not read yet.",
  result_gone: "This document was read, but its result is no longer kept: send the file again.",
  job_failed: "The document could not be read.",
  job_canceled: "The job was canceled.",
  job_finished: "The job had already finished, so there was nothing to cancel.",
  insufficient_storage: "The server has no room left to store files. Try again later.",
  timeout: "Reading took too long and was stopped: try fewer pages or a lower resolution.",
  worker_lost: "The server stopped while reading this document, several times: it may be too big or damaged.",
  input_missing: "The uploaded file was lost on the server: upload it again.",
  invalid_image: "The image cannot be read: it is damaged, or not really an image.",
  image_too_large: "The image (or a page of the PDF) is too large: use a smaller image or a lower resolution.",
  pdf_encrypted: "The PDF is password-protected: remove the password and upload it again.",
  pdf_corrupt: "The PDF is damaged and cannot be read.",
  invalid_pages: "The pages asked for are not in the document.",
  language_unsupported: "The server cannot read this language.",
  recognition_failed: "The text recognition failed on this document.",
  vl_server_error: "The recognition model server did not answer properly.",
  vl_output_repetitive: "The recognition model got stuck repeating itself on this page.",
  engine_unavailable: "The text recognition engine is not available right now. Try again later.",
  engine_not_installed: "The text recognition engine is not installed on the server.",
  engine_init_failed: "The text recognition engine could not start on the server.",
  unknown_engine: "The server is set up with an unknown recognition engine.",
  config_error: "The server is not set up right for this.",
  gpu_unavailable: "The server's graphics processor is not available.",
  model_missing: "The server lacks the recognition model.",
  warmup_failed: "The text recognition engine could not start on the server.",
};

const STATUS_WORDS = {
  queued: "Waiting in the queue",
  running: "Reading",
  succeeded: "Done",
  failed: "Could not be read",
  canceled: "Canceled",
};

const $ = (id) => document.getElementById(id);
const state = { config: null, jobs: new Map(), viewer: null };

// -- talking to the API -------------------------------------------------------------------

function apiKey() { return sessionStorage.getItem(KEY_STORE) || ""; }

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function call(path, options = {}) {
  let response;
  try {
    response = await fetch(new URL(path, API), { ...options, headers: headers(options.headers) });
  } catch (err) {
    throw new ApiError("network", "The server cannot be reached: check the connection.", 0);
  }
  if (!response.ok) {
    let code = `http_${response.status}`;
    let message = response.statusText;
    try {
      const body = await response.json();
      code = body.error.code;
      message = body.error.message;
    } catch (err) { /* not our JSON error body */ }
    if (code === "unauthorized") showKeyBox();
    throw new ApiError(code, message, response.status);
  }
  return response;
}

// A sentence for a person; the service's own message follows as the detail.
function explain(code, message) {
  if (code === "network") return message;
  let words = ERROR_WORDS[code] || "Something went wrong.";
  if (code === "file_too_large" && state.config) {
    words = `The file is too large: this server takes files up to ${state.config.max_upload_mb} MB.`;
  }
  if (code === "too_many_pages" && state.config) {
    words = `The document has too many pages: this server reads up to ${state.config.max_pages}. Choose fewer pages.`;
  }
  return message ? `${words} (Details: ${message})` : words;
}

function showKeyBox() {
  $("key-section").hidden = false;
}

// -- the job list -------------------------------------------------------------------------

function saveJobs() {
  const list = [...state.jobs.values()].filter((j) => j.id).map((j) => ({ id: j.id, name: j.name }));
  sessionStorage.setItem(JOBS_STORE, JSON.stringify(list));
}

function addJobItem(name) {
  const li = document.createElement("li");
  li.className = "job";
  li.innerHTML = `
    <div class="job-name"></div>
    <div class="job-status" aria-live="polite"></div>
    <progress max="1" value="0"></progress>
    <p class="job-error" role="alert" hidden></p>
    <div class="job-actions">
      <button type="button" class="job-open primary" hidden>Open</button>
      <button type="button" class="job-cancel" hidden>Cancel</button>
      <button type="button" class="job-remove">Remove</button>
    </div>`;
  li.querySelector(".job-name").textContent = name;
  li.querySelector("progress").setAttribute("aria-label", `Progress of ${name}`);
  $("jobs").prepend(li);
  $("jobs-empty").hidden = true;
  const job = { id: null, name, li, view: null, stream: null, closed: false };
  li.querySelector(".job-open").addEventListener("click", () => openJob(job));
  li.querySelector(".job-cancel").addEventListener("click", () => cancelJob(job));
  li.querySelector(".job-remove").addEventListener("click", () => removeJob(job));
  return job;
}

function renderJob(job) {
  const li = job.li;
  const view = job.view;
  const status = view ? view.status : li.dataset.status;
  li.dataset.status = status;
  const statusEl = li.querySelector(".job-status");
  const bar = li.querySelector("progress");
  if (view) {
    const { pages_done: done, pages_total: total } = view.progress;
    let words = STATUS_WORDS[status] || status;
    if (status === "running" && total) words += `: page ${Math.min(done + 1, total)} of ${total}`;
    if (status === "succeeded") words += total ? `: ${total} page${total === 1 ? "" : "s"}` : "";
    const failedPages = view.progress.pages_failed || 0;
    if ((status === "succeeded" || status === "running") && failedPages) {
      words += `, ${failedPages} could not be read`;
    }
    li.classList.toggle("partial", status === "succeeded" && failedPages > 0);
    statusEl.textContent = words;
    bar.max = total || 1;
    bar.value = status === "succeeded" ? bar.max : done;
    bar.hidden = TERMINAL.has(status);
    if (status === "failed" && view.error) showJobError(job, explain(view.error.code, view.error.message));
  }
  li.querySelector(".job-open").hidden = status !== "succeeded";
  li.querySelector(".job-cancel").hidden = !(status === "queued" || status === "running");
}

function showJobError(job, text) {
  const el = job.li.querySelector(".job-error");
  const cut = text.indexOf(" (Details: ");
  const words = document.createElement("span");
  words.textContent = cut < 0 ? text : text.slice(0, cut);
  el.replaceChildren(words);
  if (cut >= 0) { // the service's own message, smaller: the words above are for the person
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.textContent = text.slice(cut + 1);
    el.append(" ", detail);
  }
  el.hidden = false;
}

function withOptions(form) {
  const language = $("opt-language").value;
  const pages = $("opt-pages").value.trim();
  const dpi = $("opt-dpi").value.trim();
  if (language && language !== "auto") form.append("language", language);
  if (pages) form.append("pages", pages);
  if (dpi) form.append("dpi", dpi);
  return form;
}

async function submitFile(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  await submitJob(file.name, withOptions(form), "Uploading");
}

// A document by its address (source_url): the service fetches it, the job shows its last part.
function sourceName(url) {
  try {
    const parsed = new URL(url);
    const last = parsed.pathname.split("/").filter(Boolean).pop();
    return last ? decodeURIComponent(last) : parsed.host || url;
  } catch (err) {
    return url;
  }
}

async function submitSource(url) {
  const form = new FormData();
  form.append("source_url", url);
  await submitJob(sourceName(url), withOptions(form), "Sending");
}

async function submitJob(name, form, doing) {
  const job = addJobItem(name);
  job.li.dataset.status = "uploading";
  job.li.querySelector(".job-status").textContent = doing;
  try {
    const accepted = await (await call("jobs", { method: "POST", body: form })).json();
    job.id = accepted.job_id;
    job.li.dataset.jobId = job.id;
    state.jobs.set(job.id, job);
    saveJobs();
    job.view = { ...accepted, progress: { pages_done: 0, pages_total: null }, error: null };
    renderJob(job);
    follow(job);
    loadUsage();
  } catch (err) {
    job.li.dataset.status = "rejected";
    job.li.querySelector(".job-status").textContent = "Not accepted";
    job.li.querySelector("progress").hidden = true;
    showJobError(job, explain(err.code, err.message));
  }
}

async function submitFiles(files) {
  $("form-error").hidden = true;
  for (const file of files) await submitFile(file); // in order: the queue sees them in order
}

function update(job, view) {
  const ended = TERMINAL.has(view?.status) && !TERMINAL.has(job.view?.status);
  job.view = view;
  renderJob(job);
  if (ended) loadUsage();
}

// -- the key's usage today (GET /usage) ---------------------------------------------------------

function limitText(value, unit) { return value == null ? "" : ` of ${value} ${unit}`; }

async function loadUsage() {
  const section = $("usage-section");
  let usage;
  try {
    usage = await (await call("usage")).json();
  } catch (err) {
    section.hidden = true; // no key yet, or a server without /usage: nothing to show
    return;
  }
  const t = usage.today;
  const limits = usage.limits;
  const seconds = Object.values(t.engine_seconds).reduce((a, b) => a + b, 0);
  const parts = [
    `${t.jobs_submitted} ${t.jobs_submitted === 1 ? "job" : "jobs"} and ` +
      `${t.pages_submitted} pages submitted${limitText(limits.pages_per_day, "a day")}`,
    `${t.pages_done} pages read, ${t.pages_failed} failed` +
      (seconds ? ` (${seconds.toFixed(1)} s of engine time)` : ""),
    `${usage.queued} queued or running${limitText(limits.max_queued, "at once")}`,
  ];
  $("usage").textContent = `${usage.tenant}: ${parts.join("; ")}.`;
  section.hidden = false;
}

// Follow a job by its event stream (text/event-stream over fetch, so the API key header goes
// along); resume with Last-Event-ID after a drop; poll GET /jobs/{id} where no stream exists.
async function follow(job) {
  let lastId = null;
  let retry = 2000;
  while (!job.closed && !TERMINAL.has(job.view?.status)) {
    let response;
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastId) extra["Last-Event-ID"] = lastId;
      response = await call(`jobs/${job.id}/events`, { headers: extra });
    } catch (err) {
      if (err.code === "not_found" || err.code === "method_not_allowed") return poll(job);
      if (err.code === "job_not_found") return expire(job, err);
      if (err.code === "unauthorized") return showJobError(job, explain(err.code, err.message));
      await sleep(retry);
      continue;
    }
    try {
      await readEvents(response, (event) => {
        if (event.id) lastId = event.id;
        if (event.retry) retry = event.retry;
        if (event.data) update(job, JSON.parse(event.data));
      });
    } catch (err) { /* the connection dropped: resume from lastId */ }
    if (!TERMINAL.has(job.view?.status)) await sleep(retry);
  }
}

async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = {};
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.search(/\r?\n/)) >= 0) {
      const line = buffer.slice(0, cut);
      buffer = buffer.slice(cut + (buffer[cut] === "\r" ? 2 : 1));
      if (line === "") {
        if (event.data !== undefined || event.id) onEvent(event);
        event = {};
        continue;
      }
      if (line.startsWith(":")) continue; // keepalive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data = event.data === undefined ? text : `${event.data}\n${text}`;
      else if (field === "id") event.id = text;
      else if (field === "event") event.event = text;
      else if (field === "retry" && /^\d+$/.test(text)) event.retry = Number(text);
    }
  }
}

async function poll(job) {
  while (!job.closed && !TERMINAL.has(job.view?.status)) {
    const started = Date.now();
    try {
      update(job, await (await call(`jobs/${job.id}?wait=20`)).json());
    } catch (err) {
      if (err.code === "job_not_found") return expire(job, err);
    }
    if (Date.now() - started < 900) await sleep(1000); // a server that does not wait
  }
}

function expire(job, err) {
  job.li.dataset.status = "failed";
  job.li.querySelector(".job-status").textContent = "Gone";
  job.li.querySelector(".job-open").hidden = true;
  job.li.querySelector(".job-cancel").hidden = true;
  showJobError(job, explain(err.code, ""));
}

async function cancelJob(job) {
  try {
    update(job, await (await call(`jobs/${job.id}`, { method: "DELETE" })).json());
  } catch (err) {
    showJobError(job, explain(err.code, err.message));
  }
}

function removeJob(job) {
  job.closed = true;
  job.li.remove();
  if (job.id) state.jobs.delete(job.id);
  saveJobs();
  $("jobs-empty").hidden = $("jobs").children.length > 0;
  if (state.viewer && state.viewer.job === job) $("viewer").hidden = true;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- the viewer ---------------------------------------------------------------------------

async function openJob(job) {
  const viewer = $("viewer");
  viewer.hidden = false;
  $("viewer-error").hidden = true;
  $("viewer-title").textContent = job.name;
  $("lines").replaceChildren();
  $("boxes").replaceChildren();
  try {
    const result = await (await call(`jobs/${job.id}/result`)).json();
    const pages = [...result.pages].sort((a, b) => a.index - b.index);
    state.viewer = { job, result, pages, at: 0 };
    await showPage(0);
  } catch (err) {
    viewerError(explain(err.code, err.message));
  }
  $("viewer-title").focus();
  viewer.scrollIntoView({ block: "start" });
}

function viewerError(text) {
  $("viewer-error").textContent = text;
  $("viewer-error").hidden = false;
}

async function showPage(at) {
  const v = state.viewer;
  const page = v.pages[at];
  if (!page) return;
  v.at = at;
  const numbered = v.pages.every((p, i) => p.index === i + 1); // all pages, in order
  $("page-label").textContent = numbered
    ? `Page ${page.index} of ${v.pages.length}`
    : `Page ${page.index} (${at + 1} of ${v.pages.length} read)`;
  $("page-prev").disabled = at === 0;
  $("page-next").disabled = at === v.pages.length - 1;
  if (page.error) drawFailedPage(page);
  else drawPage(page);
  const img = $("page-img");
  img.alt = `Page ${page.index} of ${v.job.name}`;
  $("page-caption").textContent = page.error
    ? `Page ${page.index}: could not be read`
    : `Page ${page.index}: ${page.blocks.length} text block(s)` +
      (page.rotation ? `, turned ${page.rotation}° to read it` : "");
  try {
    const blob = await (await call(`jobs/${v.job.id}/pages/${page.index}/image`)).blob();
    if (v.at !== at || state.viewer !== v) return;
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
  } catch (err) {
    if (v.at !== at || state.viewer !== v) return;
    img.removeAttribute("src");
    // a page that could not be read says why beside it; its picture may be missing too
    if (!page.error) viewerError(`The page picture cannot be shown. ${explain(err.code, err.message)}`);
  }
}

// A page the service could not read (its `error` in the result): why, where its text would be.
function drawFailedPage(page) {
  $("boxes").replaceChildren();
  const frame = $("page-frame");
  if (page.width > 0 && page.height > 0) {
    $("boxes").setAttribute("viewBox", `0 0 ${page.width} ${page.height}`);
    frame.style.aspectRatio = `${page.width} / ${page.height}`;
  } else {
    frame.style.aspectRatio = "";
  }
  $("lines").replaceChildren(failedPageItem(page));
}

function failedPageItem(page) {
  const li = document.createElement("li");
  li.className = "page-error";
  li.setAttribute("role", "note");
  const head = document.createElement("strong");
  head.textContent = "This page could not be read. ";
  const words = document.createElement("span");
  words.textContent = ERROR_WORDS[page.error.code] || "Something went wrong.";
  const detail = document.createElement("span");
  detail.className = "detail";
  detail.textContent = ` (${page.error.code}: ${page.error.message})`;
  li.append(head, words, detail);
  return li;
}

const SVG = "http://www.w3.org/2000/svg";

function drawPage(page) {
  const svg = $("boxes");
  const list = $("lines");
  svg.setAttribute("viewBox", `0 0 ${page.width} ${page.height}`);
  // the image is the page upright at any size: the SVG's viewBox in page pixels scales boxes
  $("page-frame").style.aspectRatio = `${page.width} / ${page.height}`;
  const lowScore = state.config ? state.config.low_score : LOW_SCORE_DEFAULT;
  const rects = [];
  const items = [];
  page.blocks.forEach((block, i) => {
    const [x0, y0, x1, y1] = block.bbox;
    const low = typeof block.score === "number" && block.score < lowScore;
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", x0);
    rect.setAttribute("y", y0);
    rect.setAttribute("width", Math.max(x1 - x0, 1));
    rect.setAttribute("height", Math.max(y1 - y0, 1));
    rect.dataset.line = i;
    if (low) rect.classList.add("low");
    const li = document.createElement("li");
    li.tabIndex = 0;
    li.dataset.line = i;
    if (block.type && block.type !== "text") {
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = `${block.type}:`;
      li.append(kind);
    }
    li.append(document.createTextNode(block.text || "(no text)"));
    if (low) {
      li.classList.add("low");
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = `check: ${Math.round(block.score * 100)}% sure`;
      li.append(badge);
    }
    const on = () => light(i, true);
    const off = () => light(i, false);
    li.addEventListener("mouseenter", on);
    li.addEventListener("mouseleave", off);
    li.addEventListener("focus", on);
    li.addEventListener("blur", off);
    li.addEventListener("keydown", (e) => moveFocus(e, i));
    rect.addEventListener("mouseenter", () => { light(i, true); li.scrollIntoView({ block: "nearest" }); });
    rect.addEventListener("mouseleave", off);
    rect.addEventListener("click", () => li.focus());
    rects.push(rect);
    items.push(li);
  });
  svg.replaceChildren(...rects);
  list.replaceChildren(...items);
  if (!items.length) {
    const li = document.createElement("li");
    li.textContent = "No text was found on this page.";
    list.append(li);
  }
}

function light(i, on) {
  for (const el of document.querySelectorAll(`#boxes [data-line="${i}"], #lines [data-line="${i}"]`)) {
    el.classList.toggle("lit", on);
  }
}

function moveFocus(event, i) {
  const step = { ArrowDown: 1, ArrowUp: -1 }[event.key];
  if (!step) return;
  const next = document.querySelector(`#lines [data-line="${i + step}"]`);
  if (next) {
    event.preventDefault();
    next.focus();
  }
}

async function copyText(text) {
  const status = $("copy-status");
  try {
    await navigator.clipboard.writeText(text);
  } catch (err) { // plain http on another host: no clipboard API, the old way then
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) {
      status.textContent = "Copying is blocked here: select the text and copy it by hand.";
      return;
    }
  }
  status.textContent = "Copied.";
  setTimeout(() => { status.textContent = ""; }, 3000);
}

async function download(format) {
  const v = state.viewer;
  if (!v) return;
  try {
    const blob = await (await call(`jobs/${v.job.id}/result?format=${format}`)).blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${v.job.name.replace(/\.[^.]+$/, "")}.${FORMATS[format]}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (err) {
    viewerError(explain(err.code, err.message));
  }
}

// -- start --------------------------------------------------------------------------------

function wire() {
  const input = $("files");
  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = "";
    if (files.length) submitFiles(files);
  });
  $("upload-form").addEventListener("submit", (e) => {
    e.preventDefault(); // Enter in any field, or the button: the address, if one is typed
    const url = $("source-url").value.trim();
    if (!url) return;
    $("source-url").value = "";
    $("form-error").hidden = true;
    submitSource(url);
  });
  const zone = $("drop-zone");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    const files = [...e.dataTransfer.files];
    if (files.length) submitFiles(files);
  });
  const key = $("api-key");
  key.value = apiKey();
  key.addEventListener("input", () => {
    sessionStorage.setItem(KEY_STORE, key.value.trim());
    clearTimeout(state.usageTimer); // once typing pauses, not per keystroke
    state.usageTimer = setTimeout(loadUsage, 400);
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    key.value = "";
    $("usage-section").hidden = true;
  });
  $("page-prev").addEventListener("click", () => showPage(state.viewer.at - 1));
  $("page-next").addEventListener("click", () => showPage(state.viewer.at + 1));
  $("copy-page").addEventListener("click", () => {
    const v = state.viewer;
    if (v) copyText(v.pages[v.at].text);
  });
  $("copy-all").addEventListener("click", () => state.viewer && copyText(state.viewer.result.text));
  for (const button of document.querySelectorAll("[data-format]")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
}

async function loadConfig() {
  try {
    state.config = await (await call("ui/config.json")).json();
    $("max-mb").textContent = state.config.max_upload_mb;
    if (state.config.auth_required) showKeyBox();
    if (!state.config.auth_required || apiKey()) loadUsage();
  } catch (err) {
    $("form-error").textContent = explain(err.code, err.message);
    $("form-error").hidden = false;
  }
}

function restoreJobs() {
  let list = [];
  try { list = JSON.parse(sessionStorage.getItem(JOBS_STORE) || "[]"); } catch (err) { list = []; }
  for (const { id, name } of list.reverse()) {
    const job = addJobItem(name);
    job.id = id;
    job.li.dataset.jobId = id;
    job.view = null;
    job.li.querySelector(".job-status").textContent = "Checking";
    state.jobs.set(id, job);
    call(`jobs/${id}`).then(async (r) => { update(job, await r.json()); follow(job); },
      (err) => expire(job, err));
  }
}

wire();
loadConfig();
restoreJobs();
