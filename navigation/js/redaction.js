// Drover's screen redaction: hide secret values on the page for the moment a screenshot is taken.
//
// Called with Runtime.callFunctionOn in Drover's own isolated world ("drover-redaction") of one
// frame, never in the page's main world: page scripts cannot read the values passed in, nor patch
// the DOM methods used here.  The DOM itself is shared between worlds, so what is masked here is
// what the screenshot shows.  Each call handles its own frame's document and the open shadow roots
// in it; the Python side (navigation/redaction.py) calls it in every frame of the page.
//
//   op "mark", needFocus   remember the focused element as a secret field (a secret is being typed
//                          into it); returns "marked", "frame" (focus is in a child frame), "none",
//                          or "unfocused" (needFocus and this frame does not have focus)
//   op "redact", values    mask, with one U+2022 per character: every text node, input/textarea
//                          value and visible attribute (placeholder, value, alt, label) that contains
//                          one of ``values`` (longest first), and the whole value of every marked
//                          field (a partly typed secret too); returns the number of masked items
//   op "restore"           put back everything "redact" changed that nobody changed since;
//                          returns the number of restored items
function droverRedaction(op, arg) {
  "use strict";
  const KEY = Symbol.for("drover.redaction");
  const state = globalThis[KEY] || (globalThis[KEY] = { marked: new WeakSet(), undo: [] });
  const BULLET = "\u2022";
  const FRAME_OWNERS = new Set(["IFRAME", "FRAME", "OBJECT", "EMBED"]);
  const NOT_RENDERED = new Set(["SCRIPT", "STYLE", "NOSCRIPT", "TEMPLATE", "TITLE", "TEXTAREA"]);
  const ATTRIBUTES = ["placeholder", "value", "alt", "label"];
  const blot = (s) => BULLET.repeat(Array.from(s).length);

  function focused() {
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    return el;
  }

  function mark(needFocus) {
    if (needFocus && !document.hasFocus()) return "unfocused";
    const el = focused();
    if (!el || el === document.body || el === document.documentElement) return "none";
    if (FRAME_OWNERS.has(el.tagName)) return "frame";
    state.marked.add(el);
    return "marked";
  }

  function restore() {
    let restored = 0;
    for (const u of state.undo.reverse()) {
      if (u.kind === "text") {
        if (u.node.data === u.now) { u.node.data = u.old; restored++; }
      } else if (u.kind === "attr") {
        if (u.el.getAttribute(u.name) === u.now) { u.el.setAttribute(u.name, u.old); restored++; }
      } else if (u.el.value === u.now) {
        u.el.value = u.old;
        if (u.selection && u.selection[0] !== null) {
          u.el.setSelectionRange(u.selection[0], u.selection[1], u.selection[2] || "none");
        }
        restored++;
      }
    }
    state.undo = [];
    return restored;
  }

  function redact(values) {
    if (state.undo.length) restore(); // an earlier capture that was never restored: start clean
    const hides = (s) => typeof s === "string" && s !== "" && values.some((v) => s.includes(v));
    const mask = (s) => {
      for (const v of values) if (s.includes(v)) s = s.split(v).join(blot(v));
      return s;
    };
    const undo = state.undo;
    const done = new Set(); // text nodes already blotted whole (inside a marked contenteditable)
    const setText = (node, now) => {
      undo.push({ kind: "text", node, old: node.data, now });
      node.data = now;
      done.add(node);
    };
    const roots = [document];
    for (let i = 0; i < roots.length; i++) {
      const walker = document.createTreeWalker(roots[i], NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (node.nodeType === Node.TEXT_NODE) {
          const parent = node.parentNode;
          if (done.has(node) || (parent && NOT_RENDERED.has(parent.nodeName)) || !hides(node.data)) continue;
          setText(node, mask(node.data));
          continue;
        }
        const el = node;
        if (el.shadowRoot) roots.push(el.shadowRoot);
        const marked = state.marked.has(el);
        // The value first, then attributes: restoring in reverse puts the value back last, so a
        // masked value="" attribute can never leave its bullets behind as the field's value.
        if (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type !== "file")) {
          const old = el.value;
          if (old && (marked || hides(old))) {
            const selection = el.selectionStart === null ? null
              : [el.selectionStart, el.selectionEnd, el.selectionDirection];
            const now = marked ? blot(old) : mask(old);
            el.value = now;
            if (el.value !== now) el.value = ""; // types that refuse bullets (number, date, ...): blank it
            undo.push({ kind: "value", el, old, now: el.value, selection });
          }
        } else if (marked && el.isContentEditable) {
          const inner = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
          for (let t = inner.nextNode(); t; t = inner.nextNode()) if (t.data) setText(t, blot(t.data));
        }
        for (const name of ATTRIBUTES) {
          const v = el.getAttribute(name);
          if (!hides(v)) continue;
          const now = mask(v);
          undo.push({ kind: "attr", el, name, old: v, now });
          el.setAttribute(name, now);
        }
      }
    }
    return undo.length;
  }

  if (op === "mark") return mark(Boolean(arg));
  if (op === "redact") return redact(arg);
  if (op === "restore") return restore();
  throw new Error(`DROVER_REDACTION unknown operation ${op}`);
}
