//! The password of a `mysql://user:password@host` URL given on the command line, hidden from
//! the process list once the arguments are parsed, as the mysql client does: its bytes in the
//! process's own argument area are overwritten with `x`, so `ps` and `/proc/PID/cmdline` show
//! `mysql://user:xxxx@host` for the rest of a run that may last days. (The shell's history and
//! the moment before the overwrite still saw it: MYSQL_PWD or an option file is better.)

/// Where the password of a source URL inside one argument is: the bytes between the `:` after
/// the user and the `@` that ends the user information. None when the argument holds none.
pub fn password_span(arg: &[u8]) -> Option<std::ops::Range<usize>> {
    let scheme = ["mysql://", "mariadb://"].iter().find_map(|s| find(arg, s.as_bytes()).map(|i| i + s.len()))?;
    let rest = &arg[scheme..];
    // The authority ends at the first `/`, `?` or `#`; the user information at its last `@`.
    let end = rest.iter().position(|b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    let at = rest[..end].iter().rposition(|&b| b == b'@')?;
    let colon = rest[..at].iter().position(|&b| b == b':')?;
    (colon + 1 < at).then(|| scheme + colon + 1..scheme + at)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Overwrites the password of every source URL among the process's arguments (Linux, glibc:
/// the argument area as `main` received it). Call once the arguments are parsed.
pub fn hide_passwords_from_process_list() -> usize {
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
                if let Some(span) = super::password_span(bytes) {
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
    use super::password_span;

    #[test]
    fn the_password_of_a_source_url_is_found_in_an_argument() {
        fn span(s: &str) -> Option<&str> {
            password_span(s.as_bytes()).map(|r| &s[r])
        }
        assert_eq!(span("mysql://bob:s%40cret@db:3306"), Some("s%40cret"));
        assert_eq!(span("--source=mysql://bob:p:w@db/x?ssl-mode=required"), Some("p:w"));
        assert_eq!(span("mariadb://u:pw@h"), Some("pw"));
        assert_eq!(span("mysql://bob@db:3306"), None, "no password");
        assert_eq!(span("mysql://db:3306/a@b"), None, "an @ past the authority");
        assert_eq!(span("mysql://bob:@db"), None, "an empty password");
        assert_eq!(span("s3://bucket/run"), None);
    }
}
