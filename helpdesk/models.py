"""The data model (typed SQLAlchemy 2.0). A recipient's ``status`` and a delivery's ``status`` are
materialised from the delivery events by ``helpdesk.ingest``; nothing edits them by hand."""
from __future__ import annotations

import enum
import secrets
import time
from datetime import datetime, timezone
from typing import Any, Optional

from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (JSON, DateTime, Double, ForeignKey, Index, MetaData, String, Table,
                        Text, TypeDecorator, UniqueConstraint, event, text)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry, relationship
from sqlalchemy.sql.functions import FunctionElement
from werkzeug.security import check_password_hash, generate_password_hash

from .causes import CAUSES
from .status import NOT_SENT, SENDING, STATUSES


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime")
            value = value.astimezone(timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    registry = registry(metadata=MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }), type_annotation_map={datetime: UTCDateTime()})


db = SQLAlchemy(model_class=Base)


class DialectDDL:
    """What a table carries that SQLAlchemy's metadata cannot describe (triggers, trigram
    indexes, an FTS table), as statements per database: run when ``table`` is created and
    before it is dropped, and by the migration that brought them (``create_on``, ``drop_on``)."""

    def __init__(self, table: Table, create: dict[str, tuple[str, ...]],
                 drop: dict[str, tuple[str, ...]]):
        self.create, self.drop = create, drop
        event.listen(table, "after_create", lambda _, connection, **kw: self.create_on(connection))
        event.listen(table, "before_drop", lambda _, connection, **kw: self.drop_on(connection))

    def create_on(self, connection: Any) -> None:
        self._run(connection, self.create)

    def drop_on(self, connection: Any) -> None:
        self._run(connection, self.drop)

    @staticmethod
    def _run(connection: Any, statements: dict[str, tuple[str, ...]]) -> None:
        for statement in statements.get(connection.dialect.name, ()):
            connection.exec_driver_sql(statement)


class CredentialState(str, enum.Enum):
    draft = "draft"
    scheduled = "scheduled"
    published = "published"


class Role(str, enum.Enum):
    admin = "admin"
    agent = "agent"


