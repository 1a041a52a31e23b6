//! Settings of the process's memory allocator, which each binary (the CLI and daemon, the
//! desktop app) applies first thing in `main`, before any thread starts.

/// glibc's malloc gives threads that contend for it arenas of their own (up to eight per core)
/// and keeps what is freed in each. Syncing 100,000 small files, that was about 30 % of both
/// daemons' peak RSS (four 64 MiB arenas fully resident on the receiver); with two arenas the
/// peak went from 135/207 MB to 97/144 MB in the same time (BENCHMARKS.md, issue 21). Other
/// C libraries and systems are left as they are.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only sets a tunable of the allocator; a value it refuses is ignored.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
