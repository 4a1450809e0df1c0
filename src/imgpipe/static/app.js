// The imgpipe dashboard: uploads with progress, live counts and charts, a gallery, details.
// It polls the same HTTP API a script would use; with an API token set it asks for it once.
(function () {
  "use strict";
  const POLL_MS = 2000;
  const PAGE = 60;
  const $ = (id) => document.getElementById(id);
  let filter = "";
  let token = localStorage.getItem("imgpipe.token") || "";
  let detailId = null; // the image the detail view shows
  let detailSeq = 0; // bumped by every open and close: a late answer for an older view is dropped
  const cards = new Map(); // imageId -> {el, record}

  // -- API -------------------------------------------------------------------------------
  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (response.status === 401) {
      $("token-button").hidden = false;
      askToken();
      throw new Error("unauthorized");
    }
    if (response.status === 204) return null;
    const body = await response.json().catch(() => null);
    if (!response.ok && !(body && body.imageId)) {
      const message = body && body.error ? `${body.error.code}: ${body.error.message}` : response.statusText;
      throw Object.assign(new Error(message), { status: response.status, code: body && body.error ? body.error.code : null });
    }
    return body;
  }

  function askToken() {
    const dialog = $("token-dialog");
    if (dialog.open) return;
    $("token-input").value = token;
    dialog.showModal();
  }
  $("token-dialog").addEventListener("close", () => {
    if ($("token-dialog").returnValue === "ok") {
      token = $("token-input").value.trim();
      localStorage.setItem("imgpipe.token", token);
      refresh();
    }
  });
  $("token-button").addEventListener("click", askToken);

  // -- formatting ------------------------------------------------------------------------
  const bytes = (n) => (n == null ? "–" : n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(2)} MB`);
  const ms = (n) => (n == null ? "–" : n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(2)} s`);
  const fileName = (key) => key.split("/").pop();
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  };
  const thumbOf = (record) =>
    (record.renditions || []).find((r) => r.name === "thumb" && r.format === "webp") ||
    (record.renditions || []).slice().sort((a, b) => a.width - b.width)[0];

  // -- uploads ---------------------------------------------------------------------------
  function uploadFile(file) {
    const bar = el("progress", { max: "100", value: "0" });
    const state = el("span", { class: "state" }, "waiting");
    const row = el("li", {}, el("span", { class: "name" }, file.name), bar, state);
    $("upload-list").prepend(row);
    const type = file.type || guessType(file.name);
    return api("/uploads", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ filename: file.name, contentType: type, size: file.size }),
    })
      .then((ticket) => new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open(ticket.method, ticket.uploadUrl);
        let body = file;
        if (ticket.method === "POST") {
          body = new FormData();
          for (const [k, v] of Object.entries(ticket.fields || {})) body.append(k, v);
          body.append("file", file);
        } else {
          for (const [k, v] of Object.entries(ticket.headers || {})) xhr.setRequestHeader(k, v);
        }
        xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
        xhr.onload = () => (xhr.status < 300 ? resolve(ticket) : reject(new Error(errorText(xhr))));
        xhr.onerror = () => reject(new Error("network error"));
        state.textContent = "uploading";
        xhr.send(body);
      }))
      .then(() => {
        bar.value = 100;
        state.textContent = "uploaded";
        row.classList.add("done");
        setTimeout(() => row.remove(), 4000);
        refresh();
      })
      .catch((e) => {
        state.textContent = e.message;
        row.classList.add("failed");
      });
  }
  function errorText(xhr) {
    try { const b = JSON.parse(xhr.responseText); return `${b.error.code}: ${b.error.message}`; }
    catch (e) { return `HTTP ${xhr.status}`; }
  }
  function guessType(name) {
    const ext = name.toLowerCase().split(".").pop();
    return { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp", gif: "image/gif",
      tif: "image/tiff", tiff: "image/tiff", avif: "image/avif", heic: "image/heic", heif: "image/heif" }[ext] || "application/octet-stream";
  }
  $("file-input").addEventListener("change", (e) => {
    for (const f of e.target.files) uploadFile(f);
    e.target.value = "";
  });
  const zone = $("dropzone");
  ["dragenter", "dragover"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => zone.addEventListener(t, (e) => { e.preventDefault(); zone.classList.remove("over"); }));
  zone.addEventListener("drop", (e) => { for (const f of e.dataTransfer.files) uploadFile(f); });

  // -- gallery ---------------------------------------------------------------------------
  function cardFor(record) {
    const blur = el("canvas", { class: "bh" });
    const img = el("img", { alt: fileName(record.key), loading: "lazy" });
    img.addEventListener("load", () => img.classList.add("loaded"));
    const badge = el("span", { class: "badge" });
    const title = el("div", { class: "title" });
    const sub = el("div", { class: "sub" });
    const error = el("div", { class: "error" });
    const retry = el("button", { class: "small-button", onclick: (e) => { e.stopPropagation(); reprocess(record.imageId); } }, "Retry");
    const card = el("article", { class: "card", tabindex: "0", "data-id": record.imageId },
      el("div", { class: "thumb" }, blur, img, badge), title, sub, error, retry);
    card.addEventListener("click", () => openDetail(record.imageId));
    card.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(record.imageId); });
    return { el: card, blur, img, badge, title, sub, error, retry, record: null };
  }

  function updateCard(c, record) {
    const prev = c.record;
    c.record = record;
    c.el.dataset.status = record.status;
    c.badge.textContent = record.status.toLowerCase();
    c.title.textContent = fileName(record.key);
    c.title.title = record.key;
    c.sub.textContent = record.status === "PROCESSED"
      ? `${record.width}×${record.height} · ${record.format} · ${ms(record.durationMs)}`
      : record.status === "FAILED" ? "" : `attempt ${record.attempts || 0}`;
    c.error.textContent = record.error ? `${record.error.code}: ${record.error.message}` : "";
    c.retry.hidden = record.status !== "FAILED";
    if (record.blurhash && (!prev || prev.blurhash !== record.blurhash)) window.blurhashToCanvas(record.blurhash, c.blur);
    const thumb = thumbOf(record);
    const src = thumb ? thumb.url : "";
    const base = (u) => u.split("?")[0];
    if (src && base(src) !== base(c.img.currentSrc || c.img.src || "") ) {
      c.img.classList.remove("loaded");
      c.img.src = src;
    } else if (!src) {
      c.img.removeAttribute("src");
      c.img.classList.remove("loaded");
    }
  }

  function renderGallery(items) {
    const gallery = $("gallery");
    const seen = new Set();
    items.forEach((record, index) => {
      seen.add(record.imageId);
      let c = cards.get(record.imageId);
      if (!c) { c = cardFor(record); cards.set(record.imageId, c); }
      if (JSON.stringify(c.record) !== JSON.stringify(record)) updateCard(c, record);
      if (gallery.children[index] !== c.el) gallery.insertBefore(c.el, gallery.children[index] || null);
    });
    for (const [id, c] of cards) if (!seen.has(id)) { c.el.remove(); cards.delete(id); }
    $("empty").hidden = items.length > 0;
  }

  // -- counts and charts -----------------------------------------------------------------
  function renderStats(stats) {
    for (const [status, n] of Object.entries(stats.counts)) $(`count-${status}`).textContent = n;
    const q = stats.queue;
    $("queue-depth").textContent = q.visible + q.inFlight;
    $("queue-label").textContent = q.dead ? `in queue · ${q.dead} dead` : "in queue";
    const points = stats.series.points;
    window.drawChart($("chart-throughput"), { unit: "", series: [
      { label: "processed", colour: "#3fb37f", kind: "bar", values: points.map((p) => p.processed) },
      { label: "failed", colour: "#e5534b", kind: "bar", values: points.map((p) => p.failed) },
    ] });
    window.drawChart($("chart-latency"), { unit: "s", series: [
      { label: "p50", colour: "#4f7cff", kind: "line", values: points.map((p) => p.p50) },
      { label: "p95", colour: "#b36bff", kind: "line", values: points.map((p) => p.p95) },
    ] });
    window.drawChart($("chart-queue"), { unit: "", series: [
      { label: "depth", colour: "#e0a030", kind: "line", values: points.map((p) => p.queueDepth) },
    ] });
  }

  // -- detail ----------------------------------------------------------------------------
  async function openDetail(imageId) {
    const seq = ++detailSeq;
    const current = () => seq === detailSeq;
    let record;
    try {
      record = await api(`/images/${imageId}`);
    } catch (e) {
      if (current()) showError(e);
      return;
    }
    if (!current()) return;
    detailId = record.imageId;
    const medium = (record.renditions || []).find((r) => r.name === "medium" && r.format === "webp") || thumbOf(record);
    $("detail-title").textContent = fileName(record.key);
    $("detail-status").className = `status-line ${record.status}`;
    $("detail-status").textContent = record.error
      ? `${record.status} — ${record.error.code}: ${record.error.message}` : record.status;
    const img = $("detail-img");
    // The frame takes the image's shape, so the placeholder and the image line up exactly.
    const frame = $("detail-frame");
    frame.style.aspectRatio = medium ? `${medium.width} / ${medium.height}` : "4 / 3";
    frame.style.maxWidth = medium ? `calc(80vh * ${medium.width / medium.height})` : "";
    img.classList.remove("loaded");
    img.onload = () => img.classList.add("loaded");
    if (medium) img.src = medium.url; else img.removeAttribute("src");
    const blur = $("detail-blur");
    if (record.blurhash) window.blurhashToCanvas(record.blurhash, blur);
    else blur.getContext("2d").clearRect(0, 0, blur.width, blur.height);
    const exif = record.exif || {};
    const rows = [
      ["key", record.key], ["imageId", record.imageId], ["format", record.format && `${record.format} (${record.contentType})`],
      ["size", record.width && `${record.width} × ${record.height} px`], ["file", bytes(record.fileSize)],
      ["orientation", record.orientation], ["colour space", record.colorSpace], ["alpha", record.hasAlpha],
      ["frames", record.frames], ["camera", exif.model && exif.make && exif.model.startsWith(exif.make) ? exif.model : [exif.make, exif.model].filter(Boolean).join(" ")], ["lens", exif.lens],
      ["taken", exif.takenAt], ["exposure", [exif.exposureTime && `${exif.exposureTime} s`, exif.fNumber && `f/${exif.fNumber}`,
        exif.iso && `ISO ${exif.iso}`, exif.focalLength && `${exif.focalLength} mm`].filter(Boolean).join(" · ")],
      ["dominant colour", record.dominantColor], ["sha256", record.sha256 && record.sha256.slice(0, 16) + "…"],
      ["phash", record.phash], ["attempts", record.attempts], ["processing time", ms(record.durationMs)],
      ["uploaded", record.uploadedAt], ["processed", record.processedAt],
    ];
    const meta = $("detail-meta");
    meta.replaceChildren(...rows.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => {
      const value = el("td", {}, String(v));
      if (k === "dominant colour") value.prepend(el("span", { class: "swatch", style: `background:${v}` }));
      return el("tr", {}, el("th", {}, k), value);
    }));
    const rtable = $("detail-renditions");
    rtable.replaceChildren(el("tr", {}, el("th", {}, "name"), el("th", {}, "format"), el("th", {}, "size"), el("th", {}, "bytes")),
      ...(record.renditions || []).map((r) => el("tr", {},
        el("td", {}, el("a", { href: r.url, target: "_blank", rel: "noopener" }, r.name)),
        el("td", {}, r.format), el("td", {}, `${r.width} × ${r.height}`), el("td", {}, bytes(r.bytes)))));
    renderDuplicate(record, current);
    renderSimilar(record, current);
    showBuilder(record);
    $("detail").hidden = false;
    document.querySelector(".detail-card").scrollTop = 0;
  }

  // "Duplicate of <name>": the earliest upload with the same bytes, when it was processed.
  async function renderDuplicate(record, current) {
    const line = $("detail-duplicate");
    const originalId = record.duplicateOf;
    line.hidden = !originalId;
    line.replaceChildren();
    if (!originalId) return;
    line.append("Duplicate of …");
    let original = null;
    let deleted = false;
    try {
      original = await api(`/images/${originalId}`);
    } catch (e) {
      deleted = e.status === 404; // duplicateOf stays when the original is deleted
      if (!deleted && current()) showError(e);
    }
    if (!current()) return;
    line.replaceChildren("Duplicate of ", deleted
      ? el("span", { class: "deleted", title: originalId }, "(deleted)")
      : el("button", { type: "button", class: "link", title: originalId, onclick: () => openDetail(originalId) },
        original ? fileName(original.key) : originalId));
  }

  // The same bytes or a close pHash, closest first: only processed images have hashes.
  async function renderSimilar(record, current) {
    const section = $("detail-similar-section");
    const strip = $("detail-similar");
    const note = (text) => strip.replaceChildren(el("p", { class: "similar-note" }, text));
    section.hidden = record.status !== "PROCESSED";
    strip.replaceChildren();
    if (section.hidden) return;
    note("Looking…");
    let answer;
    try {
      answer = await api(`/images/${record.imageId}/similar`);
    } catch (e) {
      if (!current()) return;
      // A record processed before near-duplicates existed has no hashes until processed again.
      if (e.code === "not_processed") return note("Not indexed yet: process it again");
      note("Similar images could not be loaded");
      return showError(e);
    }
    if (!current()) return;
    if (!answer.items.length) return note("No similar images");
    strip.replaceChildren(...answer.items.map(similarItem));
  }

  function similarItem(item) {
    const name = fileName(item.key);
    const caption = item.sameBytes ? "identical" : `distance ${item.distance}`;
    const blur = el("canvas", { class: "bh" });
    const img = el("img", { alt: name });
    img.addEventListener("load", () => img.classList.add("loaded"));
    const thumb = thumbOf(item);
    if (thumb) img.src = thumb.url;
    if (item.blurhash) window.blurhashToCanvas(item.blurhash, blur);
    return el("button", { type: "button", class: "similar-item", "data-id": item.imageId, title: `${item.key} · ${caption}`,
      onclick: () => openDetail(item.imageId) },
    el("span", { class: "thumb" }, blur, img), el("span", { class: "name" }, name), el("span", { class: "caption" }, caption));
  }

  // -- URL builder: a signed /img URL for the choices (signed by the server: the key stays there)
  const BUILD_DELAY_MS = 300;
  // What Chromium's <img> sends, so that "auto" shows the format an <img> would get (fetch's
  // own Accept is */*).
  const IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
  let buildTimer = null;
  let buildSeq = 0; // bumped by every build and by closing: a late answer is dropped
  let resultUrl = null; // the blob: URL the result <img> shows

  function showBuilder(record) {
    clearTimeout(buildTimer);
    buildSeq++;
    clearResult();
    $("builder-url").value = "";
    $("builder-section").hidden = record.status !== "PROCESSED";
    if (!$("builder-section").hidden) build();
  }
  function builderNote(text, bad = false) {
    $("builder-note").textContent = text;
    $("builder-note").classList.toggle("bad", bad);
  }
  function builderChoice() {
    const f = $("builder").elements;
    const number = (name, empty) => (f[name].value === "" ? empty : Number(f[name].value));
    return { width: number("width", 0), height: number("height", 0), fit: f.fit.value, gravity: f.gravity.value,
      format: f.format.value, quality: number("quality", 0), dpr: number("dpr", 1) };
  }
  function clearResult() {
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = null;
    $("builder-result").hidden = true;
    $("builder-img").removeAttribute("src");
  }
  async function build() {
    clearTimeout(buildTimer);
    const seq = ++buildSeq;
    const imageId = detailId;
    const current = () => seq === buildSeq && imageId === detailId;
    builderNote("Signing…");
    let signed;
    try {
      signed = await api(`/images/${imageId}/transform-url`, { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(builderChoice()) });
    } catch (e) {
      if (!current()) return;
      $("builder-url").value = "";
      clearResult();
      return builderNote(e.message, true);
    }
    if (!current()) return;
    $("builder-url").value = signed.url;
    builderNote("Rendering…");
    const response = await fetch(signed.path, { headers: { Accept: IMAGE_ACCEPT } }).catch((e) => e);
    const blob = response instanceof Response ? await response.blob().catch(() => null) : null;
    if (!current()) return;
    if (!blob || !response.ok) {
      clearResult();
      const why = await failure(response, blob);
      if (current()) builderNote(why, true);
      return;
    }
    showResult(response.headers.get("Content-Type") || blob.type, blob, signed.signed, current);
  }
  // Why /img did not answer an image: its JSON error, else the status or the network error.
  async function failure(response, blob) {
    if (!(response instanceof Response)) return response.message;
    const body = blob && (await blob.text().then(JSON.parse).catch(() => null));
    return body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${response.status}`;
  }
  function showResult(type, blob, signed, current) {
    clearResult();
    resultUrl = URL.createObjectURL(blob);
    const img = $("builder-img");
    img.onload = () => {
      if (!current()) return;
      $("builder-facts").textContent = `${img.naturalWidth} × ${img.naturalHeight} px · ${type} · ${bytes(blob.size)}`;
      $("builder-result").hidden = false;
      builderNote(signed ? "" : "Unsigned (no key configured): only this loopback server without a token takes it");
    };
    img.onerror = () => { if (current()) builderNote(`the browser cannot show ${type}`, true); };
    img.src = resultUrl;
  }
  $("builder").addEventListener("input", () => { clearTimeout(buildTimer); buildTimer = setTimeout(build, BUILD_DELAY_MS); });
  $("builder").addEventListener("submit", (e) => { e.preventDefault(); build(); });
  $("builder-copy").addEventListener("click", () => {
    $("builder-url").select();
    const manual = () => builderNote("Selected: copy it with Ctrl+C or ⌘C");
    // The clipboard API exists only in secure contexts (https, or loopback).
    if (!navigator.clipboard) return manual();
    navigator.clipboard.writeText($("builder-url").value).then(() => builderNote("Copied"), manual);
  });

  const closeDetail = () => { $("detail").hidden = true; detailId = null; detailSeq++; buildSeq++; clearTimeout(buildTimer); clearResult(); };
  $("detail-close").addEventListener("click", closeDetail);
  $("detail").addEventListener("click", (e) => { if (e.target === $("detail")) closeDetail(); });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDetail(); });
  $("detail-reprocess").addEventListener("click", () => { if (detailId) reprocess(detailId).then(closeDetail); });
  $("detail-delete").addEventListener("click", async () => {
    if (!detailId || !confirm("Delete this image, its renditions and its record?")) return;
    await api(`/images/${detailId}`, { method: "DELETE" });
    closeDetail();
    refresh();
  });
  function reprocess(imageId) {
    return api(`/images/${imageId}/reprocess`, { method: "POST" }).then(refresh).catch(showError);
  }

  // -- polling ---------------------------------------------------------------------------
  document.querySelectorAll(".filter").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll(".filter").forEach((x) => x.classList.toggle("active", x === b));
    filter = b.dataset.filter;
    refresh();
  }));

  function showError(e) {
    if (e.message !== "unauthorized") $("health").textContent = `error: ${e.message}`;
  }

  let inFlight = false;
  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    try {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (filter) query.set("status", filter);
      const [health, stats, page] = await Promise.all([
        api("/health"), api("/stats"), api(`/images?${query}`),
      ]);
      $("health").textContent = `${health.status} · v${health.version} · ${health.backend} · ${stats.workers} workers`;
      $("health").className = "health ok";
      renderStats(stats);
      renderGallery(page.items);
    } catch (e) {
      showError(e);
      $("health").className = "health bad";
    } finally {
      inFlight = false;
    }
  }
  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
  window.addEventListener("resize", refresh);
})();
