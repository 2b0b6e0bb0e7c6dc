"""US keyboard layout for real key events (``Input.dispatchKeyEvent``).

Why a table: a page sees ``key``, ``code`` and ``keyCode`` on every
keydown, and canvas apps read exactly those.  Typing "A" must look like
Shift+KeyA, not like a text insertion, so each character maps to the key
that produces it and the modifiers held.
"""
from __future__ import annotations

from dataclasses import dataclass

MOD_ALT, MOD_CTRL, MOD_META, MOD_SHIFT = 1, 2, 4, 8
MODIFIER_BITS = {"Alt": MOD_ALT, "Control": MOD_CTRL, "Meta": MOD_META, "Shift": MOD_SHIFT}


@dataclass(frozen=True, slots=True)
class KeyDef:
    key: str
    code: str
    key_code: int
    text: str = ""
    shift_key: str | None = None  # what the key produces with Shift held
    location: int = 0


def _build() -> dict[str, KeyDef]:
    table: dict[str, KeyDef] = {}
    for c in "abcdefghijklmnopqrstuvwxyz":
        up = c.upper()
        table[c] = KeyDef(c, f"Key{up}", ord(up), c, up)
        table[up] = KeyDef(up, f"Key{up}", ord(up), up, up)
    shifted_digits = ")!@#$%^&*("
    for i, d in enumerate("0123456789"):
        table[d] = KeyDef(d, f"Digit{d}", ord(d), d, shifted_digits[i])
        table[shifted_digits[i]] = KeyDef(shifted_digits[i], f"Digit{d}", ord(d), shifted_digits[i],
                                          shifted_digits[i])
    punct = [
        ("-", "_", "Minus", 189), ("=", "+", "Equal", 187), ("[", "{", "BracketLeft", 219),
        ("]", "}", "BracketRight", 221), ("\\", "|", "Backslash", 220), (";", ":", "Semicolon", 186),
        ("'", '"', "Quote", 222), (",", "<", "Comma", 188), (".", ">", "Period", 190),
        ("/", "?", "Slash", 191), ("`", "~", "Backquote", 192),
    ]
    for plain, shifted, code, kc in punct:
        table[plain] = KeyDef(plain, code, kc, plain, shifted)
        table[shifted] = KeyDef(shifted, code, kc, shifted, shifted)
    table[" "] = KeyDef(" ", "Space", 32, " ", " ")
    named = [
        ("Enter", "Enter", 13, "\r"), ("Tab", "Tab", 9, ""), ("Backspace", "Backspace", 8, ""),
        ("Escape", "Escape", 27, ""), ("Delete", "Delete", 46, ""), ("Home", "Home", 36, ""),
        ("End", "End", 35, ""), ("PageUp", "PageUp", 33, ""), ("PageDown", "PageDown", 34, ""),
        ("ArrowLeft", "ArrowLeft", 37, ""), ("ArrowUp", "ArrowUp", 38, ""),
        ("ArrowRight", "ArrowRight", 39, ""), ("ArrowDown", "ArrowDown", 40, ""),
        ("Insert", "Insert", 45, ""),
    ]
    for key, code, kc, text in named:
        table[key] = KeyDef(key, code, kc, text)
    table["\n"] = table["\r"] = table["Enter"]
    for key, code, kc in (("Shift", "ShiftLeft", 16), ("Control", "ControlLeft", 17),
                          ("Alt", "AltLeft", 18), ("Meta", "MetaLeft", 91)):
        table[key] = KeyDef(key, code, kc, "", None, 1)
    for n in range(1, 13):
        table[f"F{n}"] = KeyDef(f"F{n}", f"F{n}", 111 + n)
    return table


KEYS: dict[str, KeyDef] = _build()


def key_event(key: str, kind: str, modifiers: int) -> dict[str, object]:
    """The ``Input.dispatchKeyEvent`` params for one ``keyDown``/``keyUp`` of ``key``.

    Unknown single characters (any script) are sent as text with no key code,
    which Chromium delivers as ``keypress``/``input`` the same way IME text is.
    """
    kd = KEYS.get(key)
    if kd is None:
        if len(key) != 1:
            raise KeyError(key)
        kd = KeyDef(key, "", 0, key)
    shown_key, text = kd.key, kd.text
    if modifiers & MOD_SHIFT and kd.shift_key is not None:
        shown_key = text = kd.shift_key
    if modifiers & (MOD_CTRL | MOD_META | MOD_ALT):
        text = ""  # shortcuts produce no text (Ctrl+V pastes, it does not type "v")
    params: dict[str, object] = {
        "type": "keyDown" if kind == "down" else "keyUp",
        "key": shown_key,
        "code": kd.code,
        "windowsVirtualKeyCode": kd.key_code,
        "nativeVirtualKeyCode": kd.key_code,
        "modifiers": modifiers,
        "location": kd.location,
    }
    if kind == "down" and text:
        params["text"] = text
        params["unmodifiedText"] = kd.text
    if kind == "down" and modifiers & (MOD_CTRL | MOD_META) and kd.key.lower() in ("a", "c", "v", "x", "z"):
        # Chromium only runs editing commands for synthetic events when asked to.
        params["commands"] = [{"a": "selectAll", "c": "copy", "v": "paste", "x": "cut", "z": "undo"}[kd.key.lower()]]
    return params


__all__ = ["KeyDef", "KEYS", "MODIFIER_BITS", "MOD_ALT", "MOD_CTRL", "MOD_META", "MOD_SHIFT", "key_event"]
