//! The epoll backend: edge-triggered readiness, one shared receive buffer
//! per reactor (an idle connection owns no buffer), writes straight from
//! each connection's queue at the end of every loop iteration.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{Core, IoBackend};
use crate::client::ConnectError;
use crate::conn::{CloseStep, Closing, Iovecs, msghdr};
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

/// An epoll instance (closed on drop) and whether `epoll_pwait2` works.
struct Epoll(OwnedFd, std::cell::Cell<bool>);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall, result checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll(fd, std::cell::Cell::new(true)))
    }

    /// Waits up to `timeout` for events; returns how many were written to
    /// `events`. Uses `epoll_pwait2` (nanosecond timeout, Linux 5.11+) so
    /// handler timers fire on time, falling back to `epoll_wait` (timeout
    /// rounded up to whole milliseconds) where the kernel lacks it.
    fn wait(&self, events: &mut [libc::epoll_event], timeout: Duration) -> io::Result<usize> {
        let len = events.len() as i32;
        let epfd = self.0.as_raw_fd();
        if self.1.get() {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `events` is a valid buffer of `len` entries and `ts` a
            // valid timespec for the duration of the call; no signal mask.
            let n = unsafe {
                libc::epoll_pwait2(epfd, events.as_mut_ptr(), len, &ts, std::ptr::null())
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
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), len, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn del(&self, fd: RawFd) {
        // SAFETY: removing an fd from our epoll set; errors are harmless.
        unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }
}

const CONN_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// The epoll backend's state besides the core.
pub(crate) struct EpollBackend {
    ep: Epoll,
    waker_fd: RawFd,
    accept_paused: bool,
    buf: Vec<u8>,
    /// The pieces of one vectored write, filled per flush.
    iov: Box<Iovecs>,
    events: Vec<libc::epoll_event>,
    /// Connections whose read budget ran out with bytes left (slot,
    /// generation), and the list being worked through.
    again: Vec<(u32, u32)>,
    again_now: Vec<(u32, u32)>,
    /// Per slot: the last write hit EAGAIN, so no write is tried until the
    /// EPOLLOUT edge (a non-reader that every broadcast marks dirty would
    /// otherwise cost a failing `send` per iteration). Cleared when the
    /// slot's socket closes.
    blocked: Vec<bool>,
}

impl EpollBackend {
    pub fn new<H: Handler>(core: &Core<H>) -> io::Result<EpollBackend> {
        let ep = Epoll::new()?;
        let waker_fd = core.ctx.shared.waker.fd.as_raw_fd();
        ep.add(waker_fd, libc::EPOLLIN as u32, WAKER_TOKEN)?;
        if let Some(l) = &core.listener {
            ep.add(l.as_raw_fd(), libc::EPOLLIN as u32, LISTENER_TOKEN)?;
        }
        Ok(EpollBackend {
            ep,
            waker_fd,
            accept_paused: false,
            buf: vec![0u8; core.config().recv_buffer_size],
            iov: Box::new([crate::conn::EMPTY_IOV; crate::conn::MAX_IOV]),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
            again: Vec::new(),
            again_now: Vec::new(),
            blocked: Vec::new(),
        })
    }

    /// Accepts everything waiting on this reactor's own listener.
    fn accept_all<H: Handler>(&mut self, core: &mut Core<H>) {
        loop {
            let Some(l) = core.listener.as_ref() else {
                return;
            };
            match l.accept() {
                Ok((stream, peer)) => {
                    if let Some(slot) = core.accept_stream(stream, peer)
                        && let Err(e) = self.watch(core, slot)
                    {
                        tracing::warn!("epoll_ctl add failed: {e}");
                        core.abandon(slot, ConnectError::Engine("socket setup failed".into()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors or memory: stop watching the
                    // listener until the next tick rather than spinning on
                    // the error.
                    tracing::warn!("accept: {e}; pausing accepts for a tick");
                    self.ep.del(l.as_raw_fd());
                    self.accept_paused = true;
                    return;
                }
            }
        }
    }
}

impl<H: Handler> IoBackend<H> for EpollBackend {
    fn poll(&mut self, core: &mut Core<H>, timeout: Duration) -> io::Result<()> {
        let n = match self.ep.wait(&mut self.events, timeout) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        core.refresh_clock();
        for i in 0..n {
            let (bits, tok) = (self.events[i].events, self.events[i].u64);
            if tok == WAKER_TOKEN {
                let mut v = 0u64;
                // SAFETY: reads 8 bytes into a valid u64 from our eventfd.
                unsafe { libc::read(self.waker_fd, (&mut v as *mut u64).cast(), 8) };
                core.woken();
                continue;
            }
            if tok == LISTENER_TOKEN {
                self.accept_all(core);
                continue;
            }
            let slot = tok as u32;
            if core.generation(slot) != Some((tok >> 32) as u32) {
                continue;
            }
            if core.is_connecting(slot) {
                core.on_connect_ready(slot);
            }
            if bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32
                != 0
            {
                // The peer's FIN may have come with this edge: then no
                // later edge will report it, so read on until 0.
                let peer_done =
                    bits & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0;
                if read_some(core, slot, &mut self.buf, peer_done) {
                    self.again.push((slot, (tok >> 32) as u32));
                }
            }
            if bits & libc::EPOLLOUT as u32 != 0 {
                if let Some(b) = self.blocked.get_mut(slot as usize) {
                    *b = false;
                }
                core.mark_dirty(slot);
            }
        }
        // Connections left readable by their budget in the last iteration.
        std::mem::swap(&mut self.again, &mut self.again_now);
        for (slot, generation) in std::mem::take(&mut self.again_now) {
            if core.generation(slot) == Some(generation)
                && read_some(core, slot, &mut self.buf, true)
            {
                self.again.push((slot, generation));
            }
        }
        Ok(())
    }

    /// Watches a socket; a connecting one reports the connect's outcome as
    /// writable (EPOLLOUT) or failed (EPOLLERR/HUP).
    fn watch(&mut self, core: &mut Core<H>, slot: u32) -> io::Result<()> {
        let (Some(c), Some(generation)) = (core.conn(slot), core.generation(slot)) else {
            return Ok(());
        };
        self.ep
            .add(c.raw_fd(), CONN_EVENTS, token(slot, generation))
    }

    /// Writes the connection's queue until done or EAGAIN; sends FIN after
    /// the last byte of a closing connection and closes those that are
    /// done (dropping the slot closes the descriptor, which also leaves
    /// the epoll set).
    fn flush(&mut self, core: &mut Core<H>, slot: u32) -> io::Result<()> {
        let Some(fd) = core.conn(slot).map(|c| c.raw_fd()) else {
            return Ok(());
        };
        let i = slot as usize;
        if self.blocked.len() <= i {
            self.blocked.resize(i + 1, false);
        }
        let iov = &mut *self.iov;
        while !self.blocked[i]
            && let Some(n) = core.next_iovecs(slot, iov)
        {
            if n == 0 {
                break;
            }
            let r = if n == 1 {
                // SAFETY: writes from the live slice the iovec describes;
                // MSG_NOSIGNAL turns a peer reset into EPIPE instead of
                // SIGPIPE.
                unsafe { libc::send(fd, iov[0].iov_base, iov[0].iov_len, libc::MSG_NOSIGNAL) }
            } else {
                // SAFETY: the msghdr points at our `n` iovecs, each
                // describing live queued bytes (see `Core::next_iovecs`).
                unsafe { libc::sendmsg(fd, &msghdr(&mut iov[..n]), libc::MSG_NOSIGNAL) }
            };
            if r >= 0 {
                core.on_written(slot, r as usize);
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                // EPOLLOUT (edge) will bring us back.
                io::ErrorKind::WouldBlock => self.blocked[i] = true,
                io::ErrorKind::Interrupted => continue,
                _ => {
                    tracing::debug!("send failed: {e}");
                    core.on_io_error(slot);
                }
            }
            break;
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
                self.blocked[i] = false;
                core.remove(slot);
            }
        }
        Ok(())
    }

    fn busy(&self) -> bool {
        !self.again.is_empty()
    }

    fn on_tick(&mut self, core: &mut Core<H>) -> io::Result<()> {
        if self.accept_paused
            && let Some(l) = &core.listener
        {
            self.accept_paused = false;
            self.ep
                .add(l.as_raw_fd(), libc::EPOLLIN as u32, LISTENER_TOKEN)?;
        }
        Ok(())
    }
}

/// Reads until the socket is drained (edge-triggered) or the connection's
/// budget for this iteration is spent, feeding the core; a closing
/// connection's input is read and discarded until the peer's FIN.
/// `peer_done`: the event reported a hang-up, so a short read is not the
/// end (the EOF behind the data brings no new edge). Returns true when the
/// budget ran out with the socket possibly still readable.
fn read_some<H: Handler>(core: &mut Core<H>, slot: u32, buf: &mut [u8], peer_done: bool) -> bool {
    for _ in 0..READS_PER_ITERATION {
        let Some(fd) = core
            .conn(slot)
            .filter(|c| c.io.closing != Closing::Abandoned && !c.io.read_closed)
            .map(|c| c.raw_fd())
        else {
            return false;
        };
        // A frame with more payload to come than the receive buffer holds
        // is read straight into its message's buffer (no copy).
        let (r, asked, err) = match core.lend_direct(slot, buf.len()) {
            Some(mut loan) => {
                let spare = loan.spare();
                let asked = spare.len();
                // SAFETY: reads at most `asked` bytes into the loan's spare
                // capacity, which stays put while we hold the loan.
                let r = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), asked) };
                // Before the callbacks can touch errno.
                let err = (r < 0).then(io::Error::last_os_error);
                if r > 0 {
                    // SAFETY: the read initialised `r` <= `asked` bytes.
                    unsafe { loan.assume_filled(r as usize) };
                }
                core.direct_done(slot, loan);
                (r, asked, err)
            }
            None => {
                // SAFETY: reads into our buffer of `buf.len()` bytes.
                let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                let err = (r < 0).then(io::Error::last_os_error);
                if r > 0 {
                    core.on_data(slot, &mut buf[..r as usize]);
                }
                (r, buf.len(), err)
            }
        };
        if r > 0 {
            if (r as usize) < asked && !peer_done {
                // A short read drained the socket; a new arrival brings a
                // new edge.
                return false;
            }
        } else if r == 0 {
            core.on_eof(slot);
            return false;
        } else if let Some(e) = err {
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
