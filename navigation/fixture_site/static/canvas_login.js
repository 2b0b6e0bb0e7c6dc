/* Drover fixture: a sign-in form and a hold-to-start control drawn on canvases.
 * Layout (CSS px at scale 1) is documented in canvas_login.html and exposed,
 * scaled, as window.loginLayout and window.holdLayout.
 *
 * Page entries in the event log (besides the generic mouse/key/focus/paste ones):
 *   canvas_login field #login name=user|password|none    the focused field changed
 *   canvas_login osk #login key=paste|backspace|clear    an on-screen key was clicked
 *   canvas_login pasted #login field=F len=N             clipboard text inserted
 *   canvas_login paste-failed #login error=NAME          readText() was refused
 *   canvas_login login-ok #login user=NAME               /api/login accepted
 *   canvas_login login-error #login                      /api/login refused
 *   canvas_login login-failed #login status=N            request failed otherwise
 *   canvas_login hold-started #hold                      held >= 600 ms
 *   canvas_login hold-too-short #hold                    released earlier
 */
(function () {
  "use strict";
  var BASE = {
    canvas: { w: 400, h: 300 },
    user: { x: 120, y: 40, w: 260, h: 36 },
    password: { x: 120, y: 88, w: 260, h: 36 },
    login: { x: 120, y: 136, w: 120, h: 36 },
    message: { x: 20, y: 180, w: 360, h: 24 },
    keyboard: { x: 20, y: 212, w: 360, h: 76 },
    paste: { x: 30, y: 226, w: 100, h: 48 },
    backspace: { x: 150, y: 226, w: 100, h: 48 },
    clear: { x: 270, y: 226, w: 100, h: 48 }
  };
  var HOLD_BASE = {
    canvas: { w: 240, h: 80 },
    button: { x: 20, y: 10, w: 200, h: 60 }
  };
  var HOLD_MS = 600;
  var MAX_FIELD = 256;

  var requested = Number(new URLSearchParams(location.search).get("scale") || "1");
  var scale = (requested >= 0.25 && requested <= 4) ? requested : 1;

  function scaled(base) {
    var out = { scale: scale };
    Object.keys(base).forEach(function (name) {
      var r = base[name];
      var s = {};
      Object.keys(r).forEach(function (k) { s[k] = r[k] * scale; });
      out[name] = s;
    });
    return out;
  }
  window.loginLayout = scaled(BASE);
  window.holdLayout = scaled(HOLD_BASE);
  window.holdStarted = false;

  var canvas = document.getElementById("login");
  var holdCanvas = document.getElementById("hold");
  var statusEl = document.getElementById("status");
  var holdStatus = document.getElementById("hold-status");

  var state = {
    fields: { user: "", password: "" },
    focused: null,
    message: "",
    messageKind: "",
    pending: false
  };

  function setup(c, base) {
    var dpr = window.devicePixelRatio || 1;
    c.style.width = (base.w * scale) + "px";
    c.style.height = (base.h * scale) + "px";
    c.width = Math.round(base.w * scale * dpr);
    c.height = Math.round(base.h * scale * dpr);
    var ctx = c.getContext("2d");
    ctx.setTransform(dpr * scale, 0, 0, dpr * scale, 0, 0);  // draw in base units
    return ctx;
  }

  var ctx = setup(canvas, BASE.canvas);
  var hctx = setup(holdCanvas, HOLD_BASE.canvas);

  function box(c, r, fill, stroke) {
    c.fillStyle = fill;
    c.fillRect(r.x, r.y, r.w, r.h);
    if (stroke) {
      c.strokeStyle = stroke;
      c.lineWidth = 2;
      c.strokeRect(r.x + 1, r.y + 1, r.w - 2, r.h - 2);
    }
  }

  function text(c, s, x, y, color, size) {
    c.fillStyle = color;
    c.font = (size || 16) + "px sans-serif";
    c.textBaseline = "middle";
    c.fillText(s, x, y);
  }

  function fieldText(name) {
    var v = state.fields[name];
    return name === "password" ? new Array(v.length + 1).join("\u2022") : v;
  }

  function draw() {
    ctx.clearRect(0, 0, BASE.canvas.w, BASE.canvas.h);
    box(ctx, { x: 0, y: 0, w: BASE.canvas.w, h: BASE.canvas.h }, "#ffffff");
    text(ctx, "Sign in", 20, 18, "#1b1b1b", 18);
    ["user", "password"].forEach(function (name) {
      var r = BASE[name];
      text(ctx, name === "user" ? "User" : "Password", 20, r.y + r.h / 2, "#1b1b1b");
      box(ctx, r, "#ffffff", state.focused === name ? "#1a5fd0" : "#888888");
      ctx.save();
      ctx.beginPath();
      ctx.rect(r.x + 4, r.y, r.w - 8, r.h);
      ctx.clip();
      var shown = fieldText(name) + (state.focused === name ? "|" : "");
      text(ctx, shown, r.x + 8, r.y + r.h / 2, "#1b1b1b");
      ctx.restore();
    });
    var b = BASE.login;
    box(ctx, b, state.pending ? "#7a9be0" : "#1a5fd0");
    text(ctx, state.pending ? "..." : "Log in", b.x + 30, b.y + b.h / 2, "#ffffff");
    var m = BASE.message;
    if (state.message) {
      text(ctx, state.message, m.x, m.y + m.h / 2,
        state.messageKind === "ok" ? "#146c2e" : "#b3261e");
    }
    box(ctx, BASE.keyboard, "#eceff4", "#c0c4cc");
    [["paste", "PASTE"], ["backspace", "\u232b BKSP"], ["clear", "CLEAR"]].forEach(function (k) {
      var r = BASE[k[0]];
      box(ctx, r, "#ffffff", "#888888");
      text(ctx, k[1], r.x + 18, r.y + r.h / 2, "#1b1b1b", 15);
    });
  }

  function inside(r, p) {
    return p.x >= r.x && p.x < r.x + r.w && p.y >= r.y && p.y < r.y + r.h;
  }

  function point(c, e) {
    var rect = c.getBoundingClientRect();
    return { x: (e.clientX - rect.left) / scale, y: (e.clientY - rect.top) / scale };
  }

  function hit(p) {
    var names = ["user", "password", "login", "paste", "backspace", "clear"];
    for (var i = 0; i < names.length; i++) {
      if (inside(BASE[names[i]], p)) { return names[i]; }
    }
    return null;
  }

  function focusField(name) {
    if (state.focused === name) { return; }
    state.focused = name;
    if (name === "password") {
      canvas.setAttribute("data-secret", "");
    } else {
      canvas.removeAttribute("data-secret");
    }
    window.droverLog("field", canvas, { name: name || "none" });
  }

  function insert(s) {
    if (!state.focused) { return 0; }
    var clean = String(s).replace(/[\r\n]+/g, "");
    var room = MAX_FIELD - state.fields[state.focused].length;
    clean = Array.from(clean).slice(0, Math.max(0, room)).join("");
    state.fields[state.focused] += clean;
    return clean.length;
  }

  function backspace() {
    if (!state.focused) { return; }
    var chars = Array.from(state.fields[state.focused]);
    chars.pop();
    state.fields[state.focused] = chars.join("");
  }

  function setStatus(kind, message, title) {
    state.message = message;
    state.messageKind = kind;
    statusEl.setAttribute("data-state", kind);
    statusEl.textContent = message;
    if (title) { document.title = title; }
  }

  function submit() {
    if (state.pending) { return; }
    state.pending = true;
    setStatus("pending", "Signing in\u2026");
    draw();
    var user = state.fields.user;
    fetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: user, password: state.fields.password }),
      cache: "no-store"
    }).then(function (response) {
      return response.json().then(function (body) {
        return { status: response.status, body: body };
      });
    }).then(function (r) {
      if (r.status === 200 && r.body.ok) {
        setStatus("ok", "Welcome, " + r.body.user, "Drover login ok");
        window.droverLog("login-ok", canvas, { user: r.body.user });
      } else if (r.status === 401) {
        setStatus("error", "Wrong user or password", "Drover login failed");
        window.droverLog("login-error", canvas, {});
      } else {
        setStatus("error", "Login request failed (" + r.status + ")", "Drover login failed");
        window.droverLog("login-failed", canvas, { status: r.status });
      }
    }, function (err) {
      setStatus("error", "Login request failed", "Drover login failed");
      window.droverLog("login-failed", canvas, { status: 0, error: String(err && err.name) });
    }).then(function () {
      state.pending = false;
      draw();
    });
  }

  function pasteFromClipboard() {
    var field = state.focused;
    if (!navigator.clipboard || !navigator.clipboard.readText) {
      window.droverLog("paste-failed", canvas, { error: "NoClipboardAPI" });
      return;
    }
    navigator.clipboard.readText().then(function (s) {
      if (state.focused !== field) { field = state.focused; }
      var n = insert(s);
      window.droverLog("pasted", canvas, { field: field || "none", len: n });
      draw();
    }, function (err) {
      window.droverLog("paste-failed", canvas, { error: String(err && err.name) });
      setStatus("error", "Paste refused: " + String(err && err.name));
      draw();
    });
  }

  canvas.addEventListener("click", function (e) {
    if (e.button !== 0) { return; }
    var name = hit(point(canvas, e));
    if (name === "user" || name === "password") {
      focusField(name);
    } else if (name === "login") {
      submit();
    } else if (name === "paste" || name === "backspace" || name === "clear") {
      window.droverLog("osk", canvas, { key: name });
      if (name === "paste") {
        pasteFromClipboard();
      } else if (name === "backspace") {
        backspace();
      } else if (state.focused) {
        state.fields[state.focused] = "";
      }
    } else {
      focusField(null);
    }
    draw();
  });

  canvas.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey) { return; }  // Ctrl+V arrives as a paste event
    if (e.key === "Enter") {
      e.preventDefault();
      submit();
    } else if (!state.focused) {
      return;
    } else if (e.key === "Backspace") {
      e.preventDefault();
      backspace();
    } else if (e.key === "Tab") {
      e.preventDefault();
      focusField(state.focused === "user" ? "password" : "user");
    } else if (e.key === "Escape") {
      focusField(null);
    } else if (Array.from(e.key).length === 1) {
      e.preventDefault();
      insert(e.key);
    }
    draw();
  });

  canvas.addEventListener("paste", function (e) {
    e.preventDefault();
    var s = e.clipboardData ? e.clipboardData.getData("text/plain") : "";
    var n = insert(s);
    window.droverLog("pasted", canvas, { field: state.focused || "none", len: n });
    draw();
  });

  // -- hold to start -------------------------------------------------------
  var hold = { downAt: null, label: "Hold to start" };

  function drawHold() {
    var W = HOLD_BASE.canvas.w, H = HOLD_BASE.canvas.h;
    hctx.clearRect(0, 0, W, H);
    box(hctx, { x: 0, y: 0, w: W, h: H }, "#ffffff");
    var r = HOLD_BASE.button;
    box(hctx, r, window.holdStarted ? "#146c2e" : (hold.downAt !== null ? "#7a9be0" : "#1a5fd0"));
    text(hctx, hold.label, r.x + 16, r.y + r.h / 2, "#ffffff");
  }

  function setHold(stateName, text_) {
    holdStatus.setAttribute("data-state", stateName);
    holdStatus.textContent = text_;
  }

  holdCanvas.addEventListener("mousedown", function (e) {
    if (e.button !== 0 || !inside(HOLD_BASE.button, point(holdCanvas, e))) { return; }
    hold.downAt = e.timeStamp;
    hold.label = window.holdStarted ? "Started" : "Holding\u2026";
    drawHold();
  });

  window.addEventListener("mouseup", function (e) {
    if (e.button !== 0 || hold.downAt === null) { return; }
    var held = e.timeStamp - hold.downAt;
    hold.downAt = null;
    if (held >= HOLD_MS) {
      window.holdStarted = true;
      hold.label = "Started";
      setHold("started", "started");
      window.droverLog("hold-started", holdCanvas, {});
    } else {
      if (!window.holdStarted) {
        hold.label = "Too short: hold longer";
        setHold("too-short", "hold-too-short");
      }
      window.droverLog("hold-too-short", holdCanvas, {});
    }
    drawHold();
  });

  draw();
  drawHold();
}());
