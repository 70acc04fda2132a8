//! Tests of the report formats: JSON, table, progress line, `.hgrm` and SVG.

use std::time::Duration;

use hdrhistogram::Histogram;
use ringwire_loadgen::report::{
    Fanout, HIST_MAX_US, Report, new_histogram, process_cpu_time, write_hgrm, write_svg,
};
use serde_json::Value;

/// 1..=1000 µs, one sample each: p50 ≈ 500, p99 ≈ 990, max 1000.
fn uniform_1000() -> Histogram<u64> {
    let mut h = new_histogram();
    for v in 1..=1000 {
        h.record(v).unwrap();
    }
    h
}

/// Within hdr's ±0.1 % (3 significant digits), plus one unit for bucket edges.
fn near(got: f64, want: f64) -> bool {
    (got - want).abs() <= want * 0.001 + 1.0
}

fn sample_report() -> Report {
    let mut r = Report::new("echo", "ws://127.0.0.1:9001/echo");
    r.conns = 10;
    r.connected = 8;
    r.in_flight = 4;
    r.size = 64;
    r.threads = 2;
    r.duration = Duration::from_millis(2500);
    r.msgs = 12_345;
    r.bytes = 12_345 * 64;
    r.mismatches = 3;
    r.errors.insert("refused".into(), 2);
    r.errors.insert("timeout".into(), 5);
    r.latency = uniform_1000();
    for v in [1500, 2500, 3500] {
        r.connect_latency.record(v).unwrap();
    }
    r.client_cpu = Some(42.5);
    r
}

#[test]
fn json_round_trips_with_right_numbers() {
    let r = sample_report();
    let line = r.to_json();
    assert!(!line.contains('\n'));
    let j: Value = serde_json::from_str(&line).unwrap();

    assert_eq!(j["mode"], "echo");
    assert_eq!(j["url"], "ws://127.0.0.1:9001/echo");
    assert_eq!(j["conns"], 10);
    assert_eq!(j["connected"], 8);
    assert_eq!(j["in_flight"], 4);
    assert_eq!(j["size"], 64);
    assert_eq!(j["text"], false);
    assert!(j["rate"].is_null());
    assert_eq!(j["threads"], 2);
    assert_eq!(j["duration_secs"].as_f64().unwrap(), 2.5);
    assert_eq!(j["msgs"], 12_345);
    assert_eq!(j["msgs_per_sec"].as_f64().unwrap(), 12_345.0 / 2.5);
    assert!((r.msgs_per_sec() - 4938.0).abs() < 1e-9);
    let mib = j["mib_per_sec"].as_f64().unwrap();
    assert!((mib - 12_345.0 * 64.0 / 1048576.0 / 2.5).abs() < 1e-9);
    assert_eq!(j["bytes"], 12_345 * 64);
    assert_eq!(j["mismatches"], 3);
    assert_eq!(j["errors"]["refused"], 2);
    assert_eq!(j["errors"]["timeout"], 5);
    assert_eq!(j["errors"].as_object().unwrap().len(), 2);
    assert_eq!(j["errors_total"], 7);
    assert_eq!(j["connects_per_sec"].as_f64().unwrap(), 8.0 / 2.5);
    assert_eq!(j["client_cpu_percent"].as_f64().unwrap(), 42.5);

    let lat = &j["latency_us"];
    assert_eq!(lat["count"], 1000);
    assert_eq!(lat["min"], 1);
    let f = |k: &str| lat[k].as_f64().unwrap();
    assert!(near(f("mean"), 500.5), "mean {}", f("mean"));
    assert!(near(f("p50"), 500.0), "p50 {}", f("p50"));
    assert!(near(f("p90"), 900.0), "p90 {}", f("p90"));
    assert!(near(f("p99"), 990.0), "p99 {}", f("p99"));
    assert!(near(f("p999"), 999.0), "p999 {}", f("p999"));
    assert!(near(f("p9999"), 1000.0), "p9999 {}", f("p9999"));
    assert!(near(f("max"), 1000.0), "max {}", f("max"));

    let c = &j["connect_latency_us"];
    assert_eq!(c["count"], 3);
    assert!(near(c["p50"].as_f64().unwrap(), 2500.0));
    assert!(near(c["max"].as_f64().unwrap(), 3500.0));
}

