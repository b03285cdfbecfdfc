//! The executable's own image, for handing start-up memory back (`sasrelay::daemon::memory`
//! says when and why): [`release`] drops the page-table entries of the executable's loadable
//! segments that are mapped read-only and never written, and has mimalloc return the free
//! memory it caches.
//!
//! Only ever a page that cannot hold anything written: writable segments and the RELRO range
//! (relocated at load, so its pages are private copies) are left out, and a binary with text
//! relocations is left alone entirely. Dropping such a page's entry (`madvise(MADV_DONTNEED)`
//! on a private file mapping never written) only makes the next access map the same file page
//! again, from the page cache.

#![allow(unsafe_code)]

/// Drops what [`segments::read_only_ranges`] finds and has mimalloc give back its cache;
/// returns the bytes of mappings dropped.
pub fn release() -> usize {
    let mut dropped = 0;
    for (start, end) in segments::read_only_ranges() {
        if segments::drop_mapping(start, end) {
            dropped += end - start;
        }
    }
    // SAFETY: `mi_collect` only returns free memory mimalloc holds; callable from any thread.
    unsafe { libmimalloc_sys::mi_collect(true) };
    dropped
}

/// The executable's own program headers, read through `dl_iterate_phdr`.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod segments {
    /// `d_tag` of a dynamic entry saying the code has relocations (ELF: `DT_TEXTREL`).
    const DT_TEXTREL: i64 = 22;
    /// `DT_FLAGS`, whose `DF_TEXTREL` bit says the same.
    const DT_FLAGS: i64 = 30;
    const DF_TEXTREL: u64 = 0x4;
    /// `PF_W`: the segment is writable.
    const PF_W: u32 = 0x2;

    /// One `Elf64_Dyn`.
    #[repr(C)]
    struct Dyn {
        tag: i64,
        val: u64,
    }

    /// Page-aligned `[start, end)` ranges of the executable that are mapped read-only and
    /// never written: its loadable segments without `PF_W`, less the RELRO range. Empty when
    /// the image cannot be read or has text relocations.
    pub fn read_only_ranges() -> Vec<(usize, usize)> {
        let mut found = Found::default();
        // SAFETY: the callback only reads the `dl_phdr_info` it is handed, and the program
        // headers and dynamic section it points to, which stay mapped for the process's life;
        // `data` is the `Found` borrowed for this call.
        unsafe {
            libc::dl_iterate_phdr(Some(visit), (&raw mut found).cast());
        }
        if found.text_relocations {
            return Vec::new();
        }
        let page = page_size();
        let mut out = Vec::new();
        for &(start, end) in &found.read_only {
            for (s, e) in minus(start, end, found.relro) {
                let s = s.div_ceil(page) * page;
                let e = e / page * page;
                if s < e {
                    out.push((s, e));
                }
            }
        }
        out
    }

    /// Drops the page-table entries of `[start, end)`; true when the kernel did.
    pub fn drop_mapping(start: usize, end: usize) -> bool {
        // SAFETY: `[start, end)` is page-aligned and lies inside a read-only, never-written
        // segment of this executable (see `read_only_ranges`): dropping its entries only makes
        // the next access map the same file page again.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) == 0 }
    }

    fn page_size() -> usize {
        // SAFETY: `sysconf` reads a constant of the system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(page)
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or(4096)
    }

    /// `[start, end)` without `cut`, as up to two ranges.
    fn minus(start: usize, end: usize, cut: Option<(usize, usize)>) -> Vec<(usize, usize)> {
        match cut {
            Some((cs, ce)) if cs < end && ce > start => {
                [(start, cs.max(start)), (ce.min(end), end)]
                    .into_iter()
                    .filter(|(s, e)| s < e)
                    .collect()
            }
            _ => vec![(start, end)],
        }
    }

    #[derive(Default)]
    struct Found {
        read_only: Vec<(usize, usize)>,
        relro: Option<(usize, usize)>,
        text_relocations: bool,
    }

    /// The first object `dl_iterate_phdr` visits is the main program: read it, then stop.
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: (the caller's) `info` is valid for this call, `data` is our `Found`.
        let (info, found) = unsafe { (&*info, &mut *data.cast::<Found>()) };
        let base = info.dlpi_addr as usize;
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        for h in headers {
            let start = base + h.p_vaddr as usize;
            let end = start + h.p_memsz as usize;
            match h.p_type {
                libc::PT_LOAD if h.p_flags & PF_W == 0 => found.read_only.push((start, end)),
                libc::PT_GNU_RELRO => found.relro = Some((start, end)),
                libc::PT_DYNAMIC => {
                    let mut entry = start as *const Dyn;
                    // SAFETY: the dynamic section is an array of `Elf64_Dyn` ending with
                    // `DT_NULL` (tag 0), mapped at `start`.
                    unsafe {
                        while (*entry).tag != 0 {
                            let d = &*entry;
                            if d.tag == DT_TEXTREL || (d.tag == DT_FLAGS && d.val & DF_TEXTREL != 0)
                            {
                                found.text_relocations = true;
                            }
                            entry = entry.add(1);
                        }
                    }
                }
                _ => {}
            }
        }
        1
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_code_of_this_binary_is_among_the_ranges() {
            let ranges = read_only_ranges();
            let here = the_code_of_this_binary_is_among_the_ranges as *const () as usize;
            assert!(
                ranges.iter().any(|&(s, e)| s <= here && here < e),
                "{here:#x} not in {ranges:x?}"
            );
            let page = page_size();
            assert!(
                ranges
                    .iter()
                    .all(|&(s, e)| s % page == 0 && e % page == 0 && s < e)
            );
        }

        #[test]
        fn writable_data_is_never_among_the_ranges() {
            static mut WRITTEN: u64 = 7;
            // SAFETY: a test-local static, read and written on this thread only.
            let addr = unsafe {
                WRITTEN += 1;
                (&raw const WRITTEN) as usize
            };
            assert!(
                read_only_ranges()
                    .iter()
                    .all(|&(s, e)| !(s <= addr && addr < e)),
                "a writable static at {addr:#x} was counted read-only"
            );
        }

        #[test]
        fn relro_is_cut_out() {
            assert_eq!(minus(0, 100, Some((40, 60))), vec![(0, 40), (60, 100)]);
            assert_eq!(minus(0, 100, Some((0, 60))), vec![(60, 100)]);
            assert_eq!(minus(0, 100, Some((100, 160))), vec![(0, 100)]);
            assert_eq!(minus(0, 100, None), vec![(0, 100)]);
        }
    }
}

