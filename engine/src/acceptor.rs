//! The acceptor thread: takes new connections off the listening socket and
//! hands each to a reactor (round-robin) through the reactor's channel plus
//! an eventfd wake-up.
//!
//! With the io_uring backend it uses one multishot accept on a small ring
//! of its own (one completion per connection, no syscall per accept); with
//! epoll, a blocking `accept()` loop.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode};

use crate::handle::{Command, ReactorShared};

struct Handoff {
    reactors: Vec<Arc<ReactorShared>>,
    next: usize,
}

impl Handoff {
    /// Configures an accepted socket and gives it to the next reactor.
    fn give(&mut self, stream: TcpStream, peer: SocketAddr) {
        if let Err(e) = stream.set_nonblocking(true).and(stream.set_nodelay(true)) {
            tracing::warn!(%peer, "socket setup failed: {e}");
            return;
        }
        let r = &self.reactors[self.next % self.reactors.len()];
        self.next = self.next.wrapping_add(1);
        // A reactor that is gone drops the command, closing the socket.
        r.send(Command::Accept(stream.into(), peer));
    }
}

/// Out of descriptors or memory: back off instead of spinning.
fn transient(errno: Option<i32>) -> bool {
    matches!(
        errno,
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

pub(crate) fn run(
    listener: TcpListener,
    reactors: Vec<Arc<ReactorShared>>,
    stopping: Arc<AtomicBool>,
    uring: bool,
) {
    let mut handoff = Handoff { reactors, next: 0 };
    if uring {
        match accept_uring(&listener, &mut handoff, &stopping) {
            Ok(()) => {
                tracing::info!("acceptor stopped");
                return;
            }
            Err(e) => tracing::warn!("multishot accept unavailable ({e}); using accept()"),
        }
    }
    accept_blocking(&listener, &mut handoff, &stopping);
    tracing::info!("acceptor stopped");
}

fn accept_blocking(listener: &TcpListener, handoff: &mut Handoff, stopping: &AtomicBool) {
    loop {
        let r = listener.accept();
        if stopping.load(Ordering::Acquire) {
            return;
        }
        match r {
            Ok((stream, peer)) => handoff.give(stream, peer),
            Err(e) if transient(e.raw_os_error()) => {
                tracing::warn!("accept: {e}; pausing 10 ms");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => tracing::debug!("accept: {e}"),
        }
    }
}

fn accept_uring(
    listener: &TcpListener,
    handoff: &mut Handoff,
    stopping: &AtomicBool,
) -> io::Result<()> {
    let mut ring = IoUring::new(256)?;
    let lfd: RawFd = listener.as_raw_fd();
    let arm = |ring: &mut IoUring| -> io::Result<()> {
        let e = opcode::AcceptMulti::new(Fd(lfd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(1);
        // SAFETY: the entry refers to no memory of ours.
        unsafe { ring.submission().push(&e) }.map_err(|_| io::Error::other("submission queue full"))
    };
    arm(&mut ring)?;
    // The wait wakes at least every 100 ms to notice shutdown.
    let ts = Timespec::new().nsec(100_000_000);
    let args = SubmitArgs::new().timespec(&ts);
    let mut first = true;
    loop {
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR)) => {}
            Err(e) => return Err(e),
        }
        if stopping.load(Ordering::Acquire) {
            return Ok(());
        }
        let cqes: Vec<(i32, u32)> = ring.completion().map(|c| (c.result(), c.flags())).collect();
        for (res, flags) in cqes {
            if res >= 0 {
                first = false;
                // SAFETY: the kernel just created this fd for us.
                let stream = unsafe { TcpStream::from_raw_fd(res) };
                match stream.peer_addr() {
                    Ok(peer) => handoff.give(stream, peer),
                    Err(e) => tracing::debug!("accepted socket already gone: {e}"),
                }
            } else if first && res == -libc::EINVAL {
                // Multishot accept not supported by this kernel.
                return Err(io::Error::from_raw_os_error(-res));
            } else if transient(Some(-res)) {
                tracing::warn!(
                    "accept: {}; pausing 10 ms",
                    io::Error::from_raw_os_error(-res)
                );
                std::thread::sleep(Duration::from_millis(10));
            } else {
                tracing::debug!("accept: {}", io::Error::from_raw_os_error(-res));
            }
            if !cqueue::more(flags) {
                arm(&mut ring)?;
            }
        }
    }
}
