//! `ringwire serve`: the demo server.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Args;
use ringwire::{
    Backend, Handler, HttpRequest, HttpResponse, Message, Metrics, Reject, Router, Server,
    UpgradeRequest, UpgradeResponse, WebSocket,
};

use crate::LogFormat;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Reactor threads (default: one per core).
    #[arg(long)]
    reactors: Option<usize>,
    /// I/O backend: auto, uring or epoll. auto (the default) uses
    /// io_uring when the kernel allows it and says in the log why it falls
    /// back to epoll otherwise; RINGWIRE_BACKEND works too.
    #[arg(long)]
    backend: Option<Backend>,
    /// Most open connections over all reactors (503 above).
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Most open connections per reactor (503 above).
    #[arg(long, default_value_t = 100_000)]
    max_connections_per_reactor: usize,
    /// Seconds from accept to a complete request (then closed).
    #[arg(long, default_value_t = 10.0)]
    handshake_timeout: f64,
    /// Close WebSocket connections that receive nothing for this many
    /// seconds (1001; 0: never).
    #[arg(long, default_value_t = 0.0)]
    idle_timeout: f64,
    /// Ping a silent WebSocket peer after this many seconds; close (1001)
    /// when no pong comes within --ping-timeout (0: never).
    #[arg(long, default_value_t = 0.0)]
    ping_interval: f64,
    /// Seconds a ping may go unanswered.
    #[arg(long, default_value_t = 10.0)]
    ping_timeout: f64,
    /// Seconds an idle kept-alive HTTP connection is kept.
    #[arg(long, default_value_t = 15.0)]
    keep_alive_timeout: f64,
    /// What passing --max-buffered (or the --max-output budget) does:
    /// close (1008 after what was queued) or drop (the message is dropped
    /// and counted).
    #[arg(long, default_value = "close")]
    overflow: ringwire::OverflowPolicy,
    /// Largest message in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_message_size: usize,
    /// Pin reactor threads to cores.
    #[arg(long)]
    pin: bool,
    /// One SO_REUSEPORT listener per reactor instead of an acceptor thread.
    #[arg(long)]
    reuse_port: bool,
    /// Hard cap on one connection's send queue in bytes (past it the
    /// connection is closed with 1008).
    #[arg(long, default_value_t = 4 << 20)]
    max_buffered: usize,
    /// Global output budget in bytes over all connections: while it is
    /// exhausted, connections holding more than their fair share are shed.
    #[arg(long, default_value_t = 256 << 20)]
    max_output: usize,
    /// TCP_NOTSENT_LOWAT in bytes for new connections: how much unsent
    /// data the kernel takes beyond what the peer's window allows, lifted
    /// once a peer proves a wide-open window (0: never set).
    #[arg(long, default_value_t = 128 << 10)]
    tcp_notsent_lowat: u32,
    /// Seconds a peer has to answer our close frame, read our last bytes
    /// and send its FIN before the connection is cut.
    #[arg(long, default_value_t = 5.0)]
    close_timeout: f64,
    /// Seconds allowed for the shutdown (close handshakes) after SIGTERM.
    #[arg(long, default_value_t = 5.0)]
    grace: f64,
    /// Receive buffer size in bytes (io_uring: each provided buffer;
    /// epoll: the reactor's shared buffer).
    #[arg(long, default_value_t = 64 << 10)]
    recv_buffer: usize,
    /// Serve wss:// with this certificate chain (PEM; with --tls-key).
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key for --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Serve wss:// with a fresh self-signed certificate for localhost,
    /// 127.0.0.1 and ::1 (demos): prints its SHA-256 fingerprint and
    /// where it wrote the PEM files.
    #[arg(long)]
    tls_self_signed: bool,
    /// Negotiate permessage-deflate (RFC 7692) with clients that offer it
    /// (browsers do).
    #[arg(long)]
    deflate: bool,
    /// With --deflate: one compressor/decompressor per reactor shared by
    /// all connections (no context takeover; no compression memory per
    /// idle connection).
    #[arg(long, requires = "deflate")]
    deflate_shared: bool,
    /// With --deflate: messages smaller than this many bytes go
    /// uncompressed.
    #[arg(long, requires = "deflate")]
    deflate_threshold: Option<usize>,
    /// With --deflate: compression level 0-9 (default 1).
    #[arg(long, requires = "deflate")]
    deflate_level: Option<u32>,
    /// With --deflate: our compressor's window bits 8-15 (default 15;
    /// memory: see BENCHMARKS.md / the parser's `compressor_memory`).
    #[arg(long, requires = "deflate")]
    deflate_window_bits: Option<u8>,
    /// With --deflate: zlib memLevel 1-9 for our compressor (default 8).
    #[arg(long, requires = "deflate")]
    deflate_mem_level: Option<u8>,
    /// Serve the files of this directory at / (index.html for
    /// directories, ETag/Last-Modified/304, Range; nothing outside it);
    /// without it / is the demo page.
    #[arg(long = "static", value_name = "DIR")]
    static_dir: Option<std::path::PathBuf>,
    /// Largest HTTP request body in bytes (413 above it).
    #[arg(long, default_value_t = 8 << 20)]
    max_request_body: usize,
    /// Log one line per HTTP request and per WebSocket session (target
    /// `ringwire::access`: peer, method, path, status, bytes, duration,
    /// close code) at INFO. Off otherwise, whatever RUST_LOG says.
    #[arg(long)]
    pub access_log: bool,
    /// Serve the engine's counters at /metrics (Prometheus text format
    /// 0.0.4: per reactor and total).
    #[arg(long)]
    metrics: bool,
    /// Join other nodes through a broker: nats://HOST:PORT or
    /// redis://HOST:PORT. Every publish (the /chat/{room} rooms) reaches
    /// the subscribers on every node using the same broker; if it is
    /// unreachable the server still starts, serves its own rooms and keeps
    /// retrying.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
}

