"""The settings model of callbackd (docs/configuration.md).

One TOML file, every key overridable by `CALLBACKD_<SECTION>__<KEY>` environment variables,
and secrets readable from files (systemd `LoadCredential`). A bad file raises `ConfigError`
whose message is one plain line naming the key.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from standardwebhooks import Webhook

CHANNEL_PLACEHOLDER = "{number}"
# Credential file names read from $CREDENTIALS_DIRECTORY (systemd LoadCredential=).
CREDENTIAL_FILES = {
    "ami_secret": ("ami", "secret"),
    "webhook_secret": ("webhooks", "secret"),
    "store_url": ("store", "url"),
}
STORE_URL_SCHEMES = ("postgresql://", "postgres://")
TOKENS_CREDENTIAL = "api_tokens"


class ConfigError(Exception):
    """A configuration problem, already phrased as one line for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_channel_template(value: str) -> str:
    if value.count(CHANNEL_PLACEHOLDER) != 1:
        raise ValueError(f"must contain {CHANNEL_PLACEHOLDER} exactly once")
    if any(ch in value for ch in "\r\n&,;|"):
        raise ValueError("must not contain CR, LF, '&', ',', ';' or '|'")
    return value


ChannelTemplate = Annotated[str, Field(min_length=len(CHANNEL_PLACEHOLDER) + 2)]
RingTimeout = Annotated[int, Field(ge=1, le=600)]
CallerIdNumber = Annotated[str, Field(pattern=r"^(\+?[0-9*#]{1,32})?$")]


MIN_TOKEN_LENGTH = 8


def token_problem(token: str, client: str) -> str | None:
    """Why an API token entry is refused, wherever it comes from; None if it is good."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"every token must be at least {MIN_TOKEN_LENGTH} characters"
    if not client:
        return "every token must name a client id or '*'"
    return None


class ApiSettings(_Section):
    listen: str = "127.0.0.1:8080"
    tokens: dict[str, str] = Field(default_factory=dict)
    tokens_file: Path | None = None
    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # How long an Idempotency-Key is remembered; its stored answer is deleted after.
    idempotency_hours: int = Field(default=24, ge=1, le=24 * 30)

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @field_validator("tokens")
    @classmethod
    def _tokens_are_long_enough(cls, value: dict[str, str]) -> dict[str, str]:
        for token, client in value.items():
            problem = token_problem(token, client)
            if problem is not None:
                raise ValueError(problem)
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class StoreSettings(_Section):
    path: Path = Path("/var/lib/callbackd/callbackd.db")
    # The shared PostgreSQL store of several hosts; empty = the SQLite file at `path`.
    # A secret (its password): from url_file or the store_url credential, never logged.
    url: SecretStr = SecretStr("")
    url_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr) -> SecretStr:
        # The message never holds the URL: it may carry a password.
        text = value.get_secret_value()
        if text and not text.startswith(STORE_URL_SCHEMES):
            raise ValueError("must be a postgresql:// URL (or empty for the SQLite store)")
        return value

    @property
    def shared(self) -> bool:
        return bool(self.url.get_secret_value())


class ClusterSettings(_Section):
    """This host among the hosts of one shared store."""

    host_id: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    heartbeat: float = Field(default=10, gt=0, le=600)  # seconds between heartbeats
    host_timeout: float = Field(default=30, gt=0, le=3600)  # silent this long: gone

    @model_validator(mode="after")
    def _timeout_spans_heartbeats(self) -> ClusterSettings:
        # One late heartbeat (a GC pause, a slow commit) must not make a live host gone.
        if self.host_timeout < 2 * self.heartbeat:
            raise ValueError("host_timeout must be at least twice heartbeat")
        return self

    def resolved_host_id(self, hostname: Callable[[], str] = socket.gethostname) -> str:
        """host_id, or the machine's hostname when it is empty."""
        return self.host_id or hostname()


class AmiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "callbackd"
    secret: SecretStr = SecretStr("")
    secret_file: Path | None = None
    ping_interval: float = Field(default=10.0, gt=0)
    check_dialplan: bool = True


class AsrGuardOverrides(_Section):
    """The answer-rate guard of an extension profile; None = as in [calls.asr_guard]."""

    # Below this share of answered A numbers among attempts that reached the network,
    # the profile's tasks are held; 0 = off.
    min_ratio: float | None = Field(default=None, ge=0, le=1)
    window: int | None = Field(default=None, ge=60, le=7 * 86400)  # seconds of attempts
    min_attempts: int | None = Field(default=None, ge=1, le=1_000_000)
    probe_interval: int | None = Field(default=None, ge=1, le=86400)  # one attempt per


