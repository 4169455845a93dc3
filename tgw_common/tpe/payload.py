"""Layer 4: the payload ZIP (manifest.json plus the documents it lists), built and unpacked.

Unpacking trusts nothing the archive says about itself: names are checked before anything
is read, sizes are enforced while decompressing (a declared size can lie), and the whole
archive stays within the configured limits, so memory is bounded by them.
"""

from __future__ import annotations

import hashlib
import io
import json
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..reasons import Layer, Refusal

L = Layer.PAYLOAD
# What zipfile and zlib raise on damaged archives; all of it means ARCHIVE_INVALID.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError, OSError, ValueError,
              NotImplementedError, RuntimeError, OverflowError, UnicodeDecodeError, KeyError, IndexError)
TAIPEI = ZoneInfo("Asia/Taipei")
MANIFEST = "manifest.json"
PROFILE = "TPE/1"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # fixed entry times make a payload reproducible from its documents


@dataclass(frozen=True)
class Payload:
    manifest: dict[str, Any]
    # path -> the document as read (strict JSON), in manifest order. The bytes are not kept:
    # the hashes have been checked, and a large envelope's documents would be held twice.
    documents: dict[str, dict[str, Any]] = field(repr=False)

    @property
    def envelope_id(self) -> str:
        return self.manifest["envelope_id"]

    @property
    def agency(self) -> str:
        return self.manifest["agency"]


def build_payload(envelope_id: str, agency: str, documents: list[tuple[str, str, bytes]],
                  created_at: datetime | None = None) -> bytes:
    """A payload ZIP from (path, kind, bytes) documents, with its manifest and control totals."""
    from ..documents import build_manifest

    when = created_at or datetime.now(UTC).astimezone(TAIPEI).replace(microsecond=0)
    manifest = build_manifest(envelope_id, agency, when, documents)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2).encode())]
        entries += [(path, data) for path, _kind, data in documents]
        for name, data in entries:
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _check_name(name: str) -> str:
    """Refuse names that could escape an extraction folder, whatever the OS."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":") or unified.startswith("//"):
        raise Refusal("ARCHIVE_ABSOLUTE_PATH", L, f"entry {name!r} is an absolute path")
    parts = unified.split("/")
    if any(p == ".." for p in parts):
        raise Refusal("ARCHIVE_PATH_TRAVERSAL", L, f"entry {name!r} climbs out with '..'")
    if "\x00" in name or any(p in ("", ".") for p in parts[:-1]) or (parts[-1] in ("", ".") and not name.endswith("/")):
        raise Refusal("ARCHIVE_PATH_TRAVERSAL", L, f"entry {name!r} is not a plain relative path")
    return unified


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, ratio: int) -> bytes:
    out = bytearray()
    with archive.open(info) as fh:
        while chunk := fh.read(64 * 1024):
            out += chunk
            if len(out) > limit:
                raise Refusal("ARCHIVE_TOO_LARGE", L, f"entry {info.filename!r} unpacks beyond {limit} bytes")
            if len(out) > 1024 * 1024 and len(out) > ratio * max(info.compress_size, 1):
                raise Refusal("ARCHIVE_RATIO", L, f"entry {info.filename!r} expands more than {ratio}:1")
    return bytes(out)


class _ViewReader(io.RawIOBase):
    """A seekable read-only file over a memoryview: io.BytesIO would copy the whole archive."""

    def __init__(self, view: memoryview) -> None:
        self._view, self._pos = view, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, out) -> int:
        n = max(0, min(len(out), len(self._view) - self._pos))
        out[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        if whence == io.SEEK_SET and offset < 0:
            raise ValueError("negative seek position")
        self._pos = max(0, base + offset)  # as io.BytesIO: a relative seek before the start stops at 0
        return self._pos

    def tell(self) -> int:
        return self._pos


def unpack_payload(data: bytes | memoryview, limits) -> Payload:  # limits: tgw_common.config.LimitsConfig
    """Unpack and check the archive and its manifest; every refusal names the entry."""
    from ..documents import load_manifest

    archive, infos = _open_archive(data, limits)
    regular, folders = _screen_entries(infos, limits)
    by_name = {i.filename.replace("\\", "/"): i for i in regular}
    if MANIFEST not in by_name:
        raise Refusal("MANIFEST_MISSING", L, "manifest.json is not at the root of the archive")
    reader = _EntryReader(archive, limits)
    # Strict JSON, as for the documents: with a duplicate key ("agency" twice) a viewer and
    # the gateway could read different manifests from the same signed bytes.
    manifest = load_manifest(reader.read(by_name[MANIFEST]))
    listed = _check_listing(manifest, by_name, folders)
    parsed, amount_sum = _read_documents(listed, by_name, reader)
    _check_control(manifest["control"], len(listed), amount_sum)
    return Payload(manifest=manifest, documents=parsed)


def _open_archive(data: bytes | memoryview, limits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The archive and its central directory, refused if unreadable or with too many entries."""
    try:
        archive = zipfile.ZipFile(_ViewReader(memoryview(data)))
        infos = archive.infolist()
    except ZIP_ERRORS as exc:
        raise Refusal("ARCHIVE_INVALID", L, f"not a readable ZIP archive: {exc}") from None
    if len(infos) > limits.max_entries:
        raise Refusal("ARCHIVE_TOO_MANY_ENTRIES", L, f"{len(infos)} entries, the limit is {limits.max_entries}")
    return archive, infos


