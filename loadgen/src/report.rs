//! The result of one load run and the ways it is shown: one line of JSON (for scripts and
//! `BENCHMARKS.md`), a terminal table, a once-a-second progress line, HdrHistogram's `.hgrm`
//! percentile text (for the standard plotters and side-by-side comparison with wrk2) and a
//! self-contained SVG percentile plot.
//!
//! All latencies are recorded in microseconds.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// Highest latency the report histograms track: 60 s, in µs. Record with
/// [`Histogram::saturating_record`] so that a stall longer than this lands in the top bucket
/// instead of being dropped (dropping it would hide exactly the outliers a load test is for).
pub const HIST_MAX_US: u64 = 60_000_000;

/// Significant decimal digits the report histograms keep (±0.1 % of the value).
pub const HIST_SIGFIG: u8 = 3;

/// Percentile ticks per half distance to 100 %: the value HdrHistogram's own tools and wrk2 use,
/// so our `.hgrm` files line up row for row with theirs.
const TICKS_PER_HALF: u32 = 5;

/// A histogram with the bounds every report uses: 1 µs .. 60 s, 3 significant digits, fixed size.
///
/// Per-thread histograms made here can be merged with [`Histogram::add`] without error, and a
/// fixed size means recording never allocates on the hot path.
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, HIST_MAX_US, HIST_SIGFIG)
        .expect("constant histogram bounds are valid");
    h.auto(false);
    h
}

/// What a fan-out run ([`crate::Mode::Fanout`]) adds to a report. Its deliveries are the
/// report's `msgs` (and `msgs_per_sec`), its publish → delivery latency the report's `latency`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Subscriber connections requested.
    pub subscribers: usize,
    /// Publisher connections requested.
    pub publishers: usize,
    /// Rooms.
    pub rooms: usize,
    /// Messages published in the measured period.
    pub published: u64,
    /// Deliveries those messages should make: each one × its room's subscribers.
    pub expected_deliveries: u64,
    /// Messages a subscriber missed inside a publisher's sequence (over the whole run).
    pub gaps: u64,
    /// Deliveries at or below a sequence number the subscriber had already seen (duplicates
    /// and reorders, over the whole run).
    pub duplicates: u64,
    /// Published messages (any phase) a subscriber had not got when the run ended, after the
    /// drain.
    pub undelivered: u64,
}

/// Everything one run measured, filled in by the load driver and printed at the end.
#[derive(Debug, Clone)]
pub struct Report {
    /// `"echo"`, `"rate"`, `"connect"`, `"idle"` or `"fanout"`.
    pub mode: String,
    /// The target URL.
    pub url: String,
    /// Connections requested.
    pub conns: usize,
    /// Connections that opened.
    pub connected: usize,
    /// Connections that negotiated permessage-deflate.
    pub deflate_conns: usize,
    /// Echo mode: messages in flight per connection.
    pub in_flight: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Text (`true`) or binary messages.
    pub text: bool,
    /// Rate mode: target messages per second.
    pub rate: Option<f64>,
    /// Client threads.
    pub threads: usize,
    /// The measured period (after warm-up).
    pub duration: Duration,
    /// Messages completed (echo received) in the measured period.
    pub msgs: u64,
    /// Payload bytes completed in the period, one direction.
    pub bytes: u64,
    /// Echoes whose payload differed from what was sent.
    pub mismatches: u64,
    /// Error kind (`"refused"`, `"timeout"`, `"closed"`, `"protocol"`, …) → count.
    pub errors: BTreeMap<String, u64>,
    /// Round-trip latency in µs; in rate mode measured from the intended send time, so that a
    /// stalled server cannot hide its queueing delay (coordinated omission).
    pub latency: Histogram<u64>,
    /// TCP connect + WebSocket handshake time in µs.
    pub connect_latency: Histogram<u64>,
    /// Percent of one core this process used during the period (see [`process_cpu_time`]).
    pub client_cpu: Option<f64>,
    /// Fan-out mode's counts (`None` in the other modes).
    pub fanout: Option<Fanout>,
}

