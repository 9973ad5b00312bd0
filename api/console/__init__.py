"""The operator console: a page served at /ui/ that signs in with an API token and
reads the same API (docs/console.md), plus the read-only endpoints it needs."""
