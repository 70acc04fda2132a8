//! The router: WebSocket routes (each with its own [`Handler`] and its own
//! per-connection state type) and HTTP routes (method + pattern) on one
//! port, matched by [`matchit`] (axum's matcher: `/{id}` parameters,
//! `/{*rest}` catch-all).
//!
//! A [`Router`] is itself a [`Handler`]: the factory given to `start` builds
//! one per reactor thread, so it and the route handlers it holds are used
//! through `&mut self` with no locks. Its `Conn` is a [`RouteConn`]: the
//! route's index, the connection's path parameters and the route's own
//! state, type-erased (`Box<dyn Any>`); every callback goes to the route's
//! handler through one virtual call and one type check, with a
//! `WebSocket<'_, H::Conn>` that sees the route's state.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;

use ringwire_parser::handshake::{HttpRequest, UpgradeRequest};
use ringwire_parser::{CloseCode, Message, Payload};

use crate::handler::{Handler, HttpResponse, Reject, UpgradeResponse, WebSocket};

/// An HTTP route's function.
type HttpFn = Box<dyn FnMut(&HttpRequest<'_>, &mut HttpResponse)>;

/// Routes requests by path (and method, for plain HTTP) to WebSocket
/// handlers and HTTP functions. Use it wherever a [`Handler`] goes.
///
/// - [`ws(pattern, handler)`](Self::ws): a WebSocket route. `handler` is any
///   [`Handler`], with its own `Conn` type; routes with different `Conn`
///   types live in one router. Its `on_upgrade` decides on the upgrade as
///   usual, and every later callback of the connection goes to it.
/// - [`get`](Self::get), [`post`](Self::post), [`put`](Self::put),
///   [`delete`](Self::delete), [`route(method, ..)`](Self::route),
///   [`any`](Self::any): HTTP routes, `FnMut(&HttpRequest, &mut
///   HttpResponse)`. A `HEAD` request goes to the `GET` route unless the
///   pattern has a `HEAD` route of its own.
/// - [`fallback`](Self::fallback): plain HTTP requests whose path matches
///   no route (default: 404).
///
/// Patterns are [`matchit`]'s: `/chat/{room}` (one segment),
/// `/files/{*rest}` (the rest of the path, at least one character), static
/// segments win over parameters. One pattern can carry a WebSocket route
/// and HTTP routes together. Registering a pattern that conflicts with
/// another (`/{id}` beside `/{name}`), or the same method twice on one
/// pattern, panics: routes are built at start-up.
///
/// Path parameters are read with `req.param("room")` (on the
/// [`UpgradeRequest`] in `on_upgrade` and on the [`HttpRequest`] an HTTP
/// route gets) and, for WebSocket routes, on the connection afterwards
/// with [`WebSocket::param`] (kept per connection from the upgrade on).
/// Values are as they appear in the path, not percent-decoded.
///
/// Answers the router gives itself (plain HTTP):
///
/// | request | answer |
/// |---|---|
/// | a path no route matches | the fallback, or 404 |
/// | a method the path has no route for | 405 with `Allow` (the methods it has) |
/// | a plain `GET`/`HEAD` to a path with only a WebSocket route for it | 426 with `Upgrade: websocket` |
/// | an upgrade to a path without a WebSocket route | 404 |
///
/// Matching a request to a route without parameters (or with up to 3)
/// allocates nothing; the path parameters of a WebSocket connection are
/// copied once, at upgrade.
///
/// The single-[`Handler`] API stays as it is: a handler is a router with
/// one route. A router serves accepted connections only (its
/// [`RouteConn`] cannot be built outside, so it does not dial).
///
/// ```no_run
/// use ringwire::{Handler, Message, Reject, Router, Server, UpgradeRequest, UpgradeResponse, WebSocket};
///
/// /// Echoes every message back.
/// struct Echo;
/// impl Handler for Echo {
///     type Conn = ();
///     fn on_upgrade(&mut self, _: &UpgradeRequest<'_>, _: &mut UpgradeResponse) -> Result<(), Reject> {
///         Ok(())
///     }
///     fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
///         let _ = ws.send(&msg);
///     }
/// }
///
/// /// Chat rooms on pub/sub topics; the state is the user's name.
/// struct Chat;
/// impl Handler for Chat {
///     type Conn = String;
///     fn on_upgrade(&mut self, req: &UpgradeRequest<'_>, _: &mut UpgradeResponse) -> Result<String, Reject> {
///         match req.param("room") {
///             Some("private") => Err(Reject::new(403, "no\n")),
///             _ => Ok(req.query().unwrap_or("anonymous").to_owned()),
///         }
///     }
///     fn on_open(&mut self, ws: &mut WebSocket<'_, String>) {
///         let room = ws.param("room").unwrap_or_default().to_owned();
///         ws.subscribe(room);
///     }
///     fn on_message(&mut self, ws: &mut WebSocket<'_, String>, msg: Message<'_>) {
///         let room = ws.param("room").unwrap_or_default().to_owned();
///         let _ = ws.publish(room, &msg);
///     }
/// }
///
/// let server = Server::builder()
///     .bind("127.0.0.1:9001".parse().unwrap())
///     .start(|_reactor| {
///         Router::new()
///             .ws("/echo", Echo)
///             .ws("/chat/{room}", Chat)
///             .get("/", |_req, res| {
///                 res.body("hello\n");
///             })
///             .get("/users/{id}", |req, res| {
///                 res.body(format!("user {}\n", req.param("id").unwrap()));
///             })
///     })?;
/// server.run_until_signal(std::time::Duration::from_secs(5));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Router {
    matcher: Matcher,
    paths: Vec<PathRoutes>,
    ws: Vec<Box<dyn WsRoute>>,
    fallback: Option<HttpFn>,
}