class AsrGuardSettings(_Section):
    min_ratio: float = Field(default=0.0, ge=0, le=1)
    window: int = Field(default=1800, ge=60, le=7 * 86400)
    min_attempts: int = Field(default=30, ge=1, le=1_000_000)
    probe_interval: int = Field(default=60, ge=1, le=86400)

    def over(self, overrides: AsrGuardOverrides | None) -> AsrGuardSettings:
        """These settings with the keys an extension profile sets laid over them."""
        if overrides is None:
            return self
        return self.model_copy(update=overrides.model_dump(exclude_none=True))


class ProfileOverrides(_Section):
    """Call settings an extension profile may override; None = inherit from [calls]."""

    a_channel: ChannelTemplate | None = None
    b_channel: ChannelTemplate | None = None
    a_ring_timeout: RingTimeout | None = None
    b_ring_timeout: RingTimeout | None = None
    max_talk_time: int | None = Field(default=None, ge=0)
    caller_id_number: CallerIdNumber | None = None
    caller_id_name: str | None = Field(default=None, max_length=80)

    @field_validator("a_channel", "b_channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return None if value is None else _check_channel_template(value)


class ExtensionProfile(ProfileOverrides):
    account_code: str = Field(default="", max_length=80, pattern=r"^[A-Za-z0-9_.-]*$")
    max_concurrent: int | None = Field(default=None, ge=1)
    asr_guard: AsrGuardOverrides | None = None


class CallSettings(_Section):
    max_concurrent: int = Field(default=50, ge=1)
    a_channel: ChannelTemplate = "PJSIP/{number}@carrier"
    b_channel: ChannelTemplate = "PJSIP/{number}@carrier"
    a_ring_timeout: RingTimeout = 30
    b_ring_timeout: RingTimeout = 30
    max_talk_time: int = Field(default=0, ge=0)
    caller_id_number: CallerIdNumber = ""
    caller_id_name: str = Field(default="", max_length=80)
    account_code: str = Field(default="", max_length=80, pattern=r"^[A-Za-z0-9_.-]*$")
    # A watchdog checks with Asterisk an attempt whose events stopped coming for this
    # long past its ring phase, or past max_talk_time once bridged (see CallEngine).
    event_silence_timeout: int = Field(default=120, ge=10)
    # Calling hours in the interval's zone, or in the A number's own zone where it has
    # exactly one ("destination").
    interval_zone: Literal["interval", "destination"] = "interval"
    asr_guard: AsrGuardSettings = Field(default_factory=AsrGuardSettings)

    @field_validator("a_channel", "b_channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return _check_channel_template(value)


def webhook_signer(secret: str) -> Webhook:
    """The Standard Webhooks signer of a configured secret; ValueError (never showing
    the secret) when it cannot sign."""
    try:
        return Webhook(secret)
    except Exception:  # binascii.Error, EmptyWebhookSecretError, RuntimeError
        raise ValueError(
            "is not a Standard Webhooks secret: whsec_ then base64 (or empty for none)"
        ) from None


class WebhookSettings(_Section):
    secret: SecretStr = SecretStr("")
    secret_file: Path | None = None
    timeout: float = Field(default=5, gt=0, le=120)
    max_attempts: int = Field(default=6, ge=1, le=100)
    deny_networks: list[str] = Field(default_factory=lambda: ["169.254.0.0/16", "fe80::/10"])
    # Days a delivered or given-up webhook stays in the store (for troubleshooting).
    keep_days: int = Field(default=7, ge=1, le=3650)

    @field_validator("secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr) -> SecretStr:
        # Checked here, so a secret that cannot sign stops the start instead of failing
        # every webhook later. The message never holds the secret.
        if value.get_secret_value():
            webhook_signer(value.get_secret_value())
        return value

    @field_validator("deny_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not a network") from exc
        return value


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLBACKD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    # Seconds a stop (SIGTERM) may take to deliver due webhooks and finish store
    # writes, all together; the unit's TimeoutStopSec must stay above it.
    shutdown_grace: float = Field(default=10, gt=0, le=300)
    api: ApiSettings = Field(default_factory=ApiSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    ami: AmiSettings = Field(default_factory=AmiSettings)
    calls: CallSettings = Field(default_factory=CallSettings)
    extensions: dict[int, ExtensionProfile] = Field(default_factory=dict)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, which arrives as init kwargs.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _profile_ids_positive(self) -> Settings:
        for ext_id in self.extensions:
            if ext_id < 0:
                raise ValueError(f"extensions.{ext_id}: the id must not be negative")
        return self


def _read_secret_file(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"config error: {source}: cannot read {path}: {exc.strerror}") from exc


def _load_tokens_file(path: Path, source: str) -> dict[str, str]:
    """A tokens file holds `token client_id` pairs, one per line; '#' starts a comment.
    Each token is checked here, so a bad one is blamed on this file and its line, not
    on the config file the tokens are merged into."""
    tokens: dict[str, str] = {}
    for lineno, line in enumerate(_read_secret_file(path, source).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        problem = "expected 'TOKEN CLIENT_ID'" if len(parts) != 2 else token_problem(*parts)
        if problem is not None:
            raise ConfigError(f"config error: {source}: {path}:{lineno}: {problem}")
        tokens[parts[0]] = parts[1]
    return tokens


def _secret_source(
    sect: dict[str, Any], section: str, file_key: str, credential: str, creds_dir: str | None
) -> tuple[Path, str] | None:
    """Where a secret file is, and what named it (for the operator's error line): the
    environment (which wins over the file, as for every key), the config file, or else
    a systemd credential of that name."""
    key = f"{section}.{file_key}"
    variable = _env_name((section, file_key))
    if variable and os.environ[variable]:
        return Path(os.environ[variable]), variable
    if sect.get(file_key) is not None:
        return Path(sect[file_key]), key
    if creds_dir and (Path(creds_dir) / credential).is_file():
        return Path(creds_dir) / credential, f"systemd credential {credential}"
    return None


def _apply_secret_files(raw: dict[str, Any]) -> dict[str, Any]:
    """Fold `*_file` keys and systemd credentials into the raw settings."""
    creds_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    for cred_name, (section, key) in CREDENTIAL_FILES.items():
        sect = raw.setdefault(section, {})
        found = _secret_source(sect, section, f"{key}_file", cred_name, creds_dir)
        if found is not None:
            sect[key] = _read_secret_file(*found)
    api = raw.setdefault("api", {})
    found = _secret_source(api, "api", "tokens_file", TOKENS_CREDENTIAL, creds_dir)
    if found is not None:
        api["tokens"] = {**api.get("tokens", {}), **_load_tokens_file(*found)}
    return raw


def _env_name(loc: tuple[int | str, ...]) -> str | None:
    """The environment variable that set the key at `loc`, if one did."""
    wanted = "CALLBACKD_" + "__".join(str(p).upper() for p in loc)
    return next((name for name in os.environ if name.upper() == wanted), None)


def _one_line(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    # A value from the environment wins over the file, so name the variable, not the file.
    source = _env_name(first["loc"]) or source
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        message = first["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"config error: {key}: {message} in {source}{tail}"


def _is_list_or_table(annotation: Any) -> bool:
    return get_origin(annotation) in (list, dict) or (
        isinstance(annotation, type) and issubclass(annotation, BaseModel)
    )


def _annotation_set_by(variable: str) -> Any:
    """The type of the key a `CALLBACKD_<SECTION>[__<KEY>]` variable sets; None if none."""
    section, _, key = variable.upper().removeprefix("CALLBACKD_").lower().partition("__")
    field = Settings.model_fields.get(section)
    if field is None or not key:
        return None if field is None else field.annotation
    model = field.annotation
    if isinstance(model, type) and issubclass(model, BaseModel) and key in model.model_fields:
        return model.model_fields[key].annotation
    return None


def _not_json_in_environment() -> str:
    """The one line for a list or table from the environment that is not JSON
    (pydantic-settings decodes those before anything is validated)."""
    for name, value in sorted(os.environ.items()):
        if name.upper().startswith("CALLBACKD_") and _is_list_or_table(_annotation_set_by(name)):
            try:
                json.loads(value)
            except ValueError:
                return (
                    f"config error: {name}: a list or table from the environment must be"
                    ' JSON: ["a", "b"] or {"key": "value"}'
                )
    return "config error: a CALLBACKD_* variable holds a list or table that is not JSON"


def load_settings(path: Path | None) -> Settings:
    """Read the TOML file (if any), apply env overrides and secret files, validate."""
    raw: dict[str, Any] = {}
    source = str(path) if path else "environment"
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config error: cannot read {path}: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config error: {path} is not valid TOML: {exc}") from exc
    try:
        return Settings(**_apply_secret_files(raw))
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None
    except SettingsError:
        raise ConfigError(_not_json_in_environment()) from None
