#!/usr/bin/env python3
"""The web console under N registrations, in real headless Chromium: see bench/console.sh.

Drives chromedriver over plain WebDriver JSON-over-HTTP (urllib only, no selenium) and prints
one line of key=value figures:

  console rows=1000 first_render_ms=... long_tasks=N max_long_task_ms=... worst_frame_gap_ms=...
          filter_ms=... heap_mb=... api_registrations_ms=... api_bytes=...

first_render_ms   navigation start -> N `tr[data-registration-id]` rows in the DOM and the frame
                  that shows them painted (first_rows_dom_ms: in the DOM, before that frame)
long_tasks        long tasks (> 50 ms, PerformanceObserver 'longtask') during WINDOW seconds of
                  the page left alone (it refreshes every 2 s and ticks countdowns every second);
                  max_long_task_ms the longest, long_task_total_ms their sum
worst_frame_gap_ms the longest time between two requestAnimationFrame callbacks in that window
                  (16.7 ms = no frame missed at 60 Hz); frames_over_50ms how many gaps exceeded 50
max_loaf_ms       the longest 'long-animation-frame' in the window (a frame held up by script,
                  style or layout), loaf_script the function it spent the most time in
filter_ms         the last keystroke of "19" in the filter box -> the visible row count changed
                  and the frame showing it painted; it includes the console's 120 ms debounce,
                  filter_work_ms is what remains without it; filter_shown the rows left visible
heap_mb           performance.memory.usedJSHeapSize after the window (--enable-precise-memory-info)
api_registrations_ms / api_bytes  median of 10 GET /api/registrations from Python, and its size

The exit status is 1 when the page never shows N rows (within --timeout seconds), 2 on a setup
error. chromedriver runs in its own process group; its pid goes to --pidfile so the wrapper's
trap can kill the group if this process dies first.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# Installed before any script of the page runs (CDP Page.addScriptToEvaluateOnNewDocument):
# long tasks and long animation frames from the very start, and the moment N rows exist.
INIT_SCRIPT = r"""
(() => {
  const N = __N__;
  const B = (window.__bench = { longtasks: [], loafs: [], rowsAt: null, paintedAt: null, errors: [] });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) B.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) { B.errors.push('longtask: ' + e); }
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        let top = null;
        for (const s of e.scripts || []) {
          if (!top || s.duration > top.duration) top = s;
        }
        B.loafs.push([e.startTime, e.duration, e.blockingDuration || 0,
          top ? `${top.invoker || ''} ${top.sourceFunctionName || ''}`.trim() : '',
          top ? top.duration : 0, e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0]);
      }
    }).observe({ type: 'long-animation-frame', buffered: true });
  } catch (e) { B.errors.push('long-animation-frame: ' + e); }
  // After the frame that follows `at`'s change: rAF runs before style/layout/paint, a message
  // posted from it is handled after that frame.
  B.afterPaint = (cb) => requestAnimationFrame(() => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => cb(performance.now());
    ch.port2.postMessage(0);
  });
  const mo = new MutationObserver((records) => {
    if (B.rowsAt !== null) return;
    if (!records.some((r) => r.target.id === 'reg-body')) return;
    const n = document.querySelectorAll('tr[data-registration-id]').length;
    if (n >= N) {
      B.rowsAt = performance.now();
      mo.disconnect();
      B.afterPaint((t) => { B.paintedAt = t; });
    }
  });
  mo.observe(document, { childList: true, subtree: true });
})();
"""

# Starts recording frame gaps for the quiet window.
WINDOW_START = r"""
const B = window.__bench;
const W = (B.win = { start: performance.now(), end: null, frames: 0, maxGap: 0, over50: 0, last: null });
const frame = (t) => {
  if (W.end !== null) return;
  if (W.last !== null) {
    const gap = t - W.last;
    if (gap > W.maxGap) W.maxGap = gap;
    if (gap > 50) W.over50 += 1;
  }
  W.last = t;
  W.frames += 1;
  requestAnimationFrame(frame);
};
requestAnimationFrame(frame);
return { start: W.start, visibility: document.visibilityState };
"""

WINDOW_END = r"""
const B = window.__bench;
const W = B.win;
W.end = performance.now();
const inWin = (s) => s >= W.start && s < W.end;
const lt = B.longtasks.filter(([s]) => inWin(s));
const loafs = B.loafs.filter(([s]) => inWin(s));
const regs = performance.getEntriesByType('resource')
  .filter((e) => e.name.endsWith('/api/registrations') && inWin(e.startTime));
