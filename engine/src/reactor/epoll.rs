//! The epoll backend: edge-triggered readiness, one shared receive buffer
//! per reactor (an idle connection owns no buffer), writes straight from
//! each connection's queue at the end of every loop iteration.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use super::Core;
use crate::conn::CloseStep;
use crate::handler::Handler;

/// Most bytes read from one connection per loop iteration, in receive
/// buffers: a peer that keeps its socket readable cannot starve the other
/// connections, the mailbox or the timers. What is left is read in the
/// next iteration (edge-triggered epoll brings no new edge for it).
const READS_PER_ITERATION: usize = 4;

const WAKER_TOKEN: u64 = u64::MAX;
const LISTENER_TOKEN: u64 = u64::MAX - 1;

fn token(slot: u32, generation: u32) -> u64 {
    (generation as u64) << 32 | slot as u64
}

struct Epoll(RawFd, std::cell::Cell<bool>);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall, result checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll(fd, std::cell::Cell::new(true)))
    }

    /// Waits up to `timeout` for events; returns how many were written to
    /// `events`. Uses `epoll_pwait2` (nanosecond timeout, Linux 5.11+) so
    /// handler timers fire on time, falling back to `epoll_wait` (timeout
    /// rounded up to whole milliseconds) where the kernel lacks it.
    fn wait(&self, events: &mut [libc::epoll_event], timeout: Duration) -> io::Result<usize> {
        let len = events.len() as i32;
        if self.1.get() {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `events` is a valid buffer of `len` entries and `ts` a
            // valid timespec for the duration of the call; no signal mask.
            let n = unsafe {
                libc::epoll_pwait2(self.0, events.as_mut_ptr(), len, &ts, std::ptr::null())
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOSYS) {
                return Err(e);
            }
            tracing::debug!("epoll_pwait2 unavailable: timers round up to milliseconds");
            self.1.set(false);
        }
        let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        // SAFETY: `events` is a valid buffer of `len` entries.
        let n = unsafe { libc::epoll_wait(self.0, events.as_mut_ptr(), len, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Epoll {
    fn del(&self, fd: RawFd) {
        // SAFETY: removing an fd from our epoll set; errors are harmless.
        unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the epoll fd.
        unsafe { libc::close(self.0) };
    }
}

const CONN_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// Runs the reactor until shutdown completes.
pub(crate) fn run<H: Handler>(mut core: Core<H>) -> io::Result<()> {
    let ep = Epoll::new()?;
    let waker_fd = core.ctx.shared.waker.fd;
    ep.add(waker_fd, libc::EPOLLIN as u32, WAKER_TOKEN)?;
    if let Some(l) = &core.listener {
        ep.add(l.as_raw_fd(), libc::EPOLLIN as u32, LISTENER_TOKEN)?;
    }
    let mut accept_paused = false;
    let mut buf = vec![0u8; core.config().recv_buffer_size];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut dirty = Vec::new();
    // Connections whose read budget ran out with bytes left (slot,
    // generation), and the list being worked through.
    let mut again: Vec<(u32, u32)> = Vec::new();
    let mut again_now: Vec<(u32, u32)> = Vec::new();
    // Per slot: the last write hit EAGAIN, so no write is tried until the
    // EPOLLOUT edge (a non-reader that every broadcast marks dirty would
    // otherwise cost a failing `send` per iteration). Cleared when the
    // slot's socket closes.
    let mut blocked: Vec<bool> = Vec::new();

    loop {
        let busy = !core.ctx.dirty.is_empty() || !again.is_empty() || core.mailbox_more;
        let timeout = if busy {
            Duration::ZERO
        } else {
            core.timeout().min(Duration::from_secs(1))
        };
        let n = match ep.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        core.refresh_clock();
        for ev in &events[..n] {
            let (bits, tok) = (ev.events, ev.u64);
            if tok == WAKER_TOKEN {
                let mut v = 0u64;
                // SAFETY: reads 8 bytes into a valid u64 from our eventfd.
                unsafe { libc::read(waker_fd, (&mut v as *mut u64).cast(), 8) };
                mailbox(&ep, &mut core);
                continue;
            }
            if tok == LISTENER_TOKEN {
                accept_all(&ep, &mut core, &mut accept_paused);
                continue;
            }
            let slot = tok as u32;
            if core.generation(slot) != Some((tok >> 32) as u32) {
                continue;
            }
            if core.is_connecting(slot) {
                core.on_connect_ready(slot);
            }
            let fd = core.conn(slot).map_or(-1, |c| c.raw_fd());
            if bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32
                != 0
            {
                // The peer's FIN may have come with this edge: then no
                // later edge will report it, so read on until 0.
                let peer_done =
                    bits & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
                if read_some(&mut core, slot, fd, &mut buf, peer_done) {
                    again.push((slot, (tok >> 32) as u32));
                }
            }
            if bits & libc::EPOLLOUT as u32 != 0 {
                if let Some(b) = blocked.get_mut(slot as usize) {
                    *b = false;
                }
                core.mark_dirty(slot);
            }
        }
        // Connections left readable by their budget in the last iteration.
        std::mem::swap(&mut again, &mut again_now);
        for (slot, generation) in again_now.drain(..) {
            if core.generation(slot) != Some(generation) {
                continue;
            }
            let fd = core.conn(slot).map_or(-1, |c| c.raw_fd());
            if read_some(&mut core, slot, fd, &mut buf, true) {
                again.push((slot, generation));
            }
        }
        if core.mailbox_more {
            mailbox(&ep, &mut core);
        }
        if accept_paused
            && core.tick_due()
            && let Some(l) = &core.listener
        {
            accept_paused = false;
            ep.add(l.as_raw_fd(), libc::EPOLLIN as u32, LISTENER_TOKEN)?;
        }
        core.tick();
        core.fire_timers();
        flush(&mut core, &mut dirty, &mut blocked);
        core.publish_stats();
        if core.shutdown_done() {
            for slot in core.live_slots() {
                close_conn(&mut core, slot);
            }
            core.publish_stats();
            return Ok(());
        }
    }
}

/// Watches a new connection's socket.
fn register<H: Handler>(ep: &Epoll, core: &mut Core<H>, slot: u32) {
    let (fd, generation) = match (core.conn(slot), core.generation(slot)) {
        (Some(c), Some(g)) => (c.raw_fd(), g),
        _ => return,
    };
    if let Err(e) = ep.add(fd, CONN_EVENTS, token(slot, generation)) {
        tracing::warn!("epoll_ctl add failed: {e}");
        close_conn(core, slot);
    }
}

/// Applies the mailbox and watches the sockets it brought.
fn mailbox<H: Handler>(ep: &Epoll, core: &mut Core<H>) {
    core.drain_mailbox();
    for slot in std::mem::take(&mut core.new_conns) {
        register(ep, core, slot);
    }
    // A connecting socket reports the connect's outcome as writable
    // (EPOLLOUT) or failed (EPOLLERR/HUP).
    for slot in std::mem::take(&mut core.connecting) {
        register(ep, core, slot);
    }
}

/// Accepts everything waiting on this reactor's own listener.
fn accept_all<H: Handler>(ep: &Epoll, core: &mut Core<H>, paused: &mut bool) {
    loop {
        let Some(l) = core.listener.as_ref() else {
            return;
        };
        match l.accept() {
            Ok((stream, peer)) => {
                if let Some(slot) = core.accept_stream(stream, peer) {
                    register(ep, core, slot);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors or memory: stop watching the listener
                // until the next tick rather than spinning on the error.
                tracing::warn!("accept: {e}; pausing accepts for a tick");
                ep.del(l.as_raw_fd());
                *paused = true;
                return;
            }
        }
    }
}

/// Reads until the socket is drained (edge-triggered) or the connection's
/// budget for this iteration is spent, feeding the core; a closing
/// connection's input is read and discarded until the peer's FIN.
/// `peer_done`: the event reported a hang-up, so a short read is not the
/// end (the EOF behind the data brings no new edge). Returns true when the
/// budget ran out with the socket possibly still readable.
fn read_some<H: Handler>(
    core: &mut Core<H>,
    slot: u32,
    fd: RawFd,
    buf: &mut [u8],
    peer_done: bool,
) -> bool {
    for _ in 0..READS_PER_ITERATION {
        if core
            .conn(slot)
            .is_none_or(|c| c.io.abandoned || c.io.read_closed)
        {
            return false;
        }
        // SAFETY: reads into our buffer of `buf.len()` bytes.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r > 0 {
            let n = r as usize;
            core.on_data(slot, &mut buf[..n]);
            if n < buf.len() && !peer_done {
                // A short read drained the socket; a new arrival brings a
                // new edge.
                return false;
            }
        } else if r == 0 {
            core.on_eof(slot);
            return false;
        } else {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return false,
                io::ErrorKind::Interrupted => continue,
                _ => {
                    tracing::debug!("read failed: {e}");
                    core.on_io_error(slot);
                    return false;
                }
            }
        }
    }
    true
}

/// Writes every dirty connection's queue; sends FIN after the last byte
/// of a closing connection and closes those that are done.
fn flush<H: Handler>(core: &mut Core<H>, dirty: &mut Vec<u32>, blocked: &mut Vec<bool>) {
    core.take_dirty(dirty);
    for &slot in dirty.iter() {
        let Some(fd) = core.conn(slot).map(|c| c.raw_fd()) else {
            continue;
        };
        let i = slot as usize;
        if blocked.len() <= i {
            blocked.resize(i + 1, false);
        }
        while !blocked[i]
            && let Some(chunk) = core.next_chunk(slot)
        {
            if chunk.is_empty() {
                break;
            }
            // SAFETY: writes from a live slice; MSG_NOSIGNAL turns a peer
            // reset into EPIPE instead of SIGPIPE.
            let r =
                unsafe { libc::send(fd, chunk.as_ptr().cast(), chunk.len(), libc::MSG_NOSIGNAL) };
            if r >= 0 {
                core.on_written(slot, r as usize);
            } else {
                let e = io::Error::last_os_error();
                match e.kind() {
                    // EPOLLOUT (edge) will bring us back.
                    io::ErrorKind::WouldBlock => {
                        blocked[i] = true;
                        break;
                    }
                    io::ErrorKind::Interrupted => continue,
                    _ => {
                        tracing::debug!("send failed: {e}");
                        core.on_io_error(slot);
                        break;
                    }
                }
            }
        }
        match core.close_step(slot) {
            CloseStep::None => {}
            CloseStep::Shutdown => {
                // SAFETY: shutdown on the slot's own socket.
                unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                core.on_fin_sent(slot);
            }
            // Nothing is ever in flight with epoll.
            CloseStep::Cancel | CloseStep::Close => {
                blocked[i] = false;
                close_conn(core, slot);
            }
        }
    }
}

/// Closes a connection's socket (dropping its slot closes the descriptor,
/// which also leaves the epoll set).
fn close_conn<H: Handler>(core: &mut Core<H>, slot: u32) {
    core.remove(slot);
}
