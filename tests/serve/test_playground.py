"""The playground at / driven in headless Chromium (Debian's `chromium`, through Playwright): stream a
completion, chat, generate an image grid. A screenshot is saved under the test's tmp dir."""

import shutil

import pytest

from .conftest import API_KEY


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "the playground test needs the system package 'chromium' (make test installs it: make system-deps)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_the_playground_streams_text_chats_and_shows_images(browser, live, client, tmp_path):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(live.url + "/")
    page.wait_for_selector("#status:has-text('API key')")  # the server wants a key: listing models failed
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Tab")  # committing the field reloads the models with the key
    page.wait_for_selector("#status:has-text('2 model(s) ready')")
    assert page.locator("#model option").all_inner_texts() == ["debug (text, gpt)", "digits-gan (image, gan)"]

    # complete: the text streams in, and is the server's text for the same settings
    page.fill("#prompt", "ROMEO:")
    page.fill("#max-tokens", "24")
    page.fill("#seed", "3")
    live.delay[0] = 0.04  # slow decoding so the page shows the text while it arrives
    try:
        page.click("#generate")
        page.wait_for_function("document.getElementById('output').textContent.length > 0")
        partial = page.inner_text("#output")
        page.wait_for_selector("#status:has-text('Done')")
    finally:
        live.delay[0] = 0.0
    final = page.locator("#output").text_content()
    expected = client.completions.create(
        model="debug", prompt="ROMEO:", max_tokens=24, seed=3, temperature=0.8, extra_body={"top_k": 40}
    )
    assert final == expected.choices[0].text
    assert 0 < len(partial) < len(final)  # seen while it was still streaming

    # chat tab, keyboard only: arrow to the tab, Ctrl+Enter sends
    page.focus("#tab-complete")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#tab-chat", "aria-selected") == "true" and page.is_visible("#chat-input")
    page.fill("#max-tokens", "8")
    page.fill("#chat-input", "Hi")
    page.press("#chat-input", "Control+Enter")
    page.wait_for_selector("#status:has-text('Done')")
    assert page.locator(".message.user").inner_text() == "user: Hi"
    assert len(page.locator(".message.assistant span").inner_text()) > 0

    # image tab: the model switches to the image run; the grid shows the images
    page.click("#tab-image")
    assert page.input_value("#model") == "digits-gan" and not page.is_visible("#settings")
    page.fill("#image-prompt", "7")
    page.fill("#image-n", "12")
    page.click("#make-images")
    page.wait_for_selector("#status:has-text('Done')")
    sizes = page.eval_on_selector_all("#image-grid img", "imgs => imgs.map(i => [i.naturalWidth, i.complete])")
    assert sizes == [[8, True]] * 12
    page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
    assert (tmp_path / "playground.png").stat().st_size > 10_000
    print(f"screenshot: {tmp_path / 'playground.png'}")

    # responsive: on a phone-sized screen nothing scrolls sideways
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(tmp_path / "playground-narrow.png"), full_page=True)
    page.set_viewport_size({"width": 1000, "height": 900})

    # more tokens than the context holds: the field knows the model's limit, and the server clamps
    page.click("#tab-complete")
    assert page.get_attribute("#max-tokens", "max") == "31"  # the debug run's context (32) less a prompt token
    page.fill("#max-tokens", "500")
    page.fill("#prompt", "ROMEO:")
    page.click("#generate")
    page.wait_for_selector("#status:has-text('Done')")

    # an error shows as a readable message, not a broken page
    page.fill("#prompt", "\u2603")  # a character the run's tokenizer does not have
    page.click("#generate")
    page.wait_for_selector("#status.error:has-text('prompt')")
    page.close()
