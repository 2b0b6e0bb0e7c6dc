// The final state of a replayed recording, read from its main page by both replayers (the
// differential harness evaluates this expression once the last step is done).  Plain JSON only.
// It first waits for the conformance page's timed changes (#late and readyFlag, ~300 ms after load) and
// for two animation frames (the scroll events a last step caused are dispatched at a frame), so the
// state does not depend on which replayer is faster.
new Promise((resolve) => {
  const started = Date.now();
  const timed = () => document.documentElement.dataset.page !== "conformance"
    || (window.readyFlag === true && document.getElementById("late"));
  const poll = () => {
    if (timed() || Date.now() - started > 3000) {
      requestAnimationFrame(() => requestAnimationFrame(() => resolve()));
    } else {
      setTimeout(poll, 20);
    }
  };
  poll();
}).then(() => {
  const controls = {};
  const marks = {};
  const scrolls = {};
  const frames = [];
  const valueOf = (el) => {
    if (el.isContentEditable) return el.innerText;
    if (el.type === "checkbox" || el.type === "radio") return el.checked ? "checked" : "unchecked";
    if (el.tagName === "SELECT" && el.selectedIndex < 0) return "<none>";
    return el.value;
  };
  const visit = (doc, prefix, depth) => {
    for (const el of doc.querySelectorAll("input, select, textarea, [contenteditable]")) {
      if (el.id) controls[prefix + "#" + el.id] = valueOf(el);
    }
    for (const el of doc.querySelectorAll("[data-clicks], [data-dblclicks], [data-state]")) {
      if (!el.id) continue;
      const m = {};
      for (const a of ["data-clicks", "data-dblclicks", "data-state"]) if (el.hasAttribute(a)) m[a] = el.getAttribute(a);
      marks[prefix + "#" + el.id] = m;
    }
    for (const el of doc.querySelectorAll("[id]")) {
      if (el.scrollTop || el.scrollLeft) scrolls[prefix + "#" + el.id] = [Math.round(el.scrollLeft), Math.round(el.scrollTop)];
    }
    const win = doc.defaultView;
    if (depth > 0) frames.push({ frame: prefix, url: win.location.href, title: doc.title });
    if (depth >= 3) return;
    for (let i = 0; i < win.frames.length; i++) {
      let child = null;
      try { child = win.frames[i].document; } catch (e) { frames.push({ frame: `${prefix}[${i}]`, url: "cross-origin", title: "" }); }
      if (child) visit(child, `${prefix}[${i}]`, depth + 1);
    }
  };
  visit(document, "", 0);
  return {
    url: location.href,
    title: document.title,
    events: typeof window.droverEvents === "function" ? window.droverEvents() : null,
    controls, marks, scrolls, frames,
    scroll: [Math.round(window.scrollX), Math.round(window.scrollY)],
    viewport: {
      width: innerWidth, height: innerHeight, dpr: devicePixelRatio, touch: navigator.maxTouchPoints,
      coarse: matchMedia("(pointer: coarse)").matches,
      orientation: screen.orientation ? screen.orientation.type : null,
    },
    online: navigator.onLine,
    focused: document.activeElement && document.activeElement.id ? "#" + document.activeElement.id : null,
  };
})
