// The GPU history on a server's page: each GPU's utilisation (left axis, %) and memory used
// (right axis, GiB) over the chosen span, with a dashed line at each model launch. The figures
// come from the page (json_script "gpu-chart-data"); the words from the canvas's data-*
// attributes, already in the page's language (the units are the same in every language). Without this script (or Chart.js) the page
// still shows the same figures in words below the chart.
(function () {
  "use strict";

  var MIB_PER_GIB = 1024;
  // Per GPU: utilisation in a blue or violet (the first in the page's accent), memory dashed in
  // a green or brown.
  var UTILISATION_COLOURS = ["#0969da", "#8250df", "#bf3989", "#0a7ea4"];
  var MEMORY_COLOURS = ["#1a7f37", "#9a6700", "#bc4c00", "#57606a"];

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  var HOUR = 3600 * 1000;
  var DAY = 24 * HOUR;
  var TIME = { hour: "2-digit", minute: "2-digit" };
  var DATE = { month: "short", day: "numeric" };
  var DATE_TIME = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };

  function timeText(ms, options) {
    return new Date(ms).toLocaleString(document.documentElement.lang || undefined, options);
  }

  // Ticks on whole hours or days of the reader's clock, a few per span.
  function tickStep(span) {
    if (span <= 6 * HOUR) {
      return HOUR;
    }
    if (span <= DAY) {
      return 3 * HOUR;
    }
    return span <= 7 * DAY ? DAY : 5 * DAY;
  }

  function alignedTicks(min, max, step) {
    var first = new Date(min);
    if (step >= DAY) {
      first.setHours(0, 0, 0, 0);
    } else {
      first.setMinutes(0, 0, 0);
      first.setHours(first.getHours() - (first.getHours() % (step / HOUR)));
    }
    var ticks = [];
    for (var at = first.getTime(); at <= max; at += step) {
      if (at >= min) {
        ticks.push({ value: at });
      }
    }
    return ticks;
  }

  // Dashed vertical lines at the launches, drawn under the tooltips.
  var launchLines = {
    id: "launchLines",
    afterDatasetsDraw: function (chart, args, options) {
      var xScale = chart.scales.x;
      var area = chart.chartArea;
      var context = chart.ctx;
      (options.launches || []).forEach(function (launch) {
        var x = xScale.getPixelForValue(launch.at);
        if (x < area.left || x > area.right) {
          return;
        }
        context.save();
        context.strokeStyle = options.colour;
        context.setLineDash([4, 4]);
        context.beginPath();
        context.moveTo(x, area.top);
        context.lineTo(x, area.bottom);
        context.stroke();
        context.restore();
      });
    },
  };

  function datasets(data, labels) {
    var sets = [];
    UTILISATION_COLOURS[0] = cssVar("--accent", UTILISATION_COLOURS[0]);
    data.gpus.forEach(function (gpu, position) {
      var name = "GPU " + gpu.index;
      sets.push({
        label: name + " · " + labels.utilization,
        unit: "%",
        yAxisID: "utilization",
        data: gpu.points.map(function (point) {
          return { x: point[0], y: point[1] };
        }),
        borderColor: UTILISATION_COLOURS[position % UTILISATION_COLOURS.length],
        backgroundColor: UTILISATION_COLOURS[position % UTILISATION_COLOURS.length],
        borderWidth: 1.5,
        pointRadius: 0,
        tension: 0,
      });
      sets.push({
        label: name + " · " + labels.memory,
        unit: "GiB",
        yAxisID: "memory",
        data: gpu.points.map(function (point) {
          return { x: point[0], y: Math.round((point[2] / MIB_PER_GIB) * 10) / 10 };
        }),
        borderColor: MEMORY_COLOURS[position % MEMORY_COLOURS.length],
        backgroundColor: MEMORY_COLOURS[position % MEMORY_COLOURS.length],
        borderDash: [6, 3],
        borderWidth: 1.5,
        pointRadius: 0,
        tension: 0,
      });
    });
    if (data.launches.length) {
      // Points at the top of the utilisation axis: their tooltips name the models.
      sets.push({
        label: labels.launch,
        type: "scatter",
        yAxisID: "utilization",
        data: data.launches.map(function (launch) {
          return { x: launch.at, y: 100, name: launch.name };
        }),
        pointStyle: "triangle",
        rotation: 180,
        pointRadius: 6,
        pointHoverRadius: 8,
        borderColor: cssVar("--text", "#1f2328"),
        backgroundColor: cssVar("--text", "#1f2328"),
      });
    }
    return sets;
  }

  function draw(canvas, data) {
    var labels = {
      utilization: canvas.dataset.utilizationLabel,
      memory: canvas.dataset.memoryLabel,
      launch: canvas.dataset.launchLabel,
    };
    var step = tickStep(data.end - data.start);
    var memoryMax = Math.max.apply(
      null,
      data.gpus.map(function (gpu) {
        return gpu.memory_total_mib / MIB_PER_GIB;
      })
    );
    var muted = cssVar("--muted", "#656d76");
    var grid = cssVar("--border", "#d0d7de");
    var chart = new window.Chart(canvas, {
      type: "line",
      data: { datasets: datasets(data, labels) },
      options: {
        animation: false,
        parsing: false,
        normalized: true,
        responsive: true,
        maintainAspectRatio: true,
        aspectRatio: 2.5,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: {
            type: "linear",
            min: data.start,
            max: data.end,
            afterBuildTicks: function (scale) {
              scale.ticks = alignedTicks(data.start, data.end, step);
            },
            ticks: {
              color: muted,
              autoSkip: true,
              callback: function (value) {
                return timeText(value, step >= DAY ? DATE : TIME);
              },
            },
            grid: { color: grid },
          },
          utilization: {
            type: "linear",
            position: "left",
            min: 0,
            max: 100,
            title: { display: true, text: labels.utilization + " (%)", color: muted },
            ticks: { color: muted },
            grid: { color: grid },
          },
          memory: {
            type: "linear",
            position: "right",
            min: 0,
            suggestedMax: memoryMax || undefined,
            title: { display: true, text: labels.memory + " (GiB)", color: muted },
            ticks: { color: muted },
            grid: { drawOnChartArea: false },
          },
        },
        plugins: {
          legend: { labels: { color: cssVar("--text", "#1f2328"), boxHeight: 2 } },
          decimation: { enabled: true, algorithm: "min-max" },
          tooltip: {
            callbacks: {
              title: function (items) {
                return items.length ? timeText(items[0].parsed.x, DATE_TIME) : "";
              },
              label: function (item) {
                if (item.raw && item.raw.name) {
                  return labels.launch + ": " + item.raw.name;
                }
                return item.dataset.label + ": " + item.formattedValue + " " + item.dataset.unit;
              },
            },
          },
          launchLines: { launches: data.launches, colour: muted },
        },
      },
      plugins: [launchLines],
    });
    canvas.dataset.drawn = "true";
    return chart;
  }

  function start() {
    var canvas = document.getElementById("gpu-chart");
    var source = document.getElementById("gpu-chart-data");
    if (!canvas || !source || !window.Chart) {
      return;
    }
    draw(canvas, JSON.parse(source.textContent));
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
