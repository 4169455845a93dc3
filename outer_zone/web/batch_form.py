"""The batch entry form: its fields read from the document schemas, the posted form turned
into documents, and documents (or their errors) turned back into the form.

A form field is named `d<N>.<path>`, where path is the JSON path of the document without
its `$.` (`d0.payees[1].bank_code`), so an import error's `field` names its input exactly.
The form is rendered from `DocState`s (the text typed, the rows shown, the errors), never
straight from the request, so a round trip keeps every value and renumbers nothing twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tgw_common.documents import KINDS, schema

from ..batches import FieldError

MAX_DOCUMENTS = 100  # per form; a larger batch is a file import
MAX_ROWS = 999
# The schemas describe enums in English prose; the form shows their Chinese names first.
CHOICE_NAMES = {
    "annual": "本年度預算 annual", "reserved": "以前年度保留款 reserved",
    "transfer": "存帳入戶 transfer", "remittance": "匯款 remittance", "treasury_cheque": "國庫支票 treasury cheque",
    "lost": "遺失 lost", "expired": "逾期未領 expired", "damaged": "毀損 damaged",
    "wrong_details": "記載錯誤 wrong details", "other": "其他 other",
    "name": "名稱 name", "id_number": "統一編號／身分證號 ID number", "bank_code": "金融機構代號 bank code",
    "account_no": "存款帳號 account", "memo": "附言 memo",
}
_DOC_NAME = re.compile(r"d([0-9]{1,3})\.kind")
_INTEGER = re.compile(r"[0-9]{1,9}")
_AMOUNT = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True)
class Spec:
    """One field of a document kind as the form shows it.

    widget: text, date, integer, amount, choice, const, rows (an array of objects, one
    table row each) or group (an object, e.g. a revenue refund's payee)."""

    key: str
    title: str
    hint: str
    required: bool
    widget: str
    choices: tuple[tuple[str, str], ...] = ()
    children: tuple[Spec, ...] = ()
    max_length: int | None = None
    const: str | None = None


@dataclass
class DocState:
    """One document of the form: its kind, the text of each field by path, the number of
    rows of each array, and the errors by path ("" for the document as a whole)."""

    kind: str
    values: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def value(self, path: str) -> str:
        return self.values.get(path, "")

    def row_count(self, path: str) -> int:
        return max(1, self.rows.get(path, 1))


# --- the fields of a kind, from its schema
def _resolved(sub: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    ref = sub.get("$ref")
    if not ref:
        return sub, None
    name = ref.rsplit("/", 1)[-1]
    return schema.load_schema("common")["$defs"][name], name


def _spec(key: str, sub: Mapping[str, Any], required: bool) -> Spec:
    target, def_name = _resolved(sub)
    common = {"key": key, "title": sub.get("title", key), "required": required,
              "hint": sub.get("description") or target.get("description", "")}
    if "const" in target:
        return Spec(widget="const", const=str(target["const"]), **common)
    if "enum" in target:
        return Spec(widget="choice", choices=tuple((v, CHOICE_NAMES.get(v, v)) for v in target["enum"]), **common)
    kind = target.get("type")
    if kind == "array":
        return Spec(widget="rows", children=_specs(_resolved(target["items"])[0]), **common)
    if kind == "object":
        return Spec(widget="group", children=_specs(target), **common)
    if kind == "integer":
        return Spec(widget="integer", **common)
    if "anyOf" in target:
        return Spec(widget="amount", max_length=15, **common)
    widget = "date" if def_name == "roc_date" else "text"
    return Spec(widget=widget, max_length=target.get("maxLength"), **common)


def _specs(obj: Mapping[str, Any]) -> tuple[Spec, ...]:
    needed = set(obj.get("required", ()))
    return tuple(_spec(key, sub, key in needed) for key, sub in obj.get("properties", {}).items())


@cache
def kind_fields(kind: str) -> tuple[Spec, ...]:
    """The fields of a document kind in schema order (every kind in KINDS has a schema)."""
    return _specs(schema.load_schema(kind))


def form_kinds() -> list[tuple[str, str]]:
    return [(key, f"{k.zh} {k.en}") for key, k in KINDS.items()]


def _walk(specs: Iterable[Spec], prefix: str, rows: Mapping[str, int]) -> Iterator[tuple[str, Spec]]:
    """Every (path, spec) of the inputs of a document with the given row counts."""
    for spec in specs:
        path = prefix + spec.key
        yield path, spec
        if spec.widget == "group":
            yield from _walk(spec.children, path + ".", rows)
        elif spec.widget == "rows":
            for index in range(max(1, rows.get(path, 1))):
                yield from _walk(spec.children, f"{path}[{index}].", rows)


# --- a new or stored document as form state
def blank(kind: str, *, agency: str, fiscal_year: int) -> DocState:
    state = DocState(kind)
    for path, spec in _walk(kind_fields(kind), "", {}):
        if spec.widget == "rows":
            state.rows[path] = 1
    state.values.update({"agency_code": agency, "fiscal_year": str(fiscal_year)})
    return state


def from_document(doc: Mapping[str, Any]) -> DocState:
    """A stored document back into the form (editing a batch)."""
    state = DocState(str(doc.get("kind", "")))
    _fill(state, kind_fields(state.kind), "", doc)
    return state


def _fill(state: DocState, specs: Iterable[Spec], prefix: str, obj: Mapping[str, Any]) -> None:
    for spec in specs:
        path, value = prefix + spec.key, obj.get(spec.key)
        if spec.widget == "group" and isinstance(value, Mapping):
            _fill(state, spec.children, path + ".", value)
        elif spec.widget == "rows" and isinstance(value, list):
            state.rows[path] = max(1, len(value))
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    _fill(state, spec.children, f"{path}[{index}].", item)
        elif value is not None and spec.widget not in ("group", "rows"):
            state.values[path] = str(value)


# --- the posted form
def read_form(form: Mapping[str, str]) -> list[DocState]:
    """The documents of a posted form in their order; unknown kinds (a forged form) are left out."""
    indices = sorted({int(m.group(1)) for name in form if (m := _DOC_NAME.fullmatch(name))})
    states = []
    for index in indices[:MAX_DOCUMENTS]:
        kind = form.get(f"d{index}.kind", "")
        if kind in KINDS:
            states.append(_read_document(form, f"d{index}.", kind))
    return states


def _read_document(form: Mapping[str, str], name_prefix: str, kind: str) -> DocState:
    state = DocState(kind)
    mine = {name[len(name_prefix):]: value for name, value in form.items() if name.startswith(name_prefix)}
    _read(state, kind_fields(kind), "", mine)
    return state


def _read(state: DocState, specs: Iterable[Spec], prefix: str, posted: Mapping[str, str]) -> None:
    for spec in specs:
        path = prefix + spec.key
        if spec.widget == "group":
            _read(state, spec.children, path + ".", posted)
        elif spec.widget == "rows":
            # Rows added and removed by the page's script leave gaps: renumbered here, in order.
            pattern = re.compile(re.escape(path) + r"\[([0-9]{1,4})\]\.")
            posted_rows = sorted({int(m.group(1)) for name in posted if (m := pattern.match(name))})[:MAX_ROWS]
            state.rows[path] = len(posted_rows)
            for new, old in enumerate(posted_rows):
                renamed = {f"{path}[{new}]." + name[len(f"{path}[{old}]."):]: value for name, value in posted.items()
                           if name.startswith(f"{path}[{old}].")}
                _read(state, spec.children, f"{path}[{new}].", renamed)
        elif spec.widget != "const" and posted.get(path, "").strip():
            state.values[path] = posted[path].strip()


def row_paths(state: DocState) -> list[str]:
    return [path for path, spec in _walk(kind_fields(state.kind), "", state.rows) if spec.widget == "rows"]


def add_row(state: DocState, path: str) -> None:
    if path in row_paths(state):
        state.rows[path] = min(MAX_ROWS, state.row_count(path) + 1)


def remove_row(state: DocState, path: str, index: int) -> None:
    """Drop row `index` of array `path`, moving the later rows up; the last row only empties."""
    count = state.row_count(path)
    if not 0 <= index < count:
        return
    kept: dict[str, str] = {}
    row = re.compile(re.escape(path) + r"\[([0-9]+)\]\.(.*)", re.S)
    for name, value in state.values.items():
        m = row.fullmatch(name)
        if m is None:
            kept[name] = value
        elif int(m.group(1)) != index:
            position = int(m.group(1))
            kept[f"{path}[{position - 1 if position > index else position}].{m.group(2)}"] = value
    state.values = kept
    state.rows[path] = max(1, count - 1)


def drop_blank_rows(state: DocState) -> None:
    """Rows left empty are not payees: removed before the documents are built and judged,
    so the errors' row numbers are the rows the form shows afterwards."""
    for path in row_paths(state):
        for index in reversed(range(state.row_count(path))):
            if not any(name.startswith(f"{path}[{index}].") for name in state.values):
                remove_row(state, path, index)


def to_document(state: DocState) -> dict[str, Any]:
    """The JSON document of a form state, exactly as import_documents will judge it: an empty
    input is an absent field; numbers typed as digits become JSON integers."""
    return _build(kind_fields(state.kind), "", state)


def _build(specs: Iterable[Spec], prefix: str, state: DocState) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        path = prefix + spec.key
        if spec.widget == "const":
            out[spec.key] = spec.const
        elif spec.widget == "group":
            inner = _build(spec.children, path + ".", state)
            if inner or spec.required:
                out[spec.key] = inner
        elif spec.widget == "rows":
            items = [_build(spec.children, f"{path}[{i}].", state) for i in range(state.rows.get(path, 0))]
            out[spec.key] = [item for item in items if item]
        elif path in state.values:
            out[spec.key] = _typed(spec, state.values[path])
    return out


def _typed(spec: Spec, text: str) -> Any:
    if spec.widget == "integer" and _INTEGER.fullmatch(text):
        return int(text)
    if spec.widget == "amount" and _AMOUNT.fullmatch(text):
        return int(text)
    return text  # anything else goes as typed, for the schema to name what is wrong with it


# --- errors back to their inputs
def attach_errors(states: list[DocState], errors: Iterable[FieldError]) -> list[str]:
    """Put each import error at its input; what names no input of any document is answered
    as a list (a file that is unreadable as a whole, for one)."""
    general = []
    for error in errors:
        text = f"{error.message} [{error.code}]"
        if error.document is None or not 0 <= error.document < len(states):
            general.append(text)
            continue
        state = states[error.document]
        path = error.field[2:] if error.field.startswith("$.") else ""
        if path not in {p for p, _ in _walk(kind_fields(state.kind), "", state.rows)}:
            path, text = "", f"{error.field}: {text}"
        state.errors.setdefault(path, []).append(text)
    return general
