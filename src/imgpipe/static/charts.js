// Small canvas charts for the dashboard: bars and lines over time, with a y axis and a legend.
// window.drawChart(canvas, {series: [{label, colour, values, kind: "bar"|"line"}], unit, t0, t1})
(function () {
  "use strict";

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmt(v, unit) {
    if (unit === "s") return v < 1 ? `${Math.round(v * 1000)} ms` : `${v.toFixed(v < 10 ? 1 : 0)} s`;
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }

  window.drawChart = function (canvas, spec) {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 300;
    const cssH = canvas.clientHeight || 140;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    ctx.clearRect(0, 0, cssW, cssH);
    const styles = getComputedStyle(document.documentElement);
    const muted = styles.getPropertyValue("--muted").trim() || "#888";
    const grid = styles.getPropertyValue("--grid").trim() || "#eee";
    const left = 54, right = 8, top = 18, bottom = 18;
    const w = cssW - left - right, h = cssH - top - bottom;
    const n = Math.max(1, ...spec.series.map((s) => s.values.length));
    let max = 0;
    for (const s of spec.series) for (const v of s.values) if (v != null && v > max) max = v;
    max = niceMax(max);

    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = muted;
    ctx.strokeStyle = grid;
    ctx.lineWidth = 1;
    for (let i = 0; i <= 2; i++) {
      const y = top + h - (h * i) / 2;
      ctx.beginPath(); ctx.moveTo(left, y + 0.5); ctx.lineTo(left + w, y + 0.5); ctx.stroke();
      ctx.textAlign = "right"; ctx.textBaseline = "middle";
      ctx.fillText(fmt((max * i) / 2, spec.unit), left - 6, y);
    }
    ctx.textAlign = "left"; ctx.textBaseline = "alphabetic";
    ctx.fillText("−60 min", left, cssH - 4);
    ctx.textAlign = "right";
    ctx.fillText("now", left + w, cssH - 4);

    const step = w / n;
    for (const s of spec.series) {
      ctx.fillStyle = s.colour; ctx.strokeStyle = s.colour;
      if (s.kind === "bar") {
        s.values.forEach((v, i) => {
          if (!v) return;
          const bh = (v / max) * h;
          ctx.fillRect(left + i * step, top + h - bh, Math.max(1, step - 0.5), bh);
        });
      } else {
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        let drawing = false;
        s.values.forEach((v, i) => {
          if (v == null) { drawing = false; return; }
          const x = left + i * step + step / 2, y = top + h - (v / max) * h;
          if (drawing) ctx.lineTo(x, y); else { ctx.moveTo(x, y); drawing = true; }
          ctx.fillRect(x - 1, y - 1, 2, 2);
        });
        ctx.stroke();
      }
    }
    let x = left;
    ctx.textAlign = "left";
    for (const s of spec.series) {
      ctx.fillStyle = s.colour;
      ctx.fillRect(x, 5, 8, 8);
      ctx.fillStyle = muted;
      ctx.fillText(s.label, x + 11, 13);
      x += ctx.measureText(s.label).width + 24;
    }
  };
})();
