#!/usr/bin/env python3
"""Builds a search and more-like-this task from Debian's manual pages, in
twostage's JSONL formats.

Every English man page in sections 1-8 is an item: its name is the title, its
text (all sections but NAME and SEE ALSO) the description. The summary of the
NAME line ("printf, fprintf \\- formatted output conversion"), with the page's
own names taken out, is a known-item query for the page (unless it is too
short, help2man's "manual page for ..." placeholder, or shared by other pages,
which makes it no known-item query). The pages a page's SEE ALSO section names
are its "more like this" ground truth. There is no interaction log:
events.jsonl is empty on purpose.

The pages are read from .deb files extracted one package per directory (see
scripts/fetch_manpages.sh) and turned into text by the small roff converter
below, which knows enough of man(7), mdoc(7), tbl(1), conditionals, strings
and the pages' own macros (pod2man, DocBook, Asciidoctor, Tcl) for search
text; man or groff are not needed. Standard library only;
deterministic for a given seed.

Writes items.jsonl, queries.jsonl (a sample of the known-item queries),
similar.jsonl, events.jsonl (empty) and README.md.

Usage:
  python3 scripts/manpages_task.py --man /tmp/extracted --out data/manpages \\
      [--test-queries 2000] [--seed 7] [--max-items N]

where /tmp/extracted holds one directory per package, named PACKAGE or
PACKAGE_VERSION (as the .deb's file name has it, e.g. coreutils_9.1-1), with
the package's files under it (usr/share/man/man1/ls.1.gz, ...).
"""
import argparse
import bz2
import gzip
import json
import lzma
import os
import random
import re
import statistics
import sys
import unicodedata
import zlib
from urllib.parse import unquote

DESCRIPTION_CHARS = 20000
# The catalog refuses text values over 64 KiB; 20000 characters are normally
# far below that, but a page of 4-byte characters would not be.
DESCRIPTION_MAX_BYTES = 64 << 10

MAN_SECTION_DIR = re.compile(r"man[1-8]\w*$")
PAGE_FILE = re.compile(r"(.+)\.([1-8]\w*)(?:\.(gz|bz2|xz|lzma))?$")

# ---------------------------------------------------------------------------
# roff: inline escapes

# Special characters (\(xx and \[xx]) that matter in running text; anything
# else renders as nothing. Quotes become ASCII ones (so that a query's "word"
# matches the text's), other symbols their Unicode characters.
SPECIAL = {
    "em": "—", "en": "–", "hy": "-", "mi": "-", "pl": "+", "eq": "=", "aq": "'",
    "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'", "ga": "`", "aa": "'",
    "ti": "~", "ha": "^", "rs": "\\", "sl": "/", "ba": "|", "br": "|", "bv": "|",
    "ul": "_", "ru": "_", "bu": "•", "ci": "○", "sq": "□", "co": "©", "rg": "®",
    "tm": "™", "de": "°", "mu": "×", "di": "÷", "+-": "±", "<=": "≤", ">=": "≥",
    "!=": "≠", "==": "≡", "~~": "≈", "~=": "≅", "->": "→", "<-": "←", "<>": "↔",
    "rA": "⇒", "lA": "⇐", "hA": "⇔", "ua": "↑", "da": "↓", "la": "⟨", "ra": "⟩",
    "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›", "ss": "ß", "ae": "æ", "AE": "Æ",
    "ct": "¢", "Po": "£", "Eu": "€", "eu": "€", "Ye": "¥", "ps": "¶", "sc": "§",
    "dg": "†", "dd": "‡", "lh": "☜", "rh": "☞", "OK": "✓", "12": "½", "14": "¼",
    "34": "¾", "S1": "¹", "S2": "²", "S3": "³", "if": "∞", "pt": "∝", "mo": "∈",
    "no": "¬", "AN": "∧", "OR": "∨", "fa": "∀", "te": "∃", "sr": "√", "is": "∫",
    "es": "∅", "*a": "α", "*b": "β", "*g": "γ", "*d": "δ", "*e": "ε", "*l": "λ",
    "*m": "μ", "*p": "π", "*s": "σ", "*t": "τ", "*W": "Ω", "*S": "Σ", "*D": "Δ",
    "hbar": "ħ", "at": "@", "sh": "#", "Do": "$", "lB": "[", "rB": "]", "lC": "{",
    "rC": "}", "ff": "ff", "fi": "fi", "fl": "fl",
    "Fi": "ffi", "Fl": "ffl", "r!": "¡", "r?": "¿", "tno": "¬", "nbsp": " ",
    "u2010": "-", "u2011": "-", "u2013": "–", "u2014": "—", "u2018": "'",
    "u2019": "'", "u201C": '"', "u201D": '"',
}
# \('e, \(:u ...: a letter with a combining accent.
ACCENTS = {"'": "\u0301", "`": "\u0300", ":": "\u0308", "^": "\u0302", "~": "\u0303",
           ",": "\u0327", "o": "\u030a", "v": "\u030c"}

# Predefined strings of groff's an/doc macros and of pod2man/DocBook
# preambles whose definitions this converter does not follow.
DEFAULT_STRINGS = {
    "R": "®", "Tm": "™", "lq": '"', "rq": '"', "S": "", "Aq": "'", "C`": '"',
    "C'": '"', "L\"": '"', "R\"": '"', "PI": "pi", "--": "--", "HF": "",
    "Lq": '"', "Rq": '"', "Ba": "|", "Le": "≤", "Ge": "≥", "Lt": "<", "Gt": ">",
    "Pm": "±", "If": "∞", "Na": "NaN", "Am": "&", "Pi": "π", "Px": "POSIX",
    "Ai": "ANSI", "ua": "↑", "Ua": "↑", "Q": '"', "U": '"',
}

