//! The io_uring backend.
//!
//! - Reads: one multishot recv per connection on a provided-buffer ring
//!   (the kernel picks a buffer only when bytes arrive, so idle connections
//!   hold none). Each completion is parsed in place and its buffer goes
//!   straight back to the ring; a recv that ends (no `IORING_CQE_F_MORE`,
//!   e.g. after ENOBUFS) is re-armed.
//! - Large frames: when a frame has more payload to come than a ring buffer
//!   holds, the multishot recv is cancelled and one-shot recvs read the
//!   rest straight into the message's own buffer (the decoder lends it;
//!   the backend holds the loan until the recv completes, whatever happens
//!   to the connection meanwhile); then the multishot recv is re-armed.
//! - Writes: at the end of each loop iteration every dirty connection gets
//!   one send SQE for its queued bytes (one in flight per connection; short
//!   writes continue from where they stopped).
//! - One `io_uring_enter` per iteration submits everything and waits for
//!   the next completion or the timer tick.
//! - `user_data` is a [`UserData`] (generation << 32 | slot << 8 | op,
//!   checked both ways). A slot is freed only when neither a recv nor a
//!   send of its connection can still complete.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::Duration;

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};

use ringwire_parser::DirectRead;

use super::{Core, IoBackend, MAX_SLOTS};
use crate::conn::{CloseStep, Closing, EMPTY_IOV, Iovecs, MAX_IOV, msghdr};
use crate::handler::Handler;

/// Checks that an io_uring instance can be created here (ENOSYS, EPERM and
/// `kernel.io_uring_disabled` all fail this).
///
/// The probe ring lives on a throwaway thread: tearing a ring down queues
/// task work on the thread that created it, and that interrupts the
/// thread's blocking socket calls with EINTR (the caller's own thread, in
/// an embedding application).
pub(crate) fn probe() -> io::Result<()> {
    std::thread::spawn(|| IoUring::new(8).map(drop))
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("io_uring probe panicked")))
}

/// What an SQE is for; the low byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Op {
    Recv = 1,
    Send = 2,
    Wake = 3,
    Cancel = 4,
    Accept = 5,
    Connect = 6,
    /// A one-shot recv into a decoder's message buffer (a large frame).
    DirectRecv = 7,
}

use super::bufring::{BGID, BufRing};

/// An SQE's `user_data`: generation << 32 | slot << 8 | op. Checked both
/// ways: a slot past [`MAX_SLOTS`] or an unknown op is a bug, not a
/// silently truncated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UserData {
    slot: u32,
    generation: u32,
    op: Op,
}

impl UserData {
    fn conn(slot: u32, generation: u32, op: Op) -> u64 {
        UserData {
            slot,
            generation,
            op,
        }
        .encode()
    }

    /// For SQEs that belong to no connection (wake-up, shared accept).
    fn reactor(op: Op) -> u64 {
        Self::conn(0, 0, op)
    }

    fn encode(self) -> u64 {
        assert!(
            self.slot < MAX_SLOTS,
            "slot {} does not fit user_data",
            self.slot
        );
        (self.generation as u64) << 32 | (self.slot as u64) << 8 | self.op as u64
    }

    fn decode(v: u64) -> Option<UserData> {
        let op = match v & 0xff {
            1 => Op::Recv,
            2 => Op::Send,
            3 => Op::Wake,
            4 => Op::Cancel,
            5 => Op::Accept,
            6 => Op::Connect,
            7 => Op::DirectRecv,
            _ => return None,
        };
        Some(UserData {
            slot: ((v >> 8) & 0xff_ffff) as u32,
            generation: (v >> 32) as u32,
            op,
        })
    }
}

fn build_ring(entries: u32) -> io::Result<IoUring> {
    // Single issuer + deferred task running: completions are processed
    // only when we enter the kernel, with no IPIs in between (6.1+).
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
        .or_else(|_| IoUring::builder().setup_coop_taskrun().build(entries))
        .or_else(|_| IoUring::new(entries))
}

/// Pushes an SQE, submitting first if the queue is full.
fn push(ring: &mut IoUring, e: &squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every buffer an SQE points to (send queues, the wake
        // counter, provided buffers, lent message buffers) outlives the operation: see the
        // slot-freeing rule in `UringBackend::flush` and `close_all`.
        if unsafe { ring.submission().push(e) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

/// What this backend has in flight for one slot besides a send (the
/// core's `OutQueue::in_flight`): the slot is freed only when none of it
/// can still complete.
#[derive(Debug, Clone, Copy, Default)]
struct SlotOps {
    /// A multishot recv (or a connecting socket's poll, or a direct recv)
    /// is armed.
    recv: bool,
    /// The armed recv is a direct one (its loan is in `loans`).
    direct: bool,
    /// The send in flight is a SENDMSG (its msghdr is in `msgs_in_flight`).
    sendmsg: bool,
    /// The multishot recv is being cancelled to switch to direct recvs.
    stopping: bool,
    /// Recvs left in one-shot mode: a connection that just read a large
    /// frame directly arms one buffer-ring recv at a time, so that the next
    /// large frame's payload is not swallowed by a multishot recv before
    /// its header is seen; back to multishot after this many recvs without
    /// a large frame.
    oneshot: u8,
    /// Cancels for this connection's operations are submitted.
    cancelled: bool,
}

/// A vectored send's header and pieces, where the kernel can read them
/// until the send completes.
struct SendMsgBuf {
    hdr: libc::msghdr,
    iov: [libc::iovec; MAX_IOV],
}

impl SendMsgBuf {
    fn boxed() -> Box<SendMsgBuf> {
        let mut iov = [EMPTY_IOV; MAX_IOV];
        Box::new(SendMsgBuf {
            hdr: msghdr(&mut iov[..0]),
            iov,
        })
    }
}

/// The io_uring backend's state besides the core. Fields drop in order:
/// the ring (cancelling what is in flight) before the memory its
/// operations point to.
pub(crate) struct UringBackend {
    ring: IoUring,
    bufs: BufRing,
    wake_buf: Box<u64>,
    waker_fd: RawFd,
    listener_fd: Option<RawFd>,
    accept_paused: bool,
    cqes: Vec<(u64, i32, u32)>,
    /// The pieces of the next send, filled per flush (a SENDMSG copies them
    /// into its own `SendMsgBuf`).
    iov: Box<Iovecs>,
    ops: Vec<SlotOps>,
    /// The msghdr and iovecs of vectored sends in flight, by slot, and
    /// spare ones (at most one per connection sending at once).
    msgs_in_flight: std::collections::HashMap<u32, Box<SendMsgBuf>>,
    #[allow(clippy::vec_box)] // boxed so that handing one out moves no iovecs
    msgs: Vec<Box<SendMsgBuf>>,
    /// Message buffers lent to direct recvs in flight, by slot.
    loans: std::collections::HashMap<u32, DirectRead>,
    /// Frames with at least this much payload to come are read directly.
    direct_min: usize,
    /// Size of the ring's buffers.
    buf_size: u32,
}

/// One-shot recvs a connection arms after a direct read before it goes
/// back to a multishot recv (see `SlotOps::oneshot`).
const ONESHOT_RECVS: u8 = 16;

impl UringBackend {
    pub fn new<H: Handler>(core: &Core<H>) -> io::Result<UringBackend> {
        let ring = build_ring(core.config().ring_entries)?;
        let entries = core.config().recv_buffers.max(2).next_power_of_two();
        let bufs = BufRing::new(&ring, entries, core.config().recv_buffer_size)?;
        let mut b = UringBackend {
            ring,
            bufs,
            wake_buf: Box::new(0u64),
            waker_fd: core.ctx.shared.waker.fd.as_raw_fd(),
            listener_fd: core.listener.as_ref().map(|l| l.as_raw_fd()),
            accept_paused: false,
            cqes: Vec::with_capacity(1024),
            iov: Box::new([EMPTY_IOV; MAX_IOV]),
            ops: Vec::new(),
            loans: std::collections::HashMap::new(),
            msgs_in_flight: std::collections::HashMap::new(),
            msgs: Vec::new(),
            direct_min: core.config().recv_buffer_size,
            buf_size: core.config().recv_buffer_size as u32,
        };
        b.arm_wake()?;
        b.arm_accept()?;
        Ok(b)
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let buf: *mut u64 = &mut *self.wake_buf;
        let e = opcode::Read::new(Fd(self.waker_fd), buf.cast(), 8)
            .build()
            .user_data(UserData::reactor(Op::Wake));
        push(&mut self.ring, &e)
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        match self.listener_fd {
            Some(fd) => push(
                &mut self.ring,
                &opcode::AcceptMulti::new(Fd(fd))
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
                    .user_data(UserData::reactor(Op::Accept)),
            ),
            None => Ok(()),
        }
    }

    fn ops(&mut self, slot: u32) -> &mut SlotOps {
        let i = slot as usize;
        if self.ops.len() <= i {
            self.ops.resize(i + 1, SlotOps::default());
        }
        &mut self.ops[i]
    }

    /// Arms the multishot recv of a connection that still reads.
    fn arm_recv<H: Handler>(&mut self, core: &Core<H>, slot: u32) -> io::Result<()> {
        let (Some(c), Some(generation)) = (core.conn(slot), core.generation(slot)) else {
            return Ok(());
        };
        let fd = c.raw_fd();
        if c.io.closing == Closing::Abandoned || c.io.read_closed || self.ops(slot).recv {
            return Ok(());
        }
        let user_data = UserData::conn(slot, generation, Op::Recv);
        let ops = self.ops(slot);
        ops.recv = true;
        let e = if ops.oneshot > 0 {
            ops.oneshot -= 1;
            opcode::Recv::new(Fd(fd), std::ptr::null_mut(), self.buf_size)
                .buf_group(BGID)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
                .user_data(user_data)
        } else {
            opcode::RecvMulti::new(Fd(fd), BGID)
                .build()
                .user_data(user_data)
        };
        push(&mut self.ring, &e)
    }

    /// A completion moved this connection: if it has a close step to take,
    /// it goes on the flush list.
    fn check_close<H: Handler>(core: &mut Core<H>, slot: u32) {
        if core.close_step(slot) != CloseStep::None {
            core.touch(slot);
        }
    }

    fn on_recv<H: Handler>(
        &mut self,
        core: &mut Core<H>,
        slot: u32,
        generation: u32,
        res: i32,
        flags: u32,
    ) -> io::Result<()> {
        let bid = cqueue::buffer_select(flags);
        let live = core.generation(slot) == Some(generation);
        if res > 0 && live {
            let bid = bid.expect("a recv with data carries its buffer id");
            core.on_data(slot, self.bufs.buf(bid, res as usize));
        }
        if let Some(bid) = bid {
            self.bufs.push(bid);
        }
        if !live {
            return Ok(());
        }
        if res == 0 {
            core.on_eof(slot);
        } else if res < 0 && res != -libc::ENOBUFS && res != -libc::ECANCELED {
            tracing::debug!("recv failed: {}", io::Error::from_raw_os_error(-res));
            core.on_io_error(slot);
        }
        if !cqueue::more(flags) {
            // A closing connection keeps reading (and discarding) until the
            // peer's FIN, unless it was abandoned or its recv cancelled.
            let ops = self.ops(slot);
            ops.recv = false;
            ops.stopping = false;
            if !ops.cancelled && res != 0 {
                if res == -libc::ENOBUFS {
                    // All buffers are out: publish what came back before
                    // asking again.
                    self.bufs.publish();
                }
                self.read_on(core, slot, generation)?;
            }
        } else if res > 0 && core.wants_direct(slot, self.direct_min) {
            // A large frame: stop the multishot recv (what it still
            // delivers is decoded as usual), then read the rest directly.
            let ops = self.ops(slot);
            if !ops.stopping && !ops.cancelled {
                ops.stopping = true;
                let e = opcode::AsyncCancel::new(UserData::conn(slot, generation, Op::Recv))
                    .build()
                    .user_data(UserData::conn(slot, generation, Op::Cancel));
                push(&mut self.ring, &e)?;
            }
        }
        Self::check_close(core, slot);
        Ok(())
    }

    /// Reading goes on after a recv ended: a direct recv into the message
    /// buffer while a large frame's payload is still to come, else the
    /// multishot recv.
    fn read_on<H: Handler>(
        &mut self,
        core: &mut Core<H>,
        slot: u32,
        generation: u32,
    ) -> io::Result<()> {
        let Some(mut loan) = core.lend_direct(slot, self.direct_min) else {
            return self.arm_recv(core, slot);
        };
        let fd = core
            .conn(slot)
            .expect("a loan comes from a live slot")
            .raw_fd();
        let spare = loan.spare();
        let e = opcode::Recv::new(Fd(fd), spare.as_mut_ptr().cast(), spare.len() as u32)
            .build()
            .user_data(UserData::conn(slot, generation, Op::DirectRecv));
        // The loan's memory stays put in the map until the completion.
        self.loans.insert(slot, loan);
        let ops = self.ops(slot);
        ops.recv = true;
        ops.direct = true;
        ops.oneshot = ONESHOT_RECVS;
        push(&mut self.ring, &e)
    }

    /// A direct recv completed: its bytes go back to the decoder with the
    /// loan; reading goes on while the connection reads.
    fn on_direct_recv<H: Handler>(
        &mut self,
        core: &mut Core<H>,
        slot: u32,
        generation: u32,
        res: i32,
    ) -> io::Result<()> {
        let ops = self.ops(slot);
        ops.recv = false;
        ops.direct = false;
        let cancelled = ops.cancelled;
        let Some(mut loan) = self.loans.remove(&slot) else {
            return Ok(());
        };
        if core.generation(slot) != Some(generation) {
            return Ok(());
        }
        if res > 0 {
            // SAFETY: the kernel wrote `res` bytes into the loan's spare
            // capacity, which we asked it to fill at most.
            unsafe { loan.assume_filled(res as usize) };
        }
        core.direct_done(slot, loan);
        if res == 0 {
            core.on_eof(slot);
        } else if res < 0 && res != -libc::ECANCELED {
            tracing::debug!("recv failed: {}", io::Error::from_raw_os_error(-res));
            core.on_io_error(slot);
        } else if res > 0 && !cancelled {
            self.read_on(core, slot, generation)?;
        }
        Self::check_close(core, slot);
        Ok(())
    }

    fn on_accept<H: Handler>(
        &mut self,
        core: &mut Core<H>,
        res: i32,
        flags: u32,
    ) -> io::Result<()> {
        if res >= 0 {
            // SAFETY: the kernel just created this fd for us.
            let stream = unsafe { std::net::TcpStream::from_raw_fd(res) };
            if let Ok(peer) = stream.peer_addr()
                && let Some(slot) = core.accept_stream(stream, peer)
            {
                self.watch(core, slot)?;
            }
        } else if core.shutdown.is_none() {
            tracing::warn!(
                "accept: {}; pausing accepts for a tick",
                io::Error::from_raw_os_error(-res)
            );
        }
        if !cqueue::more(flags) && core.shutdown.is_none() {
            if res < 0 {
                // Out of descriptors or memory: retry on the next tick
                // rather than spinning on the error.
                self.accept_paused = true;
            } else {
                self.arm_accept()?;
            }
        }
        Ok(())
    }
}

impl<H: Handler> IoBackend<H> for UringBackend {
    /// One `io_uring_enter` submits everything queued and waits for a
    /// completion or the timeout; then every completion goes to the core.
    fn poll(&mut self, core: &mut Core<H>, timeout: Duration) -> io::Result<()> {
        let want = usize::from(!timeout.is_zero());
        let ts = Timespec::new()
            .sec(timeout.as_secs())
            .nsec(timeout.subsec_nanos());
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(want, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        core.refresh_clock();
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(user_data, res, flags) in &cqes {
            let Some(UserData {
                slot,
                generation,
                op,
            }) = UserData::decode(user_data)
            else {
                tracing::error!(user_data, "completion with unknown user_data: ignored");
                continue;
            };
            match op {
                Op::Wake => {
                    core.woken();
                    self.arm_wake()?;
                }
                Op::Recv => self.on_recv(core, slot, generation, res, flags)?,
                Op::DirectRecv => self.on_direct_recv(core, slot, generation, res)?,
                Op::Send => {
                    if std::mem::take(&mut self.ops(slot).sendmsg)
                        && let Some(m) = self.msgs_in_flight.remove(&slot)
                    {
                        self.msgs.push(m);
                    }
                    if core.generation(slot) != Some(generation) {
                        continue;
                    }
                    if let Some(c) = core.conn_mut(slot) {
                        c.io.out.in_flight = false;
                    }
                    if res >= 0 {
                        core.on_written(slot, res as usize);
                        core.mark_dirty(slot);
                    } else if res != -libc::ECANCELED {
                        tracing::debug!("send failed: {}", io::Error::from_raw_os_error(-res));
                        core.on_io_error(slot);
                    }
                    Self::check_close(core, slot);
                }
                Op::Accept => self.on_accept(core, res, flags)?,
                Op::Connect => {
                    if core.generation(slot) != Some(generation) {
                        continue;
                    }
                    self.ops(slot).recv = false;
                    core.on_connect_ready(slot);
                    if core.is_reading(slot) {
                        self.arm_recv(core, slot)?;
                    }
                    Self::check_close(core, slot);
                }
                // The cancelled op's own completion tells the outcome.
                Op::Cancel => {}
            }
        }
        self.cqes = cqes;
        self.bufs.publish();
        Ok(())
    }

    /// An accepted socket gets its multishot recv; a connecting one a poll
    /// for writable (connected) or error; its read side starts once the
    /// request is out.
    fn watch(&mut self, core: &mut Core<H>, slot: u32) -> io::Result<()> {
        self.ops(slot).cancelled = false;
        if !core.is_connecting(slot) {
            self.arm_recv(core, slot)?;
            Self::check_close(core, slot);
            return Ok(());
        }
        let (Some(c), Some(generation)) = (core.conn(slot), core.generation(slot)) else {
            return Ok(());
        };
        let e = opcode::PollAdd::new(Fd(c.raw_fd()), libc::POLLOUT as u32)
            .build()
            .user_data(UserData::conn(slot, generation, Op::Connect));
        self.ops(slot).recv = true;
        push(&mut self.ring, &e)
    }

    /// One send in flight per connection: the queued bytes go out in one
    /// SQE (short writes continue from where they stopped). Then the close
    /// step: FIN after the last byte, and close once no operation of the
    /// connection is in flight. Abandoned connections get their send and
    /// recv cancelled first (a peer that never reads would otherwise keep
    /// a send, its buffer and the descriptor forever).
    fn flush(&mut self, core: &mut Core<H>, slot: u32) -> io::Result<()> {
        let (Some(c), Some(generation)) = (core.conn(slot), core.generation(slot)) else {
            return Ok(());
        };
        let fd = c.raw_fd();
        let in_flight = c.io.out.in_flight;
        let iov = &mut *self.iov;
        if !in_flight
            && let Some(n) = core.next_iovecs(slot, iov)
            && n > 0
        {
            let user_data = UserData::conn(slot, generation, Op::Send);
            let e = if n == 1 {
                opcode::Send::new(Fd(fd), iov[0].iov_base.cast(), iov[0].iov_len as u32)
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
                    .user_data(user_data)
            } else {
                // Spliced payloads: one SENDMSG over the pieces. Its msghdr
                // and iovecs stay put (boxed, kept by slot) until the send
                // completes.
                let mut m = self.msgs.pop().unwrap_or_else(SendMsgBuf::boxed);
                m.iov[..n].copy_from_slice(&iov[..n]);
                m.hdr = msghdr(&mut m.iov[..n]);
                let e = opcode::SendMsg::new(Fd(fd), &m.hdr)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build()
                    .user_data(user_data);
                self.msgs_in_flight.insert(slot, m);
                self.ops(slot).sendmsg = true;
                e
            };
            push(&mut self.ring, &e)?;
            if let Some(c) = core.conn_mut(slot) {
                c.io.out.in_flight = true;
            }
        }
        let step = core.close_step(slot);
        match step {
            CloseStep::None => Ok(()),
            CloseStep::Shutdown => {
                // SAFETY: shutdown on the slot's own socket; nothing is in
                // flight on its sending side.
                unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                core.on_fin_sent(slot);
                Ok(())
            }
            CloseStep::Cancel | CloseStep::Close => {
                let in_flight = core.conn(slot).is_some_and(|c| c.io.out.in_flight);
                let ops = *self.ops(slot);
                if !in_flight && !ops.recv {
                    // Nothing in flight refers to the socket: dropping the
                    // slot closes it.
                    self.ops[slot as usize] = SlotOps::default();
                    core.remove(slot);
                    return Ok(());
                }
                if ops.cancelled {
                    return Ok(());
                }
                self.ops(slot).cancelled = true;
                // Cancels by user_data (a hashed lookup in the kernel; a
                // cancel by fd scans every pending request, which made
                // shedding thousands of connections quadratic): the
                // multishot recv or a connecting socket's poll, and a send
                // in flight.
                let armed = [
                    (ops.recv && !ops.direct, Op::Recv),
                    (ops.recv && !ops.direct, Op::Connect),
                    (ops.direct, Op::DirectRecv),
                    (in_flight, Op::Send),
                ];
                for (_, op) in armed.into_iter().filter(|(armed, _)| *armed) {
                    let e = opcode::AsyncCancel::new(UserData::conn(slot, generation, op))
                        .build()
                        .user_data(UserData::conn(slot, generation, Op::Cancel));
                    push(&mut self.ring, &e)?;
                }
                Ok(())
            }
        }
    }

    fn on_tick(&mut self, _core: &mut Core<H>) -> io::Result<()> {
        if self.accept_paused {
            self.accept_paused = false;
            self.arm_accept()?;
        }
        Ok(())
    }

    /// Teardown: the ring goes first (which cancels and reaps what is still
    /// in flight), then every socket and send buffer, then the receive
    /// buffers the ring pointed to.
    fn close_all(self, core: &mut Core<H>) {
        let UringBackend {
            ring,
            bufs,
            wake_buf,
            loans,
            msgs_in_flight,
            ..
        } = self;
        let _ = ring.submitter().unregister_buf_ring(BGID);
        drop(ring);
        drop(loans);
        drop(msgs_in_flight);
        for slot in core.live_slots() {
            core.remove(slot);
        }
        drop(bufs);
        drop(wake_buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for op in [
            Op::Recv,
            Op::Send,
            Op::Wake,
            Op::Cancel,
            Op::Accept,
            Op::Connect,
            Op::DirectRecv,
        ] {
            for (slot, generation) in [(0, 0), (1, 7), (MAX_SLOTS - 1, u32::MAX)] {
                let v = UserData::conn(slot, generation, op);
                assert_eq!(
                    UserData::decode(v),
                    Some(UserData {
                        slot,
                        generation,
                        op
                    })
                );
            }
        }
        assert_eq!(UserData::decode(0), None);
        assert_eq!(UserData::decode(0xff), None);
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn slot_past_the_limit_is_refused() {
        UserData::conn(MAX_SLOTS, 1, Op::Recv);
    }
}