#[test]
fn json_of_empty_report_is_all_zeros() {
    let r = Report::new("connect", "ws://localhost:1/");
    let j: Value = serde_json::from_str(&r.to_json()).unwrap();
    for key in ["latency_us", "connect_latency_us"] {
        let o = j[key].as_object().unwrap();
        let keys = [
            "count", "min", "mean", "p50", "p90", "p99", "p999", "p9999", "max",
        ];
        assert_eq!(o.len(), keys.len());
        for k in keys {
            assert_eq!(o[k].as_f64(), Some(0.0), "{key}.{k}");
        }
    }
    assert_eq!(j["msgs_per_sec"].as_f64(), Some(0.0));
    assert_eq!(j["mib_per_sec"].as_f64(), Some(0.0));
    assert_eq!(j["connects_per_sec"].as_f64(), Some(0.0));
    assert_eq!(j["errors_total"], 0);
    assert!(j["errors"].as_object().unwrap().is_empty());
    assert!(j["client_cpu_percent"].is_null());
}

#[test]
fn json_escapes_and_rate() {
    let mut r = Report::new("rate", "ws://h/\"x\"\n");
    r.rate = Some(1000.0);
    let line = r.to_json();
    assert!(!line.contains('\n'));
    let j: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(j["url"], "ws://h/\"x\"\n");
    assert_eq!(j["rate"].as_f64(), Some(1000.0));
}

#[test]
fn histogram_bounds() {
    let mut h = new_histogram();
    assert!(!h.is_auto_resize());
    assert_eq!(h.sigfig(), 3);
    assert!(h.high() >= HIST_MAX_US);
    // Out-of-range samples saturate into the top bucket instead of being lost.
    h.saturating_record(10 * HIST_MAX_US);
    assert_eq!(h.len(), 1);
    assert!(h.record(10 * HIST_MAX_US).is_err());
}

#[test]
fn hgrm_format() {
    let h = uniform_1000();
    let mut out = Vec::new();
    write_hgrm(&h, 1.0, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "       Value     Percentile TotalCount 1/(1-Percentile)"
    );
    assert_eq!(lines[1], "");

    let rows: Vec<Vec<&str>> = lines[2..]
        .iter()
        .take_while(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.len() > 20, "{text}");
    let first = &rows[0];
    assert_eq!(first[0], "1.000");
    assert_eq!(first[1], "0.000000000000");
    let last = rows.last().unwrap();
    assert_eq!(last.len(), 3, "last row has no 1/(1-p): {last:?}");
    assert_eq!(last[0], "1000.000");
    assert_eq!(last[1], "1.000000000000");
    assert_eq!(last[2], "1000");
    // Percentiles and counts never go down.
    for pair in rows.windows(2) {
        let p = |r: &Vec<&str>| r[1].parse::<f64>().unwrap();
        let c = |r: &Vec<&str>| r[2].parse::<u64>().unwrap();
        assert!(p(&pair[1]) >= p(&pair[0]));
        assert!(c(&pair[1]) >= c(&pair[0]));
    }
    let p50 = rows.iter().find(|r| r[1] == "0.500000000000").unwrap();
    assert!(near(p50[0].parse().unwrap(), 500.0));
    assert_eq!(p50[3], "2.00");

    let footer: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("#["))
        .collect();
    assert_eq!(footer.len(), 3);
    assert!(
        footer[0].starts_with("#[Mean    =      500."),
        "{}",
        footer[0]
    );
    assert!(footer[0].contains("StdDeviation   ="));
    assert_eq!(
        footer[1],
        "#[Max     =     1000.000, Total count    =         1000]"
    );
    assert!(footer[2].starts_with("#[Buckets ="));
    assert!(footer[2].ends_with("SubBuckets     =         2048]"));
}

