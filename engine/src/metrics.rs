//! Prometheus metrics: the HTTP counters the reactors keep ([`HttpStats`])
//! and the text exposition format 0.0.4 of every counter
//! ([`ServerHandle::prometheus`](crate::ServerHandle::prometheus)).
//!
//! The text format is written by hand (this file) rather than through the
//! `prometheus-client` crate: the counters already exist (each reactor
//! keeps plain integers and publishes them once per loop iteration into
//! its [`ReactorStats`](crate::handle::ReactorStats) atomics), so a
//! registry of its own metric objects would mean keeping every number
//! twice. What the format needs is small and exact here: `# HELP` and
//! `# TYPE` once per family, label values escaped (`\\`, `\"`, `\n`),
//! HELP text escaped (`\\`, `\n`), histograms as cumulative `_bucket`
//! samples with `le` (the last one `+Inf`, equal to `_count`), `_sum` and
//! `_count`. No `# EOF` (that is OpenMetrics, not 0.0.4).
//!
//! Every family has one sample per reactor (`reactor="0"`, `"1"`, …) and
//! one with `reactor="total"` (their sum), so a scrape read by eye or by
//! `curl` shows the server at once; in PromQL select one or the other
//! (`{reactor="total"}` or `{reactor!="total"}`), or a `sum` counts twice.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::handle::{ReactorShared, StatsSnapshot};

/// The `Content-Type` of [`ServerHandle::prometheus`](crate::ServerHandle::prometheus)'s
/// text (the Prometheus text exposition format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the HTTP latency histogram's buckets (the last bucket,
/// `+Inf`, takes the rest): 100 µs to 10 s.
pub const HTTP_LATENCY_BOUNDS: [Duration; 16] = [
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2_500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2_500),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// Buckets of the HTTP latency histogram: one per bound and `+Inf`.
pub const HTTP_LATENCY_BUCKETS: usize = HTTP_LATENCY_BOUNDS.len() + 1;

/// HTTP requests answered (plain HTTP and refused upgrades; not 101s):
/// by status class and by latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]` (a status
    /// outside 100–599 counts as 5xx).
    pub responses: [u64; 5],
    /// Request latency (from the complete request to the response
    /// queued): responses per bucket, *not* cumulative. Bucket `i <
    /// 16` holds latencies in `(HTTP_LATENCY_BOUNDS[i - 1],
    /// HTTP_LATENCY_BOUNDS[i]]`, the last one those above 10 s.
    pub latency: [u64; HTTP_LATENCY_BUCKETS],
    /// Sum of the latencies in nanoseconds.
    pub latency_sum_ns: u64,
}

impl HttpStats {
    /// Counts one answered request.
    #[inline]
    pub(crate) fn record(&mut self, status: u16, took: Duration) {
        let class = match status {
            100..=599 => (status / 100 - 1) as usize,
            _ => 4,
        };
        self.responses[class] += 1;
        let bucket = HTTP_LATENCY_BOUNDS.partition_point(|b| *b < took);
        self.latency[bucket] += 1;
        self.latency_sum_ns = self
            .latency_sum_ns
            .saturating_add(took.as_nanos().min(u64::MAX as u128) as u64);
    }

    /// Requests answered.
    pub fn count(&self) -> u64 {
        self.latency.iter().sum()
    }

    /// True when nothing was counted (the reactors skip publishing then).
    pub(crate) fn is_empty(&self) -> bool {
        self.latency.iter().all(|&n| n == 0)
    }
}

impl std::ops::Add for HttpStats {
    type Output = HttpStats;
    fn add(mut self, o: HttpStats) -> HttpStats {
        for (a, b) in self.responses.iter_mut().zip(o.responses) {
            *a += b;
        }
        for (a, b) in self.latency.iter_mut().zip(o.latency) {
            *a += b;
        }
        self.latency_sum_ns = self.latency_sum_ns.saturating_add(o.latency_sum_ns);
        self
    }
}

