"""What an import reports: every problem at its field, or a file that cannot be read at all."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem of one document: `field` is its JSON path, or "row R, column C" in a CSV file
    (then `path` still gives the JSON path of the document built from the rows)."""

    document: int | None
    field: str
    code: str
    message: str
    path: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"document": self.document, "field": self.field, "code": self.code,
                                  "message": self.message}
        if self.path is not None:
            out["path"] = self.path
        return out


class FileUnreadable(ValueError):
    """The file is not UTF-8 JSON or CSV in the documented layout (DOCUMENT_INVALID)."""

    def as_error(self) -> FieldError:
        return FieldError(None, "$", "DOCUMENT_INVALID", str(self))
