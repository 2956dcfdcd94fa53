/* An LD_PRELOAD interposer that fails the Nth I/O call on LMDB's data file (issue 16).
 *
 * Environment:
 *   FAULT_FILE   suffix of the path to watch (default "data.mdb")
 *   FAULT_AT     the 1-based number of the watched call to fail (0 or unset: none)
 *   FAULT_ERRNO  the errno it fails with (default EIO)
 *   FAULT_COUNT  a file the number of watched calls is written to at exit
 *
 * Watched calls: write, pwrite, pwrite64, pwritev, pwritev64 (and the write side of writev),
 * fsync, fdatasync and ftruncate(64) on a descriptor of the file, and every msync. A failed call
 * does nothing and returns -1 with FAULT_ERRNO. Built by the reliability tests with the
 * machine's C compiler: cc -shared -fPIC -O2 interpose.c -o libfault.so -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 4096
static volatile char watched[MAX_FDS];
static long calls = 0;
static long fail_at = 0;
static int fail_errno = EIO;
static const char *suffix = "data.mdb";

__attribute__((constructor)) static void fault_init(void) {
    const char *at = getenv("FAULT_AT");
    const char *err = getenv("FAULT_ERRNO");
    const char *file = getenv("FAULT_FILE");
    if (at) fail_at = atol(at);
    if (err) fail_errno = atoi(err);
    if (file && *file) suffix = file;
}

__attribute__((destructor)) static void fault_done(void) {
    const char *out = getenv("FAULT_COUNT");
    if (!out) return;
    FILE *f = fopen(out, "w");
    if (!f) return;
    fprintf(f, "%ld\n", calls);
    fclose(f);
}

static int ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

static void track(int fd, const char *path) {
    if (fd >= 0 && fd < MAX_FDS) watched[fd] = path && ends_with(path, suffix);
}

/* Counts a watched call; returns 1 when this one must fail. */
static int hit(int fd) {
    if (fd >= 0 && (fd >= MAX_FDS || !watched[fd])) return 0;
    long n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
    if (fail_at > 0 && n == fail_at) {
        errno = fail_errno;
        return 1;
    }
    return 0;
}

#define REAL(name) static __typeof__(&name) real_##name; if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

int open(const char *path, int flags, ...) {
    REAL(open);
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    int fd = real_open(path, flags, mode);
    track(fd, path);
    return fd;
}

int open64(const char *path, int flags, ...) {
    REAL(open64);
    mode_t mode = 0;
    if (flags & O_CREAT) { va_list ap; va_start(ap, flags); mode = va_arg(ap, mode_t); va_end(ap); }
    int fd = real_open64(path, flags, mode);
    track(fd, path);
    return fd;
}

int close(int fd) {
    REAL(close);
    if (fd >= 0 && fd < MAX_FDS) watched[fd] = 0;
    return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(write);
    if (hit(fd)) return -1;
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite);
    if (hit(fd)) return -1;
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(pwrite64);
    if (hit(fd)) return -1;
    return real_pwrite64(fd, buf, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(pwritev);
    if (hit(fd)) return -1;
    return real_pwritev(fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(pwritev64);
    if (hit(fd)) return -1;
    return real_pwritev64(fd, iov, cnt, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(writev);
    if (hit(fd)) return -1;
    return real_writev(fd, iov, cnt);
}

int fsync(int fd) {
    REAL(fsync);
    if (hit(fd)) return -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    if (hit(fd)) return -1;
    return real_fdatasync(fd);
}

int ftruncate(int fd, off_t len) {
    REAL(ftruncate);
    if (hit(fd)) return -1;
    return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len) {
    REAL(ftruncate64);
    if (hit(fd)) return -1;
    return real_ftruncate64(fd, len);
}

int msync(void *addr, size_t len, int flags) {
    REAL(msync);
    if (hit(-1)) return -1;
    return real_msync(addr, len, flags);
}