# One escape sequence, everything after the backslash. The delimited forms
# (\h'..', \w'..', ...) use a backreference for the delimiter.
ESCAPE = re.compile(r"""\\(?:
    (?P<font>[fFmM](?:\(..|\[[^\]]*\]|\\\*(?:\(..|\[[^\]]*\]|.)|.))
  | \((?P<sp>..)
  | \[(?P<lsp>[^\]]*)\]
  | \*(?:\((?P<str2>..)|\[(?P<strl>[^\]\s]*)[^\]]*\]|(?P<str1>.))
  | (?P<reg>[ngkYV][+-]?(?:\(..|\[[^\]]*\]|.))
  | (?P<size>s(?:[+-]?(?:\(..|\[[^\]]*\]|[1-3]\d|\d)|[+-]?'[^']*'))
  | (?P<hmove>h)(?P<hd>.)(?:(?!(?P=hd)).)*(?P=hd)
  | (?P<delim>[vwlLoDXZbxNSRAB])(?P<dd>.)(?:(?!(?P=dd)).)*(?P=dd)
  | \$(?:\(..|\[[^\]]*\]|.)
  | (?P<ch>.)
  )""", re.X | re.S)

SIMPLE_ESCAPE = {
    "e": "\\", "\\": "\\", "-": "-", " ": " ", "~": " ", "0": " ", "t": " ",
    "'": "'", "`": "`", ".": ".", "_": "_", "E": "\\", "!": "", "?": "",
}


class Strings:
    """roff strings (.ds) plus the character translation of .tr."""

    def __init__(self):
        self.values = dict(DEFAULT_STRINGS)
        self.tr = {}


def inline(text, strings, depth=0):
    """`text` (one line of roff) as plain text: escapes interpreted, fonts,
    sizes, motions and other typesetting dropped."""
    if "\\" not in text:
        return text.translate(strings.tr) if strings.tr else text

    def escape(m):
        if m.group("font") or m.group("reg") or m.group("size"):
            return ""
        sp = m.group("sp")
        if sp is not None:
            return special(sp)
        lsp = m.group("lsp")
        if lsp is not None:
            return special(lsp)
        name = m.group("str2") or m.group("strl") or m.group("str1")
        if name is not None:
            value = strings.values.get(name, "")
            return inline(value, strings, depth + 1) if depth < 8 else ""
        if m.group("hmove"):
            # A positive motion separates words on the terminal (DocBook's
            # list bullets); a negative one does not matter for text.
            return "" if "-" in m.group(0)[3:4] else " "
        if m.group("delim"):
            return ""
        ch = m.group("ch")
        if ch is None:
            return ""
        if ch in SIMPLE_ESCAPE:
            return SIMPLE_ESCAPE[ch]
        # \& \| \^ \c \{ \} \% \: \/ \, \) \p \r \u \d \z ... print nothing.
        return "" if ch.isalnum() or ch in "&|^{}%:/,)\"#" else ch

    out = ESCAPE.sub(escape, text)
    return out.translate(strings.tr) if strings.tr else out


def special(name):
    """A \\(xx or \\[name] special character."""
    if name in SPECIAL:
        return SPECIAL[name]
    if name.startswith("u") and re.fullmatch(r"u[0-9A-Fa-f]{4,6}(?:_[0-9A-Fa-f]{4,6})*", name):
        try:
            return "".join(chr(int(p, 16)) for p in name[1:].split("_"))
        except ValueError:
            return ""
    if name.startswith("char") and name[4:].isdigit():
        return chr(int(name[4:]))
    if len(name) == 2 and name[0] in ACCENTS and name[1].isalpha():
        return unicodedata.normalize("NFC", name[1] + ACCENTS[name[0]])
    return ""


def strip_comment(line):
    """`line` without a \\" or \\# comment (not counting an escaped backslash)."""
    i = line.find("\\")
    if i == -1:
        return line
    while i != -1 and i + 1 < len(line):
        nxt = line[i + 1]
        if nxt == '"' or nxt == "#":
            return line[:i]
        i = line.find("\\", i + 2)
    return line