impl Report {
    /// An empty report: all counts zero, both histograms from [`new_histogram`].
    pub fn new(mode: &str, url: &str) -> Report {
        Report {
            mode: mode.to_owned(),
            url: url.to_owned(),
            conns: 0,
            connected: 0,
            deflate_conns: 0,
            in_flight: 0,
            size: 0,
            text: false,
            rate: None,
            threads: 0,
            duration: Duration::ZERO,
            msgs: 0,
            bytes: 0,
            mismatches: 0,
            errors: BTreeMap::new(),
            latency: new_histogram(),
            connect_latency: new_histogram(),
            client_cpu: None,
            fanout: None,
        }
    }

    /// Completed messages per second over the measured period (0 when the period is empty).
    pub fn msgs_per_sec(&self) -> f64 {
        per_sec(self.msgs as f64, self.duration)
    }

    /// Payload MiB (2^20 bytes) per second, one direction (0 when the period is empty).
    pub fn mib_per_sec(&self) -> f64 {
        per_sec(self.bytes as f64 / (1024.0 * 1024.0), self.duration)
    }

    /// Connections opened per second over the measured period (0 when the period is empty).
    pub fn connects_per_sec(&self) -> f64 {
        per_sec(self.connected as f64, self.duration)
    }

    /// Sum of all error counts.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// One line of JSON with every field and the derived rates and latency statistics.
    ///
    /// Keys: `mode url conns connected in_flight size text rate threads duration_secs msgs
    /// msgs_per_sec mib_per_sec bytes mismatches errors errors_total latency_us
    /// connect_latency_us connects_per_sec client_cpu_percent`; each `*_us` object has
    /// `count min mean p50 p90 p99 p999 p9999 max`. `rate` and `client_cpu_percent` are `null`
    /// when unknown; an empty histogram gives 0 for every statistic.
    ///
    /// Fan-out mode adds `subscribers publishers rooms published published_per_sec
    /// expected_deliveries gaps duplicates undelivered` (see [`Fanout`]); there `msgs` and
    /// `msgs_per_sec` count subscribers' deliveries, `conns` is subscribers + publishers and
    /// `latency_us` is publish → delivery from the intended send time. The other modes' lines
    /// do not have these keys.
    pub fn to_json(&self) -> String {
        let mut v = json!({
            "mode": self.mode,
            "url": self.url,
            "conns": self.conns,
            "connected": self.connected,
            "deflate_conns": self.deflate_conns,
            "in_flight": self.in_flight,
            "size": self.size,
            "text": self.text,
            "rate": self.rate,
            "threads": self.threads,
            "duration_secs": self.duration.as_secs_f64(),
            "msgs": self.msgs,
            "msgs_per_sec": self.msgs_per_sec(),
            "mib_per_sec": self.mib_per_sec(),
            "bytes": self.bytes,
            "mismatches": self.mismatches,
            "errors": self.errors,
            "errors_total": self.errors_total(),
            "latency_us": Stats::of(&self.latency).to_json(),
            "connect_latency_us": Stats::of(&self.connect_latency).to_json(),
            "connects_per_sec": self.connects_per_sec(),
            "client_cpu_percent": self.client_cpu,
        });
        if let (Some(f), Value::Object(m)) = (&self.fanout, &mut v) {
            let published_per_sec = per_sec(f.published as f64, self.duration);
            for (k, x) in [
                ("subscribers", json!(f.subscribers)),
                ("publishers", json!(f.publishers)),
                ("rooms", json!(f.rooms)),
                ("published", json!(f.published)),
                ("published_per_sec", json!(published_per_sec)),
                ("expected_deliveries", json!(f.expected_deliveries)),
                ("gaps", json!(f.gaps)),
                ("duplicates", json!(f.duplicates)),
                ("undelivered", json!(f.undelivered)),
            ] {
                m.insert(k.into(), x);
            }
        }
        // Compact serialisation escapes control characters inside strings, so this is one line.
        v.to_string()
    }

