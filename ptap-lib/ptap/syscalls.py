"""System calls of Linux on x86: their numbers, names and prototypes.

``syscall("openat")`` is 257 and ``syscall(257)`` is ``"openat"`` on
x86-64. The numbers are read from the kernel's headers, installed with the
C library's (Debian: linux-libc-dev): ``asm/unistd_64.h`` for x86-64,
``asm/unistd_32.h`` for 32-bit x86, which define ``__NR_read`` and the
rest; no preprocessor is needed to read them.

:data:`DECLARATIONS` gives the prototypes of the system calls people trace,
as C declarations in the style of their manual pages. Each returns
``long``: what the kernel returns, a negative errno on failure. Their
arguments are decoded by type (a ``const char *`` path as a string), and
:data:`BUFFERS` and :data:`STRING_ARRAYS` say which pointers to decode by
the bytes they point to: ``read``'s ``buf`` is the bytes the call read.

Parsing the declarations needs pycparser, which would take tens of
milliseconds at every start of the target, so the parsed prototypes are
kept in the cache (see :mod:`ptap.cache`), keyed by the declarations and
the data model: they are parsed once per version of this module. One entry
holds each prototype's ``to_data()``, which is what the native runtime
reads; another the prototypes encoded (:func:`~ptap.cdecl.encode_prototype`),
read and decoded only when a handler asks for a system call's prototype.
The numbers are cached too, keyed by the kernel header's path, time and
size.

The native runtime calls :func:`table_data` once, when a script has system
call probes; the banner prints :func:`count` in every traced process.
Nothing is read before it is needed: the numbers when something asks for
one (or for the count), the prototypes when something asks for one.
"""

import os

from . import cdecl

__all__ = [
    "DECLARATIONS",
    "BUFFERS",
    "STRING_ARRAYS",
    "syscall",
    "count",
    "syscall_prototype",
    "declared_prototype",
    "numbers",
    "table_data",
]

#: Where the kernel's headers define the numbers, by pointer size.
_NUMBER_HEADERS = {
    8: (
        "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
        "/usr/include/asm/unistd_64.h",
    ),
    4: (
        "/usr/include/x86_64-linux-gnu/asm/unistd_32.h",
        "/usr/include/i386-linux-gnu/asm/unistd_32.h",
        "/usr/include/asm/unistd_32.h",
    ),
}

#: How the kernel's header defines a number: ``#define __NR_read 0``.
_DEFINE = "#define __NR_"

