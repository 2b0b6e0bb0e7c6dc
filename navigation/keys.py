"""US keyboard layout for real key events (``Input.dispatchKeyEvent``).

Why a table: a page sees ``key``, ``code`` and ``keyCode`` on every
keydown, and canvas apps read exactly those.  Typing "A" must look like
Shift+KeyA, not like a text insertion, so each character maps to the key
that produces it.

Names: a recorded ``keyDown``/``keyUp`` may name a key by its *value*
(``Shift``, ``a``, ``!``, ``Enter``) or by its *code* (``ShiftLeft``,
``KeyA``, ``Digit1``, ``Numpad1``, ``MetaRight``), as puppeteer's US layout
accepts both (DESIGN.md, "Replay semantics to match").  A code name is the
physical key: with Shift held ``KeyA`` gives ``A``, ``Digit1`` gives ``!``
and ``Numpad1`` gives ``End`` (num lock off).  A value name is that value:
``a`` stays ``a`` whatever is held, as in the reference.

Modifier state is the caller's (:class:`KeyboardState`, one per page), so
Shift pressed in one step is still held in the next.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MOD_ALT, MOD_CTRL, MOD_META, MOD_SHIFT = 1, 2, 4, 8
MODIFIER_BITS = {"Alt": MOD_ALT, "Control": MOD_CTRL, "Meta": MOD_META, "Shift": MOD_SHIFT}
LOCATION_STANDARD, LOCATION_LEFT, LOCATION_RIGHT, LOCATION_NUMPAD, LOCATION_MOBILE = 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class KeyDef:
    """One key name: what it sends plain, and (code names only) what it sends with Shift held."""

    key: str
    code: str
    key_code: int
    text: str = ""
    shift_key: str | None = None
    shift_key_code: int | None = None
    location: int = LOCATION_STANDARD

    def shown(self, shift: bool) -> tuple[str, int, str]:
        """(key value, Windows key code, text) with or without Shift held."""
        key, key_code = self.key, self.key_code
        if shift and self.shift_key is not None:
            key = self.shift_key
            key_code = self.shift_key_code if self.shift_key_code is not None else key_code
        text = key if len(key) == 1 else ""
        if self.text and (not shift or self.shift_key is None):
            text = self.text
        return key, key_code, text


_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_SHIFTED_DIGITS = ")!@#$%^&*("
# code, plain, shifted, Windows virtual-key code (OEM keys of the US layout)
_PUNCTUATION = (
    ("Minus", "-", "_", 189), ("Equal", "=", "+", 187), ("BracketLeft", "[", "{", 219),
    ("BracketRight", "]", "}", 221), ("Backslash", "\\", "|", 220), ("Semicolon", ";", ":", 186),
    ("Quote", "'", '"', 222), ("Comma", ",", "<", 188), ("Period", ".", ">", 190),
    ("Slash", "/", "?", 191), ("Backquote", "`", "~", 192),
)
# Keys whose value is their code (and the Windows virtual-key code they send).
_NAMED = (
    ("Help", 6), ("Backspace", 8), ("Tab", 9), ("Pause", 19), ("CapsLock", 20), ("Escape", 27),
    ("Convert", 28), ("NonConvert", 29), ("PageUp", 33), ("PageDown", 34), ("End", 35), ("Home", 36),
    ("ArrowLeft", 37), ("ArrowUp", 38), ("ArrowRight", 39), ("ArrowDown", 40), ("Select", 41),
    ("PrintScreen", 44), ("Insert", 45), ("Delete", 46), ("ContextMenu", 93), ("NumLock", 144),
    ("ScrollLock", 145), ("AudioVolumeMute", 173), ("AudioVolumeDown", 174), ("AudioVolumeUp", 175),
    ("MediaTrackNext", 176), ("MediaTrackPrevious", 177), ("MediaStop", 178), ("MediaPlayPause", 179),
    ("AltGraph", 225), ("Power", 0), ("Eject", 0),
)
# Key values with no key of their own on a US keyboard: sent with no code.
_CODELESS = (("Accept", 30), ("ModeChange", 31), ("Print", 42), ("Attn", 246), ("ExSel", 248),
             ("EraseEof", 249), ("Play", 250), ("ZoomOut", 251))
# Physical keys whose value differs from their code: code, value, Windows key code.
_ODD_CODES = (("Abort", "Cancel", 3), ("Open", "Execute", 43), ("Props", "CrSel", 247))
# Phone keys (KeyboardEvent location 4, "mobile"): code = value, Windows key code.
_MOBILE = (("SoftLeft", 0), ("SoftRight", 0), ("Camera", 44), ("Call", 0), ("EndCall", 95),
           ("VolumeDown", 182), ("VolumeUp", 183))
# Numpad digits as the reference layout has them: num lock off, so the plain key is the navigation key
# and Shift gives the digit.
_NUMPAD_SHIFTED = {0: ("Insert", 45), 1: ("End", 35), 2: ("ArrowDown", 40), 3: ("PageDown", 34),
                   4: ("ArrowLeft", 37), 5: ("Clear", 12), 6: ("ArrowRight", 39), 7: ("Home", 36),
                   8: ("ArrowUp", 38), 9: ("PageUp", 33)}
_NUMPAD_OPS = (("NumpadMultiply", "*", 106), ("NumpadAdd", "+", 107), ("NumpadSubtract", "-", 109),
               ("NumpadDivide", "/", 111))


def _build() -> dict[str, KeyDef]:
    table: dict[str, KeyDef] = {}

    def value_name(kd: KeyDef) -> None:
        """The key's value as a name of its own (first definition wins: ``Shift`` is ShiftLeft)."""
        table.setdefault(kd.key, KeyDef(kd.key, kd.code, kd.key_code, kd.text, None, None, kd.location))

    for c in _LETTERS:
        code, up = f"Key{c.upper()}", c.upper()
        table[code] = KeyDef(c, code, ord(up), shift_key=up)
        table[c] = KeyDef(c, code, ord(up))
        table[up] = KeyDef(up, code, ord(up))
    for i, d in enumerate("0123456789"):
        code = f"Digit{d}"
        table[code] = KeyDef(d, code, ord(d), shift_key=_SHIFTED_DIGITS[i])
        table[d] = KeyDef(d, code, ord(d))
        table[_SHIFTED_DIGITS[i]] = KeyDef(_SHIFTED_DIGITS[i], code, ord(d))
    for code, plain, shifted, key_code in _PUNCTUATION:
        table[code] = KeyDef(plain, code, key_code, shift_key=shifted)
        table[plain] = KeyDef(plain, code, key_code)
        table[shifted] = KeyDef(shifted, code, key_code)
    table["Space"] = KeyDef(" ", "Space", 32)
    table[" "] = KeyDef(" ", "Space", 32)
    table["Enter"] = KeyDef("Enter", "Enter", 13, "\r")
    table["\r"] = table["\n"] = table["Enter"]
    table["NumpadEnter"] = KeyDef("Enter", "NumpadEnter", 13, "\r", location=LOCATION_NUMPAD)
    for name, key_code in _NAMED:
        table[name] = KeyDef(name, name, key_code)
    for name, key_code in _CODELESS:
        table[name] = KeyDef(name, "", key_code)
    for code, key, key_code in _ODD_CODES:
        table[code] = KeyDef(key, code, key_code)
        table[key] = KeyDef(key, code, key_code)
    for name, key_code in _MOBILE:
        table[name] = KeyDef(name, name, key_code, location=LOCATION_MOBILE)
    for n in range(1, 25):
        table[f"F{n}"] = KeyDef(f"F{n}", f"F{n}", 111 + n)
    for side, location in (("Left", LOCATION_LEFT), ("Right", LOCATION_RIGHT)):
        for key, key_code in (("Shift", 16), ("Control", 17), ("Alt", 18)):
            table[f"{key}{side}"] = KeyDef(key, f"{key}{side}", key_code, location=location)
        table[f"Meta{side}"] = KeyDef("Meta", f"Meta{side}", 91 if side == "Left" else 92, location=location)
    for n in range(10):
        plain, plain_code = _NUMPAD_SHIFTED[n]
        table[f"Numpad{n}"] = KeyDef(plain, f"Numpad{n}", plain_code, shift_key=str(n), shift_key_code=96 + n,
                                     location=LOCATION_NUMPAD)
    table["Clear"] = KeyDef("Clear", "Numpad5", 12, location=LOCATION_NUMPAD)
    # The decimal key with num lock off sends NUL (Delete's key code); Shift gives ".".
    table["NumpadDecimal"] = KeyDef("\u0000", "NumpadDecimal", 46, shift_key=".", shift_key_code=110,
                                    location=LOCATION_NUMPAD)
    table["\u0000"] = KeyDef("\u0000", "NumpadDecimal", 46, location=LOCATION_NUMPAD)
    table["NumpadEqual"] = KeyDef("=", "NumpadEqual", 187, location=LOCATION_NUMPAD)
    for code, key, key_code in _NUMPAD_OPS:
        table[code] = KeyDef(key, code, key_code, location=LOCATION_NUMPAD)
        table[key] = table[code]  # "*", "+", "-", "/" as names are the keypad's keys, as in the reference
    for name in ("ShiftLeft", "ControlLeft", "AltLeft", "MetaLeft"):
        value_name(table[name])  # Shift, Control, Alt, Meta: the left-hand keys
    return table