/// A directory removed (with its files) when this is dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What --tls-self-signed prints, and where the certificate went.
type SelfSignedNote = Option<(String, std::path::PathBuf)>;

/// Builds the TLS configuration the flags ask for (and, for
/// --tls-self-signed, writes the certificate and key where a client can
/// find them).
fn tls_config(a: &ServeArgs) -> std::io::Result<Option<(ringwire::ServerTls, SelfSignedNote)>> {
    let err = |e: ringwire::tls::TlsError| std::io::Error::other(e.to_string());
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        return ringwire::ServerTls::from_pem_files(cert, key)
            .map(|t| Some((t, None)))
            .map_err(err);
    }
    if !a.tls_self_signed {
        return Ok(None);
    }
    let (tls, cert) = ringwire::ServerTls::self_signed_localhost().map_err(err)?;
    let dir = std::env::temp_dir().join(format!("ringwire-self-signed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert.cert_pem)?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_path)?;
        f.write_all(cert.key_pem.as_bytes())?;
    }
    let note = format!(
        "ringwire serve: self-signed certificate for localhost, 127.0.0.1, ::1\n  \
         SHA-256 fingerprint: {}\n  certificate: {}\n  key: {}",
        cert.sha256_fingerprint,
        cert_path.display(),
        key_path.display(),
    );
    Ok(Some((tls, Some((note, cert_path)))))
}

const PAGE: &str = include_str!("page.html");

/// Most bytes of a room name (the rest of the path after `/chat/`).
const MAX_ROOM: usize = 128;

/// `/echo`: every message comes back.
struct EchoWs;

impl Handler for EchoWs {
    type Conn = ();

