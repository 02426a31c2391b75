const COLOURS = { window: "#1f77b4", 1: "#8c2d04", 2: "#e6550d", 4: "#fdae6b" };
const colour = (part, factor) => part === "window" ? COLOURS.window : (COLOURS[factor] ?? "#fd8d3c");
const pct = (x) => `${(100 * x).toFixed(1)}%`;
const deg = (x) => (x === null ? "angle unknown" : `${x.toFixed(0)}\u00b0 away`);
const MS = 1000;

function make(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// a thumbnail with its caption lines, updated in place: no DOM churn, and an unchanged picture is not decoded again
function card(parent, cls) {
  const el = make("div", cls), img = make("img"), empty = make("div", "relickit-memory-nothumb");
  const caption = make("div", "relickit-memory-caption");
  el.append(img, empty, caption);
  parent.appendChild(el);
  return {
    show(src, lines, missing) {
      el.hidden = false;
      if (src && img.dataset.src !== src) { img.src = src; img.dataset.src = src; }
      img.hidden = !src;
      empty.hidden = !!src;
      empty.textContent = missing || "";
      caption.textContent = lines.join("\n");
    },
    hide() { el.hidden = true; },
  };
}

// the latent frame of the chunk on screen: the last row starting at or before video frame v
function rowAt(rows, v) {
  let i = 0;
  rows.forEach((r, j) => { if (r.video[0] <= v) i = j; });
  return i;
}

// the scale of a chunk's bars: the largest mass of any of its rows (or of the chunk), so bars compare across rows
function chunkMost(s) {
  return Math.max(...s.mass, ...s.rows.flatMap((r) => r.mass), 1e-9);
}

function drawTimeline(canvas, s, row, bookmark) {
  const W = canvas.width, H = canvas.height, L = 44, R = 8, T = 14, STRIP = 10, AXIS = 14;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, W, H);
  const n = s.frame.length, base = H - STRIP - AXIS - 4, plot = base - T;
  const col = (W - L - R) / Math.max(n, 1), bar = col >= 3 ? col - 1 : col;
  const most = chunkMost(s), tokens = Math.max(...s.tokens, 1);
  g.font = "10px sans-serif";
  g.fillStyle = "#555";
  g.fillText(pct(most), 2, T + 8);
  g.fillText("0", 2, base);
  for (let i = 0; i < n; i++) {
    const x = L + i * col, h = plot * row.mass[i] / most, t = STRIP * s.tokens[i] / tokens;
    g.fillStyle = colour(s.part[i], s.factor[i]);
    g.fillRect(x, base - h, bar, h);
    g.fillStyle = "#999";
    g.fillRect(x, base + 2 + STRIP - t, bar, t);
    if (s.rows.length > 1) {  // the chunk's mean over its latent frames: a tick per column
      g.fillStyle = "#000";
      g.fillRect(x, base - plot * s.mass[i] / most - 1, bar, 1);
    }
  }
  const w = s.part.indexOf("window");
  if (w > 0) {
    g.strokeStyle = "#333"; g.setLineDash([3, 3]);
    g.beginPath(); g.moveTo(L + w * col - 0.5, T - 4); g.lineTo(L + w * col - 0.5, base + STRIP + 2); g.stroke();
    g.setLineDash([]);
  }
  g.fillStyle = "#000";
  g.textAlign = "center";
  const mark = (frame, text) => {
    const i = s.frame.indexOf(frame);
    if (i >= 0) g.fillText(text, L + (i + 0.5) * col, Math.max(base - plot * row.mass[i] / most - 3, 10));
  };
  row.top.forEach((t, r) => mark(t.frame, String(r + 1)));
  if (bookmark) mark(bookmark.latent, row.top.some((t) => t.frame === bookmark.latent) ? "\u2605\u2003" : "\u2605");
  g.fillStyle = "#555";
  g.textAlign = "left";
  if (n) g.fillText(`${(s.age[0] + row.age_shift).toFixed(1)} s ago`, L, H - 2);
  g.textAlign = "right";
  if (n) g.fillText(`${(s.age[n - 1] + row.age_shift).toFixed(1)} s ago (window: right of the dashes)`, W - R, H - 2);
  g.textAlign = "left";
}