const mem = performance.memory;
return {
  start: W.start, end: W.end, frames: W.frames, maxGap: W.maxGap, over50: W.over50,
  longtasks: lt, loafs: loafs,
  refreshes: regs.length,
  refreshFetchMs: regs.map((e) => e.responseEnd - e.startTime),
  refreshAt: regs.map((e) => e.responseEnd),
  heap: mem ? mem.usedJSHeapSize : null,
  rows: document.querySelectorAll('tr[data-registration-id]').length,
  countText: document.getElementById('reg-count').textContent,
};
"""

FILTER_ARM = r"""
const B = window.__bench;
const input = document.getElementById('reg-filter');
const count = document.getElementById('reg-count');
const visible = () => document.querySelectorAll('tr[data-registration-id]:not([hidden])').length;
const F = (B.filter = { inputs: [], before: visible(), appliedAt: null, paintedAt: null, shown: null, text: null });
input.addEventListener('input', () => F.inputs.push([performance.now(), input.value]), true);
const mo = new MutationObserver(() => {
  if (F.appliedAt !== null) return;
  const n = visible();
  if (n === F.before) return; // a refresh rewrote the same count
  F.appliedAt = performance.now();
  F.shown = n;
  F.text = count.textContent;
  mo.disconnect();
  B.afterPaint((t) => { F.paintedAt = t; });
});
mo.observe(count, { childList: true, characterData: true, subtree: true });
return F.before;
"""

FILTER_DEBOUNCE_MS = 120  # console.js: the filter applies 120 ms after the last keystroke


class WebDriver:
    def __init__(self, base):
        self.base = base
        self.session = None

    def call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                out = json.load(res)
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            raise RuntimeError(f"webdriver {method} {path}: HTTP {e.code}: {detail}") from None
        return out.get("value")

    def s(self, method, path, body=None, timeout=60):
        return self.call(method, f"/session/{self.session}{path}", body, timeout)

    def execute(self, script, args=None):
        return self.s("POST", "/execute/sync", {"script": script, "args": args or []})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as res:
        body = res.read()
    return (time.perf_counter() - t0) * 1000, body


def api_cost(base):
    """Median time and size of GET /api/registrations (after one warm-up request)."""
    _, body = http_get(base + "/api/registrations")
    rows = len(json.loads(body)["registrations"])
    times, sizes = [], []
    for _ in range(10):
        ms, body = http_get(base + "/api/registrations")
        times.append(ms)
        sizes.append(len(body))
    return rows, statistics.median(times), int(statistics.median(sizes))


def stop_driver(proc):
    if proc is None:
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    # chromium and its helpers share chromedriver's group; never signal group 0/1 (= everything).
    if pgid is not None and pgid > 1 and pgid != os.getpgid(0):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="the console, e.g. http://127.0.0.1:18080/")
    ap.add_argument("--rows", type=int, default=1000, help="registrations the page must show")
    ap.add_argument("--window", type=float, default=10.0, help="seconds of the page left alone")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the rows")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--pidfile", help="write chromedriver's pid (= its process group) here")
    ap.add_argument("--tmpdir", help="where Chromium's throw-away profile goes (default: $TMPDIR)")
    ap.add_argument("-v", "--verbose", action="store_true", help="details on stderr")
    a = ap.parse_args()
    base = a.url.rstrip("/")

    def log(*args):
        if a.verbose:
            print("#", *args, file=sys.stderr, flush=True)

    def log_loafs(loafs):
        for s, d, blocking, script, sd, layout in loafs:
            log(f"  long animation frame at {s:.0f} ms: {d:.0f} ms (blocking {blocking:.0f}); "
                f"script {script or '-'} {sd:.0f} ms; style+layout {layout:.0f} ms")

    # SIGTERM (the wrapper's trap) unwinds through the finally below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    profile = tempfile.mkdtemp(prefix="console-bench-chromium.", dir=a.tmpdir)
    port = free_port()
    driver = None
    wd = WebDriver(f"http://127.0.0.1:{port}")
    try:
        api_rows, api_ms, api_bytes = api_cost(base)
        log(f"GET /api/registrations: {api_rows} rows, {api_bytes} bytes, median {api_ms:.1f} ms")

        driver = subprocess.Popen([a.chromedriver, f"--port={port}", "--allowed-ips=127.0.0.1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        if a.pidfile:
            with open(a.pidfile, "w") as f:
                f.write(f"{driver.pid}\n")
        for _ in range(100):
            try:
                if wd.call("GET", "/status", timeout=2).get("ready"):
                    break
            except (OSError, RuntimeError):
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("chromedriver did not become ready")

        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                "--window-size=1400,1000", "--enable-precise-memory-info"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": a.chromium, "args": args},
        }}}
        wd.session = wd.call("POST", "/session", caps, timeout=60)["sessionId"]
        wd.s("POST", "/goog/cdp/execute", {
            "cmd": "Page.addScriptToEvaluateOnNewDocument",
            "params": {"source": INIT_SCRIPT.replace("__N__", str(a.rows))},
        })

        wd.s("POST", "/url", {"url": base + "/"})
        deadline = time.monotonic() + a.timeout
        b = None
        while time.monotonic() < deadline:
            b = wd.execute("const B = window.__bench; return B && {rowsAt: B.rowsAt, paintedAt: B.paintedAt,"
                           " errors: B.errors, rows: document.querySelectorAll('tr[data-registration-id]').length};")
            if b and b["paintedAt"] is not None:
                break
            time.sleep(0.1)
        if not b or b["paintedAt"] is None:
            rows = b["rows"] if b else 0
            print(f"console rows={rows} FAILED: the page did not show {a.rows} registrations "
                  f"within {a.timeout:g} s", flush=True)
            return 1
        if b["errors"]:
            log("observer errors:", b["errors"])
        first_dom, first_paint = b["rowsAt"], b["paintedAt"]
        load_lt = wd.execute("return window.__bench.longtasks.filter(([s]) => s <= arguments[0]);",
                             [first_paint])
        log(f"first render: rows in DOM at {first_dom:.0f} ms, painted at {first_paint:.0f} ms; "
            f"long tasks until then: {[round(d) for _, d in load_lt]}")
        load_loafs = wd.execute("return window.__bench.loafs.filter(([s]) => s <= arguments[0]);",
                                [first_paint])
        log_loafs(load_loafs)

        started = wd.execute(WINDOW_START)
        log(f"window of {a.window:g} s starts ({started['visibility']})")
        time.sleep(a.window)
        w = wd.execute(WINDOW_END)
        lts = [d for _, d in w["longtasks"]]
        worst_loaf = max(w["loafs"], key=lambda l: l[1], default=None)
        log(f"window: {w['frames']} frames in {(w['end'] - w['start']) / 1000:.1f} s, "
            f"{w['refreshes']} refreshes (fetch ms {[round(x) for x in w['refreshFetchMs']]}), "
            f"long tasks ms {[round(d) for d in lts]}")
        log(f"  refresh responses at ms {[round(x) for x in w['refreshAt']]}; "
            f"long tasks [start, ms] {[[round(s), round(d)] for s, d in w['longtasks']]}")
        log_loafs(w["loafs"])

        before = wd.execute(FILTER_ARM)
        box = wd.s("POST", "/element", {"using": "css selector", "value": "#reg-filter"})
        box_id = next(iter(box.values()))
        wd.s("POST", f"/element/{box_id}/value", {"text": "19"})
        f = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            f = wd.execute("return window.__bench.filter;")
            if f["paintedAt"] is not None:
                break
            time.sleep(0.05)
        filter_ms = filter_work = None
        if f and f["paintedAt"] is not None and f["inputs"]:
            last_key = f["inputs"][-1][0]
            filter_ms = f["paintedAt"] - last_key
            filter_work = filter_ms - FILTER_DEBOUNCE_MS
            log(f"filter '19': {before} -> {f['shown']} visible ('{f['text']}'); applied "
                f"{f['appliedAt'] - last_key:.0f} ms and painted {filter_ms:.0f} ms after the last key")
        else:
            log("filter: the visible row count did not change within 10 s", f)

        fmt = lambda v: "na" if v is None else f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"
        out = {
            "rows": w["rows"],
            "first_render_ms": fmt(first_paint),
            "first_rows_dom_ms": fmt(first_dom),
            "load_max_long_task_ms": fmt(max((d for _, d in load_lt), default=0)),
            "window_s": f"{a.window:g}",
            "refreshes": w["refreshes"],
            "long_tasks": len(lts),
            "max_long_task_ms": fmt(max(lts, default=0)),
            "long_task_total_ms": fmt(sum(lts)),
            "worst_frame_gap_ms": fmt(w["maxGap"]),
            "frames_over_50ms": w["over50"],
            "max_loaf_ms": fmt(worst_loaf[1] if worst_loaf else 0),
            "loaf_script": (worst_loaf[3].replace(" ", "/") or "-") if worst_loaf else "-",
            "filter_ms": fmt(filter_ms),
            "filter_work_ms": fmt(filter_work),
            "filter_shown": f["shown"] if f and f["shown"] is not None else "na",
            "heap_mb": "na" if w["heap"] is None else f"{w['heap'] / 2**20:.1f}",
            "api_registrations_ms": f"{api_ms:.1f}",
            "api_bytes": api_bytes,
        }
        print("console " + " ".join(f"{k}={v}" for k, v in out.items()), flush=True)
        return 0 if w["rows"] >= a.rows else 1
    except (RuntimeError, OSError) as e:
        print(f"console_load: {e}", file=sys.stderr)
        return 2
    finally:
        if wd.session:
            try:
                wd.call("DELETE", f"/session/{wd.session}", timeout=10)
            except (RuntimeError, OSError):
                pass
        stop_driver(driver)
        if a.pidfile:
            try:
                os.unlink(a.pidfile)
            except FileNotFoundError:
                pass
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
