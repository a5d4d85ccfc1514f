"""The chat page of `ember serve` in a real headless browser (Debian's chromium driven by
Playwright): it loads offline, streams a reply into the page, shows markup typed by the user as
text, and its Stop button cancels the generation on the server, leaving nothing running.
Run by crates/cli/tests/serve_load.rs: python3 chat_page.py BASE_URL END_IDS [SCREENSHOT.png]
(END_IDS: the comma-separated ids that end a reply, banned for the reply that is stopped so it
cannot end on its own before Stop reaches the server)."""
import json
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright

base = sys.argv[1]
end_ids = [i for i in sys.argv[2].split(",") if i]
shot = sys.argv[3] if len(sys.argv) > 3 else None


def metric(name):
    with urllib.request.urlopen(base + "/metrics") as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise SystemExit(f"no {name} in /metrics")


def wait_for(what, cond, timeout=30.0):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path="/usr/bin/chromium",
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    page = browser.new_page()
    outside = []
    # Everything the page loads must come from the server itself (no CDN: it works offline).
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) else None)
    page.goto(base + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('context')")

    # A streamed reply: the assistant line fills in, then the usage line with tokens/s.
    page.fill("#max", "10")  # the test model's context is 64 tokens
    page.fill("#msg", "Hello! <b>Who</b> are you?")
    page.click("#send")
    page.wait_for_selector(".meta:has-text('tokens')", timeout=60000)
    user = page.inner_text(".user")
    assert "<b>Who</b>" in user, user  # shown as typed, not rendered
    assert page.locator("#log b").count() == 0, "user text was parsed as HTML"
    reply = page.inner_text(".assistant")
    meta = page.inner_text("#log .meta")
    assert "context" in meta, meta
    if shot:
        page.screenshot(path=shot, full_page=True)

    # Stop: a long reply is cancelled on the server and nothing is left decoding.
    cancelled = metric("ember_cancelled_total")
    page.click("#reset")  # a fresh conversation: the test model's context is short
    page.fill("#max", "30")

    # The test model can end such a reply on its own before Stop reaches the server: the
    # request goes out with those ids banned (logit_bias), so only Stop can end it early.
    def ban_end(route):
        body = json.loads(route.request.post_data)
        body["logit_bias"] = {i: -100 for i in end_ids}
        route.continue_(post_data=json.dumps(body))

    page.route("**/v1/chat/completions", ban_end)
    page.fill("#msg", "Tell me a long story.")
    page.click("#send")
    # Decoding on the server (the reply may not have shown visible text yet).
    wait_for("the request to decode", lambda: metric("ember_decoding") >= 1)
    assert page.is_enabled("#stop") and not page.is_enabled("#send"), page.inner_text("#log")
    page.click("#stop")
    page.wait_for_selector(".assistant:has-text('[stopped]')")
    wait_for("the server to cancel", lambda: metric("ember_cancelled_total") > cancelled)
    wait_for("no request left running", lambda: metric("ember_decoding") == 0)
    generated = metric("ember_generated_tokens_total")
    assert page.is_enabled("#send") and not page.is_enabled("#stop")
    browser.close()

assert not outside, f"the page fetched from elsewhere: {outside}"
print(json.dumps({"reply": reply, "usage_line": meta, "generated_tokens": generated}))
print("chat page: ok")
