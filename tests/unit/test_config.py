"""Loading the settings (docs/configuration.md): TOML, CALLBACKD_* overrides, secret files, and one
plain line naming the key when something is wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings

GOOD = """
[api]
listen = "127.0.0.1:8099"
[api.tokens]
"change-me-acme" = "acme"

[store]
path = "{store}"

[ami]
host = "10.0.0.5"
username = "callbackd"
secret = "from-the-file"

[calls]
max_concurrent = 20
a_channel = "PJSIP/{{number}}@carrier"
a_ring_timeout = 30
b_ring_timeout = 25
caller_id_number = ""

[extensions.101]
account_code = "sales"
caller_id_number = "4951234567"
max_concurrent = 5

[webhooks]
secret = ""
timeout = 5
max_attempts = 6
deny_networks = ["169.254.0.0/16"]
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CALLBACKD_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def _write(tmp_path: Path, text: str, name: str = "callbackd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text.replace("{store}", str(tmp_path / "db.sqlite")))
    return path


def _error(path: Path | None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("config error: ")
    return message


def test_good_file_loads_every_section(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, GOOD))

    assert (settings.api.host, settings.api.port) == ("127.0.0.1", 8099)
    assert settings.api.tokens == {"change-me-acme": "acme"}
    assert settings.store.path == tmp_path / "db.sqlite"
    assert settings.ami.host == "10.0.0.5"
    assert settings.ami.secret.get_secret_value() == "from-the-file"
    assert settings.calls.max_concurrent == 20
    assert (settings.calls.a_ring_timeout, settings.calls.b_ring_timeout) == (30, 25)
    assert settings.extensions[101].account_code == "sales"
    assert settings.extensions[101].max_concurrent == 5
    assert settings.webhooks.max_attempts == 6


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, ""))

    assert settings.api.listen == "127.0.0.1:8080"
    assert settings.calls.a_ring_timeout == 30
    assert settings.calls.b_ring_timeout == 30
    assert "169.254.0.0/16" in settings.webhooks.deny_networks


def test_environment_overrides_one_key_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLBACKD_CALLS__A_RING_TIMEOUT", "45")
    monkeypatch.setenv("CALLBACKD_EXTENSIONS__101__MAX_CONCURRENT", "7")

    settings = load_settings(_write(tmp_path, GOOD))

    assert settings.calls.a_ring_timeout == 45
    assert settings.calls.b_ring_timeout == 25
    assert settings.calls.max_concurrent == 20
    assert settings.extensions[101].max_concurrent == 7
    assert settings.extensions[101].account_code == "sales"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("[calls]\n", "[calls]\ncolour = 1\n", "calls.colour"),
        ("[store]\n", "[telephony]\nx = 1\n[store]\n", "telephony"),
        ("[extensions.101]\n", "[extensions.101]\nringtone = 'x'\n", "extensions.101.ringtone"),
        (
            "[webhooks]\n",
            "[extensions.101.asr_guard]\nratio = 0.5\n[webhooks]\n",
            "extensions.101.asr_guard.ratio",
        ),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, old: str, new: str, key: str) -> None:
    message = _error(_write(tmp_path, GOOD.replace(old, new)))

    assert f"{key}: unknown key" in message


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("a_ring_timeout = 30", "a_ring_timeout = 0", "calls.a_ring_timeout"),
        ("a_ring_timeout = 30", "a_ring_timeout = 'soon'", "calls.a_ring_timeout"),
        ('a_channel = "PJSIP/{{number}}@carrier"', 'a_channel = "PJSIP/x@y"', "calls.a_channel"),
        (
            'a_channel = "PJSIP/{{number}}@carrier"',
            'a_channel = "PJSIP/{{number}}@a&PJSIP/1@b"',
            "calls.a_channel",
        ),
        ('listen = "127.0.0.1:8099"', 'listen = "8099"', "api.listen"),
        ('"change-me-acme" = "acme"', '"short" = "acme"', "api.tokens"),
        ('caller_id_number = "4951234567"', 'caller_id_number = "49;5"', "caller_id_number"),
        ('deny_networks = ["169.254.0.0/16"]', 'deny_networks = ["nowhere"]', "deny_networks"),
        ("max_attempts = 6", "max_attempts = 0", "webhooks.max_attempts"),
        (
            "[webhooks]\n",
            "[calls.asr_guard]\nmin_ratio = 1.5\n[webhooks]\n",
            "calls.asr_guard.min_ratio",
        ),
        (
            "max_concurrent = 20",
            'max_concurrent = 20\ninterval_zone = "local"',
            "calls.interval_zone",
        ),
    ],
)
def test_bad_value_is_named(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in GOOD
    message = _error(_write(tmp_path, GOOD.replace(old, new)))

    assert key in message
    assert str(tmp_path / "callbackd.toml") in message


def test_bad_value_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLBACKD_CALLS__A_RING_TIMEOUT", "abc")

    message = _error(_write(tmp_path, GOOD))

    assert "calls.a_ring_timeout" in message
    assert "CALLBACKD_CALLS__A_RING_TIMEOUT" in message


def test_several_problems_are_counted_on_the_one_line(tmp_path: Path) -> None:
    text = GOOD.replace("a_ring_timeout = 30", "a_ring_timeout = 0").replace(
        "max_attempts = 6", "max_attempts = 0"
    )

    assert "(and 1 more problem)" in _error(_write(tmp_path, text))


def test_missing_or_unreadable_file_is_one_line(tmp_path: Path) -> None:
    assert "cannot read" in _error(tmp_path / "absent.toml")
    assert "cannot read" in _error(tmp_path)  # a directory


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "[api\nlisten = "))

    assert "not valid TOML" in message