#: The prototypes of the system calls most traced, in the style of their
#: manual pages, by family. Structures are passed by pointer, which
#: decodes as an address; see BUFFERS for the pointers decoded as bytes.
DECLARATIONS = """
/* Files */
long read(int fd, void *buf, size_t count);
long write(int fd, const void *buf, size_t count);
long open(const char *pathname, int flags, mode_t mode);
long openat(int dirfd, const char *pathname, int flags, mode_t mode);
long openat2(int dirfd, const char *pathname, struct open_how *how, size_t size);
long creat(const char *pathname, mode_t mode);
long close(int fd);
long close_range(unsigned int first, unsigned int last, unsigned int flags);
long pread64(int fd, void *buf, size_t count, off_t offset);
long pwrite64(int fd, const void *buf, size_t count, off_t offset);
long readv(int fd, const struct iovec *iov, int iovcnt);
long writev(int fd, const struct iovec *iov, int iovcnt);
long preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset);
long pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset);
long lseek(int fd, off_t offset, int whence);
long stat(const char *pathname, struct stat *statbuf);
long fstat(int fd, struct stat *statbuf);
long lstat(const char *pathname, struct stat *statbuf);
long newfstatat(int dirfd, const char *pathname, struct stat *statbuf, int flags);
long statx(int dirfd, const char *pathname, int flags, unsigned int mask, struct statx *statxbuf);
long statfs(const char *path, struct statfs *buf);
long fstatfs(int fd, struct statfs *buf);
long access(const char *pathname, int mode);
long faccessat(int dirfd, const char *pathname, int mode);
long faccessat2(int dirfd, const char *pathname, int mode, int flags);
long unlink(const char *pathname);
long unlinkat(int dirfd, const char *pathname, int flags);
long rename(const char *oldpath, const char *newpath);
long renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
long renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);
long mkdir(const char *pathname, mode_t mode);
long mkdirat(int dirfd, const char *pathname, mode_t mode);
long rmdir(const char *pathname);
long mknod(const char *pathname, mode_t mode, dev_t dev);
long mknodat(int dirfd, const char *pathname, mode_t mode, dev_t dev);
long chdir(const char *path);
long fchdir(int fd);
long chroot(const char *path);
long getcwd(char *buf, size_t size);
long readlink(const char *pathname, char *buf, size_t bufsiz);
long readlinkat(int dirfd, const char *pathname, char *buf, size_t bufsiz);
long symlink(const char *target, const char *linkpath);
long symlinkat(const char *target, int newdirfd, const char *linkpath);
long link(const char *oldpath, const char *newpath);
long linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags);
long dup(int oldfd);
long dup2(int oldfd, int newfd);
long dup3(int oldfd, int newfd, int flags);
long pipe(int *pipefd);
long pipe2(int *pipefd, int flags);
long fcntl(int fd, int cmd, unsigned long arg);
long ioctl(int fd, unsigned long request, unsigned long arg);
long getdents(unsigned int fd, void *dirp, unsigned int count);
long getdents64(int fd, void *dirp, size_t count);
long truncate(const char *path, off_t length);
long ftruncate(int fd, off_t length);
long fallocate(int fd, int mode, off_t offset, off_t len);
long fadvise64(int fd, off_t offset, size_t len, int advice);
long fsync(int fd);
long fdatasync(int fd);
long sync(void);
long syncfs(int fd);
long chmod(const char *pathname, mode_t mode);
long fchmod(int fd, mode_t mode);
long fchmodat(int dirfd, const char *pathname, mode_t mode);
long chown(const char *pathname, uid_t owner, gid_t group);
long fchown(int fd, uid_t owner, gid_t group);
long lchown(const char *pathname, uid_t owner, gid_t group);
long fchownat(int dirfd, const char *pathname, uid_t owner, gid_t group, int flags);
long umask(mode_t mask);
long flock(int fd, int operation);
long utimensat(int dirfd, const char *pathname, const struct timespec *times, int flags);
long sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
long copy_file_range(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned int flags);
long splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned int flags);
long memfd_create(const char *name, unsigned int flags);
long eventfd2(unsigned int initval, int flags);
long inotify_init1(int flags);
long inotify_add_watch(int fd, const char *pathname, uint32_t mask);
long inotify_rm_watch(int fd, int wd);
long mount(const char *source, const char *target, const char *filesystemtype, unsigned long mountflags, const void *data);
long umount2(const char *target, int flags);
long getxattr(const char *path, const char *name, void *value, size_t size);
long setxattr(const char *path, const char *name, const void *value, size_t size, int flags);

/* Processes and threads */
long execve(const char *pathname, char *const argv[], char *const envp[]);
long execveat(int dirfd, const char *pathname, char *const argv[], char *const envp[], int flags);
long fork(void);
long vfork(void);
long clone(unsigned long flags, void *stack, int *parent_tid, int *child_tid, unsigned long tls);
long clone3(struct clone_args *cl_args, size_t size);
long exit(int status);
long exit_group(int status);
long wait4(pid_t pid, int *wstatus, int options, struct rusage *rusage);
long waitid(int idtype, id_t id, siginfo_t *infop, int options, struct rusage *rusage);
long kill(pid_t pid, int sig);
long tkill(pid_t tid, int sig);
long tgkill(pid_t tgid, pid_t tid, int sig);
long getpid(void);
long getppid(void);
long gettid(void);
long getuid(void);
long geteuid(void);
long getgid(void);
long getegid(void);
long setuid(uid_t uid);
long setgid(gid_t gid);
long setreuid(uid_t ruid, uid_t euid);
long setregid(gid_t rgid, gid_t egid);
long setresuid(uid_t ruid, uid_t euid, uid_t suid);
long setresgid(gid_t rgid, gid_t egid, gid_t sgid);
long getresuid(uid_t *ruid, uid_t *euid, uid_t *suid);
long getresgid(gid_t *rgid, gid_t *egid, gid_t *sgid);
long getgroups(int size, gid_t *list);
long setgroups(int size, const gid_t *list);
long setsid(void);
long getsid(pid_t pid);
long getpgid(pid_t pid);
long setpgid(pid_t pid, pid_t pgid);
long getpgrp(void);
long prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5);
long arch_prctl(int code, unsigned long addr);
long set_tid_address(int *tidptr);
long set_robust_list(struct robust_list_head *head, size_t len);
long rseq(struct rseq *rseq, uint32_t rseq_len, int flags, uint32_t sig);
long ptrace(long request, pid_t pid, void *addr, void *data);
long personality(unsigned long persona);
long unshare(int flags);
long setns(int fd, int nstype);
long pidfd_open(pid_t pid, unsigned int flags);
long getpriority(int which, id_t who);
long setpriority(int which, id_t who, int prio);
long sched_yield(void);
long sched_getaffinity(pid_t pid, unsigned int cpusetsize, unsigned long *mask);
long sched_setaffinity(pid_t pid, unsigned int cpusetsize, const unsigned long *mask);
long getcpu(unsigned int *cpu, unsigned int *node, void *tcache);

/* Memory */
long mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
long munmap(void *addr, size_t length);
long mprotect(void *addr, size_t len, int prot);
long brk(void *addr);
long mremap(void *old_address, size_t old_size, size_t new_size, int flags, void *new_address);
long madvise(void *addr, size_t length, int advice);
long msync(void *addr, size_t length, int flags);
long mincore(void *addr, size_t length, unsigned char *vec);
long mlock(const void *addr, size_t len);
long munlock(const void *addr, size_t len);
long mlockall(int flags);
long munlockall(void);
long membarrier(int cmd, unsigned int flags, int cpu_id);

/* Sockets */
long socket(int domain, int type, int protocol);
long socketpair(int domain, int type, int protocol, int *sv);
long connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen);
long accept(int sockfd, struct sockaddr *addr, socklen_t *addrlen);
long accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
long bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen);
long listen(int sockfd, int backlog);
long sendto(int sockfd, const void *buf, size_t len, int flags, const struct sockaddr *dest_addr, socklen_t addrlen);
long recvfrom(int sockfd, void *buf, size_t len, int flags, struct sockaddr *src_addr, socklen_t *addrlen);
long sendmsg(int sockfd, const struct msghdr *msg, int flags);
long recvmsg(int sockfd, struct msghdr *msg, int flags);
long sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
long recvmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags, struct timespec *timeout);
long shutdown(int sockfd, int how);
long getsockname(int sockfd, struct sockaddr *addr, socklen_t *addrlen);
long getpeername(int sockfd, struct sockaddr *addr, socklen_t *addrlen);
long setsockopt(int sockfd, int level, int optname, const void *optval, socklen_t optlen);
long getsockopt(int sockfd, int level, int optname, void *optval, socklen_t *optlen);

/* Signals */
long rt_sigaction(int signum, const struct sigaction *act, struct sigaction *oldact, size_t sigsetsize);
long rt_sigprocmask(int how, const sigset_t *set, sigset_t *oldset, size_t sigsetsize);
long rt_sigreturn(void);
long rt_sigpending(sigset_t *set, size_t sigsetsize);
long rt_sigsuspend(const sigset_t *mask, size_t sigsetsize);
long rt_sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout, size_t sigsetsize);
long rt_sigqueueinfo(pid_t tgid, int sig, siginfo_t *info);
long sigaltstack(const stack_t *ss, stack_t *old_ss);
long signalfd4(int fd, const sigset_t *mask, size_t sizemask, int flags);
long pause(void);

/* Time */
long nanosleep(const struct timespec *req, struct timespec *rem);
long clock_nanosleep(clockid_t clockid, int flags, const struct timespec *request, struct timespec *remain);
long clock_gettime(clockid_t clockid, struct timespec *tp);
long clock_settime(clockid_t clockid, const struct timespec *tp);
long clock_getres(clockid_t clockid, struct timespec *res);
long gettimeofday(struct timeval *tv, struct timezone *tz);
long settimeofday(const struct timeval *tv, const struct timezone *tz);
long time(time_t *tloc);
long times(struct tms *buf);
long alarm(unsigned int seconds);
long setitimer(int which, const struct itimerval *new_value, struct itimerval *old_value);
long getitimer(int which, struct itimerval *curr_value);
long timerfd_create(int clockid, int flags);
long timerfd_settime(int fd, int flags, const struct itimerspec *new_value, struct itimerspec *old_value);
long timerfd_gettime(int fd, struct itimerspec *curr_value);

/* Waiting for events */
long poll(struct pollfd *fds, nfds_t nfds, int timeout);
long ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *tmo_p, const sigset_t *sigmask, size_t sigsetsize);
long select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds, struct timeval *timeout);
long pselect6(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds, const struct timespec *timeout, void *sigmask);
long epoll_create(int size);
long epoll_create1(int flags);
long epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
long epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
long epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout, const sigset_t *sigmask, size_t sigsetsize);
long epoll_pwait2(int epfd, struct epoll_event *events, int maxevents, const struct timespec *timeout, const sigset_t *sigmask, size_t sigsetsize);
long futex(uint32_t *uaddr, int futex_op, uint32_t val, const struct timespec *timeout, uint32_t *uaddr2, uint32_t val3);
long io_uring_setup(unsigned int entries, struct io_uring_params *p);
long io_uring_enter(unsigned int fd, unsigned int to_submit, unsigned int min_complete, unsigned int flags, const void *argp, size_t argsz);
long io_uring_register(unsigned int fd, unsigned int opcode, void *arg, unsigned int nr_args);

/* The system */
long getrandom(void *buf, size_t buflen, unsigned int flags);
long uname(struct utsname *buf);
long sysinfo(struct sysinfo *info);
long getrlimit(int resource, struct rlimit *rlim);
long setrlimit(int resource, const struct rlimit *rlim);
long prlimit64(pid_t pid, int resource, const struct rlimit64 *new_limit, struct rlimit64 *old_limit);
long getrusage(int who, struct rusage *usage);
long seccomp(unsigned int operation, unsigned int flags, void *args);
"""

#: The pointer arguments decoded as the bytes they point to:
#: ``{system call: {parameter: (direction, length)}}``. The direction is
#: ``"in"`` (the call reads the bytes: decoded at entry, and again at exit)
#: or ``"out"`` (the call fills them: decoded at exit). The length is the
#: name of the parameter giving it, or ``"retval"``: as many bytes as the
#: call returned.
BUFFERS = {
    "read": {"buf": ("out", "retval")},
    "write": {"buf": ("in", "count")},
    "pread64": {"buf": ("out", "retval")},
    "pwrite64": {"buf": ("in", "count")},
    "getcwd": {"buf": ("out", "retval")},
    "readlink": {"buf": ("out", "retval")},
    "readlinkat": {"buf": ("out", "retval")},
    "getdents": {"dirp": ("out", "retval")},
    "getdents64": {"dirp": ("out", "retval")},
    "getxattr": {"value": ("out", "retval")},
    "setxattr": {"value": ("in", "size")},
    "connect": {"addr": ("in", "addrlen")},
    "bind": {"addr": ("in", "addrlen")},
    "sendto": {"buf": ("in", "len"), "dest_addr": ("in", "addrlen")},
    "recvfrom": {"buf": ("out", "retval")},
    "setsockopt": {"optval": ("in", "optlen")},
    "getrandom": {"buf": ("out", "retval")},
}

