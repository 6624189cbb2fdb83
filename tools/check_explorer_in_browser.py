#!/usr/bin/env python
"""Check notebook 04's explorer in a real browser: JupyterLab + headless Chromium, driven over DevTools.

    apt-get install -y chromium                                   # once (Debian's package; no download at run time)
    make browser-check                                            # smoke runs of its own -> runs/browser_check/
    make browser-check RUN_DIR=runs/cpu/02_training HOC_RUN_DIR=runs/cpu/03_hoc_one_shot   # the runs you care about

Why not nbconvert's HTML with embedded widget state: the embed manager's JS comes from unpkg.com (offline
here), and an embedded widget has no kernel, so moving the threshold could not re-threshold anything.

What it does: copies the notebook into a temp folder (the committed one is never touched; `../.cache` links
to the repo's), points its parameters at --run-dir / --hoc-run-dir when given (else the notebook trains
seconds-long smoke runs of its own), starts JupyterLab (INDPRIOR_HEADLESS unset, so widgets are shown) and
Chromium, runs all cells, then works each control on its own as a user would: the GT, prediction and
difference toggles (each must change the shown image), the image dropdown (the best image), the threshold
slider (four ArrowRight presses: the title must say 0.70), and the HOC instance picker. Every step must come
back from the kernel (browser -> kernel -> browser). Writes a screenshot per step, states.json (what each step
showed) and the lab / chromium logs; exits non-zero on a timeout.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tornado.websocket import websocket_connect  # a jupyter_server dependency: nothing extra to install

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "explorer-check"
PANEL = "[...jupyterapp.shell.widgets('main')].find(w => w.sessionContext)"
KERNEL = f"{PANEL}.sessionContext.session.kernel"
EXPLORERS = "[...document.querySelectorAll('.jp-OutputArea-output .widget-vbox')].filter(e => e.querySelector('img'))"
TITLE = f"({EXPLORERS})[0].querySelector('.widget-html-content').innerText"
IMAGE = f"({EXPLORERS})[0].querySelector('img').src"


def checkbox(name: str) -> str:
    """JS: the input of explorer 0's checkbox labelled `name`."""
    return (f"[...({EXPLORERS})[0].querySelectorAll('.widget-checkbox')].find(e => e.innerText.includes('{name}'))"
            ".querySelector('input')")


def select_last(which: int, index: str) -> str:
    """JS: choose option `index` of explorer `which`'s dropdown and fire 'change' as a user's pick does."""
    return (f"(() => {{ const s = ({EXPLORERS})[{which}].querySelector('select'); s.selectedIndex = {index}; "
            "s.dispatchEvent(new Event('change', {bubbles: true})); })()")


class Page:
    """The few DevTools calls needed: evaluate JS, wait for a condition, key presses, screenshots."""

    def __init__(self, ws, out: Path):
        self.ws, self.out, self.n = ws, out, 0

    async def call(self, method: str, **params):
        self.n += 1
        await self.ws.write_message(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.read_message())
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def js(self, expr: str):
        r = await self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"].get("exception", {}).get("description", str(r["exceptionDetails"])))
        return r["result"].get("value")

    async def wait(self, expr: str, timeout: float, what: str) -> float:
        t0, err = time.time(), None
        while time.time() - t0 < timeout:
            try:
                if await self.js(expr):
                    return time.time() - t0
            except RuntimeError as e:
                err = e
            await asyncio.sleep(0.5)
        await self.shot("timeout.png")
        raise TimeoutError(f"waited {timeout:.0f} s for {what} (last JS error: {err}); see {self.out / 'timeout.png'}")

    async def shot(self, name: str, scroll_to: int | None = None) -> None:
        if scroll_to is not None:
            await self.js(f"({EXPLORERS})[{scroll_to}].scrollIntoView()")
            await asyncio.sleep(1)
        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        (self.out / name).write_bytes(base64.b64decode(data))
        print(f"wrote {self.out / name}", flush=True)