def test_ami_secret_comes_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "ami.secret"
    secret.write_text("s3cret-from-file\n")
    text = GOOD.replace('secret = "from-the-file"', f'secret_file = "{secret}"')

    settings = load_settings(_write(tmp_path, text))

    assert settings.ami.secret.get_secret_value() == "s3cret-from-file"
    assert "s3cret" not in repr(settings)


def test_missing_secret_file_names_its_key(tmp_path: Path) -> None:
    text = GOOD.replace('secret = "from-the-file"', f'secret_file = "{tmp_path / "nope"}"')

    message = _error(_write(tmp_path, text))

    assert "ami.secret_file" in message
    assert "cannot read" in message


def test_tokens_file_adds_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# panel tokens\nbeta-token-123 beta\n\nadmin-token-123 *  # ops\n")
    text = GOOD.replace("[api.tokens]", f'tokens_file = "{tokens}"\n[api.tokens]')

    settings = load_settings(_write(tmp_path, text))

    assert settings.api.tokens == {
        "change-me-acme": "acme",
        "beta-token-123": "beta",
        "admin-token-123": "*",
    }


def test_malformed_tokens_file_names_the_line_but_not_the_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("beta-token-123 beta\nsecret-without-client\n")
    text = GOOD.replace("[api.tokens]", f'tokens_file = "{tokens}"\n[api.tokens]')

    message = _error(_write(tmp_path, text))

    assert "api.tokens_file" in message
    assert f"{tokens}:2" in message
    assert "secret-without-client" not in message


