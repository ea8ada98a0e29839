"""The delivery log's tables (SQLAlchemy Core), portable across SQLite and PostgreSQL.

This is the *current* schema: a fresh database is created from it, an older one is brought to it
by ``migrations``. Enumerated columns are plain strings holding the ``records`` enum values (no
CHECK constraints: SQLite can only change those by rebuilding the table). Timestamps are stored as
UTC and always read back timezone-aware.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone, so we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the delivery log; use timezone-aware UTC")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 (the interface's)
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _uuid() -> String:
    return String(36)


# Integer on SQLite so that the column is the rowid (autoincrement); 64 bits on PostgreSQL.
_EVENT_ID = BigInteger().with_variant(Integer(), "sqlite")


def fold_text(text: str) -> str:
    """Lowercase, without diacritics (Vietnamese ``đ`` included): ``Công Văn`` -> ``cong van``."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", bare).casefold()


schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

packages = Table(
    "packages",
    metadata,
    Column("sha256", String(64), primary_key=True),  # hex digest of exactly the received bytes
    Column("size_bytes", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)


# Version 13: PostgreSQL keeps package bodies as received (out of line, not compressed): pglz
# saved nothing on a 361 KB edXML, mostly base64 of compressed files, for 5.4 ms of server CPU a
# row against 0.65 (docs/performance.md, round 17). SQLite never compresses.
def keep_package_bodies_as_is(connection: Connection) -> None:
    """Store new ``packages.data`` uncompressed (PostgreSQL; nothing to do on SQLite)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("ALTER TABLE packages ALTER COLUMN data SET STORAGE EXTERNAL"))


event.listen(
    packages, "after_create", lambda _, connection, **__: keep_package_bodies_as_is(connection)
)


documents = Table(
    "documents",
    metadata,
    Column("id", _uuid(), primary_key=True),
    Column("dedup_key", String(512), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # PackageKind
    Column("sender", String(64), nullable=False),
    Column("document_id", String(255)),  # the edXML DocumentId (of the original, for a status)
    Column("business_doc_type", String(2)),
    Column("status_code", String(2)),
    Column("subject", Text),
    Column("subject_folded", Text),  # fold_text(subject), for search (schema version 2)
    Column("package_sha256", String(64), ForeignKey("packages.sha256"), nullable=False),
    Column("format", String(8), nullable=False),  # PackageFormat: xml | jws
    Column("signer_fingerprint", String(64), nullable=False),
    Column("signer_subject", Text, nullable=False),
    Column("algorithm", String(128), nullable=False),
    Column("caller", String(128), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("in_reply_to", _uuid(), ForeignKey("documents.id")),
    Index(None, "received_at", "id"),
    Index(None, "sender", "received_at", "id"),  # schema version 4 (was sender, received_at)
    Index(None, "document_id", "sender", "kind"),
    Index(None, "in_reply_to"),
)

# Version 4: subject search by trigrams on PostgreSQL (pg_trgm); SQLite scans the column.
SUBJECT_TRIGRAM_INDEX = Index(
    "ix_documents_subject_folded_trgm",
    documents.c.subject_folded,
    postgresql_using="gin",
    postgresql_ops={"subject_folded": "gin_trgm_ops"},
).ddl_if(dialect="postgresql")

# The rows of ``ix_deliveries_inbox``: a query uses that index only if its WHERE says the same,
# with these literal values (a bound parameter does not prove it to SQLite's planner, nor to a
# generic plan on PostgreSQL): ``reads.inbox`` writes it so.
INBOX_ITEM = "method = 'mailbox' AND state = 'delivered' AND acked_at IS NULL"

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", _uuid(), primary_key=True),
    Column("document", _uuid(), ForeignKey("documents.id"), nullable=False),
    Column("recipient", String(64), nullable=False),
    Column("method", String(16), nullable=False),  # DeliveryMethod
    Column("state", String(16), nullable=False),  # DeliveryState
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),  # the adapter's message (remote text, URL): for admins only
    Column("last_error_code", String(64)),  # its stable code, shown to participants (version 9)
    Column("business_status", String(2)),  # StatusCode 01..16
    Column("business_status_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime),
    Column("acked_at", UtcDateTime),
    # The document's received_at and sender, copied so that a search by a delivery's
    # recipient, state or business status (and the sender) is answered from deliveries alone,
    # paging through these indexes in time order (schema version 6).
    Column("received_at", UtcDateTime),
    Column("sender", String(64)),
    UniqueConstraint("document", "recipient"),
    Index(None, "recipient", "state", "received_at", "document"),  # inbox; search (version 6)
    Index(None, "recipient", "received_at", "document"),  # search (version 6)
    Index(None, "state", "updated_at"),  # outbox, dead letters
    Index(None, "state", "received_at", "document"),  # search (version 6)
    Index(None, "business_status", "received_at", "document"),  # search (version 6)
    Index(None, "sender", "received_at", "document"),  # search (version 6)
    # Version 12: the mailboxes' unacknowledged items, in the order an inbox lists them; the
    # index holds only those, so a listing never reads the recipient's acknowledged history.
    Index(
        "ix_deliveries_inbox",
        "recipient",
        "delivered_at",
        "id",
        sqlite_where=text(INBOX_ITEM),
        postgresql_where=text(INBOX_ITEM),
    ),
)

events = Table(
    "events",
    metadata,
    Column("id", _EVENT_ID, primary_key=True, autoincrement=True),
    Column("document", _uuid(), ForeignKey("documents.id"), nullable=False),
    Column("delivery", _uuid(), ForeignKey("deliveries.id")),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(32), nullable=False),  # EventKind
    Column("outcome", String(64), nullable=False),
    Column("detail", Text, nullable=False),  # a JSON object
    Column("actor", String(128), nullable=False),
    # Version 10: the hash chain (``store.chain``): id is the place in the chain, assigned by the
    # writer from ``chain_head``; chain_hash links this event to the one before it.
    Column("chain_hash", String(64)),
    Index(None, "document", "id"),
    Index(None, "delivery", "id"),
)

# Version 10: the head of the hash chain (one row, id 1), locked by every append.
chain_head = Table(
    "chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", BigInteger, nullable=False),  # events.id of the last entry (0: none)
    Column("hash", String(64), nullable=False),  # its chain_hash
    Column("store_id", String(36), nullable=False),  # names this store in checkpoints, bundles
)

# Version 10: signed (and time-stamped) checkpoints of the chain's head (``gateway.evidence``).
chain_checkpoints = Table(
    "chain_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # the last entry covered
    Column("hash", String(64), nullable=False),  # its chain_hash
    Column("signed_at", UtcDateTime, nullable=False),
    Column("statement", Text, nullable=False),  # compact JWS by the gateway over (store, seq, hash)
    Column("tsa_response", LargeBinary),  # RFC 3161 TimeStampResp (DER) over the statement
    Column("tsa_time", UtcDateTime),  # the token's genTime
    Index(None, "signed_at"),
)

# Version 10: documents moved out of the hot store into archive files, one per period.
archives = Table(
    "archives",
    metadata,
    Column("period", String(7), primary_key=True),  # YYYY-MM of received_at (UTC)
    Column("file", String(255), nullable=False),  # its name in the archive directory
    Column("sha256", String(64), nullable=False),  # of the file
    Column("documents", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

national_inbox = Table(
    "national_inbox",
    metadata,
    Column("doc_id", String(255), primary_key=True),  # the national platform's docId
    Column("message_type", String(16), nullable=False),  # edoc | status
    Column("outcome", String(16), nullable=False),  # done | fail (the updateStatus answer)
    Column("document", _uuid(), ForeignKey("documents.id")),  # what intake recorded, if any
    Column("detail", Text, nullable=False),
    Column("processed_at", UtcDateTime, nullable=False),
    Column("acked_at", UtcDateTime),  # updateStatus accepted by the platform
    Index(None, "processed_at"),
    Index(None, "document"),  # the docId of a document, on its console page (version 7)
)

# Version 5: the web console's append-only audit trail of operator actions, and its sessions.
console_audit = Table(
    "console_audit",
    metadata,
    Column("id", _EVENT_ID, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(128), nullable=False),  # console username
    Column("action", String(64), nullable=False),  # e.g. replay, participant.disable
    Column("target", String(255), nullable=False),  # a delivery id, an OrganId, …
    Column("detail", Text, nullable=False),  # a JSON object
    Index(None, "at"),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_sha256", String(64), primary_key=True),  # the cookie holds the token itself
    Column("username", String(128), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index(None, "expires_at"),
)

# Version 7: the southbound's replay memory: the signed headers' hash (``XroadVnpt-hash-header``)
# of each call whose reuse is refused, with the operation it was first used for. Shared by every
# gateway process; rows are deleted once ``expires_at`` has passed.
southbound_replays = Table(
    "southbound_replays",
    metadata,
    Column("system_id", String(128), primary_key=True),
    Column("hash_header", String(128), primary_key=True),
    Column("operation", String(32), nullable=False),  # protocol.Operation of the first use
    Column("first_used_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index(None, "expires_at"),
)

# Version 8: the console's users (the configuration seeds the first ones; never overwritten).
console_users = Table(
    "console_users",
    metadata,
    Column("username", String(128), primary_key=True),
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("role", String(16), nullable=False),  # ConsoleRole
    Column("disabled", Boolean, nullable=False, default=False),
    Column("must_change_password", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("created_by", String(128), nullable=False),  # a console username, or "config"
)

# Version 8: the console's report cache: per day (Vietnam time), agency and role, the figures of
# the documents received that day (``gateway.console.report_cache`` keeps it fresh). A row with
# organ "" and role "" marks a day as computed (a day may have no documents at all).
REPORT_COUNTS = (
    "documents",
    "new",
    "revoked",
    "updated",
    "replaced",
    "deliveries",
    "delivered",
    "failed",
    "dead_lettered",
    "pending",
)
REPORT_STATUS_COLUMNS = tuple(f"s{code:02d}" for code in range(1, 17))  # status packages by code
# Upper bounds; one more bin holds the deliveries slower than a day.
REPORT_TIME_BINS_S = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400)
REPORT_TIME_COLUMNS = tuple(f"t{i:02d}" for i in range(len(REPORT_TIME_BINS_S) + 1))
REPORT_METRICS = REPORT_COUNTS + REPORT_STATUS_COLUMNS + REPORT_TIME_COLUMNS

report_days = Table(
    "report_days",
    metadata,
    Column("role", String(9), primary_key=True),  # sender | recipient | "" (the day's marker)
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD in Vietnam's time (UTC+7)
    Column("organ", String(64), primary_key=True),
    Column("computed_at", UtcDateTime, nullable=False),  # minus a margin for late commits
    *(Column(name, Integer, nullable=False, default=0) for name in REPORT_METRICS),
)

# Version 9: fixed-window counters shared by every gateway process (rate limits, failed log-ins).
rate_counters = Table(
    "rate_counters",
    metadata,
    Column("key", String(255), primary_key=True),  # e.g. participant:<OrganId>, auth:<address>
    Column("window_start", BigInteger, primary_key=True, autoincrement=False),  # epoch seconds
    Column("count", Integer, nullable=False),
    Index(None, "window_start"),
)

# Version 11: the participant directory, shared by every gateway and worker process. Each row is
# one participant as the JSON object ``core.directory.participant_to_mapping`` makes (the TOML
# table's shape); ``position`` keeps the file's order. ``directory_version`` has one row (id 1),
# whose ``version`` every change raises in the change's transaction: processes poll it.
participants = Table(
    "participants",
    metadata,
    Column("organ_id", String(255), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("entry", Text, nullable=False),  # a JSON object
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),  # seed, import, api:…, console:…, …
)

directory_version = Table(
    "directory_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("version", BigInteger, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    Column("changed_by", String(128), nullable=False),
)

# Version 11: the console's failed log-ins per user name (``gateway.console.throttle``), shared by
# every gateway process; ``last_at`` in epoch seconds. Rows older than an hour are deleted.
login_failures = Table(
    "login_failures",
    metadata,
    Column("username", String(128), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_at", Float, nullable=False),
    Index(None, "last_at"),
)
