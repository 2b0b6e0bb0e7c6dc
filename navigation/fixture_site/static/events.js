/* Drover fixture site: the shared DOM event log.
 *
 * Every page loads this script synchronously in <head>.  It records the DOM
 * events it sees as compact, deterministic strings in sessionStorage
 * ("drover.events"), so the log survives same-tab navigations and is shared
 * with same-origin iframes.  A popup opened with window.open starts with a
 * copy of its opener's log (the browser copies sessionStorage).
 *
 *   window.droverEvents()        -> the tab's whole log (array of strings)
 *   window.droverClearEvents()   -> empties it
 *   window.droverLog(type, target, fields)  -> adds a page-specific entry
 *   window.droverWatch(shadowRoot)          -> also log inside a shadow root
 *
 * Entry: "<page> <type> <target>[ <field>=<value>]..."
 *   page    <html data-page="...">, e.g. "form", "conformance", "frame"
 *   target  "#id" when the element has an id, else its tag name
 *           ("button", "body"); "window" for the document's scroll; for
 *           "load" the URL path ("/form.html", never the query)
 *   value   written raw unless empty or containing whitespace, '"', '\',
 *           '=' or a control character: then JSON-encoded ("Al ice" ->
 *           value="Al ice", "" -> value="")
 * Fields by type (always in this order; modifiers only when held):
 *   load                                 (logged when this script runs)
 *   mousedown mouseup click dblclick auxclick contextmenu
 *                                        button=N detail=N [alt=1] [ctrl=1]
 *                                        [meta=1] [shift=1] [x=N y=N: only on
 *                                        a <canvas>: CSS px from its top-left
 *                                        corner, rounded]
 *   mouseover mouseenter                 only on elements with data-hover
 *   keydown keyup                        key=K code=C [modifiers] [repeat=1]
 *   input change                         value=V | checked=0|1 (checkbox,
 *                                        radio) | text=V (contenteditable)
 *   focus                                inputs, selects, textareas,
 *                                        contenteditable, [tabindex] elements
 *                                        (not buttons); a window re-focus of
 *                                        the same element is not logged again
 *   submit                               (target: the form)
 *   scroll                               top=N left=N, rounded, one entry per
 *                                        scroll event; an entry equal to the
 *                                        previous one is not repeated
 *   paste                                len=N (length of the pasted text)
 * Secrets: on <input type=password> and elements with data-secret, keys are
 * logged as key=* code=* and values as len=N.
 */
