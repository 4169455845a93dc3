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
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from flask_babel import lazy_gettext as _l

from tgw_common.documents import KINDS, schema

from ..batches import FieldError

MAX_DOCUMENTS = 100  # per form; a larger batch is a file import
MAX_ROWS = 999
# The schemas describe enums in English prose; the form names each option in the page's language.
CHOICE_NAMES = {
    "annual": _l("annual budget"), "reserved": _l("reserved (carried-over) budget"),
    "transfer": _l("transfer"), "remittance": _l("remittance"), "treasury_cheque": _l("treasury cheque"),
    "lost": _l("lost"), "expired": _l("expired (never cashed)"), "damaged": _l("damaged"),
    "wrong_details": _l("wrong details"), "other": _l("other"),
    "name": _l("name"), "id_number": _l("ID number"), "bank_code": _l("bank code"),
    "account_no": _l("account number"), "memo": _l("memo"),
}
KIND_NAMES = {
    "payment_voucher": _l("payment voucher"),
    "transfer_voucher": _l("transfer voucher"),
    "correction_request": _l("correction request"),
    "stop_payment_notice": _l("stop-payment notice"),
    "cheque_cancellation": _l("treasury cheque cancellation"),
    "expenditure_recovery": _l("expenditure recovery"),
    "payment_slip": _l("payment slip"),
    "revenue_refund": _l("revenue refund"),
}
# Field labels by JSON path (rows' items without their index), and where a kind names a field
# its own way, by kind:path; the zh-TW words are the schemas' titles.
FIELD_LABELS = {
    "kind": _l("Document kind"),
    "voucher_no": _l("Voucher number"),
    "fiscal_year": _l("Fiscal year"),
    "agency_code": _l("Agency code"),
    "agency_name": _l("Agency name"),
    "budget_type": _l("Budget type"),
    "budget_account": _l("Budget account code"),
    "budget_account_name": _l("Budget account name"),
    "voucher_date": _l("Voucher date"),
    "payment_method": _l("Payment method"),
    "purpose": _l("Purpose"),
    "payees": _l("Payees"),
    "payees.name": _l("Payee name"),
    "payees.id_number": _l("Payee's business number or national ID"),
    "payees.bank_code": _l("Bank code"),
    "payees.account_no": _l("Account number"),
    "payees.amount": _l("Amount"),
    "payees.memo": _l("Memo"),
    "total_amount": _l("Voucher total"),
    "recipients": _l("Accounts credited"),
    "recipients.name": _l("Receiving agency or account holder"),
    "recipients.treasury_account": _l("Treasury account credited"),
    "recipients.business_number": _l("Receiving agency's business number"),
    "recipients.bank_code": _l("Bank code"),
    "recipients.account_no": _l("Account number"),
    "recipients.amount": _l("Amount"),
    "recipients.memo": _l("Memo"),
    "request_date": _l("Request date"),
    "original_voucher_no": _l("Original voucher number"),
    "original_voucher_date": _l("Original voucher date"),
    "corrections": _l("Corrections"),
    "corrections.payee_seq": _l("Payee line"),
    "corrections.field": _l("Field to correct"),
    "corrections.old_value": _l("Value before"),
    "corrections.new_value": _l("Corrected value"),
    "payee_seq": _l("Payee line to stop"),
    "notice_date": _l("Notice date"),
    "application_date": _l("Application date"),
    "cheque_no": _l("Treasury cheque number"),
    "cheque_date": _l("Cheque issue date"),
    "payee_name": _l("Payee name"),
    "cancel_reason": _l("Reason for the cancellation"),
    "reason_text": _l("Details of the reason"),
    "recovery_date": _l("Recovery date"),
    "payer_name": _l("Payer name"),
    "payer_id_number": _l("Payer's business number or national ID"),
    "memo": _l("Notes"),
    "issue_date": _l("Issue date"),
    "revenue_account": _l("Revenue account code"),
    "revenue_account_name": _l("Revenue account name"),
    "due_date": _l("Due date"),
    "refund_date": _l("Refund date"),
    "original_slip_no": _l("Original payment slip number"),
    "payee": _l("Refunded to"),
    "payee.name": _l("Name of who is refunded"),
    "payee.id_number": _l("Business number or national ID of who is refunded"),
    "payee.bank_code": _l("Bank code"),
    "payee.account_no": _l("Account number"),
}
KIND_FIELD_LABELS = {
    "stop_payment_notice:voucher_no": _l("Number of the voucher to stop"),
    "cheque_cancellation:voucher_no": _l("Number of the original payment voucher"),
    "stop_payment_notice:voucher_date": _l("Date of the voucher to stop"),
    "revenue_refund:payment_method": _l("Refund method"),
    "correction_request:document_no": _l("Request number"),
    "stop_payment_notice:document_no": _l("Notice number"),
    "cheque_cancellation:document_no": _l("Application number"),
    "expenditure_recovery:document_no": _l("Recovery number"),
    "payment_slip:document_no": _l("Payment slip number"),
    "revenue_refund:document_no": _l("Refund number"),
    "expenditure_recovery:original_voucher_no": _l("Number of the original payment voucher"),
    "correction_request:reason": _l("Reason for the correction"),
    "stop_payment_notice:reason": _l("Reason for the stop"),
    "expenditure_recovery:reason": _l("Reason for the recovery"),
    "revenue_refund:reason": _l("Reason for the refund"),
    "stop_payment_notice:amount": _l("Amount stopped"),
    "cheque_cancellation:amount": _l("Cheque amount"),
    "expenditure_recovery:amount": _l("Amount recovered"),
    "payment_slip:amount": _l("Amount to pay"),
    "revenue_refund:amount": _l("Amount refunded"),
    "expenditure_recovery:payer_name": _l("Name of who pays back"),
    "expenditure_recovery:payer_id_number": _l("Business number or national ID of who pays back"),
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
    title: Any  # a lazy label (str() in the request's language)
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
    """The fields of a document kind in schema order (every kind in KINDS has a schema),
    titled in the page's language (lazy labels; the schema's own title if none is known)."""
    return _labelled(kind, _specs(schema.load_schema(kind)), "")


def _labelled(kind: str, specs: tuple[Spec, ...], prefix: str) -> tuple[Spec, ...]:
    out = []
    for spec in specs:
        path = prefix + spec.key
        title = KIND_FIELD_LABELS.get(f"{kind}:{path}") or FIELD_LABELS.get(path) or spec.title
        out.append(replace(spec, title=title, children=_labelled(kind, spec.children, path + ".")))
    return tuple(out)


def kind_name(kind: str) -> Any:
    """A document kind's name in the page's language (the key itself if unknown)."""
    return KIND_NAMES.get(kind, kind)


def form_kinds() -> list[tuple[str, Any]]:
    return [(key, kind_name(key)) for key in KINDS]


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
