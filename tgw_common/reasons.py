"""Stable reason codes for every refusal, and the exception that carries one.

The codes are a contract with agencies and operators: they appear in API answers,
quarantine files and e-mails, and docs/reason-codes.md is generated from this table
(a test keeps the two in step). Never rename or reuse a code; add new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Layer(StrEnum):
    """Where a refusal came from, outermost first."""

    UPLOAD = "upload"  # the outer zone's HTTP intake, before any CMS parsing
    BATCH = "batch"  # the outer portal's batches and their routing (draft to release)
    RELEASE = "release"  # layer 1: releaser's SignedData
    SEAL = "seal"  # layer 2: EnvelopedData / AuthEnvelopedData
    APPROVAL = "approval"  # layer 3: accountant's and head's SignedData
    PAYLOAD = "payload"  # layer 4: the ZIP archive and its manifest
    DOCUMENTS = "documents"  # the documents' schemas and business rules
    INTAKE = "intake"  # the payment database: replay, duplicates, exactly-once
    TRANSFER = "transfer"  # the one-way link


@dataclass(frozen=True)
class ReasonInfo:
    code: str
    zh: str
    en: str
    layers: tuple[Layer, ...]


_L = Layer
_REASONS: tuple[ReasonInfo, ...] = (
    # --- structure, any CMS layer
    ReasonInfo("TOO_LARGE", "信封超過大小上限", "envelope larger than the configured limit", (_L.RELEASE,)),
    ReasonInfo("MALFORMED_DER", "不是有效的 DER 編碼", "not valid DER, or not parseable as CMS",
               (_L.RELEASE, _L.SEAL, _L.APPROVAL)),
    ReasonInfo("TRAILING_DATA", "DER 結構後有多餘位元組", "bytes after the end of the DER structure",
               (_L.RELEASE, _L.SEAL, _L.APPROVAL)),
    ReasonInfo("WRONG_CONTENT_TYPE", "CMS 內容類型不符", "not the CMS content type this layer requires",
               (_L.RELEASE, _L.SEAL, _L.APPROVAL)),
    ReasonInfo("CONTENT_MISSING", "簽章未附內容", "signed content is detached or empty", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("UNSUPPORTED_ALGORITHM", "不支援的演算法", "an algorithm outside the allow-list",
               (_L.RELEASE, _L.SEAL, _L.APPROVAL)),
    # --- signatures
    ReasonInfo("SIGNER_COUNT", "簽章者數目不符", "the release layer must carry exactly one signer", (_L.RELEASE,)),
    ReasonInfo("SIGNED_ATTRS_MISSING", "缺少必要的簽署屬性",
               "contentType, messageDigest or signingTime signed attribute missing", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CONTENT_TYPE_MISMATCH", "簽署屬性的內容類型與內容不符",
               "the contentType attribute differs from the encapsulated content type", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("DIGEST_MISMATCH", "內容摘要不符", "messageDigest does not match the content", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("BAD_SIGNATURE", "簽章驗證失敗", "a signature does not verify", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("SIGNER_CERT_MISSING", "找不到簽章者憑證",
               "the signer's certificate is neither in the message nor in the registry", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("SIGNING_TIME_FUTURE", "簽署時間在未來", "signingTime lies in the future beyond the clock skew",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("SIGNING_TIME_TOO_OLD", "簽署時間過舊", "signingTime is older than the configured maximum age",
               (_L.RELEASE, _L.APPROVAL)),
    # --- certificates and revocation
    ReasonInfo("CERT_UNTRUSTED", "憑證無法串接至信任根", "no valid path to a configured trust anchor",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_EXPIRED", "憑證已過期", "a certificate on the path has expired", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_NOT_YET_VALID", "憑證尚未生效", "a certificate on the path is not yet valid",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_REVOKED", "憑證已廢止", "a certificate on the path is revoked", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_KEY_USAGE", "憑證金鑰用途不符", "keyUsage lacks digitalSignature and nonRepudiation",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CRL_STALE", "憑證廢止清冊逾期", "the newest CRL of an issuer is past its nextUpdate",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("REVOCATION_UNKNOWN", "無可用的憑證廢止清冊", "no CRL of the issuer is configured",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_SELF_SIGNED", "簽章憑證為自簽憑證", "the signer's certificate is self-signed (issued by itself)",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_FOREIGN_ROOT", "憑證串接至非信任的根憑證",
               "the carried chain ends at a root that is not a configured trust anchor", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_IS_CA", "簽章憑證為 CA 憑證",
               "the signer's certificate is a CA (basicConstraints CA:TRUE, or keyCertSign/cRLSign in keyUsage)",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_WEAK_KEY", "憑證金鑰強度不足",
               "a certificate's key is too weak (RSA under 2048 bits, an EC curve outside P-256/P-384/P-521, "
               "or a key type outside the allow-list)", (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_CRITICAL_EXTENSION", "憑證含無法辨識的關鍵延伸欄位",
               "a certificate marks an extension critical that the gateway does not understand",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_CHAIN_TOO_LONG", "憑證鏈過長", "the path to the trust anchor is longer than trust.max_chain_depth",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_MALFORMED", "憑證無法解析", "a certificate carried in the SignedData does not parse",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_ALTERED", "憑證內容遭竄改",
               "a carried certificate's own signature does not verify under its issuer (its bytes were altered)",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_DUPLICATE", "同一憑證重複附帶", "the SignedData carries one certificate more than once",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_SUPERFLUOUS", "附帶與簽章無關的憑證",
               "a carried certificate is neither a signer's nor on a signer's path to the trust anchor",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("CERT_LOOP", "附帶的憑證互相簽發形成迴圈", "carried certificates issue each other in a loop",
               (_L.RELEASE, _L.APPROVAL)),
    # --- registry and role policy
    ReasonInfo("SIGNER_NOT_REGISTERED", "簽章憑證未註冊", "the certificate is not in the signer registry",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("SIGNER_REGISTRATION_REVOKED", "簽章憑證註冊已撤銷", "the registry entry was revoked",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("SIGNER_WRONG_AGENCY", "簽章者不屬於本機關", "the certificate is registered to another agency",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("SIGNER_WRONG_ROLE", "簽章者角色不符", "the certificate is registered for another role",
               (_L.RELEASE, _L.APPROVAL)),
    ReasonInfo("DELEGATE_OUTSIDE_WINDOW", "代理人不在代理期間內", "a delegate signed outside its delegation window",
               (_L.APPROVAL,)),
    ReasonInfo("APPROVALS_MISSING", "核章不足", "an accountant's and a head's approval are both required",
               (_L.APPROVAL,)),
    ReasonInfo("APPROVALS_SAME_CERT", "兩個核章使用同一憑證", "both approvals were made with one certificate",
               (_L.APPROVAL,)),
    # --- seal
    ReasonInfo("NOT_FOR_TREASURY", "信封非以國庫現行憑證加密",
               "no recipient names the treasury's current envelope certificate", (_L.SEAL,)),
    ReasonInfo("DECRYPT_FAILED", "無法解密", "the envelope could not be decrypted", (_L.SEAL,)),
    # --- payload archive and manifest
    ReasonInfo("ARCHIVE_INVALID", "不是有效的 ZIP 壓縮檔", "the payload is not a readable ZIP archive", (_L.PAYLOAD,)),
    ReasonInfo("ARCHIVE_PATH_TRAVERSAL", "壓縮檔路徑穿越", "an entry name contains '..'", (_L.PAYLOAD,)),
    ReasonInfo("ARCHIVE_ABSOLUTE_PATH", "壓縮檔含絕對路徑", "an entry name is absolute or has a drive letter",
               (_L.PAYLOAD,)),
    ReasonInfo("ARCHIVE_SYMLINK", "壓縮檔含符號連結", "an entry is a symbolic link or special file", (_L.PAYLOAD,)),
    ReasonInfo("ARCHIVE_DUPLICATE_NAME", "壓縮檔含重複名稱", "two entries share one name", (_L.PAYLOAD,)),
    ReasonInfo("ARCHIVE_UNLISTED_ENTRY", "壓縮檔含清單外的檔案", "an entry is not listed in the manifest",
               (_L.PAYLOAD,)),
    ReasonInfo("ARCHIVE_TOO_MANY_ENTRIES", "壓縮檔項目過多", "more entries than the configured limit", (_L.PAYLOAD,)),
    ReasonInfo("ARCHIVE_TOO_LARGE", "壓縮檔解壓後過大", "an entry or the whole archive unpacks beyond the limit",
               (_L.PAYLOAD,)),
    ReasonInfo("ARCHIVE_RATIO", "壓縮比過高", "an entry's compression ratio exceeds the limit", (_L.PAYLOAD,)),
    ReasonInfo("MANIFEST_MISSING", "缺少 manifest.json", "manifest.json is not at the archive root", (_L.PAYLOAD,)),
    ReasonInfo("MANIFEST_INVALID", "manifest.json 格式錯誤", "manifest.json is not valid JSON or fails its schema",
               (_L.PAYLOAD,)),
    ReasonInfo("UNSUPPORTED_PROFILE", "不支援的信封規格", "the manifest names a profile other than TPE/1",
               (_L.PAYLOAD,)),
    ReasonInfo("MANIFEST_FILE_MISSING", "清單所列檔案不存在", "a file the manifest lists is not in the archive",
               (_L.PAYLOAD,)),
    ReasonInfo("MANIFEST_HASH_MISMATCH", "檔案雜湊值不符", "a document's SHA-256 differs from the manifest",
               (_L.PAYLOAD,)),
    ReasonInfo("CONTROL_COUNT_MISMATCH", "控制筆數不符", "the document count differs from the control total",
               (_L.PAYLOAD,)),
    ReasonInfo("CONTROL_TOTAL_MISMATCH", "控制總金額不符", "the sum of amounts differs from the control total",
               (_L.PAYLOAD,)),
    # --- documents
    ReasonInfo("DOCUMENT_INVALID", "文件格式錯誤", "a document is not valid JSON or fails its kind's schema",
               (_L.DOCUMENTS,)),
    ReasonInfo("UNKNOWN_DOCUMENT_KIND", "不支援的文件種類", "the gateway does not accept this document kind",
               (_L.PAYLOAD, _L.DOCUMENTS)),
    ReasonInfo("BAD_BUSINESS_NUMBER", "統一編號檢查碼錯誤", "a unified business number fails its check digit",
               (_L.DOCUMENTS,)),
    ReasonInfo("BAD_NATIONAL_ID", "身分證統一編號檢查碼錯誤", "a national ID fails its check digit", (_L.DOCUMENTS,)),
    ReasonInfo("BAD_BANK_CODE", "金融機構代號錯誤", "an unknown or malformed bank code", (_L.DOCUMENTS,)),
    ReasonInfo("BAD_ROC_DATE", "民國日期錯誤", "a date is not a valid ROC date", (_L.DOCUMENTS,)),
    ReasonInfo("BAD_FISCAL_YEAR", "會計年度錯誤", "the fiscal year is outside the accepted years", (_L.DOCUMENTS,)),
    ReasonInfo("VOUCHER_TOTAL_MISMATCH", "憑單總額與受款人金額合計不符",
               "a voucher's total differs from the sum of its payees", (_L.DOCUMENTS,)),
    ReasonInfo("AGENCY_MISMATCH", "機關代號不符",
               "a document's agency differs from the manifest's and the signers' agency", (_L.DOCUMENTS,)),
    ReasonInfo("OVER_EPAYMENT_LIMIT", "超過電子支付限額，應以紙本辦理",
               "an amount above the electronic-payment limit (must go on paper)", (_L.DOCUMENTS,)),
    ReasonInfo("DUPLICATE_VOUCHER", "憑單號碼重複", "a voucher number appears twice or was loaded before",
               (_L.DOCUMENTS, _L.INTAKE)),
    # --- intake (the payment database)
    ReasonInfo("REPLAY", "信封編號已使用過", "a different envelope reuses an envelope id (or release) seen before",
               (_L.INTAKE, _L.UPLOAD)),
    ReasonInfo("POISON", "重試多次仍無法處理", "processing crashed repeatedly; set aside after the configured tries",
               (_L.INTAKE,)),
    ReasonInfo("INTERNAL_ERROR", "系統內部錯誤（程式缺陷）",
               "judging the envelope raised an unexpected exception: a defect of the gateway, not of the envelope; "
               "the traceback is in the log and monitoring raises an alert", (_L.INTAKE,)),
    # --- outer zone upload (before or around the release check)
    ReasonInfo("UPLOAD_TOO_LARGE", "上傳內容超過大小上限", "the upload exceeds the configured size limit", (_L.UPLOAD,)),
    ReasonInfo("EMPTY_UPLOAD", "上傳內容為空", "the request carried no envelope", (_L.UPLOAD,)),
    ReasonInfo("UNAUTHENTICATED", "未登入或存取權杖無效", "no valid session or bearer token", (_L.UPLOAD,)),
    ReasonInfo("FORBIDDEN", "權限不足", "the user's role may not do this", (_L.UPLOAD,)),
    ReasonInfo("IP_NOT_ALLOWED", "來源位址不在白名單", "the client address is not in the agency's allow-list",
               (_L.UPLOAD,)),
    ReasonInfo("RATE_LIMITED", "嘗試次數過多", "too many attempts; try again later", (_L.UPLOAD,)),
    ReasonInfo("ACCOUNT_LOCKED", "帳號登入延遲中", "too many wrong passwords: the account's sign-in is delayed "
               "(kept in the audit log; the answer reads as UNAUTHENTICATED)",
               (_L.UPLOAD,)),
    ReasonInfo("DISK_FULL", "系統儲存空間不足", "the spool's disk is nearly full; try again later", (_L.UPLOAD,)),
    ReasonInfo("WRONG_MEDIA_TYPE", "內容類型不符", "the request body's Content-Type is not the one the route takes",
               (_L.BATCH,)),
    # --- batches in the outer portal (docs/agency-workflow.md)
    ReasonInfo("BATCH_WRONG_STATE", "批次目前狀態不能進行此操作",
               "the batch is not at the step this action belongs to (or was released)", (_L.BATCH,)),
    ReasonInfo("BATCH_ALL_PAPER", "批次全部超過電子支付限額，應以紙本辦理",
               "every document of the batch is above the electronic-payment limit: nothing to send", (_L.BATCH,)),
    ReasonInfo("SIGNATURE_WRONG_CONTENT", "簽章內容不是本批次的 payload",
               "the signed content is not the batch's payload bytes", (_L.BATCH,)),
    ReasonInfo("SIGNATURE_ONE_SIGNER", "每次只能加入一個簽章",
               "a signature for a batch step must carry exactly one SignerInfo", (_L.BATCH,)),
    ReasonInfo("RELEASE_WRONG_CONTENT", "放行簽章內容不是本批次的加密信封",
               "the release signature does not cover the batch's sealed layer", (_L.BATCH,)),
    ReasonInfo("RETURN_COMMENT_REQUIRED", "退回須附說明", "a return needs a comment (1 to 1000 characters)",
               (_L.BATCH,)),
    ReasonInfo("BATCH_CANNOT_SEAL", "入口網站未設定國庫署加密憑證",
               "the portal has no treasury.certificate to seal the batch for", (_L.BATCH,)),
)

REASONS: dict[str, ReasonInfo] = {r.code: r for r in _REASONS}


class Refusal(Exception):
    """An envelope (or request) refused with a documented reason code."""

    def __init__(self, code: str, layer: Layer | str, message: str, **detail: object) -> None:
        if code not in REASONS:
            raise ValueError(f"undocumented reason code {code!r}")
        super().__init__(f"{code} at {layer}: {message}")
        self.code = code
        self.layer = Layer(layer)
        self.message = message
        self.detail = detail

    def as_dict(self) -> dict[str, object]:
        return {"reason": self.code, "layer": str(self.layer), "message": self.message, **self.detail}


def reason_table_markdown() -> str:
    """The reason-code table as it stands in docs/reason-codes.md."""
    lines = [
        "| code | layers | 說明 | meaning |",
        "|---|---|---|---|",
    ]
    for r in _REASONS:
        layers = ", ".join(str(layer) for layer in r.layers)
        lines.append(f"| `{r.code}` | {layers} | {r.zh} | {r.en} |")
    return "\n".join(lines) + "\n"
