// The save-cost chart, as hand-written SVG (no dependency): p50 against payload size on log-log
// axes, one line per way, with a whisker up to p99. Log scales because the old way grows by two
// orders of magnitude while the narrow-row writes stay flat near the floor.

export interface ChartData {
  title: string;
  sizes: Array<{ label: string; bytes: number }>;
  series: Array<{ label: string; p50: number[]; p99: number[] }>;
}

const WIDTH = 860;
const HEIGHT = 480;
const PLOT = { left: 80, right: 560, top: 56, bottom: 410 };
const COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#7f7f7f', '#bcbd22', '#9467bd'];

export function renderChart(data: ChartData): string {
  const xs = data.sizes.map((size) => Math.log10(size.bytes));
  const values = data.series.flatMap((series) => [...series.p50, ...series.p99]);
  const yMin = Math.floor(Math.log10(Math.min(...values)));
  const yMax = Math.ceil(Math.log10(Math.max(...values)));
  // Half a decade of margin either side of the sizes, so that whiskers do not touch the frame.
  const xMin = Math.min(...xs) - 0.5;
  const xMax = Math.max(...xs) + 0.5;
  const x = (bytes: number) =>
    PLOT.left + ((Math.log10(bytes) - xMin) / (xMax - xMin)) * (PLOT.right - PLOT.left);
  const y = (msValue: number) =>
    PLOT.bottom - ((Math.log10(msValue) - yMin) / (yMax - yMin)) * (PLOT.bottom - PLOT.top);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="28" text-anchor="middle" font-size="15">${escape(data.title)}</text>`,
  ];

  // Decades of the latency axis: gridline and label.
  for (let decade = yMin; decade <= yMax; decade++) {
    const at = y(10 ** decade).toFixed(1);
    parts.push(
      `<line x1="${PLOT.left}" y1="${at}" x2="${PLOT.right}" y2="${at}" stroke="#e0e0e0"/>`,
      `<text x="${PLOT.left - 8}" y="${at}" text-anchor="end" dominant-baseline="middle">${decadeLabel(decade)}</text>`,
    );
  }
  for (const size of data.sizes) {
    const at = x(size.bytes).toFixed(1);
    parts.push(
      `<line x1="${at}" y1="${PLOT.top}" x2="${at}" y2="${PLOT.bottom}" stroke="#f0f0f0"/>`,
      `<text x="${at}" y="${PLOT.bottom + 20}" text-anchor="middle">${escape(size.label)}</text>`,
    );
  }
  parts.push(
    `<rect x="${PLOT.left}" y="${PLOT.top}" width="${PLOT.right - PLOT.left}" height="${PLOT.bottom - PLOT.top}" fill="none" stroke="#333"/>`,
    `<text x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 44}" text-anchor="middle">job payload size (log scale)</text>`,
    `<text x="20" y="${(PLOT.top + PLOT.bottom) / 2}" text-anchor="middle" transform="rotate(-90 20 ${(PLOT.top + PLOT.bottom) / 2})">time per save (log scale)</text>`,
  );

  data.series.forEach((series, index) => {
    const color = COLORS[index % COLORS.length];
    // Whiskers of neighbouring series are spread a little apart so that each stays visible.
    const dx = (index - (data.series.length - 1) / 2) * 5;
    const points = data.sizes.map((size, i) => ({
      x: x(size.bytes) + dx,
      p50: y(series.p50[i]),
      p99: y(series.p99[i]),
    }));
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.map((p) => `${p.x.toFixed(1)},${p.p50.toFixed(1)}`).join(' ')}"/>`,
    );
    for (const point of points) {
      parts.push(
        `<line x1="${point.x.toFixed(1)}" y1="${point.p50.toFixed(1)}" x2="${point.x.toFixed(1)}" y2="${point.p99.toFixed(1)}" stroke="${color}" stroke-width="1"/>`,
        `<line x1="${(point.x - 3).toFixed(1)}" y1="${point.p99.toFixed(1)}" x2="${(point.x + 3).toFixed(1)}" y2="${point.p99.toFixed(1)}" stroke="${color}" stroke-width="1"/>`,
        `<circle cx="${point.x.toFixed(1)}" cy="${point.p50.toFixed(1)}" r="3.5" fill="${color}"/>`,
      );
    }
    const legendY = PLOT.top + 10 + index * 22;
    parts.push(
      `<line x1="${PLOT.right + 20}" y1="${legendY}" x2="${PLOT.right + 44}" y2="${legendY}" stroke="${color}" stroke-width="2"/>`,
      `<circle cx="${PLOT.right + 32}" cy="${legendY}" r="3.5" fill="${color}"/>`,
      `<text x="${PLOT.right + 52}" y="${legendY}" dominant-baseline="middle">${escape(series.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** 0.01 ms, 0.1 ms, 1 ms, 10 ms, 100 ms, 1 s. */
function decadeLabel(decade: number): string {
  if (decade >= 3) return `${10 ** (decade - 3)} s`;
  return `${decade >= 0 ? 10 ** decade : (10 ** decade).toFixed(-decade)} ms`;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
