"""Model and dataset cards → lineage edges: which repo was trained on, fine-tuned from, adapted from,
merged from or quantised from which.

Cards are self-reported and messy, so nothing in a card can stop a read: every problem becomes a
:class:`CardWarning` naming the card (its path relative to the tree, or ``dump:ROW``), and a warning
never quotes card content beyond a repo id. Ids compare case-insensitively; a node keeps the spelling of
its own card, else the first spelling seen.
"""

from __future__ import annotations

import codecs
import importlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from expunge.errors import ExpungeError

RELATIONS = (
    "trained_on",
    "finetune",
    "adapter",
    "merge",
    "quantized",
    "base",
    "component",
    "subset",
    "derived",
)
MODEL_RELATIONS = frozenset({"adapter", "merge", "quantized", "finetune"})
KINDS = ("model", "dataset", "unknown")

README_CAP = 1 << 20  # bytes of a README read: front matter sits at the top; the prose is not needed
JSON_CAP = 4 << 20  # a config larger than this is not a config
MAX_COMPONENTS = 64  # diffusers pipelines have a handful; a card with more is odd, not a pipeline
MAX_ENTRIES = 10_000  # entries read from one list field

_ID_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_ID = re.compile(rf"{_ID_PART}(?:/{_ID_PART})?")
_CACHE = re.compile(r"(?i)(?:models|datasets)--(.+)")
_HOSTS = ("huggingface.co/", "www.huggingface.co/", "hf.co/")
_LICENSE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_LINEAGE_KEYS = frozenset(
    {"datasets", "base_model", "base_model_relation", "source_datasets", "license", "tags"}
)


@dataclass(frozen=True, slots=True)
class Edge:
    parent: str  # canonical id: lowercase "owner/name" (or "name" when unresolved)
    child: str
    relation: str  # one of RELATIONS
    declared: bool  # stated in a card field (True) or inferred from config hints (False)
    card: str  # the card it came from (relative path or "dump:ROW")


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    display: str
    kind: str  # "model" | "dataset" | "unknown"
    has_card: bool = False  # a card of its own was read (else it is only named by other cards)
    gated: bool = False  # the card says access is gated
    license: str = ""  # the card's license tag when it is a plain tag


@dataclass(frozen=True, slots=True)
class CardWarning:
    card: str
    message: str


@dataclass
class Cards:
    nodes: dict[str, Node]
    edges: list[Edge]
    warnings: list[CardWarning]
    cards_read: int


def shown(text: str) -> str:
    """A card's label (a path in a tree someone else made) safe to print: control, format (bidi
    override, zero-width) and line-break characters escaped, so a folder name can neither drive the
    terminal nor forge a line of output."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() and unicodedata.category(ch) != "Cf" else ascii(ch)[1:-1] for ch in text
    )


def _valid(text: str) -> bool:
    return _ID.fullmatch(text) is not None and "--" not in text and ".." not in text


# Letters from other scripts that render like Latin ones: an id typed (or disguised) with them names the
# same repo to a reader, so it must name the same node, or a card could hide from the report.
_HOMOGLYPHS = str.maketrans(
    "\u0430\u0432\u0435\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443\u0445\u0455\u0456\u0458\u0501\u051b\u051d\u0261"
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0405\u0406\u0408\u04ae"
    "\u03b1\u03bf\u03bd\u03c1\u03b9\u03ba\u03c5\u03c7\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d"
    "\u039f\u03a1\u03a4\u03a5\u03a7\u0131",
    "abekmhopctyxsijdqwgABEKMHOPCTXSIJYaovpikuxABEZHIKMNOPTYXi",
)
_REVISION_PATHS = frozenset({"tree", "blob", "resolve", "raw", "commit", "commits", "discussions"})


def _fold(text: str) -> str:
    """``text`` with compatibility forms (fullwidth letters), accents, invisible and control characters
    removed, Unicode dashes as ``-`` and Cyrillic/Greek look-alikes as Latin letters."""
    out = []
    for ch in unicodedata.normalize("NFKD", text):
        cat = unicodedata.category(ch)
        if cat in ("Mn", "Me", "Cf", "Cc") and ch not in "\t\n\r":
            continue
        out.append("-" if cat == "Pd" else ch)
    return "".join(out).translate(_HOMOGLYPHS)


def _decorated(s: str) -> bool:
    """A valid-looking id that still carries a prefix or suffix that is not part of the repo's name."""
    low = s.lower()
    return low.endswith(".git") or low.startswith(("datasets/", "models/"))