def split_args(s):
    """Macro arguments: blank-separated, "double quoted" ones may hold blanks
    ("" inside is a quote); escapes are left in place for inline()."""
    args = []
    i, n = 0, len(s)
    while i < n:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            break
        buf = []
        if s[i] == '"':
            i += 1
            while i < n:
                c = s[i]
                if c == '"':
                    if i + 1 < n and s[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                if c == "\\" and i + 1 < n:
                    buf.append(s[i:i + 2])
                    i += 2
                    continue
                buf.append(c)
                i += 1
        else:
            while i < n and s[i] not in " \t":
                if s[i] == "\\" and i + 1 < n:
                    buf.append(s[i:i + 2])
                    i += 2
                    continue
                buf.append(s[i])
                i += 1
        args.append("".join(buf))
    return args


def join_continuations(lines):
    """Lines ending in an unescaped backslash continue on the next line."""
    out, acc = [], ""
    for line in lines:
        trail = len(line) - len(line.rstrip("\\"))
        if trail % 2 == 1:
            acc += line[:-1]
            continue
        out.append(acc + line)
        acc = ""
    if acc:
        out.append(acc)
    return out


# ---------------------------------------------------------------------------
# roff: output


class Out:
    """Words of one section; `glue` joins the next piece to the last one
    without a blank (\\c, mdoc's Ns and punctuation)."""

    def __init__(self):
        self.parts = []
        self.glue_next = False

    def put(self, text, glue=False):
        if not text:
            return
        if (glue or self.glue_next) and self.parts:
            self.parts[-1] += text
        else:
            self.parts.append(text)
        self.glue_next = False

    def text(self):
        return " ".join(" ".join(self.parts).split())


# ---------------------------------------------------------------------------
# roff: mdoc(7)

MDOC_OPEN = {"(", "["}
MDOC_CLOSE = {".", ",", ";", ":", ")", "]", "?", "!"}
# Enclosures: the rest of the line, between a pair of characters.
MDOC_ENCLOSE = {"Op": ("[", "]"), "Pq": ("(", ")"), "Dq": ('"', '"'), "Qq": ('"', '"'),
                "Sq": ("'", "'"), "Aq": ("<", ">"), "Bq": ("[", "]"), "Brq": ("{", "}"),
                "Ql": ("'", "'")}
# Open and close halves of multi-line enclosures.
MDOC_OPENERS = {"Oo": "[", "Po": "(", "Do": '"', "Qo": '"', "So": "'", "Ao": "<",
                "Bo": "[", "Bro": "{", "Eo": "", "Xo": "", "Fo": ""}
MDOC_CLOSERS = {"Oc": "]", "Pc": ")", "Dc": '"', "Qc": '"', "Sc": "'", "Ac": ">",
                "Bc": "]", "Brc": "}", "Ec": "", "Xc": "", "Fc": ")"}
# Macros whose arguments are printed as they are.
MDOC_PLAIN = {"Ad", "An", "Ar", "Cd", "Cm", "Dv", "Em", "Er", "Ev", "Fa", "Ft",
              "Ic", "Li", "Ms", "Mt", "No", "Pa", "Sx", "Sy", "Tn", "Va", "Vt",
              "Lb", "Fd", "Hf", "Ot", "Fr", "Es", "En", "Ap"}
MDOC_SYSTEMS = {"Ux": "UNIX", "Bx": "BSD", "At": "AT&T UNIX", "Bsx": "BSD/OS",
                "Fx": "FreeBSD", "Nx": "NetBSD", "Ox": "OpenBSD", "Dx": "DragonFly"}
MDOC_STANDARDS = {
    "-ansiC": "ANSI X3.159-1989 (ANSI C89)", "-ansiC-89": "ANSI X3.159-1989 (ANSI C89)",
    "-isoC": "ISO/IEC 9899:1990 (ISO C90)", "-isoC-90": "ISO/IEC 9899:1990 (ISO C90)",
    "-isoC-99": "ISO/IEC 9899:1999 (ISO C99)", "-isoC-2011": "ISO/IEC 9899:2011 (ISO C11)",
    "-p1003.1": "IEEE Std 1003.1 (POSIX.1)", "-p1003.1-88": "IEEE Std 1003.1-1988 (POSIX.1)",
    "-p1003.1-90": "IEEE Std 1003.1-1990 (POSIX.1)", "-p1003.1-96": "ISO/IEC 9945-1:1996 (POSIX.1)",
    "-p1003.1-2001": "IEEE Std 1003.1-2001 (POSIX.1)", "-p1003.1-2004": "IEEE Std 1003.1-2004 (POSIX.1)",
    "-p1003.1-2008": "IEEE Std 1003.1-2008 (POSIX.1)", "-p1003.2": "IEEE Std 1003.2 (POSIX.2)",
    "-p1003.2-92": "IEEE Std 1003.2-1992 (POSIX.2)", "-xpg4": "X/Open Portability Guide Issue 4 (XPG4)",
    "-xpg4.2": "X/Open Portability Guide Issue 4, Version 2 (XPG4.2)", "-susv2": "Version 2 of the Single UNIX Specification (SUSv2)",
    "-susv3": "Version 3 of the Single UNIX Specification (SUSv3)", "-susv4": "Version 4 of the Single UNIX Specification (SUSv4)",
    "-svid4": "System V Interface Definition, Fourth Edition (SVID4)", "-ieee754": "IEEE Std 754-1985",
}
MDOC_CALLABLE = (set(MDOC_ENCLOSE) | set(MDOC_OPENERS) | set(MDOC_CLOSERS) | MDOC_PLAIN
                 | set(MDOC_SYSTEMS) | {"Fl", "Xr", "Nm", "Ns", "Pf", "Fn", "In", "St", "Ta", "Lk"})


def is_delim(token):
    return token in MDOC_OPEN or token in MDOC_CLOSE or token == "|"


def put_word(out, token, strings):
    """A non-macro token: punctuation sticks to its neighbours."""
    if token in MDOC_CLOSE:
        out.put(token, glue=True)
    elif token in MDOC_OPEN:
        out.put(token)
        out.glue_next = True
    else:
        out.put(inline(token, strings))


def mdoc_render(tokens, out, strings, page_name):
    """Renders a line of mdoc tokens (callable macros and words) into `out`."""
    i, n = 0, len(tokens)
    while i < n:
        macro = tokens[i]
        i += 1
        if macro not in MDOC_CALLABLE:
            put_word(out, macro, strings)
            continue
        # The macro's own arguments run to the next callable macro.
        j = i
        while j < n and tokens[j] not in MDOC_CALLABLE:
            j += 1
        args = tokens[i:j]
        words = [a for a in args if not is_delim(a)]
        if macro in MDOC_ENCLOSE:
            # Encloses the rest of the line except its closing punctuation.
            end = n
            while end > i and tokens[end - 1] in MDOC_CLOSE:
                end -= 1
            inner = Out()
            mdoc_render(tokens[i:end], inner, strings, page_name)
            left, right = MDOC_ENCLOSE[macro]
            out.put(left + inner.text() + right)
            i = end
            continue
        if macro in MDOC_OPENERS:
            if macro == "Fo" and words:
                out.put(inline(words[0], strings) + "(")
                i += 1
            else:
                out.put(MDOC_OPENERS[macro])
                if macro == "Eo" and words:
                    out.put(inline(words[0], strings))
                    i += 1
            out.glue_next = True
            continue
        if macro in MDOC_CLOSERS:
            out.put(MDOC_CLOSERS[macro], glue=True)
            continue
        if macro == "Ns":
            out.glue_next = True
            continue
        if macro == "Ta":
            continue
        if macro == "Pf":
            if i < n:
                out.put(inline(tokens[i], strings))
                out.glue_next = True
                i += 1
            continue
        if macro == "Xr":
            if len(words) >= 2 and args[0] == words[0] and args[1] == words[1]:
                out.put(f"{inline(words[0], strings)}({inline(words[1], strings)})")
                i += 2
            elif words:
                out.put(inline(words[0], strings))
                i += 1
            continue
        if macro == "Fn":
            if words and args[0] == words[0]:
                name = inline(words[0], strings)
                fargs = []
                k = i + 1
                while k < j and not is_delim(tokens[k]):
                    fargs.append(inline(tokens[k], strings))
                    k += 1
                out.put(f"{name}({', '.join(fargs)})")
                i = k
            continue
        if macro == "St":
            if words:
                out.put(MDOC_STANDARDS.get(words[0], words[0].lstrip("-")))
                i += 1
            continue
        if macro in MDOC_SYSTEMS:
            text = MDOC_SYSTEMS[macro]
            if words and args[0] == words[0]:
                text += " " + inline(words[0], strings)
                i += 1
            out.put(text)
            continue
        if macro == "Lk":
            # Link text when there is one, else the address.
            if words:
                out.put(inline(words[1] if len(words) > 1 else words[0], strings))
            i = j
            continue
        if macro == "In":
            if words:
                out.put(f"<{inline(words[0], strings)}>")
                i += 1
            continue
        # Flags, names and the plain macros: each argument a word, with
        # Fl's dash and Nm's and Ar's defaults.
        if macro == "Nm" and not words:
            out.put(page_name)
        if macro == "Ar" and not words:
            out.put("file ...")
        if macro == "Fl" and (not args or is_delim(args[0])):
            out.put("-")
        for a in args:
            if is_delim(a):
                put_word(out, a, strings)
            elif macro == "Fl":
                out.put("-" + inline(a, strings))
            else:
                out.put(inline(a, strings))
        i = j


# ---------------------------------------------------------------------------
# roff: a page

REQUEST = re.compile(r"[.']\s*([^\s\\]*)(.*)")
TABLE_END = re.compile(r"[.']\s*TE\b")
TABLE_FORMAT = re.compile(r"[.']\s*T&")
TABLE_CELL = re.compile(r"\t|T\{|T\}")

# man(7) macros whose arguments are alternately set in two fonts, i.e. joined
# without blanks, and those whose arguments are words.
MAN_ALTERNATING = {"BR", "BI", "IB", "IR", "RI", "RB", "MR"}
MAN_WORDS = {"B", "I", "SM", "SB", "SS", "SY", "UE", "ME"}
# Requests that start a paragraph.
PARAGRAPH = {"PP", "LP", "P", "IP", "TP", "HP", "SS", "sp", "Pp", "Lp", "Ss", "Bl", "Bd"}


def condition(cond, strings):
    """Whether a .if/.ie condition holds for a groff-compatible nroff."""
    neg = cond.startswith("!")
    if neg:
        cond = cond[1:]
    if cond in ("n", "o"):
        value = True
    elif cond in ("t", "e", "v"):
        value = False
    elif cond.startswith("d") and len(cond) > 1:
        value = cond[1:].strip() in strings.values
    elif cond.startswith("r") and len(cond) > 1:
        value = False
    elif cond and not cond[0].isalnum() and cond[0] not in "(\\-+":
        # 'a'b' string comparison
        d = cond[0]
        parts = cond[1:].split(d)
        value = len(parts) >= 2 and inline(parts[0], strings) == inline(parts[1], strings)
    else:
        # A numeric expression: the only register worth knowing is .g (groff).
        expr = re.sub(r"\\n(?:\(\.g|\[\.g\])", "1", cond)
        expr = re.sub(r"\\n(?:\(..|\[[^\]]*\]|.)", "0", expr).strip("()")
        m = re.fullmatch(r"([-+]?\d+)(?:([<>]=?|==?)([-+]?\d+))?", expr)
        if not m:
            value = False
        elif m.group(2) is None:
            value = int(m.group(1)) > 0
        else:
            a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
            value = {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b, "=": a == b, "==": a == b}[op]
    return value != neg


def split_condition(rest):
    """(condition, body) of a .if/.ie request's arguments."""
    rest = rest.lstrip()
    if rest[:1] in ("'", '"') or (rest[:1] == "!" and rest[1:2] in ("'", '"')):
        start = 1 if rest[0] != "!" else 2
        d = rest[start - 1]
        # 'x'y' runs to the third delimiter
        k = rest.find(d, start)
        k = rest.find(d, k + 1) if k != -1 else -1
        if k != -1:
            return rest[: k + 1], rest[k + 1:].lstrip()
    m = re.match(r"\S+", rest)
    if not m:
        return "", ""
    return m.group(0), rest[m.end():].lstrip()


class Page:
    """The text of one man page, by section."""

    def __init__(self, name):
        self.name = name
        self.sections = [("", Out())]
        self.names = []          # mdoc .Nm names of the NAME section
        self.summary = None      # mdoc .Nd

    @property
    def out(self):
        return self.sections[-1][1]

    def heading(self, title):
        self.sections.append((" ".join(title.upper().split()).strip(":"), Out()))

    def section_text(self, *titles):
        return " ".join(o.text() for t, o in self.sections if t in titles)

    def text_except(self, *titles):
        return " ".join(t for t in (o.text() for h, o in self.sections if h not in titles) if t)


def convert(source, name):
    """Parses roff `source` (man(7) or mdoc(7)) into a Page."""
    page = Page(name)
    strings = Strings()
    lines = join_continuations(source.split("\n"))
    n = len(lines)
    i = 0
    pending_heading = False   # .SH without arguments: the title is the next line
    last_if = True            # the condition of the last .ie, for .el
    table = None              # None, "format" or "data" inside .TS/.TE
    macros = {}               # the page's own macros: name -> body lines
    renamed = {}              # .als aliases of built-in macros
    expanded = 0              # lines added by macro expansion, bounded
    spacing = True            # mdoc's .Sm
    while i < n:
        raw = lines[i]
        i += 1
        line = strip_comment(raw)
        if table is not None and not TABLE_END.match(line):
            if table == "format":
                # The options line ends in ';', the format lines in '.'.
                if line.rstrip().endswith("."):
                    table = "data"
                continue
            if TABLE_FORMAT.match(line):
                table = "format"
                continue
            if line.strip() in ("_", "=", "\\_", "\\="):
                continue
            if not line[:1] in (".", "'"):
                cells = TABLE_CELL.split(line)
                page.out.put(" ".join(inline(c, strings) for c in cells))
                continue
        if not line[:1] in (".", "'"):
            # Text line.
            glue = line.rstrip().endswith("\\c")
            text = inline(line, strings)
            if pending_heading:
                page.heading(text)
                pending_heading = False
            else:
                page.out.put(text)
            if glue:
                page.out.glue_next = True
            continue
        m = REQUEST.match(line)
        req, rest = m.group(1), m.group(2)
        if not req:
            continue
        req = renamed.get(req, req)
        if req in ("de", "de1", "am", "am1", "ig"):
            # A macro definition (kept, for the page's own macros carry
            # much of the text of Tcl's, groff's or xterm's pages), or an
            # ignored block, up to its end.
            args = split_args(rest)
            end = "."   # the block ends with a call of this name: `..`, `.  .`
            if req == "ig" and args:
                end = args[0]
            elif req != "ig" and len(args) > 1:
                end = args[1]
            ends = re.compile(r"[.']\s*" + re.escape(end) + r"(?:\s|$)")
            start = i
            while i < n and not ends.match(lines[i]):
                i += 1
            if req != "ig" and args:
                body = lines[start:i]
                macros[args[0]] = (macros.get(args[0], []) + body) if req.startswith("am") else body
                renamed.pop(args[0], None)
            i += 1
            continue
        if req == "als":
            args = split_args(rest)
            if len(args) == 2:
                if args[1] in macros:
                    macros[args[0]] = macros[args[1]]
                else:
                    renamed[args[0]] = renamed.get(args[1], args[1])
            continue
        if req in macros:
            body = expand_macro(macros[req], split_args(rest))
            expanded += len(body)
            if expanded <= MAX_EXPANDED_LINES:
                lines[i:i] = body
                n = len(lines)
            continue
        if req == "Sm" and rest.split()[:1] in (["off"], ["on"]):
            spacing = rest.split()[0] == "on"
            continue
        if req in ("if", "ie", "el"):
            if req == "el":
                cond_true, body = not last_if, rest.lstrip()
            else:
                cond, body = split_condition(rest)
                cond_true = condition(cond, strings)
                if req == "ie":
                    last_if = cond_true
            block = body.startswith("\\{")
            if block:
                body = body[2:]
            if cond_true:
                # The body is a line of its own; \} of a taken block are
                # printed as nothing by inline().
                if body.strip():
                    i -= 1
                    lines[i] = body
            elif block:
                depth = 1 + body.count("\\{") - body.count("\\}")
                while depth > 0 and i < n:
                    depth += lines[i].count("\\{") - lines[i].count("\\}")
                    i += 1
            continue
        args = split_args(rest)
        if req == "ds" or req == "as":
            m2 = re.match(r"\s*(\S+)\s?(.*)", rest)
            if m2:
                value = m2.group(2)
                if value.startswith('"'):
                    value = value[1:]
                if req == "as":
                    value = strings.values.get(m2.group(1), "") + value
                strings.values[m2.group(1)] = value
            continue
        if req == "rm":
            for a in args:
                strings.values.pop(a, None)
                macros.pop(a, None)
            continue
        if req == "tr":
            chars = inline(rest.strip(), strings)
            for a, b in zip(chars[0::2], chars[1::2] + " " * (len(chars) % 2)):
                strings.tr[ord(a)] = b
            continue
        if req == "TS":
            table = "format"
            continue
        if req == "TE":
            table = None
            continue
        if req in ("EQ", "PS"):
            end = ".EN" if req == "EQ" else ".PE"
            while i < n and not lines[i].startswith(end):
                i += 1
            i += 1
            continue
        if req in PARAGRAPH and page.sections[-1][0] == "NAME" and page.out.parts:
            # The NAME section is one paragraph; what follows it before the
            # next heading (pod without DESCRIPTION, pcre2demo) is text.
            page.heading("")
        if req in ("SH", "Sh"):
            if args:
                page.heading(mdoc_text(args, strings, page) if req == "Sh" else inline(" ".join(args), strings))
            else:
                pending_heading = True
            continue
        if req in MAN_ALTERNATING:
            if req == "MR" and len(args) >= 2:
                # groff 1.23's .MR page section [trailer]
                page.out.put(inline(f"{args[0]}({args[1]}){''.join(args[2:])}", strings))
            else:
                page.out.put("".join(inline(a, strings) for a in args))
            continue
        if req in MAN_WORDS:
            page.out.put(" ".join(inline(a, strings) for a in args))
            continue
        if req == "IP" or req == "TQ":
            if args:
                tag = inline(args[0], strings)
                if any(c.isalnum() for c in tag):  # not a bare bullet
                    page.out.put(tag)
            continue
        if req == "OP" and args:
            page.out.put("[" + " ".join(inline(a, strings) for a in args) + "]")
            continue
        if req == "URL" and len(args) >= 2:
            # DocBook's own macro: address, link text, trailing punctuation.
            page.out.put(inline(args[1], strings) + inline("".join(args[2:]), strings))
            continue
        # mdoc
        if req == "Nm" and page.sections[-1][0] == "NAME":
            names = [inline(a, strings) for a in args if not is_delim(a)]
            page.names.extend(names)
            continue
        if req == "Nd":
            page.summary = mdoc_text(args, strings, page)
            continue
        if req == "Nm" and args and not page.names:
            page.names.append(inline(args[0], strings))
        if req in MDOC_CALLABLE or req in ("It", "D1", "Dl", "Ss") or req.startswith("%"):
            tokens = args if req not in MDOC_CALLABLE else [req] + args
            if spacing:
                mdoc_render(tokens, page.out, strings, page_display_name(page))
            else:
                # .Sm off: the words of macro lines are set without blanks.
                words = Out()
                mdoc_render(tokens, words, strings, page_display_name(page))
                page.out.put("".join(words.parts), glue=True)
            continue
        if req == "Ex" and "-std" in args:
            who = [inline(a, strings) for a in args if a != "-std"] or [page_display_name(page)]
            page.out.put(f"The {' '.join(who)} utility exits 0 on success, and >0 if an error occurs.")
            continue
        if req == "Rv" and "-std" in args:
            who = [inline(a, strings) + "()" for a in args if a != "-std"] or ["function"]
            page.out.put(f"The {' '.join(who)} function returns the value 0 if successful; otherwise "
                         "the value -1 is returned and the global variable errno is set to indicate the error.")
            continue
        # Everything else (.TH .PP .TP .RS .br .sp .nf .Bl .Pp .IX ...)
        # prints nothing.
    return page


MAX_EXPANDED_LINES = 200_000
MACRO_ARG = re.compile(r"\\\$(?:(\d)|\((\d\d)|\[(\d+)\]|([*@]))")


def expand_macro(body, args):
    """The lines of a call of a page's own macro: the definition's doubled
    backslashes halved (roff's copy mode), then its arguments put in."""
    def arg(m):
        if m.group(4):
            return " ".join(args)
        k = int(m.group(1) or m.group(2) or m.group(3))
        return args[k - 1] if 0 < k <= len(args) else ""
    out = []
    for line in body:
        line = MACRO_ARG.sub(arg, line.replace("\\\\", "\\"))
        out.append(line.replace("\\n(.$", str(len(args))).replace("\\n[.$]", str(len(args))))
    return out


def page_display_name(page):
    return page.names[0] if page.names else (page.name or "")


def mdoc_text(args, strings, page):
    out = Out()
    mdoc_render(args, out, strings, page_display_name(page))
    return out.text()


# ---------------------------------------------------------------------------
# reading the pages

SO_LINE = re.compile(r"^[.']\s*so\s+(\S+)")


DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress,
              ".lzma": lzma.decompress}