#: The arguments that are NULL-terminated arrays of strings, by system call.
STRING_ARRAYS = {
    "execve": ("argv", "envp"),
    "execveat": ("argv", "envp"),
}


def syscall(name_or_number):
    """Return the number of the system call named *name_or_number*, or the name of that number.

    Raises :exc:`ValueError` for a system call that this machine does not have.
    """
    by_name, by_number = _table()
    if isinstance(name_or_number, str):
        try:
            return by_name[name_or_number]
        except KeyError:
            raise ValueError(_unknown_name_message(name_or_number, by_name)) from None
    if isinstance(name_or_number, int) and not isinstance(name_or_number, bool):
        try:
            return by_number[name_or_number]
        except KeyError:
            raise ValueError(
                f"no system call has number {name_or_number} "
                f"(they go from 0 to {max(by_number)}, with gaps)"
            ) from None
    raise TypeError(
        f"syscall() takes a system call's name or number, not {type(name_or_number).__name__}"
    )


def count():
    """Return the number of system calls this machine has."""
    return len(_table()[0])


def syscall_prototype(name_or_number):
    """Return the :class:`~ptap.cdecl.Prototype` of a system call, or None if it has none here.

    Raises :exc:`ValueError` for a system call that this machine does not have.
    """
    if isinstance(name_or_number, str):
        syscall(name_or_number)  # Raises if there is no such system call.
        name = name_or_number
    else:
        name = syscall(name_or_number)
    if name not in _decoded:
        encoded = _stored_prototypes().get(name)
        _decoded[name] = None if encoded is None else cdecl.decode_prototype(encoded)
    return _decoded[name]