def normalise_id(text: object) -> str | None:
    """A repo id as written (case kept) without URL, cache-folder or revision decoration; None when the
    text cannot be a repo id (a local path, a Space, three path parts...). Look-alike and invisible
    characters are folded first (see :func:`_fold`)."""
    if not isinstance(text, str):
        return None
    s = text.strip()
    if _valid(s) and not _decorated(s):
        return s
    if len(s) > 1000:
        return None
    if not (s.isascii() and s.isprintable()):
        s = _fold(s).strip()
        if not s.isascii():
            return None
    low = s.lower()
    url = False
    if low.startswith("hf://"):
        s, low, url = s[5:], low[5:], True
    else:
        web = low.startswith(("https://", "http://"))
        if web:
            cut = low.index("//") + 2
            s, low = s[cut:], low[cut:]
        host = next((h for h in _HOSTS if low.startswith(h)), None)
        if host is not None:
            s, low, url = s[len(host) :], low[len(host) :], True
        elif web:
            return None  # a link to some other site
    s = re.split(r"[?#@]", s, maxsplit=1)[0].rstrip("/")  # a revision may hold slashes (refs/pr/1)
    parts = s.split("/")
    while len(parts) >= 2 and parts[0].lower() in ("datasets", "models"):
        parts = parts[1:]  # reserved on the Hub: never an owner (datasets/squad is the ownerless squad)
    if parts and parts[0].lower() == "spaces":
        return None
    if url or (len(parts) >= 3 and parts[2].lower() in _REVISION_PATHS):
        parts = parts[:2]
    if len(parts) == 1:
        cache = _CACHE.fullmatch(parts[0])
        if cache is not None:
            parts = cache.group(1).split("--")
            if len(parts) != 2:
                return None
    if not 1 <= len(parts) <= 2:
        return None
    while parts[-1].lower().endswith(".git"):  # a clone URL names the repo too
        parts[-1] = parts[-1][:-4]
    out = "/".join(parts)
    return out if _valid(out) else None


def canonical_id(text: str) -> str | None:
    """The id a repo is known by in the graph: lowercase ``owner/name`` (or ``name``), or None."""
    norm = normalise_id(text)
    return None if norm is None else norm.lower()