    fn on_upgrade(
        &mut self,
        _: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<(), Reject> {
        Ok(())
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        let _ = ws.send(&msg);
    }
}

/// `/chat/{room}` (`/chat`: the room with the empty name): every text
/// message goes to every member of the room, sender included, in order.
/// The connection's state is its topic, `chat/{room}`.
struct ChatWs;

impl Handler for ChatWs {
    type Conn = String;

    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<String, Reject> {
        let room = req.param("room").unwrap_or("");
        if room.len() > MAX_ROOM {
            return Err(Reject::new(
                400,
                format!("a room name is at most {MAX_ROOM} bytes, without '/'\n"),
            ));
        }
        Ok(format!("chat/{room}"))
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, String>) {
        let topic = ws.state().clone();
        ws.subscribe(topic);
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, String>, msg: Message<'_>) {
        if msg.is_text() {
            // Framed once for the room: one mailbox entry per reactor with
            // members (see `WebSocket::subscribe`); the sender gets its own
            // copy straight away. A reactor whose mailbox is full misses it
            // (`mailbox_refused`); a member that does not read meets the
            // send-queue cap.
            let topic = ws.state().clone();
            let _ = ws.publish(&topic, &msg);
            let _ = ws.send(&msg);
        }
    }
}

/// What the routes share (one per reactor: the router is built by each
/// reactor's factory call).
#[derive(Clone)]
struct Site {
    /// `--static DIR`.
    files: Option<Arc<ringwire::StaticFiles>>,
    /// With --metrics: the engine's counters, set once the server has
    /// started (a scrape before that gets 503).
    metrics: Option<Arc<OnceLock<Metrics>>>,
}

/// The demo's routes: the documented example of [`Router`].
fn routes(site: &Site) -> Router {
    let mut r = Router::new()
        .ws("/echo", EchoWs)
        .ws("/chat", ChatWs)
        .ws("/chat/{room}", ChatWs)
        // A plain POST to /echo: the request body comes back (the simplest
        // way to try bodies with curl).
        .post("/echo", |req: &HttpRequest<'_>, res: &mut HttpResponse| {
            let ct = req
                .header("Content-Type")
                .and_then(|v| std::str::from_utf8(v).ok())
                .unwrap_or("application/octet-stream");
            res.header("Content-Type", ct.to_owned());
            res.body(req.body().to_vec());
        });
    if let Some(m) = &site.metrics {
        let m = m.clone();
        r = r.get(
            "/metrics",
            move |_: &HttpRequest<'_>, res: &mut HttpResponse| match m.get() {
                Some(m) => {
                    res.header("Content-Type", ringwire::PROMETHEUS_CONTENT_TYPE);
                    res.body(m.prometheus());
                }
                None => {
                    res.status = 503;
                    res.body("starting\n");
                }
            },
        );
    }
    match &site.files {
        Some(files) => {
            let files = files.clone();
            r.fallback(move |req: &HttpRequest<'_>, res: &mut HttpResponse| files.serve(req, res))
        }
        None => {
            let page = |_: &HttpRequest<'_>, res: &mut HttpResponse| {
                res.header("Content-Type", "text/html; charset=utf-8");
                res.body(PAGE);
            };
            r.get("/", page).get("/index.html", page)
        }
    }
}