    /// The final human-readable summary: run parameters, throughput, latency percentiles
    /// (round trip and connect), errors by kind and mismatches, in aligned columns.
    pub fn table(&self) -> String {
        // Locals so the format strings below can name them and show the layout as printed.
        let (mode, url, conns, connected) = (&self.mode, &self.url, self.conns, self.connected);
        let (size, in_flight, threads) = (self.size, self.in_flight, self.threads);
        let (msgs, bytes, cps) = (self.msgs, self.bytes, self.connects_per_sec());
        let (mps, mib, secs) = (
            self.msgs_per_sec(),
            self.mib_per_sec(),
            self.duration.as_secs_f64(),
        );
        let kind = if self.text { "text" } else { "binary" };
        let mut s = format!("mode          {mode}  {url}\n");
        s += &format!("connections   {conns} requested, {connected} opened ({cps:.1}/s)\n");
        if let Some(f) = &self.fanout {
            let (subs, pubs, rooms) = (f.subscribers, f.publishers, f.rooms);
            s += &format!("fanout        {subs} subscribers, {pubs} publishers, {rooms} rooms\n");
            s += &format!("load          {size} B {kind}, {threads} threads\n");
        } else {
            s += &format!(
                "load          {size} B {kind}, {in_flight} in flight/conn, {threads} threads\n"
            );
        }
        if let Some(rate) = self.rate {
            s += &format!("target rate   {rate:.1} msg/s\n");
        }
        s += &format!("duration      {secs:.2} s\n");
        if let Some(f) = &self.fanout {
            let (published, expected) = (f.published, f.expected_deliveries);
            let pps = per_sec(published as f64, self.duration);
            s += &format!("published     {published} msgs, {pps:.1} msg/s\n");
            s += &format!(
                "deliveries    {msgs} of {expected} expected, {mps:.1} msg/s, {mib:.2} MiB/s ({bytes} B)\n"
            );
            let (gaps, dups, undelivered) = (f.gaps, f.duplicates, f.undelivered);
            s += &format!(
                "checks        {gaps} gaps, {dups} duplicates, {undelivered} undelivered\n"
            );
        } else {
            s +=
                &format!("throughput    {msgs} msgs, {mps:.1} msg/s, {mib:.2} MiB/s ({bytes} B)\n");
        }
        if let Some(cpu) = self.client_cpu {
            s += &format!("client cpu    {cpu:.1} % of one core\n");
        }

        s += &format!("\n{:<14}{:>10}", "latency", "count");
        for h in ["min", "mean", "p50", "p90", "p99", "p99.9", "p99.99", "max"] {
            s += &format!("{h:>9}");
        }
        let first = if self.fanout.is_some() {
            "publish→deliv"
        } else {
            "round trip"
        };
        let rows = [(first, &self.latency), ("connect", &self.connect_latency)];
        for (name, hist) in rows {
            let st = Stats::of(hist);
            s += &format!("\n{name:<14}{:>10}", st.count);
            let q = st.q.map(|v| v as f64);
            for v in [[st.min as f64, st.mean].as_slice(), &q, &[st.max as f64]].concat() {
                s += &format!("{:>9}", fmt_us(v));
            }
        }

        s += &format!("\n\nerrors        {}\n", self.errors_total());
        for (kind, n) in &self.errors {
            s += &format!("  {kind:<12}{n}\n");
        }
        s + &format!("mismatches    {}\n", self.mismatches)
    }

    /// The line printed once a second on a terminal: elapsed time, messages completed in the
    /// last second, p99 so far and the error count so far.
    pub fn progress_line(
        elapsed: Duration,
        msgs_last_sec: u64,
        hist: &Histogram<u64>,
        errors: u64,
    ) -> String {
        let (secs, p99) = (elapsed.as_secs_f64(), fmt_us(Stats::of(hist).p99() as f64));
        format!("{secs:>7.1}s {msgs_last_sec:>10} msg/s   p99 {p99:>8}   errors {errors}")
    }
}