/// A view of a running engine's counters for any thread, cheap to clone
/// (from [`ServerHandle::metrics`](crate::ServerHandle::metrics)): what a
/// handler that serves `/metrics` keeps. It reads the counters only; the
/// engine stops when its handle says so, whoever holds one of these.
#[derive(Clone)]
pub struct Metrics {
    pub(crate) reactors: Arc<[Arc<ReactorShared>]>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("reactors", &self.reactors.len())
            .finish()
    }
}

impl Metrics {
    /// Counters per reactor.
    pub fn reactor_stats(&self) -> Vec<StatsSnapshot> {
        self.reactors.iter().map(|r| r.stats.snapshot()).collect()
    }

    /// Counters summed over reactors.
    pub fn stats(&self) -> StatsSnapshot {
        self.reactor_stats()
            .into_iter()
            .fold(StatsSnapshot::default(), |a, b| a + b)
    }

    /// Every counter in the Prometheus text format 0.0.4, per reactor
    /// and in total (see [`ServerHandle::prometheus`](crate::ServerHandle::prometheus)).
    pub fn prometheus(&self) -> String {
        render(&self.reactor_stats())
    }
}

/// Prometheus metric types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes the text exposition format: families (HELP, TYPE) and their
/// samples, escaped.
#[derive(Debug, Default)]
pub(crate) struct TextWriter {
    out: String,
}

impl TextWriter {
    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "metric name {name:?}");
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.name());
        self.out.push('\n');
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_label_name(k), "label name {k:?}");
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value {
            Value::Int(n) => {
                let _ = write!(self.out, "{n}");
            }
            Value::Float(f) => push_float(&mut self.out, f),
        }
        self.out.push('\n');
    }

    /// A histogram's samples for one label set: cumulative `_bucket`s
    /// (`le` from `bounds`, then `+Inf`), `_sum`, `_count`. `counts` holds
    /// each bucket's own count (not cumulative), one more than `bounds`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        debug_assert_eq!(counts.len(), bounds.len() + 1);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (i, &n) in counts.iter().enumerate() {
            cumulative += n;
            let mut le = String::new();
            match bounds.get(i) {
                Some(&b) => push_float(&mut le, b),
                None => le.push_str("+Inf"),
            }
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, Value::Int(cumulative));
        }
        self.sample(&format!("{name}_sum"), labels, Value::Float(sum));
        self.sample(&format!("{name}_count"), labels, Value::Int(cumulative));
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample's value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value {
    Int(u64),
    Float(f64),
}

/// Go's `ParseFloat` reads what Rust's `Display` writes for finite values
/// (no exponent); the special values have their own spellings.
fn push_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f == f64::INFINITY {
        out.push_str("+Inf");
    } else if f == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{f}");
    }
}

fn valid_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One scalar metric: its name, type, help and how to read it from a
/// snapshot.
struct Scalar {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    get: Getter,
}

const SCALARS: &[Scalar] = &[
    Scalar {
        name: "ringwire_connections_open",
        kind: Kind::Gauge,
        help: "Open connections (in the handshake or WebSocket).",
        get: |s| s.open as u64,
    },
    Scalar {
        name: "ringwire_connections_accepted_total",
        kind: Kind::Counter,
        help: "Connections accepted.",
        get: |s| s.accepted,
    },
    Scalar {
        name: "ringwire_connections_upgraded_total",
        kind: Kind::Counter,
        help: "WebSocket upgrades completed (server and client).",
        get: |s| s.upgraded,
    },
    Scalar {
        name: "ringwire_received_messages_total",
        kind: Kind::Counter,
        help: "WebSocket messages received.",
        get: |s| s.msgs_in,
    },
    Scalar {
        name: "ringwire_sent_messages_total",
        kind: Kind::Counter,
        help: "WebSocket messages queued for sending.",
        get: |s| s.msgs_out,
    },
    Scalar {
        name: "ringwire_received_bytes_total",
        kind: Kind::Counter,
        help: "Bytes read from sockets (TLS: ciphertext).",
        get: |s| s.bytes_in,
    },
    Scalar {
        name: "ringwire_sent_bytes_total",
        kind: Kind::Counter,
        help: "Bytes written to sockets (TLS: ciphertext).",
        get: |s| s.bytes_out,
    },
    Scalar {
        name: "ringwire_send_queue_overflows_total",
        kind: Kind::Counter,
        help: "Sends refused or connections closed by the send-queue cap or the output budget.",
        get: |s| s.overflows,
    },
    Scalar {
        name: "ringwire_mailbox_refused_total",
        kind: Kind::Counter,
        help: "Cross-thread sends (ConnHandle, publish) refused at a full reactor mailbox.",
        get: |s| s.mailbox_refused,
    },
    Scalar {
        name: "ringwire_queued_bytes",
        kind: Kind::Gauge,
        help: "Bytes queued for sending now.",
        get: |s| s.queued_bytes as u64,
    },
];

