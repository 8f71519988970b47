// Draws the dashboard's charts with the vendored uPlot from the JSON each page embeds; nothing is fetched.
(function () {
  "use strict";
  var ACCENT = "#2f5d8a", OK = "#1f7a4d", BAD = "#b42318", MUTED = "#98a2b3", WEEK = 7 * 86400;

  function data(el) {
    return JSON.parse(document.getElementById(el.dataset.source).textContent);
  }

  function width(el) {
    return Math.max(320, el.clientWidth || 600);
  }

  function pct(u, values) {
    return values.map(function (v) { return v == null ? "" : Math.round(v * 100) + "%"; });
  }

  function unit() {
    return { range: [0, 1] };
  }

  var charts = {
    weekly: function (el, d) {
      return new uPlot({
        width: width(el), height: 240,
        // a single week would stretch the time axis over years: show at least eight weeks around the data
        scales: { x: { range: function (u, lo, hi) { return hi - lo < WEEK * 8 ? [hi - WEEK * 8, hi + WEEK] : [lo, hi]; } },
                  y: unit() },
        series: [{}, { label: "agreement", stroke: ACCENT, width: 2, points: { size: 7 } },
                 { label: "precision when routed", stroke: OK, width: 2, spanGaps: true }],
        axes: [{}, { values: pct }],
      }, [d.x, d.agreement, d.precision], el);
    },
    reliability: function (el, d) {
      return new uPlot({
        width: width(el), height: 260,
        scales: { x: { time: false, range: [0, 1] }, y: unit() },
        series: [{ label: "confidence" }, { label: "accuracy", stroke: ACCENT, width: 2, points: { size: 7 } },
                 { label: "perfect calibration", stroke: MUTED, dash: [4, 4] }],
        axes: [{ values: pct }, { values: pct }],
      }, [d.confidence, d.accuracy, d.confidence], el);
    },
    coverage: function (el, d) {
      // one x axis for the curve and the thresholds' marks: merge them, each series null where it has no point
      var xs = d.curve.coverage.slice(), curve = {}, marks = {};
      d.curve.coverage.forEach(function (x, i) { curve[x] = d.curve.precision[i]; });
      d.marks.forEach(function (m) { if (!(m.coverage in curve)) xs.push(m.coverage); marks[m.coverage] = m.precision; });
      xs.sort(function (a, b) { return a - b; });
      return new uPlot({
        width: width(el), height: 260,
        scales: { x: { time: false, range: [0, 1] }, y: unit() },
        series: [{ label: "coverage" }, { label: "precision", stroke: ACCENT, width: 2, spanGaps: true, points: { show: false } },
                 { label: "current thresholds", stroke: BAD, width: 0, points: { show: true, size: 10, fill: BAD } }],
        axes: [{ values: pct }, { values: pct }],
      }, [xs, xs.map(function (x) { return x in curve ? curve[x] : null; }),
          xs.map(function (x) { return x in marks ? marks[x] : null; })], el);
    },
    bars: function (el, d) {
      var xs = d.names.map(function (_, i) { return i; });
      return new uPlot({
        width: width(el), height: 220,
        scales: { x: { time: false, range: [-0.5, d.names.length - 0.5] }, y: unit() },
        series: [{ label: "class" }, { label: "coverage", stroke: ACCENT, fill: "rgba(47,93,138,.35)",
                   paths: uPlot.paths.bars({ size: [0.7, 60] }), points: { show: false } }],
        axes: [{ values: function (u, vals) { return vals.map(function (v) { return d.names[v] || ""; }); },
                 rotate: -25, size: 80, incrs: [1] },
               { values: pct }],
      }, [xs, d.coverage.map(function (v) { return v == null ? 0 : v; })], el);
    },
  };

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var d = data(el);
      var empty = (d.x || d.confidence || (d.curve && d.curve.coverage) || d.names || []).length === 0;
      if (empty) {
        el.textContent = "no data yet";
        el.className += " muted";
        return;
      }
      charts[el.dataset.chart](el, d);
      el.dataset.drawn = "true";
    });
  });
})();