/// Path → index into `Router::paths`.
#[derive(Default)]
struct Matcher {
    tree: matchit::Router<u32>,
    /// Patterns without parameters, looked up before `tree`: the same
    /// answer (a static route wins in matchit too), but matchit allocates
    /// its backtracking list when a static segment has a parameter sibling
    /// (`/users/me` beside `/users/{id}`).
    statics: HashMap<Box<str>, u32>,
}

impl Matcher {
    fn insert(&mut self, pattern: &str, i: u32) {
        if let Err(e) = self.tree.insert(pattern, i) {
            panic!("route {pattern:?}: {e}");
        }
        if !pattern.contains(['{', '}']) {
            self.statics.insert(pattern.into(), i);
        }
    }

    /// The index of `path`'s routes and its parameters.
    #[inline]
    fn at<'p>(&self, path: &'p str) -> Option<(u32, matchit::Params<'_, 'p>)> {
        if let Some(&i) = self.statics.get(path) {
            return Some((i, matchit::Params::new()));
        }
        let m = self.tree.at(path).ok()?;
        Some((*m.value, m.params))
    }
}

/// What one pattern leads to.
struct PathRoutes {
    pattern: Box<str>,
    /// Index into `Router::ws`.
    ws: Option<u32>,
    /// (method, function) in registration order.
    methods: Vec<(Box<str>, HttpFn)>,
    any: Option<HttpFn>,
}

impl PathRoutes {
    /// The function for `method`: its own, GET's for HEAD, or `any`.
    fn find(&mut self, method: &str) -> Option<&mut HttpFn> {
        let mut at = self.methods.iter().position(|(m, _)| &**m == method);
        if at.is_none() && method == "HEAD" {
            at = self.methods.iter().position(|(m, _)| &**m == "GET");
        }
        match at {
            Some(i) => Some(&mut self.methods[i].1),
            None => self.any.as_mut(),
        }
    }

    /// The `Allow` header value: every method with a route, `HEAD` with
    /// `GET`, and `GET` for a WebSocket route.
    fn allow(&self) -> String {
        let mut allow: Vec<&str> = self.methods.iter().map(|(m, _)| &**m).collect();
        if self.ws.is_some() && !allow.contains(&"GET") {
            allow.push("GET");
        }
        if allow.contains(&"GET") && !allow.contains(&"HEAD") {
            allow.push("HEAD");
        }
        allow.join(", ")
    }
}

/// The per-connection state of a [`Router`] (its [`Handler::Conn`]): which
/// route accepted the connection, its path parameters and that route's
/// own state.
pub struct RouteConn {
    route: u32,
    values: Box<[Box<str>]>,
    state: Box<dyn Any>,
}

impl RouteConn {
    /// The route's state, if the connection belongs to a route whose
    /// `Conn` is `C` (e.g. when walking connections from outside a route).
    pub fn state<C: 'static>(&mut self) -> Option<&mut C> {
        self.state.downcast_mut()
    }
}

impl fmt::Debug for RouteConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteConn")
            .field("route", &self.route)
            .field("params", &self.values)
            .finish_non_exhaustive()
    }
}

/// The path parameters a [`WebSocket`] sees: the route's names and the
/// connection's values, in the route's order.
#[derive(Clone, Copy, Default)]
pub(crate) struct ConnParams<'a> {
    keys: &'a [Box<str>],
    values: &'a [Box<str>],
}

impl<'a> ConnParams<'a> {
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        let i = self.keys.iter().position(|k| &**k == name)?;
        self.values.get(i).map(|v| &**v)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let (keys, values) = (self.keys, self.values);
        keys.iter().zip(values).map(|(k, v)| (&**k, &**v))
    }
}

