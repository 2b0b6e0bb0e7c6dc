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

  const norm = (s) => (s || "").replace(/\s+/g, " ").trim();

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

  // Whether el sits inside root (a document, shadow root or element), crossing shadow boundaries.
  function within(el, root) {
    for (let n = el; n; n = n.parentNode || n.host) if (n === root) return true;
    return false;
  }

  // aria/ parts are not computed here: the caller looked them up in Chromium's accessibility tree
  // (Accessibility.queryAXTree) and passed the elements in ctx.aria, keyed by the selector value.
  function queryPart(root, sel, ctx) {
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
        const hits = ctx.aria && ctx.aria[sel.value];
        if (!hits) throw new Error(`DROVER_SELECTOR aria/${sel.value} was not looked up in the accessibility tree`);
        return hits.filter((el) => el !== root && within(el, root));
      }
      default:
        throw new Error(`DROVER_SELECTOR unknown selector kind ${sel.kind}`);
    }
  }

  function resolveChain(doc, chain, ctx) {
    let roots = [doc];
    let found = [];
    for (let i = 0; i < chain.length; i++) {
      found = [];
      for (const r of roots) for (const el of queryPart(r, chain[i], ctx)) if (!found.includes(el)) found.push(el);
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

  const parentOf = (n) => n.parentElement || (n.parentNode && n.parentNode.host) || null;

  // How much of el's border box is inside the top viewport and inside every box that clips it on the
  // way (scroll containers, frames), as an IntersectionObserver would see it: {share: 0..1 of its area,
  // x, y: "visible" | "partial" | "hidden" per axis}.
  function visibility(el) {
    const r0 = el.getBoundingClientRect();
    let box = { l: r0.left, t: r0.top, r: r0.right, b: r0.bottom }; // in the current window's coordinates
    let node = el, win = el.ownerDocument.defaultView;
    const clip = (l, t, r, b) => {
      box = { l: Math.max(box.l, l), t: Math.max(box.t, t), r: Math.min(box.r, r), b: Math.min(box.b, b) };
    };
    for (;;) {
      const doc = win.document;
      for (let a = parentOf(node); a && a !== doc.body && a !== doc.documentElement; a = parentOf(a)) {
        const cs = win.getComputedStyle(a);
        if (cs.overflowX === "visible" && cs.overflowY === "visible") continue;
        const ar = a.getBoundingClientRect();
        const l = ar.left + a.clientLeft, t = ar.top + a.clientTop;
        clip(l, t, l + a.clientWidth, t + a.clientHeight);
      }
      clip(0, 0, win.innerWidth, win.innerHeight);
      if (win === window || !win.frameElement) break;
      const fe = win.frameElement;
      const fr = fe.getBoundingClientRect();
      const cs = win.parent.getComputedStyle(fe);
      const ox = fr.left + fe.clientLeft + parseFloat(cs.paddingLeft);
      const oy = fr.top + fe.clientTop + parseFloat(cs.paddingTop);
      box = { l: box.l + ox, t: box.t + oy, r: box.r + ox, b: box.b + oy };
      node = fe; win = win.parent;
    }
    const w = Math.max(0, box.r - box.l), h = Math.max(0, box.b - box.t);
    const axis = (seen, full) => (seen <= 0 ? "hidden" : seen + 0.5 < full ? "partial" : "visible");
    const area = r0.width * r0.height;
    return { share: area ? Math.min(1, (w * h) / area) : 0,
             x: w && h ? axis(w, r0.width) : "hidden", y: w && h ? axis(h, r0.height) : "hidden" };
  }

  // Scroll el into view as the reference replayer does (CDP DOM.scrollIntoViewIfNeeded: Chromium's
  // "center if needed"): per axis, a hidden element is centred, a partly visible one brought to its
  // nearest edge, a visible one left alone -- and instantly, even on pages with scroll-behavior: smooth
  // (an animated scroll would leave the element moving under the press).
  function scrollIntoViewIfNeeded(el) {
    const v = visibility(el);
    if (v.x === "visible" && v.y === "visible") return;
    const align = (a) => (a === "hidden" ? "center" : "nearest");
    el.scrollIntoView({ block: align(v.y), inline: align(v.x), behavior: "instant" });
  }

  // Stop any animated scroll still under way in el's scroll chain (its scrolling ancestors, its document's
  // and, across same-origin frames, theirs): an instant scroll to where a box already is ends a pending smooth
  // scroll and fires nothing.  A smooth scroll the page started just before (a click's handler, say) can begin
  // moving a frame or more later, after the stability wait has seen the element still: the press would land on
  // whatever scrolled in under it.
  function settleScrolls(el) {
    let node = el;
    while (node) {
      const doc = node.ownerDocument;
      for (let p = node.parentElement; p; p = p.parentElement) {
        if (p.scrollHeight > p.clientHeight || p.scrollWidth > p.clientWidth) {
          p.scrollTo({ top: p.scrollTop, left: p.scrollLeft, behavior: "instant" });
        }
      }
      const win = doc.defaultView;
      if (win) win.scrollTo({ top: win.scrollY, left: win.scrollX, behavior: "instant" });
      node = win && win !== window.top && win.frameElement ? win.frameElement : null;
    }
  }

  function findFirst(path, alternatives, wantVisible, ctx) {
    const doc = frameWindow(path).document;
    for (const alt of alternatives) {
      const els = resolveChain(doc, alt.chain, ctx);
      const el = wantVisible ? els.find(isVisible) : els[0];
      if (el) return { index: alt.index, el };
    }
    return null;
  }

  // Resolve when check() returns non-null, re-checking on DOM mutations and every 50 ms.
  // ctx.findMs shortens the wait: then the rejection is DROVER_RETRY, and the caller looks again
  // (aria/ results cannot be refreshed in the page, so the caller polls for them).
  function waitUntil(check, timeoutMs, what, ctx) {
    const polled = ctx.findMs !== undefined;
    const limit = polled ? Math.min(ctx.findMs, timeoutMs) : timeoutMs;
    const code = polled ? "DROVER_RETRY" : "DROVER_TIMEOUT";
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
        finish(reject, new Error(`${code} ${what}`));
      }, Math.max(0, limit));
    });
  }

  const nextFrame = () => new Promise((r) => requestAnimationFrame(() => r()));

  // Until el's box is the same over two animation frames (a layout shift or animated scroll is over).
  async function settle(el, deadline) {
    let prev = null;
    for (;;) {
      const r = el.getBoundingClientRect();
      if (prev && prev.x === r.x && prev.y === r.y && prev.width === r.width && prev.height === r.height) return;
      if (Date.now() >= deadline) throw new Error("DROVER_UNSTABLE element did not stop moving");
      prev = r;
      await nextFrame();
    }
  }

  // Whether every field of `want` (recursively) equals the same field of `have`.
  function deepMatch(want, have) {
    if (want === have) return true;
    if (!want || !have || typeof want !== "object" || (typeof have !== "object" && typeof have !== "function")) return false;
    for (const [k, v] of Object.entries(want)) if (!deepMatch(v, have[k])) return false;
    return true;
  }

  // How a change step fills el (the reference replayer's categories).
  const TYPING_THRESHOLD = 100;
  const TYPEABLE = ["text", "url", "tel", "search", "password", "number", "email"];
  function fillKind(el) {
    const tag = el.tagName;
    if (tag === "SELECT") return "select";
    if (tag === "TEXTAREA") return "typeable";
    if (tag === "INPUT") {
      if (el.type === "checkbox" || el.type === "radio") return "checkable";
      return TYPEABLE.includes(el.type) ? "typeable" : "other";
    }
    if (["checkbox", "radio", "switch"].includes(el.getAttribute("role"))) return "checkable";
    if (el.isContentEditable) return "contenteditable";
    return "unknown";
  }

  function selectValue(el, value) {
    for (const option of el.options) option.selected = false;
    if (el.multiple) {
      for (const option of el.options) option.selected = option.value === value;
    } else {
      for (const option of el.options) {
        if (option.value === value) { option.selected = true; break; }
      }
    }
    el.dispatchEvent(new Event("input", { bubbles: true }));
    el.dispatchEvent(new Event("change", { bubbles: true }));
  }

  const NO_CTX = Object.freeze({});

  const R = {
    frameWindow,
    // Run entry point fn with a context: opts.findMs (see waitUntil) and the aria/ lookups, given as
    // opts.aria = [[selector value, count], ...] with the elements themselves in els, in that order.
    run(opts, fn, args, els) {
      const aria = {};
      let next = 0;
      for (const [key, count] of opts.aria || []) {
        aria[key] = Array.from(els).slice(next, next + count);
        next += count;
      }
      const ctx = Object.freeze({ findMs: opts.findMs, aria });
      return R[fn](...args, ctx);
    },
    // Wait for a visible element; scroll it into view when it is not wholly visible (as the reference does,
    // instantly whatever the page's scroll-behavior); bring the press point itself into view; wait until the point
    // stays put over an animation frame (an animated scroll or layout shift settles first); return it.
    async prepare(path, alternatives, timeoutMs, offset, ctx = NO_CTX) {
      const deadline = Date.now() + timeoutMs;
      const hit = await waitUntil(() => findFirst(path, alternatives, true, ctx), timeoutMs,
                                  "no selector matched a visible element", ctx);
      const el = hit.el;
      settleScrolls(el);
      if (visibility(el).share < 1) scrollIntoViewIfNeeded(el);
      let prev = null, nudges = 0;
      for (;;) {
        const r = topRect(el);
        const px = offset.mode === "offset" ? offset.x : offset.mode === "ratio" ? offset.x * r.width : r.width / 2;
        const py = offset.mode === "offset" ? offset.y : offset.mode === "ratio" ? offset.y * r.height : r.height / 2;
        const x = r.x + px, y = r.y + py;
        const vw = window.innerWidth, vh = window.innerHeight;
        if (x < 0 || y < 0 || x >= vw || y >= vh) {
          // The point is outside the viewport although the element is in view (an element larger than the
          // viewport, an offset beyond its box): scroll the point itself to the middle.
          if (nudges >= 3) throw new Error(`DROVER_OUTSIDE the press point (${Math.round(x)}, ${Math.round(y)}) stays outside the ${vw}x${vh} viewport`);
          nudges += 1;
          window.scrollBy({ left: x < 0 || x >= vw ? x - vw / 2 : 0, top: y < 0 || y >= vh ? y - vh / 2 : 0,
                            behavior: "instant" });
          prev = null;
        } else if (prev && Math.abs(prev.x - x) < 0.5 && Math.abs(prev.y - y) < 0.5) {
          return { index: hit.index, x, y, box: r };
        } else {
          prev = { x, y };
        }
        if (Date.now() >= deadline) throw new Error("DROVER_UNSTABLE element did not become stable and in view");
        await nextFrame();
      }
    },
    // waitForElement as the reference replayer has it: the elements of the first selector alternative
    // that matches anything (visible or not); the count compared with the operator and, when it holds,
    // every element checked against the attributes and (deep, partial) properties; `visible: false`
    // inverts the outcome.  Resolves {index, count} once the outcome is what the step wants.
    waitForElement(path, alternatives, timeoutMs, spec, ctx = NO_CTX) {
      const cmp = { ">=": (a, b) => a >= b, "==": (a, b) => a === b, "<=": (a, b) => a <= b }[spec.operator];
      return waitUntil(() => {
        const doc = frameWindow(path).document;
        let index = null, els = [];
        for (const alt of alternatives) {
          const found = resolveChain(doc, alt.chain, ctx);
          if (found.length) { index = alt.index; els = found; break; }
        }
        let result = cmp(els.length, spec.count);
        if (result && (spec.attributes || spec.properties)) {
          result = els.every((el) => {
            if (spec.attributes) for (const [k, v] of Object.entries(spec.attributes)) if (el.getAttribute(k) !== v) return false;
            return !spec.properties || deepMatch(spec.properties, el);
          });
        }
        return result === spec.visible ? { index, count: els.length } : null;
      }, timeoutMs, `waitForElement ${spec.operator} ${spec.count}${spec.visible ? "" : " (inverted: visible false)"} not satisfied`, ctx);
    },
    // Apply a change step's value as the reference replayer fills a field (puppeteer's Locator.fill):
    //   <select>                      choose the first option with that value; input + change events
    //   checkbox, radio (or role)     {mode: "toggle"} when its state differs from !!value: the caller clicks
    //   text-like input, textarea,    nothing when the value is already there; when the new value extends
    //   contenteditable (< 100 chars) the current one, type only the rest; else clear and type it all:
    //                                 {mode: "type", text} (the caller types, one key per character)
    //   other inputs, long values     set the value at once; input + change events
    // Drover's one deliberate difference: a prefilled contenteditable is extended at its end (the
    // reference types at its start).  The element is scrolled into view first when none of it is
    // visible, and waited for until it stays put, as for a click.
    async prepareChange(path, alternatives, timeoutMs, value, ctx = NO_CTX) {
      const deadline = Date.now() + timeoutMs;
      const { index, el } = await waitUntil(() => findFirst(path, alternatives, true, ctx), timeoutMs,
                                            "no selector matched a visible element", ctx);
      if (visibility(el).share === 0) scrollIntoViewIfNeeded(el);
      await settle(el, deadline);
      const kind = fillKind(el);
      if (kind === "select") {
        selectValue(el, value);
        return { index, mode: "set", text: "" };
      }
      if (kind === "checkable") {
        const state = el.indeterminate || el.getAttribute("aria-checked") === "mixed" ? "mixed"
          : !!(el.checked || el.getAttribute("aria-checked") === "true");
        return { index, mode: state === "mixed" || state !== !!value ? "toggle" : "none", text: "" };
      }
      if (kind === "unknown") {
        throw new Error(`DROVER_UNFILLABLE the element (${el.tagName.toLowerCase()}) cannot be filled: not an input, select, textarea or contenteditable`);
      }
      const editable = kind === "contenteditable";
      const current = editable ? el.innerText : el.value;
      if (kind === "other" || value.length >= TYPING_THRESHOLD) {
        el.focus();
        if (current !== value) {
          if (editable) el.innerText = value; else el.value = value;
          el.dispatchEvent(new Event("input", { bubbles: true }));
          el.dispatchEvent(new Event("change", { bubbles: true }));
        }
        return { index, mode: "set", text: "" };
      }
      if (current === value) return { index, mode: "none", text: "" };
      if (!current || !value.startsWith(current)) {
        if (editable) el.innerText = ""; else el.value = "";
        el.focus();
        return { index, mode: "type", text: value };
      }
      if (editable) {
        el.focus();
        const doc = el.ownerDocument;
        const range = doc.createRange();
        range.selectNodeContents(el);
        range.collapse(false); // at the end: Drover extends a prefilled contenteditable there
        const sel = doc.getSelection();
        sel.removeAllRanges(); sel.addRange(range);
      } else {
        el.value = ""; el.value = current; // the caret goes to the end of the kept prefix
        el.focus();
      }
      return { index, mode: "type", text: value.slice(current.length) };
    },
    scroll(path, alternatives, timeoutMs, x, y, ctx = NO_CTX) {
      if (!alternatives.length) {
        frameWindow(path).scrollTo(x, y);
        return Promise.resolve({ index: null });
      }
      // As the reference: the element is brought into view when none of it is visible, and left to settle.
      const deadline = Date.now() + timeoutMs;
      return waitUntil(() => findFirst(path, alternatives, false, ctx), timeoutMs, "no selector matched", ctx)
        .then(async ({ index, el }) => {
          if (visibility(el).share === 0) scrollIntoViewIfNeeded(el);
          await settle(el, deadline);
          el.scrollTo(x, y);
          return { index };
        });
    },
    // Page-coordinate rect of an element (for screenshots), relative to the top document.
    pageRect(path, alternatives, timeoutMs, ctx = NO_CTX) {
      return waitUntil(() => findFirst(path, alternatives, true, ctx), timeoutMs, "no selector matched a visible element", ctx)
        .then(({ index, el }) => {
          const r = topRect(el);
          return { index, x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height };
        });
    },
  };
  Object.defineProperty(globalThis, KEY, { value: R, enumerable: false });
})();