/// Errors by kind: the `kind` label's value and how to read it.
/// Reads one counter from a snapshot.
type Getter = fn(&StatsSnapshot) -> u64;

const ERRORS: &[(&str, Getter)] = &[
    ("protocol", |s| s.protocol_errors),
    ("handshake", |s| s.handshake_errors),
    ("panic", |s| s.panics),
    ("timeout", |s| s.timeouts),
];

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Renders the counters of each reactor (index = reactor number) and
/// their sum in the Prometheus text format 0.0.4.
pub(crate) fn render(per_reactor: &[StatsSnapshot]) -> String {
    let total = per_reactor
        .iter()
        .fold(StatsSnapshot::default(), |a, &b| a + b);
    let names: Vec<String> = (0..per_reactor.len()).map(|i| i.to_string()).collect();
    let rows: Vec<(&str, &StatsSnapshot)> = names
        .iter()
        .map(String::as_str)
        .zip(per_reactor)
        .chain(std::iter::once(("total", &total)))
        .collect();
    let mut w = TextWriter::default();
    for m in SCALARS {
        w.family(m.name, m.kind, m.help);
        for &(r, s) in &rows {
            w.sample(m.name, &[("reactor", r)], Value::Int((m.get)(s)));
        }
    }
    let name = "ringwire_errors_total";
    w.family(
        name,
        Kind::Counter,
        "Connections failed or refused, by kind: protocol (1002/1007/1009), handshake (refused upgrades, bad requests), panic (handler panics), timeout (closed by a timer).",
    );
    for &(r, s) in &rows {
        for (kind, get) in ERRORS {
            w.sample(name, &[("reactor", r), ("kind", kind)], Value::Int(get(s)));
        }
    }
    let name = "ringwire_http_requests_total";
    w.family(
        name,
        Kind::Counter,
        "HTTP requests answered (not upgrades), by status class.",
    );
    for &(r, s) in &rows {
        for (class, &n) in STATUS_CLASSES.iter().zip(&s.http.responses) {
            w.sample(name, &[("reactor", r), ("code", class)], Value::Int(n));
        }
    }
    let name = "ringwire_http_request_duration_seconds";
    w.family(
        name,
        Kind::Histogram,
        "HTTP request latency: from the complete request to the response queued.",
    );
    let bounds: Vec<f64> = HTTP_LATENCY_BOUNDS
        .iter()
        .map(Duration::as_secs_f64)
        .collect();
    for &(r, s) in &rows {
        let sum = s.http.latency_sum_ns as f64 / 1e9;
        w.histogram(name, &[("reactor", r)], &bounds, &s.http.latency, sum);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut w = TextWriter::default();
        w.family("m_total", Kind::Counter, "a \\ back\nslash \"quote\"");
        w.sample(
            "m_total",
            &[("path", "a\\b\"c\nd"), ("x", "é")],
            Value::Int(3),
        );
        assert_eq!(
            w.finish(),
            "# HELP m_total a \\\\ back\\nslash \"quote\"\n\
             # TYPE m_total counter\n\
             m_total{path=\"a\\\\b\\\"c\\nd\",x=\"é\"} 3\n"
        );
    }

    #[test]
    fn floats_are_written_as_go_reads_them() {
        let mut s = String::new();
        for f in [
            0.0001,
            2.5,
            10.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            push_float(&mut s, f);
            s.push(' ');
        }
        assert_eq!(s, "0.0001 2.5 10 +Inf -Inf NaN ");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_count() {
        let mut w = TextWriter::default();
        w.family("h_seconds", Kind::Histogram, "h");
        w.histogram("h_seconds", &[("r", "0")], &[0.1, 1.0], &[2, 0, 3], 7.5);
        assert_eq!(
            w.finish(),
            "# HELP h_seconds h\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{r=\"0\",le=\"0.1\"} 2\n\
             h_seconds_bucket{r=\"0\",le=\"1\"} 2\n\
             h_seconds_bucket{r=\"0\",le=\"+Inf\"} 5\n\
             h_seconds_sum{r=\"0\"} 7.5\n\
             h_seconds_count{r=\"0\"} 5\n"
        );
    }

    #[test]
    fn http_record_picks_class_and_bucket() {
        let mut h = HttpStats::default();
        h.record(200, Duration::from_micros(100)); // on the bound: ≤ 100 µs
        h.record(204, Duration::from_micros(101));
        h.record(404, Duration::from_secs(11)); // past the last bound
        h.record(503, Duration::ZERO);
        h.record(999, Duration::from_secs(10)); // odd status: 5xx
        h.record(101, Duration::from_millis(1));
        assert_eq!(h.responses, [1, 2, 0, 1, 2]);
        assert_eq!(h.latency[0], 2);
        assert_eq!(h.latency[1], 1);
        assert_eq!(h.latency[3], 1);
        assert_eq!(h.latency[15], 1);
        assert_eq!(h.latency[16], 1);
        assert_eq!(h.count(), 6);
        let sum = 100_000 + 101_000 + 11_000_000_000 + 10_000_000_000 + 1_000_000;
        assert_eq!(h.latency_sum_ns, sum);
        let twice = h + h;
        assert_eq!(twice.count(), 12);
        assert_eq!(twice.latency_sum_ns, 2 * sum);
        assert_eq!(twice.responses, [2, 4, 0, 2, 4]);
    }

    #[test]
    fn render_has_every_family_per_reactor_and_total() {
        let mut a = StatsSnapshot {
            open: 2,
            accepted: 5,
            panics: 1,
            ..Default::default()
        };
        a.http.record(200, Duration::from_millis(3));
        let mut b = StatsSnapshot {
            open: 1,
            accepted: 4,
            ..Default::default()
        };
        b.http.record(404, Duration::from_millis(30));
        b.http.record(200, Duration::from_micros(50));
        let text = render(&[a, b]);
        for line in [
            "ringwire_connections_open{reactor=\"0\"} 2",
            "ringwire_connections_open{reactor=\"1\"} 1",
            "ringwire_connections_open{reactor=\"total\"} 3",
            "ringwire_connections_accepted_total{reactor=\"total\"} 9",
            "ringwire_errors_total{reactor=\"0\",kind=\"panic\"} 1",
            "ringwire_errors_total{reactor=\"total\",kind=\"panic\"} 1",
            "ringwire_http_requests_total{reactor=\"total\",code=\"2xx\"} 2",
            "ringwire_http_requests_total{reactor=\"1\",code=\"4xx\"} 1",
            "ringwire_http_request_duration_seconds_bucket{reactor=\"total\",le=\"0.0001\"} 1",
            "ringwire_http_request_duration_seconds_bucket{reactor=\"total\",le=\"0.005\"} 2",
            "ringwire_http_request_duration_seconds_bucket{reactor=\"total\",le=\"+Inf\"} 3",
            "ringwire_http_request_duration_seconds_count{reactor=\"total\"} 3",
            "ringwire_http_request_duration_seconds_sum{reactor=\"total\"} 0.03305",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // One HELP and one TYPE per family, before its samples.
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, SCALARS.len() + 3);
        assert_eq!(helps, types);
        assert!(text.ends_with('\n') && !text.contains("# EOF"));
    }
}