/// A WebSocket route with its handler's types erased. Each method hands
/// the callback to the handler with a `WebSocket` of the handler's `Conn`.
trait WsRoute {
    fn upgrade(
        &mut self,
        route: u32,
        req: &UpgradeRequest<'_>,
        params: &matchit::Params<'_, '_>,
        res: &mut UpgradeResponse,
    ) -> Result<RouteConn, Reject>;
    fn open(&mut self, ws: &mut WebSocket<'_, RouteConn>);
    fn message(&mut self, ws: &mut WebSocket<'_, RouteConn>, msg: Message<'_>);
    fn ping(&mut self, ws: &mut WebSocket<'_, RouteConn>, payload: &[u8]) -> bool;
    fn pong(&mut self, ws: &mut WebSocket<'_, RouteConn>, payload: &[u8]);
    fn drain(&mut self, ws: &mut WebSocket<'_, RouteConn>);
    fn timer(&mut self, ws: &mut WebSocket<'_, RouteConn>, token: u64);
    fn wake(&mut self, ws: &mut WebSocket<'_, RouteConn>);
    fn fragment(
        &mut self,
        ws: &mut WebSocket<'_, RouteConn>,
        text: bool,
        fin: bool,
        p: Payload<'_>,
    );
    fn close(&mut self, ws: &mut WebSocket<'_, RouteConn>, code: CloseCode, reason: &str);
}

struct WsEntry<H> {
    handler: H,
    /// The pattern's parameter names, learnt at the first upgrade (a
    /// pattern always yields the same names in the same order).
    keys: Box<[Box<str>]>,
}

impl<H: Handler> WsEntry<H> {
    /// Runs `f` with the route's handler and the connection seen with the
    /// route's state and parameters.
    #[inline]
    fn with<R>(
        &mut self,
        ws: &mut WebSocket<'_, RouteConn>,
        f: impl FnOnce(&mut H, &mut WebSocket<'_, H::Conn>) -> R,
    ) -> R {
        let keys = &self.keys;
        let mut ws = ws.reborrow(|conn| {
            let state = (*conn.state)
                .downcast_mut::<H::Conn>()
                .expect("a connection keeps the state of the route that accepted it");
            let params = ConnParams {
                keys,
                values: &conn.values,
            };
            (state, params)
        });
        f(&mut self.handler, &mut ws)
    }
}

impl<H: Handler> WsRoute for WsEntry<H> {
    fn upgrade(
        &mut self,
        route: u32,
        req: &UpgradeRequest<'_>,
        params: &matchit::Params<'_, '_>,
        res: &mut UpgradeResponse,
    ) -> Result<RouteConn, Reject> {
        if params.is_empty() {
            let state = self.handler.on_upgrade(req, res)?;
            return Ok(RouteConn {
                route,
                values: Box::default(),
                state: Box::new(state),
            });
        }
        if self.keys.len() != params.len() {
            self.keys = params.iter().map(|(k, _)| k.into()).collect();
        }
        let handler = &mut self.handler;
        let state = with_pairs(params, |pairs| {
            handler.on_upgrade(&req.with_params(pairs), res)
        })?;
        Ok(RouteConn {
            route,
            values: params.iter().map(|(_, v)| v.into()).collect(),
            state: Box::new(state),
        })
    }

    fn open(&mut self, ws: &mut WebSocket<'_, RouteConn>) {
        self.with(ws, |h, ws| h.on_open(ws))
    }

    fn message(&mut self, ws: &mut WebSocket<'_, RouteConn>, msg: Message<'_>) {
        self.with(ws, |h, ws| h.on_message(ws, msg))
    }

    fn ping(&mut self, ws: &mut WebSocket<'_, RouteConn>, payload: &[u8]) -> bool {
        self.with(ws, |h, ws| h.on_ping(ws, payload))
    }

    fn pong(&mut self, ws: &mut WebSocket<'_, RouteConn>, payload: &[u8]) {
        self.with(ws, |h, ws| h.on_pong(ws, payload))
    }

    fn drain(&mut self, ws: &mut WebSocket<'_, RouteConn>) {
        self.with(ws, |h, ws| h.on_drain(ws))
    }

    fn timer(&mut self, ws: &mut WebSocket<'_, RouteConn>, token: u64) {
        self.with(ws, |h, ws| h.on_timer(ws, token))
    }

    fn wake(&mut self, ws: &mut WebSocket<'_, RouteConn>) {
        self.with(ws, |h, ws| h.on_wake(ws))
    }

    fn fragment(
        &mut self,
        ws: &mut WebSocket<'_, RouteConn>,
        text: bool,
        fin: bool,
        p: Payload<'_>,
    ) {
        self.with(ws, |h, ws| h.on_fragment(ws, text, fin, p))
    }

    fn close(&mut self, ws: &mut WebSocket<'_, RouteConn>, code: CloseCode, reason: &str) {
        self.with(ws, |h, ws| h.on_close(ws, code, reason))
    }
}

/// Calls `f` with matchit's parameters as a slice of (name, value) pairs,
/// on the stack for up to 8 of them.
fn with_pairs<R>(params: &matchit::Params<'_, '_>, f: impl FnOnce(&[(&str, &str)]) -> R) -> R {
    const INLINE: usize = 8;
    let n = params.len();
    if n <= INLINE {
        let mut pairs = [("", ""); INLINE];
        for (slot, pair) in pairs.iter_mut().zip(params.iter()) {
            *slot = pair;
        }
        f(&pairs[..n])
    } else {
        f(&params.iter().collect::<Vec<_>>())
    }
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for p in &self.paths {
            let methods: Vec<&str> = p.methods.iter().map(|(m, _)| &**m).collect();
            list.entry(&format_args!(
                "{} ws={} methods={methods:?} any={}",
                p.pattern,
                p.ws.is_some(),
                p.any.is_some()
            ));
        }
        list.finish()
    }
}

impl Router {
    /// An empty router: every plain request gets 404, every upgrade 404.
    pub fn new() -> Self {
        Router {
            matcher: Matcher::default(),
            paths: Vec::new(),
            ws: Vec::new(),
            fallback: None,
        }
    }

    /// The routes of `pattern`, created on first use.
    fn path(&mut self, pattern: &str) -> &mut PathRoutes {
        let i = match self.paths.iter().position(|p| &*p.pattern == pattern) {
            Some(i) => i,
            None => {
                let i = self.paths.len();
                self.matcher.insert(pattern, i as u32);
                self.paths.push(PathRoutes {
                    pattern: pattern.into(),
                    ws: None,
                    methods: Vec::new(),
                    any: None,
                });
                i
            }
        };
        &mut self.paths[i]
    }

    /// A WebSocket route: upgrade requests whose path matches `pattern`
    /// go to `handler` (its `on_upgrade` decides, with the path parameters
    /// on the request), and so do all callbacks of the connections it
    /// accepts. Panics when `pattern` has a WebSocket route already or
    /// conflicts with another pattern.
    pub fn ws<H: Handler>(mut self, pattern: &str, handler: H) -> Self {
        let route = self.ws.len() as u32;
        let path = self.path(pattern);
        assert!(
            path.ws.is_none(),
            "route {pattern:?} has a WebSocket route already"
        );
        path.ws = Some(route);
        self.ws.push(Box::new(WsEntry {
            handler,
            keys: Box::default(),
        }));
        self
    }

    /// An HTTP route for `method` (case-sensitive, e.g. `"PATCH"`) on
    /// `pattern`. Panics when the pattern has a route for that method
    /// already or conflicts with another pattern.
    pub fn route<F>(mut self, method: &str, pattern: &str, f: F) -> Self
    where
        F: FnMut(&HttpRequest<'_>, &mut HttpResponse) + 'static,
    {
        let path = self.path(pattern);
        assert!(
            !path.methods.iter().any(|(m, _)| &**m == method),
            "route {pattern:?} has a {method} route already"
        );
        path.methods.push((method.into(), Box::new(f)));
        self
    }

    /// A `GET` route (which also answers `HEAD`, unless the pattern has a
    /// `HEAD` route of its own).
    pub fn get<F>(self, pattern: &str, f: F) -> Self
    where
        F: FnMut(&HttpRequest<'_>, &mut HttpResponse) + 'static,
    {
        self.route("GET", pattern, f)
    }

    /// A `POST` route.
    pub fn post<F>(self, pattern: &str, f: F) -> Self
    where
        F: FnMut(&HttpRequest<'_>, &mut HttpResponse) + 'static,
    {
        self.route("POST", pattern, f)
    }

    /// A `PUT` route.
    pub fn put<F>(self, pattern: &str, f: F) -> Self
    where
        F: FnMut(&HttpRequest<'_>, &mut HttpResponse) + 'static,
    {
        self.route("PUT", pattern, f)
    }

    /// A `DELETE` route.
    pub fn delete<F>(self, pattern: &str, f: F) -> Self
    where
        F: FnMut(&HttpRequest<'_>, &mut HttpResponse) + 'static,
    {
        self.route("DELETE", pattern, f)
    }

    /// An HTTP route for every method the pattern has no route of its own
    /// for (no 405 on that pattern then). Panics when the pattern has one
    /// already.
    pub fn any<F>(mut self, pattern: &str, f: F) -> Self
    where
        F: FnMut(&HttpRequest<'_>, &mut HttpResponse) + 'static,
    {
        let path = self.path(pattern);
        assert!(
            path.any.is_none(),
            "route {pattern:?} has an `any` route already"
        );
        path.any = Some(Box::new(f));
        self
    }

    /// Answers plain HTTP requests whose path matches no route (instead
    /// of 404). Upgrade requests to such paths still get 404.
    pub fn fallback<F>(mut self, f: F) -> Self
    where
        F: FnMut(&HttpRequest<'_>, &mut HttpResponse) + 'static,
    {
        self.fallback = Some(Box::new(f));
        self
    }
}

impl Handler for Router {
    type Conn = RouteConn;

    fn on_upgrade(
        &mut self,
        req: &UpgradeRequest<'_>,
        res: &mut UpgradeResponse,
    ) -> Result<RouteConn, Reject> {
        let route = self
            .matcher
            .at(req.path())
            .and_then(|(i, params)| Some((self.paths[i as usize].ws?, params)));
        let Some((route, params)) = route else {
            return Err(Reject::new(
                404,
                format!("no WebSocket route {}\n", req.path()),
            ));
        };
        self.ws[route as usize].upgrade(route, req, &params, res)
    }

    fn on_open(&mut self, ws: &mut WebSocket<'_, RouteConn>) {
        self.ws[ws.state.route as usize].open(ws)
    }

    fn on_message(&mut self, ws: &mut WebSocket<'_, RouteConn>, msg: Message<'_>) {
        self.ws[ws.state.route as usize].message(ws, msg)
    }

    fn on_ping(&mut self, ws: &mut WebSocket<'_, RouteConn>, payload: &[u8]) -> bool {
        self.ws[ws.state.route as usize].ping(ws, payload)
    }

    fn on_pong(&mut self, ws: &mut WebSocket<'_, RouteConn>, payload: &[u8]) {
        self.ws[ws.state.route as usize].pong(ws, payload)
    }

    fn on_drain(&mut self, ws: &mut WebSocket<'_, RouteConn>) {
        self.ws[ws.state.route as usize].drain(ws)
    }

    fn on_timer(&mut self, ws: &mut WebSocket<'_, RouteConn>, token: u64) {
        self.ws[ws.state.route as usize].timer(ws, token)
    }

    fn on_wake(&mut self, ws: &mut WebSocket<'_, RouteConn>) {
        self.ws[ws.state.route as usize].wake(ws)
    }

    fn on_fragment(
        &mut self,
        ws: &mut WebSocket<'_, RouteConn>,
        text: bool,
        fin: bool,
        payload: Payload<'_>,
    ) {
        self.ws[ws.state.route as usize].fragment(ws, text, fin, payload)
    }

    fn on_close(&mut self, ws: &mut WebSocket<'_, RouteConn>, code: CloseCode, reason: &str) {
        self.ws[ws.state.route as usize].close(ws, code, reason)
    }

    // `on_connect_error` keeps its default: a `RouteConn` cannot be built
    // outside this module (and is not `Send`), so a router never dials.

    fn on_http(&mut self, req: &HttpRequest<'_>, res: &mut HttpResponse) {
        let Some((i, params)) = self.matcher.at(req.path()) else {
            match &mut self.fallback {
                Some(f) => f(req, res),
                None => answer(res, 404, "not found\n"),
            }
            return;
        };
        let path = &mut self.paths[i as usize];
        let method = req.method();
        if let Some(f) = path.find(method) {
            if params.is_empty() {
                f(req, res);
            } else {
                with_pairs(&params, |pairs| f(&req.with_params(pairs), res));
            }
        } else if path.ws.is_some() && (method == "GET" || method == "HEAD") {
            answer(res, 426, "upgrade required: this is a WebSocket endpoint\n");
            res.header("Upgrade", "websocket");
            res.header("Sec-WebSocket-Version", "13");
        } else {
            answer(res, 405, "method not allowed\n");
            res.header("Allow", path.allow());
        }
    }
}

/// Sets the status and a static text body (no allocation).
fn answer(res: &mut HttpResponse, status: u16, body: &'static str) {
    res.status = status;
    res.body(body);
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::{Arc, Mutex};

    use ringwire_parser::handshake::{
        ClientHandshake, ClientRequest, Request, RequestLimits, parse_request,
    };
    use ringwire_parser::message::Event;
    use ringwire_parser::{Decoder, DecoderConfig, Encoder, OpCode, Role};

    use super::*;
    use crate::config::Config;
    use crate::http::Body;
    use crate::reactor::fake::Fake;

    /// Parses `raw` and hands it to the router as the engine does.
    fn http(router: &mut Router, raw: &str) -> HttpResponse {
        let parsed = parse_request(raw.as_bytes(), &RequestLimits::default());
        let Some((Request::Http(req), _)) = parsed.expect("valid request") else {
            panic!("not a plain request: {raw:?}");
        };
        let mut res = HttpResponse::default();
        router.on_http(&req, &mut res);
        res
    }

    fn get(router: &mut Router, method: &str, path: &str) -> HttpResponse {
        http(
            router,
            &format!("{method} {path} HTTP/1.1\r\nHost: h\r\n\r\n"),
        )
    }

    fn upgrade_raw(path: &str) -> Vec<u8> {
        let mut raw = Vec::new();
        let _ = ClientHandshake::new(
            &ClientRequest {
                host: "h",
                path_and_query: path,
                ..Default::default()
            },
            &mut raw,
        );
        raw
    }

    /// The router's verdict on an upgrade request for `path`.
    fn upgrade(router: &mut Router, path: &str) -> Result<RouteConn, Reject> {
        let raw = upgrade_raw(path);
        let parsed = parse_request(&raw, &RequestLimits::default());
        let Some((Request::Upgrade(req), _)) = parsed.expect("valid request") else {
            panic!("not an upgrade");
        };
        router.on_upgrade(&req, &mut UpgradeResponse::default())
    }

    fn body(res: &HttpResponse) -> &str {
        match &res.body {
            Body::Empty => "",
            Body::Static(b) => std::str::from_utf8(b).unwrap(),
            Body::Bytes(b) => std::str::from_utf8(b).unwrap(),
            Body::Stream(_) => panic!("a streamed body"),
        }
    }

    fn header<'r>(res: &'r HttpResponse, name: &str) -> Option<&'r str> {
        res.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// Accepts every upgrade; `Conn` is `C::default()`.
    struct Accept<C>(std::marker::PhantomData<C>);
    impl<C: Default + 'static> Handler for Accept<C> {
        type Conn = C;
        fn on_upgrade(
            &mut self,
            _: &UpgradeRequest<'_>,
            _: &mut UpgradeResponse,
        ) -> Result<C, Reject> {
            Ok(C::default())
        }
    }

    fn accept<C: Default + 'static>() -> Accept<C> {
        Accept(std::marker::PhantomData)
    }

    /// The routes the HTTP tests share; each answers with its name and
    /// parameters.
    fn http_router() -> Router {
        fn echo(name: &'static str) -> impl FnMut(&HttpRequest<'_>, &mut HttpResponse) {
            move |req, res| {
                let params: Vec<String> = req.params().map(|(k, v)| format!("{k}={v}")).collect();
                res.body(format!("{name} {}", params.join(" ")));
            }
        }
        Router::new()
            .get("/", echo("root"))
            .get("/users/{id}", echo("get-user"))
            .put("/users/{id}", echo("put-user"))
            .delete("/users/{id}", echo("delete-user"))
            .post("/users", echo("post-users"))
            .get("/users/me", echo("me"))
            .get("/files/{*rest}", echo("files"))
            .route("PATCH", "/items/{a}/{b}", echo("patch-item"))
            .get("/head", echo("get-head"))
            .route("HEAD", "/head", echo("head-head"))
            .any("/anything/{x}", echo("any"))
            .ws("/ws-only", accept::<()>())
            .ws("/both", accept::<()>())
            .post("/both", echo("post-both"))
    }

    #[test]
    fn http_routes_params_and_catch_all() {
        let mut r = http_router();
        assert_eq!(body(&get(&mut r, "GET", "/")), "root ");
        assert_eq!(body(&get(&mut r, "GET", "/users/42")), "get-user id=42");
        assert_eq!(body(&get(&mut r, "GET", "/users/42?x=1")), "get-user id=42");
        assert_eq!(body(&get(&mut r, "PUT", "/users/7")), "put-user id=7");
        assert_eq!(body(&get(&mut r, "DELETE", "/users/7")), "delete-user id=7");
        assert_eq!(body(&get(&mut r, "POST", "/users")), "post-users ");
        assert_eq!(body(&get(&mut r, "GET", "/users/me")), "me ", "static wins");
        assert_eq!(
            body(&get(&mut r, "GET", "/files/a/b/c.txt")),
            "files rest=a/b/c.txt"
        );
        assert_eq!(
            body(&get(&mut r, "PATCH", "/items/1/2")),
            "patch-item a=1 b=2"
        );
        for m in ["GET", "POST", "OPTIONS", "BREW"] {
            assert_eq!(body(&get(&mut r, m, "/anything/q")), "any x=q");
        }
        assert_eq!(body(&get(&mut r, "POST", "/both")), "post-both ");
    }

    #[test]
    fn head_goes_to_get_unless_it_has_its_own() {
        let mut r = http_router();
        assert_eq!(body(&get(&mut r, "HEAD", "/users/3")), "get-user id=3");
        assert_eq!(body(&get(&mut r, "HEAD", "/head")), "head-head ");
        assert_eq!(body(&get(&mut r, "GET", "/head")), "get-head ");
    }

    #[test]
    fn not_found_and_fallback() {
        let mut r = http_router();
        for path in ["/nope", "/users/1/2", "/files/", "/files"] {
            let res = get(&mut r, "GET", path);
            assert_eq!(res.status, 404, "{path}");
            assert_eq!(body(&res), "not found\n");
        }
        let mut r = http_router().fallback(|req, res| {
            res.status = 410;
            res.body(format!("gone {}", req.path()));
        });
        let res = get(&mut r, "POST", "/nope");
        assert_eq!((res.status, body(&res)), (410, "gone /nope"));
        // The fallback is for unmatched paths, not unmatched methods.
        assert_eq!(get(&mut r, "POST", "/").status, 405);
    }

    #[test]
    fn method_not_allowed_lists_allow() {
        let mut r = http_router();
        let res = get(&mut r, "POST", "/users/1");
        assert_eq!(res.status, 405);
        assert_eq!(header(&res, "Allow"), Some("GET, PUT, DELETE, HEAD"));
        let res = get(&mut r, "GET", "/users");
        assert_eq!(res.status, 405);
        assert_eq!(header(&res, "Allow"), Some("POST"));
        let res = get(&mut r, "GET", "/items/1/2");
        assert_eq!(header(&res, "Allow"), Some("PATCH"));
        // A WebSocket route answers GET (by upgrading).
        let res = get(&mut r, "PUT", "/both");
        assert_eq!(res.status, 405);
        assert_eq!(header(&res, "Allow"), Some("POST, GET, HEAD"));
        let res = get(&mut r, "DELETE", "/ws-only");
        assert_eq!(header(&res, "Allow"), Some("GET, HEAD"));
    }

    #[test]
    fn plain_get_to_a_websocket_route_is_426() {
        let mut r = http_router();
        for (m, path) in [("GET", "/ws-only"), ("HEAD", "/ws-only"), ("GET", "/both")] {
            let res = get(&mut r, m, path);
            assert_eq!(res.status, 426, "{m} {path}");
            assert_eq!(header(&res, "Upgrade"), Some("websocket"));
            assert_eq!(header(&res, "Sec-WebSocket-Version"), Some("13"));
        }
    }

    #[test]
    fn upgrades_only_where_a_websocket_route_is() {
        let mut r = http_router();
        assert!(upgrade(&mut r, "/ws-only").is_ok());
        assert!(upgrade(&mut r, "/both?x=1").is_ok());
        for path in ["/", "/users/1", "/nowhere", "/ws-only/x"] {
            let reject = upgrade(&mut r, path).expect_err(path);
            assert_eq!(reject.status, 404, "{path}");
        }
    }

    /// The route's `on_upgrade` sees the parameters and can reject; the
    /// connection keeps its route, parameters and state.
    #[test]
    fn upgrade_params_and_reject() {
        struct Rooms;
        impl Handler for Rooms {
            type Conn = String;
            fn on_upgrade(
                &mut self,
                req: &UpgradeRequest<'_>,
                _: &mut UpgradeResponse,
            ) -> Result<String, Reject> {
                match (req.param("org"), req.param("room")) {
                    (_, Some("private")) => Err(Reject::new(403, "private\n")),
                    (Some(org), Some(room)) => Ok(format!("{org}/{room}")),
                    other => panic!("parameters missing: {other:?}"),
                }
            }
        }
        let mut r = Router::new()
            .ws("/a", accept::<u8>())
            .ws("/{org}/chat/{room}", Rooms);
        let mut conn = upgrade(&mut r, "/acme/chat/lobby?u=1").expect("accepted");
        assert_eq!(conn.route, 1);
        assert_eq!(&*conn.values, [Box::from("acme"), Box::from("lobby")]);
        assert_eq!(
            conn.state::<String>().map(|s| s.as_str()),
            Some("acme/lobby")
        );
        assert_eq!(conn.state::<u8>(), None);
        let reject = upgrade(&mut r, "/acme/chat/private").expect_err("rejected");
        assert_eq!(reject.status, 403);
    }

    /// What a routed connection adds to each slab entry.
    #[test]
    fn route_conn_is_40_bytes() {
        assert_eq!(std::mem::size_of::<RouteConn>(), 40);
    }

    #[test]
    #[should_panic(expected = "conflict")]
    fn conflicting_patterns_panic() {
        let _ = Router::new()
            .get("/users/{id}", |_, _| {})
            .get("/users/{name}", |_, _| {});
    }

    #[test]
    #[should_panic(expected = "has a GET route already")]
    fn a_method_twice_panics() {
        let _ = Router::new().get("/", |_, _| {}).get("/", |_, _| {});
    }

    /// Two WebSocket routes with different `Conn` types on the real core
    /// (fake backend): each connection's callbacks reach its own route's
    /// handler with its own state and parameters, to the close.
    #[test]
    fn websocket_routes_dispatch_through_the_core() {
        type Log = Arc<Mutex<Vec<String>>>;

        /// `/chat/{room}`: state is the room (from `on_upgrade`); answers
        /// `room|param|msg`.
        struct Chat(Log);
        impl Handler for Chat {
            type Conn = String;
            fn on_upgrade(
                &mut self,
                req: &UpgradeRequest<'_>,
                _: &mut UpgradeResponse,
            ) -> Result<String, Reject> {
                Ok(req.param("room").expect("room").to_owned())
            }
            fn on_open(&mut self, ws: &mut WebSocket<'_, String>) {
                let room = ws.param("room").map(str::to_owned);
                let line = format!("chat open {} {room:?}", ws.state());
                self.0.lock().unwrap().push(line);
            }
            fn on_message(&mut self, ws: &mut WebSocket<'_, String>, msg: Message<'_>) {
                let text = String::from_utf8_lossy(msg.as_bytes()).into_owned();
                let room = ws.param("room").unwrap_or("?").to_owned();
                let answer = format!("{}|{room}|{text}", ws.state());
                let _ = ws.send_text(&answer);
            }
            fn on_close(&mut self, ws: &mut WebSocket<'_, String>, code: CloseCode, _: &str) {
                let line = format!("chat close {} {}", ws.state(), code.as_u16());
                self.0.lock().unwrap().push(line);
            }
        }

        /// `/count`: state counts messages (and pings); no parameters.
        struct Count(Log, Rc<RefCell<u32>>);
        impl Handler for Count {
            type Conn = u32;
            fn on_upgrade(
                &mut self,
                _: &UpgradeRequest<'_>,
                _: &mut UpgradeResponse,
            ) -> Result<u32, Reject> {
                Ok(100)
            }
            fn on_message(&mut self, ws: &mut WebSocket<'_, u32>, _: Message<'_>) {
                *ws.state() += 1;
                let n = *ws.state();
                assert_eq!(ws.params().count(), 0);
                let _ = ws.send_text(&n.to_string());
            }
            fn on_ping(&mut self, ws: &mut WebSocket<'_, u32>, _: &[u8]) -> bool {
                *ws.state() += 10;
                *self.1.borrow_mut() += 1;
                true
            }
            fn on_close(&mut self, ws: &mut WebSocket<'_, u32>, code: CloseCode, _: &str) {
                let line = format!("count close {} {}", ws.state(), code.as_u16());
                self.0.lock().unwrap().push(line);
            }
        }

        let log: Log = Arc::default();
        let pings = Rc::new(RefCell::new(0));
        let router = Router::new()
            .ws("/chat/{room}", Chat(log.clone()))
            .ws("/count", Count(log.clone(), pings.clone()))
            .get("/", |_, _| {});
        let mut fake = Fake::new(router, Config::default());
        const PEER: Encoder = Encoder::new(Role::Client);
        let mut decoders = Vec::new();
        for path in ["/chat/lobby", "/count", "/chat/kitchen"] {
            let i = fake.accept().expect("accepted");
            fake.feed(i, &upgrade_raw(path));
            let wire = &mut fake.peers[i].wire;
            assert!(wire.starts_with(b"HTTP/1.1 101"), "{path}: {wire:?}");
            let end = wire.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            wire.drain(..end + 4);
            decoders.push(Decoder::new(Role::Client, DecoderConfig::default()));
        }
        let mut exchange = |fake: &mut Fake<Router>, i: usize, op: OpCode, text: &str| {
            let mut wire = Vec::new();
            match op {
                OpCode::Ping => PEER.ping(&mut wire, text.as_bytes()),
                op => PEER.message(&mut wire, op, text.as_bytes(), false),
            }
            fake.feed(i, &wire);
            let wire = &mut fake.peers[i].wire;
            let d = decoders[i].decode(wire).expect("valid frames");
            let consumed = d.consumed;
            let answer = match d.event {
                Some(Event::Message(m)) => String::from_utf8_lossy(m.as_bytes()).into_owned(),
                Some(Event::Pong(p)) => format!("pong {}", String::from_utf8_lossy(p)),
                other => panic!("unexpected {other:?}"),
            };
            wire.drain(..consumed);
            answer
        };
        assert_eq!(exchange(&mut fake, 0, OpCode::Text, "hi"), "lobby|lobby|hi");
        assert_eq!(exchange(&mut fake, 1, OpCode::Text, "a"), "101");
        assert_eq!(
            exchange(&mut fake, 2, OpCode::Text, "yo"),
            "kitchen|kitchen|yo"
        );
        assert_eq!(exchange(&mut fake, 1, OpCode::Ping, "p"), "pong p");
        assert_eq!(*pings.borrow(), 1);
        assert_eq!(exchange(&mut fake, 1, OpCode::Binary, "b"), "112");
        for i in 0..3 {
            let mut wire = Vec::new();
            PEER.close(&mut wire, Some(CloseCode(4000 + i as u16)), "");
            fake.feed(i, &wire);
        }
        assert_eq!(
            *log.lock().unwrap(),
            [
                "chat open lobby Some(\"lobby\")",
                "chat open kitchen Some(\"kitchen\")",
                "chat close lobby 4000",
                "count close 112 4001",
                "chat close kitchen 4002",
            ]
        );
    }
}
