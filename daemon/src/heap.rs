//! Giving freed heap back to the kernel after a one-off peak.
//!
//! Loading the BPF object parses the kernel's BTF and relocates every
//! program: some 18 MiB of short-lived allocations. glibc returns freed
//! memory to the kernel only from the top of the heap, so when a
//! long-lived allocation lands above that peak, the whole peak stays
//! resident for the daemon's life (measured: the steady RSS was 23 or
//! 5 MiB of heap from one start to the next, depending on where such an
//! allocation landed).

/// Releases the free pages of every malloc arena (glibc's `malloc_trim`).
pub fn return_freed_memory() {
    // SAFETY: malloc_trim only inspects and trims the allocator's own free
    // lists; it is thread-safe and takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}