function render({ model, el }) {
  const root = make("div", "relickit-memory");
  const head = make("div", "relickit-memory-head");
  const canvas = make("canvas", "relickit-memory-timeline");
  const legend = make("div", "relickit-memory-legend");
  for (const [key, text] of [["window", "window"], [1, "memory x1"], [2, "x2 (4x fewer tokens)"],
                             [4, "x4 (16x fewer)"]]) {
    const item = make("span", "relickit-memory-key", text);
    item.style.setProperty("--swatch", COLOURS[key]);
    legend.appendChild(item);
  }
  legend.appendChild(make("span", "relickit-memory-key", "tokens kept"));
  legend.appendChild(make("span", "relickit-memory-key relickit-memory-tick", "chunk mean"));
  const title = make("div", "relickit-memory-title");
  const top = make("div", "relickit-memory-top");
  const budget = make("div", "relickit-memory-budget");
  const mark = make("div", "relickit-memory-bookmark");
  root.append(head, canvas, legend, title, top, budget, mark);
  el.appendChild(root);
  const cards = [];
  const marked = card(mark, "relickit-memory-card"), live = card(mark, "relickit-memory-card relickit-bookmark-live");
  const verdict = make("div", "relickit-bookmark-compare"), hint = make("div", "relickit-memory-caption");
  mark.append(verdict, hint);

  // pacing: a state comes once per chunk, at most one chunk ahead of the screen, with the video frame on screen
  // when it was made (`shown`); the page advances that frame at `fps`, keeps drawing the chunk on screen until the
  // next one's first video frame is due, and redraws whenever another latent frame comes on screen
  let clock = { t0: performance.now(), shown: 0, fps: 0 }, timer = null, drawn = { chunk: 0, row: -1 };
  let current = null, next = null;  // the chunk on screen, the one to come
  const videoNow = () => clock.shown + Math.floor((performance.now() - clock.t0) / MS * clock.fps);

  canvas.addEventListener("mousemove", (event) => {
    const s = current, n = s ? s.frame.length : 0;
    const i = Math.floor((event.offsetX - 44) / ((canvas.width - 52) / Math.max(n, 1)));
    if (i < 0 || i >= n || drawn.row < 0) { canvas.title = ""; return; }
    const row = s.rows[drawn.row], f = s.part[i] === "window" ? "window" : `memory x${s.factor[i]}`;
    canvas.title = `latent ${s.frame[i]}: ${f}, ${s.tokens[i]} tokens, ${pct(row.mass[i])} of latent frame ` +
                   `${row.latent}'s attention (chunk mean ${pct(s.mass[i])}), ` +
                   `${(s.age[i] + row.age_shift).toFixed(1)} s ago, ${deg(row.angle[i])}`;
  });

  const drawRow = (s, k) => {
    const row = s.rows[k], v = videoNow();
    if (drawn.chunk === s.chunk && drawn.row !== k) {
      root.dataset.steps = String(Number(root.dataset.steps || 0) + 1);  // latent-frame changes within the chunk
    } else if (drawn.chunk !== s.chunk) {
      root.dataset.steps = "0";
    }
    drawn = { chunk: s.chunk, row: k };
    root.dataset.chunk = String(s.chunk);
    root.dataset.latent = String(row.latent);
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
    const rows = s.rows.length > 1 ? `, latent frame ${k + 1}/${s.rows.length} (video frames ${row.video[0]}-` +
      `${row.video[1] - 1})` : "";
    head.textContent = `chunk ${s.chunk}${rows}, block ${s.layer}: ${pct(row.current)} of the attention on the ` +
      `chunk itself (chunk mean ${pct(s.current)}), the rest on ${s.frame.length} cached latent frames. ` +
      (s.verified ? `Recomputed attention = the block's output (max error ${s.error.toExponential(1)}).`
                  : `WARNING: recomputed attention differs from the block's output by ${s.error.toExponential(1)}.`);
    head.classList.toggle("relickit-memory-bad", !s.verified);
    const b = s.bookmark;
    drawTimeline(canvas, s, row, b);
    title.textContent = row.top.length ? `top ${row.top.length} beyond the window` : s.no_top;
    while (cards.length < row.top.length) cards.push(card(top, "relickit-memory-card"));
    cards.forEach((c, r) => {
      const t = row.top[r];
      if (!t) { c.hide(); return; }
      c.show(s.thumbs[t.frame], [`#${r + 1}: ${pct(t.mass)}`, `${t.age_s.toFixed(1)} s ago`, deg(t.angle_deg),
                                 t.part === "window" ? "window" : `memory x${t.factor}`],
             t.pending ? "decoding..." : "not kept (view was off)");
    });
    root.dataset.thumbs = String(row.top.filter((t) => s.thumbs[t.frame]).length);
    budget.textContent = s.budget;
    verdict.hidden = !(b && b.live_src);
    if (!b) {
      marked.hide();
      live.hide();
      hint.textContent = "no bookmark: press 'bookmark view' to mark what you see";
      return;
    }
    const age = b.age_s + Math.max(Math.min(v, s.video[1] - 1) - s.shown, 0) / Math.max(clock.fps, 1);
    marked.show(b.src, ["bookmark", `${age.toFixed(1)} s ago`]);
    if (b.live_src) {
      live.show(b.live_src, ["now", `${b.live_angle_deg.toFixed(0)}\u00b0, ${b.live_distance.toFixed(1)} steps off`]);
      verdict.textContent = `back at the bookmark: PSNR ${b.psnr.toFixed(1)} dB between the bookmarked view and ` +
        "the view generated now (higher = the memory brought the place back)";
      verdict.dataset.psnr = b.psnr.toFixed(2);
      hint.textContent = "";
    } else {
      live.hide();
      hint.textContent = b.away ? "now come back to the bookmarked view"
        : `look away (>= ${b.away_deg}\u00b0 or ${b.away_distance} steps) and come back`;
    }
  };

  // show the row on screen now (switching to the next chunk once it is due), and wake when that changes
  const step = () => {
    clearTimeout(timer);
    timer = null;
    const v = videoNow();
    if (next && next.video[0] <= v) { current = next; next = null; }
    if (!current) return;
    const k = rowAt(current.rows, v);
    if (k !== drawn.row || current.chunk !== drawn.chunk) drawRow(current, k);
    const starts = [k + 1 < current.rows.length ? current.rows[k + 1].video[0] : null, next ? next.video[0] : null];
    const wake = Math.min(...starts.filter((x) => x !== null));
    if (clock.fps > 0 && Number.isFinite(wake)) {
      const due = clock.t0 + (wake - clock.shown) / clock.fps * MS;
      timer = setTimeout(step, Math.max(due - performance.now(), 0) + 1);
    }
  };

  const draw = () => {
    const s = model.get("state");
    if (canvas.width !== model.get("width")) canvas.width = model.get("width");  // a resize clears the canvas
    if (canvas.height !== model.get("height")) canvas.height = model.get("height");
    clearTimeout(timer);
    timer = null;
    if (!s.chunk) {
      current = next = null;
      canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
      drawn = { chunk: 0, row: -1 };
      root.dataset.chunk = "0";
      head.textContent = "memory view: each generated chunk shows here once it plays (press start)";
      for (const part of [title, top, budget, mark]) part.hidden = true;
      return;
    }
    for (const part of [title, top, budget, mark]) part.hidden = false;
    clock = { t0: performance.now(), shown: s.shown, fps: s.fps };
    const ahead = current && s.chunk > current.chunk && s.video[0] > videoNow();
    if (ahead) {
      next = s;  // the chunk on screen stays until this one's first video frame is due
    } else {
      current = s;
      next = null;
      drawRow(s, rowAt(s.rows, videoNow()));  // a new state for the chunk on screen always redraws
    }
    step();
  };
  model.on("change:state", draw);
  draw();
  return () => clearTimeout(timer);
}
export default { render };