class Credential(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    state: Mapped[CredentialState] = mapped_column(
        db.Enum(CredentialState, native_enum=False, length=20), default=CredentialState.draft)
    scheduled_at: Mapped[Optional[datetime]]
    send_email: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[Optional[datetime]]

    recipients: Mapped[list["Recipient"]] = relationship(
        back_populates="credential", order_by="Recipient.id", cascade="all, delete-orphan")

    __table_args__ = (Index("ix_credential_state_scheduled", "state", "scheduled_at"),)

    @property
    def published(self) -> bool:
        return self.state == CredentialState.published


class Recipient(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("credential.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(300), default="")
    email: Mapped[Optional[str]] = mapped_column(String(320))
    # Lower-cased, for grouping by domain and lookup.
    email_domain: Mapped[Optional[str]] = mapped_column(String(255))
    # Why the address cannot be used (a malformed one is kept and reported, never sent to).
    email_error: Mapped[Optional[str]] = mapped_column(String(300))
    # The address whose typo suggestion a user rejected: not suggested again for that address.
    typo_dismissed_for: Mapped[Optional[str]] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20), default=NOT_SENT)
    # Why, a key of ``helpdesk.causes.CAUSES``, with the one line that decided it and, for a
    # likely typo, the corrected address: materialised beside the status, like it.
    cause: Mapped[str] = mapped_column(String(20), default=NOT_SENT)
    evidence: Mapped[Optional[str]] = mapped_column(String(500))
    typo_suggestion: Mapped[Optional[str]] = mapped_column(String(320))
    nudges: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    credential: Mapped[Credential] = relationship(back_populates="recipients")
    deliveries: Mapped[list["Delivery"]] = relationship(
        back_populates="recipient", order_by="Delivery.id", cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_recipient_credential_status", "credential_id", "status", "id"),
        Index("ix_recipient_credential_name", "credential_id", "name", "id"),
        Index("ix_recipient_credential_updated", "credential_id", "updated_at", "id"),
        Index("ix_recipient_domain_status", "email_domain", "status"),
        # A status's recipients by last change: ending in id, so that the view's keyset
        # ``(updated_at, id) < (?, ?)`` is one seek on both databases.
        Index("ix_recipient_status_updated", "status", "updated_at", "id"),
        # The recipients view's default order (last change first, then id): its first page
        # reads 51 rows of this index, not a sort of every recipient.
        Index("ix_recipient_updated", "updated_at", "id"),
        Index("ix_recipient_cause", "cause", "id"),
        Index("ix_recipient_domain_cause", "email_domain", "cause"),
        Index("ix_recipient_email", "email"),
        # Addresses are looked up whatever their case: ``lower(email)`` starts with the text.
        Index("ix_recipient_email_lower", text("lower(email)")),
        Index("ix_recipient_name", "name"),
    )

    @property
    def status_info(self):
        return STATUSES[self.status]

    @property
    def cause_info(self):
        return CAUSES[self.cause]

    @property
    def latest_delivery(self) -> "Delivery | None":
        return self.deliveries[-1] if self.deliveries else None


# A correlation id is 32 hex digits: the milliseconds since 1970 (12 digits), then 80 random
# bits. Unguessable all the same, and new ids sort after the old: the unique index on it (and
# the "queued" events' dedupe keys made from it) grow at their right edge, where a random id
# would write to a page anywhere in them, more pages per thousand as the history grows.
def new_correlation_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


class database_correlation_id(FunctionElement):
    """A new correlation id made by the database, like ``new_correlation_id``: a set-based
    ``INSERT … SELECT`` needs none from Python."""

    type = String(64)
    inherit_cache = True


@compiles(database_correlation_id, "postgresql")
def _database_correlation_id_postgresql(element, compiler, **kw) -> str:
    return ("lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') "
            "|| substr(md5(gen_random_uuid()::text), 1, 20)")


@compiles(database_correlation_id, "sqlite")
def _database_correlation_id_sqlite(element, compiler, **kw) -> str:
    return ("printf('%012x', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) "
            "|| lower(hex(randomblob(10)))")


class Delivery(db.Model):
    """One send attempt of the credential email to one address."""

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed: every status refresh reads a recipient's deliveries.
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipient.id", ondelete="CASCADE"),
                                              index=True)
    email: Mapped[str] = mapped_column(String(320))
    provider: Mapped[str] = mapped_column(String(50))
    correlation_id: Mapped[str] = mapped_column(String(64), unique=True,
                                                default=new_correlation_id)
    provider_message_id: Mapped[Optional[str]] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=SENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(20), default="send")  # send | resend | nudge
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the queued send is due; long past it, never taken by a worker, its task was lost.
    send_due_at: Mapped[Optional[datetime]]
    # While a worker sends it: until when it holds it (renewed as it goes). Past, and the
    # delivery not settled, its worker died (``maintenance.requeue_stalled`` takes it over).
    leased_until: Mapped[Optional[datetime]]
    sent_at: Mapped[Optional[datetime]]  # when the provider gave its final answer

    recipient: Mapped[Recipient] = relationship(back_populates="deliveries")
    events: Mapped[list["DeliveryEvent"]] = relationship(
        back_populates="delivery", order_by="(DeliveryEvent.occurred_at, DeliveryEvent.id)")

    __table_args__ = (
        # Lookup finds a recipient by an address it was sent to before (since corrected).
        Index("ix_delivery_email_lower", text("lower(email)")),
        # The sends still waiting, for the requeue: a handful among all the deliveries ever made.
        Index("ix_delivery_unanswered", "sent_at", "send_due_at"),
        # Both null until the send (a new delivery writes neither index): every query on them
        # compares them to a value, which only a non-null one matches.
        *(Index(f"ix_delivery_{column}", column, sqlite_where=text(f"{column} IS NOT NULL"),
                postgresql_where=text(f"{column} IS NOT NULL"))
          for column in ("provider_message_id", "leased_until")),
    )


class DeliveryEvent(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # Null when no delivery matched: the event is still kept, never dropped.
    delivery_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(50))
    provider_event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(20))
    level: Mapped[Optional[str]] = mapped_column(String(20))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    correlation_id: Mapped[Optional[str]] = mapped_column(String(64))
    severity: Mapped[Optional[str]] = mapped_column(String(20))
    # Why, in the closed vocabulary of ``helpdesk.contract.REASON_CODES``.
    reason_code: Mapped[Optional[str]] = mapped_column(String(20))
    reason: Mapped[Optional[str]] = mapped_column(Text)
    mta_response: Mapped[Optional[str]] = mapped_column(Text)
    raw: Mapped[Optional[Any]] = mapped_column(JSON)

    delivery: Mapped[Optional[Delivery]] = relationship(back_populates="events")

    __table_args__ = (
        UniqueConstraint("provider", "provider_event_id", name="uq_delivery_event_dedupe"),
        Index("ix_delivery_event_occurred", "occurred_at"),
    )


