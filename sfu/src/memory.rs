//! Giving freed heap memory back to the operating system.
//!
//! A participant's peer connections hold many blocks below glibc's mmap
//! threshold (the stack's NACK history alone is 112 KiB per video a
//! subscriber receives); when they are freed glibc keeps the pages, so the
//! resident size stays at the high-water mark of participants present,
//! although nothing is leaked (heaptrack over a 240-step churn: 746 KB
//! still live; glibc's own statistics: 7 MB in use, 45 MB held). The engine
//! calls [`release_freed`] shortly after participants leave, and after
//! subscriber offers (each copies the SDP of every track of the connection
//! several times), so the resident size follows what is live
//! (docs/performance.md, soak and "Memory and joins").

/// Returns free heap pages to the system (glibc's `malloc_trim`); a no-op
/// elsewhere.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and touches only glibc's own
    // allocator state, under that allocator's locks; glibc documents it as
    // MT-Safe, so calling it while other threads allocate is sound.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn releasing_freed_memory_keeps_live_data() {
        let live: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 * 1024]).collect();
        let freed: Vec<Vec<u8>> = (0..64).map(|_| vec![7u8; 64 * 1024]).collect();
        drop(freed);
        super::release_freed();
        assert!(live
            .iter()
            .enumerate()
            .all(|(i, v)| v.iter().all(|&b| b == i as u8)));
    }
}
