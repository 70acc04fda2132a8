//! io_uring's provided-buffer ring: receive buffers the kernel picks from
//! only when bytes arrive (an idle connection holds none).

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// The buffer group id of the one ring per reactor.
pub(super) const BGID: u16 = 0;

/// A provided-buffer ring: `entries` buffers of `size` bytes that the
/// kernel fills on demand.
pub(super) struct BufRing {
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    entries: u16,
    tail: u16,
    bufs: Vec<u8>,
    size: usize,
}

impl BufRing {
    pub fn new(uring: &IoUring, entries: u16, size: usize) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two());
        let ring_bytes = entries as usize * std::mem::size_of::<BufRingEntry>();
        // SAFETY: anonymous private mapping; checked for MAP_FAILED. The
        // kernel wants the ring page-aligned, which mmap guarantees.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut br = BufRing {
            ring: ptr.cast(),
            ring_bytes,
            entries,
            tail: 0,
            bufs: vec![0u8; entries as usize * size],
            size,
        };
        for bid in 0..entries {
            br.push(bid);
        }
        br.publish();
        // SAFETY: the ring memory and the buffers stay alive until this
        // BufRing is dropped, and `UringBackend` unregisters the ring and
        // drops the IoUring before dropping the BufRing (`close_all`, or
        // field order).
        unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(ptr as u64, entries, BGID, 0)?;
        }
        Ok(br)
    }

    /// Hands buffer `bid` back to the kernel (visible after `publish`).
    pub fn push(&mut self, bid: u16) {
        let idx = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: idx < entries, so the entry is inside the mapping. The
        // kernel only reads entries between its head and our published tail,
        // and this one is past the published tail.
        unsafe {
            let e = &mut *self.ring.add(idx);
            e.set_addr(self.bufs.as_ptr().add(bid as usize * self.size) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes pushed buffers with a release store of the tail.
    pub fn publish(&self) {
        // SAFETY: `tail` points into the first ring entry (the shared tail
        // field); the kernel reads it with acquire semantics.
        unsafe {
            let t = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*t).store(self.tail, Ordering::Release);
        }
    }

    pub fn buf(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = bid as usize * self.size;
        &mut self.bufs[start..start + len.min(self.size)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; the kernel no longer uses it
        // (unregistered, or the ring is gone).
        unsafe { libc::munmap(self.ring.cast(), self.ring_bytes) };
    }
}