def _screen_entries(infos: list[zipfile.ZipInfo], limits) -> tuple[list[zipfile.ZipInfo], set[str]]:
    """Judge every entry by what the directory says, before any is read: (regular files, folders)."""
    seen: set[str] = set()
    regular: list[zipfile.ZipInfo] = []
    folders: set[str] = set()
    declared_total = 0
    for info in infos:
        name = _check_name(info.filename)
        folded = name.rstrip("/").casefold()
        if folded in seen:
            raise Refusal("ARCHIVE_DUPLICATE_NAME", L, f"entry {info.filename!r} appears twice")
        seen.add(folded)
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise Refusal("ARCHIVE_SYMLINK", L, f"entry {info.filename!r} is a symbolic link or special file")
        if info.is_dir():
            folders.add(name.rstrip("/"))
            continue
        _check_file_entry(info, limits)
        declared_total += info.file_size
        regular.append(info)
    if declared_total > limits.max_total_bytes:
        raise Refusal("ARCHIVE_TOO_LARGE", L, f"the archive unpacks to {declared_total} bytes")
    return regular, folders


def _check_file_entry(info: zipfile.ZipInfo, limits) -> None:
    """A regular entry we can decompress, whose declared size and ratio are within the limits."""
    if info.flag_bits & 0x1:
        raise Refusal("ARCHIVE_INVALID", L, f"entry {info.filename!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Refusal("ARCHIVE_INVALID", L, f"entry {info.filename!r} uses compression method {info.compress_type}")
    if info.file_size > limits.max_entry_bytes:
        raise Refusal("ARCHIVE_TOO_LARGE", L, f"entry {info.filename!r} declares {info.file_size} bytes")
    if info.file_size > 1024 * 1024 and info.file_size > limits.max_compression_ratio * max(info.compress_size, 1):
        raise Refusal("ARCHIVE_RATIO", L, f"entry {info.filename!r} expands more than "
                                          f"{limits.max_compression_ratio}:1")


class _EntryReader:
    """Reads entries within the per-entry limits, keeping the unpacked total within its own."""

    def __init__(self, archive: zipfile.ZipFile, limits) -> None:
        self.archive, self.limits, self.total = archive, limits, 0

    def read(self, info: zipfile.ZipInfo) -> bytes:
        limits = self.limits
        try:
            content = _read_bounded(self.archive, info, limits.max_entry_bytes, limits.max_compression_ratio)
        except ZIP_ERRORS as exc:
            raise Refusal("ARCHIVE_INVALID", L, f"entry {info.filename!r} cannot be read: {exc}") from None
        self.total += len(content)
        if self.total > limits.max_total_bytes:
            raise Refusal("ARCHIVE_TOO_LARGE", L, f"the archive unpacks beyond {limits.max_total_bytes} bytes")
        return content


def _check_listing(manifest: dict[str, Any], by_name: dict[str, zipfile.ZipInfo],
                   folders: set[str]) -> dict[str, dict[str, Any]]:
    """The manifest's entries by path; refused unless the archive holds nothing it does not list."""
    listed = {d["path"]: d for d in manifest["documents"]}
    if len(listed) != len(manifest["documents"]):
        raise Refusal("MANIFEST_INVALID", L, "manifest.json lists one path twice")
    for name in by_name:
        if name != MANIFEST and name not in listed:
            raise Refusal("ARCHIVE_UNLISTED_ENTRY", L, f"entry {name!r} is not listed in manifest.json")
    parents = {p for path in listed for p in _parents(path)}
    for folder in folders - parents:
        raise Refusal("ARCHIVE_UNLISTED_ENTRY", L, f"folder entry {folder + '/'!r} holds no listed document")
    return listed


def _read_documents(listed: dict[str, dict[str, Any]], by_name: dict[str, zipfile.ZipInfo],
                    reader: _EntryReader) -> tuple[dict[str, dict[str, Any]], int]:
    """Every listed document read, hash-checked and parsed: (path -> document, sum of amounts)."""
    from ..documents.validate import amount_or_refusal, parse_document

    parsed: dict[str, dict[str, Any]] = {}
    amount_sum = 0
    for path, entry in listed.items():
        info = by_name.get(path)
        if info is None:
            raise Refusal("MANIFEST_FILE_MISSING", L, f"{path!r} is listed in manifest.json but not in the archive")
        content = reader.read(info)
        if hashlib.sha256(content).hexdigest() != entry["sha256"].lower():
            raise Refusal("MANIFEST_HASH_MISMATCH", L, f"{path!r}: SHA-256 differs from manifest.json")
        # Read once, strictly, here; the documents layer judges the very same objects.
        parsed[path] = doc = parse_document(path, entry["kind"], content)
        del content
        amount_sum += amount_or_refusal(path, entry["kind"], doc)
    return parsed, amount_sum


def _check_control(control: dict[str, Any], count: int, amount_sum: int) -> None:
    from ..documents import parse_amount

    if control["document_count"] != count:
        raise Refusal("CONTROL_COUNT_MISMATCH", L,
                      f"control says {control['document_count']} documents, the manifest lists {count}")
    if parse_amount(control["total_amount"]) != amount_sum:
        raise Refusal("CONTROL_TOTAL_MISMATCH", L,
                      f"control total {control['total_amount']} differs from the documents' sum {amount_sum}")


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
