//! The io_uring backend (see ARCHITECTURE.md).

use std::io;

/// Checks that an io_uring instance can be created here (ENOSYS, EPERM and
/// `kernel.io_uring_disabled` all fail this).
pub(crate) fn probe() -> io::Result<()> {
    io_uring::IoUring::new(8).map(drop)
}

/// Whether [`run`] drives io_uring itself yet.
pub(crate) const SUPPORTED: bool = false;

/// Until the io_uring loop lands, a reactor asked for io_uring explicitly
/// runs the epoll loop and says so.
pub(crate) fn run<H: crate::Handler>(core: super::Core<H>) -> io::Result<()> {
    tracing::warn!("io_uring loop not built yet: running epoll");
    super::epoll::run(core)
}