/// `n / d` per second, 0 for an empty period rather than inf/NaN (JSON has neither).
fn per_sec(n: f64, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 { n / secs } else { 0.0 }
}

/// A µs value in the unit that keeps it short: `850µs`, `1.25ms`, `2.50s`.
fn fmt_us(us: f64) -> String {
    // Switch units where rounding would otherwise print "1000µs" or "1000.00ms".
    if us < 999.5 {
        format!("{us:.0}µs")
    } else if us < 999_995.0 {
        format!("{:.2}ms", us / 1e3)
    } else {
        format!("{:.2}s", us / 1e6)
    }
}

/// The quantiles every summary reports, with their JSON keys.
const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p999", 0.999),
    ("p9999", 0.9999),
];

/// Summary statistics of a histogram; all zero when it is empty.
#[derive(Debug, Default)]
struct Stats {
    count: u64,
    min: u64,
    mean: f64,
    /// Values at [`QUANTILES`], in order.
    q: [u64; 5],
    max: u64,
}

impl Stats {
    fn of(h: &Histogram<u64>) -> Stats {
        // hdrhistogram's min_nz/max are sentinels on an empty histogram; zeros read better and
        // keep the JSON free of surprises.
        if h.is_empty() {
            return Stats::default();
        }
        Stats {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            q: QUANTILES.map(|(_, q)| h.value_at_quantile(q)),
            max: h.max(),
        }
    }

    fn p99(&self) -> u64 {
        self.q[2]
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("count".into(), json!(self.count));
        m.insert("min".into(), json!(self.min));
        m.insert("mean".into(), json!(self.mean));
        for ((key, _), v) in QUANTILES.iter().zip(self.q) {
            m.insert((*key).into(), json!(v));
        }
        m.insert("max".into(), json!(self.max));
        Value::Object(m)
    }
}

