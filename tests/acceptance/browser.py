"""A real headless browser for the console tests: Debian's chromium (installed by `make
chromium`) driven by Playwright, each browser with a fresh profile of its own.
Playwright's own browser download (`playwright install`) is never used."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import BrowserContext, ConsoleMessage, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
# Nothing of Chromium's own reaches the network: the console must need no other host.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Where `CALLBACKD_CONSOLE_SCREENSHOTS=docs/console pytest ...` writes the screenshots
# the README shows; without it they go to the test's tmp_path.
SCREENSHOTS_ENV = "CALLBACKD_CONSOLE_SCREENSHOTS"


@dataclass
class Tab:
    """One tab of the console and everything it logged as an error."""

    page: Page
    url: str
    errors: list[str] = field(default_factory=list)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    async def sign_in(self, token: str) -> None:
        """Sign in with the keyboard alone: the token field has the focus."""
        await self.page.goto(self.url + "/ui/")
        await self.page.wait_for_selector("#token:focus")
        await self.page.keyboard.type(token)
        await self.page.keyboard.press("Enter")
        await self.page.wait_for_selector("h1:text-is('Queues')")

    async def open(self, hash_path: str, ready: str) -> None:
        """Go to a view of the console and wait for `ready` (a selector) on it."""
        await self.page.evaluate("path => { location.hash = path; }", hash_path)
        await self.shown(hash_path, ready)

    async def shown(self, hash_path: str, ready: str) -> None:
        """Wait until the view of `hash_path` is shown, and `ready` on it. The old view
        stays until the new one is built, so a selector alone could match the old one."""
        await self.page.wait_for_function(
            "path => document.getElementById('main').dataset.route === path", arg=hash_path
        )
        await self.page.wait_for_selector(ready)

    async def fits_its_width(self) -> bool:
        """No sideways scrolling of the page as a whole (tables may scroll inside)."""
        return bool(
            await self.page.evaluate(
                "document.documentElement.scrollWidth <= window.innerWidth + 1"
            )
        )


@asynccontextmanager
async def console_tab(directory: Path, url: str) -> AsyncIterator[Tab]:
    """A fresh browser (its own user-data-dir under `directory`) with one tab."""
    async with async_playwright() as playwright:
        context: BrowserContext = await playwright.chromium.launch_persistent_context(
            str(directory),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport=DESKTOP,
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(15_000)
            tab = Tab(page, url)
            page.on("console", tab._on_console)
            page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
            yield tab
        finally:
            await context.close()


def screenshot_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get(SCREENSHOTS_ENV)
    directory = Path(chosen) if chosen else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory
