//! A connection's send queue.

use bytes::Bytes;

/// Payloads at least this large, held as `Bytes` (a reassembled message
/// being echoed, a shared broadcast), are queued by reference and sent
/// vectored instead of copied into the queue's buffer.
pub(crate) const SPLICE_MIN: usize = 4096;

/// Most payloads queued by reference per batch; past it they are copied
/// (a batch goes out in one vectored write of at most [`MAX_IOV`] pieces).
const MAX_SPLICES: usize = 32;

/// Most pieces one vectored write takes (a buffer run and a spliced
/// payload per splice, and the run after the last).
pub(crate) const MAX_IOV: usize = 2 * MAX_SPLICES + 1;

/// Send buffers a busy connection keeps between flushes: enough for a
/// 256 KiB message and its header. Freeing and re-allocating a 64 KiB+
/// buffer per message made glibc trim and re-fault the heap top every
/// time (page faults were 13% of the server's cycles echoing 64 KiB
/// messages). A connection that goes quiet still gives them back after
/// two ticks ([`OutQueue::release`]), so idle connections hold nothing.
pub(crate) const KEEP_CAPACITY: usize = (256 << 10) + 64;

/// A reactor's large send buffers, reused instead of allocated and freed
/// per big message: a 1 MiB buffer freed to glibc and allocated again made
/// it trim and re-fault the heap (page faults and memcg charging were a
/// third of the server's cycles echoing 1 MiB messages on io_uring).
/// Bounded ([`POOL_MAX_BYTES`], [`POOL_MAX_BUFS`]) and emptied after a
/// tick in which nobody took a buffer, so a quiet reactor holds nothing.
#[derive(Debug, Default)]
pub(crate) struct BufPool {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
    used: bool,
}

/// Most bytes of buffer capacity one reactor's pool keeps.
pub(crate) const POOL_MAX_BYTES: usize = 32 << 20;
/// Most buffers one reactor's pool keeps.
pub(crate) const POOL_MAX_BUFS: usize = 64;

/// Large incoming messages are reassembled in pooled buffers too.
impl ringwire_parser::BufferSource for BufPool {
    fn take_buffer(&mut self, capacity: usize) -> bytes::BytesMut {
        // Both conversions keep the allocation (a unique `Bytes` made
        // from a `Vec` becomes a `BytesMut` over the same memory): see
        // `pooled_message_buffers_round_trip`.
        bytes::BytesMut::from(Bytes::from(self.take(capacity)))
    }
}

impl BufPool {
    /// An empty buffer with room for at least `len` bytes: a pooled one if
    /// one is large enough, else a new one.
    pub fn take(&mut self, len: usize) -> Vec<u8> {
        self.used = true;
        match self.bufs.iter().rposition(|b| b.capacity() >= len) {
            Some(i) => {
                let b = self.bufs.swap_remove(i);
                self.bytes -= b.capacity();
                b
            }
            None => Vec::with_capacity(len),
        }
    }

    /// Takes back a buffer a connection no longer needs; small ones (a
    /// connection keeps those itself) and any past the bounds are freed.
    pub fn give(&mut self, mut b: Vec<u8>) {
        let cap = b.capacity();
        if cap <= KEEP_CAPACITY
            || self.bytes + cap > POOL_MAX_BYTES
            || self.bufs.len() >= POOL_MAX_BUFS
        {
            return;
        }
        b.clear();
        self.bytes += cap;
        self.bufs.push(b);
    }

    /// Once per tick: a pool nobody took from since the last tick gives
    /// its memory back.
    pub fn tick(&mut self) {
        if !std::mem::take(&mut self.used) {
            self.bufs = Vec::new();
            self.bytes = 0;
        }
    }

    /// Takes back the buffer of a payload sent by reference when nobody
    /// else holds it (a reassembled message that was echoed).
    pub fn give_bytes(&mut self, b: Bytes) {
        if b.len() > KEEP_CAPACITY
            && let Ok(m) = b.try_into_mut()
        {
            self.give(Vec::from(m));
        }
    }

    /// Bytes of capacity pooled now.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// An unused iovec slot.
pub(crate) const EMPTY_IOV: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

/// A `msghdr` for a vectored send of `iov` (no address, no control data).
pub(crate) fn msghdr(iov: &mut [libc::iovec]) -> libc::msghdr {
    // SAFETY: msghdr is plain data; all-zero is "no name, no control".
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = iov.as_mut_ptr();
    m.msg_iovlen = iov.len() as _;
    m
}

/// The pieces of one vectored write; a backend keeps one set and fills it
/// per flush ([`OutQueue::fill_iovecs`]).
pub(crate) type Iovecs = [libc::iovec; MAX_IOV];

/// Payloads queued by reference, each after a given length of its batch's
/// buffer: the batch is the buffer's bytes with these spliced in.
#[derive(Debug, Default)]
pub(crate) struct Splices {
    sending: Vec<(usize, Bytes)>,
    sending_bytes: usize,
    pending: Vec<(usize, Bytes)>,
    pending_bytes: usize,
}

/// Outgoing bytes. `sending` belongs to the kernel while a write is in
/// flight (io_uring), so new frames go to `pending`; when `sending` is done
/// the two swap. Large payloads held as `Bytes` are not copied in: they
/// are spliced between the buffer's bytes ([`OutQueue::push_bytes`]) and
/// the batch goes out as one vectored write ([`OutQueue::fill_iovecs`]).
/// Buffers keep their capacity while the connection is busy and give it
/// back when it goes quiet (see [`OutQueue::trim`]).
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    pub sending: Vec<u8>,
    pub pending: Vec<u8>,
    /// Boxed: most connections never splice, and an idle one holds none.
    splices: Option<Box<Splices>>,
    /// Bytes of the `sending` batch (buffer and splices) written.
    pub sent: usize,
    pub in_flight: bool,
}

impl OutQueue {
    pub fn buffered(&self) -> usize {
        let (s, p) = self
            .splices
            .as_ref()
            .map_or((0, 0), |x| (x.sending_bytes, x.pending_bytes));
        self.sending.len() + s - self.sent + self.pending.len() + p
    }

    pub fn is_empty(&self) -> bool {
        self.buffered() == 0
    }

    /// Length of the `sending` batch, splices included.
    fn sending_len(&self) -> usize {
        self.sending.len() + self.splices.as_ref().map_or(0, |x| x.sending_bytes)
    }

    /// True when the `sending` batch is all written.
    pub fn batch_done(&self) -> bool {
        self.sent == self.sending_len()
    }

    /// Queues `payload` by reference after what `pending` holds now.
    /// False (nothing queued) when the batch has as many splices as one
    /// vectored write can take: copy it instead.
    pub fn push_bytes(&mut self, payload: Bytes) -> bool {
        let x = self.splices.get_or_insert_with(Box::default);
        if x.pending.len() >= MAX_SPLICES {
            return false;
        }
        x.pending_bytes += payload.len();
        x.pending.push((self.pending.len(), payload));
        true
    }

    /// Moves `pending` into `sending` when the current batch is done.
    fn rotate(&mut self) {
        if self.batch_done() {
            self.sending.clear();
            self.sent = 0;
            std::mem::swap(&mut self.sending, &mut self.pending);
            if let Some(x) = self.splices.as_mut() {
                x.sending.clear();
                x.sending_bytes = 0;
                std::mem::swap(&mut x.sending, &mut x.pending);
                std::mem::swap(&mut x.sending_bytes, &mut x.pending_bytes);
            }
        }
    }

    /// The bytes to write next, moving `pending` into `sending` when the
    /// current batch is done. Empty when there is nothing to write. Only
    /// for a queue without splices (TLS encrypts a contiguous batch; see
    /// [`OutQueue::fill_iovecs`] otherwise).
    pub fn next_chunk(&mut self) -> &[u8] {
        self.rotate();
        debug_assert!(self.splices.as_ref().is_none_or(|x| x.sending.is_empty()));
        &self.sending[self.sent..]
    }

    /// The rest of the current batch (after moving `pending` in when it is
    /// done) as up to `iov.len()` pieces in order: buffer runs and spliced
    /// payloads. Returns how many were filled (0: nothing to write). The
    /// pointers stay valid until the batch is advanced past them or the
    /// queue is dropped; nothing moves the `sending` batch's memory while
    /// it is unfinished.
    pub fn fill_iovecs(&mut self, iov: &mut [libc::iovec]) -> usize {
        self.rotate();
        let mut n = 0;
        let mut skip = self.sent;
        let mut push = |piece: &[u8]| {
            if n == iov.len() || piece.len() <= skip {
                skip -= piece.len().min(skip);
                return;
            }
            let p = &piece[skip..];
            skip = 0;
            iov[n] = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            n += 1;
        };
        let mut at = 0;
        if let Some(x) = self.splices.as_ref() {
            for (end, bytes) in &x.sending {
                push(&self.sending[at..*end]);
                push(bytes);
                at = *end;
            }
        }
        push(&self.sending[at..]);
        n
    }

    /// Records `n` bytes written from the front of the current batch.
    /// Spliced payloads are released once their batch is written; large
    /// ones nobody else holds go back to `pool`.
    pub fn advance(&mut self, n: usize, pool: &mut BufPool) {
        self.sent += n;
        debug_assert!(self.sent <= self.sending_len());
        if self.batch_done()
            && let Some(x) = self.splices.as_mut()
            && !x.sending.is_empty()
        {
            // Still done: `sent` now counts the buffer's bytes only.
            self.sent -= x.sending_bytes;
            x.sending_bytes = 0;
            for (_, b) in x.sending.drain(..) {
                pool.give_bytes(b);
            }
        }
    }

    /// Drops what is queued and not yet handed to the kernel (`pending`);
    /// returns how many bytes that was.
    pub fn drop_pending(&mut self) -> usize {
        let mut n = self.pending.len();
        self.pending = Vec::new();
        if let Some(x) = self.splices.as_mut() {
            n += x.pending_bytes;
            x.pending = Vec::new();
            x.pending_bytes = 0;
        }
        n
    }

    /// After a flush: a connection that streams messages keeps modest
    /// buffers for its next batch (allocating per batch showed up in
    /// profiles); others (a handshake response) and big buffers go back at
    /// once, so idle connections hold nothing and the heap does not
    /// fragment. [`OutQueue::release`] frees the rest when it goes quiet.
    pub fn trim(&mut self, streaming: bool, pool: &mut BufPool) {
        if self.is_empty() && !self.in_flight {
            if !streaming || self.capacity() > KEEP_CAPACITY {
                self.release(pool);
            } else {
                self.sending.clear();
                self.pending.clear();
                self.sent = 0;
                if let Some(x) = self.splices.as_mut() {
                    x.sending.clear();
                    x.sending_bytes = 0;
                }
            }
        }
    }

    /// Gives all memory back (nothing queued): an idle connection should
    /// hold no buffers; large ones go to the reactor's pool.
    pub fn release(&mut self, pool: &mut BufPool) {
        if self.is_empty() && !self.in_flight {
            pool.give(std::mem::take(&mut self.sending));
            pool.give(std::mem::take(&mut self.pending));
            self.splices = None;
            self.sent = 0;
        }
    }

    /// Makes room for a `len`-byte frame: a large frame into an empty
    /// queue gets a buffer from the pool instead of a fresh allocation.
    pub fn reserve(&mut self, len: usize, pool: &mut BufPool) {
        if len > KEEP_CAPACITY && self.pending.is_empty() && self.pending.capacity() < len {
            let old = std::mem::replace(&mut self.pending, pool.take(len));
            pool.give(old);
        }
    }