async def check(page: Page, notebook: str, port: int, timeout: float) -> dict[str, str]:
    await page.call("Page.navigate", url=f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={TOKEN}")
    await page.wait(f"window.jupyterapp && {KERNEL}.status === 'idle'", timeout, "JupyterLab with an idle kernel")
    await page.js(f"jupyterapp.shell.activateById({PANEL}.id)")
    await page.js("jupyterapp.commands.execute('notebook:run-all-cells')")  # resolves when every cell has run
    await page.wait(f"{EXPLORERS}.length >= 2 && {KERNEL}.status === 'idle'", timeout, "the task-1 and HOC explorers")
    await page.js("[...document.querySelectorAll('.jp-toast-button')].filter(b => b.innerText == 'No').forEach(b => b.click())")
    await page.shot("explorer_initial.png", scroll_to=0)
    states = {"initial": await page.js(TITLE)}
    for name in ("GT", "prediction", "difference"):  # each toggle on its own must change the picture
        before = await page.js(IMAGE)
        await page.js(f"{checkbox(name)}.click()")
        await page.wait(f"{IMAGE} !== {json.dumps(before)}", 60, f"the picture to change when '{name}' is toggled")
        states[f"toggled {name}"] = f"picture changed; checkbox now {await page.js(checkbox(name) + '.checked')}"
        await page.shot(f"explorer_toggle_{name}.png", scroll_to=0)
        if name != "difference":  # back to the default view
            before = await page.js(IMAGE)
            await page.js(f"{checkbox(name)}.click()")
            await page.wait(f"{IMAGE} !== {json.dumps(before)}", 60, f"the picture to change back ('{name}')")
    await page.js(select_last(0, "s.options.length - 1"))  # the dropdown is sorted worst first
    worst = states["initial"].split()[0]  # the image name: picking the best image must change it
    await page.wait(f"!{TITLE}.startsWith({json.dumps(worst)}) && {TITLE}.includes('FP')", 60, "the best image, difference on")
    states["best image, difference on"] = await page.js(TITLE)
    await page.js(f"({EXPLORERS})[0].querySelectorAll('.noUi-handle')[1].focus()")  # [0] is the worst->best slider
    for _ in range(4):
        for kind in ("keyDown", "keyUp"):
            await page.call("Input.dispatchKeyEvent", type=kind, key="ArrowRight", code="ArrowRight", windowsVirtualKeyCode=39)
    await page.wait(f"{TITLE}.includes('threshold 0.70')", 60, "threshold 0.70 after 4 x ArrowRight")
    states["threshold 0.70 (4 x ArrowRight)"] = await page.js(TITLE)
    await page.shot("explorer_after_interaction.png", scroll_to=0)
    await page.js(select_last(1, "1"))  # the largest instance
    await page.wait(f"({EXPLORERS})[1].querySelector('.widget-html-content').innerText.includes(' px')", 60, "a HOC instance")
    states["HOC instance picked"] = await page.js(f"({EXPLORERS})[1].querySelector('.widget-html-content').innerText")
    await page.shot("explorer_hoc.png", scroll_to=1)
    return states


def copy_notebook(src: Path, dst: Path, run_dir: Path | None, hoc_run_dir: Path | None) -> None:
    """The notebook with its parameters pointed at the given runs (absolute paths: lab runs it elsewhere)."""
    import nbformat
    nb = nbformat.read(src, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    for name, value in (("run_dir", run_dir), ("hoc_run_dir", hoc_run_dir)):
        if value is not None:
            if not value.is_dir():
                raise SystemExit(f"--{name.replace('_', '-')} {value}: no such run folder")
            cell.source += f"\n{name} = {str(value.resolve())!r}  # set by check_explorer_in_browser.py"
    nbformat.write(nb, dst)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notebook", type=Path, default=ROOT / "notebooks" / "04_mask_visualization.ipynb")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "browser_check")
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    ap.add_argument("--port", type=int, default=8899)
    ap.add_argument("--timeout", type=float, default=300, help="seconds for lab to start and for run-all")
    ap.add_argument("--run-dir", type=Path, default=None, help="a task-1 run folder (default: a smoke run of its own)")
    ap.add_argument("--hoc-run-dir", type=Path, default=None, help="a HOC run folder (default: a smoke run of its own)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="explorer_check."))
    (work / "notebooks").mkdir()
    copy_notebook(args.notebook, work / "notebooks" / args.notebook.name, args.run_dir, args.hoc_run_dir)
    (work / ".cache").symlink_to(ROOT / ".cache", target_is_directory=True)  # cwd notebooks/: ../.cache/data
    env = {k: v for k, v in os.environ.items() if k != "INDPRIOR_HEADLESS"}
    env.update(INDPRIOR_PROFILE="smoke", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cdp_port = args.port + 1
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={args.port}",
                            f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={work / 'notebooks'}",
                            "--allow-root", "--LabApp.expose_app_in_browser=True"],
                           env=env, stdout=open(args.out / "lab.log", "w"), stderr=subprocess.STDOUT)
    chrome = subprocess.Popen([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                               f"--remote-debugging-port={cdp_port}", "--window-size=1400,1600",
                               f"--user-data-dir={work / 'chromium'}", "about:blank"],
                              stdout=open(args.out / "chromium.log", "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(int(args.timeout * 2)):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{args.port}/api/status?token={TOKEN}", timeout=1)
                pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{cdp_port}/json", timeout=1))
                break
            except OSError:
                await asyncio.sleep(0.5)
        else:
            raise TimeoutError(f"JupyterLab or Chromium did not start; see {args.out}/lab.log and chromium.log")
        url = next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"]
        page = Page(await websocket_connect(url, max_message_size=1 << 28), args.out)
        states = await check(page, args.notebook.name, args.port, args.timeout)
        (args.out / "states.json").write_text(json.dumps(states, indent=1, ensure_ascii=False))
        print(json.dumps(states, indent=1, ensure_ascii=False))
        return 0
    except (TimeoutError, RuntimeError) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        chrome.terminate()
        lab.terminate()
        chrome.wait(10)
        lab.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
