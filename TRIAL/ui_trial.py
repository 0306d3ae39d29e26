import os

from playwright.sync_api import sync_playwright

U = os.environ["LOGLAKE_URL"]
K = os.environ["LOGLAKE_API_KEY"]
errors = []
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = b.new_page()
    page.on("console", lambda m: errors.append((m.type, m.text)) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(("pageerror", str(e))))
    page.goto(U + "/ui/")
    print("url", page.url)
    page.fill("input[name=key]", K)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/**", timeout=10000)
    page.wait_for_timeout(2500)
    print("title", page.title(), page.url)
    page.screenshot(path="explore.png", full_page=False)
    page.fill("input[type=search], input[name=q], #q", "loki")
    page.keyboard.press("Enter")
    page.wait_for_timeout(2000)
    page.screenshot(path="search.png")
    for path in ["/ui/sql", "/ui/alerts", "/ui/rules", "/ui/status", "/ui/ask"]:
        page.goto(U + path)
        page.wait_for_timeout(1500)
        page.screenshot(path=path.strip("/").replace("/", "_") + ".png")
    b.close()
print(errors)