(function () {
  "use strict";
  if (typeof window.droverEvents === "function") {
    return;
  }
  var KEY = "drover.events";
  var LIMIT = 10000;
  var page = document.documentElement.getAttribute("data-page") ||
    (location.pathname.replace(/^\/+/, "").replace(/\.html$/, "") || "index");
  var memory = [];
  var useStorage = true;

  function degrade(err) {
    if (useStorage) {
      useStorage = false;
      console.warn("drover events: no sessionStorage, the log is per document:", String(err));
    }
  }

  function readAll() {
    if (!useStorage) {
      return memory.slice();
    }
    try {
      var raw = window.sessionStorage.getItem(KEY);
      var list = raw ? JSON.parse(raw) : [];
      return Array.isArray(list) ? list : [];
    } catch (err) {
      degrade(err);
      return memory.slice();
    }
  }

  function writeAll(list) {
    memory = list.slice();
    if (!useStorage) {
      return;
    }
    try {
      window.sessionStorage.setItem(KEY, JSON.stringify(list));
    } catch (err) {
      degrade(err);
    }
  }

  function append(entry) {
    var list = readAll();
    if (list.length >= LIMIT) {
      return;
    }
    list.push(list.length === LIMIT - 1 ? page + " overflow log limit=" + LIMIT : entry);
    writeAll(list);
  }

  function tok(value) {
    var s = String(value);
    return (s === "" || /[\s"\\=\u0000-\u001f\u007f]/.test(s)) ? JSON.stringify(s) : s;
  }

  function realTarget(e) {
    var path = typeof e.composedPath === "function" ? e.composedPath() : [];
    var t = path.length ? path[0] : e.target;
    if (t && t.nodeType === 3) {
      t = t.parentElement;
    }
    return t;
  }

  function targetName(t) {
    if (typeof t === "string") {
      return t;
    }
    if (!t || t === window || t === document) {
      return "window";
    }
    if (t.nodeType !== 1) {
      return "document";
    }
    return t.id ? "#" + t.id : t.localName;
  }

  function record(type, target, fields) {
    append([page, type, targetName(target)].concat(fields || []).join(" "));
  }

  function mods(e) {
    var f = [];
    if (e.altKey) { f.push("alt=1"); }
    if (e.ctrlKey) { f.push("ctrl=1"); }
    if (e.metaKey) { f.push("meta=1"); }
    if (e.shiftKey) { f.push("shift=1"); }
    return f;
  }

  function isSecret(t) {
    return !!t && t.nodeType === 1 &&
      ((t.localName === "input" && t.type === "password") || t.hasAttribute("data-secret"));
  }

  var NOT_FOCUS_LOGGED = { button: 1, submit: 1, reset: 1, image: 1 };
  function isControl(t) {
    if (!t || t.nodeType !== 1) {
      return false;
    }
    var tag = t.localName;
    if (tag === "input") {
      return !NOT_FOCUS_LOGGED[t.type];
    }
    return tag === "select" || tag === "textarea" || t.isContentEditable ||
      t.hasAttribute("tabindex");
  }

  function valueFields(t) {
    if (!t || t.nodeType !== 1) {
      return [];
    }
    var tag = t.localName;
    if (isSecret(t)) {
      var v = "value" in t ? t.value : t.textContent;
      return ["len=" + String(v || "").length];
    }
    if (tag === "input" && (t.type === "checkbox" || t.type === "radio")) {
      return ["checked=" + (t.checked ? 1 : 0)];
    }
    if (tag === "input" || tag === "select" || tag === "textarea") {
      return ["value=" + tok(t.value)];
    }
    if (t.isContentEditable) {
      return ["text=" + tok(t.textContent)];
    }
    return [];
  }

  // One entry per event even when several watched roots see it (shadow DOM).
  var seen = typeof WeakSet === "function" ? new WeakSet() : null;
  function first(e) {
    if (!seen) {
      return true;
    }
    if (seen.has(e)) {
      return false;
    }
    seen.add(e);
    return true;
  }

  function onMouse(e) {
    if (!first(e)) { return; }
    var t = realTarget(e);
    var f = ["button=" + e.button, "detail=" + e.detail].concat(mods(e));
    if (t && t.localName === "canvas") {
      var box = t.getBoundingClientRect();
      f.push("x=" + Math.round(e.clientX - box.left), "y=" + Math.round(e.clientY - box.top));
    }
    record(e.type, t, f);
  }

  function onHover(e) {
    var t = realTarget(e);
    if (!t || t.nodeType !== 1 || !t.hasAttribute("data-hover") || !first(e)) { return; }
    record(e.type, t, []);
  }

  function onKey(e) {
    if (!first(e)) { return; }
    var t = realTarget(e);
    var f = isSecret(t) ? ["key=*", "code=*"] : ["key=" + tok(e.key), "code=" + tok(e.code)];
    f = f.concat(mods(e));
    if (e.repeat) { f.push("repeat=1"); }
    record(e.type, t, f);
  }

  function onValue(e) {
    if (!first(e)) { return; }
    var t = realTarget(e);
    record(e.type, t, valueFields(t));
  }

  var lastFocus = null;
  function onFocus(e) {
    var t = realTarget(e);
    if (!isControl(t) || !first(e)) { return; }
    if (t === lastFocus) { return; }  // the window got focus back; the element never lost it
    lastFocus = t;
    record("focus", t, []);
  }
  function onBlur(e) {
    // A blur while the document keeps focus is a real one; a window blur is not.
    if (document.hasFocus()) { lastFocus = null; }
  }

  function onSubmit(e) {
    if (!first(e)) { return; }
    record("submit", realTarget(e), []);
  }

  var lastScroll = {};
  function onScroll(e) {
    if (!first(e)) { return; }
    var t = realTarget(e);
    var viewport = !t || t === document || t === window || t === document.documentElement ||
      t === document.scrollingElement;
    var name = viewport ? "window" : targetName(t);
    var top = viewport ? window.scrollY : t.scrollTop;
    var left = viewport ? window.scrollX : t.scrollLeft;
    var entry = [page, "scroll", name, "top=" + Math.round(top), "left=" + Math.round(left)].join(" ");
    if (lastScroll[name] === entry) { return; }  // nothing moved since this target's last entry
    lastScroll[name] = entry;
    append(entry);
  }

  function onPaste(e) {
    if (!first(e)) { return; }
    var text = e.clipboardData ? e.clipboardData.getData("text/plain") : "";
    record("paste", realTarget(e), ["len=" + text.length]);
  }

  var MOUSE = ["mousedown", "mouseup", "click", "dblclick", "auxclick", "contextmenu"];
  function watch(root) {
    var opts = { capture: true, passive: true };
    var i;
    for (i = 0; i < MOUSE.length; i++) { root.addEventListener(MOUSE[i], onMouse, opts); }
    root.addEventListener("mouseover", onHover, opts);
    root.addEventListener("mouseenter", onHover, opts);
    root.addEventListener("keydown", onKey, opts);
    root.addEventListener("keyup", onKey, opts);
    root.addEventListener("input", onValue, opts);
    root.addEventListener("change", onValue, opts);
    root.addEventListener("focus", onFocus, opts);
    root.addEventListener("blur", onBlur, opts);
    root.addEventListener("submit", onSubmit, opts);
    root.addEventListener("scroll", onScroll, opts);
    root.addEventListener("paste", onPaste, opts);
    return root;
  }

  window.droverEvents = function () { return readAll(); };
  window.droverClearEvents = function () { writeAll([]); lastScroll = {}; };
  window.droverLog = function (type, target, fields) {
    var f = [];
    var key;
    for (key in (fields || {})) {
      if (Object.prototype.hasOwnProperty.call(fields, key)) {
        f.push(key + "=" + tok(fields[key]));
      }
    }
    record(String(type), target, f);
  };
  window.droverWatch = watch;

  watch(document);
  record("load", location.pathname, []);
}());
