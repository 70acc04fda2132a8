//! The router on a real server (both backends): two WebSocket routes with
//! different `Conn` types and path parameters (seen in `on_upgrade` and on
//! the connection), HTTP routes with parameters and a catch-all, and the
//! answers the router gives itself: 404, 405 with `Allow`, 426 for a plain
//! GET to a WebSocket route, 404 for an upgrade to an HTTP-only path.
//! Plain requests send `Connection: close` (one request per connection),
//! except on the keep-alive connection that visits every kind of answer.

use ringwire::{Router, UpgradeRequest, UpgradeResponse, WebSocket};
use ringwire_tests::*;

/// `/chat/{room}`: the state is the room, taken from the request's
/// parameter in `on_upgrade`; answers `state|ws.param(room)|message`.
struct Chat(Recorder<String>);

impl Handler for Chat {
    type Conn = String;
    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<String, Reject> {
        let room = req.param("room").expect("the route has a room").to_owned();
        self.0.push(format!("upgrade chat {room}"));
        Ok(room)
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, String>, msg: Message<'_>) {
        let text = String::from_utf8_lossy(msg.as_bytes()).into_owned();
        let param = ws.param("room").unwrap_or("none").to_owned();
        let answer = format!("{}|{param}|{text}", ws.state());
        let _ = ws.send_text(&answer);
    }
    fn on_close(&mut self, ws: &mut WebSocket<'_, String>, code: CloseCode, _: &str) {
        self.0
            .push(format!("close chat {} {}", ws.state(), code.as_u16()));
    }
}

/// `/count/{start}`: the state is a counter starting at the parameter
/// (anything but a number is refused with 400); each message is answered
/// with the next value.
struct Count(Recorder<String>);

impl Handler for Count {
    type Conn = u64;
    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        _: &mut UpgradeResponse,
    ) -> Result<u64, Reject> {
        let start = req.param("start").unwrap_or_default();
        start
            .parse()
            .map_err(|_| Reject::new(400, format!("not a number: {start}\n")))
    }
    fn on_message(&mut self, ws: &mut WebSocket<'_, u64>, _: Message<'_>) {
        *ws.state() += 1;
        let n = *ws.state();
        let answer = format!("{n} {:?}", ws.param("start"));
        let _ = ws.send_text(&answer);
    }
    fn on_close(&mut self, ws: &mut WebSocket<'_, u64>, code: CloseCode, _: &str) {
        self.0
            .push(format!("close count {} {}", ws.state(), code.as_u16()));
    }
}

fn router(rec: Recorder<String>) -> Router {
    Router::new()
        .ws("/chat/{room}", Chat(rec.clone()))
        .ws("/count/{start}", Count(rec))
        .get("/", |_, res| {
            res.body("home\n");
        })
        .get("/users/{id}", |req, res| {
            res.body(format!("user {}\n", req.param("id").unwrap()));
        })
        .post("/users", |_, res| {
            res.status = 201;
            res.body("created\n");
        })
        .get("/files/{*rest}", |req, res| {
            res.header("Content-Type", "text/plain")
                .body(format!("file {}\n", req.param("rest").unwrap()));
        })
}

fn server(backend: Backend) -> (ServerHandle<ringwire::RouteConn>, Recorder<String>) {
    let rec = Recorder::new();
    let r = rec.clone();
    (start(builder(backend), move |_| router(r.clone())), rec)
}

/// A plain request on a connection of its own.
fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> HttpResponse {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http_exchange(addr, req.as_bytes())
}

fn websocket_routes(backend: Backend) {
    let (server, rec) = server(backend);
    let addr = server.local_addr();
    let mut lobby = RawClient::connect_path(addr, "/chat/lobby");
    let mut count = RawClient::connect_path(addr, "/count/41?x=y");
    let mut kitchen = RawClient::connect_path(addr, "/chat/kitchen");
    lobby.send_text("hi");
    count.send_text("a");
    kitchen.send_text("yo");
    assert_eq!(lobby.expect_frame(), Frame::Text("lobby|lobby|hi".into()));
    assert_eq!(count.expect_frame(), Frame::Text("42 Some(\"41\")".into()));
    assert_eq!(
        kitchen.expect_frame(),
        Frame::Text("kitchen|kitchen|yo".into())
    );
    count.send_text("b");
    assert_eq!(count.expect_frame(), Frame::Text("43 Some(\"41\")".into()));
    lobby.send_close(Some(4001), "");
    count.send_close(Some(4002), "");
    kitchen.send_close(Some(4003), "");
    for c in [&mut lobby, &mut count, &mut kitchen] {
        c.expect_close();
    }
    let mut seen = rec.wait_for("three closes", |s| {
        s.iter().filter(|l| l.starts_with("close")).count() == 3
    });
    seen.sort();
    assert_eq!(
        seen,
        [
            "close chat kitchen 4003",
            "close chat lobby 4001",
            "close count 43 4002",
            "upgrade chat kitchen",
            "upgrade chat lobby",
        ]
    );
    // The route's own rejection.
    let res = http_exchange(addr, &upgrade_request(addr, "/count/many", ""));
    assert_eq!(res.status, 400, "{res:?}");
    assert_eq!(res.body, b"not a number: many\n");
    stop(server);
}

