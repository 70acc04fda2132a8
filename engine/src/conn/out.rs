//! A connection's send queue.

/// Send buffers a busy connection keeps between flushes: enough for a
/// 256 KiB message and its header. Freeing and re-allocating a 64 KiB+
/// buffer per message made glibc trim and re-fault the heap top every
/// time (page faults were 13% of the server's cycles echoing 64 KiB
/// messages). A connection that goes quiet still gives them back after
/// two ticks ([`OutQueue::release`]), so idle connections hold nothing.
const KEEP_CAPACITY: usize = (256 << 10) + 64;

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
    pub fn trim(&mut self, streaming: bool) {
        if self.is_empty() && !self.in_flight {
            if !streaming || self.capacity() > KEEP_CAPACITY {
                self.release();
            } else {
                self.sending.clear();
                self.pending.clear();
                self.sent = 0;
            }
        }
    }

    /// Gives all memory back (nothing queued): an idle connection should
    /// hold no buffers.
    pub fn release(&mut self) {
        if self.is_empty() && !self.in_flight {
            self.sending = Vec::new();
            self.pending = Vec::new();
            self.sent = 0;
        }
    }

    /// Bytes of buffer held.
    pub fn capacity(&self) -> usize {
        self.sending.capacity() + self.pending.capacity()
    }
}
