"""The core's default settings. Each can be set as a ``HELPDESK_<NAME>`` environment variable
(values are read as JSON where they parse, so ``HELPDESK_NUDGE_MAX=3`` is a number) or in the
instance folder's ``config.py``."""

PROVIDER = "smtp"
# The From address of every credential email: the one a company's IT must allowlist.
SENDER = "credentials@example.org"
SENDER_NAME = "Credentials"
BASE_URL = "http://127.0.0.1:5000"
ORGANISATION = "Your organisation"

# A provider's own settings (SMTP_HOST, its API key…) are declared by its plugin (the
# helpdesk_settings hook), not here.

# Where bounce reports arrive, read by the worker every minute: a Maildir on this machine,
# and/or a mailbox on a mail server: imaps://user@host/INBOX (TLS), imap://… (STARTTLS),
# pop3s://user@host or pop3://… (STLS). Reports read are deleted, or moved to the IMAP folder
# BOUNCE_MAILBOX_MOVE_TO.
BOUNCE_MAILDIR = None
BOUNCE_MAILBOX_URL = None
BOUNCE_MAILBOX_PASSWORD = None
BOUNCE_MAILBOX_MOVE_TO = None

# A send refused for now (an SMTP 4xx, greylisting, a service that is down) is retried, the
# delay doubling from SEND_RETRY_DELAY seconds up to SEND_RETRY_MAX_DELAY, for
# SEND_RETRY_WINDOW_HOURS after the first refusal (five days, as Postfix and Sendmail do); then
# it ends "expired", a soft failure.
SEND_RETRY_WINDOW_HOURS = 120
SEND_RETRY_DELAY = 30
SEND_RETRY_MAX_DELAY = 3600
SEND_TIMEOUT = 20
# A delivery still unanswered this long after it was due lost its worker (killed mid-send): it
# is queued again when a worker starts and every few minutes.
SEND_STALL_SECONDS = 600

NUDGE_AFTER_DAYS = 7
NUDGE_MAX = 2
# A recipient is not nudged again by hand within this many hours of the last nudge.
NUDGE_COOLDOWN_HOURS = 24
DOMAIN_BOUNCE_ALERT = 3
SHARE_LINK_DAYS = 14
CHECK_DELIVERABILITY = False

# Webhook bodies over this size are refused with 413; signatures older (or further in the
# future) than the tolerance are refused as stale.
WEBHOOK_MAX_BYTES = 5 * 1024 * 1024
WEBHOOK_TOLERANCE_SECONDS = 600

PAGE_SIZE = 50
# Sign-in attempts per address (counted in Redis when the queue is there, else per process) and
# failed sign-ins per account (counted in the same storage): past LOGIN_ACCOUNT_MAX_FAILURES
# within the window the account cannot sign in until the window moves on.
LOGIN_RATE_LIMIT = "10 per minute"
LOGIN_ACCOUNT_MAX_FAILURES = 10
LOGIN_ACCOUNT_WINDOW_SECONDS = 900

# Behind a reverse proxy (nginx, a load balancer): true trusts one proxy's X-Forwarded-For,
# -Proto and -Host; {"x_for": 2, "x_proto": 1} gives each header's hop count. Off by default:
# without a proxy those headers are the client's to forge.
PROXY_FIX = None