/// Elsewhere: nothing is dropped.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod segments {
    pub fn read_only_ranges() -> Vec<(usize, usize)> {
        Vec::new()
    }

    pub fn drop_mapping(_start: usize, _end: usize) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dropping the mappings is harmless: the code runs on, and a static string in the
    /// read-only data reads the same afterwards.
    /// The tests that release run one at a time: a release in one would otherwise drop the
    /// pages the other just measured.
    static RELEASING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn the_process_runs_on_after_a_release() {
        let _one = RELEASING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        static TEXT: &str = "read-only data that must read the same after the release";
        let before: String = TEXT.to_string();
        let dropped = release();
        assert!(dropped > 0, "nothing dropped");
        assert_eq!(TEXT, before);
        assert_eq!(
            (1..=100u64).map(|n| n * n).sum::<u64>(),
            338_350,
            "code runs after its pages were dropped"
        );
    }

    /// The release covers the segment holding this test's code. (Whether its pages then
    /// stay unmapped depends on what other threads execute meanwhile, fault-around mapping
    /// 64 KiB at a time, so that is measured on a mapping nobody else touches, below.)
    #[cfg(target_os = "linux")]
    #[test]
    fn the_release_covers_this_code() {
        let _one = RELEASING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let here = the_release_covers_this_code as *const () as usize;
        let (start, end) = segments::read_only_ranges()
            .into_iter()
            .find(|&(s, e)| s <= here && here < e)
            .expect("this code among the read-only ranges");
        let dropped = release();
        assert!(
            dropped >= end - start,
            "{dropped} bytes dropped, the code segment alone is {}",
            end - start
        );
    }

    /// What the release does to a read-only private file mapping, the kind the loader makes
    /// of the executable's code: every page leaves the page tables (and reads the same
    /// after). The mapping is this test's own, so nothing maps its pages back meanwhile.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_dropped_file_mapping_is_no_longer_resident() {
        use std::os::fd::AsRawFd;
        let exe = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        let pages = 64;
        let len = pages * 4096;
        assert!(exe.metadata().unwrap().len() >= len as u64);
        // SAFETY: a new read-only private mapping of an open file, unmapped below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                exe.as_raw_fd(),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        let start = addr as usize;
        let read = || -> Vec<u8> {
            (0..pages)
                .map(|p| {
                    // SAFETY: every page lies inside the mapping just made.
                    unsafe { std::ptr::read_volatile((start + p * 4096) as *const u8) }
                })
                .collect()
        };
        let first = read();
        let before = resident_kib_of_mapping(start).expect("mapping in smaps");
        assert!(segments::drop_mapping(start, start + len));
        let after = resident_kib_of_mapping(start).expect("mapping in smaps");
        let again = read();
        // SAFETY: the mapping made above, no longer used.
        unsafe { libc::munmap(addr, len) };
        assert_eq!(before, (len / 1024) as u64, "every page read was resident");
        assert_eq!(after, 0, "resident {before} KiB before, {after} KiB after");
        assert_eq!(first, again, "the pages read the same after");
    }

    /// `Rss` of the mapping in `/proc/self/smaps` that holds `addr`.
    fn resident_kib_of_mapping(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            let range = line
                .split_whitespace()
                .next()
                .and_then(|r| r.split_once('-'));
            if let Some((s, e)) = range.and_then(|(s, e)| {
                Some((
                    usize::from_str_radix(s, 16).ok()?,
                    usize::from_str_radix(e, 16).ok()?,
                ))
            }) {
                inside = s <= addr && addr < e;
            } else if inside && let Some(v) = line.strip_prefix("Rss:") {
                return v.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
        None
    }
}