def numbers(pointer_size=None):
    """Return the system calls' numbers by name on the architecture whose
    pointers are *pointer_size* bytes (8: x86-64, 4: 32-bit x86; by
    default this interpreter's)."""
    if pointer_size is None or pointer_size == cdecl.native_data_model().pointer_size:
        return dict(_table()[0])
    for path in _NUMBER_HEADERS[pointer_size]:
        try:
            with open(path, encoding="utf-8") as file:
                return _parse_number_header(file.read())
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"no header numbers the system calls with {pointer_size}-byte pointers: {_NUMBER_HEADERS[pointer_size][0]}")


def declared_prototype(name):
    """Return the :class:`~ptap.cdecl.Prototype` :data:`DECLARATIONS` gives
    the system call *name*, or None, whatever this machine's table holds
    (for listing another architecture's)."""
    if name not in _decoded:
        encoded = _stored_prototypes().get(name)
        _decoded[name] = None if encoded is None else cdecl.decode_prototype(encoded)
    return _decoded[name]


def table_data(model=None):
    """Return ``[(number, name, prototype_data), ...]`` of every system call, by number.

    *prototype_data* is the system call's ``Prototype.to_data(model)``, or
    None if it has no prototype. The native runtime calls this once.
    """
    by_name, _ = _table()
    if model is None or model == cdecl.native_data_model():
        data = _stored_data()
    else:
        data = {name: cdecl.decode_prototype(encoded).to_data(model)
                for name, encoded in _stored_prototypes().items()}
    rows = [(number, name, data.get(name)) for name, number in by_name.items()]
    rows.sort(key=lambda row: row[0])
    return rows


_numbers = None


def _table():
    """Return ``(number by name, name by number)`` from the kernel's headers, read once."""
    global _numbers
    if _numbers is None:
        by_name = _load_numbers()
        _numbers = by_name, {number: name for name, number in by_name.items()}
    return _numbers


def _load_numbers():
    """Return the system calls' numbers by name, from the cache or the kernel's header.

    The banner counts them in every traced process, and parsing the
    header takes a third of a millisecond; the cache's entry, five times
    less. It is keyed by the header's path, time and size.
    """
    from . import cache

    path, status = _number_header()
    key = ["numbers", path, status.st_mtime_ns, status.st_size]
    entry = cache.entry_path("syscall-numbers", key)
    by_name = cache.load(entry, key)
    if isinstance(by_name, dict):
        return by_name
    with open(path, encoding="utf-8") as file:
        by_name = _parse_number_header(file.read())
    try:
        cache.store(entry, key, by_name)
    except OSError:
        pass  # No cache: parse again next time.
    return by_name


def _parse_number_header(text):
    """Return the system calls' numbers by name that the header *text* defines.

    Lines of the form ``#define __NR_name number`` count; others, and
    definitions whose value is not a decimal number, do not. (String
    methods, not a regular expression: ``re`` would be imported into every
    traced process, for the count in the banner.)
    """
    by_name = {}
    for line in text.splitlines():
        if not line.startswith(_DEFINE):
            continue
        words = line[len(_DEFINE):].split()
        if len(words) == 2 and words[1].isdecimal() and words[1].isascii():
            by_name[words[0]] = int(words[1])
    return by_name


