//! A connection's send queue.

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

    /// Bytes of capacity pooled now.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Outgoing bytes. `sending` belongs to the kernel while a write is in
/// flight (io_uring), so new frames go to `pending`; when `sending` is done
/// the two swap. Buffers keep their capacity while the connection is busy
/// and give it back when it goes quiet (see [`OutQueue::trim`]).
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    pub sending: Vec<u8>,
    pub sent: usize,
    pub pending: Vec<u8>,
    pub in_flight: bool,
}

impl OutQueue {
    pub fn buffered(&self) -> usize {
        self.sending.len() - self.sent + self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buffered() == 0
    }

    /// The bytes to write next, moving `pending` into `sending` when the
    /// current batch is done. Empty when there is nothing to write.
    pub fn next_chunk(&mut self) -> &[u8] {
        if self.sent == self.sending.len() {
            self.sending.clear();
            self.sent = 0;
            std::mem::swap(&mut self.sending, &mut self.pending);
        }
        &self.sending[self.sent..]
    }

    /// Records `n` bytes written from the front of `next_chunk()`.
    pub fn advance(&mut self, n: usize) {
        self.sent += n;
        debug_assert!(self.sent <= self.sending.len());
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
            }
        }
    }

    /// Gives all memory back (nothing queued): an idle connection should
    /// hold no buffers; large ones go to the reactor's pool.
    pub fn release(&mut self, pool: &mut BufPool) {
        if self.is_empty() && !self.in_flight {
            pool.give(std::mem::take(&mut self.sending));
            pool.give(std::mem::take(&mut self.pending));
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
        q.advance(3);
        q.trim(true, &mut pool);
        assert!(pool.bytes() >= 1 << 20, "the large buffer went back");
        assert_eq!(q.capacity(), 0);
    }
}
