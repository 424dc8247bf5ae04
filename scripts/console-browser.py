#!/usr/bin/env python3
"""Drives the operator console in Debian's chromium (headless, through Debian's chromedriver)
the way an operator would: sign in, watch the flow numbers change, filter the dead letters,
open one, dry-run a replay, confirm it with the count, and wait until every replayed command
has its terminal outcome. The Swift test ConsoleBrowserTests starts the cluster, the sandbox,
a worker and the console, then runs this; it checks what the script reports (one JSON line on
standard output) against Kafka.

usage: console-browser.py CONSOLE_URL SCREENSHOT_DIR
environment: CONSOLE_TOKEN (the password; never printed), CONSOLE_OPERATOR (the basic-auth user),
             EXPECT_DEAD_LETTERS (how many the DLQ holds), EXPECT_REPLAY (how many the replay
             selection holds: provider fastpod, class retries_exhausted).
Every wait has a deadline; the whole run is bounded by an alarm, and the browser is closed on
every path (SIGTERM included).
"""
import json
import os
import signal
import sys
import time
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

TOTAL_SECONDS = 240


class Stop(Exception):
    pass


def stop(signum, frame):
    raise Stop(f"stopped by signal {signum}")


def step(message):
    print(f"step: {message}", file=sys.stderr, flush=True)