pub fn run(a: ServeArgs, log: LogFormat) -> std::io::Result<()> {
    let mut b = Server::builder()
        .bind(a.listen)
        .max_message_size(a.max_message_size)
        .max_frame_size(a.max_message_size)
        .pin_cores(a.pin)
        .reuse_port(a.reuse_port)
        .recv_buffer_size(a.recv_buffer.clamp(4096, 16 << 20))
        .max_buffered(a.max_buffered)
        .max_output_bytes(a.max_output)
        .tcp_notsent_lowat((a.tcp_notsent_lowat > 0).then_some(a.tcp_notsent_lowat))
        .close_timeout(Duration::from_secs_f64(a.close_timeout.clamp(0.01, 3600.0)));
    if a.deflate {
        let mut d = ringwire::PermessageDeflate {
            shared: a.deflate_shared,
            ..Default::default()
        };
        if let Some(t) = a.deflate_threshold {
            d.config.threshold = t;
        }
        if let Some(l) = a.deflate_level {
            d.config.level = l.min(9);
        }
        if let Some(w) = a.deflate_window_bits {
            d.config.max_window_bits = w.clamp(8, 15);
        }
        if let Some(m) = a.deflate_mem_level {
            d.config.mem_level = m.clamp(1, 9);
        }
        b = b.permessage_deflate(d);
    }
    let tls = tls_config(&a)?;
    let secure = tls.is_some();
    let mut note: SelfSignedNote = None;
    if let Some((t, n)) = tls {
        b = b.tls(t);
        note = n;
    }
    // --tls-self-signed's certificate and key go when the server does
    // (also when it fails to start).
    let _remove_self_signed = note
        .as_ref()
        .and_then(|(_, cert)| cert.parent())
        .map(|dir| RemoveOnDrop(dir.to_path_buf()));
    if let Some(n) = a.reactors {
        b = b.reactors(n);
    }
    if let Some(k) = a.backend {
        b = b.backend(k);
    }
    let files = match &a.static_dir {
        Some(dir) => Some(Arc::new(ringwire::StaticFiles::new(dir).map_err(|e| {
            std::io::Error::new(e.kind(), format!("--static {}: {e}", dir.display()))
        })?)),
        None => None,
    };
    let secs = |s: f64| Duration::from_secs_f64(s.clamp(0.001, 86_400.0));
    let optional = |s: f64| (s > 0.0).then(|| secs(s));
    b = b
        .max_request_body(a.max_request_body)
        .max_connections(a.max_connections.max(1))
        .max_connections_per_reactor(a.max_connections_per_reactor.max(1))
        .handshake_timeout(secs(a.handshake_timeout))
        .idle_timeout(optional(a.idle_timeout))
        .ping_interval(optional(a.ping_interval))
        .ping_timeout(secs(a.ping_timeout))
        .keep_alive_timeout(secs(a.keep_alive_timeout))
        .overflow(a.overflow);
    // Connecting happens on the broker's own thread: this never waits for
    // the network.
    let broker = match &a.broker {
        Some(url) => Some(ringwire_broker::Broker::connect(
            url,
            ringwire_broker::BrokerOptions::default(),
        )?),
        None => None,
    };
    if let Some(br) = &broker {
        b = b.broker(br.sink());
    }
    let metrics = a.metrics.then(|| Arc::new(OnceLock::new()));
    let site = Site {
        files,
        metrics: metrics.clone(),
    };
    let server = b.start(move |_| routes(&site))?;
    if let Some(br) = &broker {
        br.attach(server.broker_inbox());
    }
    if let Some(m) = &metrics {
        let _ = m.set(server.metrics());
    }
    let (http, ws) = if secure {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    if let Some((cert_note, cert_path)) = note {
        let msg = format!(
            "{cert_note}\n  try: ringwire load echo wss://localhost:{}/echo --ca {}",
            server.local_addr().port(),
            cert_path.display()
        );
        crate::note(log, &msg);
    }
    let metrics_url = if a.metrics {
        format!(", {http}://{}/metrics", server.local_addr())
    } else {
        String::new()
    };
    let broker_note = match &broker {
        Some(br) => format!(", broker {} (node {:016x})", br.url(), br.node_id()),
        None => String::new(),
    };
    crate::note(
        log,
        &format!(
            "ringwire serve: {http}://{0}/ (browser page), {ws}://{0}/echo, {ws}://{0}/chat/{{room}}{metrics_url}  [backend {1}{broker_note}]",
            server.local_addr(),
            server.backend()
        ),
    );
    server.wait_for_signal();
    crate::note(
        log,
        "ringwire serve: shutting down (1001 to every connection)",
    );
    let stats = server.stats();
    server.shutdown(Duration::from_secs_f64(a.grace.clamp(0.0, 3600.0)));
    crate::note(log, &format!("ringwire serve: stopped; {stats:?}"));
    if let Some(br) = broker {
        crate::note(log, &format!("ringwire serve: broker {:?}", br.stats()));
        br.shutdown();
    }
    Ok(())
}