def read_source(path):
    """A page's text; pages that are not UTF-8 are taken as Latin-1."""
    with open(path, "rb") as f:
        data = f.read()
    # Decompressing the whole file is much faster than GzipFile.read.
    data = DECOMPRESS.get(os.path.splitext(path)[1], bytes)(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def so_target(source):
    """The target of a page that is only a `.so` redirect, else None."""
    for line in source.split("\n"):
        s = line.strip()
        if not s or s.startswith(('.\\"', "'\\\"", '\\"')) or s == ".":
            continue
        m = SO_LINE.match(s)
        return m.group(1) if m else None
    return None


def page_key(filename):
    """(name, section) from a page's file name such as ls.1.gz, or None."""
    m = PAGE_FILE.match(filename)
    return (m.group(1), m.group(2).lower()) if m else None


def package_dirs(roots):
    """[(package, version, path)] of the extracted packages under `roots`,
    sorted by package; the first of a package seen twice is kept."""
    found = {}
    for root in roots:
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if not os.path.isdir(path):
                continue
            package, _, version = entry.partition("_")
            found.setdefault(package, (package, unquote(version), path))
    return [found[p] for p in sorted(found)]


def man_files(package_root):
    """Paths of the English pages in a package: files in a man<N> directory
    whose parent is called man (so usr/share/man/man1, or PostgreSQL's
    usr/share/postgresql/15/man/man1, but not usr/share/man/de/man1)."""
    for dirpath, dirnames, filenames in os.walk(package_root):
        dirnames.sort()
        if MAN_SECTION_DIR.match(os.path.basename(dirpath)) and \
                os.path.basename(os.path.dirname(dirpath)) == "man":
            for f in sorted(filenames):
                yield os.path.join(dirpath, f)


SUMMARY_SEP = re.compile(r"\s+(?:\\?-{1,2}|–|—)\s+")
NEXT_ENTRY = re.compile(r"\s((?:[\w.:+-]+,\s*)*[\w.:+-]+)\s+(?:\\?-{1,2}|–|—)\s+")
# help2man's summary when a program's --help has none.
PLACEHOLDER = re.compile(r"manual page for\b", re.I)
SEE_ALSO_REF = re.compile(r"(?<![\w.:+@-])([A-Za-z0-9_][\w.:+@-]*)\s?\((\d[A-Za-z0-9]*)\)")


def name_line(page):
    """(names, summary) of a page's NAME section, summary None if it has none."""
    if page.summary is not None:
        return page.names, page.summary
    text = page.section_text("NAME")
    m = SUMMARY_SEP.search(text)
    if not m:
        return [], None
    names = [w for w in re.split(r"[,\s]+", text[: m.start()]) if w]
    summary = text[m.end():]
    # A NAME section may describe several programs (dot, neato, ...): the
    # summary is the first one's, and all the names are the page's.
    more = NEXT_ENTRY.search(summary)
    if more:
        names += [w for e in NEXT_ENTRY.finditer(summary) for w in re.split(r"[,\s]+", e.group(1)) if w]
        summary = summary[: more.start()]
    return names, summary.strip()


def known_item_query(summary, names):
    """The summary without the page's names (whole words, any case), or ''."""
    names = sorted({n for n in names if n}, key=len, reverse=True)
    if names:
        pattern = r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)"
        summary = re.sub(pattern, " ", summary, flags=re.I)
    return " ".join(summary.split()).strip(" ,;:-.").strip()


