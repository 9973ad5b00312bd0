"""What a config that loads may still get wrong: settings that are valid but leave the
daemon unable to do its job. `callbackd check-config` prints them and still exits 0
(the daemon would start); `callbackd run` logs them at start."""

from __future__ import annotations

from config.settings import Settings


def config_warnings(settings: Settings) -> list[str]:
    """One plain line per problem, naming the keys that fix it."""
    warnings = []
    if not settings.ami.secret.get_secret_value():
        warnings.append(
            "ami.secret is empty: callbackd cannot log in to AMI; set ami.secret_file, "
            "the ami_secret credential or ami.secret to the secret of the "
            f"[{settings.ami.username}] user in manager.conf"
        )
    if not settings.api.tokens:
        warnings.append(
            "no API tokens: every API request will be refused (401); add 'TOKEN CLIENT_ID' "
            "lines to api.tokens_file or the api_tokens credential, or [api.tokens]"
        )
    return warnings
