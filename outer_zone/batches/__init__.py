"""Batches (批次): documents imported from an agency's JSON or CSV file, checked with the
inner zone's own validators (tgw_common.documents) and kept as drafts in the outer database.
docs/documents.md ("Batch files") describes the file formats; docs/api.md the routes."""

from .errors import FieldError, FileUnreadable
from .store import BatchAuthor, BatchImport, batch_documents, batch_view, import_documents, list_batches
from .workflow import STEP_ROLE, BatchNotFound, Workflow

__all__ = ["STEP_ROLE", "BatchAuthor", "BatchImport", "BatchNotFound", "FieldError", "FileUnreadable", "Workflow",
           "batch_documents", "batch_view", "import_documents", "list_batches"]
