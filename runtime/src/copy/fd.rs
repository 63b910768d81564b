//! Thin wrappers over the `*at` system calls `cp` is built from. Every
//! call names a file by a directory descriptor and one component (or, for
//! [`openat2`], a path the kernel resolves under the rules given), so no
//! path is ever resolved again from a string the guest could change.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `RESOLVE_*` flags of openat2(2) (linux/openat2.h).
pub const RESOLVE_NO_XDEV: u64 = 0x01;
/// Refuse `/proc/*/fd/*`-style links.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// Refuse every symbolic link.
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// Refuse to leave the starting directory.
pub const RESOLVE_BENEATH: u64 = 0x08;
/// Treat the starting directory as `/` (absolute links and `..` stay in it).
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// The magic number of overlayfs in statfs(2).
pub const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn fd_from(rc: libc::c_long) -> io::Result<OwnedFd> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let raw = RawFd::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// openat2(2): `path` resolved from `dir` under `resolve`.
pub fn openat2(dir: RawFd, path: &CStr, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    let flags = u64::try_from(flags | libc::O_CLOEXEC)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags;
    how.resolve = resolve;
    loop {
        // SAFETY: `path` is NUL-terminated and `how` outlives the call; its
        // size is passed as the kernel's extensible-struct protocol asks.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        // openat2 fails with EAGAIN when a rename raced with a scoped
        // resolution; trying again is what the man page says to do.
        match fd_from(rc) {
            Err(err) if err.raw_os_error() == Some(libc::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// openat(2) of one component of `dir`.
pub fn openat(
    dir: RawFd,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let rc = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            libc::c_uint::from(mode),
        )
    };
    fd_from(rc.into())
}

/// fstatat(2); `None` when there is no such file.
pub fn fstatat(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<Option<libc::stat>> {
    // SAFETY: stat is plain data, filled in by the kernel.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated; `stat` is a valid, writable struct.
    let rc = unsafe { libc::fstatat(dir, name.as_ptr(), &mut stat, flags) };
    match check(rc) {
        Ok(()) => Ok(Some(stat)),
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(err) => Err(err),
    }
}

/// fstat(2) of an open descriptor (O_PATH ones included).
pub fn fstat(fd: &impl AsRawFd) -> io::Result<libc::stat> {
    fstatat(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH)?
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
}

/// The file system type of an open descriptor.
pub fn fs_type(fd: &impl AsRawFd) -> io::Result<i64> {
    // SAFETY: statfs is plain data, filled in by the kernel.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is a valid, writable struct.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut stat) })?;
    Ok(stat.f_type as i64)
}

/// readlinkat(2), however long the target.
pub fn readlinkat(dir: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; 256];
    loop {
        // SAFETY: the buffer is writable for its whole length.
        let rc = unsafe {
            libc::readlinkat(dir, name.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len())
        };
        let len = usize::try_from(rc).map_err(|_| io::Error::last_os_error())?;
        if len < buffer.len() {
            buffer.truncate(len);
            return Ok(buffer);
        }
        buffer.resize(buffer.len() * 2, 0);
    }
}

/// mkdirat(2).
pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) })
}

/// symlinkat(2): `name` in `dir`, pointing at `target` (never resolved here).
pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) })
}

/// linkat(2) without following a symbolic link at the source.
pub fn linkat(from_dir: RawFd, from: &CStr, to_dir: RawFd, to: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated; flags 0 links a symlink itself.
    check(unsafe { libc::linkat(from_dir, from.as_ptr(), to_dir, to.as_ptr(), 0) })
}

/// mknodat(2).
pub fn mknodat(dir: RawFd, name: &CStr, mode: libc::mode_t, device: libc::dev_t) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::mknodat(dir, name.as_ptr(), mode, device) })
}

/// unlinkat(2); `AT_REMOVEDIR` in `flags` for a directory.
pub fn unlinkat(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) })
}

/// lchown of `name` in `dir`: never through a symbolic link.
pub fn lchownat(dir: RawFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; AT_SYMLINK_NOFOLLOW acts on a link itself.
    check(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
}

/// fchown(2) of an open descriptor (O_PATH ones too, through AT_EMPTY_PATH).
pub fn fchown(fd: &impl AsRawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: the empty path with AT_EMPTY_PATH names the descriptor itself.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// fchmod(2) of a descriptor opened for reading or writing.
pub fn fchmod(fd: &impl AsRawFd, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: plain system call on a descriptor we hold.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })
}

/// chmod of the inode an O_PATH descriptor holds (a FIFO or device node,
/// which cannot be opened for fchmod without side effects). The
/// `/proc/self/fd` link leads to exactly that inode, whatever its name now.
pub fn chmod_path_fd(fd: &impl AsRawFd, mode: libc::mode_t) -> io::Result<()> {
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is NUL-terminated.
    check(unsafe { libc::fchmodat(libc::AT_FDCWD, path.as_ptr(), mode, 0) })
}

fn timespec(seconds: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: seconds as libc::time_t,
        tv_nsec: 0,
    }
}

/// Sets the access and modification times of `name` in `dir` (a symbolic
/// link itself, never what it points at) to `mtime`.
pub fn set_times_at(dir: RawFd, name: &CStr, mtime: i64) -> io::Result<()> {
    let times = [timespec(mtime), timespec(mtime)];
    // SAFETY: `name` is NUL-terminated; `times` holds the two entries utimensat reads.
    check(unsafe {
        libc::utimensat(
            dir,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// Sets the access and modification times of an open descriptor to `mtime`.
pub fn set_times(fd: &impl AsRawFd, mtime: i64) -> io::Result<()> {
    let times = [timespec(mtime), timespec(mtime)];
    // SAFETY: `times` holds the two entries futimens reads.
    check(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })
}

/// The names in a directory (not `.` and `..`), sorted.
pub fn read_dir_names(dir: &impl AsRawFd) -> io::Result<Vec<CString>> {
    // fdopendir takes the descriptor over: give it a fresh one of its own.
    let own = openat(dir.as_raw_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(own);
    // SAFETY: `raw` is an open directory descriptor nothing else owns.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so the descriptor is still ours to close.
        unsafe { libc::close(raw) };
        return Err(err);
    }
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; clearing it tells end-of-stream from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR* until closedir below.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let err = io::Error::last_os_error();
            break if err.raw_os_error().unwrap_or(0) == 0 {
                Ok(())
            } else {
                Err(err)
            };
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated;
        // it stays valid until the next readdir on this stream.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    };
    // SAFETY: `stream` is valid and closed exactly once (closing `raw` too).
    unsafe { libc::closedir(stream) };
    result?;
    names.sort();
    Ok(names)
}

/// The file-type bits of a mode.
pub fn file_type(mode: libc::mode_t) -> libc::mode_t {
    mode & libc::S_IFMT
}

/// Whether a stat describes a directory.
pub fn is_dir(stat: &libc::stat) -> bool {
    file_type(stat.st_mode) == libc::S_IFDIR
}