#[test]
fn hgrm_scaled_to_ms_and_empty() {
    let h = uniform_1000();
    let mut out = Vec::new();
    write_hgrm(&h, 1000.0, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("\n       1.000 1.000000000000       1000\n"),
        "{text}"
    );
    assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"));

    let mut out = Vec::new();
    write_hgrm(&new_histogram(), 1.0, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.contains("#[Max     =        0.000, Total count    =            0]"));
}

/// Numbers in every `points` attribute, checked finite and inside the canvas.
fn polyline_points(svg: &str) -> Vec<Vec<(f64, f64)>> {
    svg.split("<polyline")
        .skip(1)
        .map(|p| {
            let attr = p.split("points=\"").nth(1).unwrap();
            let attr = &attr[..attr.find('"').unwrap()];
            attr.split_whitespace()
                .map(|xy| {
                    let (x, y) = xy.split_once(',').unwrap();
                    let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                    assert!(x.is_finite() && y.is_finite());
                    assert!((0.0..=960.0).contains(&x) && (0.0..=560.0).contains(&y));
                    (x, y)
                })
                .collect()
        })
        .collect()
}

#[test]
fn svg_one_series() {
    let h = uniform_1000();
    let mut out = Vec::new();
    write_svg(&[("echo", &h)], "echo 64 B", &mut out).unwrap();
    let svg = String::from_utf8(out).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("echo 64 B"));
    assert!(svg.contains(">99.999%<") && svg.contains(">90%<") && svg.contains(">0%<"));
    assert!(svg.contains("Latency (µs)"));
    let lines = polyline_points(&svg);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].len() > 20);
    // Percentile rises to the right, latency rises upward (smaller y).
    let (first, last) = (lines[0][0], *lines[0].last().unwrap());
    assert!(last.0 > first.0 && last.1 < first.1);
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
}

#[test]
fn svg_two_series_ms_axis_escaping() {
    let a = uniform_1000();
    let mut b = new_histogram();
    for v in 1..=200_000u64 {
        b.record(v % 50_000 + 1).unwrap();
    }
    let mut out = Vec::new();
    write_svg(&[("ringwire", &a), ("peer <tokio>", &b)], "A & B", &mut out).unwrap();
    let svg = String::from_utf8(out).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains("A &amp; B"));
    assert!(svg.contains("peer &lt;tokio&gt;"));
    assert!(svg.contains("Latency (ms)"));
    // 200 000 samples need a sixth decade.
    assert!(svg.contains(">99.9999%<"));
    let lines = polyline_points(&svg);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.len() > 10));
}

#[test]
fn svg_empty_histograms_do_not_panic() {
    let e = new_histogram();
    let h = uniform_1000();
    for series in [
        vec![],
        vec![("empty", &e)],
        vec![("empty", &e), ("full", &h)],
    ] {
        let mut out = Vec::new();
        write_svg(&series, "empty", &mut out).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), series.len());
        assert_eq!(svg.contains("empty  (no samples)"), !series.is_empty());
        polyline_points(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}

#[test]
fn table_has_key_numbers() {
    let mut r = sample_report();
    r.rate = Some(5000.0);
    let t = r.table();
    for needle in [
        "echo",
        "ws://127.0.0.1:9001/echo",
        "10 requested, 8 opened",
        "12345 msgs",
        "4938.0 msg/s",
        "5000.0 msg/s",
        "42.5 %",
        "round trip",
        "500µs",
        "990µs",
        "1.00ms",
        "2.50ms",
        "refused",
        "timeout",
        "mismatches",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
    let line = |label: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap()
    };
    assert!(line("errors").ends_with(" 7"));
    assert!(line("refused").ends_with(" 2"));
    assert!(line("timeout").ends_with(" 5"));
    assert!(line("mismatches").ends_with(" 3"));
    // The two latency rows line up with the header.
    let header = line("latency");
    let rt = line("round trip");
    assert_eq!(
        header.chars().count(),
        rt.chars().count(),
        "\n{header}\n{rt}"
    );
    // An empty report renders too.
    assert!(Report::new("idle", "ws://x/").table().contains("errors"));
}

