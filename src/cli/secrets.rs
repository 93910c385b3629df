//! The password of a `mysql://user:password@host` URL given on the command line, hidden from
//! the process list once the arguments are parsed, as the mysql client does: its bytes in the
//! process's own argument area are overwritten with `x`, so `ps` and `/proc/PID/cmdline` show
//! `mysql://user:xxxx@host` for the rest of a run that may last days. (The shell's history and
//! the moment before the overwrite still saw it: MYSQL_PWD or an option file is better.)

/// Where the passwords of the source URLs inside one argument are: for each `mysql://` or
/// `mariadb://` (any case), the bytes between the `:` after the user and the `@` that ends the
/// user information.
pub fn password_spans(arg: &[u8]) -> Vec<std::ops::Range<usize>> {
    let lower = arg.to_ascii_lowercase();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(scheme) = ["mysql://", "mariadb://"].iter().filter_map(|s| find(&lower[from..], s.as_bytes()).map(|i| from + i + s.len())).min() {
        let rest = &arg[scheme..];
        // The authority ends at the first `/`, `?`, `#` or space; the user information at its last `@`.
        let end = rest.iter().position(|b| matches!(b, b'/' | b'?' | b'#' | b' ')).unwrap_or(rest.len());
        if let Some(at) = rest[..end].iter().rposition(|&b| b == b'@') {
            if let Some(colon) = rest[..at].iter().position(|&b| b == b':').filter(|c| c + 1 < at) {
                spans.push(scheme + colon + 1..scheme + at);
            }
        }
        from = scheme + end;
    }
    spans
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Overwrites the password of every source URL among the process's arguments (Linux, glibc:
/// the argument area as `main` received it). Returns how many it hid.
///
/// # Safety
/// Call it from `main` once the arguments are parsed and before any other thread starts:
/// `std::env::args` reads the same bytes without synchronisation.
pub unsafe fn hide_passwords_from_process_list() -> usize {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        argv::hide()
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod argv {
    use std::ffi::{c_char, c_int, CStr};
    use std::sync::atomic::{AtomicIsize, AtomicPtr, Ordering};

    static ARGC: AtomicIsize = AtomicIsize::new(0);
    static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

    /// glibc calls the functions of `.init_array` with (argc, argv, envp) before `main`; the
    /// standard library keeps its own copy the same way.
    #[used]
    #[link_section = ".init_array.00099"]
    static KEEP_ARGV: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = keep;

    extern "C" fn keep(argc: c_int, argv: *mut *mut c_char, _env: *mut *mut c_char) {
        ARGC.store(argc as isize, Ordering::Relaxed);
        ARGV.store(argv, Ordering::Relaxed);
    }

    pub fn hide() -> usize {
        let (argc, argv) = (ARGC.load(Ordering::Relaxed), ARGV.load(Ordering::Relaxed));
        if argv.is_null() {
            return 0;
        }
        let mut hidden = 0;
        for i in 0..argc.max(0) as usize {
            // SAFETY: glibc passed argc pointers to NUL-terminated strings that live as long as
            // the process; each is overwritten within its own length, its NUL kept.
            unsafe {
                let p = *argv.add(i);
                if p.is_null() {
                    continue;
                }
                let len = CStr::from_ptr(p).to_bytes().len();
                let bytes = std::slice::from_raw_parts_mut(p as *mut u8, len);
                for span in super::password_spans(bytes) {
                    bytes[span].fill(b'x');
                    hidden += 1;
                }
            }
        }
        hidden
    }
}

#[cfg(test)]
mod tests {
    use super::password_spans;

    #[test]
    fn the_passwords_of_source_urls_are_found_in_an_argument() {
        fn spans(s: &str) -> Vec<&str> {
            password_spans(s.as_bytes()).into_iter().map(|r| &s[r]).collect()
        }
        assert_eq!(spans("mysql://bob:s%40cret@db:3306"), vec!["s%40cret"]);
        assert_eq!(spans("--source=mysql://bob:p:w@db/x?ssl-mode=required"), vec!["p:w"]);
        assert_eq!(spans("mariadb://u:pw@h"), vec!["pw"]);
        assert_eq!(spans("MySQL://u:Upper@h"), vec!["Upper"], "the scheme in any case");
        assert_eq!(spans("url = \"mysql://a:one@h\" and mysql://b:two@k/db"), vec!["one", "two"], "every URL of an argument");
        assert!(spans("mysql://bob@db:3306").is_empty(), "no password");
        assert!(spans("mysql://db:3306/a@b").is_empty(), "an @ past the authority");
        assert!(spans("mysql://bob:@db").is_empty(), "an empty password");
        assert!(spans("s3://bucket/run").is_empty());
    }
}
