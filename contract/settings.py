"""Settings: the only place that reads the environment.

One frozen Struct, built once at startup by `Settings.from_env()`. Each field is named after its
environment variable (`redis_url` <- `REDIS_URL`); a bad value raises `SettingsError` naming that
variable, and the command line turns it into a one-line message and exit status 2.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec

from contract import alerting, privacy, redisurl
from contract.errors import SettingsError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DAY = 86_400
_UNDER_PREFIX = {"queue_name": "queue", "events_stream": "events", "dead_letter_stream": "dead"}  # unset: prefixed


class Settings(msgspec.Struct, frozen=True, kw_only=True, rename="upper"):
    """Everything the roles can be told; defaults run the whole pipeline on one machine."""

    # Redis: the queue and the dedup marks. redis://, rediss://, unix://, or redis+sentinel://H:P[,H:P]/MASTER[/DB]
    # (rediss+sentinel:// for TLS): contract/redisurl.py.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The receiver's 200 waits until this many replicas have the webhook's job (WAIT), at most ACK_TIMEOUT_MS,
    # else 503; 0 answers once the primary has it, and reconciliation brings back what a failover lost (README).
    ack_replicas: int = 0
    ack_timeout_ms: int = 100
    # Receiver.
    webhook_tokens: tuple[str, ...] = ()
    webhook_allowed_ips: tuple[str, ...] = ()
    webhook_trusted_proxies: tuple[str, ...] = ()
    webhook_dedup_ttl: int = 7 * DAY
    webhook_max_body: int = 64 * 1024
    # How long an enqueued job waits for a worker before Redis forgets it. Defaults to the dedup
    # window: a call marked seen must stay queued at least as long as it is remembered.
    job_expiry: int = 7 * DAY
    # KEY_PREFIX names every key of ours and every job id (arq keeps a job under its id), so two environments
    # told apart by it share nothing: QUEUE_NAME, EVENTS_STREAM and DEAD_LETTER_STREAM, left unset, are
    # {KEY_PREFIX}queue, {KEY_PREFIX}events and {KEY_PREFIX}dead (wavix:queue, wavix:events, wavix:dead with the
    # default prefix, as before); a name that is set is used as given, shared by whoever else sets it.
    queue_name: str = ""
    key_prefix: str = "wavix:"
    log_level: str = "INFO"
    # Wavix API (the worker's fetches).
    wavix_api_url: str = "https://api.wavix.com"
    wavix_api_key: str = ""
    wavix_cdr_path: str = "/v1/cdr/{uuid}"  # or "/v1/cdrs/{call_id}", the current spec's family
    wavix_timeout: float = 10.0  # seconds to wait for an answer (connect: 5)
    wavix_max_body: int = 1 << 20  # a CDR or transcript larger than this is dead-lettered `too_large`
    transcript_wait: int = 30 * 60
    transcript_poll: int = 30  # first transcript poll after the call, then backing off
    retry_max_delay: float = 300.0  # the longest wait between two tries of a failing Wavix call
    # Reconciliation (workers/fetch/reconcile.py): every RECONCILE_INTERVAL seconds one worker lists the CDRs
    # of the last RECONCILE_LOOKBACK seconds and queues the calls whose webhook never came. 0 turns it off.
    reconcile_interval: int = 300
    reconcile_lookback: int = 7200
    # Worker behaviour.
    worker_concurrency: int = 64  # jobs at once per process (arq max_jobs); Wavix calls are mostly waiting
    job_timeout: int = 300
    worker_poll_delay: float = 0.05  # between queue polls: bounds how long a new job waits for a free worker
    job_completion_wait: int = 30  # on SIGTERM, how long running jobs may finish before they are re-queued
    worker_health_port: int = 9100  # /healthz and /metrics per worker process; 0 turns it off
    # Downstream: the Redis Stream every event lands in, and the dead letters.
    events_stream: str = ""  # {KEY_PREFIX}events unless set
    events_stream_maxlen: int = 1_000_000
    dead_letter_stream: str = ""  # {KEY_PREFIX}dead unless set
    sinks_config: str = ""  # a routing file (docs in workers/deliver/route.py); empty: every event to EVENTS_STREAM
    delivery_inline_timeout: float = 2.0  # a first delivery slower than this continues in a job of its own
    # Every event as first built, kept this long in the Redis Stream {KEY_PREFIX}eventlog for
    # `wavix-events replay` (workers/deliver/eventlog.py); 0 keeps no log.
    event_log_retention: int = 7 * DAY
    # Slack alerts: an incoming webhook, or a bot token and channel.
    slack_webhook_url: str = ""
    slack_bot_token: str = ""
    slack_channel: str = ""
    slack_api_url: str = "https://slack.com/api"
    alert_rules: tuple[str, ...] = ("failed", "machine")
    alert_digest_threshold: int = 5  # alerts waiting at once above this are sent as one digest
    # Waits after each failed try of a Slack message (workers/retry.py's Schedule, checked when a worker starts):
    # 7 tries over ~2 h 43 min, then a dead letter. Hours, not the deliveries' day: a stale alert is no alert.
    slack_retry_schedule: tuple[str, ...] = ("5s", "30s", "2m", "10m", "30m", "2h")

    # Console (`wavix-events console`): its own port, loopback unless told; refuses to start without a token.
    console_token: str = ""
    console_host: str = "127.0.0.1"
    console_port: int = 8300
    console_allow_actions: bool = False  # replay and purge dead letters from the browser
    # Tracing: OpenTelemetry spans over OTLP/HTTP when set (the exporter reads its other OTEL_* itself).
    otel_exporter_otlp_endpoint: str = ""

    # --- Privacy (issue #25: contract/privacy.py, workers/privacy/, docs/keys.md) ---
    # The HMAC key of `numbers: hash` (routing file) and ALERT_REDACT; its id shows in every hash, so a rotation is
    # visible. Required when a destination hashes numbers; at least 16 characters.
    redact_key: str = ""
    # Slack alerts' redaction, as a destination's `redact:`: e.g. "numbers=mask,transcript=drop,recording_url=drop".
    alert_redact: tuple[str, ...] = ()
    console_redact: bool = False  # the console masks every number on every page
    # How long a call's record, summary and place in the console's index (and the number index) are kept.
    record_retention: int = 7 * DAY
    # A dead letter not replayed by then is dropped; its call's delivered marks are kept a day longer.
    dead_letter_retention: int = 30 * DAY

    # --- Accounts (issue #26: contract/accounts.py, workers/fetch/accounts.py, wavix_events/accounts.py) ---
    # A YAML file naming each Wavix account served (its key, webhook tokens, own settings); reloaded on SIGHUP.
    # Empty: one account, `default`, from WEBHOOK_TOKENS, WAVIX_API_KEY and WAVIX_API_URL.
    accounts_file: str = ""
    # The master account's key: `wavix-events accounts discover`, and the keys of the accounts given by
    # `sub_account:` alone, read from its sub-account listing at run time.
    wavix_master_api_key: str = ""
    account_keys_refresh: int = 600  # seconds between two reads of that listing
    # Wavix requests at once per account and worker process, so one slow account cannot hold every job slot;
    # 0: half of WORKER_CONCURRENCY when there are several accounts, no limit with one.
    account_max_in_flight: int = 0

    # --- Alert channels, routes, keywords, pipeline incidents (issue #27: contract/alerting.py, workers/alert/) ---
    # ALERT_RULES above also routes: `failed=slack+teams,keyword=teams,pipeline=pagerduty` (contract/alerting.py).
    # Microsoft Teams: a Workflows (Power Automate) webhook URL, a secret; Office 365 connector URLs are refused.
    teams_webhook_url: str = ""
    # PagerDuty Events API v2: an integration's routing key (32 characters, a secret); only rules naming
    # `pagerduty` send there (e.g. pipeline=pagerduty).
    pagerduty_routing_key: str = ""
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    # E-mail: smtp://USER:PASSWORD@HOST:587 (STARTTLS, required) or smtps://...:465; a secret (its password).
    smtp_url: str = ""
    smtp_ca_file: str = ""  # a private relay's CA bundle (PEM); empty: the system's
    alert_email_from: str = ""
    alert_email_to: tuple[str, ...] = ()
    # What was said: `NAME[@caller|@callee]:word|phrase|...`, comma-separated; `keyword` in ALERT_RULES routes them.
    alert_keywords: tuple[str, ...] = ()
    # YAML: `rules:` (in place of ALERT_RULES), `keywords:`, and `accounts:` with each account's own rules.
    alerts_file: str = ""
    console_url: str = ""  # the console's address as people open it: alerts link to its page of the call
    # Pipeline incidents (workers/alert/incidents.py; `pipeline` in ALERT_RULES routes them): a destination failing
    # this long opens one; failing DESTINATION_DISABLE_AFTER (since it failed or was resumed) pauses it; 0: never.
    pipeline_failing_after: int = 600
    destination_disable_after: int = 5 * DAY

    def __post_init__(self) -> None:
        for name, suffix in _UNDER_PREFIX.items():
            if not getattr(self, name):
                msgspec.structs.force_setattr(self, name, self.key_prefix + suffix)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Builds the settings from `environ` (default `os.environ`); empty values count as unset."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for field in msgspec.structs.fields(cls):
            value = env.get(field.encode_name, "").strip()
            if value:
                raw[field.encode_name] = _split(value) if _is_list(field.type) else value
        try:
            settings = msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as e:
            raise SettingsError(_variable_in(str(e)), str(e).split(" - at ")[0]) from e
        settings._check()
        return settings

    def _check(self) -> None:
        for name in ("webhook_dedup_ttl", "webhook_max_body", "wavix_max_body", "job_expiry", "transcript_wait",
                     "transcript_poll", "worker_concurrency", "job_timeout"):
            if getattr(self, name) <= 0:
                raise SettingsError(name.upper(), "must be a positive whole number")
        _zero_or_more(self, reconcile_interval="off", event_log_retention="no log")
        if self.reconcile_lookback <= 0:
            raise SettingsError("RECONCILE_LOOKBACK", "must be a positive number of seconds")
        if self.reconcile_interval and self.reconcile_lookback <= self.reconcile_interval:
            raise SettingsError("RECONCILE_LOOKBACK", "must be longer than RECONCILE_INTERVAL, or calls could fall "
                                "between two passes")
        if self.job_expiry < self.webhook_dedup_ttl:
            raise SettingsError("JOB_EXPIRY", "must be at least WEBHOOK_DEDUP_TTL, or a seen call could expire unrun")
        for token in self.webhook_tokens:
            if len(token) < 16:
                raise SettingsError("WEBHOOK_TOKENS", "each token must be at least 16 characters long")
        self.allowed_networks()
        self.trusted_proxy_networks()
        _check_redis_url(self.redis_url)
        if self.ack_replicas < 0 or self.ack_timeout_ms <= 0:
            raise SettingsError("ACK_REPLICAS" if self.ack_replicas < 0 else "ACK_TIMEOUT_MS",
                                "ACK_REPLICAS must be 0 or more, ACK_TIMEOUT_MS a positive number of milliseconds")
        api = urlsplit(self.wavix_api_url)
        if api.scheme not in ("http", "https") or not api.hostname:
            raise SettingsError("WAVIX_API_URL", f"must be an http(s) URL, got {self.wavix_api_url!r}")
        self._check_privacy()
        self._check_accounts()
        self._check_alerting()

    def _check_privacy(self) -> None:
        if self.redact_key and len(self.redact_key) < privacy.MIN_KEY:
            raise SettingsError("REDACT_KEY", f"must be at least {privacy.MIN_KEY} characters long")
        for name in ("record_retention", "dead_letter_retention"):
            if getattr(self, name) <= 0:
                raise SettingsError(name.upper(), "must be a positive number of seconds")
        try:
            rules = self.alert_redaction()
        except privacy.RulesError as e:
            raise SettingsError("ALERT_REDACT", str(e)) from e
        if rules.needs_key and not self.redact_key:
            raise SettingsError("ALERT_REDACT", "numbers=hash needs REDACT_KEY")

    def _check_accounts(self) -> None:
        if self.account_keys_refresh <= 0:
            raise SettingsError("ACCOUNT_KEYS_REFRESH", "must be a positive number of seconds")
        if self.account_max_in_flight < 0:
            raise SettingsError("ACCOUNT_MAX_IN_FLIGHT", "must be 0 (half of WORKER_CONCURRENCY) or more")

    def _check_alerting(self) -> None:
        teams = urlsplit(self.teams_webhook_url)
        if self.teams_webhook_url and (teams.scheme not in ("http", "https") or not teams.hostname):
            raise SettingsError("TEAMS_WEBHOOK_URL", "must be the http(s) URL of a Workflows webhook")
        if (teams.hostname or "").endswith(alerting.RETIRED_TEAMS_HOSTS):
            raise SettingsError("TEAMS_WEBHOOK_URL", "an Office 365 connector URL: Microsoft retired them; create "
                                "a Workflows webhook (the channel's Workflows app) and set its URL")
        if self.pagerduty_routing_key and len(self.pagerduty_routing_key) != 32:
            raise SettingsError("PAGERDUTY_ROUTING_KEY", "must be an Events API v2 integration key (32 characters)")
        pagerduty = urlsplit(self.pagerduty_url)
        if pagerduty.scheme not in ("http", "https") or not pagerduty.hostname:
            raise SettingsError("PAGERDUTY_URL", "must be an http(s) URL (https://events.pagerduty.com/v2/enqueue)")
        self._check_email()
        if self.pipeline_failing_after <= 0:
            raise SettingsError("PIPELINE_FAILING_AFTER", "must be a positive number of seconds")
        if self.destination_disable_after < 0:
            raise SettingsError("DESTINATION_DISABLE_AFTER", "must be 0 (never) or a positive number of seconds")
        try:
            alerting.parse_keywords(self.alert_keywords)
        except alerting.RulesError as e:
            raise SettingsError("ALERT_KEYWORDS", str(e)) from e
        try:
            self.alerting().check(self.alert_channels())
        except alerting.RulesError as e:
            raise SettingsError("ALERTS_FILE" if self.alerts_file else "ALERT_RULES", str(e)) from e

    def alerting(self) -> alerting.AlertsFile:
        """ALERT_RULES, ALERT_KEYWORDS and ALERTS_FILE together (checked at load; the file is read again)."""
        return alerting.configuration(self.alert_rules, self.alert_keywords, self.alerts_file)

    def _check_email(self) -> None:
        smtp = urlsplit(self.smtp_url)
        if self.smtp_url and (smtp.scheme not in ("smtp", "smtps") or not smtp.hostname):
            raise SettingsError("SMTP_URL", "must be smtp://USER:PASSWORD@HOST:587 (STARTTLS) or smtps://...:465")
        if self.smtp_url and "@" not in self.alert_email_from:
            raise SettingsError("ALERT_EMAIL_FROM", "set the sender's address for alert e-mail (SMTP_URL is set)")
        if self.smtp_url and (not self.alert_email_to or any("@" not in a for a in self.alert_email_to)):
            raise SettingsError("ALERT_EMAIL_TO", "set the addresses alert e-mail goes to, comma-separated")

    def alert_channels(self) -> tuple[str, ...]:
        """The alert channels whose settings are given (Slack always counts: an account may bring its own)."""
        given = {"slack": True, "teams": bool(self.teams_webhook_url), "pagerduty": bool(self.pagerduty_routing_key),
                 "email": bool(self.smtp_url)}
        return tuple(name for name, on in given.items() if on)

    def alert_redaction(self) -> privacy.Redaction:
        """ALERT_REDACT as rules (checked at load)."""
        return privacy.parse_setting(self.alert_redact)

    def allowed_networks(self) -> tuple[Network, ...]:
        return _networks("WEBHOOK_ALLOWED_IPS", self.webhook_allowed_ips)

    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        return _networks("WEBHOOK_TRUSTED_PROXIES", self.webhook_trusted_proxies)


def environment() -> Mapping[str, str]:
    """The environment, for the values a routing file names by variable (`secret_env`, `${VAR}`)."""
    return dict(os.environ)


def _zero_or_more(settings: Settings, **meaning_of_zero: str) -> None:
    for name, zero in meaning_of_zero.items():
        if getattr(settings, name) < 0:
            raise SettingsError(name.upper(), f"must be 0 ({zero}) or a positive number of seconds")


def _check_redis_url(url: str) -> None:
    try:
        redisurl.check(url)
    except redisurl.RedisUrlError as e:
        raise SettingsError("REDIS_URL", str(e)) from e


def _networks(variable: str, values: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in values)
    except ValueError as e:
        raise SettingsError(variable, f"not an address or CIDR range ({e})") from e


def _is_list(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is tuple


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _variable_in(message: str) -> str:
    """msgspec says `... - at `$.WEBHOOK_DEDUP_TTL``: the variable is the last path element."""
    _, _, path = message.partition("`$.")
    return path.split("`")[0].split("[")[0] or "environment"
