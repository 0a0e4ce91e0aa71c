"""Headless Chromium for the browser tests: Debian's chromium and chromium-driver, driven
by python3-selenium. One place for where they live, why a test must skip, and the flags
every test starts the browser with."""
import os

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:  # pragma: no cover
    webdriver = None

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"


def missing():
    """What is not installed, as words for a TAP skip, or None when the browser runs."""
    gone = [p for p in (CHROMIUM, DRIVER) if not os.path.exists(p)]
    if webdriver is None:
        gone.append("python3-selenium")
    return ", ".join(gone) + " not installed" if gone else None


def start(profile_dir, *args, script_timeout=20):
    """A headless browser with its profile in profile_dir (a fresh directory keeps runs
    apart) and extra command-line args; the caller quits it."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}", *args):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_script_timeout(script_timeout)
    return driver
