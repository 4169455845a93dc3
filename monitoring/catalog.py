"""Every check the monitor runs: its name (the `check` label), title, what to look at first,
and its part in inhibition. docs/monitoring.md has one section per entry; keep them in step.

Inhibition (as Alertmanager's inhibit_rules): a firing alert of a `hop_down` check silences
the firing `symptom` alerts of the same zone at the same hop or downstream of it; a stopped
sender explains an idle runner and growing gaps, and one mail about the cause is enough.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckInfo:
    name: str
    title_zh: str
    title_en: str
    runbook_zh: str
    runbook_en: str
    hop_down: bool = False  # inhibits symptoms at its hop and downstream
    symptom: bool = False  # may be inhibited by a hop-down alert upstream


_ALL = (
    CheckInfo("daemon_down", "程式停止（無心跳）", "daemon down (no heartbeat)",
              "先查該程式是否在執行：systemctl status tgw-<程式> 或 supervisorctl status；再看 journalctl 最後的錯誤。"
              "若是 outer.transfer-send，可能是外部傳送端停止或單向線路中斷。",
              "Check whether the process runs (systemctl status tgw-<daemon> / supervisorctl status), then the last "
              "errors in journalctl. For outer.transfer-send the sender or the one-way link may be down.",
              hop_down=True),
    CheckInfo("supervisor_state", "supervisor 回報程式非執行中", "supervisor reports the program not running",
              "supervisorctl status 與 supervisorctl tail <程式> stderr；FATAL 表示啟動一再失敗，請看設定檔與日誌。",
              "supervisorctl status and supervisorctl tail <program> stderr; FATAL means start-up keeps failing: "
              "read the config and logs.", hop_down=True),
    CheckInfo("systemd_state", "systemd 回報服務非 active", "systemd reports the unit not active",
              "systemctl status <unit> 與 journalctl -u <unit> -n 100；failed 表示已超過重啟次數上限。",
              "systemctl status <unit> and journalctl -u <unit> -n 100; failed means the start limit was hit.",
              hop_down=True),
    CheckInfo("restarts", "程式重啟過於頻繁", "daemon restarting too often",
              "每小時重啟次數超過上限：看 journalctl 中每次結束前的錯誤（常見：資料庫無法連線、磁碟滿、設定錯誤）。",
              "More restarts per hour than allowed: read the errors before each exit in journalctl (common: "
              "database unreachable, disk full, bad config)."),
    CheckInfo("backlog_depth", "佇列積壓（檔案數）", "queue backlog (file count)",
              "確認下游程式在執行且未出錯；檢查佇列目錄與 .bad 檔；若只是尖峰，觀察是否持續下降。",
              "Check that the hop's daemon runs without errors; look at its spool folder and .bad files; a "
              "short peak should drain by itself.", symptom=True),
    CheckInfo("backlog_age", "佇列積壓（最舊檔案過久）", "queue backlog (oldest file too old)",
              "最舊的檔案久未處理：查看該程式日誌中該檔案的錯誤、是否被 CRL 過期暫停（hold）、或程式卡住。",
              "The oldest file waits too long: look for that file in the daemon's log, a CRL hold, or a hung "
              "daemon.", symptom=True),
    CheckInfo("stuck", "信封停滯於某一站", "envelope stuck in a hop",
              "在主控台（或 provenance_events 表）查詢該信封的事件；確認它的檔案仍在佇列中、程式在執行，必要時重送或隔離處理。",
              "Look up the envelope's events (the console, or the provenance_events table); check its file is "
              "still in the spool and the daemon runs; resend or handle in quarantine if needed.", symptom=True),
    CheckInfo("idle", "營業時間內無任何信封", "no envelopes during operating hours",
              "營業時間內長時間沒有信封經過：確認上游（外部入口、傳送端、單向線路）正常，並詢問機關是否有上傳。",
              "No envelope passed during operating hours: check the upstream hops and the one-way link, and ask "
              "whether agencies are uploading.", symptom=True),
    CheckInfo("quarantine", "有信封在隔離區或暫停處理", "envelopes in quarantine or held",
              "在主控台的隔離區逐一處理（重試或結案）；held 表示等待新的 CRL，請先處理 crl_stale 告警。",
              "Work through the quarantine in the console (retry or reject); held envelopes wait for a fresh "
              "CRL: deal with the crl_stale alert first."),
    CheckInfo("internal_error", "信封處理時發生程式缺陷", "an envelope raised an unexpected exception",
              "依告警的追蹤編號在執行記錄中找到錯誤堆疊並回報開發者；修正後於主控台隔離區重試該信封。",
              "Find the traceback for the alert's tracking id in the runner's log and report the defect; once "
              "fixed, retry the envelope from the console's quarantine."),
    CheckInfo("receipt_overdue", "信封已傳送但逾時未收到收據", "envelope sent but no receipt in time",
              "以 tgw transfer gaps 檢查兩條單向線路的缺漏；在內網查詢該追蹤編號是否已入庫或隔離，並確認收據程式與回傳線路在執行。",
              "Check both one-way links for gaps (tgw transfer gaps); on the intranet, look up the tracking id "
              "(loaded or quarantined?) and check that the receipt daemon and the return link run.", symptom=True),
    CheckInfo("transfer_gap", "單向傳輸有缺漏", "one-way transfer has gaps",
              "tgw transfer gaps 列出缺漏的序號；確認線路與接收端丟包，再於外部以 tgw transfer resend 重送。",
              "tgw transfer gaps lists the missing sequence numbers; check the link and receiver drops, then "
              "resend from the outer zone with tgw transfer resend.", symptom=True),
    CheckInfo("sender_health", "傳送端回報異常", "sender reports a problem",
              "依心跳內容處理：磁碟空間不足請清理 sent 目錄或擴充；有 last_error 時查看傳送端日誌。",
              "Act on what the heartbeat says: low disk, clean the sent folder or add space; a last_error, read "
              "the sender's log.", symptom=True),
    CheckInfo("udp_drops", "接收端 UDP 丟包", "receiver dropping UDP datagrams",
              "核心接收佇列滿：檢查 SO_RCVBUF（net.core.rmem_max）、接收端 CPU 負載，或降低傳送速率 rate_bps。",
              "The kernel receive queue overflows: check SO_RCVBUF (net.core.rmem_max), the receiver's CPU, or "
              "lower the sender's rate_bps.", symptom=True),
    CheckInfo("disk", "磁碟空間不足", "disk filling up",
              "du -sh 找出佔用的目錄（spool、archive、sent、資料庫 WAL）；依保留期限清理或擴充磁碟。",
              "du -sh to find what grows (spools, archive, sent, database WAL); clean by retention or add space."),
    CheckInfo("memory", "記憶體使用過高", "memory use high",
              "ps / top 依記憶體排序，找出異常的程式；接收端緩衝區 memory_bytes 是否設定過大。",
              "Sort processes by memory (ps / top); check the receiver's memory_bytes setting."),
    CheckInfo("cpu", "CPU 使用過高", "CPU use high",
              "top 找出耗用 CPU 的程式；大量驗章或解壓縮時可能短暫偏高。",
              "top to find the busy process; bursts of verification or unpacking raise it for a while."),
    CheckInfo("cert_expiry", "憑證即將到期", "certificate expiring",
              "向發證單位申請新憑證；機關簽章憑證更換後以 tgw registry add 登錄新憑證並撤銷舊登錄。",
              "Request a new certificate; for an agency signer register the new card with tgw registry add "
              "and revoke the old registration."),
    CheckInfo("crl_stale", "憑證廢止清冊（CRL）即將或已經過期", "CRL stale or about to be",
              "下載最新 CRL 放入 trust.crl_dir（tgw pki crl 或向 GCA 下載）；過期時信封會被暫停處理。",
              "Fetch the newest CRL into trust.crl_dir (tgw pki crl or from the GCA); while stale, envelopes "
              "are held."),
    CheckInfo("crl_missing", "缺少某一發證單位的 CRL", "no CRL for an issuing CA",
              "把該 CA 的 CRL 放入 trust.crl_dir 或 trust.crls；沒有 CRL 時該 CA 簽發的憑證都無法驗證。",
              "Put that CA's CRL into trust.crl_dir or trust.crls; without it no certificate it issued can be "
              "validated."),
    CheckInfo("replication_lag", "備援資料庫未連線或複寫延遲過大", "standby database disconnected or lagging",
              "tgw inner db replication 查看各備援的狀態與延遲；在備援主機看 PostgreSQL 日誌與網路。同步備援斷線時，"
              "主資料庫的交易會一直等待。",
              "Run tgw inner db replication for each standby's state and lag; read the standby's PostgreSQL log "
              "and check the network. While a synchronous standby is away the primary holds every commit."),
    CheckInfo("runners_idle", "信封在共用佇列等待，但沒有處理程序在執行", "envelopes wait and no inner runner is alive",
              "在告警列出的主機上啟動 tgw inner run（supervisorctl status / systemctl status tgw-inner-runner）；"
              "看其日誌最後的錯誤（常見：資料庫無法連線、設定錯誤）。主控台首頁列出每個處理程序。",
              "Start tgw inner run on the hosts the alert lists (supervisorctl status / systemctl status "
              "tgw-inner-runner) and read the last errors in its log (common: database unreachable, bad config). "
              "The console's dashboard lists every runner."),
    CheckInfo("runner_down", "某一處理程序停止回報", "an inner runner stopped reporting",
              "在該主機查看該 PID 是否仍在執行；已當機時由 supervisor/systemd 重啟，它持有的信封會在租約到期後由其他處理程序接手。",
              "On that host, check whether the pid still runs; a crashed runner is restarted by supervisor or "
              "systemd, and the envelopes it held go to another runner once their leases expire."),
    CheckInfo("monitor_check_error", "監控檢查本身失敗", "a monitor check failed",
              "看監控程式日誌（JSON）中該檢查的例外；常見：憑證檔無法讀取、資料庫無法連線。",
              "Read the monitor's JSON log for the check's exception; common: unreadable certificate file, "
              "database unreachable."),
)

CHECKS: dict[str, CheckInfo] = {c.name: c for c in _ALL}
HOP_DOWN_CHECKS = frozenset(c.name for c in _ALL if c.hop_down)
SYMPTOM_CHECKS = frozenset(c.name for c in _ALL if c.symptom)
