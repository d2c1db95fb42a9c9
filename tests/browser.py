"""The lesson page laid out by a real browser: headless Chromium (Debian's package; .ci/run installs
it where missing) opens a copy of the page with a script added that measures the laid-out page and
writes what it found into the DOM, which `--dump-dom` prints. One Chromium start per width."""

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    """Debian's chromium; else a Chromium or Chrome already on the PATH (GitHub's Ubuntu runners)."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


# Measured in the page, after layout. The colours of both palettes are measured in one start: the
# page's own prefers-color-scheme rules are overridden by :root.light / :root.dark (added by
# `measurable`), switched in turn; the page's background before any switch says which scheme the
# browser asked for.
MEASURE = r"""
<script>
(function () {
  const out = {}, de = document.documentElement;
  const visible = el => el.getClientRects().length > 0;
  out.scheme_bg = getComputedStyle(document.body).backgroundColor;
  out.viewport = de.clientWidth;
  out.doc_width = de.scrollWidth;
  out.too_wide = [...document.querySelectorAll("body *")]  // what sticks out, outside a box that scrolls
    .filter(e => e.getBoundingClientRect().right > de.clientWidth + 1
                 && !e.parentElement.closest(".scroll, .names-scroll, .notes li"))
    .slice(0, 5).map(e => e.tagName + "." + e.className + ": " + e.textContent.slice(0, 40));
  out.height = de.scrollHeight;
  // where a reader first meets code: the cheat-sheet's, or a topic's
  const firstCode = document.querySelector("table.cheat td code, table.code td.src");
  out.first_code_top = firstCode ? firstCode.getBoundingClientRect().top + window.scrollY : null;
  // code boxes wider than the screen lets them be: they scroll sideways, hiding the ends of lines
  out.scrolling = [...document.querySelectorAll(".scroll")].filter(e => visible(e) && e.scrollWidth > e.clientWidth + 1)
    .map(e => (e.querySelector("th, tr.head") || e).textContent.trim().slice(0, 60));
  const cells = [...document.querySelectorAll("table.code td.src")].filter(visible);
  const probe = document.createElement("span");
  probe.textContent = "0".repeat(100);
  cells[0].appendChild(probe);
  const ch = probe.getBoundingClientRect().width / 100;
  probe.remove();
  out.code_cells = cells.length;
  out.min_code_chars = Math.min(...cells.map(td => td.getBoundingClientRect().width)) / ch;
  out.both_sides = [...document.querySelectorAll(".piece.two")].map(
    p => ["l", "r"].filter(s => [...p.querySelectorAll("td.src." + s)].some(visible)).length);
  out.broken = []; out.marked_breaks = [];  // a token with no space in it laid out over two lines
  for (const span of document.querySelectorAll("table.code td.src span")) {
    const t = span.textContent;
    // over two lines: boxes at two heights (a span holding a <mark> has a box per part on one line)
    const tops = [...span.getClientRects()].map(r => r.top);
    if (/\s/.test(t) || !visible(span) || Math.max(...tops) - Math.min(...tops) <= 6) continue;
    // a long name may break at a soft hyphen, where the page draws its continuation mark; else broken
    (t.includes("\u00ad") ? out.marked_breaks : out.broken).push(t.replace(/\u00ad/g, ""));
  }
  out.badge_cells = 0; out.badges_apart = [];  // a badge and its line number on two rows
  for (const td of document.querySelectorAll("td.ln")) {
    if (!td.querySelector("a.badge") || !visible(td)) continue;
    out.badge_cells++;
    const range = document.createRange();
    range.selectNodeContents(td);
    const mids = [...range.getClientRects()].map(r => r.top + r.height / 2);
    if (Math.max(...mids) - Math.min(...mids) > 6) out.badges_apart.push(td.textContent);
  }
  const log = document.querySelector("pre.run");
  out.run_log_clipped = log ? log.scrollWidth > log.clientWidth + 1 : null;
  const svg = document.querySelector("figure.curves svg");
  out.plot_width = svg ? svg.getBoundingClientRect().width : null;
  out.plot_font_px = svg ? Math.min(...[...svg.querySelectorAll("text")].map(t => {
    const m = t.getScreenCTM();
    return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
  })) : null;
  // the learner's view (the default) and the proven one (#proven checked): what code the topics show,
  // the taps topic left out (it keeps its taps)
  const box = document.getElementById("proven");
  out.views = {};
  for (const proven of [false, true]) {
    if (box) box.checked = proven;
    const text = [...document.querySelectorAll("section:not(#topic-taps) table.code td.src")].filter(visible)
      .map(td => td.innerText).join("\n");
    out.views[proven ? "proven" : "learner"] = {
      docstrings: (text.match(/"{3}/g) || []).length, taps: (text.match(/\btap\(/g) || []).length,
      idioms: [...document.querySelectorAll("table.code .idiom")].filter(visible).length,
      rows: [...document.querySelectorAll("table.code tr")].filter(visible).length};
  }
  if (box) box.checked = false;
  const rgb = s => s.match(/[\d.]+/g).map(Number);
  const lum = c => c.slice(0, 3).map(v => (v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
                    .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  function contrast() {  // every piece of text shown, against the background it sits on
    const seen = {}, low = [];
    let min = 99, texts = 0;
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
      const el = n.parentElement;
      if (!n.textContent.trim() || el.closest("svg, script, pre#measured") || !visible(el)) continue;
      const style = getComputedStyle(el);
      if (parseFloat(style.fontSize) === 0) continue;
      const fg = lum(rgb(style.color)), bg = lum(background(el));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      texts++;
      min = Math.min(min, ratio);
      const key = el.className + " on " + background(el).join(",");
      if (ratio < 4.5 && !seen[key]) {
        seen[key] = 1;
        low.push([el.tagName.toLowerCase() + "." + el.className, n.textContent.trim().slice(0, 30), ratio.toFixed(2)]);
      }
    }
    return {texts, min, low};
  }
  for (const scheme of ["light", "dark"]) {
    de.className = scheme;
    out[scheme] = contrast();
  }
  de.className = "";
  // every link of a note to a line lands on that line shown, on whichever side it is; the page's
  // switch shows the side it names (a narrow screen shows one side at a time)
  const sidesShown = () => [...document.querySelectorAll(".piece.two")].map(
    p => ["l", "r"].filter(s => [...p.querySelectorAll("td.src." + s)].some(visible)).join(""));
  out.note_links = 0; out.links_hidden = [];
  for (const a of document.querySelectorAll(".notes a[href^='#'], #cheatsheet a[href^='#']")) {
    const target = document.getElementById(a.getAttribute("href").slice(1));
    if (!target || !target.closest("table.code")) continue;
    out.note_links++;
    location.hash = a.getAttribute("href");
    const r = target.getBoundingClientRect();
    if (!visible(target) || r.top < -2 || r.bottom > innerHeight + 2) out.links_hidden.push(a.getAttribute("href"));
  }
  // a long name broken at a soft hyphen shows the continuation mark; copied, the soft hyphens go
  const soft = [...document.querySelectorAll("table.code td.src")].find(
    td => visible(td) && td.textContent.includes("\u00ad"));
  out.continuation = soft ? getComputedStyle(soft).hyphenateCharacter : null;
  if (soft) {
    getSelection().selectAllChildren(soft);
    const copy = new ClipboardEvent("copy", {clipboardData: new DataTransfer(), bubbles: true, cancelable: true});
    soft.dispatchEvent(copy);
    out.copied = copy.clipboardData.getData("text/plain");
    getSelection().removeAllRanges();
  }
  out.switched = {};
  for (const side of ["side-r", "side-l"]) {
    location.hash = "#" + side;
    out.switched[side] = [...new Set(sidesShown())];
  }
  location.hash = "";
  parent.postMessage(JSON.stringify(out), "*");
})();
</script>
"""


def measurable(page_html: str, light: dict, dark: dict, extra_css: str = "") -> str:
    """A copy of the page that measures itself when loaded."""
    schemes = "".join(f":root.{name} {{ {''.join(f'--{k}: {v}; ' for k, v in colours.items())}}}\n"
                      for name, colours in (("light", light), ("dark", dark)))
    return page_html.replace("</body>", f"<style>{schemes}{extra_css}</style>{MEASURE}</body>")


# Headless Chromium's window is never narrower than 500 px, so the page is laid out in a frame of the
# width asked for (its own viewport, as a phone's screen is); the frame's script posts what it
# measured to this one, which writes it into the DOM that --dump-dom prints.
FRAME = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:900px;border:0"></iframe>
<script>addEventListener("message", e => {{
  const pre = document.createElement("pre"); pre.id = "measured"; pre.textContent = e.data;
  document.body.appendChild(pre); }});</script></body></html>"""


def lay_out(page: Path, width: int, dark: bool = False) -> dict:
    """The measurements of `page` laid out in a viewport `width` px wide (a dark scheme if `dark`)."""
    with tempfile.TemporaryDirectory() as tmp:
        frame = Path(tmp) / "frame.html"
        frame.write_text(FRAME.format(src=page.as_uri(), width=width))
        command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", "--window-size=1600,1000",
                   "--hide-scrollbars", "--virtual-time-budget=30000", *(["--force-dark-mode"] if dark else []),
                   "--dump-dom", frame.as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no measurements from chromium (exit {done.returncode}): {done.stderr[-500:]}"
    return json.loads(html.unescape(found.group(1)))
