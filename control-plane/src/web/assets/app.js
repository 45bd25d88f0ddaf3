// Dray web UI: the live parts of server-rendered pages. No framework; the page works without it
// (every page is a complete snapshot), and this only keeps it current.
(() => {
  /** "1 h 02 min", "3 min 07 s", "12 s" from milliseconds. */
  const formatDuration = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const r = s % 60;
    if (h > 0) return `${h} h ${String(m).padStart(2, "0")} min`;
    if (m > 0) return `${m} min ${String(r).padStart(2, "0")} s`;
    return `${r} s`;
  };

  /** Ticks every [data-since] element: time from data-since to data-until (or now). */
  const tick = () => {
    for (const el of document.querySelectorAll("[data-since]")) {
      const since = Date.parse(el.getAttribute("data-since"));
      const untilAttr = el.getAttribute("data-until");
      const until = untilAttr ? Date.parse(untilAttr) : Date.now();
      if (!Number.isNaN(since)) el.textContent = formatDuration(until - since);
    }
  };
  setInterval(tick, 1000);
  tick();

  // Dialogs: a button with data-dialog-open="id" opens <dialog id>; data-dialog-close closes its dialog.
  document.addEventListener("click", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const opener = target?.closest("[data-dialog-open]");
    if (opener) {
      const dialog = document.getElementById(opener.getAttribute("data-dialog-open"));
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        dialog.showModal();
      }
      return;
    }
    const closer = target?.closest("[data-dialog-close]");
    if (closer) {
      event.preventDefault();
      closer.closest("dialog")?.close();
    }
  });

  // Polled regions: an element with data-poll="url" (every data-poll-ms) gets, from that URL's HTML,
  // a fresh copy of each of its [data-swap-id] parts; what the user added meanwhile (a notice) stays.
  for (const region of document.querySelectorAll("[data-poll]")) {
    const url = region.getAttribute("data-poll");
    const every = Number(region.getAttribute("data-poll-ms")) || 5000;
    setInterval(async () => {
      try {
        const res = await fetch(url, { headers: { accept: "text/html" }, cache: "no-store" });
        if (!res.ok) return;
        const fresh = document.createElement("template");
        fresh.innerHTML = await res.text();
        for (const part of fresh.content.querySelectorAll("[data-swap-id]")) {
          const id = part.getAttribute("data-swap-id");
          const current = region.querySelector(`[data-swap-id="${CSS.escape(id)}"]`);
          if (current && current.outerHTML !== part.outerHTML) current.replaceWith(part);
        }
      } catch {
        // The next poll tries again.
      }
    }, every);
  }

  // The Execution Monitor: #live holds the server-rendered live section. Every event of the run's
  // SSE stream (or, without SSE, a poll) fetches that section again, so the page always ends equal
  // to the stored state, however the stream ended.
  const live = document.getElementById("live");
  if (!live) return;
  const fragmentUrl = live.getAttribute("data-fragment");
  const eventsUrl = live.getAttribute("data-events");
  let final = live.getAttribute("data-final") === "true";
  let source = null;
  let pending = false;
  let again = false;
  let poller = null;

  const refresh = async () => {
    if (pending) {
      again = true;
      return;
    }
    pending = true;
    try {
      const res = await fetch(fragmentUrl, { headers: { accept: "text/html" }, cache: "no-store" });
      if (res.ok) {
        const html = await res.text();
        if (html !== live.innerHTML) live.innerHTML = html;
        final = res.headers.get("x-dray-final") === "true";
        live.setAttribute("data-final", String(final));
        document.querySelectorAll("[data-while-running]").forEach((el) => {
          el.hidden = final;
        });
        tick();
        if (final) stop();
      }
    } catch {
      // A failed fetch is retried by the next event or poll.
    } finally {
      pending = false;
      if (again && !final) {
        again = false;
        void refresh();
      }
    }
  };

  const stop = () => {
    if (source) source.close();
    source = null;
    if (poller) clearInterval(poller);
    poller = null;
  };

  const poll = (ms) => {
    if (poller) clearInterval(poller);
    poller = setInterval(() => void refresh(), ms);
  };

  if (final) return;
  if (eventsUrl && "EventSource" in window) {
    source = new EventSource(eventsUrl);
    // Any event means something changed; the browser resumes with Last-Event-ID after a drop.
    for (const type of [
      "execution.progress",
      "execution.status",
      "execution.stage",
      "execution.error",
      "execution.cancel_requested",
      "message",
    ])
      source.addEventListener(type, () => void refresh());
    source.addEventListener("open", () => void refresh());
    source.addEventListener("error", () => {
      // Closed for good (blocked, or refused): fall back to polling every 2 s.
      if (source && source.readyState === EventSource.CLOSED) poll(2000);
      void refresh();
    });
    // A slow safety net: whatever the stream does, the page converges on the stored state.
    poll(5000);
  } else {
    poll(2000);
  }
})();