class DomainTally(db.Model):
    """Recipients added to (+n) or taken from (-n) a status at a domain: their sum is the
    count. Appended by triggers, folded now and then (``helpdesk.tallies``)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    email_domain: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20))
    n: Mapped[int]

    __table_args__ = (Index("ix_domain_tally_domain_status", "email_domain", "status", "n"),)


class CredentialTally(db.Model):
    """The same per credential (no foreign key: a deleted credential's rows sum to nought and
    are folded away)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    credential_id: Mapped[int]
    status: Mapped[str] = mapped_column(String(20))
    n: Mapped[int]

    __table_args__ = (
        Index("ix_credential_tally_credential_status", "credential_id", "status", "n"),)


class AuditEntry(db.Model):
    """Who did what to which credential or recipient. It holds ids, not foreign keys, and says
    what in words, so the history outlives what it describes (a deleted recipient)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # The user's email as it was; None for the system (scheduled publishing, automatic nudges).
    actor: Mapped[Optional[str]] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(20))  # a key of ``helpdesk.audit.ACTIONS``
    credential_id: Mapped[Optional[int]]
    recipient_id: Mapped[Optional[int]]
    summary: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_audit_entry_recipient", "recipient_id", "id"),
        Index("ix_audit_entry_credential", "credential_id", "id"),
        Index("ix_audit_entry_action", "action", "id"),
    )


class ImportRun(db.Model):
    """One import of a CSV file: every row's verdict as imported, kept so that the summary is a
    page of its own (POST-redirect-GET: reloading it imports nothing) and the rows left out can
    be downloaded from it. ``key`` names the form that was sent: the same form sent twice
    imports once."""

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[Optional[str]] = mapped_column(String(64), unique=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("credential.id", ondelete="CASCADE"),
                                               index=True)
    created_by: Mapped[Optional[str]] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # ``helpdesk.importer.rows_data``: the file's header and each row's verdict and cells.
    rows: Mapped[Any] = mapped_column(JSON)
    queued: Mapped[int] = mapped_column(default=0)


class ShareLink(db.Model):
    """A link to one domain's status page for its IT: only the token's SHA-256 is stored (the
    link itself is shown once), with who made it, until when it works, and each view."""

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[Optional[str]] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[Optional[datetime]]
    revoked_by: Mapped[Optional[str]] = mapped_column(String(320))
    views: Mapped[int] = mapped_column(default=0)
    last_viewed_at: Mapped[Optional[datetime]]

    viewings: Mapped[list["ShareView"]] = relationship(
        back_populates="link", cascade="all, delete-orphan", order_by="ShareView.id")


class ShareView(db.Model):
    """One opening of a share link's page (when, and by what browser: no address kept)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    share_link_id: Mapped[int] = mapped_column(ForeignKey("share_link.id", ondelete="CASCADE"),
                                               index=True)
    viewed_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_agent: Mapped[Optional[str]] = mapped_column(String(300))

    link: Mapped[ShareLink] = relationship(back_populates="viewings")


class WebhookNonce(db.Model):
    """One-time tokens a provider signs (``signs_one_time_tokens``): a token seen before is refused."""

    provider: Mapped[str] = mapped_column(String(50), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SkippedMessage(db.Model):
    """A message in a bounce mailbox that is not a report, or that cannot be read: it is left
    where it is for a person, and remembered so that it is not read again every minute.
    Forgotten once it is gone from the mailbox."""

    mailbox: Mapped[str] = mapped_column(String(300), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    skipped_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateLimitHit(db.Model):
    """Hits the sign-in limits counted in the database, when there is no Redis to count them
    in (``helpdesk.limit_storage``): every web process sees the same counts. Times are epoch
    seconds, as the rate limiter keeps them; a row is dropped once it expires."""

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(500))
    at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double, index=True)
    n: Mapped[int]

    __table_args__ = (Index("ix_rate_limit_hit_key_at", "key", "at"),)


class User(UserMixin, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[Role] = mapped_column(db.Enum(Role, native_enum=False, length=20),
                                       default=Role.agent)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Part of the id a session cookie carries: raising it (sign-out, a new password) ends every
    # session of the user, wherever its cookie is.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # The zone the pages show this user's times in (``helpdesk.times``); None until chosen: UTC.
    time_zone: Mapped[Optional[str]] = mapped_column(String(64))

    tokens: Mapped[list["ApiToken"]] = relationship(back_populates="user",
                                                    cascade="all, delete-orphan")

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def end_sessions(self) -> None:
        """Every session cookie of this user stops signing in."""
        self.session_version = (self.session_version or 0) + 1

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version or 0}"

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin


class ApiToken(db.Model):
    """A Bearer token; only its SHA-256 is stored, so a leaked database leaks no token."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown in lists to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[Optional[datetime]]

    user: Mapped[User] = relationship(back_populates="tokens")
