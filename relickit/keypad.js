const ARROWS = { ArrowLeft: "Left", ArrowRight: "Right", ArrowUp: "Up", ArrowDown: "Down" };
const GLYPHS = { Left: "\u2190", Right: "\u2192", Up: "\u2191", Down: "\u2193", Space: "\u2423" };

// KeyboardEvent.code -> relickit key name (physical keys, so WASD stays put on any layout)
function keyName(event) {
  const code = event.code || "";
  if (code.startsWith("Key")) return code.slice(3);
  if (code.startsWith("Digit")) return code.slice(5);
  if (code in ARROWS) return ARROWS[code];
  if (code === "Space") return "Space";
  if (code === "ShiftLeft" || code === "ShiftRight") return "Shift";
  return null;
}

function render({ model, el }) {
  const pad = document.createElement("div");
  pad.className = "relickit-pad";
  pad.tabIndex = 0;
  pad.setAttribute("data-lm-suppress-shortcuts", "true"); // JupyterLab: no notebook shortcuts while driving
  const hint = document.createElement("div");
  hint.className = "relickit-hint";
  pad.appendChild(hint);

  const keyboard = new Set();
  const pointer = new Set();
  const buttons = new Map();
  const sync = () => {
    const pressed = [...new Set([...keyboard, ...pointer])].sort();
    for (const [key, button] of buttons) button.classList.toggle("relickit-down", pressed.includes(key));
    model.set("pressed", pressed);
    model.save_changes();
  };
  const releaseAll = () => {
    if (keyboard.size || pointer.size) {
      keyboard.clear();
      pointer.clear();
      sync();
    }
  };
  const showFocus = () => {
    const active = document.activeElement === pad;
    pad.classList.toggle("relickit-active", active);
    hint.textContent = active ? model.get("hint_active") : model.get("hint_idle");
  };

  pad.addEventListener("keydown", (event) => {
    const key = keyName(event);
    if (key === null || !model.get("bound_keys").includes(key)) return;
    event.preventDefault();
    event.stopPropagation();
    if (!keyboard.has(key)) {
      keyboard.add(key);
      sync();
    }
  });
  pad.addEventListener("keyup", (event) => {
    const key = keyName(event);
    if (key === null || !keyboard.has(key)) return;
    event.preventDefault();
    event.stopPropagation();
    keyboard.delete(key);
    sync();
  });
  // a key released while the page had no focus never sends keyup: release everything on focus loss
  pad.addEventListener("blur", () => { releaseAll(); showFocus(); });
  pad.addEventListener("focus", showFocus);
  const onVisibility = () => { if (document.hidden) releaseAll(); };
  document.addEventListener("visibilitychange", onVisibility);
  window.addEventListener("blur", releaseAll);
  // keep the click for the pad: the notebook would otherwise take focus back on mousedown
  const grab = (event) => { event.stopPropagation(); pad.focus(); };
  pad.addEventListener("mousedown", grab);
  pad.addEventListener("pointerdown", grab);

  const titles = model.get("titles");
  const clusters = document.createElement("div");
  clusters.className = "relickit-clusters";
  for (const cluster of model.get("clusters")) {
    const box = document.createElement("div");
    box.className = "relickit-cluster";
    for (const row of cluster) {
      const line = document.createElement("div");
      line.className = "relickit-row";
      for (const key of row) line.appendChild(key ? makeButton(key) : spacer());
      box.appendChild(line);
    }
    clusters.appendChild(box);
  }
  pad.appendChild(clusters);

  function spacer() {
    const gap = document.createElement("span");
    gap.className = "relickit-key relickit-spacer";
    return gap;
  }
  // on-screen buttons press while held (mouse, pen or touch)
  function makeButton(key) {
    const button = document.createElement("button");
    button.className = "relickit-key";
    button.tabIndex = -1;
    button.textContent = GLYPHS[key] ?? key;
    button.title = `${key}: ${titles[key] ?? ""}`;
    button.dataset.key = key;
    button.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      button.setPointerCapture(event.pointerId);
      pointer.add(key);
      sync();
    });
    const release = () => { if (pointer.delete(key)) sync(); };
    button.addEventListener("pointerup", release);
    button.addEventListener("pointercancel", release);
    button.addEventListener("lostpointercapture", release);
    buttons.set(key, button);
    return button;
  }
  showFocus();
  el.appendChild(pad);
  return () => {
    document.removeEventListener("visibilitychange", onVisibility);
    window.removeEventListener("blur", releaseAll);
  };
}
export default { render };
