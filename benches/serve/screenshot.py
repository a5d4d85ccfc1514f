"""A screenshot of `ember serve`'s chat page after a short conversation, for the README.
Usage: python3 screenshot.py BASE_URL OUT.png  (Playwright from PyPI, Debian's /usr/bin/chromium)"""
import sys

from playwright.sync_api import sync_playwright

base, out = sys.argv[1], sys.argv[2]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
    page = browser.new_page(viewport={"width": 900, "height": 560})
    page.goto(base + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('context')")
    for n, msg in enumerate(["Hello, how are you?", "What is your favorite book?"], start=1):
        page.fill("#msg", msg)
        page.click("#send")
        page.wait_for_function(f"document.querySelectorAll('#log .meta').length >= {n}",
                               timeout=60000)
    page.screenshot(path=out)
    browser.close()
