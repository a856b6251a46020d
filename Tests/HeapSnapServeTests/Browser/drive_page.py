#!/usr/bin/python3
"""Drives `heapsnap serve` in headless Chromium, the way a person would.

Chromium speaks the DevTools protocol over --remote-debugging-pipe: JSON
messages separated by NUL bytes on fds 3 (to Chromium) and 4 (from it), so
no WebSocket client, port or network is needed. Python's stdlib is enough.

Steps: start a preloaded program (idle) and the server; open the URL with
the token; press Start and see the state turn to sampling; press Snapshot
now twice and see both snapshots appear without a reload; open the newest
(top table + flamegraph, checked in the DOM and inside the SVG); diff the
two; open a snapshot from its timeline point; merge two processes of the
program; see a damaged file listed as one line; press Stop; download through
the page; ask for the leak suspects of the program's two processes.
With --screenshots DIR, PNGs of the page go there (the README's).

Exit status 0 when every check passed; each step prints one line.
"""
import argparse, base64, fcntl, json, os, re, shutil, signal, subprocess, sys, tempfile, time

START = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - START:5.1f}s] {message}", flush=True)


class Failure(Exception):
    pass


def resident(pid):
    """The resident bytes of process `pid`."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def grow(pid, amount, what, timeout=60):
    """Waits until process `pid` holds `amount` bytes more than now: demo-app's session cache leaks
    a few MB a second, so this is work done, however slowly the machine runs it."""
    start, deadline = resident(pid), time.monotonic() + timeout
    while resident(pid) - start < amount:
        if time.monotonic() > deadline:
            raise Failure(f"timed out after {timeout} s waiting for {what} ({resident(pid) - start} bytes)")
        time.sleep(0.05)


class Chromium:
    """One headless Chromium and a session attached to its page, over the DevTools pipe."""

    def __init__(self, profile_dir, width, height):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # Move the child's ends above 4 so the dup2s below cannot clobber one another.
        hi_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def wire():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        args = [shutil.which("chromium") or "/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-pipe", f"--user-data-dir={profile_dir}", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-default-apps", "--hide-scrollbars", "--mute-audio",
                f"--window-size={width},{height}", "about:blank"]
        self.process = subprocess.Popen(args, preexec_fn=wire, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(hi_r)
        os.close(hi_w)
        self.out = to_child_w
        self.inp = from_child_r
        self.buffer = b""
        self.next_id = 0
        self.session = None
        page = None
        for _ in range(100):
            page = next((t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"), None)
            if page:
                break
            time.sleep(0.1)
        if not page:
            raise Failure("chromium opened no page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            while b"\0" not in self.buffer:
                chunk = os.read(self.inp, 1 << 20)
                if not chunk:
                    raise Failure("chromium closed the DevTools pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise Failure(f"{method}: {answer['error']}")
                return answer.get("result", {})
        raise Failure(f"{method}: no answer in 30 s")

    def js(self, expression):
        """Evaluates `expression` in the page (promises awaited) and returns its value."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise Failure(f"page script failed: {details.get('exception', {}).get('description') or details.get('text')}\n  in: {expression}")
        return result["result"].get("value")

    def wait(self, expression, what, timeout=20):
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        status = self.js("(document.querySelector('#view-status')||{}).textContent + ' | ' + "
                         "(document.querySelector('#action-message')||{}).textContent")
        raise Failure(f"timed out after {timeout} s waiting for {what} (page says: {status})")

    def screenshot(self, path, selector=None, height=None):
        params = {"format": "png"}
        if selector:
            box = self.js(f"""(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();
                return {{x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}}; }})()""")
            box["x"] = max(0, box["x"] - 8)
            box["y"] = max(0, box["y"] - 8)
            box["width"] = min(box["width"] + 16, self.js("document.documentElement.scrollWidth") - box["x"])
            box["height"] = min(height or box["height"] + 16, box["height"] + 16)
            params["clip"] = dict(box, scale=1)
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        with open(path, "wb") as f:
            f.write(data)
        log(f"screenshot {path} ({len(data) // 1024} KiB)")

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--heapsnap", required=True)
    parser.add_argument("--lib", required=True)
    parser.add_argument("--program", required=True, help="C source of the program to profile")
    parser.add_argument("--screenshots")
    options = parser.parse_args()

    work = tempfile.mkdtemp(prefix="heapsnap-browser-")
    children = []
    browser = None
    try:
        program = os.path.join(work, "demo-app")
        subprocess.run(["cc", "-O1", "-g", "-o", program, options.program], check=True)
        snaps = os.path.join(work, "snaps")
        os.mkdir(snaps)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEAPSNAP_")}
        env.update(LD_PRELOAD=options.lib, HEAPSNAP_DIR=snaps, HEAPSNAP_RATE="65536")
        app = subprocess.Popen([program], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(app)
        pid = app.pid
        # A second process of the same program, to merge; and a damaged file.
        app2 = subprocess.Popen([program], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(app2)
        with open(os.path.join(snaps, "heapsnap.1.0.heapsnap"), "wb") as f:
            f.write(b"not a snapshot at all\n")
        server = subprocess.Popen([options.heapsnap, "serve", "--dir", snaps, "--port", "0"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children.append(server)
        line = server.stdout.readline().strip()
        match = re.fullmatch(r"heapsnap: serving (http://127\.0\.0\.1:\d+/\?token=[0-9a-f]{64})", line)
        if not match:
            raise Failure(f"serve printed {line!r}, stderr: {server.stderr.read() if server.poll() is not None else ''}")
        url = match.group(1)
        log(f"server up: {url.split('?')[0]}; program {pid} preloaded, idle")

        browser = Chromium(os.path.join(work, "profile"), 1280, 900)
        browser.call("Page.navigate", url=url)
        browser.wait("document.body && document.body.dataset.ready === '1' && location.search === ''",
                     "the page, with the token traded for a cookie")
        browser.js("window.__sameDocument = true")
        row = f"#processes tr[data-pid='{pid}']"
        browser.wait(f"document.querySelector(\"{row}\")?.dataset.state === 'idle'", "the program listed as idle")
        log("page loaded; the program is listed, idle")

        browser.js(f"document.querySelector(\"{row} button[data-action=start]\").click()")
        browser.wait(f"document.querySelector(\"{row}\")?.dataset.state === 'sampling'", "state sampling after Start")
        log("Start: state is sampling")

        grow(pid, 4 << 20, "the program to allocate while sampling")
        for n in (1, 2):
            browser.js(f"document.querySelector(\"{row} button[data-action=snapshot]\").click()")
            browser.wait(f"document.querySelectorAll(\"tr.snapshot[data-id^='0/heapsnap.{pid}.']\").length === {n}",
                         f"snapshot {n} listed")
            browser.wait(f"document.querySelector(\"{row}\")?.children[4].textContent === '{n}'", f"count {n}")
            if n == 1:
                grow(pid, 8 << 20, "the leak to grow between the snapshots")
        if not browser.js("window.__sameDocument === true"):
            raise Failure("the page reloaded")
        points = browser.js(f"document.querySelectorAll(\".group[data-pid='{pid}'] svg.timeline circle.point\").length")
        if points != 2:
            raise Failure(f"the timeline has {points} points, not 2")
        log("Snapshot now twice: both listed without a reload, two points on the timeline")
        if options.screenshots:
            browser.js("window.scrollTo(0, 0)")
            browser.screenshot(os.path.join(options.screenshots, "serve-processes.png"), "body", height=540)

        newest = f"tr.snapshot[data-id='0/heapsnap.{pid}.1.heapsnap']"
        browser.js(f"document.querySelector(\"{newest} button.open\").click()")
        browser.wait("document.querySelector('#view').dataset.state === 'ready'", "the snapshot view", timeout=60)
        browser.wait("document.querySelector('#flame').dataset.loaded === '1'", "the flamegraph")
        rows = browser.js("[...document.querySelectorAll('#view-table tbody tr')].map(r => r.textContent)")
        if not rows or not any("cache_remember" in r or "demo-app.c" in r for r in rows):
            raise Failure(f"the top table does not name the leak: {rows[:5]}")
        boxes = browser.js("""(() => { const d = document.querySelector('#flame').contentDocument;
            return [...d.querySelectorAll('g.f title')].map(t => t.textContent.split('\\n')[0]); })()""")
        if len(boxes) < 3 or not any("cache_remember" in b for b in boxes):
            raise Failure(f"the flamegraph does not show cache_remember: {boxes[:10]}")
        browser.js("""(() => { const d = document.querySelector('#flame').contentDocument;
            const g = [...d.querySelectorAll('g.f')].find(g => g.querySelector('title').textContent.startsWith('cache_remember'));
            g.dispatchEvent(new MouseEvent('click', {bubbles: true})); })()""")
        zoomed = browser.js("getComputedStyle(document.querySelector('#flame').contentDocument.getElementById('unzoom')).opacity")
        if zoomed != "1":
            raise Failure("clicking a flamegraph box did not zoom")
        log(f"opened the newest snapshot: {len(rows)} table rows, {len(boxes)} flamegraph boxes, click zooms")
        if options.screenshots:
            browser.js("document.querySelector('#flame').contentDocument.getElementById('unzoom').dispatchEvent(new MouseEvent('click', {bubbles: true}))")
            browser.screenshot(os.path.join(options.screenshots, "serve-snapshot.png"), "#view", height=900)

        browser.js(f"document.querySelectorAll(\"tr.snapshot[data-id^='0/heapsnap.{pid}.'] input.diff-pick\").forEach(b => b.click())")
        browser.wait("!document.querySelector('#diff-selected').disabled", "the diff button")
        browser.js("document.querySelector('#diff-selected').click()")
        browser.wait("document.querySelector('#view').dataset.state === 'ready' && "
                     "document.querySelector('#view-title').textContent.startsWith('Diff')", "the diff view", timeout=60)
        browser.wait("document.querySelector('#flame').dataset.loaded === '1'", "the diff flamegraph")
        header = browser.js("document.querySelector('#view-table thead').textContent")
        first = browser.js("document.querySelector('#view-table tbody tr')?.textContent || ''")
        title = browser.js("document.querySelector('#flame').contentDocument.getElementById('title').textContent")
        if "Change" not in header or not first.startswith("+") or "Memory growth" not in title:
            raise Failure(f"diff view: header {header!r}, first row {first!r}, flamegraph title {title!r}")
        if "cache_remember" not in first and "demo-app.c" not in first:
            raise Failure(f"the diff's first row is not the leak: {first!r}")
        log(f"diff of the two snapshots: first row {first[:60]!r}")
        if options.screenshots:
            browser.screenshot(os.path.join(options.screenshots, "serve-diff.png"), "#view", height=700)

        dot = f".group[data-pid='{pid}'] svg.timeline circle.point[data-id='0/heapsnap.{pid}.0.heapsnap']"
        browser.js(f"document.querySelector(\"{dot}\").dispatchEvent(new MouseEvent('click', {{bubbles: true}}))")
        browser.wait(f"document.querySelector('#view-title').textContent === 'Snapshot heapsnap.{pid}.0' && "
                     "document.querySelector('#view').dataset.state === 'ready'", "the snapshot opened from its timeline point")
        log("a timeline point opens its snapshot")

        row2 = f"#processes tr[data-pid='{app2.pid}']"
        browser.js(f"document.querySelector(\"{row2} button[data-action=start]\").click()")
        browser.wait(f"document.querySelector(\"{row2}\")?.dataset.state === 'sampling'", "the second process sampling")
        grow(app2.pid, 1 << 20, "the second process to allocate while sampling")
        browser.js(f"document.querySelector(\"{row2} button[data-action=snapshot]\").click()")
        browser.wait(f"document.querySelectorAll(\"tr.snapshot[data-id^='0/heapsnap.{app2.pid}.']\").length === 1", "its snapshot")
        for p in (pid, app2.pid):
            browser.js(f"document.querySelector(\".group[data-pid='{p}'] input.merge-pick\").click()")
        browser.wait("!document.querySelector('#merge-selected').disabled", "the merge button")
        browser.js("document.querySelector('#merge-selected').click()")
        browser.wait("document.querySelector('#view-title').textContent.startsWith('Merged: 2 processes') && "
                     "document.querySelector('#view').dataset.state === 'ready'", "the merged view", timeout=60)
        merged = browser.js("document.querySelector('#view-table tbody tr')?.textContent || ''")
        if "demo-app.c" not in merged:
            raise Failure(f"the merged table's first row: {merged!r}")
        log(f"merged two processes of demo-app: first row {merged[:50]!r}")

        damaged = browser.js("[...document.querySelectorAll(\".group[data-key='unreadable'] tr.snapshot\")].map(r => r.textContent)")
        if damaged != ["heapsnap.1.0.heapsnap — 0/heapsnap.1.0.heapsnap: not a heapsnap snapshot (wrong magic number)"]:
            raise Failure(f"the damaged file is listed as {damaged!r}")
        log("the damaged file is listed with its one-line error")

        pprof = browser.js("""(async () => { const r = await fetch(document.querySelector('#downloads a[data-format=svg]').href);
            const t = await r.text(); return r.status + ' ' + r.headers.get('content-disposition') + ' ' + t.length; })()""")
        if not pprof.startswith("200 attachment;"):
            raise Failure(f"download: {pprof}")
        log(f"download through the page: {pprof}")

        browser.js(f"document.querySelector(\"{row} button[data-action=stop]\").click()")
        browser.wait(f"document.querySelector(\"{row}\")?.dataset.state === 'idle'", "state idle after Stop")
        browser.wait(f"document.querySelectorAll(\"tr.snapshot[data-id^='0/heapsnap.{pid}.']\").length === 3", "the final snapshot listed")
        log("Stop: idle, final snapshot listed")

        browser.js(f"document.querySelector(\".group[data-pid='{pid}'] button.leaks-open\").click()")
        browser.wait("['ready', 'error'].includes(document.querySelector('#leaks').dataset.state)", "the leak suspects", timeout=60)
        leaks = browser.js("document.querySelector('#leaks').dataset.state + ' | ' + document.querySelector('#leaks-title').textContent + "
                           "' | ' + document.querySelector('#leaks-subtitle').textContent + ' | ' + "
                           "document.querySelector('#leaks-table tbody').textContent")
        if not leaks.startswith("ready | Leak suspects: demo-app, 2 processes | ") or "moments over" not in leaks:
            raise Failure(f"leak suspects of demo-app's two processes: {leaks!r}")
        log(f"leak suspects of both processes of demo-app: {leaks[:120]!r}")

        if app.poll() is not None or app2.poll() is not None:
            raise Failure(f"a program exited ({app.returncode}, {app2.returncode})")
        log("all checks passed")
        return 0
    except Failure as failure:
        log(f"FAILED: {failure}")
        return 1
    finally:
        if browser:
            browser.close()
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