class _Builder:
    """Collects nodes, deduplicated edges and warnings from any number of sources."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str, str], Edge] = {}
        self.warnings: list[CardWarning] = []
        self.cards_read = 0
        self.first_ref: dict[str, tuple[str, str]] = {}  # id → (card, spelling) while no card of its own
        self.variants: list[tuple[str, str, str]] = []  # (card, id, spelling) that may differ in case
        # While reading a Hub-cache snapshot that may not be the current one: its card is not the repo's
        # card, and what it states is followed as inferred.
        self.stale = False
        self.stale_folders: set[Path] = set()

    def warn(self, card: str, message: str) -> None:
        self.warnings.append(CardWarning(shown(card), message))

    def own(self, card: str, display: str, kind: str, meta: dict[str, Any]) -> str:
        """Register the repo a card describes; its own spelling and kind win over other cards' mentions."""
        cid = display.lower()
        if self.stale:
            self.nodes.setdefault(cid, Node(cid, display, kind))
            return cid
        gated = bool(meta.get("gated")) and meta.get("gated") not in ("false", "False", "no")
        lic = meta.get("license")
        license_ = lic if isinstance(lic, str) and _LICENSE.fullmatch(lic) else ""
        old = self.nodes.get(cid)
        if old is not None and old.has_card:
            self.warn(card, f"a second card for {old.display}; the first one's name and kind are kept")
            return cid
        if old is not None:
            ref = self.first_ref.pop(cid, None)
            if ref is not None:
                self.variants.append((ref[0], cid, ref[1]))
        if "/" not in display:
            self.warn(card, f"repo id {display} has no owner: kept as an unresolved node of its own")
        self.nodes[cid] = Node(cid, display, kind, True, gated, license_)
        self.cards_read += 1
        return cid

    def ref(
        self, card: str, text: object, kind: str, what: str, declared: bool = True, loose: bool = False
    ) -> str | None:
        """The id another card names; ``what`` says where (never the content) for warnings. ``loose``:
        an id found inside an odd-shaped field (the caller warns once for the field)."""
        display = normalise_id(text)
        if display is None:
            if declared and not loose:
                self.warn(card, f"{what} is not a repo id; skipped")
            return None
        if declared and not loose and isinstance(text, str) and not (text.isascii() and text.isprintable()):
            odd = "look-alike, accented or invisible characters"
            self.warn(card, f"{what} is written with {odd}; read as {display}")
        cid = display.lower()
        node = self.nodes.get(cid)
        if "/" not in display:
            if not declared and (node is None or not node.has_card):
                return None  # a config hint without an owner is usually a local folder name
            if declared and not loose:
                self.warn(card, f"{what} names {display} without an owner: kept as an unresolved node")
        if node is None:
            self.nodes[cid] = Node(cid, display, kind)
            self.first_ref[cid] = (card, display)
        elif node.display != display:
            self.variants.append((card, cid, display))
        return cid

    def edge(self, parent: str, child: str, relation: str, declared: bool, card: str) -> None:
        if parent == child:
            if declared:
                self.warn(card, f"names {self.nodes[child].display} as its own parent; skipped")
            return
        declared = declared and not self.stale
        key = (parent, child, relation)
        old = self.edges.get(key)
        if old is None or (declared and not old.declared):
            self.edges[key] = Edge(parent, child, relation, declared, card)

    def finish(self) -> Cards:
        for card, cid, spelling in self.variants:
            display = self.nodes[cid].display
            if spelling != display:
                self.warn(card, f"refers to {display} as {spelling} (letter case differs)")
        self.variants.clear()
        # A hint only guesses that a parent exists; a card that states the parent also says how.
        stated = {(e.parent, e.child) for e in self.edges.values() if e.declared}
        edges = [e for e in self.edges.values() if e.declared or (e.parent, e.child) not in stated]
        for e in edges:
            parent = self.nodes[e.parent]
            if not parent.has_card:
                if e.declared and "/" in parent.id:
                    self.warn(e.card, f"names {parent.display}, which has no card in these sources")
                continue
            want = "dataset" if e.relation in ("trained_on", "subset", "derived") else "model"
            if parent.kind != want:
                self.warn(e.card, f"names {parent.display} as a {want}, but its card is a {parent.kind} card")
        for card, message in _cycle_warnings(self.nodes, edges):
            self.warn(card, message)
        return Cards(self.nodes, edges, self.warnings, self.cards_read)


# --------------------------------------------------------------------------------------------------
# Per-card fields


def _entries(
    b: _Builder, card: str, meta: dict[str, Any], key: str, one_ok: bool = False
) -> list[tuple[str, object]]:
    """A list field's entries with where they came from; a string stands for a one-entry list (the
    Hub documents ``base_model`` as a string or a list, hence ``one_ok``). Any other value is one
    entry too: :func:`_parents` looks inside it, since a sloppy card must not drop out of a report."""
    value = meta.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        if not one_ok:
            b.warn(card, f"{key} is a string, not a list; read as one entry")
        return [(key, value)]
    if not isinstance(value, list):
        return [(key, value)]
    if len(value) > MAX_ENTRIES:
        b.warn(card, f"{key} has more than {MAX_ENTRIES} entries; all are read")
    return [(f"{key} entry {i + 1}", item) for i, item in enumerate(value)]


MAX_SALVAGE = 64  # ids taken from one odd-shaped entry
_SALVAGE_VISITS = 10_000  # strings and containers looked at in one odd-shaped entry
_WORDS = re.compile(r"[^\s,;|()\[\]{}<>\"'`*]+")


def _salvage(value: object) -> list[str]:
    """Strings inside an odd entry (prose, a comma list, a nested list or mapping, keys included) that
    read as repo ids: each string whole, else word by word. Each container is visited once and the
    walk is bounded, so YAML aliases (a small document that is a huge tree) cannot blow it up."""
    found: dict[str, None] = {}
    seen: set[int] = set()
    stack = [value]
    visits = 0
    while stack and visits < _SALVAGE_VISITS and len(found) < MAX_SALVAGE:
        v = stack.pop()
        visits += 1
        if isinstance(v, str):
            whole = normalise_id(v)
            words = [whole] if whole is not None else map(normalise_id, _WORDS.findall(v[:10_000])[:256])
            found.update((w.strip(".:"), None) for w in words if w is not None and w.strip(".:"))
        elif isinstance(v, (list, dict)) and id(v) not in seen:
            seen.add(id(v))
            if isinstance(v, dict):  # keys only when they look like owner/name: not `name:`, `split:`
                items = [x for k, val in v.items() for x in ((k, val) if "/" in str(k) else (val,))]
            else:
                items = v
            stack.extend(reversed(items[:_SALVAGE_VISITS]))
    return [w for w in found if normalise_id(w) is not None][:MAX_SALVAGE]