fn fanout_report() -> Report {
    let mut r = Report::new("fanout", "ws://127.0.0.1:9001/chat/bench");
    r.conns = 1003;
    r.connected = 1003;
    r.size = 64;
    r.text = true;
    r.rate = Some(2000.0);
    r.threads = 1;
    r.duration = Duration::from_secs(2);
    r.msgs = 3_999_000;
    r.bytes = 3_999_000 * 64;
    r.latency = uniform_1000();
    r.fanout = Some(Fanout {
        subscribers: 1000,
        publishers: 3,
        rooms: 2,
        published: 4000,
        expected_deliveries: 2_000_000 + 1_000_000,
        gaps: 5,
        duplicates: 1,
        undelivered: 7,
    });
    r
}

#[test]
fn fanout_json_keys() {
    let line = fanout_report().to_json();
    assert!(!line.contains('\n'));
    let j: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(j["mode"], "fanout");
    assert_eq!(j["msgs"], 3_999_000);
    assert_eq!(j["msgs_per_sec"].as_f64().unwrap(), 1_999_500.0);
    assert_eq!(j["subscribers"], 1000);
    assert_eq!(j["publishers"], 3);
    assert_eq!(j["rooms"], 2);
    assert_eq!(j["published"], 4000);
    assert_eq!(j["published_per_sec"].as_f64().unwrap(), 2000.0);
    assert_eq!(j["expected_deliveries"], 3_000_000);
    assert_eq!(j["gaps"], 5);
    assert_eq!(j["duplicates"], 1);
    assert_eq!(j["undelivered"], 7);
    assert_eq!(j["latency_us"]["count"], 1000);
    // The other modes' lines keep their keys and gain none.
    let echo: Value = serde_json::from_str(&sample_report().to_json()).unwrap();
    for k in [
        "subscribers",
        "published",
        "gaps",
        "duplicates",
        "undelivered",
    ] {
        assert!(echo.get(k).is_none(), "{k}");
    }
}

#[test]
fn fanout_table() {
    let t = fanout_report().table();
    for needle in [
        "fanout        1000 subscribers, 3 publishers, 2 rooms",
        "published     4000 msgs, 2000.0 msg/s",
        "deliveries    3999000 of 3000000 expected, 1999500.0 msg/s",
        "checks        5 gaps, 1 duplicates, 7 undelivered",
        "publish→deliv",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
    assert!(!t.contains("in flight/conn"), "{t}");
    assert!(!t.contains("round trip"), "{t}");
}

#[test]
fn progress_line_has_key_numbers() {
    let h = uniform_1000();
    let line = Report::progress_line(Duration::from_millis(3200), 98_765, &h, 4);
    assert!(line.contains("3.2s"), "{line}");
    assert!(line.contains("98765"), "{line}");
    assert!(line.contains("990µs"), "{line}");
    assert!(line.contains("errors 4"), "{line}");
    assert!(!line.contains('\n'));
    let empty = Report::progress_line(Duration::ZERO, 0, &new_histogram(), 0);
    assert!(empty.contains("p99") && empty.contains("0µs"));
}

#[test]
fn cpu_time_advances() {
    let before = process_cpu_time();
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(50) {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    let spent = process_cpu_time() - before;
    // The machine is shared, so only check that busy time shows up and is not absurd.
    assert!(spent > Duration::from_millis(5), "{spent:?}");
    assert!(spent < Duration::from_secs(5), "{spent:?}");
}