def cut(text, limit=DESCRIPTION_CHARS):
    """`text` cut at a word boundary to at most `limit` characters (and at
    most the catalog's limit of bytes)."""
    while True:
        if len(text) > limit:
            space = text.rfind(" ", 0, limit + 1)
            text = text[:space] if space > 0 else text[:limit]
        if len(text.encode("utf-8")) <= DESCRIPTION_MAX_BYTES:
            return text
        limit = len(text) * 3 // 4


def dump(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--man", action="append", required=True, metavar="DIR",
                    help="directory of extracted packages, one subdirectory each (repeatable)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--test-queries", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-items", type=int, default=None,
                    help="keep a seeded sample of this many pages")
    args = ap.parse_args()

    packages = package_dirs(args.man)
    if not packages:
        sys.exit("no extracted packages under " + ", ".join(args.man))

    # Pass 1: every page file, real pages and redirects (symlinks, .so).
    pages = {}        # item id -> dict
    aliases = {}      # id of a redirect -> id of its target
    skipped = {"redirect": 0, "duplicate": 0, "empty": 0, "unreadable": 0}
    page_packages = {}
    for package, version, root in packages:
        count = 0
        for path in man_files(root):
            key = page_key(os.path.basename(path))
            if key is None:
                continue
            item_id = f"{key[0]}.{key[1]}"
            if os.path.islink(path):
                target = page_key(os.path.basename(os.readlink(path)))
                if target:
                    aliases.setdefault(item_id, f"{target[0]}.{target[1]}")
                skipped["redirect"] += 1
                continue
            try:
                source = read_source(path)
            except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error):
                skipped["unreadable"] += 1
                continue
            target = so_target(source)
            if target is not None:
                t = page_key(os.path.basename(target))
                if t:
                    aliases.setdefault(item_id, f"{t[0]}.{t[1]}")
                skipped["redirect"] += 1
                continue
            if item_id in pages:
                skipped["duplicate"] += 1
                continue
            page = convert(source, key[0])
            full = page.text_except("NAME", "SEE ALSO")
            description = cut(full)
            if not description:
                skipped["empty"] += 1
                continue
            names, summary = name_line(page)
            pages[item_id] = {
                "id": item_id, "name": key[0], "section": key[1], "package": package,
                "description": description, "cut": len(description) < len(full),
                "names": names, "summary": summary,
                "see_also": page.section_text("SEE ALSO"),
            }
            count += 1
        page_packages[package] = (version, count)

    ids = sorted(pages)
    if args.max_items is not None and args.max_items < len(ids):
        ids = sorted(random.Random(args.seed).sample(ids, args.max_items))
    catalog = set(ids)

    # Names a SEE ALSO may use for a page: its own id, its redirects, and
    # the other names of its NAME line in its section, in that order.
    resolve = {i: i for i in ids}
    for alias, target in sorted(aliases.items()):
        hops = 0
        while target in aliases and target not in catalog and hops < 8:
            target, hops = aliases[target], hops + 1
        if target in catalog:
            resolve.setdefault(alias, target)
    for i in ids:
        for n in pages[i]["names"]:
            resolve.setdefault(f"{n}.{pages[i]['section']}", i)
    by_name_digit = {}
    for ref, target in resolve.items():
        name, _, sec = ref.rpartition(".")
        by_name_digit.setdefault((name, sec[:1]), set()).add(target)

    def lookup(name, sec):
        """The item a reference name(sec) means, or None."""
        sec = sec.lower()
        hit = resolve.get(f"{name}.{sec}")
        if hit is None:
            # ls(1) for a page filed as ls.1posix, SSL_read(3) for SSL_read.3ssl
            candidates = sorted(by_name_digit.get((name, sec[:1]), ()))
            hit = candidates[0] if candidates else None
        return hit

    similar = []
    for i in ids:
        rel = {}
        for name, sec in SEE_ALSO_REF.findall(pages[i]["see_also"]):
            hit = lookup(name, sec)
            if hit is not None and hit != i:
                rel[hit] = 1
        if rel:
            similar.append({"id": i, "relevant": dict(sorted(rel.items()))})

    candidates = []
    dropped = {"short": 0, "placeholder": 0, "shared": 0}
    for i in ids:
        p = pages[i]
        if p["summary"] is None:
            continue
        q = known_item_query(p["summary"], [p["name"]] + p["names"])
        if len(q.split()) < 2:
            dropped["short"] += 1
        elif PLACEHOLDER.match(q):
            dropped["placeholder"] += 1
        else:
            candidates.append((i, q))
    # A summary many pages share (all of PCRE2's pages say "Perl-compatible
    # regular expressions (revised API)") cannot find one page: such
    # queries are left out rather than graded against one of them.
    sharing = {}
    for _, q in candidates:
        sharing[q.lower()] = sharing.get(q.lower(), 0) + 1
    valid = [(i, q) for i, q in candidates if sharing[q.lower()] == 1]
    dropped["shared"] = len(candidates) - len(valid)
    rng = random.Random(args.seed)
    chosen = sorted(rng.sample(valid, min(args.test_queries, len(valid))))
    if len(chosen) < args.test_queries:
        print(f"warning: only {len(valid)} valid queries, fewer than --test-queries {args.test_queries}",
              file=sys.stderr)

    os.makedirs(args.out, exist_ok=True)

    def write(name, rows):
        with open(os.path.join(args.out, name), "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(dump(row) + "\n")

    write("items.jsonl", ({"id": i, "title": pages[i]["name"],
                           "text": {"description": pages[i]["description"]},
                           "tags": {"section": [pages[i]["section"][0]]},
                           "attributes": {"package": pages[i]["package"]}} for i in ids))
    write("queries.jsonl", ({"id": f"q-{k + 1:05d}", "query": q, "relevant": {i: 1}, "kind": "name-summary"}
                            for k, (i, q) in enumerate(chosen)))
    write("similar.jsonl", similar)
    write("events.jsonl", [])

    words = [len(pages[i]["description"].split()) for i in ids]
    mean_words = statistics.fmean(words) if words else 0.0
    truncated = sum(1 for i in ids if pages[i]["cut"])
    by_section = {}
    for i in ids:
        s = pages[i]["section"][0]
        by_section[s] = by_section.get(s, 0) + 1
    mean_rel = statistics.fmean(len(s["relevant"]) for s in similar) if similar else 0.0
    in_catalog = {}
    for i in ids:
        in_catalog[pages[i]["package"]] = in_catalog.get(pages[i]["package"], 0) + 1
    package_lines = "\n".join(
        f"| {p} | {page_packages[p][0] or '?'} | {in_catalog.get(p, 0)} |"
        for p in sorted(page_packages))
    command = "python3 scripts/manpages_task.py --man <extracted packages> --out " + args.out + \
        f" --test-queries {args.test_queries} --seed {args.seed}" + \
        (f" --max-items {args.max_items}" if args.max_items is not None else "")

    readme = f"""# Debian manual pages

A search and more-like-this task built from the English manual pages
(sections 1-8) of {len(page_packages)} Debian packages. Each page is an item; the summary of
its NAME line is a known-item query for it, and the pages its SEE ALSO
section names are its "more like this" ground truth. There is no interaction
log: `events.jsonl` is empty on purpose, so whatever learns from behaviour
(the ranker, co-visitation) has nothing to learn from here.

Generated, not committed (see `.gitignore`). Made with:

    bash scripts/fetch_manpages.sh
    # which downloads the packages below and runs
    {command}

## Counts

- items: {len(ids)} ({", ".join(f"section {s}: {c}" for s, c in sorted(by_section.items()))})
- queries: {len(chosen)} sampled with `random.Random({args.seed})` from {len(valid)} valid ones
- similar lines: {len(similar)} (mean {mean_rel:.1f} relevant pages each)
- mean description length: {mean_words:.0f} words; {truncated} descriptions cut at {DESCRIPTION_CHARS} characters
- page files passed over: {skipped["redirect"]} redirects (symlinks and `.so` pages),
  {skipped["duplicate"]} duplicates of a page of an earlier package, {skipped["empty"]} without text,
  {skipped["unreadable"]} unreadable

## Files

- `items.jsonl`: id `<name>.<section>` (the page's file name, e.g. `ls.1`,
  `SSL_read.3ssl`), title = the name, `text.description` = the page's text
  without its NAME and SEE ALSO sections, whitespace collapsed, cut at a word
  boundary at {DESCRIPTION_CHARS} characters; tag `section` (its digit), attribute
  `package`. A page two packages ship is kept from the first package by name.
- `queries.jsonl`: `kind` `name-summary`; the query is the NAME line's
  summary (`printf, fprintf \\- formatted output conversion` gives
  `formatted output conversion`) with any of the page's names removed as
  whole words (case-insensitive); summaries of fewer than 2 words after that
  are not used ({dropped["short"]} pages), nor help2man's placeholder "manual page
  for ..." ({dropped["placeholder"]}), nor a text that other pages' queries share too
  ({dropped["shared"]} pages: all of PCRE2's pages say "Perl-compatible regular
  expressions (revised API)"). `relevant` = the page, grade 1.
- `similar.jsonl`: `{{"id":"<page>","relevant":{{"<page>":1,...}}}}` for each page whose
  SEE ALSO names another page of the catalog (`ls(1)`, `.BR ls (1)`,
  `.Xr ls 1`), resolving names that are redirects (`fprintf(3)` is
  `printf.3`) and sections given by their digit only (`SSL_read(3)`);
  references to the page itself or to pages not in the catalog are dropped.
- `events.jsonl`: empty.

## Packages

Debian 12 (bookworm) packages, version from the .deb file name, and the
pages each contributes to the catalog:

| package | version | items |
| --- | --- | --- |
{package_lines}

License: each page keeps its own license, recorded in the package's
`/usr/share/doc/<package>/copyright`.
"""
    with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(readme)

    print(f"packages {len(page_packages)}; items {len(ids)}; queries {len(chosen)} of {len(valid)} valid; "
          f"similar {len(similar)}; mean description {mean_words:.0f} words")
    print("passed over: " + ", ".join(f"{k} {v}" for k, v in skipped.items()))


if __name__ == "__main__":
    main()
