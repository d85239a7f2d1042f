"""How fast the review pages answer, as a browser waits for them.

    uv run python bench/review_bench.py WAREHOUSE [--rounds 20] [--screenshots DIR]
    uv run python bench/review_bench.py --synthetic 100000

With --synthetic N it first builds a warehouse of N labeled commits the way
bench/export_bench.py does (one file each, 500 repositories for 100,000) and times that.

Starts `racemine review` on a copy of the warehouse (its own process, as a user starts it)
and times, over HTTP, the list's first page, a page deep in the list sorted by confidence,
and the fix pages of the first fixes of the list, after a first request that copies the
list into memory (timed apart; it is made again whenever the warehouse has changed).
Prints medians and ranges. With --screenshots, headless Chromium (Debian's package, through
Selenium) saves the list and a fix page as PNG files.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _start(warehouse: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "flows", "review", "-w", str(warehouse),
                             "--port", str(port)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("racemine review did not start") from None
            time.sleep(0.1)


def _timed(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    answer = client.get(path)
    answer.raise_for_status()
    return time.perf_counter() - started


def _line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"  {name:<34} {statistics.median(ms):6.0f} ms   ({min(ms):.0f} to {max(ms):.0f}, "
            f"{len(ms)} requests)")


def _screenshots(base: str, fix: str, folder: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        driver.get(base + "/")
        driver.save_screenshot(str(folder / "review-list.png"))
        driver.get(base + fix)
        driver.save_screenshot(str(folder / "review-fix.png"))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("warehouse", type=Path, nargs="?")
    parser.add_argument("--synthetic", type=int, help="build a warehouse of N commits")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--screenshots", type=Path)
    parser.add_argument("--fix", help="the fix page to screenshot (a path such as "
                                      "/fix/SHA?repo=...); default: the first of the list")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "w.duckdb"
        if args.synthetic:
            sys.path.insert(0, str(Path(__file__).parent))
            from export_bench import build

            build(copy, args.synthetic)
            args.warehouse = copy
        else:
            shutil.copy(args.warehouse, copy)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = _start(copy, port)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                started = time.perf_counter()
                first = client.get("/").text  # copies the list into memory
                cold = time.perf_counter() - started
                fixes = [m.replace("&amp;", "&") for m in re.findall(r'href="(/fix/[^"]+)"',
                                                                      first)]
                _timed(client, fixes[0])  # warm
                times = {
                    "list, first page": [_timed(client, "/") for _ in range(args.rounds)],
                    "list, page 10 by confidence": [
                        _timed(client, "/?kind=all&sort=confidence&dir=asc&page=10")
                        for _ in range(args.rounds)],
                    "fix page": [_timed(client, fixes[n % len(fixes)])
                                 for n in range(args.rounds)]}
            print(f"{args.warehouse} ({args.warehouse.stat().st_size / 1e6:.0f} MB):")
            print(f"  {'list, first request (snapshot)':<34} {cold * 1000:6.0f} ms")
            for name, values in times.items():
                print(_line(name, values))
            if args.screenshots:
                _screenshots(base, args.fix or fixes[0], args.screenshots)
        finally:
            proc.terminate()
            proc.wait(timeout=20)


if __name__ == "__main__":
    main()
