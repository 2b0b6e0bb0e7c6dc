// Drover's in-page runtime: selector resolution, waiting and element
// preparation done inside the page, so that one CDP command does what would
// otherwise take a polling loop of round trips.
//
// Installed once per document as a non-enumerable global (Symbol.for key), in
// the page's main world.  Every entry point takes plain JSON arguments and
// returns plain JSON; errors are thrown as Error objects whose message starts
// with a stable code ("DROVER_NOT_FOUND", "DROVER_FRAME", ...).
(() => {
  const KEY = Symbol.for("drover.runtime");
  if (globalThis[KEY]) return;

  const IMPLICIT_ROLES = {
    A: (el) => (el.hasAttribute("href") ? "link" : ""),
    BUTTON: () => "button",
    H1: () => "heading", H2: () => "heading", H3: () => "heading",
    H4: () => "heading", H5: () => "heading", H6: () => "heading",
    IMG: (el) => (el.getAttribute("alt") === "" ? "presentation" : "img"),
    INPUT: (el) => {
      const t = (el.getAttribute("type") || "text").toLowerCase();
      return ({ button: "button", submit: "button", reset: "button", image: "button",
        checkbox: "checkbox", radio: "radio", range: "slider", number: "spinbutton",
        search: "searchbox" })[t] || "textbox";
    },
    SELECT: (el) => (el.multiple || el.size > 1 ? "listbox" : "combobox"),
    TEXTAREA: () => "textbox",
    OPTION: () => "option",
    UL: () => "list", OL: () => "list", LI: () => "listitem",
    NAV: () => "navigation", MAIN: () => "main", FORM: () => "form",
    DIALOG: () => "dialog", TABLE: () => "table",
  };

  const norm = (s) => (s || "").replace(/\s+/g, " ").trim();

  function role(el) {
    const explicit = el.getAttribute && el.getAttribute("role");
    if (explicit) return explicit.split(/\s+/)[0];
    const f = IMPLICIT_ROLES[el.tagName];
    return f ? f(el) : "";
  }

  // Accessible name, following the common cases of the W3C accname algorithm:
  // aria-labelledby, aria-label, <label>, alt/title/placeholder, then content.
  function accName(el) {
    const doc = el.ownerDocument;
    const by = el.getAttribute("aria-labelledby");
    if (by) {
      const parts = by.split(/\s+/).map((id) => doc.getElementById(id)).filter(Boolean);
      if (parts.length) return norm(parts.map((p) => p.textContent).join(" "));
    }
    const label = el.getAttribute("aria-label");
    if (label && norm(label)) return norm(label);
    if (el.labels && el.labels.length) return norm(Array.from(el.labels).map((l) => l.textContent).join(" "));
    for (const attr of ["alt", "title"]) {
      const v = el.getAttribute(attr);
      if (v && norm(v)) return norm(v);
    }
    if (el.tagName === "INPUT") {
      const t = (el.type || "").toLowerCase();
      if (["button", "submit", "reset"].includes(t)) return norm(el.value || (t === "submit" ? "Submit" : ""));
      return norm(el.getAttribute("placeholder") || "");
    }
    if (el.tagName === "TEXTAREA") return norm(el.getAttribute("placeholder") || "");
    return norm(el.textContent);
  }

  // Every element under root, descending into open shadow roots.
  function* deepElements(root) {
    const stack = [root];
    while (stack.length) {
      const node = stack.pop();
      const kids = node.children || [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]);
      if (node.shadowRoot) stack.push(node.shadowRoot);
      if (node !== root && node.nodeType === 1) yield node;
    }
  }

  // Text as text/ selectors see it: textContent without the source of scripts and styles, which
  // would otherwise make <body> match any string a page script contains.
  const NO_TEXT = ["SCRIPT", "STYLE", "TEMPLATE", "HEAD"];
  function shownText(el) {
    let s = "";
    for (const n of el.childNodes) {
      if (n.nodeType === 3) s += n.data;
      else if (n.nodeType === 1 && !NO_TEXT.includes(n.tagName)) s += shownText(n);
    }
    return s;
  }

  function parseAria(value) {
    // "Name[role=\"button\"]" or "Name" ; role may also come alone: "[role=\"button\"]"
    const m = /^(.*?)(?:\[role=["']?([^"'\]]+)["']?\])?$/.exec(value);
    return { name: norm(m[1]), role: m[2] || "" };
  }

  function queryPart(root, sel) {
    switch (sel.kind) {
      case "css":
        return Array.from(root.querySelectorAll(sel.value));
      case "pierce": {
        const out = [];
        for (const el of deepElements(root)) if (el.matches(sel.value)) out.push(el);
        return out;
      }
      case "xpath": {
        const doc = root.ownerDocument || root;
        const res = doc.evaluate(sel.value, root, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
        const out = [];
        for (let i = 0; i < res.snapshotLength; i++) {
          const n = res.snapshotItem(i);
          if (n.nodeType === 1) out.push(n);
        }
        return out;
      }
      case "text": {
        const want = norm(sel.value);
        const hits = [];
        for (const el of deepElements(root)) {
          if (NO_TEXT.includes(el.tagName)) continue;
          const own = norm(el.tagName === "INPUT" ? el.value : shownText(el));
          if (own.includes(want)) hits.push(el);
        }
        // the deepest elements only: drop any hit that contains another hit
        return hits.filter((el) => !hits.some((o) => o !== el && el.contains(o)));
      }
      case "aria": {
        const { name, role: wantRole } = parseAria(sel.value);
        const out = [];
        for (const el of deepElements(root)) {
          if (wantRole && role(el) !== wantRole) continue;
          if (name && accName(el) !== name) continue;
          if (!wantRole && !role(el)) continue;
          out.push(el);
        }
        return out;
      }
      default:
        throw new Error(`DROVER_SELECTOR unknown selector kind ${sel.kind}`);
    }
  }

  function resolveChain(doc, chain) {
    let roots = [doc];
    let found = [];
    for (let i = 0; i < chain.length; i++) {
      found = [];
      for (const r of roots) for (const el of queryPart(r, chain[i])) if (!found.includes(el)) found.push(el);
      if (!found.length) return [];
      roots = found.map((el) => el.shadowRoot || el);
    }
    return found;
  }

  function frameWindow(path) {
    let w = window;
    for (const i of path) {
      const next = w.frames[i];
      if (!next) throw new Error(`DROVER_FRAME no frame at index path [${path.join(",")}]`);
      try {
        void next.document;
      } catch (e) {
        throw new Error(`DROVER_FRAME frame [${path.join(",")}] is cross-origin: ${e.message}`);
      }
      w = next;
    }
    return w;
  }

  function isVisible(el) {
    if (!el.isConnected) return false;
    const style = el.ownerDocument.defaultView.getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }

  // The element's first border box in top-level viewport coordinates (walks out of frames).
  function topRect(el) {
    const rects = el.getClientRects();
    const r = rects.length ? rects[0] : el.getBoundingClientRect();
    let x = r.left, y = r.top;
    let win = el.ownerDocument.defaultView;
    while (win && win !== window.top && win.frameElement) {
      const fe = win.frameElement;
      const fr = fe.getBoundingClientRect();
      const cs = win.parent.getComputedStyle(fe);
      x += fr.left + parseFloat(cs.borderLeftWidth) + parseFloat(cs.paddingLeft);
      y += fr.top + parseFloat(cs.borderTopWidth) + parseFloat(cs.paddingTop);
      win = win.parent;
    }
    return { x, y, width: r.width, height: r.height };
  }

  function findFirst(path, alternatives, wantVisible) {
    const doc = frameWindow(path).document;
    for (const alt of alternatives) {
      const els = resolveChain(doc, alt.chain);
      const el = wantVisible ? els.find(isVisible) : els[0];
      if (el) return { index: alt.index, el };
    }
    return null;
  }

  // Resolve when check() returns non-null, re-checking on DOM mutations and every 50 ms.
  function waitUntil(check, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      let done = false, observer = null, timer = null, poll = null;
      const finish = (fn, v) => {
        if (done) return;
        done = true;
        if (observer) observer.disconnect();
        clearTimeout(timer); clearInterval(poll);
        fn(v);
      };
      const attempt = () => {
        try {
          const v = check();
          if (v !== null && v !== undefined) finish(resolve, v);
        } catch (e) {
          if (String(e.message).startsWith("DROVER_FRAME") && !done) return; // frame may still be loading
          finish(reject, e);
        }
      };
      attempt();
      if (done) return;
      observer = new MutationObserver(attempt);
      observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
      poll = setInterval(attempt, 50);
      timer = setTimeout(() => {
        attempt();
        finish(reject, new Error(`DROVER_TIMEOUT ${what}`));
      }, Math.max(0, timeoutMs));
    });
  }

  const nextFrame = () => new Promise((r) => requestAnimationFrame(() => r()));

  const R = {
    frameWindow,
    // Wait for a visible element, scroll the press point into view, wait until stable; return the point.
    async prepare(path, alternatives, timeoutMs, offset) {
      const deadline = Date.now() + timeoutMs;
      const hit = await waitUntil(() => findFirst(path, alternatives, true), timeoutMs, "no selector matched a visible element");
      let el = hit.el;
      let prev = null;
      for (let i = 0; i < 20 && Date.now() < deadline; i++) {
        const r = topRect(el);
        const px = offset.mode === "offset" ? offset.x : offset.mode === "ratio" ? offset.x * r.width : r.width / 2;
        const py = offset.mode === "offset" ? offset.y : offset.mode === "ratio" ? offset.y * r.height : r.height / 2;
        let x = r.x + px, y = r.y + py;
        const vw = window.innerWidth, vh = window.innerHeight;
        if (x < 0 || y < 0 || x >= vw || y >= vh) {
          // Bring the press point itself into view (not just part of the element).
          el.scrollIntoView({ block: "nearest", inline: "nearest" });
          const r2 = topRect(el);
          x = r2.x + px; y = r2.y + py;
          if (x < 0 || y < 0 || x >= vw || y >= vh) {
            window.scrollBy(x < 0 || x >= vw ? x - vw / 2 : 0, y < 0 || y >= vh ? y - vh / 2 : 0);
          }
          await nextFrame();
          continue;
        }
        if (prev && Math.abs(prev.x - x) < 0.5 && Math.abs(prev.y - y) < 0.5) {
          return { index: hit.index, x, y, box: r };
        }
        prev = { x, y };
        await nextFrame();
      }
      throw new Error("DROVER_UNSTABLE element did not become stable and in view");
    },
    // Count/visibility/properties/attributes wait (waitForElement).
    waitForElement(path, alternatives, timeoutMs, spec) {
      const cmp = { ">=": (a, b) => a >= b, "==": (a, b) => a === b, "<=": (a, b) => a <= b }[spec.operator];
      return waitUntil(() => {
        const doc = frameWindow(path).document;
        for (const alt of alternatives) {
          let els = resolveChain(doc, alt.chain);
          els = els.filter((el) => {
            if (spec.attributes) for (const [k, v] of Object.entries(spec.attributes)) if (el.getAttribute(k) !== v) return false;
            if (spec.properties) for (const [k, v] of Object.entries(spec.properties)) if (JSON.stringify(el[k]) !== JSON.stringify(v)) return false;
            return true;
          });
          const vis = els.filter(isVisible).length;
          const ok = spec.visible ? cmp(vis, spec.count) : !cmp(vis, spec.count);
          if (ok) return { index: alt.index, count: els.length, visible: vis };
        }
        return null;
      }, timeoutMs, `waitForElement ${spec.operator} ${spec.count}${spec.visible ? "" : " (not visible)"} not satisfied`);
    },
    // Decide how a change step applies its value; focus the element; returns {mode, text}.
    prepareChange(path, alternatives, timeoutMs, value) {
      return waitUntil(() => findFirst(path, alternatives, true), timeoutMs, "no selector matched a visible element")
        .then(({ index, el }) => {
          const tag = el.tagName;
          const type = (el.getAttribute("type") || "").toLowerCase();
          const textual = tag === "TEXTAREA" || (tag === "INPUT" && ["", "text", "search", "email", "password", "tel", "url", "number"].includes(type));
          if (tag === "SELECT" || (tag === "INPUT" && !textual)) {
            el.focus();
            el.value = value;
            el.dispatchEvent(new Event("input", { bubbles: true }));
            el.dispatchEvent(new Event("change", { bubbles: true }));
            return { index, mode: "set", text: "" };
          }
          el.focus();
          if (el.isContentEditable) {
            const current = el.textContent;
            const sel = el.ownerDocument.getSelection();
            const range = el.ownerDocument.createRange();
            range.selectNodeContents(el);
            if (value.startsWith(current) && value.length > current.length) {
              range.collapse(false); // extend at the end (the reference puts the caret at the start)
              sel.removeAllRanges(); sel.addRange(range);
              return { index, mode: "type", text: value.slice(current.length) };
            }
            el.textContent = "";
            range.selectNodeContents(el); range.collapse(false);
            sel.removeAllRanges(); sel.addRange(range);
            return { index, mode: "type", text: value };
          }
          const current = el.value;
          if (value.startsWith(current) && value.length > current.length) {
            const end = current.length;
            try { el.setSelectionRange(end, end); } catch (e) { /* type=email/number have no selection API */ }
            return { index, mode: "type", text: value.slice(current.length) };
          }
          el.value = "";
          return { index, mode: "type", text: value };
        });
    },
    scroll(path, alternatives, timeoutMs, x, y) {
      if (!alternatives.length) {
        frameWindow(path).scrollTo(x, y);
        return Promise.resolve({ index: null });
      }
      return waitUntil(() => findFirst(path, alternatives, false), timeoutMs, "no selector matched")
        .then(({ index, el }) => { el.scrollTo(x, y); return { index }; });
    },
    // Page-coordinate rect of an element (for screenshots), relative to the top document.
    pageRect(path, alternatives, timeoutMs) {
      return waitUntil(() => findFirst(path, alternatives, true), timeoutMs, "no selector matched a visible element")
        .then(({ index, el }) => {
          const r = topRect(el);
          return { index, x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height };
        });
    },
  };
  Object.defineProperty(globalThis, KEY, { value: R, enumerable: false });
})();