/// Writes `hist` as HdrHistogram's percentile distribution text (`.hgrm`), the format of Java's
/// `outputPercentileDistribution` and wrk2's `--latency`, so the standard plotters read it.
///
/// Values are divided by `scale` (1.0 prints µs, 1000.0 prints ms) and shown with as many
/// decimals as the histogram has significant digits. Rows come from
/// [`Histogram::iter_quantiles`] with 5 ticks per half distance; the last row is percentile
/// 1.000000000000 (no 1/(1-p) column, as in Java). An empty histogram has no rows, only the
/// header and footer.
pub fn write_hgrm(hist: &Histogram<u64>, scale: f64, w: &mut impl io::Write) -> io::Result<()> {
    let d = usize::from(hist.sigfig());
    writeln!(
        w,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    // count_since_last_iteration is 0 when a tick stays in the same bucket, so the running sum
    // is the total count up to this value, which is what the TotalCount column holds.
    let mut total = 0u64;
    for v in hist.iter_quantiles(TICKS_PER_HALF) {
        total += v.count_since_last_iteration();
        let (value, q) = (
            v.value_iterated_to() as f64 / scale,
            v.quantile_iterated_to(),
        );
        if q < 1.0 {
            let inv = 1.0 / (1.0 - q);
            writeln!(w, "{value:12.d$} {q:2.12} {total:10} {inv:14.2}")?;
        } else {
            writeln!(w, "{value:12.d$} {q:2.12} {total:10}")?;
        }
    }
    // mean/stdev are 0 and Stats zeroes max for an empty histogram, so the footer is all zeros.
    let (st, sd) = (Stats::of(hist), hist.stdev() / scale);
    let (mean, max, count) = (st.mean / scale, st.max as f64 / scale, st.count);
    // hdrhistogram does not expose its sub-bucket count; it is 2·10^sigfig rounded up to a power
    // of two (2048 for 3 digits), the same rule the crate and Java use.
    let sub_buckets = (2u64 * 10u64.pow(u32::from(hist.sigfig()))).next_power_of_two();
    writeln!(w, "#[Mean    = {mean:12.d$}, StdDeviation   = {sd:12.d$}]")?;
    writeln!(w, "#[Max     = {max:12.d$}, Total count    = {count:12}]")?;
    let buckets = hist.buckets();
    writeln!(
        w,
        "#[Buckets = {buckets:12}, SubBuckets     = {sub_buckets:12}]"
    )
}

/// Distinct, colour-blind-tolerable series colours (Tableau 10); they repeat past eight series.
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Writes a self-contained SVG (no external fonts, stylesheets or scripts) plotting latency by
/// percentile, one polyline per series, with a legend giving each series' count, p99 and max.
///
/// The x axis is logarithmic in 1/(1-p), labelled 0 %, 90 %, 99 %, … 99.999 % (extended by
/// further decades when a series has more than 10^5 samples, so its tail is not squashed); the
/// y axis is linear in µs, or ms when the largest max exceeds 10 ms. A series of n samples
/// reaches its max at 1/(1-p) = n, so its later ticks (and p = 100 %) are drawn there. An empty
/// histogram gives a polyline with no points.
pub fn write_svg(
    series: &[(&str, &Histogram<u64>)],
    title: &str,
    w: &mut impl io::Write,
) -> io::Result<()> {
    // Canvas size and plot-area edges (left, right, top, bottom), in px.
    const W: f64 = 960.0;
    const H: f64 = 560.0;
    const L: f64 = 84.0;
    const R: f64 = W - 44.0;
    const T: f64 = 56.0;
    const B: f64 = H - 64.0;

    let max_count = series.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    let decades = ((max_count.max(1) as f64).log10().ceil() as u32).clamp(5, 9);
    let stats: Vec<Stats> = series.iter().map(|(_, h)| Stats::of(h)).collect();
    let max_us = stats.iter().map(|st| st.max).max().unwrap_or(0);
    let (unit, div) = if max_us > 10_000 {
        ("ms", 1e3)
    } else {
        ("µs", 1.0)
    };
    let (y_top, y_step) = nice_axis((max_us as f64 / div).max(1.0));
    let px = |decade: f64| L + (R - L) * decade / f64::from(decades);
    let py = |v: f64| B - (B - T) * (v / y_top);
    let (mid_x, mid_y, title) = ((L + R) / 2.0, (T + B) / 2.0, xml_escape(title));

    // Built in memory (writes to a Vec cannot fail) and handed to `w` in one write.
    let mut s = Vec::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    )?;
    writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#)?;
    writeln!(
        s,
        r#"<text x="{mid_x}" y="30" text-anchor="middle" font-size="17" font-weight="bold">{title}</text>"#
    )?;

    // Gridlines and axis labels first, so the curves draw over them.
    for d in 0..=decades {
        let (x, label, y) = (px(f64::from(d)), percentile_label(d), B + 18.0);
        writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{B}" stroke="#ddd"/>"##
        )?;
        writeln!(
            s,
            r#"<text x="{x:.1}" y="{y}" text-anchor="middle">{label}</text>"#
        )?;
    }
    // Enough decimals that neighbouring labels differ (step 0.2 needs one, 50 needs none).
    let decimals = (-y_step.log10().floor()).max(0.0) as usize;
    for i in 0..=(y_top / y_step).round() as u32 {
        let (v, lx) = (f64::from(i) * y_step, L - 8.0);
        let y = py(v);
        writeln!(
            s,
            r##"<line x1="{L}" y1="{y:.1}" x2="{R}" y2="{y:.1}" stroke="#ddd"/>"##
        )?;
        let ty = y + 4.0;
        writeln!(
            s,
            r#"<text x="{lx}" y="{ty:.1}" text-anchor="end">{v:.decimals$}</text>"#
        )?;
    }
    let (pw, ph, ay) = (R - L, B - T, H - 20.0);
    writeln!(
        s,
        r##"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#555"/>"##
    )?;
    writeln!(
        s,
        r#"<text x="{mid_x}" y="{ay}" text-anchor="middle">Percentile</text>"#
    )?;
    writeln!(
        s,
        r#"<text transform="translate(22 {mid_y}) rotate(-90)" text-anchor="middle">Latency ({unit})</text>"#
    )?;

    for (i, (_, hist)) in series.iter().enumerate() {
        let mut points = String::new();
        let mut last_x = 0.0f64;
        // With n samples the max is reached at 1/(1-p) = n: ticks past that (and p = 1, whose
        // 1/(1-p) is infinite) are drawn there. Ticks never go backwards; the axis clamps last.
        let n_x = (hist.len().max(1) as f64).log10();
        for v in hist.iter_quantiles(TICKS_PER_HALF) {
            let x = (-(1.0 - v.quantile_iterated_to()).log10()).min(n_x);
            last_x = x.max(last_x).min(f64::from(decades));
            let y = py(v.value_iterated_to() as f64 / div);
            points += &format!("{:.1},{y:.1} ", px(last_x));
        }
        let (points, color) = (points.trim_end(), COLORS[i % COLORS.len()]);
        writeln!(
            s,
            r#"<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2" stroke-linejoin="round"/>"#
        )?;
    }

    // Legend in the top-left corner: percentile curves rise to the right, so it is usually empty.
    let labels: Vec<String> = series
        .iter()
        .zip(&stats)
        .map(|((name, _), st)| {
            let (n, p99, max) = (st.count, fmt_us(st.p99() as f64), fmt_us(st.max as f64));
            match n {
                0 => format!("{name}  (no samples)"),
                _ => format!("{name}  (n={n}, p99 {p99}, max {max})"),
            }
        })
        .collect();
    if !labels.is_empty() {
        // No font metrics without a renderer: 7 px a character is a safe bound at 12 px.
        let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let width = chars as f64 * 7.0 + 44.0;
        let (lx, ly, lh) = (L + 12.0, T + 12.0, labels.len() as f64 * 20.0 + 8.0);
        writeln!(
            s,
            r##"<rect x="{lx}" y="{ly}" width="{width:.0}" height="{lh}" fill="white" fill-opacity="0.9" stroke="#999"/>"##
        )?;
        for (i, label) in labels.iter().enumerate() {
            let (y, color) = (ly + 14.0 + i as f64 * 20.0, COLORS[i % COLORS.len()]);
            let (x1, x2, tx) = (lx + 8.0, lx + 30.0, lx + 36.0);
            writeln!(
                s,
                r#"<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{color}" stroke-width="3"/>"#
            )?;
            let (ty, label) = (y + 4.0, xml_escape(label));
            writeln!(s, r#"<text x="{tx}" y="{ty}">{label}</text>"#)?;
        }
    }
    writeln!(s, "</svg>")?;
    w.write_all(&s)
}