def test_systemd_credentials_directory_supplies_secrets_and_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "ami_secret").write_text("ami-from-credential")
    (creds / "webhook_secret").write_text("whsec_ZnJvbS1jcmVkZW50aWFs")
    (creds / "api_tokens").write_text("cred-token-123 gamma\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = GOOD.replace('secret = "from-the-file"\n', "").replace('secret = ""\n', "")

    settings = load_settings(_write(tmp_path, text))

    assert settings.ami.secret.get_secret_value() == "ami-from-credential"
    assert settings.webhooks.secret.get_secret_value() == "whsec_ZnJvbS1jcmVkZW50aWFs"
    assert settings.api.tokens["cred-token-123"] == "gamma"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("short gamma", "every token must be at least 8 characters"),
        ("cred-token-123", "expected 'TOKEN CLIENT_ID'"),
    ],
)
def test_a_bad_token_in_the_credential_is_blamed_on_the_credential_not_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, problem: str
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "api_tokens").write_text(f"good-token-123 beta\n{line}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = _write(tmp_path, GOOD)

    message = _error(config)

    assert message == (
        f"config error: systemd credential api_tokens: {creds / 'api_tokens'}:2: {problem}"
    )
    assert str(config) not in message


def test_a_bad_token_in_a_tokens_file_named_by_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = tmp_path / "env.tokens"
    tokens.write_text("tiny beta\n")
    monkeypatch.setenv("CALLBACKD_API__TOKENS_FILE", str(tokens))

    message = _error(_write(tmp_path, GOOD))

    assert message.startswith(f"config error: CALLBACKD_API__TOKENS_FILE: {tokens}:1: ")
    assert "tiny" not in message


def test_secret_file_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "ami.secret"
    secret.write_text("env-pointed-secret")
    monkeypatch.setenv("CALLBACKD_AMI__SECRET_FILE", str(secret))

    settings = load_settings(_write(tmp_path, GOOD))

    assert settings.ami.secret.get_secret_value() == "env-pointed-secret"


def test_a_secret_file_named_in_the_environment_wins_over_the_config_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_file, in_env = tmp_path / "file.secret", tmp_path / "env.secret"
    in_file.write_text("named-by-the-file")
    in_env.write_text("named-by-the-environment")
    tokens_file, tokens_env = tmp_path / "file.tokens", tmp_path / "env.tokens"
    tokens_file.write_text("file-token-123 beta\n")
    tokens_env.write_text("env-token-123 gamma\n")
    text = GOOD.replace('secret = "from-the-file"', f'secret_file = "{in_file}"').replace(
        "[api.tokens]", f'tokens_file = "{tokens_file}"\n[api.tokens]'
    )
    monkeypatch.setenv("CALLBACKD_AMI__SECRET_FILE", str(in_env))
    monkeypatch.setenv("CALLBACKD_API__TOKENS_FILE", str(tokens_env))

    settings = load_settings(_write(tmp_path, text))

    assert settings.ami.secret.get_secret_value() == "named-by-the-environment"
    assert "env-token-123" in settings.api.tokens
    assert "file-token-123" not in settings.api.tokens


@pytest.mark.parametrize("secret", ["Sekr3", "whsec_Sekr3", "whsec_"])
def test_a_webhook_secret_that_cannot_sign_stops_the_start_without_showing_it(
    tmp_path: Path, secret: str
) -> None:
    text = GOOD.replace('secret = ""', f'secret = "{secret}"')

    message = _error(_write(tmp_path, text))

    assert message.startswith("config error: webhooks.secret: is not a Standard Webhooks secret")
    assert "Sekr3" not in message


def test_a_signing_secret_in_its_whsec_form_is_taken(tmp_path: Path) -> None:
    text = GOOD.replace('secret = ""', 'secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5"')

    settings = load_settings(_write(tmp_path, text))

    assert settings.webhooks.secret.get_secret_value() == "whsec_c2VjcmV0LXNpZ25pbmcta2V5"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CALLBACKD_WEBHOOKS__DENY_NETWORKS", "10.0.0.0/8"),
        ("CALLBACKD_WEBHOOKS__DENY_NETWORKS", '["10.0.0.0/8"'),
        ("CALLBACKD_API__TOKENS", "token-123=acme"),
    ],
)
def test_a_list_or_table_from_the_environment_that_is_not_json_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    message = _error(_write(tmp_path, GOOD))

    assert message.startswith(f"config error: {variable}: ")
    assert "\n" not in message


CLI = "from callbackd.cli import main; main()"


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CALLBACKD_")}
    return subprocess.run(
        [sys.executable, "-c", CLI, "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_check_config_exits_0_for_a_good_file(tmp_path: Path) -> None:
    result = _check_config(_write(tmp_path, GOOD))

    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("a_ring_timeout = 30", "a_ring_timeout = -1"), "calls.a_ring_timeout"),
        (GOOD + "[bogus]\n", "bogus: unknown key"),
        ("[api\n", "not valid TOML"),
        (None, "cannot read"),
    ],
)
def test_check_config_fails_with_one_line_and_no_traceback(
    tmp_path: Path, text: str | None, expected: str
) -> None:
    path = tmp_path / "absent.toml" if text is None else _write(tmp_path, text)

    result = _check_config(path)

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