def _number_header():
    """Return the path and ``os.stat()`` of the kernel header that numbers the system calls."""
    candidates = _NUMBER_HEADERS[cdecl.native_data_model().pointer_size]
    for path in candidates:
        try:
            return path, os.stat(path)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(
        f"ProcessTap reads the system calls' numbers from {candidates[0]}, "
        f"which is missing: install the kernel's headers (Debian: linux-libc-dev)"
    )


def _unknown_name_message(name, by_name):
    """Return the message for the unknown system call *name*, with a suggestion."""
    import difflib

    message = f"no system call is named {name!r}"
    close = difflib.get_close_matches(name, by_name, n=3)
    if close:
        message += f" (did you mean {' or '.join(repr(match) for match in close)}?)"
    return message


#: The to_data() of each system call's prototype for the interpreter's
#: data model, by name, once read.
_data = None
#: Each system call's encoded prototype, by name, once read.
_encoded = None
#: The prototypes decoded so far, by name (None: no prototype).
_decoded = {}


def _stored_data():
    """Return the to_data() of the system calls' prototypes by name, read or parsed once."""
    global _data
    if _data is None:
        _data = _load("syscalls/data", "data")
    return _data


def _stored_prototypes():
    """Return the encoded prototypes of the system calls by name, read or parsed once."""
    global _encoded
    if _encoded is None:
        _encoded = _load("syscalls/prototypes", "prototypes")
    return _encoded


def _load(name, part):
    """Return the *part* (``"data"`` or ``"prototypes"``) of the system calls' prototypes.

    They are in two entries: the native runtime reads the data of every
    system call when a script has a syscall probe, and a handler only
    rarely asks for a prototype; the prototypes' entry is three times
    larger and slower to read. Both are written whenever either is missing.
    """
    from . import cache

    stored = cache.load(cache.entry_path(name, _prototypes_key()), _prototypes_key())
    if isinstance(stored, dict):
        return stored
    prototypes = _parse_declarations()
    parts = {
        "data": {name: proto.to_data() for name, proto in prototypes.items()},
        "prototypes": {name: cdecl.encode_prototype(proto) for name, proto in prototypes.items()},
    }
    try:
        for each in parts:
            cache.store(cache.entry_path(f"syscalls/{each}", _prototypes_key()), _prototypes_key(), parts[each])
    except OSError:
        pass  # No cache: parse again next time.
    return parts[part]


def _prototypes_key():
    """Return the cache key of the prototypes: what they are made of.

    The declarations are in it by their checksum and length: as text, 15
    kB would be written out, read back and compared at every start.
    """
    import zlib

    declarations = DECLARATIONS.encode("utf-8")
    return [
        "prototypes", zlib.crc32(declarations), len(declarations), BUFFERS, STRING_ARRAYS,
        cdecl.native_data_model().name,
    ]


def _parse_declarations():
    """Parse :data:`DECLARATIONS` and apply :data:`BUFFERS` and :data:`STRING_ARRAYS`."""
    from . import cparse  # Imports pycparser, which takes a while.

    _, prototypes = cparse.parse(DECLARATIONS, cdecl.COMMON_TYPEDEFS, filename="<syscalls>")
    return {proto.name: _with_decoding(proto) for proto in prototypes}


def _with_decoding(proto):
    """Return *proto* with the decoding of its arguments that BUFFERS and STRING_ARRAYS give."""
    names = [param.name for param in proto.params]
    decodings = {name: cdecl.STRINGS for name in STRING_ARRAYS.get(proto.name, ())}
    for name, (direction, length) in BUFFERS.get(proto.name, {}).items():
        length_from = length if length == "retval" else names.index(length)
        decodings[name] = cdecl.Buffer(direction, length_from)
    unknown = decodings.keys() - set(names)
    if unknown:
        raise ValueError(f"{proto.name} has no parameter {', '.join(sorted(unknown))}")
    params = tuple(
        cdecl.Param(param.name, param.type, decodings.get(param.name))
        for param in proto.params
    )
    return cdecl.Prototype(proto.name, proto.restype, params, proto.variadic)