def _parents(b: _Builder, card: str, what: str, item: object, kind: str) -> list[tuple[str, bool]]:
    """The parent ids one entry names, each with whether it is declared: an entry that is a repo id
    is; ids dug out of anything else (:func:`_salvage`) are followed as inferred, with one warning."""
    if isinstance(item, str) and normalise_id(item) is not None:
        cid = b.ref(card, item, kind, what)
        return [] if cid is None else [(cid, True)]
    got = [cid for text in _salvage(item) if (cid := b.ref(card, text, kind, what, loose=True)) is not None]
    if isinstance(item, str):
        shape = "is not a repo id"
    elif what == "base_model_name_or_path":
        shape = "is missing or not a string"
    else:
        shape = "is not a string" if " entry " in what else "is neither a list nor a string"
    if got:
        b.warn(card, f"{what} {shape}; {len(got)} id(s) found in it are followed as inferred edges")
    else:
        b.warn(card, f"{what} {shape}" + ("" if what == "base_model_name_or_path" else "; skipped"))
    return [(cid, False) for cid in got]


def _model_relation(b: _Builder, card: str, meta: dict[str, Any]) -> str | None:
    value = meta.get("base_model_relation")
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in MODEL_RELATIONS:
        return value.strip().lower()
    b.warn(card, "base_model_relation is not one of adapter, merge, quantized, finetune; recorded as 'base'")
    return "base"


def _ingest(
    b: _Builder,
    card: str,
    display: str,
    kind: str,
    meta: dict[str, Any],
    adapter_base: tuple[str, object] | None = None,
    hints: Sequence[tuple[str, str, object]] = (),
) -> None:
    """One repo's card: its front matter (``meta``), the base its adapter config names (card, value),
    and config hints (card, relation, value) that become inferred edges."""
    child = b.own(card, display, kind, meta)
    found = False
    if kind == "dataset":
        for what, text in _entries(b, card, meta, "source_datasets"):
            if isinstance(text, str) and text.strip().lower() == "original":
                continue
            relation = "derived"
            if isinstance(text, str) and "|" in text:
                prefix, _, text = text.partition("|")
                relation = "subset" if prefix.strip().lower() == "subset" else "derived"
            for parent, declared in _parents(b, card, what, text, "dataset"):
                b.edge(parent, child, relation, declared, card)
                found = True
        return
    for what, text in _entries(b, card, meta, "datasets"):
        for parent, declared in _parents(b, card, what, text, "dataset"):
            b.edge(parent, child, "trained_on", declared, card)
            found = True
    model_rel = _model_relation(b, card, meta)
    adapter_parents: list[tuple[str, bool]] = []
    if adapter_base is not None:
        where, value = adapter_base
        adapter_parents = _parents(b, where, "base_model_name_or_path", value, "model")
    for what, text in _entries(b, card, meta, "base_model", one_ok=True):
        for parent, declared in _parents(b, card, what, text, "model"):
            found = True
            if model_rel is None and any(parent == p for p, _ in adapter_parents):
                continue  # the adapter config says what kind of child this is
            b.edge(parent, child, model_rel or "finetune", declared, card)
    if adapter_base is not None:
        for parent, declared in adapter_parents:
            b.edge(parent, child, "adapter", declared, adapter_base[0])
            found = True
    for where, rel, value in hints:
        hinted = b.ref(where, value, "model", "_name_or_path", declared=False)
        if hinted is not None:
            b.edge(hinted, child, rel, False, where)
    if not found and meta.get("base_model") is None and meta.get("datasets") is None:
        b.warn(card, "names no datasets and no base model: its lineage is unknown")


# --------------------------------------------------------------------------------------------------
# Files


def _read_capped(b: _Builder, path: Path, card: str, cap: int) -> tuple[bytes, bool] | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(cap + 1)
    except OSError as exc:
        b.warn(card, f"could not be read ({exc.strerror or type(exc).__name__})")
        return None
    return data[:cap], len(data) > cap