fn http_routes(backend: Backend) {
    let (server, _) = server(backend);
    let addr = server.local_addr();
    let res = request(addr, "GET", "/");
    assert_eq!((res.status, &res.body[..]), (200, &b"home\n"[..]));
    let res = request(addr, "GET", "/users/7?full=1");
    assert_eq!((res.status, &res.body[..]), (200, &b"user 7\n"[..]));
    let res = request(addr, "POST", "/users");
    assert_eq!((res.status, &res.body[..]), (201, &b"created\n"[..]));
    let res = request(addr, "GET", "/files/docs/a%20b/c.txt");
    assert_eq!(res.status, 200);
    assert_eq!(res.body, b"file docs/a%20b/c.txt\n");
    assert_eq!(res.header("Content-Type"), Some("text/plain"));
    stop(server);
}

fn answers_of_the_router(backend: Backend) {
    let (server, rec) = server(backend);
    let addr = server.local_addr();
    for (method, path) in [("GET", "/nope"), ("GET", "/files"), ("POST", "/users/7/x")] {
        let res = request(addr, method, path);
        assert_eq!(res.status, 404, "{method} {path}: {res:?}");
    }
    let res = request(addr, "DELETE", "/users/7");
    assert_eq!(res.status, 405, "{res:?}");
    assert_eq!(res.header("Allow"), Some("GET, HEAD"));
    let res = request(addr, "GET", "/users");
    assert_eq!(res.status, 405, "{res:?}");
    assert_eq!(res.header("Allow"), Some("POST"));
    let res = request(addr, "POST", "/chat/lobby");
    assert_eq!(res.status, 405, "{res:?}");
    assert_eq!(res.header("Allow"), Some("GET, HEAD"));
    let res = request(addr, "GET", "/chat/lobby");
    assert_eq!(res.status, 426, "{res:?}");
    assert_eq!(res.header("Upgrade"), Some("websocket"));
    assert_eq!(res.header("Sec-WebSocket-Version"), Some("13"));
    for path in ["/users/7", "/", "/nowhere", "/chat/lobby/extra"] {
        let res = http_exchange(addr, &upgrade_request(addr, path, ""));
        assert_eq!(res.status, 404, "upgrade to {path}: {res:?}");
    }
    assert!(rec.snapshot().is_empty(), "no route handler was called");
    stop(server);
}

/// One keep-alive connection, requests to different routes and the
/// router's own answers in turn: each is answered on the same connection.
fn routes_on_one_keep_alive_connection(backend: Backend) {
    let (server, _) = server(backend);
    let addr = server.local_addr();
    let mut sock = tcp_connect(addr);
    let steps: [(&str, &str, u16, &[u8]); 6] = [
        ("GET", "/", 200, b"home\n"),
        ("GET", "/users/7", 200, b"user 7\n"),
        ("DELETE", "/users/7", 405, b"method not allowed\n"),
        ("GET", "/nope", 404, b"not found\n"),
        (
            "GET",
            "/chat/lobby",
            426,
            b"upgrade required: this is a WebSocket endpoint\n",
        ),
        ("GET", "/files/x/y", 200, b"file x/y\n"),
    ];
    for (method, path, status, body) in steps {
        let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        std::io::Write::write_all(&mut sock, req.as_bytes()).unwrap();
        let res = read_http_response(&mut sock);
        assert_eq!(res.status, status, "{method} {path}: {res:?}");
        assert_eq!(res.body, body, "{method} {path}");
    }
    stop(server);
}

backend_tests! {
    routes_on_one_keep_alive_connection: routes_on_one_keep_alive_connection_epoll, routes_on_one_keep_alive_connection_uring;
    websocket_routes: websocket_routes_epoll, websocket_routes_uring;
    http_routes: http_routes_epoll, http_routes_uring;
    answers_of_the_router: answers_of_the_router_epoll, answers_of_the_router_uring;
}