KEYS: dict[str, KeyDef] = _build()


@dataclass(slots=True)
class KeyboardState:
    """What one page's keyboard holds between steps: modifier bits and the codes still down."""

    modifiers: int = 0
    pressed: set[str] = field(default_factory=set)


def key_def(name: str) -> KeyDef:
    """The definition of a key name (value or code); an unknown single character is sent as text."""
    kd = KEYS.get(name)
    if kd is not None:
        return kd
    if len(name) != 1:
        raise KeyError(name)
    return KeyDef(name, "", 0)


def key_event(key: str, kind: str, modifiers: int, *, auto_repeat: bool = False) -> dict[str, object]:
    """The ``Input.dispatchKeyEvent`` params for one ``keyDown``/``keyUp`` of ``key`` (a value or code name).

    ``modifiers`` are the bits held *after* this event (a Shift keydown is
    itself shifted, its keyup is not).  Unknown single characters (any
    script) are sent as text with no key code, which Chromium delivers as
    ``keypress``/``input`` the same way IME text is.
    """
    kd = key_def(key)
    shown_key, key_code, text = kd.shown(bool(modifiers & MOD_SHIFT))
    if modifiers & (MOD_CTRL | MOD_META | MOD_ALT):
        text = ""  # shortcuts produce no text (Ctrl+V pastes, it does not type "v")
    params: dict[str, object] = {
        "key": shown_key,
        "code": kd.code,
        "windowsVirtualKeyCode": key_code,
        "nativeVirtualKeyCode": key_code,
        "modifiers": modifiers,
        "location": kd.location,
    }
    if kind == "down":
        params["type"] = "keyDown" if text else "rawKeyDown"
        if text:
            params["text"] = text
            params["unmodifiedText"] = text
        if auto_repeat:
            params["autoRepeat"] = True
        if kd.location == LOCATION_NUMPAD:
            params["isKeypad"] = True
    else:
        params["type"] = "keyUp"
    return params


def press(state: KeyboardState, key: str, kind: str) -> dict[str, object]:
    """Update ``state`` for one press or release of ``key`` and return the event to send.

    The modifier bit comes from the key's *value*, so ``ShiftLeft``,
    ``ShiftRight`` and ``Shift`` all hold Shift.
    """
    kd = key_def(key)
    bit = MODIFIER_BITS.get(kd.key, 0)
    if kind == "down":
        repeat = kd.code in state.pressed if kd.code else False
        if kd.code:
            state.pressed.add(kd.code)
        state.modifiers |= bit
        return key_event(key, "down", state.modifiers, auto_repeat=repeat)
    state.modifiers &= ~bit  # a released modifier is no longer held on its own keyup (as in Chrome)
    state.pressed.discard(kd.code)
    return key_event(key, "up", state.modifiers)


__all__ = ["KeyDef", "KEYS", "KeyboardState", "MODIFIER_BITS", "MOD_ALT", "MOD_CTRL", "MOD_META", "MOD_SHIFT",
           "key_def", "key_event", "press"]
