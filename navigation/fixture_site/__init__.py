"""The bundled fixture site: deterministic pages for Drover's demo, tests and benchmarks.

::

    with FixtureSite() as site:                 # 127.0.0.1, ephemeral port
        site.url("/form.html")                  # "http://127.0.0.1:PORT/form.html"

``FixtureSite(*, users=None, slow_delay=1.0, host="127.0.0.1")`` serves
from a daemon thread; ``stop()`` (or leaving the ``with``) shuts the server
down, ends open connections and joins its threads within a bound.  It
binds 127.0.0.1 only (any other ``host`` is a ``ValueError``), answers with
``Cache-Control: no-store``, serves static files from an in-memory
whitelist (no path reaches the file system) and logs requests at DEBUG to
this module's logger, never to stderr.  No page loads anything from the
network.

Pages (each has a distinct ``<title>``; see ``README.md`` for details)::

    /index.html          links to everything                        "Drover fixture site"
    /form.html           #name #email #city(="Par") #color(red|green|blue) #when(date)
                         #shade(color) #notes #bio(contenteditable "Hello") #agree
                         #submit(aria-label "Send the form"); GET -> /result
    /result?...          #out-<field> for each form field, #out-count    "Drover result"
    /canvas_login.html   sign-in form, on-screen keyboard, hold-to-start, all on canvases
                         (rects below); markers #status / #hold-status   "Drover canvas login"
    /slow?ms=N           answers after N ms (default slow_delay, max 30 s) "Drover slow"
    /shadow.html         nested open shadow roots (#deep-button, #deep-input) and
                         an iframe /frame.html (#frame-button, #frame-input)
    /popup.html          #open-popup opens /popup_target.html ("Drover popup")
    /echo.html           #typed echoed live as text in #echo and relayed to ?frame=URL's
                         #relayed; #notes (textarea), #pad (contenteditable)   "Drover echo"
    /conformance.html    a target for every Recorder step type and selector prefix;
                         #to-page2 -> /conformance2.html
    /aria.html           accessible names only Chromium's tree gets right (aria/ selectors)
    /frames.html         frame [0] and [0,0] with links that navigate the frame only
    /smooth.html         scroll-behavior: smooth, targets far below the fold   "Drover smooth scrolling"
    /big_canvas.html     a canvas taller than the viewport (offset clicks)     "Drover big canvas"
    /error               HTTP 500, "Drover error";  /status/<code>: that status
    POST /api/login      {"user", "password"} -> 200 {"ok": true, "user"} | 401

Canvas login layout: rects ``{x, y, w, h}`` in CSS pixels from the canvas's
top-left corner (:data:`LOGIN_LAYOUT` for ``#login``, :data:`HOLD_LAYOUT`
for ``#hold``), at the default ``?scale=1``; ``?scale=S`` multiplies them,
and the page publishes the scaled values as ``window.loginLayout`` and
``window.holdLayout``.  A click at ``offsetX = x + w/2, offsetY = y + h/2``
hits a control's centre; ``rx = offsetX / canvas.w``.  Typing goes to the
focused field while the canvas (``tabindex=0``) has focus; the PASTE key
inserts ``navigator.clipboard.readText()`` (grant ``clipboardReadWrite``
first), a ``paste`` event (Ctrl+V) inserts its text.  Success sets
``#status[data-state=ok]`` "Welcome, alice" and the title "Drover login
ok"; failure ``data-state=error`` "Wrong user or password" and "Drover login
failed".  ``#hold`` starts (``window.holdStarted = true``,
``#hold-status[data-state=started]``) only for a press of >= 600 ms.

Event log: every page loads ``/events.js``; ``window.droverEvents()``
returns the tab's log (kept in sessionStorage, so it survives same-tab
navigations and includes same-origin iframes), ``window.droverClearEvents()``
empties it.  One entry per event::

    "<page> <type> <target>[ <field>=<value>]..."
    "conformance load /conformance.html"
    "conformance click #click-btn button=0 detail=1"
    "form input #name value=Al"            "form change #agree checked=1"
    "conformance keydown #text-input key=A code=KeyA shift=1"
    "conformance scroll #scroller top=200 left=0"
    "canvas_login mousedown #login button=0 detail=1 x=250 y=58"
    "canvas_login keydown #login key=* code=*"   (password field: masked)

The full format, every event type and its fields are in ``README.md`` and
at the top of ``static/events.js``.
"""
from navigation.fixture_site._server import DEFAULT_USERS, FixtureSite

# Canvas rects at scale 1 (keep in step with static/canvas_login.js; a test compares them).
LOGIN_LAYOUT: dict[str, dict[str, float]] = {
    "canvas": {"w": 400, "h": 300},
    "user": {"x": 120, "y": 40, "w": 260, "h": 36},
    "password": {"x": 120, "y": 88, "w": 260, "h": 36},
    "login": {"x": 120, "y": 136, "w": 120, "h": 36},
    "message": {"x": 20, "y": 180, "w": 360, "h": 24},
    "keyboard": {"x": 20, "y": 212, "w": 360, "h": 76},
    "paste": {"x": 30, "y": 226, "w": 100, "h": 48},
    "backspace": {"x": 150, "y": 226, "w": 100, "h": 48},
    "clear": {"x": 270, "y": 226, "w": 100, "h": 48},
}
HOLD_LAYOUT: dict[str, dict[str, float]] = {
    "canvas": {"w": 240, "h": 80},
    "button": {"x": 20, "y": 10, "w": 200, "h": 60},
}
HOLD_MS = 600

__all__ = ["FixtureSite", "DEFAULT_USERS", "LOGIN_LAYOUT", "HOLD_LAYOUT", "HOLD_MS"]