def _decode(b: _Builder, card: str, raw: bytes, truncated: bool) -> str:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        # A cap may cut a multi-byte character in two: an unfinished tail is not an error.
        text = decoder.decode(raw, final=not truncated)
    except UnicodeDecodeError:
        b.warn(card, "is not valid UTF-8; undecodable bytes were replaced")
        text = raw.decode("utf-8", "replace")
    return text.removeprefix("\ufeff")


def _yaml() -> Any:
    try:
        return importlib.import_module("yaml")
    except ImportError:
        raise ExpungeError("reading README front matter needs PyYAML: pip install pyyaml") from None


# libyaml's composer recurses in C: a few tens of thousands of nested `[`, `{`, `- ` or `key:` levels
# overflow the C stack and kill the process. Nesting needs one of these characters per level, so a
# text with few of them is safe for the C loader; any other goes to the pure-Python loader, whose
# recursion ends in a RecursionError (a warning) instead.
_C_NESTING_SAFE = 5_000


def _loader(yaml: Any, text: str) -> Any:
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is None or sum(map(text.count, "[{-:?")) > _C_NESTING_SAFE:
        return yaml.SafeLoader
    return fast


def _yaml_load(b: _Builder, card: str, text: str, first_line: int) -> object:
    yaml = _yaml()
    try:
        return yaml.load(text, Loader=_loader(yaml, text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {first_line + mark.line + 1})" if mark is not None else ""
        b.warn(card, f"front matter is not valid YAML{where}; its fields are skipped")
    except RecursionError:
        b.warn(card, "front matter is nested too deeply; its fields are skipped")
    except (ValueError, TypeError, OverflowError):
        b.warn(
            card, "front matter has a value YAML cannot build (a bad date or number); its fields are skipped"
        )
    return None


def front_matter(b: _Builder, card: str, text: str, truncated: bool) -> dict[str, Any]:
    """The YAML block between ``---`` lines at the top; a block further down is read (with a
    warning) only when it holds card fields, since ``---`` is also a Markdown rule."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        b.warn(card, "README.md is empty")
        return {}
    at_top = lines[start].rstrip() == "---"
    if not at_top:
        start = next((i for i, line in enumerate(lines) if line.rstrip() == "---"), None)
        if start is None:
            b.warn(card, "README.md has no front matter")
            return {}
    end = next((i for i in range(start + 1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        if at_top:
            cut = f" within its first {README_CAP} bytes" if truncated else ""
            b.warn(card, f"front matter is not closed{cut}; its fields are skipped")
        else:
            b.warn(card, "README.md has no front matter")
        return {}
    if not at_top:
        probe = _quiet_yaml("\n".join(lines[start + 1 : end]))
        if not (isinstance(probe, dict) and _LINEAGE_KEYS & set(map(str, probe))):
            b.warn(card, "README.md has no front matter")
            return {}
        b.warn(card, "front matter is not at the start of README.md; read anyway")
    meta = _yaml_load(b, card, "\n".join(lines[start + 1 : end]), start + 1)
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        b.warn(card, "front matter is not a mapping; its fields are skipped")
        return {}
    return {str(k): v for k, v in meta.items()}


def _quiet_yaml(text: str) -> object:
    yaml = _yaml()
    try:
        return yaml.load(text, Loader=_loader(yaml, text))
    except Exception:  # a probe only: the caller decides what a failure means
        return None


def _read_json(b: _Builder, path: Path, card: str) -> dict[str, Any] | None:
    got = _read_capped(b, path, card, JSON_CAP)
    if got is None:
        return None
    raw, truncated = got
    if truncated:
        b.warn(card, f"is larger than {JSON_CAP} bytes; skipped")
        return None
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        b.warn(card, "is not valid UTF-8; skipped")
        return None
    except json.JSONDecodeError as exc:
        b.warn(card, f"is not valid JSON (line {exc.lineno}); skipped")
        return None
    except (ValueError, RecursionError):
        b.warn(card, "is not valid JSON; skipped")
        return None
    if not isinstance(value, dict):
        b.warn(card, "is not a JSON object; skipped")
        return None
    return value


def _read_repo(b: _Builder, folder: Path, label: str, display: str, kind: str) -> None:
    """One repo folder: README front matter, adapter config, diffusers and transformers config hints."""
    readme = folder / "README.md"
    meta: dict[str, Any] = {}
    card = f"{label}/README.md"
    if readme.is_file():
        got = _read_capped(b, readme, card, README_CAP)
        if got is not None:
            meta = front_matter(b, card, _decode(b, card, *got), got[1])
    elif kind == "dataset" or not (folder / "adapter_config.json").is_file():
        b.warn(card, "is missing")
    adapter = None
    hints: list[tuple[str, str, object]] = []
    if kind == "model":
        if (folder / "adapter_config.json").is_file():
            where = f"{label}/adapter_config.json"
            cfg = _read_json(b, folder / "adapter_config.json", where)
            if cfg is not None:
                adapter = (where, cfg.get("base_model_name_or_path"))
        if (folder / "model_index.json").is_file():
            where = f"{label}/model_index.json"
            index = _read_json(b, folder / "model_index.json", where)
            if index is not None:
                hints.extend(_component_hints(b, folder, label, index))
        if (folder / "config.json").is_file():
            where = f"{label}/config.json"
            cfg = _read_json(b, folder / "config.json", where)
            if cfg is not None and "_name_or_path" in cfg:
                hints.append((where, "base", cfg["_name_or_path"]))
    _ingest(b, card, display, kind, meta, adapter, hints)


def _component_hints(
    b: _Builder, folder: Path, label: str, index: dict[str, Any]
) -> list[tuple[str, str, object]]:
    """A diffusers pipeline names its components (``text_encoder: [transformers, CLIPTextModel]``);
    each component's own config may say which repo it was loaded from."""
    hints: list[tuple[str, str, object]] = []
    if "_name_or_path" in index:
        hints.append((f"{label}/model_index.json", "base", index["_name_or_path"]))
    names = [k for k, v in index.items() if not k.startswith("_") and isinstance(v, list)]
    for name in sorted(names)[:MAX_COMPONENTS]:
        if not _ID.fullmatch(name) or "." in name:
            continue
        cfg_path = folder / name / "config.json"
        if cfg_path.is_file():
            where = f"{label}/{name}/config.json"
            cfg = _read_json(b, cfg_path, where)
            if cfg is not None and "_name_or_path" in cfg:
                hints.append((where, "component", cfg["_name_or_path"]))
    return hints


def _snapshots(b: _Builder, folder: Path, label: str) -> list[Path]:
    """The Hub cache keeps files under snapshots/<hash>/: the one refs/main names. Without a usable
    refs/main nobody can say which snapshot is current, so every one is read (an old revision's card
    that names a marked dataset must not be dropped for a newer one that does not)."""
    snaps = folder / "snapshots"
    ref = folder / "refs" / "main"
    main = ""
    try:
        if ref.is_file():  # not a FIFO or a device (a read would block or never end); capped
            with open(ref, "rb") as fh:
                main = fh.read(256).decode("ascii", "replace").strip()
    except OSError:
        main = ""
    if main and re.fullmatch(r"[0-9A-Za-z]+", main) and (snaps / main).is_dir():
        return [snaps / main]
    try:
        found = sorted(p for p in snaps.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        found = []
    if not found:
        b.warn(label, "Hub cache folder has no snapshot; skipped")
    elif main or len(found) > 1:
        b.warn(
            label,
            f"refs/main names no snapshot here: the newest of {len(found)} is read as the card, "
            "what the others state is followed as inferred",
        )
    found.sort(key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)
    b.stale_folders.update(found[1:])
    return found


_REPO_FILES = ("README.md", "adapter_config.json", "config.json", "model_index.json")


def _repo_folders(b: _Builder, root: Path) -> list[tuple[Path, str, str, str]]:
    """(folder, display id, kind, label) for every repo in a tree, sorted by label."""
    found: list[tuple[Path, str, str, str]] = []

    def add(folder: Path, name: str, kind: str, label: str) -> None:
        label = shown(label)
        display = normalise_id(name)
        if display is None:
            b.warn(label, "folder name is not a repo id; skipped")
        else:
            found.append((folder, display, kind, label))

    def cache(entry: Path, kind: str, label: str) -> None:
        for snap in _snapshots(b, entry, label):
            add(snap, entry.name, kind, f"{label}/snapshots/{snap.name}")

    for sub, kind in (("datasets", "dataset"), ("models", "model")):
        for entry in _dirs(root):
            if entry.name.lower().startswith(f"{sub}--"):
                cache(entry, kind, entry.name)
        base = root / sub
        if not base.is_dir():
            continue
        for entry in _dirs(base):
            label = f"{sub}/{entry.name}"
            if entry.name.lower().startswith(f"{sub}--"):
                cache(entry, kind, label)
            elif "__" in entry.name:
                owner, _, name = entry.name.partition("__")
                add(entry, f"{owner}/{name}", kind, label)
            elif any((entry / f).is_file() for f in _REPO_FILES):
                add(entry, entry.name, kind, label)
            else:
                for repo in _dirs(entry):
                    add(repo, f"{entry.name}/{repo.name}", kind, f"{label}/{repo.name}")
    return sorted(found, key=lambda t: t[3])


def _dirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _read_tree_into(b: _Builder, root: Path) -> None:
    if not root.is_dir():
        raise ExpungeError("not a folder of cards", root)
    has = (root / "models").is_dir() or (root / "datasets").is_dir()
    if not has and not any(p.name.lower().startswith(("models--", "datasets--")) for p in _dirs(root)):
        raise ExpungeError("no models/ or datasets/ folder (nor Hub cache folders) in this card tree", root)
    for folder, display, kind, label in _repo_folders(b, root):
        b.stale = folder in b.stale_folders
        try:
            _read_repo(b, folder, label, display, kind)
        finally:
            b.stale = False


DUMP_COLUMNS = ("id", "kind", "card_data")


def _read_dump_into(b: _Builder, path: Path) -> None:
    """A parquet dump of card metadata, one row per repo, read one batch at a time."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise ExpungeError(f"not a readable parquet file ({type(exc).__name__})", path) from None
    names = set(pf.schema_arrow.names)
    missing = [c for c in DUMP_COLUMNS if c not in names]
    if missing:
        raise ExpungeError(f"card dump lacks column(s) {', '.join(missing)}", path)
    columns = [*DUMP_COLUMNS, *(c for c in ("adapter_base", "name_or_path") if c in names)]
    row = 0
    loads = json.loads
    try:
        batches = pf.iter_batches(batch_size=65_536, columns=columns)
        for batch in batches:
            cols = {name: batch.column(name).to_pylist() for name in columns}
            n = batch.num_rows
            adapters = cols.get("adapter_base", [None] * n)
            hints_col = cols.get("name_or_path", [None] * n)
            for i in range(n):
                card = f"dump:{row + i}"
                display = normalise_id(cols["id"][i])
                if display is None:
                    b.warn(card, "id is not a repo id; row skipped")
                    continue
                kind = cols["kind"][i]
                if kind not in ("model", "dataset"):
                    b.warn(card, "kind is neither model nor dataset; read as a model card")
                    kind = "model"
                meta: dict[str, Any] = {}
                raw = cols["card_data"][i]
                if raw is not None:
                    if isinstance(raw, dict):  # a struct column rather than JSON text
                        value = raw
                    elif isinstance(raw, list) and all(isinstance(x, tuple) and len(x) == 2 for x in raw):
                        value = {str(k): v for k, v in raw}  # a map column: (key, value) pairs
                    else:
                        try:
                            value = loads(raw)
                        except (ValueError, TypeError, RecursionError):
                            value = None
                            b.warn(card, "card_data is not valid JSON; its fields are skipped")
                    if isinstance(value, dict):
                        meta = value
                    elif value is not None:
                        b.warn(card, "card_data is not a JSON object; its fields are skipped")
                adapter = (card, adapters[i]) if adapters[i] is not None else None
                hint = hints_col[i]
                _ingest(b, card, display, kind, meta, adapter, ((card, "base", hint),) if hint else ())
            row += n
    except (OSError, ValueError) as exc:
        raise ExpungeError(
            f"card dump could not be read ({type(exc).__name__})", path, f"row {row}"
        ) from None


def read_tree(root: Path) -> Cards:
    b = _Builder()
    _read_tree_into(b, Path(root))
    return b.finish()


def read_dump(path: Path) -> Cards:
    b = _Builder()
    _read_dump_into(b, Path(path))
    return b.finish()


def read_sources(paths: Sequence[Path]) -> Cards:
    """Card trees and ``.parquet`` dumps into one set of cards: an edge stated twice is kept once, and
    a declared edge replaces the same edge inferred from hints."""
    b = _Builder()
    for p in map(Path, paths):
        if p.is_dir():
            _read_tree_into(b, p)
        elif p.suffix.lower() == ".parquet" and p.is_file():
            _read_dump_into(b, p)
        else:
            raise ExpungeError("not a card tree (folder) or a .parquet card dump", p)
    return b.finish()


def fetch_cards(repo_ids: Iterable[str], out_dir: Path) -> Path:
    """Download the cards (README.md and small configs, never weights) of ``repo_ids`` into a tree that
    :func:`read_tree` reads; needs the ``hub`` extra. Model ids plain, dataset ids as ``datasets/ID``."""
    try:
        hub = importlib.import_module("huggingface_hub")
    except ImportError:
        raise ExpungeError("fetching cards needs the hub extra: pip install 'expunge[hub]'") from None
    out = Path(out_dir)
    for text in repo_ids:
        kind = "dataset" if text.lower().startswith("datasets/") else "model"
        display = normalise_id(text)
        if display is None or "/" not in display:
            raise ExpungeError("a repo to fetch is not a repo id with an owner")
        dest = out / f"{kind}s" / display.replace("/", "__")
        for name in ("README.md", "adapter_config.json", "model_index.json", "config.json"):
            try:
                hub.hf_hub_download(display, name, repo_type=kind, local_dir=dest)
            except Exception:  # an absent file is normal; the card reader warns about a missing README
                continue
    return out


# --------------------------------------------------------------------------------------------------
# Cycles


def _cycle_warnings(nodes: dict[str, Node], edges: list[Edge]) -> list[tuple[str, str]]:
    """One warning per cycle, naming the first card (by name) among its edges.

    Nodes with no incoming (then no outgoing) edge are peeled away in vectorised rounds first, so the
    Python strongly-connected-components pass only sees nodes on or between cycles.
    """
    if not edges:
        return []
    index = {cid: i for i, cid in enumerate(nodes)}
    parent = np.fromiter((index[e.parent] for e in edges), dtype=np.int64, count=len(edges))
    child = np.fromiter((index[e.child] for e in edges), dtype=np.int64, count=len(edges))
    alive_e = np.ones(len(edges), dtype=bool)
    n = len(nodes)
    for src, dst in ((parent, child), (child, parent)):
        alive_e = _peel(src, dst, alive_e, n)
    rest = np.flatnonzero(alive_e)
    if len(rest) == 0:
        return []
    adj: dict[int, list[int]] = {}
    for k in rest.tolist():
        adj.setdefault(int(parent[k]), []).append(k)
    ids = list(nodes)
    out = []
    for comp in _sccs(adj, child):
        members = set(comp)
        inside = [k for v in comp for k in adj.get(v, []) if int(child[k]) in members]
        card = min(edges[k].card for k in inside)
        names = sorted(nodes[ids[v]].display for v in comp)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        out.append((card, f"is part of a lineage cycle through {shown}"))
    return sorted(out)


def _peel(src: np.ndarray, dst: np.ndarray, alive: np.ndarray, n: int) -> np.ndarray:
    """Drop, round by round, edges leaving nodes that no live edge enters."""
    alive = alive.copy()
    indeg = np.bincount(dst[alive], minlength=n)
    order = np.argsort(src, kind="stable")
    starts = np.searchsorted(src[order], np.arange(n + 1))
    has_out = np.zeros(n, dtype=bool)
    has_out[src[alive]] = True
    frontier = np.flatnonzero((indeg == 0) & has_out)
    while len(frontier):
        lo, hi = starts[frontier], starts[frontier + 1]
        counts = hi - lo
        if counts.sum() == 0:
            break
        take = order[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())]
        take = take[alive[take]]
        alive[take] = False
        targets = dst[take]
        np.subtract.at(indeg, targets, 1)
        cand = np.unique(targets)
        frontier = cand[indeg[cand] == 0]
    return alive


def _sccs(adj: dict[int, list[int]], child: np.ndarray) -> list[list[int]]:
    """Tarjan's algorithm, iterative; components with at least one internal edge (no self loops here)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on: set[int] = set()
    stack: list[int] = []
    comps: list[list[int]] = []
    counter = 0
    for start in sorted(adj):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on.add(v)
            out = adj.get(v, [])
            recurse = False
            while i < len(out):
                w = int(child[out[i]])
                i += 1
                if w not in index:
                    work.append((v, i))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(comp)
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
    return comps
