"""`make run`: the daemon on 127.0.0.1:8080 with embedded SQLite, against the local test
PBX unless the config names another one.

The first run writes var/callbackd.toml (with a fresh API token, printed) and starts the
test PBX (tools/testpbx). A config that does not carry the marker below is taken as an
operator's own: used as it is, and no test PBX is started.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = "# written by make run: the local test PBX"
TEST_PBX_SECRET = "callbackd-test"  # the local test PBX's own secret

TEMPLATE = """{marker}
[api]
listen = "127.0.0.1:8080"

[api.tokens]
"{token}" = "demo"

[store]
path = "{store}"

[ami]
host = "127.0.0.1"
port = {ami_port}
username = "callbackd"
secret = "{secret}"

[calls]
# The test PBX's simulated phones (docs/call-flow.md): 1NTT answers after N s and
# talks TT s, 2xxx busy, 3xxx never answers, 4xxx congestion, 5xxx/6xxx invalid.
a_channel = "Local/{{number}}@phones"
b_channel = "Local/{{number}}@phones"
a_ring_timeout = 15
b_ring_timeout = 15

[webhooks]
# Local receivers are fine in development.
deny_networks = ["169.254.0.0/16"]
"""


def write_config(path: Path) -> str:
    token = secrets.token_urlsafe(18)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        TEMPLATE.format(
            marker=MARKER,
            token=token,
            store=(path.parent / "callbackd.db").resolve(),
            secret=TEST_PBX_SECRET,
            # The port tools/testpbx starts the PBX on, from the same environment.
            ami_port=int(os.environ.get("CALLBACKD_TESTPBX_AMI_PORT", "5038")),
        )
    )
    path.chmod(0o600)
    return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, default=REPO / "var" / "callbackd.toml")
    args = parser.parse_args()
    config: Path = args.config
    if not config.exists():
        write_config(config)
        print(f"wrote {config}")
    text = config.read_text()
    uses_test_pbx = text.startswith(MARKER)
    if uses_test_pbx and subprocess.run([str(REPO / "tools" / "testpbx"), "start"]).returncode:
        sys.exit(1)  # testpbx said why, in one line
    tokens = tomllib.loads(text).get("api", {}).get("tokens", {})
    listen = tomllib.loads(text).get("api", {}).get("listen", "127.0.0.1:8080")
    listen = os.environ.get("CALLBACKD_API__LISTEN", listen)  # the environment wins
    for token, client in tokens.items():
        print(f"API on http://{listen}  client {client!r}  token: {token}")
    print(
        f"try: curl -H 'Authorization: Bearer <token>' http://{listen}/client/@me/task_scheduler/"
    )
    callbackd = Path(sys.executable).with_name("callbackd")
    os.execv(callbackd, [str(callbackd), "run", "--config", str(config)])


if __name__ == "__main__":
    main()