def main():
    base, screenshots = sys.argv[1].rstrip("/"), sys.argv[2]
    token = os.environ["CONSOLE_TOKEN"]
    operator = os.environ.get("CONSOLE_OPERATOR", "operator")
    expect_dead_letters = int(os.environ["EXPECT_DEAD_LETTERS"])
    expect_replay = int(os.environ["EXPECT_REPLAY"])
    parts = urllib.parse.urlsplit(base)
    signed_in = f"{parts.scheme}://{urllib.parse.quote(operator)}:{urllib.parse.quote(token)}@{parts.netloc}"

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1100,860", "--hide-scrollbars", "--no-first-run",
                     "--disable-extensions", "--disable-background-networking"]:
        options.add_argument(argument)
    # The driver Debian installed; selenium's manager must not fetch one.
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    report = {}
    try:
        wait = WebDriverWait(driver, 60, poll_frequency=0.25, ignored_exceptions=[StaleElementReferenceException])

        def text(css):
            # The flow page replaces its numbers as it refreshes itself: an element found just
            # before a refresh is stale by the time its text is read. Find it again.
            for _ in range(20):
                try:
                    return driver.find_element(By.CSS_SELECTOR, css).text.strip()
                except StaleElementReferenceException:
                    time.sleep(0.05)
            return driver.find_element(By.CSS_SELECTOR, css).text.strip()

        def shot(name):
            path = os.path.join(screenshots, name)
            driver.save_screenshot(path)
            report.setdefault("screenshots", []).append(path)

        step("sign in (basic auth: operator name and the console token)")
        driver.get(f"{signed_in}/flow")
        wait.until(lambda d: d.find_elements(By.ID, "operator"))
        # From now on the browser answers the challenge itself, as after a password prompt.
        driver.get(f"{base}/flow")
        wait.until(lambda d: d.find_elements(By.ID, "operator"))
        report["operator"] = text("#operator")

        step("the flow numbers change while commands flow (the page refreshes itself)")
        wait.until(lambda d: d.find_elements(By.ID, "outcomes-total"))
        first = int(text("#outcomes-total"))
        WebDriverWait(driver, 90, poll_frequency=0.5, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: d.find_elements(By.ID, "outcomes-total") and int(text("#outcomes-total")) > first)
        report["flow_before"], report["flow_after"] = first, int(text("#outcomes-total"))
        # Rates need two readings; the providers and lag tables fill once the workers answered.
        WebDriverWait(driver, 60, poll_frequency=0.5, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: text("#outcomes-rate") not in ("", "–") and d.find_elements(By.CSS_SELECTOR, "#lag tbody tr td + td"))
        report["lag_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "#lag tbody tr"))
        report["provider_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "#providers tbody tr"))
        shot("console-flow.png")

        step("dead letters: all of them, then filtered to one provider and class")
        driver.find_element(By.LINK_TEXT, "Dead letters").click()
        wait.until(lambda d: d.find_elements(By.ID, "dlq-total"))
        report["dead_letters"] = int(text("#dlq-total"))
        if report["dead_letters"] != expect_dead_letters:
            raise AssertionError(f"DLQ shows {report['dead_letters']}, expected {expect_dead_letters}")
        Select(driver.find_element(By.ID, "provider")).select_by_value("fastpod")
        Select(driver.find_element(By.ID, "class")).select_by_value("retries_exhausted")
        driver.find_element(By.ID, "apply").click()
        wait.until(lambda d: "provider=fastpod" in d.current_url and d.find_elements(By.ID, "dlq-total"))
        report["filtered"] = int(text("#dlq-total"))
        report["filtered_rows"] = len(driver.find_elements(By.CSS_SELECTOR, "#dead-letters tbody tr a"))
        shot("console-dead-letters.png")

        step("open one dead letter: its headers and its payload")
        driver.find_element(By.CSS_SELECTOR, "#dead-letters tbody tr a").click()
        wait.until(lambda d: d.find_elements(By.ID, "payload"))
        headers = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "#headers tbody tr")]
        report["record_class"] = text("#error-class")
        report["record_has_key_header"] = any(row.startswith("cw.idempotency-key") for row in headers)
        report["record_payload_is_command"] = '"idempotency_key"' in text("#payload")
        shot("console-dead-letter.png")

        step("the undecodable record's payload is shown as text, not run")
        driver.get(f"{base}/dead-letters?class=invalid_command")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#dead-letters tbody tr a"))
        driver.find_element(By.CSS_SELECTOR, "#dead-letters tbody tr a").click()
        wait.until(lambda d: d.find_elements(By.ID, "payload"))
        report["poison_payload"] = text("#payload")
        report["scripts_in_main"] = len(driver.find_elements(By.CSS_SELECTOR, "main script"))
        report["alerts"] = driver.execute_script("return typeof window.__pwned === 'undefined' ? 0 : 1")

        step("replay: the filtered selection, dry run first")
        driver.get(f"{base}/dead-letters?provider=fastpod&class=retries_exhausted")
        wait.until(lambda d: d.find_elements(By.ID, "replay-these"))
        driver.find_element(By.ID, "replay-these").click()
        wait.until(lambda d: d.find_elements(By.ID, "dry-run"))
        driver.find_element(By.ID, "dry-run").click()
        WebDriverWait(driver, 150, poll_frequency=0.5).until(
            lambda d: d.find_elements(By.ID, "would-replay") or d.find_elements(By.ID, "nothing")
            or d.find_elements(By.CSS_SELECTOR, ".problem"))
        if driver.find_elements(By.CSS_SELECTOR, ".problem"):
            raise AssertionError("dry run failed: " + text(".problem"))
        report["would_replay"] = int(text("#would-replay"))
        report["preview_summary"] = text("#summary")
        report["preview_rows"] = [
            [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in driver.find_elements(By.CSS_SELECTOR, "#decisions tbody tr")]
        if report["would_replay"] != expect_replay:
            raise AssertionError(f"dry run would replay {report['would_replay']}, expected {expect_replay}")
        shot("console-replay-preview.png")

        step("confirm with the count shown")
        driver.find_element(By.ID, "count").send_keys(str(report["would_replay"]))
        driver.find_element(By.ID, "confirm-replay").click()
        wait.until(lambda d: d.find_elements(By.ID, "replay-id"))
        report["replay_id"] = text("#replay-id")

        step("progress, the result, and every replayed command's terminal outcome")
        WebDriverWait(driver, 150, poll_frequency=0.5).until(
            lambda d: d.find_elements(By.ID, "progress-note")
            and "Every replayed command has its terminal outcome" in text("#progress-note"))
        report["outcomes"] = {
            row.find_elements(By.TAG_NAME, "td")[3].text: row.find_elements(By.TAG_NAME, "td")[4].text
            for row in driver.find_elements(By.CSS_SELECTOR, "#replayed tbody tr")}
        report["result_summary"] = text("#summary")
        shot("console-replay-result.png")
        report["ok"] = True
    finally:
        driver.quit()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(TOTAL_SECONDS)
    try:
        main()
    except Exception as error:  # reported to the test, which fails with it
        print(f"console-browser: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