    /// Bytes of buffer held.
    pub fn capacity(&self) -> usize {
        self.sending.capacity() + self.pending.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large buffers come back from the pool; small ones, buffers past the
    /// bounds, and an unused pool's buffers are freed.
    #[test]
    fn pool_reuses_large_buffers_within_bounds() {
        let mut pool = BufPool::default();
        let big = pool.take(1 << 20);
        let ptr = big.as_ptr();
        pool.give(big);
        assert_eq!(pool.bytes(), 1 << 20);
        let again = pool.take(512 << 10);
        assert_eq!(again.as_ptr(), ptr, "the pooled buffer is reused");
        assert_eq!(pool.bytes(), 0);
        pool.give(Vec::with_capacity(1024));
        assert_eq!(pool.bytes(), 0, "small buffers are not pooled");
        for _ in 0..(POOL_MAX_BYTES >> 20) + 4 {
            pool.give(Vec::with_capacity(1 << 20));
        }
        assert!(pool.bytes() <= POOL_MAX_BYTES);
        pool.tick(); // a take happened since the last tick: kept
        assert!(pool.bytes() > 0);
        pool.tick(); // nobody took one for a whole tick: freed
        assert_eq!(pool.bytes(), 0);
    }

    /// A message buffer taken from the pool, filled, frozen into the
    /// message's `Bytes`, queued by reference and written comes back to
    /// the pool as the same allocation.
    #[test]
    fn pooled_message_buffers_round_trip() {
        use ringwire_parser::BufferSource;
        let mut pool = BufPool::default();
        pool.give(Vec::with_capacity(1 << 20));
        let mut m = pool.take_buffer(1 << 20);
        assert!(m.capacity() >= 1 << 20);
        assert_eq!(pool.bytes(), 0);
        let ptr = m.as_ptr();
        m.extend_from_slice(&vec![7u8; 600 << 10]);
        let msg = m.freeze();
        let mut q = OutQueue::default();
        assert!(q.push_bytes(msg.clone()));
        drop(msg); // the handler is done with it
        let mut iov = [EMPTY_IOV; MAX_IOV];
        assert_eq!(q.fill_iovecs(&mut iov), 1);
        q.advance(600 << 10, &mut pool);
        assert!(q.is_empty());
        assert!(pool.bytes() >= 1 << 20, "the buffer came back");
        let again = pool.take(1 << 20);
        assert_eq!(again.as_ptr(), ptr, "the same allocation");
    }

    /// A large frame into an empty queue takes a pooled buffer; a queue
    /// that gives its buffers back fills the pool.
    #[test]
    fn queue_reserves_from_and_releases_to_the_pool() {
        let mut pool = BufPool::default();
        pool.give(Vec::with_capacity(2 << 20));
        let mut q = OutQueue::default();
        q.reserve(1 << 20, &mut pool);
        assert!(q.pending.capacity() >= 1 << 20);
        assert_eq!(pool.bytes(), 0);
        q.pending.extend_from_slice(&[1, 2, 3]);
        assert_eq!(q.next_chunk(), &[1, 2, 3]);
        q.advance(3, &mut pool);
        q.trim(true, &mut pool);
        assert!(pool.bytes() >= 1 << 20, "the large buffer went back");
        assert_eq!(q.capacity(), 0);
    }

    /// Writes up to `limit` bytes of the current batch the way a backend
    /// does (iovecs, a short write stopping anywhere), returning them.
    fn write_some(q: &mut OutQueue, limit: usize) -> Vec<u8> {
        let mut iov = [EMPTY_IOV; MAX_IOV];
        let n = q.fill_iovecs(&mut iov);
        let mut out = Vec::new();
        for v in &iov[..n] {
            // SAFETY: the iovecs describe the queue's live bytes.
            let piece = unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) };
            let take = piece.len().min(limit - out.len());
            out.extend_from_slice(&piece[..take]);
            if out.len() == limit {
                break;
            }
        }
        q.advance(out.len(), &mut BufPool::default());
        out
    }

    /// Buffer runs and spliced payloads come out in order, whole, at
    /// every short-write size, with more queued while a batch is
    /// unfinished; spliced payloads are released once written and the
    /// byte count stays exact throughout.
    #[test]
    fn spliced_payloads_go_out_in_order_at_every_split() {
        let big: Vec<Bytes> = (0..3u8)
            .map(|i| Bytes::from(vec![b'A' + i; 5000 + i as usize]))
            .collect();
        for limit in (1..=12_000).step_by(7).chain([1, 2, 3, 4999, 5000, 5001]) {
            let mut q = OutQueue::default();
            let mut want = Vec::new();
            let mut got = Vec::new();
            let queue = |q: &mut OutQueue, want: &mut Vec<u8>, i: usize| {
                q.pending.extend_from_slice(&[i as u8; 3]);
                want.extend_from_slice(&[i as u8; 3]);
                assert!(q.push_bytes(big[i % 3].clone()));
                want.extend_from_slice(&big[i % 3]);
            };
            queue(&mut q, &mut want, 0);
            queue(&mut q, &mut want, 1);
            q.pending.extend_from_slice(b"tail");
            want.extend_from_slice(b"tail");
            let mut rounds = 0;
            while !q.is_empty() {
                assert_eq!(q.buffered(), want.len() - got.len());
                got.extend(write_some(&mut q, limit));
                if rounds == 1 {
                    // Queued while the first batch is half written.
                    queue(&mut q, &mut want, 2);
                }
                rounds += 1;
            }
            assert_eq!(got, want, "short writes of {limit}");
            assert_eq!(q.buffered(), 0);
            assert!(
                big.iter().all(|b| b.is_unique()),
                "written payloads are released"
            );
        }
    }

    /// A batch takes at most `MAX_SPLICES` payloads by reference; the
    /// caller copies past that. Dropping what is pending releases them.
    #[test]
    fn splices_are_bounded_and_dropped_with_pending() {
        let mut q = OutQueue::default();
        let b = Bytes::from(vec![1u8; 5000]);
        for _ in 0..MAX_SPLICES {
            assert!(q.push_bytes(b.clone()));
        }
        assert!(!q.push_bytes(b.clone()));
        assert_eq!(q.buffered(), MAX_SPLICES * 5000);
        assert_eq!(q.drop_pending(), MAX_SPLICES * 5000);
        assert!(q.is_empty());
        assert!(b.is_unique());
    }
}