/// `0%`, `90%`, `99%`, `99.9%`, … for 0, 1, 2, 3, … decades of 1/(1-p).
fn percentile_label(decade: u32) -> String {
    match decade {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        d => format!("99.{}%", "9".repeat(d as usize - 2)).replace(".%", "%"),
    }
}

/// A round axis top (≥ `max`) and gridline step: 1, 2 or 5 × 10^k, four to ten lines.
fn nice_axis(max: f64) -> (f64, f64) {
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// Escapes text for SVG element content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// CPU time (user + system) this process has used so far, from `getrusage(RUSAGE_SELF)`.
///
/// Take one sample at the start of the measured period and one at the end; the difference
/// divided by the wall time, × 100, is the percent of one core used (above 100 with several
/// threads). Returns zero if the call fails, which it does not on Linux.
pub fn process_cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer we pass, which points to
    // writable memory of the right size; RUSAGE_SELF is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return Duration::ZERO;
    }
    // SAFETY: zero-initialised and then filled by a successful getrusage; all-zero is also a
    // valid `rusage` (plain integers).
    let ru = unsafe { ru.assume_init() };
    timeval(ru.ru_utime) + timeval(ru.ru_stime)
}

fn timeval(t: libc::timeval) -> Duration {
    let micros = t.tv_usec.clamp(0, 999_999) as u32;
    Duration::new(t.tv_sec.max(0) as u64, micros * 1000)
}
