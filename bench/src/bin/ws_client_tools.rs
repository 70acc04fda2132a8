//! Minimal WebSocket client tools for measuring the engine before the real
//! load generator (`ringwire load`, issue #5) exists:
//!
//! - `ws_client_tools idle ADDR N SECS`: open N connections (handshake
//!   done), print `ready`, hold them SECS seconds, exit.
//! - `ws_client_tools echo ADDR CONNS IN_FLIGHT SIZE SECS`: closed-loop
//!   binary echo over epoll from one thread, payload pre-masked once (fixed
//!   key, as a benchmark client may), one write per batch of replies;
//!   prints msgs/s.
//!
//! - `ws_client_tools idle-deflate ADDR N SECS`: like `idle`, but each
//!   connection offers permessage-deflate, sends one compressed text
//!   message and reads its echo first (so a server's per-connection
//!   codecs, if it keeps any, exist), then idles.
//!
//! All are bounded in time and talk only to the address given.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ringwire_parser::frame::{FrameHeader, HeaderDecode};
use ringwire_parser::handshake::{ClientHandshake, ClientRequest};
use ringwire_parser::{Encoder, OpCode, Role};

fn connect(addr: SocketAddr, path: &str) -> std::io::Result<(TcpStream, Vec<u8>)> {
    connect_offering(addr, path, None).map(|(s, rest, _)| (s, rest))
}

/// Connects offering `extensions`; returns the socket, bytes after the
/// 101, and the accepted extensions.
fn connect_offering(
    addr: SocketAddr,
    path: &str,
    extensions: Option<&str>,
) -> std::io::Result<(TcpStream, Vec<u8>, Option<String>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let host = addr.to_string();
    let mut req = Vec::new();
    let hs = ClientHandshake::new(
        &ClientRequest {
            host: &host,
            path_and_query: path,
            extensions,
            ..Default::default()
        },
        &mut req,
    );
    s.write_all(&req)?;
    let mut resp = Vec::new();
    loop {
        let mut b = [0u8; 1024];
        let n = s.read(&mut b)?;
        if n == 0 {
            return Err(std::io::Error::other("closed during handshake"));
        }
        resp.extend_from_slice(&b[..n]);
        match hs.validate_response(&resp) {
            Ok(Some((r, used))) => return Ok((s, resp[used..].to_vec(), r.extensions)),
            Ok(None) => continue,
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
    }
}

fn idle(addr: SocketAddr, n: usize, secs: u64) {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        match connect(addr, "/echo") {
            Ok((s, _)) => conns.push(s),
            Err(e) => {
                eprintln!("connection {i}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("ready {}", conns.len());
    std::io::stdout().flush().ok();
    std::thread::sleep(Duration::from_secs(secs));
}

fn idle_deflate(addr: SocketAddr, n: usize, secs: u64) {
    use ringwire_parser::deflate::{Compressor, DeflateConfig, client_accept, client_offer};
    let cfg = DeflateConfig::default();
    let offer = client_offer(&cfg);
    let msg = br#"{"hello":"a compressed message to make the server use its codecs","n":[1,2,3,4,5,6,7,8,9,10]}"#;
    let enc = Encoder::new(Role::Client);
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let (mut s, _, ext) = match connect_offering(addr, "/echo", Some(&offer)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("connection {i}: {e}");
                std::process::exit(1);
            }
        };
        let params = match client_accept(ext.as_deref(), &cfg) {
            Ok(Some(p)) => p,
            other => {
                eprintln!("connection {i}: permessage-deflate not negotiated: {other:?}");
                std::process::exit(1);
            }
        };
        let mut z = Vec::new();
        Compressor::new(&params, &cfg)
            .compress(msg, &mut z)
            .expect("compress");
        let mut frame = Vec::new();
        enc.frame(
            &mut frame,
            true,
            ringwire_parser::frame::RSV1,
            OpCode::Text,
            &z,
        );
        s.write_all(&frame).expect("send");
        // The echo: at least a frame header.
        let mut b = [0u8; 512];
        let _ = s.read(&mut b).expect("echo");
        conns.push(s);
    }
    println!("ready {}", conns.len());
    std::io::stdout().flush().ok();
    std::thread::sleep(Duration::from_secs(secs));
}

fn echo(addr: SocketAddr, conns: usize, in_flight: usize, size: usize, secs: u64) {
    let enc = Encoder::new(Role::Client).with_fixed_mask_key([0x11, 0x22, 0x33, 0x44]);
    let mut frame = Vec::new();
    enc.message(&mut frame, OpCode::Binary, &vec![0x5a; size], false);
    // SAFETY: plain syscalls, results checked where it matters.
    let ep = unsafe { libc::epoll_create1(0) };
    assert!(ep >= 0);
    let mut socks = Vec::new();
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    for i in 0..conns {
        let (mut s, rest) = connect(addr, "/echo").expect("connect");
        s.set_nonblocking(true).unwrap();
        let mut burst = Vec::new();
        for _ in 0..in_flight {
            burst.extend_from_slice(&frame);
        }
        s.write_all(&burst).expect("initial burst");
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: valid epoll fd, socket fd and event.
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
        socks.push(s);
        bufs.push(rest);
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut rbuf = vec![0u8; 256 * 1024];
    let mut out = Vec::new();
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut done = 0u64;
    while Instant::now() < end {
        // SAFETY: valid buffer of events.len() entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 100) };
        for ev in &events[..n.max(0) as usize] {
            let i = ev.u64 as usize;
            let r = match socks[i].read(&mut rbuf) {
                Ok(0) => panic!("server closed connection {i}"),
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("read: {e}"),
            };
            let pending = &mut bufs[i];
            pending.extend_from_slice(&rbuf[..r]);
            let mut pos = 0;
            let mut replies = 0;
            while let Ok(HeaderDecode::Complete(h, hl)) = FrameHeader::decode(&pending[pos..]) {
                let total = hl + h.payload_len as usize;
                if pending.len() - pos < total {
                    break;
                }
                pos += total;
                replies += 1;
            }
            pending.drain(..pos);
            done += replies as u64;
            out.clear();
            for _ in 0..replies {
                out.extend_from_slice(&frame);
            }
            if !out.is_empty() {
                socks[i].set_nonblocking(false).unwrap();
                socks[i].write_all(&out).expect("write");
                socks[i].set_nonblocking(true).unwrap();
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"conns\":{conns},\"in_flight\":{in_flight},\"size\":{size},\"msgs\":{done},\"secs\":{secs:.2},\"msgs_per_sec\":{:.0}}}",
        done as f64 / secs
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: ws_client_tools idle|idle-deflate ADDR N SECS | echo ADDR CONNS IN_FLIGHT SIZE SECS";
    let arg = |i: usize| a.get(i).unwrap_or_else(|| panic!("{usage}"));
    match a.get(1).map(String::as_str) {
        Some("idle") => idle(
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
        ),
        Some("idle-deflate") => idle_deflate(
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
        ),
        Some("echo") => echo(
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
            arg(5).parse().unwrap(),
            arg(6).parse().unwrap(),
        ),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
